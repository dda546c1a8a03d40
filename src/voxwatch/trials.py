"""Evaluation runs: file-level verification trial lists (reading and scoring them, ``voxwatch eval``), and turn-level
spotting evidence (the scores a live watch computes as a turn goes on), used to fit and check the calibration."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .audio import RATE_HZ, load_audio
from .engine import Analysis, Engine
from .errors import AudioError, UsageError, VoxwatchError
from .metrics import Metrics, evaluate
from .parallel import each
from .plots import plot_det
from .records import AudioChunk, Evidence, FileDone
from .scoring import Watchlist, band_name, l2_normalise

log = logging.getLogger(__name__)

_LABELS = {"1": 1, "target": 1, "tgt": 1, "0": 0, "nontarget": 0, "non-target": 0, "nontgt": 0, "imp": 0, "impostor": 0}


class Trial(NamedTuple):
    """One line of a trial list: the truth, both recordings' paths, and their names as the list writes them."""

    label: int
    enroll: str
    test: str
    enroll_id: str
    test_id: str


def read_trials(path: str | Path, root: str | Path | None = None) -> list[Trial]:
    """Read a trial list in VoxCeleb order (``label enroll test``) or Kaldi order (``enroll test label``), labels
    1/0, target/nontarget or tgt/imp; blank lines and ``#`` comments are skipped; relative paths are resolved against
    ``root``, else the list's folder."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read trial list {source}: {exc}") from exc
    folder = Path(root).absolute() if root is not None else source.absolute().parent
    trials: list[Trial] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) != 3:
            raise UsageError(f"{source}:{number}: expected 'label enroll test', got {len(fields)} field(s): {line.strip()!r}")
        if fields[0].lower() in _LABELS:
            label, enroll, test = fields
        elif fields[2].lower() in _LABELS:
            enroll, test, label = fields
        else:
            raise UsageError(
                f"{source}:{number}: no label first or last in {line.strip()!r}; use 1/0, target/nontarget or tgt/imp"
            )
        trials.append(Trial(_LABELS[label.lower()], str(folder / enroll), str(folder / test), enroll, test))
    n_tar = sum(t.label for t in trials)
    if not trials:
        raise UsageError(f"{source}: no trials found")
    if n_tar == 0 or n_tar == len(trials):
        missing = "target" if n_tar == 0 else "non-target"
        raise UsageError(f"{source}: no {missing} trials among {len(trials)}; a trial list needs both classes")
    return trials


def score_trials(
    engine: Engine, trials: list[Trial], progress: Callable[[FileDone], None] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Score every trial the way the product does (the enrollment side as a multi-condition voiceprint, each file
    analysed once): scores, seconds of test speech, target truth, and the test's channel band (upper edge, Hz).
    ``progress`` hears of each file analysed."""
    calibration = engine.calibration(required=False)
    enrolls, tests = sorted({t.enroll for t in trials}), sorted({t.test for t in trials})

    def analyse(job: tuple[str, str]) -> tuple[Analysis, Watchlist | None]:
        side, path = job
        samples = load_audio(path)
        analysis = engine.analyse_samples(samples, path, voiceprint=side == "enroll")
        if side == "test":
            return analysis, None
        rows = engine.condition_embeddings(samples, analysis)
        if not rows:
            raise AudioError(f"{path}: no speech to make a voiceprint from")
        return analysis, Watchlist((path,) * len(rows), np.stack(list(rows.values())), calibration)

    jobs = [("enroll", p) for p in enrolls] + [("test", p) for p in tests]
    prints: dict[str, Watchlist] = {}
    heard: dict[str, Analysis] = {}
    for (_, path), (analysis, voice) in each(analyse, jobs, engine.settings.workers):
        if voice is None:
            heard[path] = analysis
        else:
            prints[path] = voice
        if progress:
            progress(FileDone(path, len(prints) + len(heard), len(jobs), analysis.quality.duration_s))
    scores, speech, labels, bands = [], [], [], []
    for label, enroll, test, _, _ in trials:
        band = heard[test].quality.bandwidth_hz
        scores.append(float(prints[enroll].scores(heard[test].embedding()[None], band_name(band))[0, 0]))
        speech.append(heard[test].speech_s)
        labels.append(label)
        bands.append(band)
    return np.array(scores), np.array(speech), np.array(labels, bool), np.array(bands)


def write_scores(path: str | Path, trials: list[Trial], scores: np.ndarray, llrs: np.ndarray) -> None:
    """A score file: per trial ``enroll test score llr target|nontarget``, the names as the trial list writes them."""
    lines = [
        f"{t.enroll_id} {t.test_id} {score:.6f} {llr:.4f} {'target' if t.label else 'nontarget'}\n"
        for t, score, llr in zip(trials, scores, llrs)
    ]
    try:
        Path(path).write_text("".join(lines))
    except OSError as exc:
        raise UsageError(f"{path}: cannot write the scores ({exc.strerror})") from exc


def run_trials(
    engine: Engine,
    trials_path: str | Path,
    p_target: float = 0.01,
    det_path: str | Path | None = None,
    root: str | Path | None = None,
    scores_path: str | Path | None = None,
    progress: Callable[[FileDone], None] | None = None,
) -> Metrics:
    """EER, minDCF and Cllr of a trial list (recordings found under ``root``, else beside the list), its DET plot,
    and its score file."""
    trials = read_trials(trials_path, root)
    scores, speech, target, bands = score_trials(engine, trials, progress)
    calibration = engine.calibration(required=False)
    narrow = np.array([band_name(b) == "narrowband" for b in bands], bool)
    llr = calibration.llr_by_band(scores, speech, narrow)
    if not engine.calibrated:
        log.warning(
            "model %r has no calibration: Cllr is measured with %r's (EER and minDCF need none)",
            engine.backend.name,
            calibration.model,
        )
    metrics = evaluate(llr[target], llr[~target], p_target=p_target, llr=True)
    if scores_path is not None:
        write_scores(scores_path, trials, scores, llr)
    if det_path is not None:
        plot_det({Path(trials_path).name: (scores[target], scores[~target])}, det_path, title=f"DET: {Path(trials_path).name}")
    return metrics


@dataclass(frozen=True)
class EvidenceSet:
    """Running turn scores: one row per (window, enrolled voice), with the speech behind it and the truth."""

    scores: np.ndarray
    speech_s: np.ndarray
    target: np.ndarray  # bool
    pairs: np.ndarray  # which (test turn, voice) each row belongs to

    def __add__(self, other: EvidenceSet) -> EvidenceSet:
        offset = int(self.pairs.max()) + 1 if len(self.pairs) else 0
        return EvidenceSet(
            np.concatenate([self.scores, other.scores]),
            np.concatenate([self.speech_s, other.speech_s]),
            np.concatenate([self.target, other.target]),
            np.concatenate([self.pairs, other.pairs + offset]),
        )


def enrollment_watchlist(engine: Engine, enrollment: dict[str, list[np.ndarray]]) -> Watchlist:
    """A watchlist from in-memory enrollment audio, made the way ``Engine.enroll`` makes it (per condition, the
    speech-weighted mean over the voice's recordings)."""
    labels, rows = [], []
    for name, recordings in sorted(enrollment.items()):
        sums: dict[str, np.ndarray] = {}
        for i, samples in enumerate(recordings):
            analysis = engine.analyse_samples(samples, f"{name}/{i}", voiceprint=True)
            if analysis.segments:
                for condition, vector in engine.condition_embeddings(samples, analysis, seed=i).items():
                    sums[condition] = sums.get(condition, 0) + analysis.speech_s * vector
        if not sums:
            raise VoxwatchError(f"no speech in the enrollment audio of {name}")
        for condition in sorted(sums):
            labels.append(name)
            rows.append(l2_normalise(sums[condition]))
    return Watchlist(tuple(labels), np.stack(rows), engine.calibration(required=False))  # scores for fitting one, too


def spotting_evidence(
    engine: Engine,
    watchlist: Watchlist,
    tests: list[tuple[str | None, np.ndarray]],
    parallel: int = 32,
    bandwidth_hz: Sequence[float] | None = None,
) -> EvidenceSet:
    """Stream each test utterance (speaker, audio) through the live spotter and keep every running turn score; with
    ``bandwidth_hz``, each utterance's channel band, measured beforehand (else each is measured as it goes, as a live
    stream is)."""
    spotter_options = dataclasses.replace(engine.settings.spotter, trace=True, threshold_llr=np.inf)
    scores, speech, target, pairs = [], [], [], []
    for start in range(0, len(tests), parallel):
        group = tests[start : start + parallel]
        spotter = engine.spotter(watchlist, spotter_options)
        if bandwidth_hz is not None:
            for i in range(len(group)):
                spotter.known_band(str(start + i), bandwidth_hz[start + i])
        longest = max(len(a) for _, a in group)
        events = []
        step = RATE_HZ // 2
        for offset in range(0, longest, step):
            chunks = [
                AudioChunk(str(start + i), offset / RATE_HZ, a[offset : offset + step])
                for i, (_, a) in enumerate(group)
                if offset < len(a)
            ]
            events += spotter.process(chunks)
        for i in range(len(group)):
            events += spotter.finish(str(start + i))
        for e in events:
            if isinstance(e, Evidence):
                speaker = group[int(e.source) - start][0]
                scores.append(e.scores)
                speech.append(np.full(len(e.scores), e.speech_s))
                target.append(np.array([n == speaker for n in watchlist.names]))
                pairs.append(int(e.source) * len(watchlist.names) + np.arange(len(e.scores)))
    if not scores:
        return EvidenceSet(np.zeros(0), np.zeros(0), np.zeros(0, bool), np.zeros(0, np.int64))
    return EvidenceSet(np.concatenate(scores), np.concatenate(speech), np.concatenate(target), np.concatenate(pairs))
