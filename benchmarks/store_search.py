"""Archive search on SQLite and on PostgreSQL: the same index in both stores, the same searches, in one run.

Fills a SQLite file and a PostgreSQL database (a throwaway server this script starts from Debian's ``postgresql``
binaries, or ``--url`` of a running one) with ``--hours`` of indexed recordings. The segments are synthetic: unit
vectors of the real dimension (256, the default model's), one segment per speech turn at the real spacing (600 per
hour, every 6 s, as the indexing benchmark measures on real speech: about 265 KiB of index per hour), ten voices per
one-hour recording, one of them planted in five recordings. It times, best of three, what ``voxwatch search
--speaker`` reads from the store:

* search: every recording's voice summaries, then the segments of the recordings the voice may speak in;
* full scan: every segment of every recording (``recordings_by_id`` of all ids: a voice close to everyone's
  summaries, or a search with the prefilter off), scored against the voice.

and prints the seconds and the PostgreSQL / SQLite ratio.

    .venv/bin/python benchmarks/store_search.py [--hours 1000] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from voxwatch.scoring import l2_normalise
from voxwatch.store import Store, now
from voxwatch.testing import TemporaryPostgres

DIMENSION = 256
SEGMENTS_PER_HOUR = 600
VOICES_PER_RECORDING = 10
MODEL = "ge2e"


def fill(store: Store, hours: int, voice: np.ndarray, rng: np.random.Generator) -> None:
    """One-hour recordings of ten random voices each; ``voice`` speaks in five of them."""
    planted = set(rng.choice(hours, size=min(5, hours), replace=False).tolist())
    starts = np.arange(SEGMENTS_PER_HOUR, dtype=np.float32) * 6.0
    spans = np.stack([starts, starts + 5.0, np.full_like(starts, 4.5), np.full_like(starts, 0.9)], axis=1)
    for first in range(0, hours, 100):
        rows, summaries = [], []
        for h in range(first, min(first + 100, hours)):
            voices = l2_normalise(rng.normal(size=(VOICES_PER_RECORDING, DIMENSION)).astype(np.float32))
            if h in planted:
                voices[0] = voice
            who = rng.integers(VOICES_PER_RECORDING, size=SEGMENTS_PER_HOUR)
            noise = l2_normalise(rng.normal(size=(SEGMENTS_PER_HOUR, DIMENSION)).astype(np.float32))
            vectors = l2_normalise(voices[who] + 0.3 * noise).astype(np.float16)
            path = f"/archive/hour-{h:05d}.wav"
            rows.append(
                (h + 1, f"sha-{h}", MODEL, path, 3600.0, float(spans[:, 2].sum()), now(), spans.tobytes(), vectors.tobytes())
            )
            summaries.append((h + 1, MODEL, voices.astype(np.float16).tobytes()))
        with store._tx() as db:
            db.executemany(
                "INSERT INTO recordings (id, sha256, model, path, duration_s, speech_s, indexed_at, spans, vectors)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            db.executemany("INSERT INTO voice_summaries (recording_id, model, centroids) VALUES (?, ?, ?)", summaries)


def search(store: Store, voice: np.ndarray) -> int:
    """What a whole-index search reads: the summaries, then the hopeful recordings' segments; returns the hits."""
    ids, centroids, owners = store.index_summaries(MODEL, DIMENSION)
    hopeful = np.unique(owners[centroids @ voice >= 0.7])
    return sum(int((r.vectors.astype(np.float32) @ voice >= 0.7).sum()) for r in store.recordings_by_id(ids[hopeful].tolist()))


def full_scan(store: Store, voice: np.ndarray) -> int:
    ids = [int(i) for (i,) in store._query("SELECT id FROM recordings WHERE model = ?", (MODEL,))]
    return sum(int((r.vectors.astype(np.float32) @ voice >= 0.7).sum()) for r in store.recordings_by_id(ids))


def best_of(runs: int, task: Callable[[], int]) -> tuple[float, int]:
    times, result = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        result = task()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=int, default=1000)
    parser.add_argument("--url", help="a running PostgreSQL database to fill (it must be empty); default: start one")
    args = parser.parse_args()
    voice = l2_normalise(np.random.default_rng(1).normal(size=DIMENSION).astype(np.float32))
    server = None if args.url else TemporaryPostgres()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            locations = {"SQLite": Path(tmp) / "index.db", "PostgreSQL": args.url or server.create_database()}  # type: ignore[union-attr]
            figures: dict[str, dict[str, float]] = {}
            for kind, location in locations.items():
                store = Store(location)
                started = time.perf_counter()
                fill(store, args.hours, voice, np.random.default_rng(5))
                filled = time.perf_counter() - started
                figures[kind] = {}
                hits = {}
                for name, task in (("search", search), ("full scan", full_scan)):
                    figures[kind][name], hits[name] = best_of(3, lambda task=task, store=store: task(store, voice))
                store.close()
                print(
                    f"{kind:>10}: {args.hours} h ({args.hours * SEGMENTS_PER_HOUR:,} segments) filled in {filled:.1f} s;"
                    f" search {figures[kind]['search']:.3f} s ({hits['search']} segments hit),"
                    f" full scan {figures[kind]['full scan']:.3f} s ({hits['full scan']} hit)"
                )
            for name in ("search", "full scan"):
                print(f"{name}: PostgreSQL / SQLite = {figures['PostgreSQL'][name] / figures['SQLite'][name]:.2f}")
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
