"""Shared fixtures: the real speech in ../shared/data (tests skip cleanly without it) and models loaded once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.data import heldout
from voxwatch import Engine, Settings, SileroVad, load_backend
from voxwatch.corpus import speaker_folders
from voxwatch.embedding import DEFAULT_MODEL

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TEST_OTHER = DATA / "resemblyzer/audio_data/librispeech_test-other"


@pytest.fixture(scope="session")
def data() -> Path:
    if not TEST_OTHER.is_dir():
        pytest.skip(f"real speech not found at {DATA} (the shared data folder beside the project)")
    return DATA


@pytest.fixture(scope="session")
def readers(data: Path) -> dict[str, list[Path]]:
    """LibriSpeech test-other: 10 readers × 10 utterances."""
    return speaker_folders(TEST_OTHER)


@pytest.fixture(scope="session")
def impostors(data: Path) -> dict[str, list[Path]]:
    """LibriSpeech train-clean-100 readers held apart from the encoder's training (71), one reading each."""
    return heldout("resemblyzer/audio_data/librispeech_train-clean-100", data)


@pytest.fixture(scope="session")
def models():  # type: ignore[no-untyped-def]
    return load_backend(DEFAULT_MODEL), SileroVad()


@pytest.fixture
def engine(tmp_path: Path, models) -> Engine:  # type: ignore[no-untyped-def]
    backend, vad = models
    e = Engine(Settings(db=tmp_path / "voxwatch.db"), actor="tester", backend=backend, vad=vad)
    yield e
    e.close()


def largest(files: list[Path], n: int) -> list[Path]:
    return sorted(files, key=lambda f: -f.stat().st_size)[:n]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
