"""The store's voices: speakers, their enrollments with provenance, and the voiceprints made from them."""

from __future__ import annotations

import numpy as np

from ..errors import UnknownSpeakerError, UsageError
from ..records import EnrollmentInfo, SpeakerInfo
from .core import StoreCore, now
from .dialect import Connection


class Voices(StoreCore):
    """Enrolled voices (tables ``speakers``, ``enrollments``, ``embeddings``)."""

    def add_enrollments(self, name: str, items: list[tuple[EnrollmentInfo, dict[str, np.ndarray]]], actor: str) -> None:
        """Store the enrollments of one voice (creating it) atomically: each with one embedding per simulated condition."""
        with self._tx() as db:
            row = db.execute("SELECT id FROM speakers WHERE name = ?", (name,)).fetchone()
            speaker_id = (
                row[0]
                if row
                else db.execute("INSERT INTO speakers (name, created_at) VALUES (?, ?) RETURNING id", (name, now())).fetchone()[0]
            )
            for info, vectors in items:
                again = db.execute(
                    "SELECT id FROM enrollments WHERE speaker_id = ? AND sha256 = ?", (speaker_id, info.sha256)
                ).fetchone()
                if again:  # a recording enrolled under another model: its voiceprints of this model join it
                    db.executemany(
                        "INSERT INTO embeddings (enrollment_id, model, condition, vector) VALUES (?, ?, ?, ?)",
                        [(again[0], info.model, c, np.asarray(v, np.float32).tobytes()) for c, v in vectors.items()],
                    )
                    self._audit(db, actor, "enroll", name, f"{info.file} sha256={info.sha256} voiceprints of {info.model}")
                    continue
                (enrollment_id,) = db.execute(
                    "INSERT INTO enrollments (speaker_id, file, sha256, speech_s, snr_db, consistency, note, created_at, model)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (
                        speaker_id,
                        info.file,
                        info.sha256,
                        info.speech_s,
                        info.snr_db,
                        info.consistency,
                        info.note,
                        info.created_at,
                        info.model,
                    ),
                ).fetchone()
                db.executemany(
                    "INSERT INTO embeddings (enrollment_id, model, condition, vector) VALUES (?, ?, ?, ?)",
                    [
                        (enrollment_id, info.model, condition, np.asarray(v, np.float32).tobytes())
                        for condition, v in vectors.items()
                    ],
                )
                self._audit(
                    db, actor, "enroll", name, f"{info.file} sha256={info.sha256} speech_s={info.speech_s} note={info.note!r}"
                )

    def enrolled_as(self, sha256: str, model: str) -> tuple[str | None, bool]:
        """The voice a recording is enrolled for (None: not enrolled), and whether it has voiceprints of ``model``."""
        rows = self._query(
            "SELECT s.name, m.model FROM enrollments e JOIN speakers s ON s.id = e.speaker_id"
            " LEFT JOIN embeddings m ON m.enrollment_id = e.id WHERE e.sha256 = ?",
            (sha256,),
        )
        return (rows[0][0], any(m == model for _, m in rows)) if rows else (None, False)

    def speakers(self) -> list[SpeakerInfo]:
        rows = self._query(
            f"SELECT s.name, COUNT(e.id), COALESCE(SUM(e.speech_s), 0), s.created_at, {self._dialect.joined('e.note')}"
            " FROM speakers s LEFT JOIN enrollments e ON e.speaker_id = s.id GROUP BY s.id ORDER BY s.name"
        )
        return [
            SpeakerInfo(n, c, round(s, 2), t, tuple(x for x in (notes or "").split("\x1f") if x)) for n, c, s, t, notes in rows
        ]

    def voiceprint_models(self) -> dict[str, set[str]]:
        """Each enrolled voice and the embedding models it has voiceprints of."""
        rows = self._query(
            "SELECT DISTINCT s.name, m.model FROM speakers s JOIN enrollments e ON e.speaker_id = s.id"
            " JOIN embeddings m ON m.enrollment_id = e.id"
        )
        models: dict[str, set[str]] = {}
        for name, model in rows:
            models.setdefault(name, set()).add(model)
        return models

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

    def voiceprint_matrix(self, model: str, names: list[str] | None = None) -> tuple[list[str], np.ndarray]:
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

    @staticmethod
    def _forget_voice(db: Connection, name: str) -> tuple[int, int]:
        """Within a forget transaction: delete the voice (its enrollments and voiceprints cascade); returns its row id
        and how many enrollments it had."""
        (speaker_id,) = db.execute("SELECT id FROM speakers WHERE name = ?", (name,)).fetchone()
        enrollments = db.execute("SELECT COUNT(*) FROM enrollments WHERE speaker_id = ?", (speaker_id,)).fetchone()[0]
        db.execute("DELETE FROM speakers WHERE id = ?", (speaker_id,))
        return int(speaker_id), int(enrollments)
