"""The store's core: the database (a SQLite file or a PostgreSQL server), its schema migrations, one writer
connection and read-only readers, and the audit log.

Migrations: :data:`MIGRATIONS` holds every schema step in order; a database keeps how many it has had (SQLite in
``PRAGMA user_version``, PostgreSQL in its ``schema_version`` table) and :meth:`StoreCore._migrate` applies the
rest, each in one write transaction, on either database. To add one, append it, written once for both:

* a plain string of SQLite DDL runs on both. PostgreSQL gets it with ``INTEGER PRIMARY KEY`` as an identity
  column, ``INTEGER`` as ``BIGINT``, ``REAL`` as ``DOUBLE PRECISION`` and ``BLOB`` as ``BYTEA``, and each new
  table without an integer key gets SQLite's implicit ``rowid`` (insertion order: ``ORDER BY rowid`` works on both).
  Keep to what both accept: ``CREATE TABLE``/``INDEX``, ``ALTER TABLE ... ADD COLUMN``/``RENAME TO``, ``INSERT ...
  SELECT``, ``DROP TABLE`` (triggers and virtual tables go in a dialect's part, below).
* :class:`~.dialect.Migration` ``(sql, sqlite=..., postgresql=...)`` when a part differs (migration 5: FTS5 on
  SQLite, a ``tsvector`` column with a GIN index on PostgreSQL).

Statements the parts run are plain portable SQL with ``?`` placeholders; ``INSERT ... ON CONFLICT (key) DO
NOTHING`` / ``DO UPDATE`` and ``RETURNING`` work on both, ``INSERT OR REPLACE`` and ``lastrowid`` do not.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ..errors import StoreError
from .dialect import Connection, Migration, open_dialect

MIGRATIONS: list[str | Migration] = [
    Migration(
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
        # PostgreSQL: the index's float16 vectors do not compress; keep a recording's segments uncompressed out of
        # line and its few voice summaries in the row, so that a search reads them without trying to decompress
        postgresql="""
    ALTER TABLE recordings ALTER COLUMN spans SET STORAGE EXTERNAL;
    ALTER TABLE recordings ALTER COLUMN vectors SET STORAGE EXTERNAL;
    ALTER TABLE voice_summaries ALTER COLUMN centroids SET STORAGE MAIN;
    """,
    ),
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
    Migration(
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
        sqlite="""
    CREATE VIRTUAL TABLE transcript_words USING fts5(text, content='transcripts', content_rowid='rowid');
    CREATE TRIGGER transcripts_added AFTER INSERT ON transcripts BEGIN
        INSERT INTO transcript_words (rowid, text) VALUES (new.rowid, new.text); END;
    CREATE TRIGGER transcripts_removed AFTER DELETE ON transcripts BEGIN
        INSERT INTO transcript_words (transcript_words, rowid, text) VALUES ('delete', old.rowid, old.text); END;
    """,
        postgresql="""
    ALTER TABLE transcripts ADD COLUMN words tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED;
    CREATE INDEX transcript_words ON transcripts USING GIN (words);
    """,
    ),
    # 6: the streams a service watches, so that they resume after a restart; a recording's resume point (a quiet
    # moment with every earlier alert decided) and when each voice was last heard there (JSON).
    """
    CREATE TABLE watched_streams (
        source TEXT PRIMARY KEY, stream_id TEXT NOT NULL, kind TEXT NOT NULL, speakers TEXT, realtime INTEGER NOT NULL,
        reconnects INTEGER NOT NULL, position_s REAL NOT NULL DEFAULT 0, last_heard TEXT NOT NULL DEFAULT '{}',
        added_at TEXT NOT NULL, added_by TEXT NOT NULL);
    """,
    # 7: a watched live stream's URL with its secrets, to reopen it; ``source`` names it without them
    "ALTER TABLE watched_streams ADD COLUMN url TEXT;",
]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class StoreCore:
    """One database (a SQLite file, or a PostgreSQL server: see :mod:`.dialect`): every write is a transaction on
    the one writer connection (under a lock); reads run on read-only connections from a pool, so they never wait
    for a write. The parts of the store build on this."""

    def __init__(self, db: str | Path):
        self._dialect = open_dialect(db)
        self.where = self._dialect.where  # for messages: the file, or the server's URL without its password
        self._lock = threading.RLock()
        self._readers: queue.SimpleQueue[Connection] = queue.SimpleQueue()
        self._opened: list[Connection] = []
        self._closed = False
        try:
            self._db: Connection = self._dialect.connect()
            self._migrate()
        except (*self._dialect.errors, OSError) as exc:
            raise StoreError(f"{self.where}: cannot open the voxwatch database ({exc})") from exc

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for reader in self._opened:
                reader.close()
            self._opened.clear()
            self._db.close()

    def _migrate(self) -> None:
        """Apply the pending migrations, each in its own write transaction (on PostgreSQL other processes may be
        starting at the same time: the write lock lets one of them migrate, the others then find nothing to do)."""
        while True:
            with self._tx() as db:
                version = self._dialect.schema_version(db)
                if version > len(MIGRATIONS):
                    raise StoreError(f"{self.where}: made by a newer voxwatch (schema {version}); upgrade voxwatch")
                if version == len(MIGRATIONS):
                    return
                for statement in self._dialect.migration(MIGRATIONS[version]):
                    db.execute(statement)
                self._dialect.set_schema_version(db, version + 1)

    def _open(self) -> None:
        if self._closed:
            raise StoreError(f"{self.where}: the store has been closed (the engine was closed); open a new one")

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self._lock:
            self._open()
            try:
                self._begin()
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(exc, self._dialect.errors):
                    raise StoreError(f"{self.where}: database error ({exc})") from exc
                raise

    def _begin(self) -> None:
        try:
            self._dialect.begin(self._db)
        except self._dialect.errors:
            if not getattr(self._db, "broken", False):
                raise
            self._db = self._dialect.connect()  # the server restarted or dropped the connection; nothing was written
            self._dialect.begin(self._db)

    def _query(self, sql: str, args: tuple = (), bulk: bool = False) -> list[tuple]:  # type: ignore[type-arg]
        """Run one read on a read-only connection (an in-memory database has only its writer); ``bulk`` for reads
        of many large values (the archive index's vectors)."""
        self._open()
        if not self._dialect.readers:
            with self._lock:
                return self._read(self._db, sql, args, bulk)
        reader = self._reader()
        try:
            return self._read(reader, sql, args, bulk)
        except StoreError:
            if not getattr(reader, "broken", False):
                raise
            reader = self._reader(fresh=True)  # the server restarted or dropped the connection: read once more
            return self._read(reader, sql, args, bulk)
        finally:
            self._readers.put(reader)

    def _read(self, db: Connection, sql: str, args: tuple, bulk: bool = False) -> list[tuple]:  # type: ignore[type-arg]
        try:
            return self._dialect.fetch(db, sql, args, bulk)  # type: ignore[arg-type]
        except self._dialect.errors as exc:
            raise StoreError(f"{self.where}: database error ({exc})") from exc

    def _reader(self, fresh: bool = False) -> Connection:
        """A read-only connection from the pool; ``fresh``: a new one, the broken ones in the pool closed."""
        try:
            while True:
                reader = self._readers.get_nowait()
                if not fresh and not getattr(reader, "broken", False):
                    return reader
                reader.close()
        except queue.Empty:
            pass
        try:
            reader = self._dialect.connect(read_only=True)
        except self._dialect.errors as exc:
            raise StoreError(f"{self.where}: cannot open the voxwatch database for reading ({exc})") from exc
        with self._lock:
            self._opened.append(reader)
        return reader

    # -- the audit log ----------------------------------------------------------------------------------------------

    def audit(self, actor: str, action: str, target: str, detail: str = "") -> None:
        with self._tx() as db:
            self._audit(db, actor, action, target, detail)

    @staticmethod
    def _audit(db: Connection, actor: str, action: str, target: str, detail: str) -> None:
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
    def _forget_in_audit(db: Connection, name: str, alias: str) -> None:
        """Within a forget transaction: replace a voice's name by ``alias`` everywhere in the audit log."""
        db.execute("UPDATE audit SET target = ?, detail = '' WHERE target = ?", (alias, name))
        listed = db.execute("SELECT id, target FROM audit WHERE ',' || target || ',' LIKE ?", (f"%,{name},%",)).fetchall()
        for row_id, target in listed:  # actions on several voices (watch, search) name them in a comma list
            db.execute(
                "UPDATE audit SET target = ? WHERE id = ?",
                (",".join(alias if t == name else t for t in target.split(",")), row_id),
            )
