"""Archive indexing: files segmented in groups, as streams of one spotter, by a pool of worker processes or by tasks
on a Ray cluster."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain, islice

import numpy as np

from .audio import RATE_HZ, decode
from .blas import limit_blas
from .embedding import load_backend
from .errors import AudioError
from .pipeline import Spotter, SpotterOptions
from .records import AudioChunk, Detection, Segment
from .scoring import Calibration, Watchlist
from .vad import SileroVad


def segment_files(
    spotter: Spotter, paths: list[str], chunk_s: float = 16.0
) -> Iterator[tuple[str, float, list[Segment], str | None]]:
    """Decode ``paths`` together, as streams of one spotter, and yield (path, duration, segments, error) per file."""
    decoders = {p: decode(p) for p in paths}
    pending = {p: np.zeros(0, np.float32) for p in paths}
    position = {p: 0 for p in paths}
    segments: dict[str, list[Segment]] = {p: [] for p in paths}
    step = int(chunk_s * RATE_HZ)
    while decoders:
        chunks, ended = [], []
        for path, blocks in decoders.items():
            try:
                while len(pending[path]) < step:
                    pending[path] = np.concatenate([pending[path], next(blocks)])
            except StopIteration:
                ended.append((path, None))
            except AudioError as exc:
                ended.append((path, str(exc)))
            if len(pending[path]):
                chunks.append(AudioChunk(path, position[path] / RATE_HZ, pending[path][:step]))
                position[path] += len(chunks[-1].samples)
                pending[path] = pending[path][step:]
        events = spotter.process(chunks)
        for path, error in ended:
            del decoders[path]
            events += spotter.finish(path)
        for e in events:
            if isinstance(e, Segment):
                segments[e.source].append(e)
        for path, error in ended:
            if error is None and position[path] == 0:
                error = f"{path}: contains no audio samples"
            yield path, position[path] / RATE_HZ, segments.pop(path), error


def segment_groups(
    groups: Iterable[Sequence[str]],
    spotter: Callable[[], Spotter],
    model: str,
    options: SpotterOptions,
    workers: int,
    ray: str | None = None,
) -> Iterator[tuple[str, float, list[Segment], str | None]]:
    """Segment groups of files, each handed to whichever worker process is free, so uneven files still keep every
    worker busy; results come back in the order they finish. Groups are taken from ``groups`` only as workers free up
    (two per worker in flight), so whatever makes them (hashing, say) goes on alongside. With one worker (or one
    group) the files are segmented here, by ``spotter()`` (so an injected model is used); worker processes load
    ``model`` themselves. With ``ray`` (a cluster's address) each group is a Ray task, two per CPU of the cluster
    in flight; the files must be at the same paths on every node."""
    if ray is not None:
        yield from _segment_on_ray(iter(groups), model, options, ray)
        return
    waiting = iter(groups)
    first = list(islice(waiting, 2))
    if max(1, workers) == 1 or len(first) <= 1:
        if first:
            local = spotter()
            for g in chain(first, waiting):
                yield from segment_files(local, list(g))
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    waiting = chain(first, waiting)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start, initargs=(model, options)) as pool:
        running: set[Future] = set()  # type: ignore[type-arg]
        while True:
            running |= {pool.submit(_worker_segment, list(g)) for g in islice(waiting, 2 * workers - len(running))}
            if not running:
                return
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for done in finished:
                yield from done.result()


def _segment_on_ray(
    waiting: Iterator[Sequence[str]], model: str, options: SpotterOptions, address: str
) -> Iterator[tuple[str, float, list[Segment], str | None]]:
    from .cluster import connect

    ray = connect(address)
    task = ray.remote(num_cpus=1)(_ray_segment)
    in_flight = 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))
    running: list = []  # type: ignore[type-arg]
    while True:
        running += [task.remote(model, options, list(g)) for g in islice(waiting, in_flight - len(running))]
        if not running:
            return
        finished, running = ray.wait(running, num_returns=1)
        yield from ray.get(finished[0])


def _ray_segment(model: str, options: SpotterOptions, paths: list[str]) -> list[tuple[str, float, list[Segment], str | None]]:
    """A Ray task: segment one group of files with this worker process's spotter (made on its first task)."""
    if _WORKER is None or _WORKER.options != options or _WORKER.backend.name != model:
        _worker_start(model, options)
    return _worker_segment(paths)


_WORKER: Spotter | None = None  # the spotter of one worker process, made by _worker_start


def _worker_start(model: str, options: SpotterOptions) -> None:
    global _WORKER
    limit_blas()  # for the life of this worker process
    backend = load_backend(model, threads=1)
    _WORKER = Spotter(
        backend, SileroVad(threads=1), Watchlist.empty(backend.dimension, Calibration.borrowed(backend.name)), options
    )


def _worker_segment(paths: list[str]) -> list[tuple[str, float, list[Segment], str | None]]:
    assert _WORKER is not None
    return list(segment_files(_WORKER, paths))


def merge_detections(detections: list[Detection], gap_s: float) -> list[Detection]:
    """Join one speaker's detections that follow each other within ``gap_s``; keep the best score."""
    merged: list[Detection] = []
    for d in sorted(detections, key=lambda d: d.start_s):
        last = merged[-1] if merged else None
        if last is not None and d.start_s - last.end_s <= gap_s:
            best = max(last, d, key=lambda x: x.llr)
            merged[-1] = Detection(last.source, last.speaker, last.start_s, max(last.end_s, d.end_s), best.score, best.llr)
        else:
            merged.append(d)
    return [
        Detection(d.source, d.speaker, round(d.start_s, 3), round(d.end_s, 3), round(d.score, 4), round(d.llr, 3)) for d in merged
    ]
