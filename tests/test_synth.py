"""Synthetic demo voices (espeak-ng): speech, distinct voices, ground-truth conversations."""

from __future__ import annotations

import itertools
import shutil

import numpy as np
import pytest

from voxwatch import synth
from voxwatch.audio import RATE_HZ
from voxwatch.errors import ModelError

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)")


def median_pitch_hz(x: np.ndarray) -> float:
    """Autocorrelation pitch over loud 40 ms frames (60-400 Hz)."""
    frames = x[: len(x) // 640 * 640].astype(np.float64).reshape(-1, 640)
    frames = frames[np.sqrt((frames**2).mean(axis=1)) > 0.1 * np.abs(x).max()]
    spectrum = np.fft.rfft(frames, 1280, axis=1)
    autocorr = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, RATE_HZ // 400 : RATE_HZ // 60]
    return float(np.median(RATE_HZ / (RATE_HZ // 400 + autocorr.argmax(axis=1))))


@needs_espeak
def test_speak_returns_speech() -> None:
    y = synth.speak(synth.VOICES[0], synth.SENTENCES[0])
    assert y.dtype == np.float32 and y.ndim == 1
    active = np.sqrt((y[: len(y) // 320 * 320].reshape(-1, 320) ** 2).mean(axis=1)) > 0.01
    assert active.sum() * 320 / RATE_HZ > 0.5
    assert np.abs(y).max() <= 1.0


@needs_espeak
def test_voices_sound_different() -> None:
    low, high = synth.VOICES[7], synth.VOICES[6]  # Hiro, Grace
    a = synth.speak(low, synth.SENTENCES[5])
    b = synth.speak(high, synth.SENTENCES[5])
    assert median_pitch_hz(b) > 1.5 * median_pitch_hz(a)
    names = [v.name for v in synth.VOICES]
    assert len(set(names)) == len(names) >= 6
    assert len({(v.espeak_voice, v.pitch, v.speed) for v in synth.VOICES}) == len(synth.VOICES)


@needs_espeak
def test_enrollment_audio_has_requested_length() -> None:
    y = synth.enrollment_audio(synth.VOICES[1], seconds=5.0)
    assert len(y) == 5 * RATE_HZ
    assert y.dtype == np.float32


@needs_espeak
@pytest.mark.parametrize("channel", ["broadcast", "radio", "clean"])
def test_conversation_ground_truth(channel: str) -> None:
    voices = list(synth.VOICES[:3])
    audio, turns = synth.conversation(voices, 30.0, np.random.default_rng(7), channel=channel)
    duration_s = len(audio) / RATE_HZ
    assert abs(duration_s - 30.0) <= 5.0
    assert audio.dtype == np.float32 and np.abs(audio).max() <= 1.0 and np.all(np.isfinite(audio))
    assert len(turns) >= 2
    assert {t.speaker for t in turns} <= {v.name for v in voices}
    for turn in turns:
        assert 0 <= turn.start_s < turn.end_s <= duration_s
    for before, after in itertools.pairwise(turns):
        assert before.end_s <= after.start_s
        assert before.speaker != after.speaker
    if channel == "clean":  # speech inside the turns, silence between them
        inside = np.zeros(len(audio), bool)
        for turn in turns:
            inside[round(turn.start_s * RATE_HZ) : round(turn.end_s * RATE_HZ)] = True
        assert np.abs(audio[~inside]).max() == 0
        assert np.sqrt(np.mean(audio[inside] ** 2)) > 0.01


@needs_espeak
def test_conversation_is_reproducible() -> None:
    voices = list(synth.VOICES[:2])
    a = synth.conversation(voices, 10.0, np.random.default_rng(8), channel="telephone")
    b = synth.conversation(voices, 10.0, np.random.default_rng(8), channel="telephone")
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]


def test_turn_json_round_trip() -> None:
    turn = synth.Turn("Alice", 1.5, 4.25, 1.62)
    assert synth.Turn.from_json(turn.to_json()) == turn


def test_conversation_rejects_bad_arguments() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="two voices"):
        synth.conversation([synth.VOICES[0]], 10.0, rng)
    with pytest.raises(ValueError, match="channel"):
        synth.conversation(list(synth.VOICES[:2]), 10.0, rng, channel="satellite")


def test_missing_espeak_raises_model_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    with pytest.raises(ModelError, match="apt-get install espeak-ng"):
        synth.speak(synth.VOICES[0], "Hello there.")


@needs_espeak
def test_unknown_espeak_voice_raises_model_error() -> None:
    with pytest.raises(ModelError, match="nonexistent"):
        synth.speak(synth.Voice("Nobody", "nonexistent", 50, 160), "Hello there.")
