"""Evaluation runs: file-level verification trial lists (``voxwatch eval``), and turn-level spotting evidence
(the scores a live watch computes as a turn goes on), used to fit and check the calibration."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .engine import Analysis, Engine
from .evaluate import Metrics, evaluate, plot_det, read_trials
from .errors import VoxwatchError
from .records import AudioChunk, Evidence
from .scoring import Watchlist, l2_normalise


def run_trials(engine: Engine, trials_path: str | Path, p_target: float = 0.01, det_path: str | Path | None = None) -> Metrics:
    """Score every trial of a VoxCeleb-style list (each file analysed once) and compute EER, minDCF and Cllr."""
    trials = read_trials(trials_path)
    cache: dict[str, Analysis] = {}

    def analysis(path: str) -> Analysis:
        if path not in cache:
            cache[path] = engine.analyse(path)
        return cache[path]

    calibration = engine.calibration()
    scores, llrs, labels = [], [], []
    for label, enroll, test in trials:
        a, b = analysis(enroll), analysis(test)
        score = float(a.embedding() @ b.embedding())
        scores.append(score)
        llrs.append(float(calibration.llr(score, min(a.speech_s, b.speech_s))))
        labels.append(label)
    y = np.array(labels, bool)
    s, lr = np.array(scores), np.array(llrs)
    metrics = evaluate(lr[y], lr[~y], p_target=p_target, llr=True)
    if det_path is not None:
        plot_det({Path(trials_path).name: (s[y], s[~y])}, det_path, title=f"DET: {Path(trials_path).name}")
    return metrics


@dataclass(frozen=True)
class EvidenceSet:
    """Running turn scores: one row per (window, enrolled voice), with the speech behind it and the truth."""

    scores: np.ndarray
    speech_s: np.ndarray
    target: np.ndarray  # bool

    def __add__(self, other: EvidenceSet) -> EvidenceSet:
        return EvidenceSet(*(np.concatenate([a, b]) for a, b in ((self.scores, other.scores), (self.speech_s, other.speech_s), (self.target, other.target))))


def voiceprints(engine: Engine, enrollment: dict[str, list[np.ndarray]]) -> Watchlist:
    """A watchlist from in-memory enrollment audio, made the way ``Engine.enroll`` makes it (per condition, the
    speech-weighted mean over the voice's recordings)."""
    labels, rows = [], []
    for name, recordings in sorted(enrollment.items()):
        sums: dict[str, np.ndarray] = {}
        for i, samples in enumerate(recordings):
            analysis = engine.analyse_samples(samples, f"{name}/{i}")
            if analysis.segments:
                for condition, vector in engine.voiceprints(samples, analysis, seed=i).items():
                    sums[condition] = sums.get(condition, 0) + analysis.speech_s * vector
        if not sums:
            raise VoxwatchError(f"no speech in the enrollment audio of {name}")
        for condition in sorted(sums):
            labels.append(name)
            rows.append(l2_normalise(sums[condition]))
    return Watchlist(tuple(labels), np.stack(rows), engine.calibration())


def spotting_evidence(engine: Engine, watchlist: Watchlist, tests: list[tuple[str | None, np.ndarray]], parallel: int = 32) -> EvidenceSet:
    """Stream each test utterance (speaker, audio) through the live spotter and keep every running turn score."""
    spotter_options = dataclasses.replace(engine.settings.spotter, trace=True, threshold_llr=np.inf)
    scores, speech, target = [], [], []
    for start in range(0, len(tests), parallel):
        group = tests[start : start + parallel]
        spotter = engine.spotter(watchlist, spotter_options)
        longest = max(len(a) for _, a in group)
        events = []
        for offset in range(0, longest, 8000):
            chunks = [AudioChunk(str(start + i), offset / 16000, a[offset : offset + 8000]) for i, (_, a) in enumerate(group) if offset < len(a)]
            events += spotter.process(chunks)
        for i in range(len(group)):
            events += spotter.finish(str(start + i))
        for e in events:
            if isinstance(e, Evidence):
                speaker = group[int(e.source) - start][0]
                scores.append(e.scores)
                speech.append(np.full(len(e.scores), e.speech_s))
                target.append(np.array([n == speaker for n in watchlist.names]))
    if not scores:
        return EvidenceSet(np.zeros(0), np.zeros(0), np.zeros(0, bool))
    return EvidenceSet(np.concatenate(scores), np.concatenate(speech), np.concatenate(target))
