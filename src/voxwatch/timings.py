"""How long a running watch's models take: each stage's busy time against the audio it covered, and the embedding
time per window as histogram buckets. :class:`~voxwatch.watch.Watch` records; ``/metrics`` reads
(:mod:`voxwatch.service_metrics`)."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

STAGES = ("vad", "embedding")  # the watch's two threads: VAD and framing; embedding and scoring
WINDOW_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
RECENT_S = 60.0  # the real-time factor is measured over the last minute of wall time


@dataclass(frozen=True)
class ModelTime:
    """A snapshot: totals since the watch started, and the real-time factor of each stage over the last minute."""

    busy_s: dict[str, float]  # stage → seconds spent in its model calls
    audio_s: float  # stream audio that went through VAD
    windows: int  # windows embedded
    window_buckets: list[tuple[float, int]]  # (upper bound in s, windows at most that long), cumulative
    window_sum_s: float
    real_time_factor: dict[str, float]  # stage → model seconds per second of audio, last minute (absent: no audio)

    @property
    def capacity_streams(self) -> float | None:
        """Real-time streams the watch could hold at the last minute's mix of speech and silence: the two stages
        run side by side, so the slower one sets the limit (None without audio in the last minute)."""
        slowest = max(self.real_time_factor.values(), default=0.0)
        return 1 / slowest if slowest > 0 else None


class ModelClock:
    """Thread-safe accounting of model time, fed by the watch's two threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = dict.fromkeys(STAGES, 0.0)
        self._audio_s = 0.0
        self._counts = [0] * (len(WINDOW_BUCKETS_S) + 1)
        self._sum_s = 0.0
        self._recent: deque[tuple[float, str, float, float]] = deque()  # (monotonic time, stage, busy s, audio s)

    def record(self, stage: str, busy_s: float, audio_s: float, windows: int = 0) -> None:
        """One model call of ``stage``: it took ``busy_s`` over ``audio_s`` of stream audio (and ``windows``
        embedded windows, each counted at the call's time per window)."""
        now = time.monotonic()
        with self._lock:
            self._busy[stage] += busy_s
            if stage == STAGES[0]:
                self._audio_s += audio_s
            if windows:
                per_window = busy_s / windows
                slot = next((i for i, le in enumerate(WINDOW_BUCKETS_S) if per_window <= le), len(WINDOW_BUCKETS_S))
                self._counts[slot] += windows
                self._sum_s += busy_s
            self._recent.append((now, stage, busy_s, audio_s))
            self._forget(now)

    def _forget(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - RECENT_S:
            self._recent.popleft()

    def snapshot(self) -> ModelTime:
        with self._lock:
            self._forget(time.monotonic())
            busy, audio = dict.fromkeys(STAGES, 0.0), dict.fromkeys(STAGES, 0.0)
            for _, stage, busy_s, audio_s in self._recent:
                busy[stage] += busy_s
                audio[stage] += audio_s
            cumulative, buckets = 0, []
            for le, n in zip(WINDOW_BUCKETS_S, self._counts):
                cumulative += n
                buckets.append((le, cumulative))
            buckets.append((float("inf"), cumulative + self._counts[-1]))
            return ModelTime(
                dict(self._busy),
                self._audio_s,
                buckets[-1][1],
                buckets,
                self._sum_s,
                {s: busy[s] / audio[s] for s in STAGES if audio[s] > 0},
            )
