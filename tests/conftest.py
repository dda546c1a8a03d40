"""Shared fixtures: the real speech in ../shared/data (tests skip cleanly without it), models loaded once, and the
databases: ``db`` is each store in turn (a SQLite file, then a fresh database on a PostgreSQL server this test run
starts: Debian's ``postgresql`` binaries, skipped with the reason when absent); ``suite_db`` is the one store the
other tests use: SQLite, or PostgreSQL with ``VOXWATCH_TEST_DB=postgresql``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from training.data import heldout
from voxwatch import Engine, Settings, SileroVad, load_backend
from voxwatch.corpus import speaker_folders
from voxwatch.embedding import DEFAULT_MODEL
from voxwatch.errors import StoreError
from voxwatch.testing import TemporaryPostgres

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


@pytest.fixture(scope="session")
def postgres() -> Iterator[TemporaryPostgres]:
    try:
        server = TemporaryPostgres()
    except StoreError as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


def _database(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | Path]:
    if kind == "sqlite":
        yield tmp_path / "voxwatch.db"
        return
    server: TemporaryPostgres = request.getfixturevalue("postgres")
    url = server.create_database()
    yield url
    server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | Path]:
    """A fresh database on each store in turn: a SQLite file's path, then a PostgreSQL URL."""
    yield from _database(request.param, request, tmp_path)


@pytest.fixture
def suite_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | Path]:
    """A fresh database on the store the suite runs on: SQLite, or PostgreSQL with VOXWATCH_TEST_DB=postgresql."""
    yield from _database(os.environ.get("VOXWATCH_TEST_DB", "sqlite"), request, tmp_path)


@pytest.fixture
def engine(suite_db: str | Path, models) -> Engine:  # type: ignore[no-untyped-def]
    backend, vad = models
    e = Engine(Settings(db=suite_db), actor="tester", backend=backend, vad=vad)
    yield e
    e.close()


def largest(files: list[Path], n: int) -> list[Path]:
    return sorted(files, key=lambda f: -f.stat().st_size)[:n]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
