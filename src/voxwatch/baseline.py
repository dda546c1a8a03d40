"""The naive baseline spotter the accuracy benchmark compares voxwatch with: the same embedding model, no VAD, no turns,
no calibration; the mean of 1.6 s enrollment windows per voice, 1.6 s windows every 0.8 s over the stream (windows below
-45 dBFS skipped), an alert when one window's cosine passes a threshold, at most one per voice per 10 s."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .audio import RATE_HZ
from .bench import SystemResult, alert_is_correct, held_back
from .conditions import Condition
from .spotting_metrics import score_alerts

__all__ = ["NaiveAlert", "NaiveSpotter", "WindowScores", "choose_naive_threshold", "loud_windows", "run_naive"]

NAIVE_WINDOW_S = 1.6
NAIVE_HOP_S = 0.8
NAIVE_SILENCE_DBFS = -45.0
NAIVE_COOLDOWN_S = 10.0
NAIVE_MAX_FA_PER_HOUR = 2.0  # the rule that picks the naive threshold on the clean condition


def loud_windows(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start times (s) and samples of the 1.6 s windows every 0.8 s of ``audio`` (the last zero-padded) that are not
    below -45 dBFS."""
    size, hop = round(NAIVE_WINDOW_S * RATE_HZ), round(NAIVE_HOP_S * RATE_HZ)
    starts = np.arange(0, max(len(audio) - size, 0) + 1, hop)
    windows = np.stack([np.pad(audio[s : s + size], (0, max(0, s + size - len(audio)))) for s in starts]).astype(np.float32)
    loud = 10 * np.log10(np.mean(windows.astype(np.float64) ** 2, axis=1) + 1e-12) >= NAIVE_SILENCE_DBFS
    return starts[loud] / RATE_HZ, windows[loud]


class NaiveAlert(NamedTuple):
    speaker: str
    stream_time_s: float


@dataclass(frozen=True)
class WindowScores:
    """Cosine of every non-silent 1.6 s stream window (rows, by start time) with every enrolled voice (columns)."""

    names: tuple[str, ...]
    start_s: np.ndarray
    cosine: np.ndarray

    @property
    def end_s(self) -> np.ndarray:
        return self.start_s + NAIVE_WINDOW_S


class NaiveSpotter:
    """The same embedding model, no VAD, no turns, no calibration: one window's cosine against a threshold."""

    def __init__(self, backend, enrollment: dict[str, list[np.ndarray]]):  # type: ignore[no-untyped-def]
        self.backend = backend
        self.names = tuple(sorted(enrollment))
        prints = [self._embed(np.concatenate([loud_windows(a)[1] for a in enrollment[n]])).mean(axis=0) for n in self.names]
        self.centroids = np.stack([p / np.linalg.norm(p) for p in prints])

    def _embed(self, windows: np.ndarray, batch: int = 64) -> np.ndarray:
        return np.concatenate([self.backend.embed(windows[i : i + batch]) for i in range(0, len(windows), batch)])

    def scores(self, audio: np.ndarray) -> WindowScores:
        starts, windows = loud_windows(audio)
        return WindowScores(self.names, starts, self._embed(windows) @ self.centroids.T)

    @staticmethod
    def alerts(scores: WindowScores, threshold: float) -> list[NaiveAlert]:
        found = []
        for j, name in enumerate(scores.names):
            last = -math.inf
            for t in scores.end_s[scores.cosine[:, j] >= threshold]:
                if t - last >= NAIVE_COOLDOWN_S:
                    found.append(NaiveAlert(name, float(t)))
                    last = t
        return sorted(found, key=lambda a: a.stream_time_s)


def choose_naive_threshold(scores: WindowScores, condition: Condition, max_fa_per_hour: float = NAIVE_MAX_FA_PER_HOUR) -> float:
    """The lowest cosine threshold (0.0025 grid, scanned down until false alarms pass 10x the limit) whose alerts
    raise at most ``max_fa_per_hour`` false alarms per stream-hour."""
    best = 1.0
    for threshold in np.round(np.arange(0.995, 0.2, -0.0025), 4):
        alerts = NaiveSpotter.alerts(scores, float(threshold))
        rate = sum(not alert_is_correct(a, condition) for a in alerts) * 3600 / condition.duration_s
        if rate <= max_fa_per_hour:
            best = float(threshold)
        elif rate > 10 * max_fa_per_hour:
            break
    return best


def run_naive(scores: WindowScores, condition: Condition, threshold: float) -> SystemResult:
    """Alerts at ``threshold``; turn-level trials from each turn's best window (window centre inside the turn)."""
    alerts = NaiveSpotter.alerts(scores, threshold)
    spotting = score_alerts(alerts, condition.turns, condition.enrolled, condition.duration_s)
    held = held_back(alerts, [(a.speaker, a.stream_time_s) for a in alerts], condition, NAIVE_COOLDOWN_S)
    centre = scores.start_s + NAIVE_WINDOW_S / 2
    tar, non, unscored = [], [], 0
    for t in condition.turns:
        inside = (centre >= t.start_s) & (centre <= t.end_s)
        if not inside.any():
            unscored += 1
            continue
        best = scores.cosine[inside].max(axis=0)
        for j, name in enumerate(scores.names):
            (tar if name == t.speaker else non).append(best[j])
    return SystemResult(spotting, np.array(tar), np.array(non), unscored_turns=unscored, held_back=held)
