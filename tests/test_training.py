"""The encoder's training pieces: the held-out split, real codec round trips, the degradation chains, and the
student's export (a student that still has GE2E's weights must give GE2E's embeddings through the shipped graph)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.augment import KINDS, Degrader
from training.codec import CODECS, round_trip
from training.data import TRAINABLE, read_split, speakers
from voxwatch import load_audio, load_backend
from voxwatch.audio import RATE_HZ

SPEECH = "resemblyzer/audio_data/librispeech_test-other/2033/2033-164914-0000.flac"


def test_split_keeps_training_and_evaluation_speakers_apart(data: Path) -> None:
    split = read_split()
    train, held = speakers("train"), speakers("heldout")
    assert train and held and not set(train) & set(held)
    assert all(k.rsplit("/", 1)[0] in TRAINABLE for k in train)
    assert {r for r in split.values()} == {"train", "heldout"}
    # folders the benchmarks use as they are (test-other, Arabic, RAVDESS) are never in the training set
    assert not any(k.startswith(("resemblyzer/audio_data/librispeech_test-other", "arabic", "ravdess")) for k in train)


@pytest.mark.parametrize("name", sorted(CODECS))
def test_codec_round_trip_keeps_length_and_timing(data: Path, name: str) -> None:
    x = load_audio(data / SPEECH)[: RATE_HZ * 4]
    y = round_trip(x, CODECS[name])
    assert y.shape == x.shape and np.all(np.isfinite(y))
    # aligned: the decoded speech follows the original's envelope (20 ms frames)
    env = [np.sqrt(np.mean(s[: len(s) // 320 * 320].reshape(-1, 320) ** 2, axis=1)) for s in (x, y)]
    assert np.corrcoef(*env)[0, 1] > 0.8, name


def test_every_degradation_keeps_length_and_range(data: Path) -> None:
    x = load_audio(data / SPEECH)
    degrade = Degrader([load_audio(data / "arabic_speech_commands/background_noise/boiler.flac")], [])
    rng = np.random.default_rng(0)
    for kind in KINDS:
        y = getattr(degrade, kind)(x, rng)
        assert y.shape == x.shape and np.all(np.isfinite(y)) and np.abs(y).max() <= 1.0, kind
        assert not np.allclose(y, x), kind


def test_exported_student_with_ge2e_weights_is_ge2e(data: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="training needs the [train] extra (torch)")
    from training.train import Student, export

    path = tmp_path / "student.onnx"
    export(Student.from_ge2e(), path)
    audio = load_audio(data / SPEECH)
    windows = np.stack([audio[s : s + 25600] for s in (0, RATE_HZ, 2 * RATE_HZ)])
    np.testing.assert_allclose(load_backend(str(path)).embed(windows), load_backend("ge2e").embed(windows), atol=1e-5)
