"""The encoder's training pieces: the held-out split, real codec round trips, the degradation chains, crops played
faster or slower (speaker augmentation), and the student's export (a student that still has GE2E's weights must
give GE2E's embeddings through the shipped graph)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.augment import KINDS, Degrader
from training.codec import CODECS, round_trip
from training.data import TRAINABLE, read_split, speakers
from training.prepare import WINDOW, crops, speed_spans
from voxwatch import load_audio, load_backend
from voxwatch.audio import RATE_HZ
from voxwatch.perturb import resample

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


def test_a_radio_chain_degrades_audio_shorter_than_its_agc(data: Path) -> None:
    # a 1 s turn: the AGC's smoothing (up to 1.5 s) must not outgrow the audio
    x = load_audio(data / SPEECH)[:RATE_HZ]
    degrade = Degrader([], [])
    for seed in range(30):
        y = degrade.radio(x, np.random.default_rng(seed))
        assert y.shape == x.shape and np.all(np.isfinite(y)), seed


def test_a_crop_played_at_another_speed_stays_inside_its_utterance(data: Path) -> None:
    speech = load_audio(data / SPEECH)
    utterances = [speech[: 3 * RATE_HZ], speech[3 * RATE_HZ : 3 * RATE_HZ + 27200]]  # the second 1.7 s: one window and a bit
    offsets = np.r_[0, np.cumsum([len(u) for u in utterances])]
    starts = [offsets[i] + crops(u) for i, u in enumerate(utterances)]
    table = {"start": np.concatenate(starts), "utterance": np.repeat([0, 1], [len(s) for s in starts]), "offsets": offsets}
    utterance = table["utterance"]
    same_start, same_length = speed_spans(table, 1.0)
    assert np.array_equal(same_start, table["start"]) and np.all(same_length == WINDOW)
    for speed in (0.9, 1.1):
        start, length = speed_spans(table, speed)
        assert np.all(start >= offsets[utterance]) and np.all(start + length <= offsets[utterance + 1])
        assert np.array_equal(length, np.minimum(round(WINDOW * speed), np.diff(offsets)[utterance]))
        # played at that speed, the stretch fills one window and still holds the same speech
        stretch = speech[start[0] : start[0] + length[0]]
        played = resample(stretch, WINDOW)
        assert len(played) == WINDOW
        assert np.corrcoef(resample(played, len(stretch)), stretch)[0, 1] > 0.99


def test_exported_student_with_ge2e_weights_is_ge2e(data: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="training needs the [train] extra (torch)")
    from training.train import Student, export

    path = tmp_path / "student.onnx"
    export(Student.from_ge2e(), path)
    audio = load_audio(data / SPEECH)
    windows = np.stack([audio[s : s + 25600] for s in (0, RATE_HZ, 2 * RATE_HZ)])
    np.testing.assert_allclose(load_backend(str(path)).embed(windows), load_backend("ge2e").embed(windows), atol=1e-5)


def test_moving_trained_weights_toward_the_teacher_blends_them() -> None:
    torch = pytest.importorskip("torch", reason="training needs the [train] extra (torch)")
    from training.train import Student, toward

    teacher = Student.from_ge2e().state_dict()
    trained = {k: v + 1.0 for k, v in teacher.items()}
    for share, offset in ((0.0, 1.0), (0.15, 0.85), (1.0, 0.0)):
        moved = toward(trained, teacher, share)
        assert all(torch.allclose(moved[k], teacher[k] + offset, atol=1e-6) for k in teacher)
