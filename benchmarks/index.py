"""Archive index benchmark: indexing speed, index size, and query time as the index grows.

1. Indexes about an hour of real speech (LibriSpeech and AMI recordings from ../shared/data, joined into
   ten-minute files) and prints × real time with 1 and 2 worker processes, and index bytes per indexed hour.
2. Fills indexes of 100, 1,000 and 10,000 hours with synthetic segment embeddings (one-hour recordings, ten
   voices each, 600 segments per hour) in which one real enrolled voice is planted in a few recordings, and
   prints the time ``voxwatch search --speaker`` takes over the whole index, cold (new engine) and warm.

    .venv/bin/python benchmarks/index.py [--hours 100,1000,10000] [--audio-minutes 60]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
from common import DATA, require_data

from voxwatch.audio import RATE_HZ, load_audio, write_wav
from voxwatch.corpus import manifest, speaker_folders
from voxwatch.engine import Engine, Settings
from voxwatch.scoring import l2_normalise
from voxwatch.store import now

SEGMENTS_PER_HOUR = 600
VOICES_PER_RECORDING = 10


def archive(folder: Path, minutes: float, rng: np.random.Generator) -> float:
    """Ten-minute files of real speech with pauses; returns the seconds written."""
    pool = [f for files in manifest(DATA, "resemblyzer/audio_data/librispeech_train-clean-100").values() for f in files]
    pool += sorted((DATA / "pyannote_ami").rglob("*.flac")) + sorted((DATA / "pyannote_ami").rglob("*.wav"))
    pool += [f for files in speaker_folders(DATA / "resemblyzer/audio_data/librispeech_test-other").values() for f in files]
    clips = [load_audio(f) for f in pool]
    total, index = 0.0, 0
    while total < minutes * 60:
        parts, length = [], 0
        while length < 600 * RATE_HZ:
            clip = clips[int(rng.integers(len(clips)))]
            pause = np.zeros(int(rng.uniform(0.3, 2.0) * RATE_HZ), np.float32)
            parts += [clip, pause]
            length += len(clip) + len(pause)
        audio = np.concatenate(parts)
        write_wav(folder / f"show-{index:03d}.wav", audio)
        total += len(audio) / RATE_HZ
        index += 1
    return total


def indexing(minutes: float) -> None:
    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "archive"
        folder.mkdir()
        seconds = archive(folder, minutes, rng)
        print(f"archive: {seconds / 3600:.2f} h of real speech in {len(list(folder.iterdir()))} files")
        for workers in (1, 2):
            db = Path(tmp) / f"index-{workers}.db"
            engine = Engine(Settings(db=db, workers=workers))
            started = time.perf_counter()
            entries, errors = engine.index([str(folder)])
            elapsed = time.perf_counter() - started
            assert not errors, errors
            engine.close()
            con = sqlite3.connect(db)
            stored = con.execute("SELECT SUM(LENGTH(spans) + LENGTH(vectors)) FROM recordings").fetchone()[0]
            stored += con.execute("SELECT SUM(LENGTH(centroids)) FROM voice_summaries").fetchone()[0]
            segments = sum(len(e.spans) for e in entries)
            print(
                f"  {workers} worker(s): indexed in {elapsed:.1f} s = {seconds / elapsed:.0f}x real time; {segments} segments,"
                f" {stored / (seconds / 3600) / 1024:.0f} KiB of index per hour, file {db.stat().st_size / (seconds / 3600) / 1024:.0f} KiB per hour"
            )


def synthetic_index(db: Path, hours: int, voiceprint: np.ndarray, rng: np.random.Generator) -> set[str]:
    """One-hour recordings of ten random voices; the planted voice speaks in a few of them."""
    engine = Engine(Settings(db=db))
    engine.close()
    con = sqlite3.connect(db)
    dim = len(voiceprint)
    planted = {int(i) for i in rng.choice(hours, size=min(5, hours), replace=False)}
    rows, summaries = [], []
    for h in range(hours):
        voices = l2_normalise(rng.normal(size=(VOICES_PER_RECORDING, dim)).astype(np.float32))
        if h in planted:
            voices[0] = l2_normalise(voiceprint + 0.3 * l2_normalise(rng.normal(size=dim).astype(np.float32)))
        who = rng.integers(VOICES_PER_RECORDING, size=SEGMENTS_PER_HOUR)
        vectors = l2_normalise(voices[who] + 0.3 * l2_normalise(rng.normal(size=(SEGMENTS_PER_HOUR, dim)).astype(np.float32)))
        starts = np.arange(SEGMENTS_PER_HOUR, dtype=np.float32) * 6.0
        spans = np.stack([starts, starts + 5.0, np.full_like(starts, 4.5), np.full_like(starts, 0.9)], axis=1).astype(np.float32)
        rows.append(
            (
                h + 1,
                f"sha-{h}",
                "ge2e",
                f"/archive/hour-{h:05d}.wav",
                3600.0,
                float(spans[:, 2].sum()),
                now(),
                spans.tobytes(),
                vectors.astype(np.float16).tobytes(),
            )
        )
        summaries.append((h + 1, "ge2e", voices.astype(np.float16).tobytes()))
        if len(rows) == 500 or h == hours - 1:
            con.executemany(
                "INSERT INTO recordings (id, sha256, model, path, duration_s, speech_s, indexed_at, spans, vectors)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            con.executemany("INSERT INTO voice_summaries (recording_id, model, centroids) VALUES (?, ?, ?)", summaries)
            con.commit()
            rows, summaries = [], []
    con.close()
    return {f"/archive/hour-{h:05d}.wav" for h in planted}


def queries(sizes: list[int]) -> None:
    rng = np.random.default_rng(5)
    readers = speaker_folders(DATA / "resemblyzer/audio_data/librispeech_test-other")
    with tempfile.TemporaryDirectory() as tmp:
        for hours in sizes:
            db = Path(tmp) / f"synthetic-{hours}.db"
            engine = Engine(Settings(db=db))
            engine.enroll("reader", [str(f) for f in sorted(readers["2033"], key=lambda f: -f.stat().st_size)[:3]])
            voiceprint = engine.watchlist(["reader"]).matrix[0]
            engine.close()
            planted = synthetic_index(db, hours, voiceprint, rng)
            started = time.perf_counter()
            engine = Engine(Settings(db=db))
            found = engine.search(None, ["reader"]).detections
            cold = time.perf_counter() - started
            started = time.perf_counter()
            engine.search(None, ["reader"])
            warm = time.perf_counter() - started
            hit = {d.source for d in found}
            print(
                f"  {hours:>6} h indexed ({db.stat().st_size / 2**20:.0f} MiB): search over the whole index {cold * 1000:.0f} ms cold"
                f" (new engine, models loaded), {warm * 1000:.0f} ms warm; planted recordings found {len(hit & planted)}/{len(planted)},"
                f" others {len(hit - planted)}"
            )
            engine.close()
            db.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", default="100,1000,10000")
    parser.add_argument("--audio-minutes", type=float, default=60.0)
    args = parser.parse_args()
    require_data()
    indexing(args.audio_minutes)
    print("queries:")
    queries([int(h) for h in args.hours.split(",")])


if __name__ == "__main__":
    main()
