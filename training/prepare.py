"""Step 1 of training: cut the training speakers' speech into utterances, degrade each one ``--versions`` times,
and embed every 1.6 s crop of the clean audio with the teacher (GE2E). Writes arrays to ``--cache`` (outside git).

    .venv/bin/python -m training.prepare --cache ~/.cache/voxwatch-train [--versions 6] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from voxwatch.audio import RATE_HZ, load_audio
from voxwatch.embedding import Ge2eBackend
from voxwatch.perturb import resample

from .augment import Degrader
from .data import DATA, speakers

WINDOW = int(1.6 * RATE_HZ)  # the runtime window
HOP = int(0.2 * RATE_HZ)  # spacing of the crops the teacher embeds
UTTERANCE_S = 8.0  # short clips (words) of a speaker are joined into utterances of about this length
FRAME = 320  # 20 ms, for trimming silence


def trim(x: np.ndarray, floor_db: float = 35.0) -> np.ndarray:
    """``x`` without leading and trailing frames more than ``floor_db`` below its loudest frame."""
    n = len(x) // FRAME
    if n == 0:
        return x
    db = 10 * np.log10(np.mean(x[: n * FRAME].reshape(n, FRAME) ** 2, axis=1) + 1e-12)
    keep = np.flatnonzero(db > db.max() - floor_db)
    return x[keep[0] * FRAME : (keep[-1] + 1) * FRAME]


def utterances(files: list[Path]) -> list[np.ndarray]:
    """A speaker's files as utterances of at least one window: long files as they are, short clips trimmed and
    joined (with 0.15 s pauses) into pieces of about :data:`UTTERANCE_S`."""
    out, pending = [], []
    gap = np.zeros(int(0.15 * RATE_HZ), np.float32)
    for f in files:
        x = load_audio(f)
        if len(x) >= UTTERANCE_S * RATE_HZ:
            out.append(x)
            continue
        pending += [trim(x), gap]
        if sum(map(len, pending)) >= UTTERANCE_S * RATE_HZ:
            out.append(np.concatenate(pending))
            pending = []
    if pending and sum(map(len, pending)) >= WINDOW:
        out.append(np.concatenate(pending))
    return [u for u in out if len(u) >= WINDOW]


def crops(x: np.ndarray, floor_db: float = 15.0) -> np.ndarray:
    """Starts of the 1.6 s crops (every 0.2 s) whose level is within ``floor_db`` of the utterance's loudest crop."""
    starts = np.arange(0, len(x) - WINDOW + 1, HOP)
    power = np.cumsum(np.r_[0.0, x.astype(np.float64) ** 2])
    db = 10 * np.log10((power[starts + WINDOW] - power[starts]) / WINDOW + 1e-12)
    return starts[db > db.max() - floor_db]


def speed_spans(table: Mapping[str, np.ndarray], speed: float) -> tuple[np.ndarray, np.ndarray]:
    """Start and length, in the cache's audio, of what each crop of ``table`` (``crops.npz``) becomes when played
    ``speed`` times as fast: a stretch of ``speed`` windows (kept inside its utterance) that resampling squeezes into
    one window."""
    lo, hi = table["offsets"][table["utterance"]], table["offsets"][table["utterance"] + 1]
    length = np.minimum(round(WINDOW * speed), hi - lo)
    return np.clip(table["start"], lo, hi - length), length


def speed_teacher(cache: Path, speeds: tuple[float, ...]) -> np.ndarray:
    """The teacher's embeddings of every crop of clean audio played at each of ``speeds`` (1.0 first: the crops as
    they are), (len(speeds), crops, 256). Computed once (about a minute per speed on 2 cores) and kept in the cache."""
    path = cache / ("teacher-speeds-" + "-".join(f"{v:g}" for v in speeds) + ".npy")
    if path.is_file():
        return np.load(path)
    table = np.load(cache / "crops.npz")
    clean = np.load(cache / "clean.npy", mmap_mode="r")
    teacher = Ge2eBackend(threads=2)
    out = []
    for speed in speeds:
        if speed == 1.0:
            out.append(table["teacher"].astype(np.float32))
            continue
        start, length = speed_spans(table, speed)
        embedded = []
        for i in range(0, len(start), 256):  # 256 crops at a time: all of them played at once would take 1.2 GB
            played = [resample(clean[s : s + n], WINDOW) for s, n in zip(start[i : i + 256], length[i : i + 256])]
            embedded.append(teacher.embed(np.stack(played)))
        out.append(np.concatenate(embedded))
    embeddings = np.stack(out).astype(np.float32)
    np.save(path, embeddings)
    return embeddings


_DEGRADER: Degrader | None = None


def _init() -> None:
    global _DEGRADER
    _DEGRADER = Degrader.from_data()


def _degrade(job: tuple[np.ndarray, int, int, int]) -> tuple[np.ndarray, str]:
    x, seed, utterance, version = job
    assert _DEGRADER is not None
    return _DEGRADER(x, np.random.default_rng([seed, utterance, version]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--versions", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not (DATA / "MANIFEST.tsv").is_file():
        sys.exit(f"{DATA}: the shared speech data (with its MANIFEST.tsv) is not there; training reads it in place")
    args.cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    names, utts, labels = [], [], []
    for name, files in sorted(speakers("train").items()):
        pieces = utterances(files)
        if pieces:
            names.append(name)
            utts += pieces
            labels += [len(names) - 1] * len(pieces)
    offsets = np.r_[0, np.cumsum([len(u) for u in utts])]
    print(f"{len(names)} speakers, {len(utts)} utterances, {offsets[-1] / RATE_HZ / 60:.1f} min of audio")
    starts, owner = [], []
    for i, u in enumerate(utts):
        s = crops(u)
        starts.append(offsets[i] + s)
        owner.append(np.full(len(s), i))
    start, utt = np.concatenate(starts), np.concatenate(owner)
    clean = np.concatenate(utts).astype(np.float32)
    np.save(args.cache / "clean.npy", clean.astype(np.float16))
    teacher = Ge2eBackend(threads=args.workers)
    emb = np.concatenate(
        [teacher.embed(np.stack([clean[s : s + WINDOW] for s in start[i : i + 256]])) for i in range(0, len(start), 256)]
    )
    print(f"{len(start)} crops embedded by the teacher ({time.perf_counter() - started:.0f} s)")
    np.savez(args.cache / "crops.npz", start=start, utterance=utt, speaker=np.asarray(labels)[utt], teacher=emb, offsets=offsets)
    kinds: dict[str, int] = {}
    with Pool(args.workers, initializer=_init) as pool:
        for v in range(args.versions):
            jobs = [(u, args.seed, i, v) for i, u in enumerate(utts)]
            out = pool.map(_degrade, jobs, chunksize=8)
            for _, kind in out:
                kinds[kind] = kinds.get(kind, 0) + 1
            np.save(args.cache / f"degraded{v}.npy", np.concatenate([y for y, _ in out]).astype(np.float16))
            print(f"version {v} written ({time.perf_counter() - started:.0f} s)")
    (args.cache / "meta.json").write_text(
        json.dumps({"speakers": names, "versions": args.versions, "seed": args.seed, "kinds": kinds}, indent=1)
    )
    print(f"done in {time.perf_counter() - started:.0f} s; chains drawn: {kinds}")


if __name__ == "__main__":
    main()
