"""The logistic-regression fit behind :meth:`voxwatch.scoring.Calibration.fit` (linear calibration and fusion)."""

from __future__ import annotations

import logging
import math

import numpy as np

from .errors import UsageError
from .metrics import check_prior

__all__ = ["fit_logistic"]

log = logging.getLogger(__name__)


def fit_logistic(
    features: np.ndarray, labels: np.ndarray, prior: float = 0.5, l2: float = 1e-4, iterations: int = 50
) -> np.ndarray:
    """Prior-weighted logistic regression (BOSARIS/FoCal linear calibration and fusion) by damped Newton-Raphson.

    ``features`` is (n, k) (a 1-D array is one feature), ``labels`` 1 for targets and 0 for non-targets. Targets and
    non-targets weigh ``prior`` and ``1 - prior`` in total. Returns k + 1 weights, bias first, such that
    ``w[0] + features @ w[1:]`` is a calibrated natural-log LLR. ``l2`` penalises the slopes (not the bias), which
    keeps the fit finite on separable data.
    """
    prior = check_prior(prior, "prior")
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
