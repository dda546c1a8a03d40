"""Shared fixtures: the real speech in ../shared/data (tests skip cleanly without it), models loaded once, and the
databases: ``db`` is each store in turn (a SQLite file, then a fresh database on a PostgreSQL server this test run
starts: Debian's ``postgresql`` binaries, skipped with the reason when absent); ``suite_db`` is the one store the
other tests use: SQLite, or PostgreSQL with ``VOXWATCH_TEST_DB=postgresql``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from itertools import count
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


class PostgresServer:
    """A throwaway PostgreSQL cluster in a temporary folder, on 127.0.0.1 at a free port (as user ``postgres`` when
    run as root: initdb refuses root), stopped and deleted by :meth:`stop`."""

    def __init__(self) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
        initdb = found[-1] if found else shutil.which("initdb")
        if initdb is None:
            pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql; make test does)")
        self.bin = Path(initdb).parent
        self.folder = Path(tempfile.mkdtemp(prefix="voxwatch-pg-"))
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.folder, "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        data = self.folder / "data"
        self._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        options = f"-h 127.0.0.1 -p {self.port} -k {self.folder} -F -c max_connections=200"
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(self.folder / "log"), "-w", "start")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}"
        self._names = count()

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bin / tool), *args], check=True, capture_output=True, cwd=self.folder)

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"{self.url}/postgres", autocommit=True) as con:
            con.execute(sql)

    def create_database(self) -> str:
        name = f"voxwatch_{next(self._names)}"
        self._admin(f"CREATE DATABASE {name}")
        return f"{self.url}/{name}"

    def drop_database(self, url: str) -> None:
        self._admin(f"DROP DATABASE {url.rsplit('/', 1)[1]} WITH (FORCE)")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    yield server
    server.stop()


def _database(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | Path]:
    if kind == "sqlite":
        yield tmp_path / "voxwatch.db"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
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
