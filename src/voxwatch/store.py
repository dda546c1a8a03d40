"""The SQLite store (WAL): voices, enrollments with provenance, voiceprints, the archive index, detections, the
alert outbox and the audit log. Schema migrations live here and nowhere else."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .errors import StoreError, UnknownSpeakerError, UsageError
from .records import Alert, Detection, EnrollmentInfo, Segment, SpeakerInfo
from .scoring import voice_summaries

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
]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


_RECORDINGS = "SELECT path, sha256, duration_s, speech_s, spans, vectors, bandwidth_hz FROM recordings"  # as Store._recording reads them


@dataclass(frozen=True)
class IndexedRecording:
    """One archive recording's index entry: its speaker-homogeneous segments and their embeddings."""

    path: str
    sha256: str
    duration_s: float
    speech_s: float
    spans: np.ndarray  # (n, 4): start_s, end_s, speech_s, consistency
    vectors: np.ndarray  # (n, d) float16, unit norm
    bandwidth_hz: float = 0.0  # the channel's upper band edge (median over the segments; 0: unknown)

    def segments(self) -> list[Segment]:
        return [
            Segment(self.path, float(s[0]), float(s[1]), float(s[2]), float(s[3]), tuple(float(x) for x in v), self.bandwidth_hz)
            for s, v in zip(self.spans, self.vectors.astype(np.float32))
        ]


class Store:
    """One SQLite database. Every public method is a transaction; the connection is shared under a lock."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA secure_delete=ON")
            self._migrate()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{self.path}: cannot open the voxwatch database ({exc})") from exc
        self._lock = threading.RLock()

    def close(self) -> None:
        self._db.close()

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(f"{self.path}: made by a newer voxwatch (schema {version}); upgrade voxwatch")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            self._db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
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
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: database error ({exc})") from exc

    # -- voices ---------------------------------------------------------------------------------------------------

    def add_enrollments(self, name: str, items: list[tuple[EnrollmentInfo, dict[str, np.ndarray]]], actor: str) -> None:
        """Store the enrollments of one voice (creating it) atomically: each with one embedding per simulated condition."""
        with self._tx() as db:
            row = db.execute("SELECT id FROM speakers WHERE name = ?", (name,)).fetchone()
            speaker_id = row[0] if row else db.execute("INSERT INTO speakers (name, created_at) VALUES (?, ?)", (name, now())).lastrowid
            for info, vectors in items:
                cur = db.execute(
                    "INSERT INTO enrollments (speaker_id, file, sha256, speech_s, snr_db, consistency, note, created_at, model)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (speaker_id, info.file, info.sha256, info.speech_s, info.snr_db, info.consistency, info.note, info.created_at, info.model),
                )
                db.executemany(
                    "INSERT INTO embeddings (enrollment_id, model, condition, vector) VALUES (?, ?, ?, ?)",
                    [(cur.lastrowid, info.model, condition, np.asarray(v, np.float32).tobytes()) for condition, v in vectors.items()],
                )
                self._audit(db, actor, "enroll", name, f"{info.file} sha256={info.sha256} speech_s={info.speech_s} note={info.note!r}")

    def enrolled_as(self, sha256: str) -> str | None:
        row = self._query("SELECT s.name FROM enrollments e JOIN speakers s ON s.id = e.speaker_id WHERE e.sha256 = ?", (sha256,))
        return row[0][0] if row else None

    def speakers(self) -> list[SpeakerInfo]:
        rows = self._query(
            "SELECT s.name, COUNT(e.id), COALESCE(SUM(e.speech_s), 0), s.created_at, GROUP_CONCAT(e.note, char(31))"
            " FROM speakers s LEFT JOIN enrollments e ON e.speaker_id = s.id GROUP BY s.id ORDER BY s.name"
        )
        return [SpeakerInfo(n, c, round(s, 2), t, tuple(x for x in (notes or "").split("\x1f") if x)) for n, c, s, t, notes in rows]

    def enrollments(self, name: str) -> list[EnrollmentInfo]:
        self._require(name)
        rows = self._query(
            "SELECT s.name, e.file, e.sha256, e.speech_s, e.snr_db, e.consistency, e.note, e.created_at, e.model"
            " FROM enrollments e JOIN speakers s ON s.id = e.speaker_id WHERE s.name = ? ORDER BY e.id",
            (name,),
        )
        return [EnrollmentInfo(*r) for r in rows]

    def _require(self, name: str) -> None:
        if not self._query("SELECT 1 FROM speakers WHERE name = ?", (name,)):
            raise UnknownSpeakerError(f"no enrolled voice named {name!r}; see 'voxwatch speakers'")

    def voiceprints(self, model: str, names: list[str] | None = None) -> tuple[list[str], np.ndarray]:
        """Voiceprints for ``model``: per voice and enrollment condition, the speech-weighted mean embedding (unit
        norm). Returns the voice of each row and the matrix, rows grouped by voice in name order."""
        for name in names or []:
            self._require(name)
        rows = self._query(
            "SELECT s.name, m.condition, e.speech_s, m.vector FROM embeddings m JOIN enrollments e ON e.id = m.enrollment_id"
            " JOIN speakers s ON s.id = e.speaker_id WHERE m.model = ? ORDER BY s.name, m.condition, e.id",
            (model,),
        )
        sums: dict[tuple[str, str], np.ndarray] = {}
        for name, condition, speech_s, blob in rows:
            if names is None or name in names:
                sums[(name, condition)] = sums.get((name, condition), 0) + speech_s * np.frombuffer(blob, np.float32)
        missing = sorted(set(names or []) - {n for n, _ in sums})
        if missing:
            raise UsageError(f"no voiceprint made with model {model!r} for {', '.join(missing)}; enroll again with this model")
        keys = sorted(sums)
        if not keys:
            return [], np.zeros((0, 0), np.float32)
        matrix = np.stack([sums[k] for k in keys]).astype(np.float32)
        return [n for n, _ in keys], matrix / np.linalg.norm(matrix, axis=1, keepdims=True)

    def forget(self, name: str, actor: str) -> dict[str, int]:
        """Delete every trace of a voice: enrollments, voiceprints, detections, alerts with their audio snippets,
        acknowledgements and webhook deliveries, search hits, and its name in the audit log, search jobs and webhook filters."""
        self._require(name)
        with self._tx() as db:
            (speaker_id,) = db.execute("SELECT id FROM speakers WHERE name = ?", (name,)).fetchone()
            counts = {
                "enrollments": db.execute("SELECT COUNT(*) FROM enrollments WHERE speaker_id = ?", (speaker_id,)).fetchone()[0],
                "detections": db.execute("DELETE FROM detections WHERE speaker = ?", (name,)).rowcount,
                "snippets": db.execute("DELETE FROM snippets WHERE speaker = ?", (name,)).rowcount,
                "search_hits": db.execute("DELETE FROM search_hits WHERE speaker = ?", (name,)).rowcount,
                "alerts": db.execute("DELETE FROM alerts WHERE speaker = ?", (name,)).rowcount,  # cascades: acks, deliveries
            }
            self._forget_in_service_tables(db, name)
            db.execute("DELETE FROM speakers WHERE id = ?", (speaker_id,))
            alias = f"forgotten-voice-{speaker_id}"
            db.execute("UPDATE audit SET target = ?, detail = '' WHERE target = ?", (alias, name))
            listed = db.execute("SELECT id, target FROM audit WHERE ',' || target || ',' LIKE ?", (f"%,{name},%",)).fetchall()
            for row_id, target in listed:  # actions on several voices (watch, search) name them in a comma list
                db.execute("UPDATE audit SET target = ? WHERE id = ?", (",".join(alias if t == name else t for t in target.split(",")), row_id))
            self._audit(db, actor, "forget", alias, json.dumps(counts))
        return counts

    # -- archive index --------------------------------------------------------------------------------------------

    def indexed(self, sha256: str, model: str) -> IndexedRecording | None:
        rows = self._query(_RECORDINGS + " WHERE sha256 = ? AND model = ?", (sha256, model))
        return self._recording(rows[0]) if rows else None

    def index_summaries(self, model: str, dimension: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every indexed recording's voice summaries: recording ids, the summaries (m, d) and the row of ``ids``
        each summary belongs to."""
        rows = self._query("SELECT recording_id, centroids FROM voice_summaries WHERE model = ?", (model,))
        ids = np.array([r[0] for r in rows], np.int64)
        parts = [np.frombuffer(r[1], np.float16) for r in rows]
        if not parts:
            return ids, np.zeros((0, dimension), np.float32), np.zeros(0, np.intp)
        centroids = np.concatenate(parts).reshape(-1, dimension).astype(np.float32)
        owners = np.repeat(np.arange(len(rows)), [len(p) // dimension for p in parts])
        return ids, centroids, owners

    def recordings_by_id(self, ids: list[int]) -> list[IndexedRecording]:
        found = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found += self._query(_RECORDINGS + f" WHERE id IN ({marks})", tuple(chunk))
        return sorted((self._recording(r) for r in found), key=lambda r: r.path)

    def recordings(self, model: str) -> list[IndexedRecording]:
        rows = self._query(_RECORDINGS + " WHERE model = ? ORDER BY path", (model,))
        return [self._recording(r) for r in rows]

    @staticmethod
    def _recording(row: tuple) -> IndexedRecording:  # type: ignore[type-arg]
        path, sha, duration, speech, spans, vectors, bandwidth = row
        s = np.frombuffer(spans, np.float32).reshape(-1, 4)
        return IndexedRecording(path, sha, duration, speech, s, np.frombuffer(vectors, np.float16).reshape(len(s), -1), bandwidth)

    def add_recording(self, path: str, sha256: str, model: str, duration_s: float, segments: list[Segment]) -> IndexedRecording:
        """Index one recording: its segments (float16 embeddings) and a few voice summaries for fast whole-index search."""
        spans = np.array([[s.start_s, s.end_s, s.speech_s, s.consistency] for s in segments], np.float32).reshape(-1, 4)
        vectors = np.array([s.embedding for s in segments], np.float16)
        centroids = voice_summaries(vectors.astype(np.float32).reshape(len(spans), -1), spans[:, 2]).astype(np.float16)
        edges = [s.bandwidth_hz for s in segments if s.bandwidth_hz > 0]
        bandwidth = float(np.median(edges)) if edges else 0.0
        with self._tx() as db:
            db.execute("DELETE FROM recordings WHERE sha256 = ? AND model = ?", (sha256, model))
            cur = db.execute(
                "INSERT INTO recordings (sha256, model, path, duration_s, speech_s, indexed_at, spans, vectors, bandwidth_hz)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sha256, model, path, duration_s, float(spans[:, 2].sum()), now(), spans.tobytes(), vectors.tobytes(), bandwidth),
            )
            db.execute("INSERT INTO voice_summaries (recording_id, model, centroids) VALUES (?, ?, ?)", (cur.lastrowid, model, centroids.tobytes()))
        return IndexedRecording(path, sha256, duration_s, float(spans[:, 2].sum()), spans, vectors.reshape(len(spans), -1), bandwidth)

    # -- detections, alerts, audit --------------------------------------------------------------------------------

    def add_detections(self, detections: list[Detection]) -> None:
        if not detections:
            return
        with self._tx() as db:
            db.executemany(
                "INSERT INTO detections (source, speaker, start_s, end_s, score, llr, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(d.source, d.speaker, d.start_s, d.end_s, d.score, d.llr, now()) for d in detections],
            )

    def detections(self, speaker: str | None = None) -> list[Detection]:
        sql = "SELECT source, speaker, start_s, end_s, score, llr FROM detections"
        rows = self._query(sql + " WHERE speaker = ? ORDER BY id" if speaker else sql + " ORDER BY id", (speaker,) if speaker else ())
        return [Detection(*r) for r in rows]

    def add_alert(self, alert: Alert) -> bool:
        """Commit an alert to the outbox; sinks deliver it afterwards. False (and nothing stored) when its voice has
        been forgotten meanwhile."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM speakers WHERE name = ?", (alert.speaker,)).fetchone() is None:
                return False
            db.execute(
                "INSERT INTO alerts (alert_id, source, speaker, wall_time, payload) VALUES (?, ?, ?, ?, ?)",
                (alert.alert_id, alert.source, alert.speaker, alert.wall_time, json.dumps(alert.to_json())),
            )
        return True

    def mark_delivered(self, alert_id: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE alerts SET delivered_at = ? WHERE alert_id = ? AND delivered_at IS NULL", (now(), alert_id))

    def alerts(self, speaker: str | None = None, undelivered: bool = False) -> list[Alert]:
        clauses, args = [], []
        if speaker:
            clauses.append("speaker = ?")
            args.append(speaker)
        if undelivered:
            clauses.append("delivered_at IS NULL")
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        return [Alert.from_json(json.loads(p)) for (p,) in self._query(f"SELECT payload FROM alerts{where} ORDER BY rowid", tuple(args))]

    def audit(self, actor: str, action: str, target: str, detail: str = "") -> None:
        with self._tx() as db:
            self._audit(db, actor, action, target, detail)

    @staticmethod
    def _audit(db: sqlite3.Connection, actor: str, action: str, target: str, detail: str) -> None:
        db.execute("INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)", (now(), actor, action, target, detail))

    def audit_log(self) -> list[dict[str, str]]:
        rows = self._query("SELECT at, actor, action, target, detail FROM audit ORDER BY id")
        return [dict(zip(("at", "actor", "action", "target", "detail"), r)) for r in rows]

    # -- the service: tokens, webhooks and deliveries, acknowledgements, snippets, search jobs --------------------

    def _forget_in_service_tables(self, db: sqlite3.Connection, name: str) -> None:
        """Within :meth:`forget`'s transaction: drop search jobs that asked for the voice by name, and take the
        name out of webhook speaker filters (a filter left empty matches nothing, never everything)."""
        db.execute("DELETE FROM search_jobs WHERE speakers IS NOT NULL AND EXISTS (SELECT 1 FROM json_each(search_jobs.speakers) WHERE value = ?)", (name,))
        db.execute(
            "UPDATE webhooks SET speakers = (SELECT json_group_array(value) FROM json_each(webhooks.speakers) WHERE value != ?)"
            " WHERE speakers IS NOT NULL AND EXISTS (SELECT 1 FROM json_each(webhooks.speakers) WHERE value = ?)",
            (name, name),
        )

    def add_token(self, name: str, sha256: str, actor: str) -> None:
        """Keep an API token's hash (never the token) under a unique name."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM tokens WHERE name = ?", (name,)).fetchone():
                raise UsageError(f"a token named {name!r} exists already; pick another name")
            db.execute("INSERT INTO tokens (name, sha256, created_at, created_by) VALUES (?, ?, ?, ?)", (name, sha256, now(), actor))
            self._audit(db, actor, "token-create", name, "")

    def token_named(self, sha256: str) -> str | None:
        """The name of the token whose hash is ``sha256``."""
        rows = self._query("SELECT name FROM tokens WHERE sha256 = ?", (sha256,))
        return rows[0][0] if rows else None

    def tokens(self) -> list[dict[str, str]]:
        rows = self._query("SELECT name, created_at, created_by FROM tokens ORDER BY id")
        return [dict(zip(("name", "created_at", "created_by"), r)) for r in rows]

    def add_webhook(self, url: str, secret: str | None, speakers: list[str] | None, actor: str) -> int:
        """Register a webhook; it receives the alerts committed from now on (earlier ones are marked skipped)."""
        with self._tx() as db:
            webhook_id = db.execute(
                "INSERT INTO webhooks (url, secret, speakers, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
                (url, secret, None if speakers is None else json.dumps(speakers), now(), actor),
            ).lastrowid
            db.execute("INSERT INTO deliveries (alert_id, webhook_id, status) SELECT alert_id, ?, 'skipped' FROM alerts", (webhook_id,))
            self._audit(db, actor, "webhook-add", str(webhook_id), url)
        return int(webhook_id)  # type: ignore[arg-type]

    def webhooks(self) -> list[tuple[int, str, str | None, list[str] | None, str]]:
        """``(id, url, secret, speakers, created_at)`` of every webhook, oldest first."""
        rows = self._query("SELECT id, url, secret, speakers, created_at FROM webhooks ORDER BY id")
        return [(i, u, s, None if sp is None else json.loads(sp), t) for i, u, s, sp, t in rows]

    def remove_webhook(self, webhook_id: int, actor: str) -> None:
        with self._tx() as db:
            if not db.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,)).rowcount:
                raise UsageError(f"no webhook with id {webhook_id}")
            self._audit(db, actor, "webhook-remove", str(webhook_id), "")

    def queue_deliveries(self, webhook_id: int) -> int:
        """Give every alert without a delivery row for this webhook one: pending, or filtered out by its speakers."""
        with self._tx() as db:
            return db.execute(
                "INSERT INTO deliveries (alert_id, webhook_id, status)"
                " SELECT a.alert_id, w.id, CASE WHEN w.speakers IS NULL OR a.speaker IN (SELECT value FROM json_each(w.speakers))"
                " THEN 'pending' ELSE 'filtered' END FROM alerts a JOIN webhooks w ON w.id = ?"
                " WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.webhook_id = w.id AND d.alert_id = a.alert_id)"
                " ORDER BY a.rowid",
                (webhook_id,),
            ).rowcount

    def next_delivery(self, webhook_id: int) -> tuple[str, str, int, float] | None:
        """The oldest pending delivery (in alert commit order): ``(alert_id, payload, attempts, next_attempt_at)``."""
        rows = self._query(
            "SELECT d.alert_id, a.payload, d.attempts, d.next_attempt_at FROM deliveries d JOIN alerts a ON a.alert_id = d.alert_id"
            " WHERE d.webhook_id = ? AND d.status = 'pending' ORDER BY a.rowid LIMIT 1",
            (webhook_id,),
        )
        return rows[0] if rows else None

    def delivery_done(self, webhook_id: int, alert_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = ?, last_error = NULL"
                " WHERE webhook_id = ? AND alert_id = ?",
                (now(), webhook_id, alert_id),
            )

    def delivery_failed(self, webhook_id: int, alert_id: str, error: str, next_attempt_at: float) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE webhook_id = ? AND alert_id = ?",
                (error[:500], next_attempt_at, webhook_id, alert_id),
            )

    def delivery_counts(self, webhook_id: int) -> dict[str, object]:
        """Per-status counts of one webhook's deliveries, and the last error of the pending head."""
        counts: dict[str, object] = {s: n for s, n in self._query("SELECT status, COUNT(*) FROM deliveries WHERE webhook_id = ? GROUP BY status", (webhook_id,))}
        head = self._query(
            "SELECT d.attempts, d.last_error, d.next_attempt_at FROM deliveries d JOIN alerts a ON a.alert_id = d.alert_id"
            " WHERE d.webhook_id = ? AND d.status = 'pending' ORDER BY a.rowid LIMIT 1",
            (webhook_id,),
        )
        if head:
            counts["head_attempts"], counts["last_error"], counts["next_attempt_at"] = head[0]
        return counts

    def acknowledge(self, alert_id: str, actor: str) -> tuple[str, str]:
        """Acknowledge an alert once; returns ``(acknowledged_at, actor)`` of the first acknowledgement."""
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone():
                raise UsageError(f"no alert with id {alert_id!r}")
            row = db.execute("SELECT acknowledged_at, actor FROM acknowledgements WHERE alert_id = ?", (alert_id,)).fetchone()
            if row:
                return row[0], row[1]
            at = now()
            db.execute("INSERT INTO acknowledgements (alert_id, acknowledged_at, actor) VALUES (?, ?, ?)", (alert_id, at, actor))
            self._audit(db, actor, "acknowledge", alert_id, "")
        return at, actor

    def add_snippet(self, alert_id: str, speaker: str, media_type: str, start_s: float, end_s: float, audio: bytes) -> bool:
        """Keep (or replace with a longer one) the audio of an alert's turn; False when the alert no longer exists."""
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone():
                return False
            db.execute(
                "INSERT OR REPLACE INTO snippets (alert_id, speaker, media_type, start_s, end_s, audio) VALUES (?, ?, ?, ?, ?, ?)",
                (alert_id, speaker, media_type, start_s, end_s, audio),
            )
        return True

    def snippet(self, alert_id: str) -> tuple[str, float, float, bytes] | None:
        """``(media_type, start_s, end_s, audio)`` of an alert's snippet."""
        rows = self._query("SELECT media_type, start_s, end_s, audio FROM snippets WHERE alert_id = ?", (alert_id,))
        return rows[0] if rows else None

    def alert_records(self, speaker: str | None = None, source: str | None = None, since: str | None = None, until: str | None = None,
                      alert_id: str | None = None, limit: int = 500) -> list[dict[str, object]]:
        """Alerts newest first with their acknowledgement and snippet span; ``since``/``until`` compare ISO wall times."""
        clauses, args = [], []
        for column, value in (("a.speaker = ?", speaker), ("a.source = ?", source), ("a.wall_time >= ?", since), ("a.wall_time <= ?", until), ("a.alert_id = ?", alert_id)):
            if value is not None:
                clauses.append(column)
                args.append(value)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        rows = self._query(
            "SELECT a.payload, k.acknowledged_at, k.actor, s.start_s, s.end_s FROM alerts a"
            " LEFT JOIN acknowledgements k ON k.alert_id = a.alert_id LEFT JOIN snippets s ON s.alert_id = a.alert_id"
            f"{where} ORDER BY a.rowid DESC LIMIT ?",
            (*args, limit),
        )
        return [
            {**json.loads(p), "acknowledged_at": at, "acknowledged_by": by, "audio": None if s0 is None else {"start_s": s0, "end_s": s1}}
            for p, at, by, s0, s1 in rows
        ]

    def add_search_job(self, job_id: str, actor: str, paths: list[str], speakers: list[str] | None, total: int) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO search_jobs (id, actor, paths, speakers, status, total, created_at) VALUES (?, ?, ?, ?, 'running', ?, ?)",
                (job_id, actor, json.dumps(paths), None if speakers is None else json.dumps(speakers), total, now()),
            )

    def search_progress(self, job_id: str, done: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE search_jobs SET done = ? WHERE id = ?", (done, job_id))

    def finish_search_job(self, job_id: str, status: str, recordings: list[dict[str, object]], detections: list[Detection], errors: list[str]) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE search_jobs SET status = ?, done = total, recordings = ?, errors = ?, finished_at = ? WHERE id = ?",
                (status, json.dumps(recordings), json.dumps(errors), now(), job_id),
            )
            db.executemany(
                "INSERT INTO search_hits (job_id, source, speaker, start_s, end_s, score, llr) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(job_id, d.source, d.speaker, d.start_s, d.end_s, d.score, d.llr) for d in detections],
            )

    def interrupt_search_jobs(self) -> int:
        """Mark jobs left running by a previous process as failed."""
        with self._tx() as db:
            return db.execute(
                "UPDATE search_jobs SET status = 'failed', errors = ?, finished_at = ? WHERE status = 'running'",
                (json.dumps(["interrupted: the service stopped before the search finished"]), now()),
            ).rowcount

    def search_job(self, job_id: str) -> dict[str, object] | None:
        rows = self._query("SELECT id, actor, paths, speakers, status, done, total, recordings, errors, created_at, finished_at FROM search_jobs WHERE id = ?", (job_id,))
        if not rows:
            return None
        i, actor, paths, speakers, status, done, total, recordings, errors, created, finished = rows[0]
        hits = self._query("SELECT source, speaker, start_s, end_s, score, llr FROM search_hits WHERE job_id = ? ORDER BY source, start_s", (i,))
        return {
            "id": i, "actor": actor, "paths": json.loads(paths), "speakers": None if speakers is None else json.loads(speakers), "status": status,
            "done": done, "total": total, "recordings": json.loads(recordings) if recordings else [], "errors": json.loads(errors) if errors else [],
            "detections": [Detection(*h).to_json() for h in hits], "created_at": created, "finished_at": finished,
        }

    def search_jobs(self, limit: int = 50) -> list[dict[str, object]]:
        rows = self._query("SELECT id, actor, status, done, total, created_at, finished_at FROM search_jobs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,))
        return [dict(zip(("id", "actor", "status", "done", "total", "created_at", "finished_at"), r)) for r in rows]
