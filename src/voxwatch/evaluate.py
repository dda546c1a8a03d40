"""Speaker-verification performance: DET curves, EER, minDCF, Cllr/minCllr, linear calibration, plots, trial lists.

Conventions: a trial is accepted when ``score >= threshold``; rates are fractions in 0..1; LLRs are natural-log.
EER and minCllr follow the BOSARIS toolkit (ROC convex hull via pool-adjacent-violators).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np

from .errors import UsageError

__all__ = [
    "Metrics",
    "cllr",
    "det_curve",
    "eer",
    "evaluate",
    "fit_logistic",
    "min_cllr",
    "min_dcf",
    "plot_det",
    "plot_tippett",
    "det_figure",
    "tippett_figure",
    "read_trials",
    "score_alerts",
    "SpottingResult",
]

log = logging.getLogger(__name__)

_LOG2 = math.log(2.0)
_DET_TICKS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)
_DET_LIMITS = (0.0005, 0.5)
_LABELS = {"1": 1, "target": 1, "tgt": 1, "0": 0, "nontarget": 0, "non-target": 0, "nontgt": 0, "imp": 0, "impostor": 0}


@dataclass(frozen=True)
class Metrics:
    """Verification performance of one system on one trial list (rates in 0..1, Cllr in bits)."""

    eer: float
    eer_threshold: float
    min_dcf: float
    min_dcf_threshold: float
    p_target: float
    cllr: float | None
    min_cllr: float
    n_target: int
    n_nontarget: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Metrics:
        return cls(
            eer=float(data["eer"]),
            eer_threshold=float(data["eer_threshold"]),
            min_dcf=float(data["min_dcf"]),
            min_dcf_threshold=float(data["min_dcf_threshold"]),
            p_target=float(data["p_target"]),
            cllr=None if data.get("cllr") is None else float(data["cllr"]),
            min_cllr=float(data["min_cllr"]),
            n_target=int(data["n_target"]),
            n_nontarget=int(data["n_nontarget"]),
        )


# ---------------------------------------------------------------------------------------------------------------
# Validation


def _array(values: Any, name: str, finite: bool = True) -> np.ndarray:
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{name} must be numbers: {exc}") from exc
    if x.ndim != 1:
        raise UsageError(f"{name} must be a 1-D array of scores, got shape {x.shape}")
    if x.size == 0:
        raise UsageError(f"no {name}: performance needs at least one target and one non-target trial")
    bad = np.count_nonzero(~np.isfinite(x)) if finite else np.count_nonzero(np.isnan(x))
    if bad:
        kind = "non-finite (NaN or infinite)" if finite else "NaN"
        raise UsageError(f"{name} contain {bad} {kind} value(s) out of {x.size}; drop or fix those trials")
    return x


def _pair(target: Any, nontarget: Any, finite: bool = True) -> tuple[np.ndarray, np.ndarray]:
    return _array(target, "target scores", finite), _array(nontarget, "non-target scores", finite)


def _check_prior(p: float, name: str) -> float:
    p = float(p)
    if not 0.0 < p < 1.0:
        raise UsageError(f"{name} must be strictly between 0 and 1, got {p}")
    return p


# ---------------------------------------------------------------------------------------------------------------
# PAV and the ROC convex hull


def _pav_blocks(sums: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pool-adjacent-violators on ``y = sums / weights``: per block its sum, weight and number of input positions.
    Block means ``sums / weights`` are strictly increasing."""
    y = sums / weights
    starts = np.flatnonzero(np.r_[True, y[1:] != y[:-1]])  # runs of equal values are pooled anyway: pre-pool them
    run_s = np.add.reduceat(sums, starts).tolist()
    run_w = np.add.reduceat(weights, starts).tolist()
    run_c = np.diff(np.r_[starts, y.size]).tolist()
    out_s: list[float] = []
    out_w: list[float] = []
    out_c: list[int] = []
    for s, w, c in zip(run_s, run_w, run_c):
        while out_s and out_s[-1] * w >= s * out_w[-1]:  # previous mean >= this mean: pool
            s += out_s.pop()
            w += out_w.pop()
            c += out_c.pop()
        out_s.append(s)
        out_w.append(w)
        out_c.append(c)
    return np.asarray(out_s), np.asarray(out_w), np.asarray(out_c, dtype=np.int64)


def _pav(y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted least-squares non-decreasing fit of ``y`` (isotonic regression)."""
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
    if y.ndim != 1 or w.shape != y.shape:
        raise UsageError(f"PAV needs 1-D values and matching weights, got {y.shape} and {w.shape}")
    if y.size == 0:
        return y.copy()
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(w)) and np.all(w > 0)):
        raise UsageError("PAV needs finite values and finite positive weights")
    s, bw, c = _pav_blocks(y * w, w)
    return np.repeat(s / bw, c)


class _Hull(NamedTuple):
    """ROC convex hull: block ``b`` holds ``n_tar[b]`` targets and ``n_non[b]`` non-targets; vertex ``j`` accepts
    ``score >= thresholds[j]`` (``len(thresholds) == n_blocks + 1``)."""

    n_tar: np.ndarray
    n_non: np.ndarray
    thresholds: np.ndarray


def _hull(target: np.ndarray, nontarget: np.ndarray) -> _Hull:
    scores = np.concatenate([target, nontarget])
    labels = np.concatenate([np.ones(target.size), np.zeros(nontarget.size)])
    order = np.argsort(scores, kind="stable")
    scores, labels = scores[order], labels[order]
    starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])  # tied scores form one group: never split
    values = scores[starts]
    tar = np.add.reduceat(labels, starts)
    size = np.diff(np.r_[starts, scores.size]).astype(np.float64)
    block_tar, block_size, block_groups = _pav_blocks(tar, size)
    first_group = np.r_[0, np.cumsum(block_groups)[:-1]]
    thresholds = np.r_[values[first_group], np.nextafter(values[-1], np.inf)]
    return _Hull(block_tar, block_size - block_tar, thresholds)


# ---------------------------------------------------------------------------------------------------------------
# Metrics


def det_curve(target: np.ndarray, nontarget: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Miss rates, false-alarm rates and thresholds at every distinct operating point, from accept-all
    (miss 0, false alarm 1) to reject-all (miss 1, false alarm 0). Tied scores move together."""
    tar, non = _pair(target, nontarget)
    tar, non = np.sort(tar), np.sort(non)
    values = np.unique(np.concatenate([tar, non]))
    thresholds = np.r_[values, np.nextafter(values[-1], np.inf)]
    p_miss = np.searchsorted(tar, thresholds, side="left") / tar.size
    p_fa = (non.size - np.searchsorted(non, thresholds, side="left")) / non.size
    return p_miss, p_fa, thresholds


def eer(target: np.ndarray, nontarget: np.ndarray) -> tuple[float, float]:
    """Equal error rate and its threshold, where the ROC convex hull crosses miss = false alarm (BOSARIS ``rocch2eer``).
    The threshold is interpolated between the two hull vertices around the crossing."""
    tar, non = _pair(target, nontarget)
    hull = _hull(tar, non)
    p_miss = np.r_[0.0, np.cumsum(hull.n_tar)] / tar.size
    p_fa = 1.0 - np.r_[0.0, np.cumsum(hull.n_non)] / non.size
    gap = p_fa - p_miss  # +1 at accept-all, decreasing, -1 at reject-all
    j = int(np.argmax(gap[1:] <= 0.0))  # segment j -> j+1 crosses the diagonal
    alpha = gap[j] / (gap[j] - gap[j + 1])
    rate = p_fa[j] + alpha * (p_fa[j + 1] - p_fa[j])
    threshold = hull.thresholds[j] + alpha * (hull.thresholds[j + 1] - hull.thresholds[j])
    return float(rate), float(threshold)


def min_dcf(
    target: np.ndarray, nontarget: np.ndarray, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0
) -> tuple[float, float]:
    """Minimum normalised detection cost and its threshold (NIST SRE: divided by the cost of the best trivial system,
    ``min(c_miss * p_target, c_fa * (1 - p_target))``, so 1 means no better than always accepting or rejecting)."""
    p_target = _check_prior(p_target, "p_target")
    if not (c_miss > 0 and c_fa > 0):
        raise UsageError(f"c_miss and c_fa must be positive, got {c_miss} and {c_fa}")
    p_miss, p_fa, thresholds = det_curve(target, nontarget)
    cost = c_miss * p_target * p_miss + c_fa * (1.0 - p_target) * p_fa
    best = int(np.argmin(cost))
    norm = min(c_miss * p_target, c_fa * (1.0 - p_target))
    return float(cost[best] / norm), float(thresholds[best])


def cllr(target_llr: np.ndarray, nontarget_llr: np.ndarray) -> float:
    """Log-likelihood-ratio cost in bits of natural-log LLRs: 0 is perfect, 1 is an uninformative system."""
    tar, non = _pair(target_llr, nontarget_llr, finite=False)
    c_tar = float(np.mean(np.logaddexp(0.0, -tar)))
    c_non = float(np.mean(np.logaddexp(0.0, non)))
    return 0.5 * (c_tar + c_non) / _LOG2


def min_cllr(target: np.ndarray, nontarget: np.ndarray) -> float:
    """Cllr in bits after the optimal monotone calibration of the scores (PAV), i.e. the discrimination loss alone."""
    tar, non = _pair(target, nontarget)
    hull = _hull(tar, non)
    prior_log_odds = math.log(tar.size / non.size)
    has_tar, has_non = hull.n_tar > 0, hull.n_non > 0
    mixed = has_tar & has_non
    # block LLR = log(n_tar / n_non) - log(N_tar / N_non); pure blocks have infinite LLR and cost nothing
    llr = np.zeros_like(hull.n_tar)
    llr[mixed] = np.log(hull.n_tar[mixed] / hull.n_non[mixed]) - prior_log_odds
    c_tar = float(np.sum(hull.n_tar[mixed] * np.logaddexp(0.0, -llr[mixed])))
    c_non = float(np.sum(hull.n_non[mixed] * np.logaddexp(0.0, llr[mixed])))
    return 0.5 * (c_tar / tar.size + c_non / non.size) / _LOG2


def evaluate(target: np.ndarray, nontarget: np.ndarray, p_target: float = 0.01, llr: bool = True) -> Metrics:
    """All metrics for one set of trials; ``llr=False`` when scores are not calibrated LLRs (Cllr is then None)."""
    tar, non = _pair(target, nontarget)
    rate, rate_threshold = eer(tar, non)
    dcf, dcf_threshold = min_dcf(tar, non, p_target=p_target)
    return Metrics(
        eer=rate,
        eer_threshold=rate_threshold,
        min_dcf=dcf,
        min_dcf_threshold=dcf_threshold,
        p_target=float(p_target),
        cllr=cllr(tar, non) if llr else None,
        min_cllr=min_cllr(tar, non),
        n_target=int(tar.size),
        n_nontarget=int(non.size),
    )


# ---------------------------------------------------------------------------------------------------------------
# Calibration


def fit_logistic(
    features: np.ndarray, labels: np.ndarray, prior: float = 0.5, l2: float = 1e-4, iterations: int = 50
) -> np.ndarray:
    """Prior-weighted logistic regression (BOSARIS/FoCal linear calibration and fusion) by damped Newton-Raphson.

    ``features`` is (n, k) (a 1-D array is one feature), ``labels`` 1 for targets and 0 for non-targets. Targets and
    non-targets weigh ``prior`` and ``1 - prior`` in total. Returns k + 1 weights, bias first, such that
    ``w[0] + features @ w[1:]`` is a calibrated natural-log LLR. ``l2`` penalises the slopes (not the bias), which
    keeps the fit finite on separable data.
    """
    prior = _check_prior(prior, "prior")
    if l2 < 0:
        raise UsageError(f"l2 must be >= 0, got {l2}")
    if iterations < 1:
        raise UsageError(f"iterations must be >= 1, got {iterations}")
    try:
        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(labels, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"features and labels must be numbers: {exc}") from exc
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.size:
        raise UsageError(f"features must be (n, k) with one label each, got features {x.shape} and labels {y.shape}")
    if not np.all(np.isfinite(x)):
        raise UsageError("features contain NaN or infinite values")
    if not np.all((y == 0) | (y == 1)):
        raise UsageError("labels must be 1 (target) or 0 (non-target)")
    n_tar = int(np.count_nonzero(y))
    n_non = y.size - n_tar
    if n_tar == 0 or n_non == 0:
        raise UsageError(f"calibration needs both classes, got {n_tar} target and {n_non} non-target trials")

    design = np.column_stack([np.ones(y.size), x])
    weight = np.where(y == 1, prior / n_tar, (1.0 - prior) / n_non)
    penalty = np.full(design.shape[1], float(l2))
    penalty[0] = 0.0
    sign = 2.0 * y - 1.0

    def objective(beta: np.ndarray) -> float:
        z = design @ beta
        return float(weight @ np.logaddexp(0.0, -sign * z) + 0.5 * penalty @ (beta * beta))

    beta = np.zeros(design.shape[1])
    beta[0] = math.log(prior / (1.0 - prior))  # the best constant log-odds under the weighted prior
    value = objective(beta)
    for iteration in range(iterations):
        z = design @ beta
        p = 0.5 * (1.0 + np.tanh(0.5 * z))  # sigmoid without overflow
        grad = design.T @ (weight * (p - y)) + penalty * beta
        hess = (design * (weight * p * (1.0 - p))[:, None]).T @ design + np.diag(penalty)
        hess[np.diag_indices_from(hess)] += 1e-12  # keeps a saturated bias direction solvable
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        decrement = float(grad @ step)
        if not decrement > 1e-14:
            break
        t = 1.0
        while t > 1e-10:  # backtracking line search: Newton steps can overshoot on near-separable data
            candidate = beta - t * step
            new_value = objective(candidate)
            if new_value <= value - 1e-4 * t * decrement:
                break
            t *= 0.5
        else:
            break
        beta, value = candidate, new_value
    else:
        log.warning("fit_logistic: no convergence after %d iterations (objective %.6g)", iterations, value)
    log.debug("fit_logistic: %d iterations, objective %.6g, weights %s", iteration + 1, value, beta)
    beta[0] -= math.log(prior / (1.0 - prior))
    return beta


# ---------------------------------------------------------------------------------------------------------------
# Plots


def _probit(p: np.ndarray) -> np.ndarray:
    inv_cdf = np.vectorize(NormalDist().inv_cdf, otypes=[np.float64])
    return inv_cdf(np.clip(np.asarray(p, dtype=np.float64), 1e-9, 1.0 - 1e-9))


def _save(figure: Any, path: str | Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out = Path(path)
    FigureCanvasAgg(figure)
    try:
        figure.savefig(out, format="png", dpi=120)
    except OSError as exc:
        raise UsageError(f"cannot write plot {out}: {exc}") from exc
    return out


def plot_det(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str = "DET") -> Path:
    """DET plot (probit axes) of each labelled ``(target, nontarget)`` score pair, EER marked; writes a PNG."""
    return _save(det_figure(curves, title), path)


def det_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str = "DET") -> Any:
    """The matplotlib figure of :func:`plot_det`."""
    from matplotlib.figure import Figure

    if not curves:
        raise UsageError("plot_det needs at least one labelled (target, nontarget) pair")
    figure = Figure(figsize=(6, 6))
    ax = figure.add_subplot()
    lo, hi = _probit(np.asarray(_DET_LIMITS))
    ax.plot([lo, hi], [lo, hi], color="0.7", linestyle=":", linewidth=1)
    for label, (target, nontarget) in curves.items():
        p_miss, p_fa, _ = det_curve(target, nontarget)
        rate, _ = eer(target, nontarget)
        (line,) = ax.plot(_probit(p_fa), _probit(p_miss), linewidth=1.5, label=f"{label} (EER {100 * rate:.2f}%)")
        point = float(_probit(np.asarray([rate]))[0])
        ax.plot([point], [point], marker="o", color=line.get_color(), markersize=6)
    ticks = _probit(np.asarray(_DET_TICKS))
    names = [f"{100 * t:g}" for t in _DET_TICKS]
    ax.set_xticks(ticks, names)
    ax.set_yticks(ticks, names)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("False alarm rate (%)")
    ax.set_ylabel("Miss rate (%)")
    ax.set_title(title)
    ax.grid(True, color="0.85")
    ax.legend(loc="upper right")
    figure.tight_layout()
    return figure


def plot_tippett(target_llr: np.ndarray, nontarget_llr: np.ndarray, path: str | Path, title: str = "Tippett") -> Path:
    """Tippett plot: the proportion of target and of non-target trials whose LR exceeds x (log10 LR); writes a PNG."""
    return _save(tippett_figure(target_llr, nontarget_llr, title), path)


def tippett_figure(target_llr: np.ndarray, nontarget_llr: np.ndarray, title: str = "Tippett", labels: tuple[str, str] = ("target", "non-target"),
                   case_log10: float | None = None) -> Any:
    """The matplotlib figure of :func:`plot_tippett`, optionally with one case's log10 LR marked."""
    from matplotlib.figure import Figure

    tar, non = _pair(target_llr, nontarget_llr)
    figure = Figure(figsize=(7, 4.5))
    ax = figure.add_subplot()
    log10 = math.log(10.0)
    for values, label, color in ((tar, labels[0], "tab:blue"), (non, labels[1], "tab:red")):
        x = np.sort(values) / log10
        above = 1.0 - np.arange(1, x.size + 1) / x.size  # proportion > x[i] (ties drop together)
        ax.step(np.r_[x[0], x], np.r_[1.0, above], where="post", color=color, label=f"{label} ({x.size})")
    ax.axvline(0.0, color="0.5", linestyle=":", linewidth=1)
    if case_log10 is not None:
        ax.axvline(case_log10, color="black", linewidth=2, label=f"this case (log10 LR {case_log10:+.2f})")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("log10 LR greater than")
    ax.set_ylabel("Proportion of trials")
    ax.set_title(title)
    ax.grid(True, color="0.85")
    ax.legend(loc="best")
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------------------------------------------------------
# Trial lists


def read_trials(path: str | Path) -> list[tuple[int, str, str]]:
    """Read a VoxCeleb-style trial list: lines ``label enroll test`` (label 1/0, target/nontarget or tgt/imp);
    blank lines and ``#`` comments are skipped; relative paths are resolved against the list's folder."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read trial list {source}: {exc}") from exc
    folder = source.absolute().parent
    trials: list[tuple[int, str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) != 3:
            raise UsageError(f"{source}:{number}: expected 'label enroll test', got {len(fields)} field(s): {line.strip()!r}")
        label = _LABELS.get(fields[0].lower())
        if label is None:
            raise UsageError(f"{source}:{number}: unknown label {fields[0]!r}; use 1/0, target/nontarget or tgt/imp")
        trials.append((label, str(folder / fields[1]), str(folder / fields[2])))
    n_tar = sum(label for label, _, _ in trials)
    if not trials:
        raise UsageError(f"{source}: no trials found")
    if n_tar == 0 or n_tar == len(trials):
        missing = "target" if n_tar == 0 else "non-target"
        raise UsageError(f"{source}: no {missing} trials among {len(trials)}; a trial list needs both classes")
    return trials


# ---------------------------------------------------------------------------------------------------------------
# Spotting: alerts against ground-truth turns


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


def score_alerts(alerts: list[Any], turns: list[Any], enrolled: set[str], stream_s: float, tolerance_s: float = 1.0) -> SpottingResult:
    """Match alerts (``speaker``, ``stream_time_s``) to turns (``speaker``, ``start_s``, ``end_s``) of one stream.

    An alert is correct when its voice is speaking at ``stream_time_s`` (within ``tolerance_s`` after the turn's end,
    the time evidence takes to arrive); each target turn counts once, by its earliest correct alert."""
    first: dict[int, float] = {}
    false_alarms = 0
    for alert in alerts:
        hits = [i for i, t in enumerate(turns) if t.speaker == alert.speaker and t.start_s <= alert.stream_time_s <= t.end_s + tolerance_s]
        if not hits:
            false_alarms += 1
        for i in hits:
            first[i] = min(first.get(i, math.inf), alert.stream_time_s - turns[i].start_s)
    targets = [i for i, t in enumerate(turns) if t.speaker in enrolled]
    times = tuple(round(first[i], 3) for i in targets if i in first)
    return SpottingResult(len(targets), len(times), false_alarms, stream_s, times)
