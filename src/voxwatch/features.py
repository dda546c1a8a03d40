"""Acoustic features: the mel power spectrogram GE2E was trained on (librosa's defaults, Slaney mel scale), and Kaldi's
log mel filterbank that WeSpeaker models take."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .audio import RATE_HZ

N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asanyarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asanyarray(mel, dtype=np.float64)
    linear = mel * (200.0 / 3)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log_part, linear)


@lru_cache(maxsize=4)
def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, rate_hz: int = RATE_HZ) -> np.ndarray:
    """Slaney-normalised triangular filters, shape (n_fft // 2 + 1, n_mels)."""
    fft_hz = np.linspace(0, rate_hz / 2, n_fft // 2 + 1)
    mel_hz = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(rate_hz / 2), n_mels + 2))
    widths = np.diff(mel_hz)
    ramps = mel_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper)) * (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]
    return np.ascontiguousarray(weights.T, np.float32)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann


def mel_frames(samples: np.ndarray) -> np.ndarray:
    """Mel power frames (..., n_frames, 40) of audio (..., n_samples) whose every frame is complete: frame i covers
    samples[i * HOP : i * HOP + N_FFT]. Leading dimensions are a batch, computed in one FFT and one product."""
    n = 1 + (samples.shape[-1] - N_FFT) // HOP if samples.shape[-1] >= N_FFT else 0
    if n == 0:
        return np.zeros((*samples.shape[:-1], 0, N_MELS), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(samples, N_FFT, axis=-1)[..., ::HOP, :][..., :n, :]
    power = (np.abs(np.fft.rfft(frames * _window(), axis=-1)) ** 2).astype(np.float32)
    return (power.reshape(-1, power.shape[-1]) @ mel_filterbank()).reshape(*power.shape[:-1], N_MELS)


def mel_spectrogram(samples: np.ndarray) -> np.ndarray:
    """Whole-utterance mel spectrogram(s), centred frames with zero padding (as librosa >= 0.10)."""
    pad = [(0, 0)] * (samples.ndim - 1) + [(N_FFT // 2, N_FFT // 2)]
    return mel_frames(np.pad(samples.astype(np.float32), pad))


@lru_cache(maxsize=1)
def _hamming_window() -> np.ndarray:
    return 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(N_FFT) / (N_FFT - 1))  # Kaldi's (symmetric) Hamming window


@lru_cache(maxsize=1)
def _htk_filterbank(n_mels: int = 80, n_fft: int = 512) -> np.ndarray:
    def mel(hz: np.ndarray) -> np.ndarray:
        return 1127.0 * np.log1p(hz / 700.0)

    edges = np.linspace(mel(np.array(20.0)), mel(np.array(RATE_HZ / 2)), n_mels + 2)
    bins = mel(np.linspace(0, RATE_HZ / 2, n_fft // 2 + 1))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    weights = np.maximum(0, np.minimum((bins - lower) / (centre - lower), (upper - bins) / (upper - centre)))
    return weights.T.astype(np.float32)


def kaldi_fbank(samples: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """Kaldi's log mel filterbank as WeSpeaker's recipe computes it (``window_type='hamming'``, 25 ms frames every
    10 ms, DC offset removed, pre-emphasis 0.97, 512-point FFT, power, no dither): frames (n, n_mels) of 16 kHz audio
    in [-1, 1] (scaled to 16-bit range, as Kaldi reads audio)."""
    x = samples.astype(np.float64) * 32768.0
    if len(x) < N_FFT:
        return np.zeros((0, n_mels), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP].copy()
    frames -= frames.mean(axis=1, keepdims=True)
    frames[:, 1:] -= 0.97 * frames[:, :-1]
    frames[:, 0] *= 0.03
    power = np.abs(np.fft.rfft(frames * _hamming_window(), n=512, axis=1)) ** 2
    return np.log(np.maximum(power @ _htk_filterbank(n_mels), np.finfo(np.float32).eps)).astype(np.float32)


def log_fbank(samples: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """:func:`kaldi_fbank`, mean-normalised over the window: the input of WeSpeaker's ONNX exports."""
    feats = kaldi_fbank(samples, n_mels)
    return feats - feats.mean(axis=0) if len(feats) else feats
