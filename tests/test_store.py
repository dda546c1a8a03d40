"""The store, fast and without ../shared/data: databases made by earlier code open unchanged, reads go through
read-only connections, and forgetting a voice is one transaction across every part of the store."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from voxwatch import StoreError, UnknownSpeakerError
from voxwatch.store import MIGRATIONS, Store

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def v3(tmp_path: Path) -> Path:
    """A database written by voxwatch at schema 3 before the store was split (tests/data/make_v3_db.py)."""
    path = tmp_path / "v3.db"
    db = sqlite3.connect(path)
    db.executescript((DATA / "voxwatch-v3.sql").read_text())
    db.close()
    return path


def test_a_database_made_before_the_split_opens_and_reads_unchanged(v3: Path) -> None:
    before = sqlite3.connect(v3)
    schema = before.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE tbl_name NOT IN ('deliveries', 'detections', 'tokens') ORDER BY name"
    ).fetchall()
    deliveries = before.execute("SELECT * FROM deliveries ORDER BY rowid").fetchall()
    assert before.execute("PRAGMA user_version").fetchone()[0] == 3
    before.close()
    store = Store(v3)
    try:
        speakers = {s.name: s for s in store.speakers()}
        assert set(speakers) == {"high", "low"} and all(
            s.enrollments == 1 and s.notes == ("tone, made by make_v3_db.py",) for s in speakers.values()
        )
        assert [e.model for e in store.enrollments("low")] == ["tones"]
        names, matrix = store.voiceprint_matrix("tones")
        assert names == ["high", "low"] and matrix.shape == (2, 32) and np.allclose(np.linalg.norm(matrix, axis=1), 1, atol=1e-5)
        alerts = store.alerts()
        assert [a.speaker for a in alerts] == ["low", "high"] and [a.stream_time_s for a in alerts] == [2.016, 10.496]
        records = store.alert_records()
        assert records[-1]["acknowledged_by"] == "maker" and records[-1]["audio"] == {"start_s": 1.0, "end_s": 2.0}
        assert [d.speaker for d in store.detections()] == ["low", "high"]
        [recording] = store.recordings("tones")
        assert recording.path == "/data/tones.flac" and len(recording.spans) == 3 and recording.vectors.shape == (3, 32)
        ids, centroids, owners = store.index_summaries("tones", 32)
        assert len(ids) == 1 and len(centroids) == len(owners) >= 1
        assert store.token(next(iter(_token_hashes(v3)))) == ("operator", "admin", None)  # made before roles: admin
        assert [w[1:4] for w in store.webhooks()] == [("http://127.0.0.1:9/hook", "s3cret", ["low"])]
        assert store.search_job("job1")["status"] == "done"  # type: ignore[index]
        assert [a["action"] for a in store.audit_log()][:2] == ["enroll", "enroll"]
    finally:
        store.close()
    after = sqlite3.connect(v3)
    assert after.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    kept = after.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE tbl_name NOT IN ('deliveries', 'detections', 'tokens') ORDER BY name"
    ).fetchall()
    # migration 4 adds roles to tokens, 5 the language columns to detections and rebuilds deliveries; every other
    # table is as it was
    assert [row for row in kept if row in schema] == schema, "a migration changed a table it should have left alone"
    rebuilt = after.execute(
        "SELECT alert_id, webhook_id, status, attempts, next_attempt_at, delivered_at, last_error, event FROM deliveries"
        " ORDER BY rowid"
    ).fetchall()
    assert rebuilt == [(*row, "alert") for row in deliveries], "the deliveries' rebuild lost or reordered rows"
    after.close()


def _token_hashes(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [r[0] for r in db.execute("SELECT sha256 FROM tokens")]


def test_forget_is_one_transaction_across_the_parts(v3: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(v3)
    try:

        def broken(db: sqlite3.Connection, name: str) -> int:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(store, "_forget_in_service", broken)
        with pytest.raises(StoreError, match="disk I/O error"):
            store.forget("low", "tester")
        assert "low" in [s.name for s in store.speakers()] and len(store.alerts("low")) == 1, (
            "a failed forget left nothing half-done"
        )
        monkeypatch.undo()
        counts = store.forget("low", "tester")
        assert counts == {"enrollments": 1, "detections": 1, "snippets": 1, "transcripts": 0, "search_hits": 0, "alerts": 1}
        assert [s.name for s in store.speakers()] == ["high"] and store.alerts("low") == []
        assert store.webhooks()[0][3] == []  # the filter named only 'low': it now matches nothing, never everything
        assert not [a for a in store.audit_log() if a["target"] == "low"]
        with pytest.raises(UnknownSpeakerError):
            store.forget("low", "tester")
    finally:
        store.close()


def test_reads_use_read_only_connections_alongside_the_writer(tmp_path: Path) -> None:
    store = Store(tmp_path / "voxwatch.db")
    try:
        store.audit("tester", "probe", "x")
        reader = store._reader()  # the pool's connection: it cannot write
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.execute("INSERT INTO audit (at, actor, action, target, detail) VALUES ('', '', '', '', '')")
        assert not reader.in_transaction, "a failed statement must not leave a reader on an old snapshot"
        store._readers.put(reader)
        errors: list[Exception] = []

        def work(i: int) -> None:
            try:
                for k in range(20):
                    store.audit(f"t{i}", "probe", str(k))
                    assert len(store.audit_log()) >= 1
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(store.audit_log()) == 81
    finally:
        store.close()


def test_a_database_from_a_newer_voxwatch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="newer voxwatch"):
        Store(path)
