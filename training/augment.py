"""Random degradations of clean 16 kHz speech for training: radio chains of several designs, telephone lines and
wideband codecs (real encoders through PyAV), real noises and room impulse responses, vocal effort and pitch.

Every chain keeps the length and the timing of its input, so a crop of the degraded audio lines up with the same
crop of the clean audio (the teacher's input). Randomness comes only from the caller's generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from voxwatch import channels, perturb
from voxwatch.audio import RATE_HZ, load_audio

from .codec import CODECS, round_trip
from .data import DATA, IMPULSE_RESPONSES, NOISES

NARROW_CODECS = ("mulaw", "alaw", "g726", "amrnb", "amrnb-12k", "opus-6k", "mp3-8k")
WIDE_CODECS = ("g722", "opus-12k", "mp3-16k")
KINDS = ("radio", "telephone", "codec", "noisy", "reverb", "effort", "pitch")
WEIGHTS = (0.30, 0.18, 0.10, 0.14, 0.10, 0.09, 0.09)


class Degrader:
    """Draws one degradation chain per call; ``noises`` and ``impulse_responses`` are real recordings at 16 kHz."""

    def __init__(self, noises: Sequence[np.ndarray], impulse_responses: Sequence[np.ndarray]):
        self.noises = [n for n in noises if len(n) > RATE_HZ]
        self.impulse_responses = list(impulse_responses)

    @classmethod
    def from_data(cls, root: Path = DATA) -> Degrader:
        """With the real noises and impulse responses of the shared data that training may use."""
        return cls([load_audio(root / n) for n in NOISES], [load_audio(root / i) for i in IMPULSE_RESPONSES])

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        kind = str(rng.choice(KINDS, p=WEIGHTS))
        y = getattr(self, kind)(np.asarray(x, np.float32), rng)
        return np.clip(np.nan_to_num(y), -1, 1).astype(np.float32), kind

    # -- chains ----------------------------------------------------------------------------------------------

    def radio(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A two-way radio: random band edges, optional 8 kHz leg, tilt, compander, clipping, AGC, codec, hiss inside
        and outside the band, squelch bursts."""
        if rng.random() < 0.2:
            x = self.reverb(x, rng)
        if rng.random() < 0.25:
            x = channels.effort(x)
        y = channels.bandpass(x, float(rng.uniform(150, 600)), float(rng.uniform(2300, 3900)))
        if rng.random() < 0.4:  # in-band hiss picked up before the transmitter's filter and compressor
            y = channels.bandpass(self._hiss(y, float(rng.uniform(5, 25)), rng), 300, 3400)
        if rng.random() < 0.7:
            y = channels.narrowband(y)
        if rng.random() < 0.5:
            a = float(rng.uniform(-0.9, 0.9))  # pre- or de-emphasis
            y = np.r_[y[:1], y[1:] + a * y[:-1]]
        y = channels.compand(
            y / max(float(np.abs(y).max()), 1e-9), ratio=float(rng.uniform(1.5, 10)), threshold_db=float(rng.uniform(-30, -8))
        )
        if rng.random() < 0.4:
            y = channels.clip(y / max(float(np.abs(y).max()), 1e-9), float(rng.uniform(0.2, 0.8)))
        if rng.random() < 0.5:
            y = _agc(y, float(rng.uniform(0.2, 1.5)))
        if rng.random() < 0.3:
            y = round_trip(y, CODECS[str(rng.choice(("amrnb", "g726", "opus-6k", "mulaw")))])
        y = self._hiss(y, float(rng.uniform(0, 25)), rng, wide=rng.random() < 0.5)
        if rng.random() < 0.3:
            y = _squelch(y, rng)
        return _level(y, rng)

    def telephone(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A phone line: band 200-400 .. 3000-3700 Hz, 8 kHz, one narrowband codec, background noise."""
        if rng.random() < 0.3:
            x = self.noisy(x, rng, snr_db=float(rng.uniform(5, 25)))
        y = channels.narrowband(channels.bandpass(x, float(rng.uniform(200, 400)), float(rng.uniform(3000, 3700))))
        y = round_trip(y, CODECS[str(rng.choice(NARROW_CODECS))])
        return _level(self._hiss(y, float(rng.uniform(20, 45)), rng), rng)

    def codec(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Wideband low-rate codecs (G.722, Opus, MP3), sometimes over noise."""
        if rng.random() < 0.4:
            x = self.noisy(x, rng, snr_db=float(rng.uniform(10, 30)))
        return _level(round_trip(x, CODECS[str(rng.choice(WIDE_CODECS))]), rng)

    def noisy(self, x: np.ndarray, rng: np.random.Generator, snr_db: float | None = None) -> np.ndarray:
        """A real noise recording (or white hiss) at 0-20 dB SNR."""
        snr = float(rng.uniform(0, 20)) if snr_db is None else snr_db
        if not self.noises or rng.random() < 0.2:
            return self._hiss(x, snr, rng)
        noise = self.noises[int(rng.integers(len(self.noises)))]
        start = int(rng.integers(0, max(1, len(noise) - len(x))))
        piece = np.resize(noise[start : start + len(x)], len(x))
        return channels.add_noise(x, snr, rng, noise=piece)

    def reverb(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A real room impulse response or a synthetic one (RT60 0.2-1.0 s)."""
        if self.impulse_responses and rng.random() < 0.4:
            ir = self.impulse_responses[int(rng.integers(len(self.impulse_responses)))]
        else:
            ir = channels.room_impulse(float(rng.uniform(0.2, 1.0)), rng)
        return channels.reverberate(x, ir)

    def effort(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Raised vocal effort (tilt, compression, clipping), sometimes with the pitch raised."""
        if rng.random() < 0.5:
            x = perturb.pitch_shift(x, float(rng.uniform(0.5, 3.0)))
        return perturb.raise_effort(x, rng) if rng.random() < 0.6 else channels.effort(x)

    def pitch(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Pitch moved 1-4 semitones up or down with the formants kept (duration unchanged)."""
        return perturb.pitch_shift(x, float(rng.uniform(1.0, 4.0) * rng.choice([-1, 1])))

    def _hiss(self, x: np.ndarray, snr_db: float, rng: np.random.Generator, wide: bool = True) -> np.ndarray:
        """White hiss at ``snr_db``; ``wide`` keeps it up to 8 kHz even over a narrowband signal."""
        noise = rng.standard_normal(len(x)).astype(np.float32)
        if not wide:
            noise = channels.bandpass(noise, 300, 3400) if len(noise) else noise
        return channels.add_noise(x, snr_db, rng, noise=noise)


def _agc(x: np.ndarray, time_s: float) -> np.ndarray:
    """Automatic gain control: divide by a smoothed envelope (time constant ``time_s``, at most the audio's length),
    never more than +20 dB."""
    width = max(1, min(int(time_s * RATE_HZ), len(x)))
    power = np.convolve(x.astype(np.float64) ** 2, np.ones(width) / width, mode="same")
    gain = 1.0 / np.sqrt(np.maximum(power, np.max(power) * 1e-2))
    y = x * gain
    return (y / max(float(np.abs(y).max()), 1e-9)).astype(np.float32)


def _squelch(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Squelch tails: one to three bursts of loud band-limited noise (0.05-0.3 s) where the carrier drops."""
    y = x.copy()
    for _ in range(int(rng.integers(1, 4))):
        n = int(rng.uniform(0.05, 0.3) * RATE_HZ)
        if len(y) <= n:
            break
        start = int(rng.integers(0, len(y) - n))
        burst = channels.bandpass(rng.standard_normal(n + 2048).astype(np.float32), 300, 3400)[1024 : 1024 + n]
        y[start : start + n] += burst / max(float(np.abs(burst).max()), 1e-9) * float(rng.uniform(0.2, 0.8)) * np.abs(y).max()
    return y


def _level(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Peak level drawn between -30 and -1 dBFS."""
    peak = float(np.abs(x).max()) if len(x) else 0.0
    return (x * (10 ** (rng.uniform(-30, -1) / 20) / peak)).astype(np.float32) if peak > 0 else x
