"""Accuracy runs on a :class:`~voxwatch.conditions.Condition`: voxwatch the product's way (enrollment WAVs through
``Engine.enroll``, the stream as a WAV through ``Engine.watch``), its alerts and turn-level trials scored against the
truth; the same result type serves the naive baseline (:mod:`voxwatch.baseline`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .audio import write_wav
from .conditions import Condition
from .engine import Engine
from .metrics import Metrics, evaluate
from .quality import band_edge_hz
from .records import Alert, Detection
from .scoring import band_name
from .sources import FileSource
from .spotting_metrics import SpottingResult, score_alerts
from .trials import spotting_evidence

if TYPE_CHECKING:
    from .baseline import NaiveAlert

__all__ = ["P_TARGET", "SystemResult", "alert_is_correct", "enroll", "held_back", "run_voxwatch"]

P_TARGET = 0.01  # the target prior of minDCF in every accuracy run


@dataclass
class SystemResult:
    """One system on one condition: alerts scored against the truth, and turn-level trials (final turn scores)."""

    spotting: SpottingResult
    target_scores: np.ndarray
    nontarget_scores: np.ndarray
    target_llr: np.ndarray | None = None
    nontarget_llr: np.ndarray | None = None
    target_peak_llr: np.ndarray | None = None  # the highest running LLR of the turn (what an alert is decided on)
    nontarget_peak_llr: np.ndarray | None = None
    unscored_turns: int = 0
    held_back: int = 0  # missed target turns that began within the 10 s cooldown after the same voice was last found
    false_alarm_notes: str = ""
    threshold_llr: float | None = None  # the operating point on the channel band of most of the condition's turns
    metrics: Metrics = field(init=False)

    def __post_init__(self) -> None:
        calibrated = self.target_llr is not None and self.nontarget_llr is not None
        tar, non = (self.target_llr, self.nontarget_llr) if calibrated else (self.target_scores, self.nontarget_scores)
        self.metrics = evaluate(tar, non, p_target=P_TARGET, llr=calibrated)


def enroll(engine: Engine, enrollment: dict[str, list[np.ndarray]], folder: Path) -> None:
    """Write each voice's enrollment audio to WAV files and enroll them (multi-condition voiceprints and all)."""
    for name, recordings in sorted(enrollment.items()):
        files = [write_wav(folder / "enroll" / f"{name}-{i}.wav", a) for i, a in enumerate(recordings)]
        engine.enroll(name, [str(f) for f in files], note="accuracy benchmark")


def run_voxwatch(engine: Engine, condition: Condition, folder: Path) -> SystemResult:
    """Watch the condition's stream from a WAV file (voices already enrolled in ``engine``), and collect the final
    running score of every truth turn against every enrolled voice (turns cut out of the stream)."""
    stream = write_wav(folder / f"stream-{condition.name}.wav", condition.audio)
    summary = engine.watch([FileSource(str(stream))])
    spotting = score_alerts(summary.alerts, condition.turns, condition.enrolled, condition.duration_s)
    watchlist = engine.watchlist()
    cuts = [(t.speaker, condition.cut(t)) for t in condition.turns]
    bands = np.array([band_edge_hz(audio) for _, audio in cuts])  # each turn's channel: a phone-in's changes with the voice
    evidence = spotting_evidence(engine, watchlist, cuts, bandwidth_hz=bands.tolist())
    voices = len(watchlist.names)
    narrow = np.array([band_name(b) == "narrowband" for b in bands])[evidence.pairs // voices]
    running = engine.calibration().llr_by_band(evidence.scores, evidence.speech_s, narrow)
    last: dict[int, int] = {}
    peak: dict[int, float] = {}
    for row, pair in enumerate(evidence.pairs.tolist()):
        last[pair] = row  # rows come in stream order: the last one of a pair is the turn's final score
        peak[pair] = max(peak.get(pair, -math.inf), float(running[row]))
    pairs = sorted(last)
    rows = np.array([last[p] for p in pairs], np.int64)
    scores, target, llr = evidence.scores[rows], evidence.target[rows], running[rows]
    peaks = np.array([peak[p] for p in pairs])
    unscored = len(condition.turns) - len({p // voices for p in pairs})
    notes = _false_alarm_notes(summary.alerts, condition)
    heard = [(a.speaker, a.stream_time_s) for a in summary.alerts] + [(d.speaker, d.end_s) for d in summary.detections]
    held = held_back(summary.alerts, heard, condition, engine.settings.spotter.cooldown_s, summary.detections)
    return SystemResult(
        spotting,
        scores[target],
        scores[~target],
        llr[target],
        llr[~target],
        peaks[target],
        peaks[~target],
        unscored,
        held,
        notes,
        engine.threshold(float(np.median(bands))),
    )


def alert_is_correct(alert: Alert | NaiveAlert, condition: Condition) -> bool:
    """The alert's voice is speaking at its time (or stopped within a second): as ``score_alerts`` counts it."""
    return any(t.speaker == alert.speaker and t.start_s <= alert.stream_time_s <= t.end_s + 1.0 for t in condition.turns)


def held_back(
    alerts: Sequence[Alert | NaiveAlert],
    heard: list[tuple[str, float]],
    condition: Condition,
    cooldown_s: float,
    recognised: Sequence[Detection] | None = None,
) -> int:
    """Target turns without an alert of their own that began within ``cooldown_s`` after the system last found that
    voice (``heard``: (voice, stream time)): by design no new alert is raised for a voice heard that recently, so
    back-to-back turns of one voice count as missed by ``score_alerts`` although the voice was reported. With
    ``recognised`` (voxwatch's detection records), only turns a detection of that voice overlaps count."""
    count = 0
    for t in condition.turns:
        own = any(a.speaker == t.speaker and t.start_s <= a.stream_time_s <= t.end_s + 1.0 for a in alerts)
        if t.speaker not in condition.enrolled or own:
            continue
        if recognised is not None and not any(
            d.speaker == t.speaker and d.start_s < t.end_s and d.end_s > t.start_s for d in recognised
        ):
            continue
        count += any(v == t.speaker and t.start_s - cooldown_s <= time_s <= t.start_s for v, time_s in heard)
    return count


def _false_alarm_notes(alerts: list[Alert], condition: Condition) -> str:
    """What the false alarms were decided on: how many after a single window (<= 1.6 s of speech), and how many
    came with alerts for other voices on the same turn (a match to the channel or language rather than to a voice)."""
    wrong = [a for a in alerts if not alert_is_correct(a, condition)]
    if not wrong:
        return ""
    short = sum(a.speech_s <= 1.6 for a in wrong)
    crowded = sum(sum(b.segment_start_s == a.segment_start_s for b in alerts) > 1 for a in wrong)
    return f"{len(wrong)} false alarms: {short} on <= 1.6 s of speech, {crowded} on a turn where other voices alerted too"
