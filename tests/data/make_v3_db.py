"""Makes tests/data/voxwatch-v3.sql: a database written by voxwatch at schema 3 (before the store was split into
parts), dumped as SQL, so tests can check that databases made by that code still open and read the same.

    PYTHONPATH=src python tests/data/make_v3_db.py   # run with the store of commit 803717b or its schema
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from voxwatch import FileSource
from voxwatch.audio import write_wav
from voxwatch.auth import create_token
from voxwatch.testing import tone_engine, tone_voice

HERE = Path(__file__).resolve().parent


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        engine = tone_engine(folder, actor="maker")
        engine.enroll(
            "low", [write_wav(Path(folder) / "low.wav", tone_voice(300.0, 5.0, seed=100))], note="tone, made by make_v3_db.py"
        )
        engine.enroll(
            "high", [write_wav(Path(folder) / "high.wav", tone_voice(1200.0, 5.0, seed=101))], note="tone, made by make_v3_db.py"
        )
        summary = engine.watch([FileSource(str(HERE / "tones.flac"))])
        engine.index([str(HERE / "tones.flac")])
        store = engine.store
        create_token(store, "operator", "maker")
        store.add_webhook("http://127.0.0.1:9/hook", "s3cret", ["low"], "maker")
        store.acknowledge(summary.alerts[0].alert_id, "maker")
        store.add_snippet(summary.alerts[0].alert_id, "low", "audio/wav", 1.0, 2.0, b"RIFF-not-really-audio")
        store.add_search_job("job1", "maker", ["tones.flac"], ["high"], 1)
        store.finish_search_job("job1", "done", [], [], [])
        engine.close()
        db = sqlite3.connect(Path(folder) / "voxwatch.db")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        lines = [line.replace(str(HERE), "/data") for line in db.iterdump()]
        db.close()
    (HERE / "voxwatch-v3.sql").write_text(
        f"-- a voxwatch database at schema {version}, made by make_v3_db.py\n"
        + "\n".join(lines)
        + f"\nPRAGMA user_version = {version};\n"
    )


if __name__ == "__main__":
    main()
