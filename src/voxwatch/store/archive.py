"""The store's archive index: each indexed recording's segments, their embeddings and its voice summaries."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..records import Segment
from ..scoring import voice_summaries
from .core import StoreCore, now

_RECORDINGS = (
    "SELECT path, sha256, duration_s, speech_s, spans, vectors, bandwidth_hz FROM recordings"  # as Archive._recording reads them
)


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


class Archive(StoreCore):
    """The archive index (tables ``recordings``, ``voice_summaries``); recordings are keyed by content hash and model."""

    def indexed(self, sha256: str, model: str) -> IndexedRecording | None:
        rows = self._query(_RECORDINGS + " WHERE sha256 = ? AND model = ?", (sha256, model))
        return self._recording(rows[0]) if rows else None

    def index_summaries(self, model: str, dimension: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every indexed recording's voice summaries: recording ids, the summaries (m, d) and the row of ``ids``
        each summary belongs to."""
        rows = self._query("SELECT recording_id, centroids FROM voice_summaries WHERE model = ?", (model,), bulk=True)
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
            found += self._query(_RECORDINGS + f" WHERE id IN ({marks})", tuple(chunk), bulk=True)
        return sorted((self._recording(r) for r in found), key=lambda r: r.path)

    def recordings(self, model: str) -> list[IndexedRecording]:
        rows = self._query(_RECORDINGS + " WHERE model = ? ORDER BY path", (model,), bulk=True)
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
            (recording_id,) = db.execute(
                "INSERT INTO recordings (sha256, model, path, duration_s, speech_s, indexed_at, spans, vectors, bandwidth_hz)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (sha256, model, path, duration_s, float(spans[:, 2].sum()), now(), spans.tobytes(), vectors.tobytes(), bandwidth),
            ).fetchone()
            db.execute(
                "INSERT INTO voice_summaries (recording_id, model, centroids) VALUES (?, ?, ?)",
                (recording_id, model, centroids.tobytes()),
            )
        return IndexedRecording(
            path, sha256, duration_s, float(spans[:, 2].sum()), spans, vectors.reshape(len(spans), -1), bandwidth
        )
