"""Figures of verification performance: DET and Tippett plots (matplotlib, imported only when a figure is drawn)."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from .errors import UsageError
from .metrics import det_curve, eer, score_pair

__all__ = ["det_figure", "new_figure", "plot_det", "plot_tippett", "tippett_figure"]

_DET_TICKS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)
_DET_LIMITS = (0.0005, 0.5)


def _probit(p: np.ndarray) -> np.ndarray:
    inv_cdf = np.vectorize(NormalDist().inv_cdf, otypes=[np.float64])
    return inv_cdf(np.clip(np.asarray(p, dtype=np.float64), 1e-9, 1.0 - 1e-9))


def new_figure(width_in: float, height_in: float) -> Any:
    """A matplotlib ``Figure`` on the Agg canvas (no global state, no display); matplotlib is the ``plots`` extra."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise UsageError("plots need matplotlib, an optional extra: pip install 'voxwatch[plots]'") from exc
    figure = Figure(figsize=(width_in, height_in))
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: str | Path) -> Path:
    out = Path(path)
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
    if not curves:
        raise UsageError("plot_det needs at least one labelled (target, nontarget) pair")
    figure = new_figure(6, 6)
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


def tippett_figure(
    target_llr: np.ndarray,
    nontarget_llr: np.ndarray,
    title: str = "Tippett",
    labels: tuple[str, str] = ("target", "non-target"),
    case_log10: float | None = None,
) -> Any:
    """The matplotlib figure of :func:`plot_tippett`, optionally with one case's log10 LR marked."""
    tar, non = score_pair(target_llr, nontarget_llr)
    figure = new_figure(7, 4.5)
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
