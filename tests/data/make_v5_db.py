"""Makes tests/data/voxwatch-v5.sql: the schema-3 database of make_v3_db.py opened (so migrated to schema 5) by the
store of commit 7a7a76f, the last SQLite-only store, with a transcript added, dumped as SQL: tests check that such
databases keep upgrading.

    PYTHONPATH=src python tests/data/make_v5_db.py   # run with the store of commit 7a7a76f
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from voxwatch.records import AlertTranscript
from voxwatch.store import Store

HERE = Path(__file__).resolve().parent


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "v5.db"
        with sqlite3.connect(path) as db:
            db.executescript((HERE / "voxwatch-v3.sql").read_text())
        store = Store(path)
        alert = store.alerts("high")[0]
        store.add_transcript(
            AlertTranscript(alert.alert_id, alert.source, "high", 1.0, 3.0, "done", "en", 0.9, "over the bridge")
        )
        store.close()
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == 5
            (fts,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'transcript_words'").fetchone()
            # iterdump cannot replay an FTS5 table: leave out its rows and shadow tables, make it anew and rebuild it
            lines = [line for line in db.iterdump() if "transcript_words" not in line or "TRIGGER" in line]
            lines = [line for line in lines if "writable_schema" not in line and line != "COMMIT;"]
            rebuild = f"{fts};\nINSERT INTO transcript_words (transcript_words) VALUES ('rebuild');"
            (HERE / "voxwatch-v5.sql").write_text("\n".join(lines) + f"\n{rebuild}\nPRAGMA user_version = 5;\nCOMMIT;\n")


if __name__ == "__main__":
    main()
