"""Speaker-verification metrics: DET curves, EER, minDCF, Cllr and minCllr of target and non-target scores.

Conventions: a trial is accepted when ``score >= threshold``; rates are fractions in 0..1; LLRs are natural-log.
EER and minCllr follow the BOSARIS toolkit (ROC convex hull via pool-adjacent-violators).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

from .errors import UsageError

__all__ = ["Metrics", "cllr", "det_curve", "eer", "evaluate", "min_cllr", "min_dcf"]

_LOG2 = math.log(2.0)


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


def score_pair(target: Any, nontarget: Any, finite: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Target and non-target scores as checked 1-D float arrays (``finite=False`` lets infinite LLRs through)."""
    return _array(target, "target scores", finite), _array(nontarget, "non-target scores", finite)


def check_prior(p: float, name: str) -> float:
    """``p`` as a float strictly between 0 and 1 (a prior), else a :class:`UsageError` naming ``name``."""
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
    tar, non = score_pair(target, nontarget)
    tar, non = np.sort(tar), np.sort(non)
    values = np.unique(np.concatenate([tar, non]))
    thresholds = np.r_[values, np.nextafter(values[-1], np.inf)]
    p_miss = np.searchsorted(tar, thresholds, side="left") / tar.size
    p_fa = (non.size - np.searchsorted(non, thresholds, side="left")) / non.size
    return p_miss, p_fa, thresholds


def eer(target: np.ndarray, nontarget: np.ndarray) -> tuple[float, float]:
    """Equal error rate and its threshold, where the ROC convex hull crosses miss = false alarm (BOSARIS ``rocch2eer``).
    The threshold is interpolated between the two hull vertices around the crossing."""
    tar, non = score_pair(target, nontarget)
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
    p_target = check_prior(p_target, "p_target")
    if not (c_miss > 0 and c_fa > 0):
        raise UsageError(f"c_miss and c_fa must be positive, got {c_miss} and {c_fa}")
    p_miss, p_fa, thresholds = det_curve(target, nontarget)
    cost = c_miss * p_target * p_miss + c_fa * (1.0 - p_target) * p_fa
    best = int(np.argmin(cost))
    norm = min(c_miss * p_target, c_fa * (1.0 - p_target))
    return float(cost[best] / norm), float(thresholds[best])


def cllr(target_llr: np.ndarray, nontarget_llr: np.ndarray) -> float:
    """Log-likelihood-ratio cost in bits of natural-log LLRs: 0 is perfect, 1 is an uninformative system."""
    tar, non = score_pair(target_llr, nontarget_llr, finite=False)
    c_tar = float(np.mean(np.logaddexp(0.0, -tar)))
    c_non = float(np.mean(np.logaddexp(0.0, non)))
    return 0.5 * (c_tar + c_non) / _LOG2


def min_cllr(target: np.ndarray, nontarget: np.ndarray) -> float:
    """Cllr in bits after the optimal monotone calibration of the scores (PAV), i.e. the discrimination loss alone."""
    tar, non = score_pair(target, nontarget)
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
    tar, non = score_pair(target, nontarget)
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
