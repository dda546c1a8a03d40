"""The store's core: the SQLite file (WAL), its schema migrations, one writer connection and read-only readers."""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ..errors import StoreError

MIGRATIONS = [
    """
    CREATE TABLE speakers (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
    CREATE TABLE enrollments (
        id INTEGER PRIMARY KEY,
        speaker_id INTEGER NOT NULL REFERENCES speakers(id) ON DELETE CASCADE,
        file TEXT NOT NULL, sha256 TEXT NOT NULL, speech_s REAL NOT NULL, snr_db REAL NOT NULL,
        consistency REAL NOT NULL, note TEXT NOT NULL, created_at TEXT NOT NULL, model TEXT NOT NULL);
    CREATE TABLE embeddings (
        id INTEGER PRIMARY KEY,
        enrollment_id INTEGER NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
        model TEXT NOT NULL, condition TEXT NOT NULL, vector BLOB NOT NULL);
    CREATE TABLE recordings (
        id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL, model TEXT NOT NULL, path TEXT NOT NULL,
        duration_s REAL NOT NULL, speech_s REAL NOT NULL, indexed_at TEXT NOT NULL,
        spans BLOB NOT NULL, vectors BLOB NOT NULL, UNIQUE (sha256, model));
    CREATE TABLE voice_summaries (
        recording_id INTEGER PRIMARY KEY REFERENCES recordings(id) ON DELETE CASCADE, model TEXT NOT NULL,
        centroids BLOB NOT NULL);
    CREATE TABLE detections (
        id INTEGER PRIMARY KEY, source TEXT NOT NULL, speaker TEXT NOT NULL, start_s REAL NOT NULL,
        end_s REAL NOT NULL, score REAL NOT NULL, llr REAL NOT NULL, created_at TEXT NOT NULL);
    CREATE TABLE alerts (
        alert_id TEXT PRIMARY KEY, source TEXT NOT NULL, speaker TEXT NOT NULL, wall_time TEXT NOT NULL,
        payload TEXT NOT NULL, delivered_at TEXT);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
        target TEXT NOT NULL, detail TEXT NOT NULL);
    CREATE INDEX detections_speaker ON detections (speaker);
    CREATE INDEX alerts_speaker ON alerts (speaker);
    """,
    # 2: the service (voxwatch serve): API tokens, webhooks and their per-alert delivery state, acknowledgements,
    # alert audio snippets, search jobs and their hits. Everything that names a voice goes when the voice is forgotten.
    """
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, sha256 TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
        created_by TEXT NOT NULL);
    CREATE TABLE webhooks (
        id INTEGER PRIMARY KEY, url TEXT NOT NULL, secret TEXT, speakers TEXT, created_at TEXT NOT NULL,
        created_by TEXT NOT NULL);
    CREATE TABLE deliveries (
        alert_id TEXT NOT NULL REFERENCES alerts(alert_id) ON DELETE CASCADE,
        webhook_id INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
        status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL DEFAULT 0,
        delivered_at TEXT, last_error TEXT, PRIMARY KEY (webhook_id, alert_id));
    CREATE TABLE acknowledgements (
        alert_id TEXT PRIMARY KEY REFERENCES alerts(alert_id) ON DELETE CASCADE,
        acknowledged_at TEXT NOT NULL, actor TEXT NOT NULL);
    CREATE TABLE snippets (
        alert_id TEXT PRIMARY KEY REFERENCES alerts(alert_id) ON DELETE CASCADE,
        speaker TEXT NOT NULL, media_type TEXT NOT NULL, start_s REAL NOT NULL, end_s REAL NOT NULL, audio BLOB NOT NULL);
    CREATE TABLE search_jobs (
        id TEXT PRIMARY KEY, actor TEXT NOT NULL, paths TEXT NOT NULL, speakers TEXT, status TEXT NOT NULL,
        done INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0, recordings TEXT, errors TEXT,
        created_at TEXT NOT NULL, finished_at TEXT);
    CREATE TABLE search_hits (
        id INTEGER PRIMARY KEY, job_id TEXT NOT NULL REFERENCES search_jobs(id) ON DELETE CASCADE,
        source TEXT NOT NULL, speaker TEXT NOT NULL, start_s REAL NOT NULL, end_s REAL NOT NULL,
        score REAL NOT NULL, llr REAL NOT NULL);
    CREATE INDEX deliveries_pending ON deliveries (webhook_id, status);
    CREATE INDEX deliveries_alert ON deliveries (alert_id);
    CREATE INDEX snippets_speaker ON snippets (speaker);
    CREATE INDEX search_hits_job ON search_hits (job_id);
    CREATE INDEX search_hits_speaker ON search_hits (speaker);
    CREATE INDEX alerts_source ON alerts (source);
    """,
    # 3: each indexed recording's channel band (its segments' median upper band edge; 0: unknown), which picks the
    # calibration its segments are scored with.
    """
    ALTER TABLE recordings ADD COLUMN bandwidth_hz REAL NOT NULL DEFAULT 0;
    """,
    # 4: each API token's role (viewer, operator or admin; tokens made before roles keep doing everything) and
    # optional expiry (ISO 8601 UTC).
    """
    ALTER TABLE tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
    ALTER TABLE tokens ADD COLUMN expires_at TEXT;
    CREATE INDEX detections_created ON detections (created_at);
    CREATE INDEX alerts_wall_time ON alerts (wall_time);
    """,
    # 5: transcripts of alerted turns (one per alert: done, dropped or failed), their words indexed with FTS5 (kept in
    # step by triggers, so a cascade from a forgotten voice's alerts empties it too), the language of each detected
    # turn, and webhook deliveries of either event of an alert: the delivery table is rebuilt with an ``event``
    # column in its key, rows kept in their order.
    """
    ALTER TABLE detections ADD COLUMN language TEXT NOT NULL DEFAULT '';
    ALTER TABLE detections ADD COLUMN language_probability REAL NOT NULL DEFAULT 0;
    CREATE INDEX detections_turn ON detections (source, speaker, start_s);
    CREATE TABLE transcripts (
        alert_id TEXT PRIMARY KEY REFERENCES alerts(alert_id) ON DELETE CASCADE,
        speaker TEXT NOT NULL, status TEXT NOT NULL, language TEXT NOT NULL, text TEXT NOT NULL, payload TEXT NOT NULL,
        created_at TEXT NOT NULL);
    CREATE INDEX transcripts_speaker ON transcripts (speaker);
    CREATE INDEX transcripts_language ON transcripts (language);
    CREATE VIRTUAL TABLE transcript_words USING fts5(text, content='transcripts', content_rowid='rowid');
    CREATE TRIGGER transcripts_added AFTER INSERT ON transcripts BEGIN
        INSERT INTO transcript_words (rowid, text) VALUES (new.rowid, new.text); END;
    CREATE TRIGGER transcripts_removed AFTER DELETE ON transcripts BEGIN
        INSERT INTO transcript_words (transcript_words, rowid, text) VALUES ('delete', old.rowid, old.text); END;
    CREATE TABLE deliveries_by_event (
        alert_id TEXT NOT NULL REFERENCES alerts(alert_id) ON DELETE CASCADE,
        event TEXT NOT NULL DEFAULT 'alert',
        webhook_id INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
        status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL DEFAULT 0,
        delivered_at TEXT, last_error TEXT, PRIMARY KEY (webhook_id, alert_id, event));
    INSERT INTO deliveries_by_event (alert_id, webhook_id, status, attempts, next_attempt_at, delivered_at, last_error)
        SELECT alert_id, webhook_id, status, attempts, next_attempt_at, delivered_at, last_error FROM deliveries ORDER BY rowid;
    DROP TABLE deliveries;
    ALTER TABLE deliveries_by_event RENAME TO deliveries;
    CREATE INDEX deliveries_pending ON deliveries (webhook_id, status);
    CREATE INDEX deliveries_alert ON deliveries (alert_id);
    """,
    # 6: the streams a service watches, so that they resume after a restart; a recording's resume point (a quiet
    # moment with every earlier alert decided) and when each voice was last heard there (JSON).
    """
    CREATE TABLE watched_streams (
        source TEXT PRIMARY KEY, stream_id TEXT NOT NULL, kind TEXT NOT NULL, speakers TEXT, realtime INTEGER NOT NULL,
        reconnects INTEGER NOT NULL, position_s REAL NOT NULL DEFAULT 0, last_heard TEXT NOT NULL DEFAULT '{}',
        added_at TEXT NOT NULL, added_by TEXT NOT NULL);
    """,
]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class StoreCore:
    """One SQLite database: every write is a transaction on the one writer connection (under a lock); reads run on
    read-only connections from a pool, so they never wait for a write (WAL). The parts of the store build on this."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._opened: list[sqlite3.Connection] = []
        self._in_memory = str(path) == ":memory:"
        self._closed = False
        try:
            if not self._in_memory:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA secure_delete=ON")
            self._migrate()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{self.path}: cannot open the voxwatch database ({exc})") from exc

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for reader in self._opened:
                reader.close()
            self._opened.clear()
            self._db.close()

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(f"{self.path}: made by a newer voxwatch (schema {version}); upgrade voxwatch")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            self._db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")

    def _open(self) -> None:
        if self._closed:
            raise StoreError(f"{self.path}: the store has been closed (the engine was closed); open a new one")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._open()
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"{self.path}: database error ({exc})") from exc
                raise

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:  # type: ignore[type-arg]
        """Run one read on a read-only connection (an in-memory database has only its writer)."""
        self._open()
        if self._in_memory:
            with self._lock:
                return self._read(self._db, sql, args)
        reader = self._reader()
        try:
            return self._read(reader, sql, args)
        finally:
            self._readers.put(reader)

    def _read(self, db: sqlite3.Connection, sql: str, args: tuple) -> list[tuple]:  # type: ignore[type-arg]
        try:
            return db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: database error ({exc})") from exc

    def _reader(self) -> sqlite3.Connection:
        try:
            return self._readers.get_nowait()
        except queue.Empty:
            pass
        try:
            # autocommit: a reader never holds a transaction open, so each read sees the latest commit
            reader = sqlite3.connect(
                self.path.resolve().as_uri() + "?mode=ro", uri=True, check_same_thread=False, isolation_level=None, timeout=30
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the voxwatch database for reading ({exc})") from exc
        with self._lock:
            self._opened.append(reader)
        return reader

    # -- the audit log ----------------------------------------------------------------------------------------------

    def audit(self, actor: str, action: str, target: str, detail: str = "") -> None:
        with self._tx() as db:
            self._audit(db, actor, action, target, detail)

    @staticmethod
    def _audit(db: sqlite3.Connection, actor: str, action: str, target: str, detail: str) -> None:
        db.execute(
            "INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)", (now(), actor, action, target, detail)
        )

    def audit_log(
        self,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, str]]:
        """Audit entries, oldest first: those by ``actor``, of ``action``, naming ``target`` (alone or in a list of
        voices), at or after ``since`` (an ISO date or time, UTC); with ``limit``, only the newest that many."""
        where, args = [], []  # type: ignore[var-annotated]
        for column, value in (("actor", actor), ("action", action)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if target is not None:
            where.append("(target = ? OR ',' || target || ',' LIKE ?)")
            args += [target, f"%,{target},%"]
        if since is not None:
            where.append("at >= ?")
            args.append(since)
        sql = "SELECT at, actor, action, target, detail FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._query(
            f"{sql} ORDER BY id DESC" + (" LIMIT ?" if limit is not None else ""), (*args, *([limit] if limit else []))
        )
        return [dict(zip(("at", "actor", "action", "target", "detail"), r)) for r in reversed(rows)]

    @staticmethod
    def _forget_in_audit(db: sqlite3.Connection, name: str, alias: str) -> None:
        """Within a forget transaction: replace a voice's name by ``alias`` everywhere in the audit log."""
        db.execute("UPDATE audit SET target = ?, detail = '' WHERE target = ?", (alias, name))
        listed = db.execute("SELECT id, target FROM audit WHERE ',' || target || ',' LIKE ?", (f"%,{name},%",)).fetchall()
        for row_id, target in listed:  # actions on several voices (watch, search) name them in a comma list
            db.execute(
                "UPDATE audit SET target = ? WHERE id = ?",
                (",".join(alias if t == name else t for t in target.split(",")), row_id),
            )
