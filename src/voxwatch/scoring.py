"""Scoring: enrolled voices as a matrix, cosine scores (adaptively normalised against a cohort of other voices where the
model ships one), and their calibration into log-likelihood ratios."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .calibration_fit import fit_logistic
from .embedding import DEFAULT_MODEL, routed_models
from .errors import ModelError, UsageError

log = logging.getLogger(__name__)

MIN_SPEECH_S = 1.0  # the shortest evidence scored (one short window); shorter durations count as this
NARROWBAND_HZ = 4500.0  # audio whose channel band ends below this is narrowband (telephone, radio)


@functools.cache
def _shipped() -> dict[str, dict]:
    """The package's calibration.json (read once: it is package data)."""
    return json.loads(resources.files("voxwatch").joinpath("calibration.json").read_text())


@functools.cache
def _shipped_cohort(name: str) -> np.ndarray:
    """The package's ``models/<name>-cohort.npy`` as unit rows (read once: it is package data)."""
    try:
        with resources.files("voxwatch").joinpath(f"models/{name}-cohort.npy").open("rb") as f:
            vectors = np.load(f)
    except (OSError, ValueError) as exc:
        raise ModelError(f"the package's score-normalisation cohort for {name!r} is missing or unreadable ({exc})") from exc
    return l2_normalise(vectors)


SHIPPED_CALIBRATIONS = tuple(_shipped())  # the models the package has a calibration for


def has_shipped_calibration(model: str) -> bool:
    """Whether the package calibrates ``model``: one of :data:`SHIPPED_CALIBRATIONS`, or two of them routed by band."""
    return all(part in SHIPPED_CALIBRATIONS for part in routed_models(model) or (model,))


FIT_ONE = "fit one on your own trials with 'voxwatch calibrate TRIALS --out FILE', then pass --calibration FILE"


def band_name(bandwidth_hz: float) -> str:
    """The band's name: "narrowband" for a channel whose band ends below :data:`NARROWBAND_HZ`, else "wideband" (also
    when unknown: 0)."""
    return "narrowband" if 0 < bandwidth_hz < NARROWBAND_HZ else "wideband"


@dataclass(frozen=True)
class Cohort:
    """Adaptive score normalisation (AS-norm): a cosine score between a test embedding and a voiceprint becomes the mean
    of two z-scores, each against the ``top`` cohort voices most like that side. What a channel or a short turn does to
    every score of one embedding (all strangers look closer on a radio chain) is taken out before calibration.

    ``vectors`` are unit-norm centroids of voices that are neither enrolled nor tested: for a shipped model, the
    speakers its encoder was trained on (``models/<model>-cohort.npy``, written by ``benchmarks/fit_calibration.py``)."""

    name: str
    vectors: np.ndarray
    top: int

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or not 1 <= self.top <= len(self.vectors):
            raise UsageError(f"cohort {self.name!r}: top {self.top} of {self.vectors.shape} cohort vectors")

    @classmethod
    def shipped(cls, name: str, top: int) -> Cohort:
        """The cohort shipped in the package for model ``name``."""
        return cls(name, _shipped_cohort(name), top)

    def stats(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and spread of each unit embedding's (n, d) ``top`` highest cohort scores: two arrays (n,)."""
        scores = embeddings @ self.vectors.T
        best = np.partition(scores, len(self.vectors) - self.top, axis=1)[:, -self.top :]
        return best.mean(axis=1), np.maximum(best.std(axis=1), 1e-4)

    def normalise(
        self, scores: np.ndarray, test: tuple[np.ndarray, np.ndarray], prints: tuple[np.ndarray, np.ndarray]
    ) -> np.ndarray:
        """AS-norm of cosine ``scores`` (n tests, m voiceprints), given each side's :meth:`stats`."""
        (mean_t, sd_t), (mean_p, sd_p) = test, prints
        return 0.5 * ((scores - mean_t[:, None]) / sd_t[:, None] + (scores - mean_p[None]) / sd_p[None])


@dataclass(frozen=True)
class Calibration:
    """Maps a score and the seconds of speech behind it to a natural-log likelihood ratio:
    ``llr = a + b * score + (c + d * score) * log(speech_s)``, fitted by logistic regression on trials.

    ``fa_llr``/``fa_per_hour`` measure, on the non-target trials it was fitted on, how many false alarms per hour
    of a stranger's speech each enrolled voice raises at each LLR threshold: the operating point in user terms.

    Quality-aware by channel band: ``narrowband``, when present, is the calibration fitted on band-limited speech
    (telephone, radio), where the same cosine is weaker evidence; :meth:`for_band` picks the one that applies.

    The score is the cosine itself, or with ``cohort`` its AS-norm (:class:`Cohort`): a calibration maps the scores it
    was fitted on, so the cohort belongs to it (a narrowband calibration without one of its own uses its parent's).
    ``part`` is the (start, stop) of the embedding its scores read: a :class:`.BandRouted` model's encoder for the band
    (None: all of it)."""

    a: float
    b: float
    c: float
    d: float
    fa_llr: tuple[float, ...] = ()
    fa_per_hour: tuple[float, ...] = ()
    narrowband: Calibration | None = None
    model: str | None = None  # the embedding model whose scores it maps (None: a file written before this was kept)
    cohort: Cohort | None = field(default=None, compare=False, repr=False)
    part: tuple[int, int] | None = None

    def for_band(self, bandwidth_hz: float) -> Calibration:
        """The calibration for audio whose channel band ends at ``bandwidth_hz`` (0: unknown, taken as wideband)."""
        return self.band(band_name(bandwidth_hz))

    def band(self, name: str) -> Calibration:
        """The calibration for the channel band ``name``, "wideband" or "narrowband"."""
        narrow = self.narrowband
        if narrow is None or name != "narrowband":
            return self
        return narrow if narrow.cohort is not None or self.cohort is None else dataclasses.replace(narrow, cohort=self.cohort)

    def narrow(self, embeddings: np.ndarray, bandwidth_hz: float) -> np.ndarray:
        """Which embeddings (n, d) are scored as narrowband: for a band-routed model, those its narrowband encoder
        made (only that part of the vector is filled); otherwise all of them or none, as ``bandwidth_hz`` says."""
        wide, narrow = self.part, self.band("narrowband").part
        if wide is None or narrow is None:
            return np.full(len(embeddings), band_name(bandwidth_hz) == "narrowband")
        return ~np.any(embeddings[:, wide[0] : wide[1]], axis=1) & np.any(embeddings[:, narrow[0] : narrow[1]], axis=1)

    def llr(self, score: np.ndarray | float, speech_s: np.ndarray | float) -> np.ndarray:
        log_s = np.log(np.maximum(np.asarray(speech_s, np.float64), MIN_SPEECH_S))
        s = np.asarray(score, np.float64)
        return self.a + self.b * s + (self.c + self.d * s) * log_s

    def llr_by_band(self, scores: np.ndarray, speech_s: np.ndarray, narrow: np.ndarray) -> np.ndarray:
        """LLRs of rows of ``scores`` heard on either band: the rows where ``narrow`` is true by the narrowband
        calibration, the others by the wideband one (``speech_s`` row by row, as :meth:`llr` takes it)."""
        llrs = np.empty(np.shape(scores))
        for rows, band in ((narrow, "narrowband"), (~narrow, "wideband")):
            llrs[rows] = self.band(band).llr(scores[rows], speech_s[rows])
        return llrs

    def threshold_for(self, false_alarms_per_hour: float) -> float:
        """The lowest LLR threshold expected to raise at most this many false alarms per hour of non-target speech
        per enrolled voice."""
        if false_alarms_per_hour <= 0:
            raise UsageError(f"the false-alarm rate must be positive, not {false_alarms_per_hour}")
        if not self.fa_llr:
            raise UsageError("this calibration has no false-alarm table; give an LLR threshold instead")
        ok = [t for t, rate in zip(self.fa_llr, self.fa_per_hour) if rate <= false_alarms_per_hour]
        return ok[0] if ok else self.fa_llr[-1]

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "a": self.a,
            "b": self.b,
            "c": self.c,
            "d": self.d,
            "false_alarms": {"llr": list(self.fa_llr), "per_hour": list(self.fa_per_hour)},
        }
        if self.narrowband is not None:
            out["narrowband"] = self.narrowband.to_json()
        if self.model is not None:
            out["model"] = self.model
        if self.cohort is not None:
            out["cohort"] = {"name": self.cohort.name, "top": self.cohort.top}
        if self.part is not None:
            out["part"] = list(self.part)
        return out

    @classmethod
    def from_json(cls, data: dict) -> Calibration:  # type: ignore[type-arg]
        table = data.get("false_alarms", {})
        narrow = cls.from_json(data["narrowband"]) if "narrowband" in data else None
        cohort = Cohort.shipped(str(data["cohort"]["name"]), int(data["cohort"]["top"])) if "cohort" in data else None
        return cls(
            float(data["a"]),
            float(data["b"]),
            float(data["c"]),
            float(data["d"]),
            tuple(map(float, table.get("llr", ()))),
            tuple(map(float, table.get("per_hour", ()))),
            narrow,
            str(data["model"]) if "model" in data else None,
            cohort,
            (int(data["part"][0]), int(data["part"][1])) if "part" in data else None,
        )

    @classmethod
    def fit(cls, scores: np.ndarray, speech_s: np.ndarray, target: np.ndarray, pairs: np.ndarray) -> Calibration:
        """Fit on trials: ``scores`` with the ``speech_s`` behind them, ``target`` truth, and ``pairs`` naming the
        (test turn, voice) each score belongs to (running scores of one turn share a pair; its last is its length)."""
        log_s = np.log(np.maximum(speech_s, MIN_SPEECH_S))
        a, b, c, d = fit_logistic(np.column_stack([scores, log_s, scores * log_s]), target.astype(int), prior=0.5)
        fitted = cls(float(a), float(b), float(c), float(d))
        llr = fitted.llr(scores, speech_s)
        non = ~target
        worst = pair_maxima(llr[non], pairs[non])
        hours = max(pair_maxima(speech_s[non], pairs[non]).sum() / 3600, 1e-9)
        grid = np.round(np.arange(-5.0, 20.01, 0.25), 2)
        rates = [round(float((worst >= g).sum() / hours), 4) for g in grid]
        return cls(fitted.a, fitted.b, fitted.c, fitted.d, tuple(float(g) for g in grid), tuple(rates))

    def lowest_score(self, threshold_llr: float, longest_s: float = 600.0) -> float:
        """The lowest score that reaches ``threshold_llr`` with between 1 s and ``longest_s`` of speech behind it
        (``inf`` if none does, ``-inf`` if every score does)."""
        lowest = np.inf
        for log_s in np.log([MIN_SPEECH_S, 10.0, longest_s]):
            slope, base = self.b + self.d * log_s, self.a + self.c * log_s
            if slope > 0:
                lowest = min(lowest, (threshold_llr - base) / slope)
            elif base >= threshold_llr:  # an LLR that does not grow with the score: reached below some score, or never
                return -np.inf
        return float(lowest)

    @classmethod
    def default(cls, model: str = DEFAULT_MODEL) -> Calibration:
        """The calibration shipped with the package for ``model`` (fitted on public speech, numbers only); for a
        band-routed ``WIDE+NARROW``, WIDE's wideband calibration and NARROW's narrowband one, each on its part."""
        if not has_shipped_calibration(model):
            known = ", ".join(SHIPPED_CALIBRATIONS)
            raise ModelError(
                f"no shipped calibration for model {model!r} (there is one for {known} and pairs of them); {FIT_ONE}"
            )
        routed = routed_models(model)
        if routed is not None:
            wide, narrow = routed
            split, stop = _shipped()[wide]["dimension"], _shipped()[wide]["dimension"] + _shipped()[narrow]["dimension"]
            narrowband = cls.default(narrow).band("narrowband")
            return dataclasses.replace(
                cls.default(wide),
                narrowband=dataclasses.replace(narrowband, narrowband=None, model=None, part=(split, stop)),
                model=model,
                part=(0, split),
            )
        return dataclasses.replace(cls.from_json(_shipped()[model]), model=model)

    @classmethod
    def borrowed(cls, model: str) -> Calibration:
        """For scores that decide nothing, or are held to an LLR threshold given outright: ``model``'s own shipped
        calibration, else GE2E's, on plain cosine scores (its LLRs then are not calibrated for ``model``)."""
        if has_shipped_calibration(model):
            return cls.default(model)
        return cls.default("ge2e")

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """A calibration written by ``voxwatch calibrate``."""
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path}: not a voxwatch calibration file ({exc})") from exc


def pair_maxima(values: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The largest of ``values`` per distinct pair id (a turn's running scores share one), in the order of the ids."""
    ids, inverse = np.unique(pairs, return_inverse=True)
    out = np.full(len(ids), -np.inf)
    np.maximum.at(out, inverse, values)
    return out


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


@dataclass(frozen=True)
class Watchlist:
    """The voices being looked for. Row ``i`` of ``matrix`` is a unit-norm voiceprint of voice ``labels[i]``; a voice
    may have several rows (one per enrollment condition) and scores as its best-matching row. Scores are what the
    calibration maps: cosines, normalised against its cohort when it has one."""

    labels: tuple[str, ...]
    matrix: np.ndarray
    calibration: Calibration
    names: tuple[str, ...] = field(init=False)
    _starts: np.ndarray = field(init=False, repr=False)
    _bands: dict[str, _BandPrints] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.matrix.ndim != 2 or len(self.labels) != len(self.matrix):
            raise UsageError(
                f"watchlist needs one voice label per voiceprint: {len(self.labels)} labels, matrix {self.matrix.shape}"
            )
        starts = [i for i, label in enumerate(self.labels) if i == 0 or label != self.labels[i - 1]]
        names = tuple(self.labels[i] for i in starts)
        if len(set(names)) != len(names):
            raise UsageError("a voice's voiceprints must be adjacent rows of the watchlist")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "_starts", np.array(starts, np.intp))
        bands = {band: _BandPrints.of(self.matrix, self.calibration.band(band)) for band in ("wideband", "narrowband")}
        object.__setattr__(self, "_bands", bands)

    @classmethod
    def empty(cls, dimension: int, calibration: Calibration) -> Watchlist:
        return cls((), np.zeros((0, dimension), np.float32), calibration)

    def scores(self, embeddings: np.ndarray, band: str = "wideband") -> np.ndarray:
        """Score of each embedding (n, d), heard on a ``band`` channel ("wideband" or "narrowband"), with each voice's
        best voiceprint: (n, len(names))."""
        prints = self._bands[band]
        unit = prints.read(embeddings)
        rows = unit @ prints.matrix.T
        if not len(self.names):
            return rows
        if prints.cohort is not None and prints.stats is not None:
            rows = prints.cohort.normalise(rows, prints.cohort.stats(unit), prints.stats)
        return np.maximum.reduceat(rows, self._starts, axis=1)

    def llrs(
        self, embeddings: np.ndarray, speech_s: np.ndarray | float, bandwidth_hz: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores and calibrated LLRs of embeddings (n, d) with ``speech_s`` behind each, heard on a channel whose band
        ends at ``bandwidth_hz`` (0: unknown)."""
        scores = self.scores(embeddings, band_name(bandwidth_hz))
        return scores, self.calibration.for_band(bandwidth_hz).llr(scores, np.asarray(speech_s, np.float64).reshape(-1, 1))


@dataclass(frozen=True)
class _BandPrints:
    """A watchlist as one band's calibration scores it: the part of each voiceprint it reads (unit rows), its cohort
    and the voiceprints' cohort statistics."""

    part: tuple[int, int] | None
    matrix: np.ndarray
    cohort: Cohort | None
    stats: tuple[np.ndarray, np.ndarray] | None

    @classmethod
    def of(cls, matrix: np.ndarray, calibration: Calibration) -> _BandPrints:
        part, cohort = calibration.part, calibration.cohort
        if part is not None and not 0 <= part[0] < part[1] <= matrix.shape[1]:
            raise UsageError(
                f"the calibration reads values {part[0]} to {part[1]} of each voiceprint, the watchlist has"
                f" {matrix.shape[1]}-d voiceprints: the calibration is another model's"
            )
        prints = cls(part, matrix, cohort, None)
        prints = dataclasses.replace(prints, matrix=prints.read(matrix))
        if cohort is None:
            return prints
        if cohort.vectors.shape[1] != prints.matrix.shape[1]:
            raise UsageError(
                f"the calibration's cohort {cohort.name!r} has {cohort.vectors.shape[1]}-d voices, the watchlist"
                f" {prints.matrix.shape[1]}-d voiceprints: the calibration is another model's"
            )
        return dataclasses.replace(prints, stats=cohort.stats(prints.matrix))

    def read(self, embeddings: np.ndarray) -> np.ndarray:
        """The part of each embedding (n, d) this band scores, unit-norm (zero where that part is empty)."""
        return l2_normalise(embeddings if self.part is None else embeddings[:, self.part[0] : self.part[1]])


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
