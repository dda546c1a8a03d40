"""Recording quality: SNR, clipping and bandwidth from the samples alone, and how well a voice's enrollments back it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .audio import RATE_HZ
from .records import EnrollmentInfo, _JsonRecord

FRAME = 320  # 20 ms


@dataclass(frozen=True)
class Quality(_JsonRecord):
    """``snr_db`` compares loud frames (90th energy percentile) with the noise floor (10th); ``clipping`` is the
    share of samples at full scale; ``bandwidth_hz`` is the channel's upper band edge (see :func:`band_edge_hz`)."""

    duration_s: float
    snr_db: float
    clipping: float
    bandwidth_hz: float


def measure(samples: np.ndarray, rate_hz: int = RATE_HZ) -> Quality:
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
    return Quality(round(len(x) / rate_hz, 3), round(float(min(snr, 90.0)), 1), round(clipping, 5), band_edge_hz(x, rate_hz))


BAND_FRAME = 512  # 32 ms: the frames the band is measured on (the VAD's too)
BAND_HISTORY_S = 8.0  # a live stream's band: the latest 8 s of its audio...
BAND_RECENT_S = 2.4  # ...unless its latest 2.4 s are clearly on another channel: a caller after the studio, and back
CLEARLY_NARROW_HZ = 3700.0  # telephone and radio channels end below this
CLEARLY_WIDE_HZ = 5000.0  # and no narrowband channel above this
DIGITAL_SILENCE_DBFS = -80.0  # frames below this carry no channel at all (squelch, gaps filled with zeros)
SQUELCH_FRAMES = 8  # a gap of more digitally silent frames than this (0.26 s) parts a recording's band measure


_RECENT_FRAMES = round(BAND_RECENT_S * RATE_HZ / BAND_FRAME)
_HANN = np.hanning(BAND_FRAME).astype(np.float32)


def frame_power(frames: np.ndarray) -> np.ndarray:
    """Power spectra of ``(n, BAND_FRAME)`` frames (Hann window, float32), for :func:`band_edge_of`."""
    spectra = np.fft.rfft(np.asarray(frames, np.float32) * _HANN, axis=1)
    return spectra.real**2 + spectra.imag**2 + np.float32(1e-20)


def _audible(power: np.ndarray) -> np.ndarray:
    """Which :func:`frame_power` frames are above digital silence (Parseval, over the Hann window's mean square)."""
    return 10 * np.log10(2 * power.sum(axis=1) / (BAND_FRAME**2 * 0.375)) > DIGITAL_SILENCE_DBFS


def band_edge_of(power: np.ndarray, rate_hz: int = RATE_HZ, margin_db: float = 3.0, floor_db: float = 50.0) -> float:
    """The channel's upper band edge from the :func:`frame_power` spectra of a stretch of audio: the highest frequency
    where the long-term spectrum of the loudest frames stands ``margin_db`` above that of the quietest frames (a
    band-limited channel's noise is all that is left above its edge) and within ``floor_db`` of the spectrum's peak
    (a filter's stop band). Frames of digital silence are left out: a channel's noise, not the absence of any
    signal, tells where its band ends. Unlike an energy share, this does not mistake a dark voice for a narrow
    channel, nor broadband noise for a wide one. 0 when it cannot be measured."""
    power = power[_audible(power)]
    if len(power) < 8:
        return 0.0
    energy = power.sum(axis=1)
    low, high = np.percentile(energy, [20, 70])
    kernel = np.ones(9) / 9  # ~280 Hz smoothing
    loud = np.convolve(10 * np.log10(power[energy >= high].mean(axis=0)), kernel, mode="same")
    quiet = np.convolve(10 * np.log10(power[energy <= low].mean(axis=0)), kernel, mode="same")
    carried = np.flatnonzero((loud > quiet + margin_db) & (loud > loud.max() - floor_db))
    return float(round(carried[-1] * rate_hz / BAND_FRAME)) if len(carried) else 0.0


def band_edge_hz(samples: np.ndarray, rate_hz: int = RATE_HZ) -> float:
    """The upper band edge of the channel a recording was heard on (see :func:`band_edge_of`), measured on all of it.
    Where gaps of digital silence part it (squelch between radio transmissions, each with its own level of hiss),
    each part is measured on its own and the recording's band is their median, weighted by their length."""
    x = np.asarray(samples, np.float32)
    n = len(x) // BAND_FRAME
    power = frame_power(x[: n * BAND_FRAME].reshape(n, BAND_FRAME))
    audible = np.flatnonzero(_audible(power))
    parts = np.split(audible, np.flatnonzero(np.diff(audible) > SQUELCH_FRAMES) + 1) if len(audible) else []
    measured = [(band_edge_of(power[part], rate_hz), len(part)) for part in parts]  # 0: too short to measure
    measured = sorted((edge, frames) for edge, frames in measured if edge > 0)
    if not measured:
        return 0.0
    weight = np.cumsum([frames for _, frames in measured])
    return measured[int(np.searchsorted(weight, weight[-1] / 2))][0]


class BandMeter:
    """A live stream's channel band: :func:`band_edge_of` over its latest :data:`BAND_HISTORY_S` of audio, pauses
    included (a channel's noise between words tells its band better than the speech alone). Where the channel
    changes with the speaker (a phone-in), the latest :data:`BAND_RECENT_S` alone decide once they are clearly on one
    side of the narrowband boundary (below :data:`CLEARLY_NARROW_HZ`, or from :data:`CLEARLY_WIDE_HZ`): the longer
    history would hold the old channel for seconds."""

    def __init__(self) -> None:
        self._power = np.zeros((0, BAND_FRAME // 2 + 1), np.float32)  # a ring of the latest frames' spectra
        self._frames = 0

    def add(self, power: np.ndarray) -> None:
        """One frame's :func:`frame_power` spectrum."""
        if not len(self._power):
            self._power = np.zeros((round(BAND_HISTORY_S * RATE_HZ / BAND_FRAME), BAND_FRAME // 2 + 1), np.float32)
        self._power[self._frames % len(self._power)] = power
        self._frames += 1

    def edge_hz(self) -> float:
        """The band edge now (0 when it cannot be measured yet)."""
        if not self._frames:
            return 0.0
        latest = (self._frames - 1 - np.arange(min(self._frames, _RECENT_FRAMES))) % len(self._power)
        recent = band_edge_of(self._power[latest])
        if 0 < recent < CLEARLY_NARROW_HZ or recent >= CLEARLY_WIDE_HZ:
            return recent
        return band_edge_of(self._power[: self._frames])


def enrollment_quality(enrollments: list[EnrollmentInfo]) -> dict[str, Any]:
    """How well a voice is backed: net speech, worst SNR, speech-weighted consistency, and a grade."""
    speech = sum(e.speech_s for e in enrollments)
    snr = min((e.snr_db for e in enrollments), default=0.0)
    consistency = sum(e.consistency * e.speech_s for e in enrollments) / speech if speech else 0.0
    if speech >= 20 and consistency >= 0.75 and snr >= 15:
        grade = "good"
    elif speech >= 8 and consistency >= 0.6:
        grade = "fair"
    else:
        grade = "poor"
    return {"speech_s": round(speech, 2), "min_snr_db": round(snr, 1), "consistency": round(consistency, 3), "grade": grade}


# -- the service ----------------------------------------------------------------------------------------------------
