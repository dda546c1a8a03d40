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
        model TEXT NOT NULL, vector BLOB NOT NULL);
    CREATE TABLE recordings (
        id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL, model TEXT NOT NULL, path TEXT NOT NULL,
        duration_s REAL NOT NULL, speech_s REAL NOT NULL, indexed_at TEXT NOT NULL,
        spans BLOB NOT NULL, vectors BLOB NOT NULL, UNIQUE (sha256, model));
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
]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class IndexedRecording:
    """One archive recording's index entry: its speaker-homogeneous segments and their embeddings."""

    path: str
    sha256: str
    duration_s: float
    speech_s: float
    spans: np.ndarray  # (n, 4): start_s, end_s, speech_s, consistency
    vectors: np.ndarray  # (n, d) float16, unit norm

    def segments(self) -> list[Segment]:
        return [
            Segment(self.path, float(s[0]), float(s[1]), float(s[2]), float(s[3]), tuple(float(x) for x in v))
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

    def add_enrollments(self, name: str, items: list[tuple[EnrollmentInfo, np.ndarray]], actor: str) -> None:
        """Store the enrollments of one voice (creating it) atomically."""
        with self._tx() as db:
            row = db.execute("SELECT id FROM speakers WHERE name = ?", (name,)).fetchone()
            speaker_id = row[0] if row else db.execute("INSERT INTO speakers (name, created_at) VALUES (?, ?)", (name, now())).lastrowid
            for info, vector in items:
                cur = db.execute(
                    "INSERT INTO enrollments (speaker_id, file, sha256, speech_s, snr_db, consistency, note, created_at, model)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (speaker_id, info.file, info.sha256, info.speech_s, info.snr_db, info.consistency, info.note, info.created_at, info.model),
                )
                db.execute(
                    "INSERT INTO embeddings (enrollment_id, model, vector) VALUES (?, ?, ?)",
                    (cur.lastrowid, info.model, np.asarray(vector, np.float32).tobytes()),
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
        """Each voice's speech-weighted mean embedding for ``model`` (unit norm), in name order."""
        for name in names or []:
            self._require(name)
        rows = self._query(
            "SELECT s.name, e.speech_s, m.vector FROM embeddings m JOIN enrollments e ON e.id = m.enrollment_id"
            " JOIN speakers s ON s.id = e.speaker_id WHERE m.model = ? ORDER BY s.name, e.id",
            (model,),
        )
        sums: dict[str, np.ndarray] = {}
        for name, speech_s, blob in rows:
            if names is None or name in names:
                sums[name] = sums.get(name, 0) + speech_s * np.frombuffer(blob, np.float32)
        missing = sorted(set(names or []) - set(sums))
        if missing:
            raise UsageError(f"no voiceprint made with model {model!r} for {', '.join(missing)}; enroll again with this model")
        ordered = sorted(sums)
        if not ordered:
            return [], np.zeros((0, 0), np.float32)
        matrix = np.stack([sums[n] for n in ordered]).astype(np.float32)
        return ordered, matrix / np.linalg.norm(matrix, axis=1, keepdims=True)

    def forget(self, name: str, actor: str) -> dict[str, int]:
        """Delete every trace of a voice: enrollments, voiceprints, detections, alerts, and its name in the audit log."""
        self._require(name)
        with self._tx() as db:
            (speaker_id,) = db.execute("SELECT id FROM speakers WHERE name = ?", (name,)).fetchone()
            counts = {
                "enrollments": db.execute("SELECT COUNT(*) FROM enrollments WHERE speaker_id = ?", (speaker_id,)).fetchone()[0],
                "detections": db.execute("DELETE FROM detections WHERE speaker = ?", (name,)).rowcount,
                "alerts": db.execute("DELETE FROM alerts WHERE speaker = ?", (name,)).rowcount,
            }
            db.execute("DELETE FROM speakers WHERE id = ?", (speaker_id,))
            alias = f"forgotten-voice-{speaker_id}"
            db.execute("UPDATE audit SET target = ?, detail = '' WHERE target = ?", (alias, name))
            self._audit(db, actor, "forget", alias, json.dumps(counts))
        return counts

    # -- archive index --------------------------------------------------------------------------------------------

    def indexed(self, sha256: str, model: str) -> IndexedRecording | None:
        rows = self._query("SELECT path, sha256, duration_s, speech_s, spans, vectors FROM recordings WHERE sha256 = ? AND model = ?", (sha256, model))
        return self._recording(rows[0]) if rows else None

    def recordings(self, model: str) -> list[IndexedRecording]:
        rows = self._query("SELECT path, sha256, duration_s, speech_s, spans, vectors FROM recordings WHERE model = ? ORDER BY path", (model,))
        return [self._recording(r) for r in rows]

    @staticmethod
    def _recording(row: tuple) -> IndexedRecording:  # type: ignore[type-arg]
        path, sha, duration, speech, spans, vectors = row
        s = np.frombuffer(spans, np.float32).reshape(-1, 4)
        return IndexedRecording(path, sha, duration, speech, s, np.frombuffer(vectors, np.float16).reshape(len(s), -1))

    def add_recording(self, path: str, sha256: str, model: str, duration_s: float, segments: list[Segment]) -> IndexedRecording:
        spans = np.array([[s.start_s, s.end_s, s.speech_s, s.consistency] for s in segments], np.float32).reshape(-1, 4)
        vectors = np.array([s.embedding for s in segments], np.float16)
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO recordings (sha256, model, path, duration_s, speech_s, indexed_at, spans, vectors)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (sha256, model, path, duration_s, float(spans[:, 2].sum()), now(), spans.tobytes(), vectors.tobytes()),
            )
        return IndexedRecording(path, sha256, duration_s, float(spans[:, 2].sum()), spans, vectors.reshape(len(spans), -1))

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

    def add_alert(self, alert: Alert) -> None:
        """Commit an alert to the outbox; sinks deliver it afterwards."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO alerts (alert_id, source, speaker, wall_time, payload) VALUES (?, ?, ?, ?, ?)",
                (alert.alert_id, alert.source, alert.speaker, alert.wall_time, json.dumps(alert.to_json())),
            )

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
