"""The store, fast and without ../shared/data, on SQLite and on PostgreSQL (the ``db`` fixture: each test runs on
both): databases made by earlier code open unchanged and keep upgrading, every part round-trips, reads go through
read-only connections, writers in several processes take turns, and forgetting a voice is one transaction across
every part of the store."""

from __future__ import annotations

import sqlite3
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from voxwatch import StoreError, UnknownSpeakerError
from voxwatch.cli import main
from voxwatch.errors import UsageError
from voxwatch.records import Alert, AlertTranscript, Detection, EnrollmentInfo, Quiet, Segment
from voxwatch.store import MIGRATIONS, Store, WatchedStream, core
from voxwatch.store.dialect import open_dialect

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


@pytest.fixture
def v5(tmp_path: Path) -> Path:
    """A database made by the last SQLite-only store, at schema 5 (tests/data/make_v5_db.py)."""
    path = tmp_path / "v5.db"
    with sqlite3.connect(path) as db:
        db.executescript((DATA / "voxwatch-v5.sql").read_text())
    return path


def test_a_schema_5_database_from_the_sqlite_only_store_upgrades_with_a_new_migration(
    v5: Path, db: str | Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core, "MIGRATIONS", [*MIGRATIONS, "CREATE TABLE probe (id INTEGER PRIMARY KEY, payload BLOB)"])
    for location in (v5, db):  # the old file, and a fresh database of either store, take migration 6 alike
        store = Store(location)
        try:
            with store._tx() as con:
                assert store._dialect.schema_version(con) == len(MIGRATIONS) + 1
                (probe,) = con.execute("INSERT INTO probe (payload) VALUES (?) RETURNING id", (b"\x00\xff",)).fetchone()
            assert store._query("SELECT payload FROM probe WHERE id = ?", (probe,)) == [(b"\x00\xff",)]
        finally:
            store.close()
    store = Store(v5)
    try:
        assert [r["alert_id"] for r in store.alert_records(text="bridge")] == [store.alerts("high")[0].alert_id]
        assert {s.name for s in store.speakers()} == {"high", "low"}
    finally:
        store.close()


def _fill(store: Store) -> None:
    """One row or more in every table, through the store's own methods."""
    for name, v in (("low", [1.0, 0.0, 0.0]), ("high", [0.0, 1.0, 0.0])):
        info = EnrollmentInfo(name, f"{name}.wav", "0" * 63 + name[0], 5.0, 30.0, 0.9, "tone", "2026-01-01T00:00:00+00:00", "m")
        store.add_enrollments(name, [(info, {"clean": np.array(v, np.float32)})], "tester")
    segments = [Segment("a.wav", 2.0 * i, 2.0 * i + 1.5, 1.5, 0.9, (0.6, 0.8, 0.0), 8000.0) for i in range(4)]
    store.add_recording("a.wav", "f" * 64, "m", 10.0, segments)
    store.add_detections([Detection("ch1", "low", 1.0, 2.5, 0.8, 5.0), Detection("ch1", "high", 3.0, 4.0, 0.7, 4.0)])
    store.set_language("ch1", "low", 1.0, "en", 0.9)
    for i, name in enumerate(("low", "high")):
        alert = Alert(f"a{i}", "ch1", name, 2.0 + i, 1.0 + i, 0.8, 5.0, 1.5, f"2026-01-01T00:00:0{i}.000+00:00")
        assert store.add_alert(alert)
        store.add_snippet(alert.alert_id, name, "audio/wav", 1.0, 2.0, b"RIFF\x00")
        store.add_snippet(alert.alert_id, name, "audio/wav", 1.0, 3.0, b"RIFF\x00\x01")  # a longer one replaces it
    store.add_transcript(AlertTranscript("a0", "ch1", "low", 1.0, 2.0, "done", "en", 0.9, "meet at the old bridge"))
    store.add_transcript(AlertTranscript("a1", "ch1", "high", 2.0, 3.0, "done", "nl", 0.9, "bridgework is 50% done"))
    store.acknowledge("a0", "tester")
    store.add_token("op", "1" * 64, "tester", "operator", None)
    hook = store.add_webhook("http://127.0.0.1:9/hook", None, ["low", "high"], "tester")
    store.add_alert(Alert("a2", "ch2", "low", 9.0, 8.0, 0.8, 5.0, 1.5, "2026-01-01T00:00:09.000+00:00"))
    store.queue_deliveries(hook)
    store.add_search_job("job1", "tester", ["/data"], ["low"], 1)
    store.finish_search_job("job1", "done", [{"path": "a.wav"}], [Detection("a.wav", "low", 0.0, 1.5, 0.9, 6.0)], [])


def test_every_part_round_trips(db: str | Path) -> None:
    store = Store(db)
    try:
        _fill(store)
        assert [(s.name, s.enrollments, s.notes) for s in store.speakers()] == [("high", 1, ("tone",)), ("low", 1, ("tone",))]
        names, matrix = store.voiceprint_matrix("m")
        assert names == ["high", "low"] and np.allclose(matrix[:, :2], [[0, 1], [1, 0]])
        [recording] = store.recordings("m")
        assert recording.spans.shape == (4, 4) and recording.bandwidth_hz == 8000.0
        assert np.allclose(recording.vectors.astype(np.float32), [0.6, 0.8, 0.0], atol=1e-3)
        ids, centroids, owners = store.index_summaries("m", 3)
        [found] = store.recordings_by_id(ids.tolist())
        indexed = store.indexed("f" * 64, "m")
        assert indexed is not None and found.path == indexed.path == "a.wav" and len(centroids) == len(owners) >= 1
        assert [(d.speaker, lang) for d, lang, _ in store.detection_languages()] == [("low", "en"), ("high", "")]
        assert store.snippet("a0") == ("audio/wav", 1.0, 3.0, b"RIFF\x00\x01")
        assert [r["alert_id"] for r in store.alert_records(text="bridge")] == ["a0"]
        assert [r["alert_id"] for r in store.alert_records(text="bridge*")] == ["a1", "a0"]
        assert [r["alert_id"] for r in store.alert_records(text='"old bridge"')] == ["a0"]
        assert store.alert_records(text='"bridge old"') == [] and store.alert_records(text='NOT "(50% OR') == []
        assert [r["alert_id"] for r in store.alert_records(text="50%", language="nl")] == ["a1"]
        assert store.alert_records(alert_id="a0")[0]["acknowledged_by"] == "tester"
        with store._tx() as con:  # idempotent writes (a retried task's alert) are one statement on both stores
            again = "INSERT INTO alerts (alert_id, source, speaker, wall_time, payload) VALUES (?, ?, ?, ?, ?)"
            assert con.execute(again + " ON CONFLICT (alert_id) DO NOTHING", ("a1", "x", "x", "x", "{}")).rowcount == 0
        assert store._query("SELECT '100%'", bulk=True) == store._query("SELECT ? || '%'", ("100",)) == [("100%",)]
        assert store.acknowledge("a0", "other") == store.acknowledge("a0", "tester")
        assert [t.text for t in store.transcripts()] == ["meet at the old bridge", "bridgework is 50% done"]
        assert store.token("1" * 64) == ("op", "operator", None)
        with pytest.raises(UsageError, match="exists already"):
            store.add_token("op", "2" * 64, "tester", "viewer", None)
        hook = store.webhooks()[0][0]
        assert store.delivery_counts(hook) == {
            "skipped": 4,
            "pending": 1,
            "head_attempts": 0,
            "last_error": None,
            "next_attempt_at": 0,
        }
        head = store.next_delivery(hook)
        assert head is not None and head[:2] == ("a2", "alert")
        job = store.search_job("job1")
        assert job is not None and job["speakers"] == ["low"] and job["detections"][0]["llr"] == 6.0  # type: ignore[index]
        assert [j["id"] for j in store.search_jobs()] == ["job1"]
        counts = store.purge_before(datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC), "retention")
        assert counts["alerts"] == 1 and counts["transcripts"] == 1 and counts["snippets"] == 1
        assert store.alert_records(text="bridge") == [] and [a.alert_id for a in store.alerts()] == ["a1", "a2"]
        assert [a["action"] for a in store.audit_log(since=(datetime.now(UTC) - timedelta(hours=1)).isoformat())][-1] == "purge"
    finally:
        store.close()


def test_forget_is_one_transaction_across_the_parts(db: str | Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(db)
    try:
        _fill(store)
        failure = store._dialect.errors[0]

        def broken(con: object, name: str) -> int:
            raise failure("disk I/O error")

        monkeypatch.setattr(store, "_forget_in_service", broken)
        with pytest.raises(StoreError, match="disk I/O error"):
            store.forget("low", "tester")
        assert "low" in [s.name for s in store.speakers()] and len(store.alerts("low")) == 2, (
            "a failed forget left nothing half-done"
        )
        monkeypatch.undo()
        counts = store.forget("low", "tester")
        assert counts == {"enrollments": 1, "detections": 1, "snippets": 1, "transcripts": 1, "search_hits": 1, "alerts": 2}
        assert [s.name for s in store.speakers()] == ["high"] and store.alerts("low") == []
        assert store.webhooks()[0][3] == ["high"] and store.search_job("job1") is None
        assert store.alert_records(text="meet") == [] and store.snippet("a0") is None
        assert not [a for a in store.audit_log() if a["target"] == "low"]
        store.forget("high", "tester")
        assert store.webhooks()[0][3] == []  # a filter left empty matches nothing, never everything
        with pytest.raises(UnknownSpeakerError):
            store.forget("low", "tester")
    finally:
        store.close()


def test_v3_forget_is_one_transaction_across_the_parts(v3: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(v3)
    try:

        def broken(db: sqlite3.Connection, name: str) -> int:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(store, "_forget_in_service", broken)
        with pytest.raises(StoreError, match="disk I/O error"):
            store.forget("low", "tester")
        monkeypatch.undo()
        counts = store.forget("low", "tester")
        assert counts == {"enrollments": 1, "detections": 1, "snippets": 1, "transcripts": 0, "search_hits": 0, "alerts": 1}
        assert store.webhooks()[0][3] == []  # the filter named only 'low': it now matches nothing, never everything
    finally:
        store.close()


def test_reads_use_read_only_connections_alongside_the_writer(db: str | Path) -> None:
    store = Store(db)
    try:
        store.audit("tester", "probe", "x")
        reader = store._reader()  # the pool's connection: it cannot write
        with pytest.raises(StoreError, match="read-?only"):
            store._read(reader, "INSERT INTO audit (at, actor, action, target, detail) VALUES ('', '', '', '', '')", ())
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


def test_writers_of_separate_stores_take_turns(db: str | Path) -> None:
    """Two stores on one database stand for two processes (on PostgreSQL: two machines): they migrate it at once
    without harm, and of two writers checking for and adding the same token name exactly one succeeds, every time."""
    stores: list[Store] = []
    opened = [threading.Thread(target=lambda: stores.append(Store(db))) for _ in range(2)]
    for t in opened:
        t.start()
    for t in opened:
        t.join()
    try:
        assert len(stores) == 2
        for round_ in range(10):
            results: list[str] = []
            writers = [threading.Thread(target=_add_token, args=(s, f"t{round_}", results)) for s in stores]
            for t in writers:
                t.start()
            for t in writers:
                t.join()
            assert sorted(results) == ["added", "refused"]
        assert len(stores[1].tokens()) == 10
    finally:
        for store in stores:
            store.close()


def _add_token(store: Store, name: str, results: list[str]) -> None:
    try:
        store.add_token(name, f"{name}-{id(results)}-{id(store)}", "tester", "viewer", None)
        results.append("added")
    except UsageError:
        results.append("refused")


def test_an_unreachable_server_is_one_clear_error_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://voxwatch:s3cret-pw@127.0.0.1:9/voxwatch?application_name=x"
    with pytest.raises(StoreError, match="cannot connect to the PostgreSQL server") as caught:
        Store(url)
    assert "s3cret-pw" not in str(caught.value) and "postgresql://127.0.0.1:9/voxwatch" in str(caught.value)
    result = CliRunner().invoke(main, ["--db", url, "speakers"])
    assert result.exit_code == 7 and "Traceback" not in result.output and "s3cret-pw" not in result.output, result.output


def test_a_dropped_server_connection_is_opened_again(postgres) -> None:  # type: ignore[no-untyped-def]
    """A PostgreSQL restart (here: every connection to the database terminated) costs no write and no read."""
    url = postgres.create_database()
    store = Store(url)
    try:
        store.audit("tester", "before", "x")
        assert len(store.audit_log()) == 1
        other = Store(url)
        with other._tx() as con:
            con.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid != pg_backend_pid()"
            )
        other.close()
        store.audit("tester", "after", "x")
        assert [a["action"] for a in store.audit_log()] == ["before", "after"]
    finally:
        store.close()
        postgres.drop_database(url)


def test_without_psycopg_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(StoreError, match=r"voxwatch\[postgres\]"):
        open_dialect("postgres://voxwatch@db.example/voxwatch")


def test_postgresql_has_the_sqlite_schema(postgres, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Every table and column SQLite has, PostgreSQL has too (besides its ``rowid`` and ``words`` columns)."""
    url = postgres.create_database()
    try:
        for location in (tmp_path / "s.db", url):
            Store(location).close()
        with sqlite3.connect(tmp_path / "s.db") as con:
            tables = [
                t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'") if "transcript_words" not in t
            ]
            lite = {t: {c[1] for c in con.execute(f"PRAGMA table_info({t})")} for t in tables}
        store = Store(url)
        rows = store._query("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'")
        store.close()
        pg: dict[str, set[str]] = {}
        for table, column in rows:
            pg.setdefault(table, set()).add(column)
        assert {t: c - {"rowid", "words"} for t, c in pg.items() if t != "schema_version"} == lite
    finally:
        postgres.drop_database(url)


def test_a_database_from_a_newer_voxwatch_is_refused(db: str | Path) -> None:
    store = Store(db)
    with store._tx() as con:
        store._dialect.set_schema_version(con, len(MIGRATIONS) + 1)
    store.close()
    with pytest.raises(StoreError, match="newer voxwatch"):
        Store(db)


def test_resumable_streams_and_idempotent_writes_on_both_stores(db: str | Path) -> None:
    """What a resumed or moved stream relies on: watched streams with their resume points, forget reaching them, and an
    alert or detection processed again stored once."""
    store = Store(db)
    try:
        _fill(store)
        first = WatchedStream("ch1", "s1", "file", ["low", "high"], True, 0, "2026-01-01T00:00:00+00:00", "tester")
        store.watch_stream(first)
        live_url = "http://op:pw@radio/1"  # kept beside the name without the password, to reopen the stream
        store.watch_stream(
            WatchedStream("http://op:***@radio/1", "s2", "url", None, True, 3, "2026-01-01T00:00:01+00:00", "op", url=live_url)
        )
        store.stream_positions([Quiet("ch1", 12.5, {"low": 9.0, "high": 4.0})])
        kept, live = store.watched_streams()
        assert (kept.stream_id, kept.position_s, kept.last_heard, live.speakers, live.reconnects) == (
            "s1",
            12.5,
            {"low": 9.0, "high": 4.0},
            None,
            3,
        )
        resume = kept.resume
        assert resume is not None and resume.at_s == 12.5 and live.resume is None
        assert (kept.location, live.location) == ("ch1", live_url)
        store.watch_stream(first)  # the same source added again replaces the row, position and all
        assert [(w.source, w.position_s) for w in store.watched_streams()] == [("ch1", 0.0), ("http://op:***@radio/1", 0.0)]
        again = Alert("a1", "ch1", "high", 3.0, 2.0, 0.8, 5.0, 1.5, "2026-01-01T00:00:01.000+00:00")
        assert not store.add_alert(again) and [a.alert_id for a in store.alerts()].count("a1") == 1
        before = len(store.detection_languages())
        store.add_detections([Detection("ch1", "low", 1.0, 2.5, 0.8, 5.0)])  # the same turn, detected again
        assert len(store.detection_languages()) == before
        store.forget("high", "tester")
        assert store.watched_streams()[0].speakers == ["low"] and "high" not in (store.watched_streams()[0].last_heard or {})
        store.unwatch_stream("ch1")
        assert [w.source for w in store.watched_streams()] == ["http://op:***@radio/1"]
    finally:
        store.close()
