"""Test doubles shipped with the package: a tone embedding backend, an energy VAD, a tone "transcriber", an array
source and tone voices; and a throwaway PostgreSQL server.

They make the spotter, the watch, the store, the service and the CLI testable in milliseconds, without model files
or real speech. A "voice" here is a tone: :class:`ToneBackend` embeds a window by where its energy lies on a
log-frequency axis, so windows of the same tone score about 1 against each other and different tones about 0.

    from voxwatch.testing import ArraySource, tone_engine, tone_voice
    engine = tone_engine(tmp_path)
    engine.enroll("low", [write_wav(tmp_path / "low.wav", tone_voice(300.0, 6.0))])
    summary = engine.watch([ArraySource("stream", samples)])
"""

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

from .audio import RATE_HZ
from .engine import Engine, Settings
from .errors import StoreError, UsageError
from .pipeline import SpotterOptions
from .records import TimedText, Transcript
from .scoring import Calibration
from .sources import Source
from .vad import VadState

LOW_HZ, HIGH_HZ = 100.0, 4000.0

# For tone embeddings: a cosine of 0.8 or more is a match. The false-alarm table puts the alert threshold
# (0.1 false alarms per hour) at an LLR of 6, i.e. a cosine of 0.8.
TONE_CALIBRATION = Calibration(
    a=-10.0,
    b=20.0,
    c=0.0,
    d=0.0,
    fa_llr=tuple(float(x) for x in range(11)),
    fa_per_hour=(10.0, 5.0, 2.0, 1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.0),
)


class ToneBackend:
    """A deterministic embedding backend: the window's power spectrum pooled into ``dimension`` bands evenly spaced
    in log frequency between 100 Hz and 4 kHz, squared (so the strongest band dominates) and L2-normalised."""

    sample_rate = RATE_HZ

    def __init__(self, dimension: int = 32, window_s: float = 1.0, min_window_s: float = 0.5, name: str = "tones"):
        if dimension < 2:
            raise UsageError(f"dimension={dimension}: need at least 2 bands")
        if not 0 < min_window_s <= window_s:
            raise UsageError(f"need 0 < min_window_s ({min_window_s}) <= window_s ({window_s})")
        self.name = name
        self.dimension = dimension
        self.window_s = window_s
        self.min_window_s = min_window_s
        self.calls = 0  # embed() calls, for tests of batching

    def embed(self, batch: np.ndarray, band: str | None = None) -> np.ndarray:
        batch = np.asarray(batch, np.float32)
        if batch.ndim != 2 or batch.shape[1] < self.min_window_s * self.sample_rate:
            raise ValueError(f"embed expects (batch, >= {self.min_window_s * self.sample_rate:.0f}) samples, got {batch.shape}")
        self.calls += 1
        power = np.abs(np.fft.rfft(batch * np.hanning(batch.shape[1]), axis=1)) ** 2
        freqs = np.fft.rfftfreq(batch.shape[1], 1 / self.sample_rate)
        edges = np.geomspace(LOW_HZ, HIGH_HZ, self.dimension + 1)
        band = np.clip(np.searchsorted(edges, freqs) - 1, -1, self.dimension)
        inside = (band >= 0) & (band < self.dimension)
        pooled = np.zeros((len(batch), self.dimension))
        for k in range(self.dimension):
            pooled[:, k] = power[:, inside & (band == k)].sum(axis=1)
        pooled = pooled**2 + 1e-30
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)


class EnergyVad:
    """A VAD from frame energy alone: the speech probability rises from 0 to 1 around ``threshold_dbfs``."""

    name = "energy-vad"

    def __init__(self, threshold_dbfs: float = -35.0, width_db: float = 2.0):
        self.threshold_dbfs = threshold_dbfs
        self.width_db = width_db

    def probabilities(self, frames: np.ndarray, states: list[VadState]) -> np.ndarray:
        if len(frames) != len(states):
            raise ValueError(f"{len(frames)} frames but {len(states)} states")
        level = 10 * np.log10(np.mean(np.asarray(frames, np.float64) ** 2, axis=1) + 1e-12)
        return (1 / (1 + np.exp(-(level - self.threshold_dbfs) / self.width_db))).astype(np.float32)


class ToneTranscriber:
    """A transcriber double: "says" the tone it hears, in words, e.g. ``"tone 300 hertz"``: the strongest
    frequency of each second of audio, rounded to 50 Hz, as one segment per second (language ``"xx"``). Optional
    ``delay_s`` per call stands in for a slow model."""

    name = "tone-words"

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        self.calls = 0  # transcriptions
        self.identified = 0  # language identifications

    def transcribe(self, samples: np.ndarray, language: str | None = None) -> Transcript:
        import time

        self.calls += 1
        time.sleep(self.delay_s)
        segments = []
        for start in range(0, len(samples) - RATE_HZ // 4 + 1, RATE_HZ):
            part = samples[start : start + RATE_HZ]
            spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part))))
            peak = np.fft.rfftfreq(len(part), 1 / RATE_HZ)[int(np.argmax(spectrum))]
            words = f"tone {int(round(peak / 50) * 50)} hertz"
            segments.append(TimedText(start / RATE_HZ, (start + len(part)) / RATE_HZ, words))
        return Transcript(language or "xx", 1.0, " ".join(s.text for s in segments), tuple(segments))

    def identify_language(self, samples: np.ndarray) -> tuple[str, float]:
        self.identified += 1
        return "xx", 1.0


class ArraySource(Source):
    """A stream from 16 kHz mono samples in memory, in blocks of ``block_s``; not live (processing sets the pace)."""

    live = False

    def __init__(self, name: str, samples: np.ndarray, block_s: float = 0.25):
        super().__init__(name)
        if block_s <= 0:
            raise UsageError(f"block_s={block_s} must be positive")
        self.samples = np.asarray(samples, np.float32).reshape(-1)
        self.block = max(1, int(block_s * RATE_HZ))

    def blocks(self) -> Iterator[np.ndarray]:
        for start in range(0, len(self.samples), self.block):
            yield self.samples[start : start + self.block]


def tone_voice(freq_hz: float, seconds: float, level_dbfs: float = -20.0, seed: int = 0) -> np.ndarray:
    """A tone "voice": ``freq_hz`` with a slow syllable-like swell (always well above the VAD threshold) and a
    little noise, at about ``level_dbfs`` RMS."""
    n = int(seconds * RATE_HZ)
    t = np.arange(n) / RATE_HZ
    rng = np.random.default_rng(seed)
    swell = 0.8 + 0.2 * np.sin(2 * np.pi * 3.0 * t + rng.uniform(0, 2 * np.pi))
    x = np.sin(2 * np.pi * freq_hz * t + rng.uniform(0, 2 * np.pi)) * swell + 0.01 * rng.standard_normal(n)
    rms = np.sqrt(np.mean(x**2)) if n else 1.0
    return (x * 10 ** (level_dbfs / 20) / rms).astype(np.float32)


def compose_tones(turns: list[tuple[float | None, float]], seed: int = 0) -> np.ndarray:
    """Concatenate turns ``(freq_hz, seconds)``; a ``None`` frequency is a pause of faint noise (-70 dBFS)."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, (freq, seconds) in enumerate(turns):
        if freq is None:
            parts.append((10 ** (-70 / 20) * rng.standard_normal(int(seconds * RATE_HZ))).astype(np.float32))
        else:
            parts.append(tone_voice(freq, seconds, seed=seed + i))
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def write_tone_calibration(path: str | Path) -> Path:
    """Write :data:`TONE_CALIBRATION` where ``Settings(calibration=...)`` can read it."""
    import json

    path = Path(path)
    path.write_text(json.dumps(TONE_CALIBRATION.to_json()))
    return path


def tone_settings(folder: str | Path, **overrides: object) -> Settings:
    """Settings for a tone engine with its database and calibration in ``folder``: clean enrollment only, one worker."""
    folder = Path(folder)
    values: dict[str, object] = {
        "db": folder / "voxwatch.db",
        "model": "tones",
        "calibration": write_tone_calibration(folder / "tones-calibration.json"),
        "enroll_conditions": ("clean",),
        "workers": 1,
        "min_enroll_speech_s": 2.0,
        "spotter": SpotterOptions(),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def tone_engine(folder: str | Path, actor: str = "tester", **overrides: object) -> Engine:
    """An :class:`Engine` over a fresh database in ``folder`` with :class:`ToneBackend`, :class:`EnergyVad` and
    :class:`ToneTranscriber`."""
    return Engine(
        tone_settings(folder, **overrides), actor=actor, backend=ToneBackend(), vad=EnergyVad(), transcriber=ToneTranscriber()
    )


class TemporaryPostgres:
    """A throwaway PostgreSQL cluster in a temporary folder, on 127.0.0.1 at a free port (as user ``postgres`` when
    run as root: initdb refuses root), stopped and deleted by :meth:`stop`."""

    def __init__(self) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
        initdb = found[-1] if found else shutil.which("initdb")
        if initdb is None:
            raise StoreError("PostgreSQL is not installed (Debian: apt-get install postgresql; make test does)")
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
        done = subprocess.run(
            [*self.as_user, str(self.bin / tool), *args], check=False, capture_output=True, text=True, cwd=self.folder
        )
        if done.returncode:
            raise StoreError(f"PostgreSQL's {tool} failed: {done.stderr.strip()[-500:]}")

    def _admin(self, sql: str) -> None:
        import psycopg  # the postgres extra

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
