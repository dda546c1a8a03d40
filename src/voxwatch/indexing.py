"""Archive indexing: files segmented in groups, as streams of one spotter, by a pool of worker processes or by tasks
on a Ray cluster, where a long file is split into time ranges (cut in pauses) segmented by separate tasks."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain, islice

import numpy as np

from .audio import RATE_HZ, decode, duration_s
from .blas import limit_blas
from .embedding import load_backend
from .errors import AudioError, UsageError
from .pipeline import Spotter, SpotterOptions, StreamState
from .records import AudioChunk, Detection, Segment
from .scoring import Calibration, Watchlist
from .vad import FRAME, SileroVad, VadState, VoiceActivity

log = logging.getLogger(__name__)

CHUNK_S = 1800.0  # on a Ray cluster, a file longer than this is split into time ranges of about this length
CUT_SEARCH_S = 30.0  # a range ends in a pause found within this much audio after its nominal end


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
    chunk_s: float = CHUNK_S,
) -> Iterator[tuple[str, float, list[Segment], str | None]]:
    """Segment groups of files, each handed to whichever worker process is free, so uneven files still keep every
    worker busy; results come back in the order they finish. Groups are taken from ``groups`` only as workers free up
    (two per worker in flight), so whatever makes them (hashing, say) goes on alongside. With one worker (or one
    group) the files are segmented here, by ``spotter()`` (so an injected model is used); worker processes load
    ``model`` themselves. With ``ray`` (a cluster's address) each group is a Ray task, two per CPU of the cluster
    in flight; the files must be at the same paths on every node, and a file longer than ``chunk_s`` is split into
    time ranges, a task each, joined again into one result."""
    if ray is not None:
        if chunk_s < 2 * CUT_SEARCH_S:
            raise UsageError(f"chunks of {chunk_s:g} s are too short: use at least {2 * CUT_SEARCH_S:g} s")
        yield from _segment_on_ray(iter(groups), model, options, ray, chunk_s)
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
    waiting: Iterator[Sequence[str]], model: str, options: SpotterOptions, address: str, chunk_s: float
) -> Iterator[tuple[str, float, list[Segment], str | None]]:
    from .cluster import connect

    ray = connect(address)
    group_task = ray.remote(num_cpus=1)(_ray_segment)
    range_task = ray.remote(num_cpus=1)(_ray_segment_range)
    in_flight = 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))
    jobs = _ray_jobs(waiting, chunk_s)
    running: dict = {}  # type: ignore[type-arg]  # a task's result → (its files, chunk number, chunks of the file)
    parts: dict[str, dict[int, tuple[float, list[Segment], str | None]]] = {}  # a split file's finished chunks
    while True:
        for paths, i, n in islice(jobs, in_flight - len(running)):
            if n == 1:
                running[group_task.remote(model, options, paths)] = (paths, i, n)
            else:
                end_s = (i + 1) * chunk_s if i < n - 1 else None
                running[range_task.remote(model, options, paths[0], i * chunk_s, end_s)] = (paths, i, n)
        if not running:
            return
        (finished,), _ = ray.wait(list(running), num_returns=1)
        paths, i, n = running.pop(finished)
        if n == 1:
            yield from ray.get(finished)
            continue
        done = parts.setdefault(paths[0], {})
        done[i] = ray.get(finished)
        log.info("%s: %d of %d chunks segmented", paths[0], len(done), n)
        if len(done) == n:
            yield paths[0], *join_chunks([done[k] for k in range(n)])
            del parts[paths[0]]


def _ray_jobs(groups: Iterator[Sequence[str]], chunk_s: float) -> Iterator[tuple[list[str], int, int]]:
    """The tasks for ``groups``: (files, chunk number, chunks): a file longer than ``chunk_s`` (as its container
    states) a task per chunk, the group's other files one task (chunk 0 of 1)."""
    for group in groups:
        short = []
        for path in group:
            n = math.ceil(duration_s(path) / chunk_s)
            if n > 1:
                yield from (([path], i, n) for i in range(n))
            else:
                short.append(path)
        if short:
            yield short, 0, 1


def join_chunks(parts: list[tuple[float, list[Segment], str | None]]) -> tuple[float, list[Segment], str | None]:
    """One file's (duration, segments, error) from those of its chunks, in order (each chunk ends where the next
    starts, so the furthest end is the file's duration)."""
    error = next((e for _, _, e in parts if e is not None), None)
    return max(end_s for end_s, _, _ in parts), [s for _, segments, _ in parts for s in segments], error


def segment_range(spotter: Spotter, path: str, start_s: float, end_s: float | None) -> tuple[float, list[Segment], str | None]:
    """Segment ``path`` from a pause near ``start_s`` (0: its start) to a pause near ``end_s`` (None: its end); returns
    where it stopped (s), the segments (in the file's clock) and the error, if any. Each pause is found in the
    ``CUT_SEARCH_S`` of audio after the nominal time, the same way whichever range asks, so neighbouring ranges meet
    there: no speech is lost or segmented twice."""
    position = round(start_s * RATE_HZ)
    segments: list[Segment] = []
    try:
        audio = _Samples(decode(path, start_s=start_s))
        if start_s > 0:
            head = audio.take(int(CUT_SEARCH_S * RATE_HZ))
            cut = quiet_cut(spotter.vad, head, spotter.options)
            audio.unread(head[cut:])
            position += cut
        spotter.streams[path] = StreamState(path, position=position)  # the stream's clock: the file's
        stop = None if end_s is None else round(end_s * RATE_HZ)
        while stop is None or position < stop:
            block = audio.take(16 * RATE_HZ if stop is None else min(16 * RATE_HZ, stop - position))
            if not len(block):
                break
            segments += _segments(spotter.process([AudioChunk(path, position / RATE_HZ, block)]))
            position += len(block)
        if stop is not None and position >= stop:
            tail = audio.take(int(CUT_SEARCH_S * RATE_HZ))
            tail = tail[: quiet_cut(spotter.vad, tail, spotter.options)]
            if len(tail):
                segments += _segments(spotter.process([AudioChunk(path, position / RATE_HZ, tail)]))
                position += len(tail)
        error = None
    except AudioError as exc:
        error = str(exc)
    return position / RATE_HZ, segments + _segments(spotter.finish(path)), error


def quiet_cut(vad: VoiceActivity, samples: np.ndarray, options: SpotterOptions) -> int:
    """Where to cut ``samples`` (judged by ``vad`` afresh from their start): the middle of their first pause of at
    least ``options.max_pause_s`` (which ends a turn anyway), else of their longest pause, else their end."""
    n = len(samples) // FRAME
    state = VadState()
    quiet = vad.probabilities(samples[: n * FRAME].reshape(n, FRAME), [state] * n) < options.vad_offset
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    starts, ends = edges[::2], edges[1::2]
    if not len(starts):
        return len(samples)
    long = np.flatnonzero((ends - starts) * FRAME >= options.max_pause_s * RATE_HZ)
    k = int(long[0]) if len(long) else int(np.argmax(ends - starts))
    return int(starts[k] + ends[k]) // 2 * FRAME


class _Samples:
    """Decoded blocks read by sample count."""

    def __init__(self, blocks: Iterator[np.ndarray]):
        self._blocks = blocks
        self._pending = np.zeros(0, np.float32)

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` samples (fewer at the end)."""
        parts, have = [self._pending], len(self._pending)
        while have < n and (block := next(self._blocks, None)) is not None:
            parts.append(block)
            have += len(block)
        joined = np.concatenate(parts)
        self._pending = joined[n:]
        return joined[:n]

    def unread(self, samples: np.ndarray) -> None:
        """Put ``samples`` back in front of what is still to be read."""
        self._pending = np.concatenate([samples, self._pending])


def _segments(events: list) -> list[Segment]:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, Segment)]


def _ray_segment(model: str, options: SpotterOptions, paths: list[str]) -> list[tuple[str, float, list[Segment], str | None]]:
    """A Ray task: segment one group of files with this worker process's spotter."""
    return list(segment_files(_worker(model, options), paths))


def _ray_segment_range(
    model: str, options: SpotterOptions, path: str, start_s: float, end_s: float | None
) -> tuple[float, list[Segment], str | None]:
    """A Ray task: segment one time range of a long file (see :func:`segment_range`) with this worker's spotter."""
    return segment_range(_worker(model, options), path, start_s, end_s)


def _worker(model: str, options: SpotterOptions) -> Spotter:
    """This Ray worker process's spotter, made on its first task (and again for another model or options)."""
    if _WORKER is None or _WORKER.options != options or _WORKER.backend.name != model:
        _worker_start(model, options)
    assert _WORKER is not None
    return _WORKER


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
