"""Scoring: enrolled voices as a matrix, cosine scores, and their calibration into log-likelihood ratios."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from .errors import UsageError


MIN_SPEECH_S = 1.0  # the shortest evidence scored (one short window); shorter durations count as this


@dataclass(frozen=True)
class Calibration:
    """Maps a cosine score and the seconds of speech behind it to a natural-log likelihood ratio:
    ``llr = a + b * score + (c + d * score) * log(speech_s)``, fitted by logistic regression on trials."""

    a: float
    b: float
    c: float
    d: float

    def llr(self, score: np.ndarray | float, speech_s: np.ndarray | float) -> np.ndarray:
        log_s = np.log(np.maximum(np.asarray(speech_s, np.float64), MIN_SPEECH_S))
        s = np.asarray(score, np.float64)
        return self.a + self.b * s + (self.c + self.d * s) * log_s

    def to_json(self) -> dict[str, float]:
        return {"a": self.a, "b": self.b, "c": self.c, "d": self.d}

    @classmethod
    def from_json(cls, data: dict[str, float]) -> Calibration:
        return cls(float(data["a"]), float(data["b"]), float(data["c"]), float(data["d"]))

    def lowest_score(self, threshold_llr: float, longest_s: float = 600.0) -> float:
        """The lowest score that reaches ``threshold_llr`` with up to ``longest_s`` of speech behind it."""
        grid = np.linspace(-1, 1, 2001)
        reach = np.maximum.reduce([self.llr(grid, t) for t in (MIN_SPEECH_S, 10.0, longest_s)]) >= threshold_llr
        return float(grid[np.argmax(reach)]) if reach.any() else 1.0

    @classmethod
    def default(cls) -> Calibration:
        """The calibration shipped with the package (fitted on public speech, numbers only)."""
        text = resources.files("voxwatch").joinpath("calibration.json").read_text()
        return cls.from_json(json.loads(text)["ge2e"])


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


@dataclass(frozen=True)
class Watchlist:
    """The voices being looked for. Row ``i`` of ``matrix`` is a unit-norm voiceprint of voice ``labels[i]``; a voice
    may have several rows (one per enrollment condition) and scores as its best-matching row."""

    labels: tuple[str, ...]
    matrix: np.ndarray
    calibration: Calibration
    names: tuple[str, ...] = field(init=False)
    _starts: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.matrix.ndim != 2 or len(self.labels) != len(self.matrix):
            raise UsageError(f"watchlist needs one voice label per voiceprint: {len(self.labels)} labels, matrix {self.matrix.shape}")
        starts = [i for i, label in enumerate(self.labels) if i == 0 or label != self.labels[i - 1]]
        names = tuple(self.labels[i] for i in starts)
        if len(set(names)) != len(names):
            raise UsageError("a voice's voiceprints must be adjacent rows of the watchlist")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "_starts", np.array(starts, np.intp))

    @classmethod
    def empty(cls, dimension: int, calibration: Calibration) -> Watchlist:
        return cls((), np.zeros((0, dimension), np.float32), calibration)

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Cosine of each embedding (n, d) with each voice's best voiceprint: (n, len(names))."""
        rows = l2_normalise(embeddings) @ self.matrix.T
        if not len(self.names):
            return rows
        return np.maximum.reduceat(rows, self._starts, axis=1)

    def llrs(self, embeddings: np.ndarray, speech_s: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        scores = self.scores(embeddings)
        return scores, self.calibration.llr(scores, np.asarray(speech_s, np.float64).reshape(-1, 1))


def voice_summaries(vectors: np.ndarray, weights: np.ndarray, similar: float = 0.8, most: int = 32) -> np.ndarray:
    """A few unit vectors that stand for the voices among a recording's segment embeddings: greedy clustering,
    heaviest segments first, a segment joining the closest summary it resembles by at least ``similar``."""
    if not len(vectors):
        return np.zeros((0, vectors.shape[1] if vectors.ndim == 2 else 0), np.float32)
    vectors = l2_normalise(vectors)
    sums: list[np.ndarray] = []
    for i in np.argsort(-weights, kind="stable"):
        if sums:
            current = l2_normalise(np.stack(sums))
            similarity = current @ vectors[i]
            best = int(np.argmax(similarity))
            if similarity[best] >= similar or len(sums) >= most:
                sums[best] = sums[best] + weights[i] * vectors[i]
                continue
        sums.append(weights[i] * vectors[i])
    return l2_normalise(np.stack(sums))
