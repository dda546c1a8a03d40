"""Simulated transmission channels for 16 kHz mono float32 audio: band limits, codecs, compression, noise, reverb.

Pure numpy and vectorised. Every function takes a 1-D signal and returns a new float32 array of the same length,
finite and within [-1, 1]. Randomness comes only from a caller-given ``np.random.Generator``. Used by the demo, the
tests and to augment enrollment audio (``radio``, ``telephone`` and ``effort`` are the ready-made chains).
"""

from __future__ import annotations

import numpy as np

from .audio import RATE_HZ

_TAPS = 1023  # windowed-sinc length: ~86 Hz transition band and ~74 dB stop band (Blackman) at 16 kHz
ENERGY_FRAME_S = 0.02  # the frames of frame_energies (the active part of a signal, a recording's first word)
_ACTIVE_DB = 30.0  # frames within this many dB of the 95th-percentile frame energy count as active
_NARROW_RATE_HZ = 8000
_NARROW_CUTOFF_HZ = 3800.0  # anti-alias corner for the 8 kHz leg, below its 4 kHz Nyquist


def bandpass(x: np.ndarray, low_hz: float = 300.0, high_hz: float = 3400.0, rate_hz: int = RATE_HZ) -> np.ndarray:
    """Keep ``low_hz``..``high_hz`` with a zero-phase windowed-sinc FIR (-6 dB at both corners).

    ``low_hz=0`` makes it a low-pass, ``high_hz=rate_hz/2`` a high-pass.
    """
    x = _signal(x)
    _check_rate(rate_hz)
    nyquist = rate_hz / 2
    if not 0 <= low_hz < high_hz <= nyquist:
        raise ValueError(f"need 0 <= low_hz < high_hz <= {nyquist:g} (rate_hz/2); got low_hz={low_hz}, high_hz={high_hz}")
    taps = _lowpass_taps(high_hz, rate_hz) - _lowpass_taps(low_hz, rate_hz)
    return _finish(_filter(x, taps))


def narrowband(x: np.ndarray, rate_hz: int = RATE_HZ) -> np.ndarray:
    """Down to 8 kHz and back up (telephone/radio bandwidth), anti-aliased on both legs; same length as ``x``."""
    x = _signal(x)
    _check_rate(rate_hz)
    if rate_hz % _NARROW_RATE_HZ:
        raise ValueError(f"rate_hz must be a multiple of {_NARROW_RATE_HZ} Hz; got {rate_hz}")
    factor = rate_hz // _NARROW_RATE_HZ
    taps = _lowpass_taps(_NARROW_CUTOFF_HZ, rate_hz)
    low = _filter(x, taps)[::factor]
    up = np.zeros(len(low) * factor)
    up[::factor] = low * factor
    return _finish(_filter(up, taps)[: len(x)])


def mu_law(x: np.ndarray, mu: int = 255) -> np.ndarray:
    """8-bit μ-law round trip (sign + 7-bit magnitude, as G.711): at most 255 distinct output values."""
    x = _signal(x)
    if not mu > 0:
        raise ValueError(f"mu must be positive; got {mu}")
    x = np.clip(x, -1.0, 1.0)
    compressed = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    code = np.round(compressed * 127) / 127
    return _finish(np.sign(code) * np.expm1(np.abs(code) * np.log1p(mu)) / mu)


def compand(
    x: np.ndarray,
    ratio: float = 3.0,
    *,
    threshold_db: float = -20.0,
    attack_s: float = 0.005,
    release_s: float = 0.15,
    rate_hz: int = RATE_HZ,
) -> np.ndarray:
    """Radio-style downward compression of the envelope above ``threshold_db`` (relative to the envelope's peak).

    The envelope is a peak follower with instant rise and exponential release ``release_s`` (computed exactly as a
    running maximum in the log domain), then averaged over ``attack_s`` to soften the attack. No make-up gain:
    normalise afterwards.
    """
    x = _signal(x)
    _check_rate(rate_hz)
    if not ratio >= 1:
        raise ValueError(f"ratio must be >= 1 (1 leaves the signal unchanged); got {ratio}")
    if not threshold_db <= 0:
        raise ValueError(f"threshold_db is relative to the peak and must be <= 0; got {threshold_db}")
    if not (attack_s > 0 and release_s > 0):
        raise ValueError(f"attack_s and release_s must be positive; got {attack_s}, {release_s}")
    if not len(x) or not np.any(x):
        return _finish(x)
    # env[n] = max_k |x[k]| * exp(-(n - k) / release)  <=>  log env[n] = cummax(log|x[k]| + k*d) - n*d
    decay = 1.0 / (release_s * rate_hz)
    ramp = np.arange(len(x)) * decay
    log_env = np.maximum.accumulate(np.log(np.maximum(np.abs(x), 1e-9)) + ramp) - ramp
    env = _moving_mean(np.exp(log_env), max(1, round(attack_s * rate_hz)))
    level_db = 20 * np.log10(np.maximum(env, 1e-9))
    over_db = np.maximum(level_db - (level_db.max() + threshold_db), 0.0)
    return _finish(x * 10 ** (-over_db * (1 - 1 / ratio) / 20))


def add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator, noise: np.ndarray | None = None) -> np.ndarray:
    """Add white Gaussian noise (or ``noise``, tiled/cropped from a random offset) at ``snr_db``.

    The signal's power is measured over its active part: 20 ms frames whose energy is within 30 dB of the
    95th-percentile frame (see :func:`active_power`); the noise's power over all of the samples added.
    """
    x = _signal(x)
    if not np.isfinite(snr_db):
        raise ValueError(f"snr_db must be finite; got {snr_db}")
    if not len(x):
        return _finish(x)
    signal_power = active_power(x)
    if signal_power == 0:
        raise ValueError("the signal is silent; an SNR cannot be set against it")
    if noise is None:
        added = rng.standard_normal(len(x))
    else:
        noise = _signal(noise)
        if not len(noise) or not np.any(noise):
            raise ValueError("noise must contain non-zero samples")
        added = np.resize(np.roll(noise, -int(rng.integers(len(noise)))), len(x))
        if not np.any(added):
            raise ValueError("the noise excerpt is silent; give a longer or denser noise recording")
    added *= np.sqrt(signal_power / 10 ** (snr_db / 10) / np.mean(added**2))
    return _finish(x + added)


def frame_energies(x: np.ndarray, rate_hz: int = RATE_HZ) -> np.ndarray:
    """Mean power of each 20 ms frame of ``x`` (one frame if ``x`` is shorter; none if it is empty)."""
    x = _signal(x)
    frame = min(len(x), max(1, round(ENERGY_FRAME_S * rate_hz)))
    if not frame:
        return np.zeros(0)
    return np.mean(x[: len(x) // frame * frame].reshape(-1, frame) ** 2, axis=1)


def active_power(x: np.ndarray, rate_hz: int = RATE_HZ) -> float:
    """Mean power of the active frames of ``x`` (20 ms frames within 30 dB of the 95th-percentile frame energy)."""
    energy = frame_energies(x, rate_hz)
    if not len(energy):
        return 0.0
    reference = np.percentile(energy, 95)
    if reference == 0:
        energy = energy[energy > 0]
        return float(energy.mean()) if len(energy) else 0.0
    return float(energy[energy >= reference * 10 ** (-_ACTIVE_DB / 10)].mean())


def reverberate(x: np.ndarray, impulse_response: np.ndarray) -> np.ndarray:
    """Convolve with ``impulse_response`` (FFT), keep the first ``len(x)`` samples, rescale to the input's energy."""
    x = _signal(x)
    ir = _signal(impulse_response)
    if not len(ir) or not np.any(ir):
        raise ValueError("impulse_response must contain at least one non-zero sample")
    wet = _convolve(x, ir)[: len(x)]
    wet_energy = np.sum(wet**2)
    if wet_energy > 0:
        wet *= np.sqrt(np.sum(x**2) / wet_energy)
    return _finish(wet)


def room_impulse(rt60_s: float, rng: np.random.Generator, rate_hz: int = RATE_HZ) -> np.ndarray:
    """A synthetic room response for :func:`reverberate`: a direct path then exponentially decaying noise."""
    _check_rate(rate_hz)
    if not 0 < rt60_s <= 10:
        raise ValueError(f"rt60_s must be in (0, 10] seconds; got {rt60_s}")
    t = np.arange(round(rt60_s * rate_hz)) / rate_hz
    ir = rng.standard_normal(len(t)) * 10 ** (-3 * t / rt60_s) * 0.3  # -60 dB at rt60_s
    ir[0] = 1.0
    return ir.astype(np.float32)


def clip(x: np.ndarray, level: float) -> np.ndarray:
    """Hard clipping at ±``level`` (0 < level <= 1)."""
    x = _signal(x)
    if not 0 < level <= 1:
        raise ValueError(f"level must be in (0, 1]; got {level}")
    return _finish(np.clip(x, -level, level))


def radio(x: np.ndarray, rng: np.random.Generator, snr_db: float = 10.0) -> np.ndarray:
    """Walkie-talkie at 16 kHz: band-pass 300-3400 Hz, 8 kHz leg, compander, noise at ``snr_db``, peak 0.9."""
    y = compand(narrowband(bandpass(x)))
    return _peak_normalise(add_noise(y, snr_db, rng), 0.9) if np.any(y) else y


def broadcast(x: np.ndarray, rng: np.random.Generator, snr_db: float = 30.0) -> np.ndarray:
    """A broadcast station at 16 kHz: band-pass 80-7000 Hz, gentle compression, noise at ``snr_db``, peak 0.9."""
    y = compand(bandpass(x, 80.0, 7000.0), ratio=1.5)
    return _peak_normalise(add_noise(y, snr_db, rng), 0.9) if np.any(y) else y


def telephone(x: np.ndarray, rng: np.random.Generator, snr_db: float = 20.0) -> np.ndarray:
    """Landline at 16 kHz: band-pass 300-3400 Hz, 8 kHz leg, 8-bit μ-law, noise at ``snr_db``."""
    y = mu_law(narrowband(bandpass(x)))
    return add_noise(y, snr_db, rng) if np.any(y) else y


def effort(x: np.ndarray) -> np.ndarray:
    """Raised vocal effort (shouting, stress), the part of it a voiceprint is most sensitive to: the spectral tilt
    flattened by +6 dB/octave (first-order pre-emphasis; loud speech is brighter than calm speech) and the dynamics
    compressed, at the input's active level."""
    x = _signal(x)
    level = active_power(x) if np.any(x) else 0.0
    if level == 0:
        return _finish(x)
    tilted = np.r_[x[:1], x[1:] - 0.95 * x[:-1]]
    squeezed = compand(tilted / max(float(np.max(np.abs(tilted))), 1e-9), ratio=3.0)
    return _finish(squeezed * np.sqrt(level / max(active_power(squeezed), 1e-12)))


def _signal(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"expected a 1-D mono signal; got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("the signal contains NaN or infinite samples")
    return x


def _check_rate(rate_hz: int) -> None:
    if not rate_hz > 0:
        raise ValueError(f"rate_hz must be positive; got {rate_hz}")


def _finish(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def _peak_normalise(x: np.ndarray, peak: float) -> np.ndarray:
    top = np.max(np.abs(x)) if len(x) else 0.0
    return (x * (peak / top)).astype(np.float32) if top > 0 else x


def _lowpass_taps(cutoff_hz: float, rate_hz: int) -> np.ndarray:
    """Blackman-windowed sinc with unit DC gain; all zeros for ``cutoff_hz=0``, a unit impulse at Nyquist."""
    n = np.arange(_TAPS) - (_TAPS - 1) / 2
    fc = cutoff_hz / rate_hz
    taps = 2 * fc * np.sinc(2 * fc * n) * np.blackman(_TAPS)
    return taps / taps.sum() if fc > 0 else taps


def _filter(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Zero-phase ('same') FIR filtering of ``x`` by symmetric ``taps``."""
    delay = (len(taps) - 1) // 2
    return _convolve(x, taps)[delay : delay + len(x)]


def _convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Full linear convolution via a power-of-two real FFT."""
    if not len(x):
        return np.zeros(len(h) - 1 if len(h) else 0)
    size = len(x) + len(h) - 1
    n = 1 << (size - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, n) * np.fft.rfft(h, n), n)[:size]


def _moving_mean(x: np.ndarray, width: int) -> np.ndarray:
    """Causal running mean over ``width`` samples (shorter at the start)."""
    total = np.cumsum(x)
    total[width:] = total[width:] - total[:-width]
    return total / np.minimum(np.arange(1, len(x) + 1), width)


CONDITIONS = ("clean", "radio", "telephone", "effort")


def simulate(x: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    """``x`` as heard through one of :data:`CONDITIONS` (for multi-condition enrollment)."""
    if condition == "clean":
        return np.asarray(x, np.float32)
    if condition == "radio":
        return radio(x, rng, snr_db=15.0)
    if condition == "telephone":
        return telephone(x, rng, snr_db=25.0)
    if condition == "effort":
        return effort(x)
    raise ValueError(f"unknown condition {condition!r}; use one of {', '.join(CONDITIONS)}")
