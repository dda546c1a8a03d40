"""What the benchmarks share: where the data is, the LibriSpeech spotting task, and running a watch on it."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from voxwatch.audio import write_wav
from voxwatch.corpus import SpottingTask, speaker_folders, spotting_task
from voxwatch.engine import Engine, Settings, WatchSummary
from voxwatch.sources import FileSource

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))  # the training package (its held-out speaker list, its codecs) is read by benchmarks too

from training.data import heldout


def require_data() -> None:
    if not DATA.is_dir():
        sys.exit(f"skipped: {DATA} not found (the shared speech data this benchmark reads)")


def librispeech_task(
    rng: np.random.Generator, enroll_files: int = 4, stream_files: int = 6, impostors: int = 120
) -> SpottingTask:
    """10 LibriSpeech test-other readers enrolled, the stream mixing their other readings with train-clean-100 readers
    (those held apart from the encoder's training: at most 71)."""
    speakers = speaker_folders(DATA / "resemblyzer/audio_data/librispeech_test-other")
    others = dict(list(heldout("resemblyzer/audio_data/librispeech_train-clean-100").items())[:impostors])
    return spotting_task(speakers, others, rng, enroll_files=enroll_files, stream_files=stream_files)


def run_watch(task: SpottingTask, settings: Settings) -> tuple[WatchSummary, float]:
    """Enroll the task's voices in a fresh store, watch its stream (as fast as possible); returns the wall seconds of the watch."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Settings(**{**settings.__dict__, "db": Path(tmp) / "bench.db"}))
        for name, files in task.enrollment.items():
            engine.enroll(name, [str(f) for f in files], note="benchmark")
        stream = write_wav(Path(tmp) / "stream.wav", task.audio)
        _models = (engine.backend, engine.vad)  # loaded before timing
        started = time.perf_counter()
        summary = engine.watch([FileSource(str(stream))])
        return summary, time.perf_counter() - started
