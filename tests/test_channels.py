"""Transmission channels on real speech (LibriSpeech test-other from the shared data directory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voxwatch import channels
from voxwatch.audio import RATE_HZ, load_audio

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LIBRISPEECH = DATA / "resemblyzer" / "audio_data" / "librispeech_test-other"


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    files = sorted(LIBRISPEECH.rglob("*.flac"))
    if not files:
        pytest.skip(f"../shared/data not found: no LibriSpeech flac files under {LIBRISPEECH}")
    return load_audio(files[0])


@pytest.fixture(scope="module")
def other_speech() -> np.ndarray:
    files = sorted(LIBRISPEECH.rglob("*.flac"))
    if len(files) < 2:
        pytest.skip(f"../shared/data not found: need two LibriSpeech flac files under {LIBRISPEECH}")
    return load_audio(files[-1])


def band_energy(x: np.ndarray, low_hz: float, high_hz: float) -> float:
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / RATE_HZ)
    return float(power[(freqs >= low_hz) & (freqs <= high_hz)].sum())


def active_power(x: np.ndarray) -> float:
    """The documented rule, re-implemented: 20 ms frames within 30 dB of the 95th-percentile frame energy."""
    frames = x[: len(x) // 320 * 320].astype(np.float64).reshape(-1, 320)
    energy = (frames**2).mean(axis=1)
    return float(energy[energy >= np.percentile(energy, 95) / 1000].mean())


@pytest.mark.parametrize("limit", [channels.bandpass, channels.narrowband], ids=["bandpass", "narrowband"])
def test_band_limit_removes_high_band_and_keeps_voice_band(speech: np.ndarray, limit) -> None:  # type: ignore[no-untyped-def]
    y = limit(speech)
    share_before = band_energy(speech, 4000, RATE_HZ / 2) / band_energy(speech, 0, RATE_HZ / 2)
    share_after = band_energy(y, 4000, RATE_HZ / 2) / band_energy(y, 0, RATE_HZ / 2)
    assert share_before > 0.001  # the recording does have energy up there to remove
    assert share_after < 0.01 * share_before
    change_db = 10 * np.log10(band_energy(y, 300, 3400) / band_energy(speech, 300, 3400))
    assert abs(change_db) < 1.0


def test_bandpass_removes_low_band(speech: np.ndarray) -> None:
    y = channels.bandpass(speech, 300, 3400)
    assert band_energy(y, 0, 200) < 0.01 * band_energy(speech, 0, 200)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_add_noise_hits_snr_on_active_speech(speech: np.ndarray, snr_db: float) -> None:
    y = channels.add_noise(speech, snr_db, np.random.default_rng(1))
    noise = y.astype(np.float64) - speech
    measured = 10 * np.log10(active_power(speech) / np.mean(noise**2))
    assert abs(measured - snr_db) < 0.5


def test_add_noise_ignores_silence(speech: np.ndarray) -> None:
    padded = np.concatenate([np.zeros(3 * RATE_HZ, np.float32), speech, np.zeros(3 * RATE_HZ, np.float32)])
    noise_speech = channels.add_noise(speech, 10.0, np.random.default_rng(2)) - speech
    noise_padded = channels.add_noise(padded, 10.0, np.random.default_rng(2)) - padded
    assert abs(10 * np.log10(np.mean(noise_padded**2) / np.mean(noise_speech**2))) < 0.3


def test_add_noise_with_given_noise_recording(speech: np.ndarray, other_speech: np.ndarray) -> None:
    y = channels.add_noise(speech, 5.0, np.random.default_rng(3), noise=other_speech[: RATE_HZ // 2])
    noise = y.astype(np.float64) - speech
    assert abs(10 * np.log10(active_power(speech) / np.mean(noise**2)) - 5.0) < 0.5
    # the half-second excerpt was tiled: the added noise repeats with that period
    period = RATE_HZ // 2
    np.testing.assert_allclose(noise[period : 2 * period], noise[2 * period : 3 * period], atol=1e-5)


def test_mu_law_quantises_to_8_bits(speech: np.ndarray) -> None:
    y = channels.mu_law(speech)
    assert len(np.unique(y)) <= 256
    error_db = 10 * np.log10(np.mean((y - speech) ** 2) / np.mean(speech**2))
    assert error_db < -25  # companding keeps speech intelligible (~38 dB SQNR for 8-bit μ-law)


def test_compand_narrows_dynamic_range(speech: np.ndarray) -> None:
    def spread_db(x: np.ndarray) -> float:
        rms = np.sqrt((x[: len(x) // 320 * 320].astype(np.float64).reshape(-1, 320) ** 2).mean(axis=1))
        loud = rms[rms > rms.max() / 100]
        return float(20 * np.log10(np.percentile(loud, 95) / np.percentile(loud, 25)))

    y = channels.compand(speech, ratio=4.0)
    assert spread_db(y) < spread_db(speech) - 3
    np.testing.assert_allclose(channels.compand(speech, ratio=1.0), speech, atol=1e-6)


def test_effort_brightens_and_keeps_the_level(speech: np.ndarray) -> None:
    """Raised effort: +6 dB/octave tilt, so the 4-8 kHz band gains on the 100-500 Hz band by well over 12 dB (two or
    more octaves up); the active level stays where it was."""
    y = channels.effort(speech)
    before = band_energy(speech, 4000, 8000) / band_energy(speech, 100, 500)
    after = band_energy(y, 4000, 8000) / band_energy(y, 100, 500)
    assert 10 * np.log10(after / before) > 12
    assert abs(10 * np.log10(active_power(y) / active_power(speech))) < 1.0


def test_reverberate_unit_impulse_is_identity(speech: np.ndarray) -> None:
    np.testing.assert_allclose(channels.reverberate(speech, np.array([1.0])), speech, atol=1e-6)


def test_reverberate_preserves_energy_and_smears(speech: np.ndarray) -> None:
    y = channels.reverberate(speech, channels.room_impulse(0.6, np.random.default_rng(4)))
    assert abs(10 * np.log10(np.sum(y.astype(np.float64) ** 2) / np.sum(speech.astype(np.float64) ** 2))) < 0.1
    assert np.corrcoef(y, speech)[0, 1] < 0.95


def test_clip_limits_level(speech: np.ndarray) -> None:
    y = channels.clip(speech, 0.1)
    assert np.abs(y).max() == pytest.approx(0.1)
    assert np.array_equal(y[np.abs(speech) < 0.1], speech[np.abs(speech) < 0.1])


CHAINS = {
    "bandpass": lambda x, rng: channels.bandpass(x),
    "narrowband": lambda x, rng: channels.narrowband(x),
    "mu_law": lambda x, rng: channels.mu_law(x),
    "compand": lambda x, rng: channels.compand(x),
    "add_noise": lambda x, rng: channels.add_noise(x, 0.0, rng),
    "reverberate": lambda x, rng: channels.reverberate(x, channels.room_impulse(0.4, rng)),
    "clip": lambda x, rng: channels.clip(x, 0.5),
    "radio": lambda x, rng: channels.radio(x, rng),
    "broadcast": lambda x, rng: channels.broadcast(x, rng),
    "telephone": lambda x, rng: channels.telephone(x, rng),
    "effort": lambda x, rng: channels.effort(x),
}


@pytest.mark.parametrize("name", list(CHAINS))
def test_outputs_are_bounded_float32_same_length(speech: np.ndarray, name: str) -> None:
    loud = np.clip(speech[: 3 * RATE_HZ + 7] * 4, -1, 1)  # odd length, driven into full scale
    y = CHAINS[name](loud, np.random.default_rng(5))
    assert y.dtype == np.float32
    assert len(y) == len(loud)
    assert np.all(np.isfinite(y))
    assert np.abs(y).max() <= 1.0


def test_radio_is_deterministic_and_peak_normalised(speech: np.ndarray) -> None:
    a = channels.radio(speech, np.random.default_rng(6))
    b = channels.radio(speech, np.random.default_rng(6))
    assert np.array_equal(a, b)
    assert np.abs(a).max() == pytest.approx(0.9, abs=1e-6)
    assert band_energy(a, 300, 3400) > band_energy(a, 0, 300) + band_energy(a, 3400, 4000)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda x: channels.bandpass(x, 3400, 300), "low_hz < high_hz"),
        (lambda x: channels.bandpass(x, 300, 9000), "rate_hz/2"),
        (lambda x: channels.narrowband(x, rate_hz=22050), "multiple of 8000"),
        (lambda x: channels.compand(x, ratio=0.5), "ratio"),
        (lambda x: channels.clip(x, 0.0), "level"),
        (lambda x: channels.reverberate(x, np.zeros(10)), "impulse_response"),
        (lambda x: channels.add_noise(np.zeros_like(x), 10.0, np.random.default_rng()), "silent"),
        (lambda x: channels.mu_law(np.stack([x, x])), "1-D"),
        (lambda x: channels.bandpass(np.full(100, np.nan)), "NaN"),
    ],
)
def test_invalid_arguments_raise_value_error(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        call(np.zeros(1600, np.float32) + 0.1)
