"""Speech perturbations that imitate a speaker under emotion or strain (numpy only; general, not tuned to any
result): pitch shifts with or without the formants, tempo changes (WSOLA) and raised vocal effort. Used by the
accuracy benchmark's emotional conditions and by the encoder's training augmentation."""

from __future__ import annotations

import math

import numpy as np

from . import channels
from .audio import RATE_HZ


def resample(x: np.ndarray, length: int) -> np.ndarray:
    """Band-limited (FFT) resampling of ``x`` to ``length`` samples."""
    x = np.asarray(x, np.float64)
    if length == len(x) or not len(x):
        return x.astype(np.float32)
    spectrum = np.fft.rfft(x)
    bins = length // 2 + 1
    spectrum = spectrum[:bins] if bins <= len(spectrum) else np.r_[spectrum, np.zeros(bins - len(spectrum))]
    return (np.fft.irfft(spectrum, length) * (length / len(x))).astype(np.float32)


def resample_pitch(x: np.ndarray, semitones: float) -> np.ndarray:
    """Raise (or lower) pitch by resampling alone: tempo and formants move with it (a shorter or longer vocal tract)."""
    return resample(x, max(1, round(len(x) / 2 ** (semitones / 12))))


def pitch_shift(x: np.ndarray, semitones: float) -> np.ndarray:
    """Raise (or lower) pitch, keeping duration and formants: WSOLA-stretch by the pitch ratio, resample back to the
    original length (which moves every frequency, formants too), then restore the original spectral envelope."""
    stretched = time_stretch(x, max(1, round(len(x) * 2 ** (semitones / 12))))
    return keep_formants(resample(stretched, len(x)), x)


def _stft(x: np.ndarray, frame: int, hop: int) -> np.ndarray:
    padded = np.r_[np.zeros(frame), x, np.zeros(frame)]
    starts = np.arange(0, len(padded) - frame + 1, hop)
    return np.fft.rfft(padded[starts[:, None] + np.arange(frame)] * np.hanning(frame), axis=1)


def _istft(spectra: np.ndarray, frame: int, hop: int, length: int) -> np.ndarray:
    window = np.hanning(frame)
    frames = np.fft.irfft(spectra, frame, axis=1) * window
    out = np.zeros(hop * (len(frames) - 1) + frame)
    weight = np.zeros_like(out)
    for i, f in enumerate(frames):
        out[i * hop : i * hop + frame] += f
        weight[i * hop : i * hop + frame] += window**2
    return (out / np.maximum(weight, 1e-3))[frame : frame + length]


def _envelope(spectra: np.ndarray, lifter: int) -> np.ndarray:
    """Log-magnitude spectral envelope per frame by cepstral liftering (the first ``lifter`` quefrencies)."""
    cepstrum = np.fft.irfft(np.log(np.abs(spectra) + 1e-7), axis=1)
    cepstrum[:, lifter:-lifter] = 0.0
    return np.fft.rfft(cepstrum, axis=1).real


def keep_formants(shifted: np.ndarray, original: np.ndarray, lifter: int = 30, most_db: float = 20.0) -> np.ndarray:
    """Give ``shifted`` (same length and timing as ``original``) the spectral envelope of ``original`` frame by frame
    (cepstral envelopes, the correction limited to ±``most_db``): a pitch change without a vocal-tract change."""
    frame, hop = 512, 128
    a, b = _stft(np.asarray(original, np.float64), frame, hop), _stft(np.asarray(shifted, np.float64), frame, hop)
    limit = most_db / 20 * math.log(10)
    gain = np.exp(np.clip(_envelope(a, lifter) - _envelope(b, lifter), -limit, limit))
    return np.clip(_istft(b * gain, frame, hop, len(shifted)), -1.0, 1.0).astype(np.float32)


def time_stretch(x: np.ndarray, length: int, frame_s: float = 0.04, tolerance_s: float = 0.008) -> np.ndarray:
    """Change tempo without changing pitch (WSOLA): ``x`` re-timed to ``length`` samples.

    Hann frames overlap by half on output; each input frame is taken within ``tolerance_s`` of its nominal place
    where it best continues the previous one (cross-correlation), so periods line up and no phasing is heard."""
    x = np.asarray(x, np.float64)
    frame = round(frame_s * RATE_HZ)
    hop = frame // 2
    tol = round(tolerance_s * RATE_HZ)
    if len(x) < 2 * frame or length < 2 * frame:
        return resample(x, length)
    ratio = (len(x) - frame) / max(1, length - frame)  # input samples per output sample
    padded = np.r_[np.zeros(tol), x, np.zeros(frame + 2 * tol + hop)]
    window = np.hanning(frame)
    out = np.zeros(length + frame)
    weight = np.zeros(length + frame)
    previous = None
    for k in range(0, length - frame + hop, hop):
        nominal = tol + round(k * ratio)
        if previous is None:
            position = nominal
        else:
            natural = padded[previous + hop : previous + hop + frame]
            region = padded[nominal - tol : nominal + tol + frame]
            position = nominal - tol + int(np.argmax(np.correlate(region, natural, "valid")))
        out[k : k + frame] += padded[position : position + frame] * window
        weight[k : k + frame] += window
        previous = position
    return (out[:length] / np.maximum(weight[:length], 1e-3)).astype(np.float32)


def raise_effort(x: np.ndarray, rng: np.random.Generator, clip_fraction: float = 0.005) -> np.ndarray:
    """Shouted-like vocal effort: +6 dB/octave spectral tilt (first-order pre-emphasis), radio-style compression,
    and mild clipping (the loudest ``clip_fraction`` of samples), at the input's active level."""
    x = np.asarray(x, np.float64)
    level = channels.active_power(x) if np.any(x) else 0.0
    if level == 0:
        return x.astype(np.float32)
    tilted = np.r_[x[:1], x[1:] - 0.95 * x[:-1]]
    squeezed = channels.compand(tilted / max(np.max(np.abs(tilted)), 1e-9), ratio=float(rng.uniform(2.0, 4.0)))
    squeezed = squeezed / max(float(np.max(np.abs(squeezed))), 1e-9)
    clipped = channels.clip(squeezed, float(max(np.quantile(np.abs(squeezed), 1 - clip_fraction), 1e-3)))
    out = clipped * math.sqrt(level / max(channels.active_power(clipped), 1e-12))
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def emote(x: np.ndarray, rng: np.random.Generator, keep_vocal_tract: bool = True) -> np.ndarray:
    """One turn as if said under emotion: pitch ±2-4 semitones, tempo ±10-20 %, raised vocal effort (random per call).

    ``keep_vocal_tract=False`` shifts pitch by resampling alone, which moves the formants by the same 12-26 %."""
    semitones = float(rng.uniform(2.0, 4.0) * rng.choice([-1, 1]))
    tempo = 1.0 + float(rng.uniform(0.10, 0.20) * rng.choice([-1, 1]))
    shifted = pitch_shift(x, semitones) if keep_vocal_tract else resample_pitch(x, semitones)
    timed = time_stretch(shifted, max(1, round(len(x) / tempo)))
    return raise_effort(timed, rng)
