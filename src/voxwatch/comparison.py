"""Forensic-style comparison: a questioned recording against reference recordings of a claimed speaker.

The result is a calibrated likelihood ratio with its ENFSI verbal equivalent, the recording conditions of both
sides, and a warning for every condition outside what the calibration was fitted on. The reference voiceprint is
made the way enrollment makes it (one print per simulated channel, the questioned recording scored against its
best-matching print), so nothing has to be enrolled. :mod:`voxwatch.report` turns a :class:`Comparison` into HTML.

    from voxwatch import Engine, compare
    result = compare(Engine(), "intercept.wav", ["suspect-interview-1.wav", "suspect-interview-2.wav"])
    print(result.lr_text, result.verbal)
"""

from __future__ import annotations

import functools
import io
import logging
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from .audio import AudioInput, Clip, read_input
from .blas import blas_limited
from .embedding import DEFAULT_MODEL, routed_models
from .engine import Analysis, Engine
from .errors import AudioError, ModelError, UsageError
from .records import _JsonRecord
from .scoring import (
    NARROWBAND_HZ,
    SHIPPED_CALIBRATIONS,
    Calibration,
    Watchlist,
    band_name,
    has_shipped_calibration,
    l2_normalise,
)

__all__ = ["CalibrationScores", "Comparison", "Limits", "Recording", "calibration_scores", "compare", "format_lr", "verbal_scale"]

log = logging.getLogger(__name__)

SAME = "the questioned recording was spoken by the speaker of the reference recordings"
DIFFERENT = (
    "the questioned recording was spoken by someone else, a speaker of the relevant population"
    " (as represented by the calibration speakers)"
)

# ENFSI guideline for evaluative reporting (2015): upper bound of |log10 LR| for each verbal step
_SCALE = (
    (1.0, "weak"),
    (2.0, "moderate"),
    (3.0, "moderately strong"),
    (4.0, "strong"),
    (6.0, "very strong"),
    (math.inf, "extremely strong"),
)


@dataclass(frozen=True)
class Limits:
    """The recording conditions the shipped calibration covers; outside them a comparison carries a warning.
    ``max_questioned_speech_s`` None: the longest net speech among the calibration trials (the questioned side's
    speech enters the calibration; beyond it the LR follows the fitted trend, extrapolated)."""

    min_speech_s: float = 3.0
    max_speech_s: float = 120.0
    max_questioned_speech_s: float | None = None
    min_snr_db: float = 10.0
    narrowband_hz: float = NARROWBAND_HZ  # channel band edge below this: telephone, radio or an 8 kHz recording
    max_clipping: float = 0.01
    band_ratio: float = 0.67  # narrower / wider channel band below this: a channel mismatch
    min_same_voice: float = 0.65  # segments of one recording less alike than this: maybe several voices


@dataclass(frozen=True)
class Recording(_JsonRecord):
    """One side of a comparison: the file (identified by its content hash) and the conditions it was recorded in.
    ``bandwidth_hz`` is the channel's upper band edge: the highest frequency where the speech frames stand above both
    the pauses and the stop band of a band-limited channel (0 when it cannot be measured)."""

    file: str
    sha256: str
    duration_s: float
    speech_s: float
    segments: int
    snr_db: float
    bandwidth_hz: float
    clipping: float


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare`. ``score`` is the cosine of the questioned recording with the best-matching
    reference voiceprint (``condition_scores`` holds each print's); ``llr`` is the calibrated natural-log likelihood
    ratio of the same-speaker against the different-speaker proposition, given the questioned side's net speech."""

    questioned: Recording
    references: tuple[Recording, ...]
    score: float
    condition_scores: tuple[tuple[str, float], ...]
    llr: float
    warnings: tuple[str, ...]
    model: str
    calibration: Calibration

    @property
    def log10_lr(self) -> float:
        return self.llr / math.log(10.0)

    @property
    def lr(self) -> float:
        return math.exp(min(self.llr, 700.0))

    @property
    def lr_text(self) -> str:
        return format_lr(self.log10_lr)

    @property
    def verbal(self) -> str:
        return verbal_scale(self.log10_lr)

    @property
    def statement(self) -> str:
        """The finding in one sentence, the way an evaluative report states it."""
        if round(self.log10_lr, 2) == 0:
            return "The findings are about as probable if the questioned speaker is the reference speaker as if someone else is speaking."
        same, other = "the questioned speaker is the reference speaker", "someone else is speaking"
        if self.log10_lr > 0:
            return f"The findings are {self.lr_text} times more probable if {same} than if {other}."
        return f"The findings are {format_lr(-self.log10_lr)} times more probable if {other} than if {same}."

    def to_json(self) -> dict[str, Any]:
        return {
            "questioned": self.questioned.to_json(),
            "references": [r.to_json() for r in self.references],
            "score": self.score,
            "condition_scores": dict(self.condition_scores),
            "llr": self.llr,
            "log10_lr": round(self.log10_lr, 3),
            "lr": float(f"{self.lr:.4g}"),
            "verbal": self.verbal,
            "statement": self.statement,
            "propositions": {"same_speaker": SAME, "different_speaker": DIFFERENT},
            "warnings": list(self.warnings),
            "model": self.model,
            "calibration": self.calibration.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Comparison:
        return cls(
            Recording.from_json(data["questioned"]),
            tuple(Recording.from_json(r) for r in data["references"]),
            float(data["score"]),
            tuple((str(k), float(v)) for k, v in data["condition_scores"].items()),
            float(data["llr"]),
            tuple(data["warnings"]),
            str(data["model"]),
            Calibration.from_json(data["calibration"]),
        )


def verbal_scale(log10_lr: float) -> str:
    """The ENFSI (2015) verbal equivalent of a likelihood ratio: LR 1-10 weak, 10-100 moderate, 100-1000 moderately
    strong, 1000-10,000 strong, 10,000-1,000,000 very strong, above extremely strong support for the same-speaker
    proposition; the same steps of 1/LR for the different-speaker proposition."""
    if not math.isfinite(log10_lr):
        raise UsageError(f"a likelihood ratio must be finite, got log10 LR {log10_lr}")
    if round(log10_lr, 2) == 0:
        return "no support for either proposition"
    strength = next(word for limit, word in _SCALE if abs(log10_lr) < limit)
    return f"{strength} support for the {'same' if log10_lr > 0 else 'different'}-speaker proposition"


def format_lr(log10_lr: float) -> str:
    """A likelihood ratio for people: ``"4.2"``, ``"380"``, ``"12,000"``, ``"3.1 × 10^7"``; below 1 as ``"1/380"``."""
    if log10_lr < 0:
        return "1/" + format_lr(-log10_lr)
    if log10_lr >= 6:
        mantissa, exponent = 10 ** (log10_lr % 1), int(log10_lr // 1)
        return f"{mantissa:.1f} × 10^{exponent}"
    lr = 10**log10_lr
    return f"{lr:.2f}" if lr < 10 else f"{lr:.1f}" if lr < 100 else f"{float(f'{lr:.2g}'):,.0f}"


@blas_limited
def compare(
    engine: Engine,
    questioned: AudioInput,
    references: list[AudioInput],
    limits: Limits | None = None,
    *,
    rate_hz: int | None = None,
) -> Comparison:
    """Compare ``questioned`` with reference recordings of one claimed speaker (each of that voice alone); each is
    a file or an array of samples at ``rate_hz``.

    Raises :class:`AudioError` when a recording cannot be read or holds no usable speech, :class:`UsageError` when
    the questioned recording is also a reference or a reference is given twice."""
    limits = limits or Limits()
    if not references:
        raise UsageError("compare needs at least one reference recording of the claimed speaker")
    clips = [read_input(a, rate_hz) for a in [questioned, *references]]  # every check before any audio is analysed
    for i, clip in enumerate(clips[1:], 1):
        if clip.sha256 == clips[0].sha256:
            raise UsageError(
                f"{clip.name}: the same recording as the questioned one (identical SHA-256); a recording cannot be its own reference"
            )
        if clip.sha256 in [c.sha256 for c in clips[1:i]]:
            raise UsageError(f"{clip.name}: given twice as a reference (identical SHA-256)")
    q_analysis, q_side = _analyse(engine, clips[0])
    if not q_analysis.segments:
        raise AudioError(
            f"{clips[0].name}: no stretch of speech long enough to compare ({q_analysis.speech_s:.1f} s of net speech found)"
        )
    ref_sides: list[Recording] = []
    analyses: list[Analysis] = []
    sums: dict[str, np.ndarray] = {}
    for clip in clips[1:]:
        analysis, side = _analyse(engine, clip)
        if not analysis.segments:
            raise AudioError(
                f"{clip.name}: no stretch of speech long enough to make a voiceprint from"
                f" ({analysis.speech_s:.1f} s of net speech found)"
            )
        # as enrollment makes a voiceprint: one print per simulated channel, weighted by speech across recordings
        for condition, vector in engine.condition_embeddings(clip.samples, analysis, seed=int(clip.sha256[:8], 16)).items():
            sums[condition] = sums.get(condition, 0) + analysis.speech_s * vector
        ref_sides.append(side)
        analyses.append(analysis)
    conditions = tuple(sorted(sums))
    prints = l2_normalise(np.stack([sums[c] for c in conditions]))
    calibration = engine.calibration().for_band(q_side.bandwidth_hz)
    embedding = q_analysis.embedding()[None]
    scores, llrs = Watchlist(("reference",) * len(conditions), prints, calibration).llrs(embedding, q_analysis.speech_s)
    per_condition = Watchlist(conditions, prints, calibration).scores(embedding)[0]
    warnings = _warnings(q_side, q_analysis, ref_sides, analyses, limits, engine.backend.name)
    warnings += _calibration_warnings(engine.backend.name, calibration, float(scores[0, 0]), band_name(q_side.bandwidth_hz))
    result = Comparison(
        q_side,
        tuple(ref_sides),
        round(float(scores[0, 0]), 4),
        tuple((c, round(float(s), 4)) for c, s in zip(conditions, per_condition)),
        round(float(llrs[0, 0]), 3),
        tuple(warnings),
        engine.backend.name,
        calibration,
    )
    engine.store.audit(
        engine.actor, "compare", ",".join(r.file for r in ref_sides), f"{q_side.file} sha256={q_side.sha256} llr={result.llr}"
    )
    log.info("compared %s with %d reference(s): score %.3f, LLR %+.2f", q_side.file, len(ref_sides), result.score, result.llr)
    return result


def _analyse(engine: Engine, clip: Clip) -> tuple[Analysis, Recording]:
    analysis = engine.analyse_samples(clip.samples, clip.name)
    q = analysis.quality
    side = Recording(
        clip.name, clip.sha256, q.duration_s, analysis.speech_s, len(analysis.segments), q.snr_db, q.bandwidth_hz, q.clipping
    )
    return analysis, side


def _warnings(
    q: Recording, q_analysis: Analysis, refs: list[Recording], ref_analyses: list[Analysis], limits: Limits, model: str
) -> list[str]:
    out: list[str] = []
    reference_speech = sum(r.speech_s for r in refs)
    longest = limits.max_questioned_speech_s
    if longest is None:
        longest = min(limits.max_speech_s, float(np.max(calibration_scores(band_name(q.bandwidth_hz), model).target_speech_s)))
    reference = "reference recordings together" if len(refs) > 1 else "reference recording"
    for what, speech in (("questioned recording", q.speech_s), (reference, reference_speech)):
        if speech < limits.min_speech_s:
            out.append(
                f"short speech: the {what} holds only {speech:.1f} s of net speech, less than the {limits.min_speech_s:g} s the"
                " calibration covers; voiceprints from so little speech are unstable and the LR is less reliable"
            )
    if q.speech_s > longest:
        out.append(
            f"long speech: the questioned recording holds {q.speech_s:.1f} s of net speech, more than the {longest:.1f} s of the"
            " longest calibration trial; the LR follows the calibration's fitted trend beyond the data it was fitted on"
        )
    if reference_speech > limits.max_speech_s:
        verb = "hold" if len(refs) > 1 else "holds"
        out.append(
            f"long speech: the {reference} {verb} {reference_speech:.1f} s of net speech, more than the {limits.max_speech_s:g} s"
            " the calibration covers"
        )
    for role, side, analysis in [("questioned", q, q_analysis)] + [("reference", r, a) for r, a in zip(refs, ref_analyses)]:
        name = f"{role} {side.file}"
        if side.snr_db < limits.min_snr_db:
            out.append(
                f"noisy: {name} has an SNR of {side.snr_db:.0f} dB, below the {limits.min_snr_db:g} dB the calibration covers"
            )
        if 0 < side.bandwidth_hz < limits.narrowband_hz:
            out.append(
                f"narrowband: {name} carries speech only up to {side.bandwidth_hz:.0f} Hz (telephone, radio or an 8 kHz recording);"
                " the LR uses the narrowband calibration, fitted on speech through a simulated radio or telephone channel"
                " (300-3400 Hz, 8 kHz, compander or mu-law, noise), not on real radio or telephone recordings"
            )
        if side.clipping > limits.max_clipping:
            out.append(
                f"clipped: {100 * side.clipping:.1f} % of the samples of {name} are at full scale (more than"
                f" {100 * limits.max_clipping:g} %); distortion changes the voice's spectrum"
            )
        several = analysis.voice_split(limits.min_same_voice)
        if several:
            out.append(f"several voices? {name} may hold more than one speaker: {several}; compare only speech of one voice")

    def mismatched(r: Recording) -> bool:
        narrow, wide = sorted((q.bandwidth_hz, r.bandwidth_hz))
        return 0 < narrow < limits.band_ratio * wide

    apart = [r for r in refs if mismatched(r)]
    if apart:
        listed = ", ".join(f"{r.file} up to {r.bandwidth_hz:.0f} Hz" for r in apart)
        out.append(
            f"channel mismatch: the questioned recording carries speech up to {q.bandwidth_hz:.0f} Hz, reference {listed};"
            " a channel mismatch lowers same-speaker scores, which the reference prints made through simulated radio and"
            " telephone channels compensate only in part"
        )
    return out


def _calibration_warnings(model: str, calibration: Calibration, score: float, band: str) -> list[str]:
    out = []
    if not has_shipped_calibration(model):
        out.append(
            f"uncalibrated model: the shipped calibrations were fitted for {', '.join(SHIPPED_CALIBRATIONS)}, not {model!r};"
            " the LR is not calibrated"
        )
        return out
    shipped = calibration_scores(band, model)
    highest, lowest = float(shipped.nontarget_scores.max()), float(shipped.target_scores.min())
    if score > highest or score < lowest:
        if score > highest:
            kind, bound = "different", f"as high as {score:.3f} (highest {highest:.3f})"
        else:
            kind, bound = "same", f"as low as {score:.3f} (lowest {lowest:.3f})"
        out.append(
            f"score beyond the calibration trials: no {kind}-speaker calibration trial scored {bound}; the data support the"
            " direction of the LR, its size follows the calibration's fitted model beyond them"
        )
    scores = np.concatenate([shipped.target_scores, shipped.nontarget_scores])
    speech = np.concatenate([shipped.target_speech_s, shipped.nontarget_speech_s])
    drift = float(np.max(np.abs(calibration.llr(scores, speech) - shipped.calibration.llr(scores, speech))))
    if drift > 0.5:
        out.append(
            f"changed calibration: the calibration in use gives LLRs up to {drift:.1f} away from the one fitted on the shipped"
            " calibration trials; re-fit it (benchmarks/fit_calibration.py --write) before relying on the LR"
        )
    return out


@dataclass(frozen=True)
class CalibrationScores:
    """The trials the shipped calibration was fitted on, summarised (written by ``benchmarks/fit_calibration.py
    --write``): running turn scores of same-speaker (target) and different-speaker (non-target) trials with the net
    speech behind each, subsampled; the metrics are those of the full set."""

    target_scores: np.ndarray
    target_speech_s: np.ndarray
    nontarget_scores: np.ndarray
    nontarget_speech_s: np.ndarray
    calibration: Calibration
    n_target: int
    n_nontarget: int
    eer: float
    cllr: float
    min_cllr: float

    def llrs(self, calibration: Calibration | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Target and non-target LLRs under ``calibration`` (by default the one they were fitted with)."""
        cal = calibration or self.calibration
        return cal.llr(self.target_scores, self.target_speech_s), cal.llr(self.nontarget_scores, self.nontarget_speech_s)


@functools.cache
def calibration_scores(band: str = "wideband", model: str = DEFAULT_MODEL) -> CalibrationScores:
    """The shipped summary of one model's and channel band's calibration trials (``calibration_scores.npz`` in the
    package; a band-routed ``WIDE+NARROW`` shows the band's model's, a model without its own GE2E's)."""
    routed = routed_models(model)
    if routed is not None:
        model = routed[1] if band == "narrowband" else routed[0]
    try:
        raw = resources.files("voxwatch").joinpath("calibration_scores.npz").read_bytes()
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            if not any(k.startswith(f"{model}__") for k in data.files):
                model = "ge2e"
            prefix = f"{model}__{band}_"
            arrays = {k.removeprefix(prefix): data[k] for k in data.files if k.startswith(prefix)}
        as64 = {
            k: arrays[k].astype(np.float64)
            for k in ("target_scores", "target_speech_s", "nontarget_scores", "nontarget_speech_s")
        }
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(
            f"the package's calibration_scores.npz is missing, unreadable or has no {band} trials ({exc});"
            " run benchmarks/fit_calibration.py --write"
        ) from exc
    return CalibrationScores(
        **as64,
        calibration=Calibration(*(float(v) for v in arrays["calibration"])),
        n_target=int(arrays["n_target"]),
        n_nontarget=int(arrays["n_nontarget"]),
        eer=float(arrays["eer"]),
        cllr=float(arrays["cllr"]),
        min_cllr=float(arrays["min_cllr"]),
    )
