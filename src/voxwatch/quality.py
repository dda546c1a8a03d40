"""Recording quality: signal-to-noise ratio, clipping and effective bandwidth, from the samples alone."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .records import _JsonRecord

FRAME = 320  # 20 ms


@dataclass(frozen=True)
class Quality(_JsonRecord):
    """``snr_db`` compares loud frames (90th energy percentile) with the noise floor (10th); ``clipping`` is the
    share of samples at full scale; ``bandwidth_hz`` holds 99 % of the active frames' energy."""

    duration_s: float
    snr_db: float
    clipping: float
    bandwidth_hz: float


def measure(samples: np.ndarray, rate_hz: int = 16000) -> Quality:
    x = np.asarray(samples, np.float32)
    n = len(x) // FRAME
    if n < 2:
        return Quality(round(len(x) / rate_hz, 3), 0.0, 0.0, 0.0)
    frames = x[: n * FRAME].reshape(n, FRAME).astype(np.float64)
    energy = np.mean(frames**2, axis=1) + 1e-12
    noise, loud = np.percentile(energy, [10, 90])
    snr = 10 * np.log10(max(loud - noise, 1e-12) / noise) if loud > noise else 0.0
    peak = np.max(np.abs(x))
    clipping = float(np.mean(np.abs(x) >= 0.999)) if peak >= 0.999 else 0.0
    active = frames[energy >= np.median(energy)]
    spectrum = np.mean(np.abs(np.fft.rfft(active * np.hanning(FRAME), axis=1)) ** 2, axis=0)
    cumulative = np.cumsum(spectrum) / max(spectrum.sum(), 1e-12)
    bandwidth = float(np.searchsorted(cumulative, 0.99)) * rate_hz / FRAME
    return Quality(round(len(x) / rate_hz, 3), round(float(min(snr, 90.0)), 1), round(clipping, 5), round(bandwidth, 0))
