"""Spotting performance: a watch's alerts scored against the ground-truth turns of a stream."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SpottingResult", "score_alerts"]


@dataclass(frozen=True)
class SpottingResult:
    """How a watch did on a stream with known turns: ``detected`` of ``targets`` turns of enrolled voices got a
    correct alert, ``false_alarms`` alerts named a voice that was not speaking, ``times_to_alert_s`` per hit."""

    targets: int
    detected: int
    false_alarms: int
    stream_s: float
    times_to_alert_s: tuple[float, ...]

    @property
    def detection_rate(self) -> float:
        return self.detected / self.targets if self.targets else 0.0

    @property
    def false_alarms_per_hour(self) -> float:
        return self.false_alarms * 3600.0 / self.stream_s if self.stream_s else 0.0

    def tta_percentile(self, q: float) -> float:
        return float(np.percentile(self.times_to_alert_s, q)) if self.times_to_alert_s else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {
            "targets": self.targets,
            "detected": self.detected,
            "detection_rate": round(self.detection_rate, 4),
            "false_alarms": self.false_alarms,
            "false_alarms_per_hour": round(self.false_alarms_per_hour, 3),
            "tta_median_s": round(self.tta_percentile(50), 3),
            "tta_p95_s": round(self.tta_percentile(95), 3),
            "stream_s": round(self.stream_s, 1),
        }


def score_alerts(
    alerts: list[Any], turns: list[Any], enrolled: set[str], stream_s: float, tolerance_s: float = 1.0
) -> SpottingResult:
    """Match alerts (``speaker``, ``stream_time_s``) to turns (``speaker``, ``start_s``, ``end_s``, ``onset_s``) of
    one stream.

    An alert is correct when its voice is speaking at ``stream_time_s`` (within ``tolerance_s`` after the turn's end,
    the time evidence takes to arrive); each target turn counts once, by its earliest correct alert, and its
    time-to-alert runs from the turn's first word (``onset_s``)."""
    first: dict[int, float] = {}
    false_alarms = 0
    for alert in alerts:
        hits = [
            i
            for i, t in enumerate(turns)
            if t.speaker == alert.speaker and t.start_s <= alert.stream_time_s <= t.end_s + tolerance_s
        ]
        if not hits:
            false_alarms += 1
        for i in hits:
            first[i] = min(first.get(i, math.inf), alert.stream_time_s - turns[i].onset_s)
    targets = [i for i, t in enumerate(turns) if t.speaker in enrolled]
    times = tuple(round(first[i], 3) for i in targets if i in first)
    return SpottingResult(len(targets), len(times), false_alarms, stream_s, times)
