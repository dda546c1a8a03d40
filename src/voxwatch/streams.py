"""Runs many sources at once: one reader thread per source, a bounded queue with backpressure, and a live
status per stream. The consumer takes every chunk available in one go, so it can batch across streams."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import VoxwatchError
from .records import AudioChunk, _JsonRecord
from .sources import Source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamEnd:
    """A source stopped: ``error`` says why when it failed, None when it simply ended."""

    source: str
    error: str | None


@dataclass(frozen=True)
class StreamStatus(_JsonRecord):
    """What an operator wants to know about a watched stream."""

    source: str
    state: str  # running, ended, failed
    audio_s: float
    lag_s: float  # how far processing trails the audio that has arrived
    error: str | None = None
    drops: int = 0
    behind: bool = False  # a live source more than Multiplexer.BEHIND_S behind: the machine is not keeping up
    worker: str | None = None  # the cluster worker holding it (None: this process)


class Multiplexer:
    """Reads sources concurrently and yields batches of :class:`AudioChunk` and :class:`StreamEnd` values.

    ``max_pending`` chunks may wait per stream; a reader that gets further ahead blocks (file and stdin
    sources slow down; live sources then fall behind, which shows as lag and ``behind`` in :meth:`status`).
    A ``persistent`` multiplexer keeps running with no sources until :meth:`stop` (a service adds them later).
    A batch holds at most ``MAX_BATCH`` items, so a consumer that fell behind catches up in bounded steps.
    """

    MAX_BATCH = 1000
    BEHIND_S = 3.0

    def __init__(self, sources: list[Source], max_pending: int = 20, persistent: bool = False):
        self._max_pending = max_pending
        self._queue: queue.Queue[AudioChunk | StreamEnd] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._persistent = persistent
        self._sources: dict[str, Source] = {}
        self._arrived: dict[str, float] = {}
        self._done: dict[str, float] = {}
        self._state: dict[str, tuple[str, str | None]] = {}
        self._cancelled: dict[str, threading.Event] = {}
        self._pending: dict[str, threading.Semaphore] = {}
        self._started = False
        self._waiting: list[threading.Thread] = []
        self._live = 0
        for source in sources:
            self.add(source)

    def add(self, source: Source) -> None:
        """Start reading another source (also while iterating); names must be unique among running streams."""
        with self._lock:
            if self._state.get(source.name, ("ended", None))[0] == "running":
                raise VoxwatchError(f"{source.name}: this source is already being watched")
            self._sources[source.name] = source
            self._arrived[source.name] = self._done[source.name] = 0.0
            self._state[source.name] = ("running", None)
            self._cancelled[source.name] = threading.Event()
            self._pending[source.name] = threading.Semaphore(self._max_pending)
            self._live += 1
            thread = threading.Thread(target=self._read, args=(source,), name=f"source:{source.name}", daemon=True)
            if self._started:
                thread.start()
            else:
                self._waiting.append(thread)

    def cancel(self, name: str) -> None:
        """Stop reading one source; it ends like any other (a :class:`StreamEnd` without error)."""
        with self._lock:
            if name not in self._cancelled:
                raise VoxwatchError(f"{name}: no such stream")
            self._cancelled[name].set()

    def _read(self, source: Source) -> None:
        error = None
        cancelled, pending = self._cancelled[source.name], self._pending[source.name]
        try:
            for chunk in source.chunks():
                self._arrived[source.name] = chunk.end_s
                while not (self._stop.is_set() or cancelled.is_set()):
                    if pending.acquire(timeout=0.2):
                        self._queue.put(chunk)
                        break
                if self._stop.is_set() or cancelled.is_set():
                    break
        except VoxwatchError as exc:
            error = str(exc)
        except Exception as exc:  # a reader must always report its end, whatever broke
            log.exception("source %s failed", source.name)
            error = f"{source.name}: {type(exc).__name__}: {exc}"
        self._queue.put(StreamEnd(source.name, error))

    def __iter__(self) -> Iterator[list[AudioChunk | StreamEnd]]:
        with self._lock:
            self._started = True
            for t in self._waiting:
                t.start()
            self._waiting = []
        try:
            while (self._live or self._persistent) and not self._stop.is_set():
                try:
                    batch = [self._queue.get(timeout=0.2)]
                except queue.Empty:
                    continue
                while len(batch) < self.MAX_BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                for item in batch:
                    if isinstance(item, AudioChunk):
                        self._pending[item.source].release()
                yield batch
        finally:
            self.stop()

    def processed(self, item: AudioChunk | StreamEnd) -> None:
        """Record that ``item`` has been fully processed: a chunk for lag reporting; a stream's end makes its state
        ended or failed (so a stream shows as ended only once everything it brought has been acted on)."""
        if isinstance(item, AudioChunk):
            self._done[item.source] = item.end_s
            return
        with self._lock:
            self._live -= 1
            self._state[item.source] = ("failed", item.error) if item.error else ("ended", None)

    def stop(self) -> None:
        self._stop.set()

    def live_lag_s(self) -> float:
        """How far processing trails the audio of the furthest-behind running live source (0 when none runs)."""
        with self._lock:
            live = [n for n, s in self._sources.items() if s.live and self._state[n][0] == "running"]
            return max((self._arrived[n] - self._done[n] for n in live), default=0.0)

    def status(self) -> list[StreamStatus]:
        out = []
        with self._lock:
            sources = list(self._sources.items())
        for name, source in sources:
            state, error = self._state[name]
            lag = max(0.0, self._arrived[name] - self._done[name])
            out.append(
                StreamStatus(
                    name,
                    state,
                    round(self._done[name], 2),
                    round(lag, 2),
                    error,
                    getattr(source, "drops", 0),
                    state == "running" and source.live and lag > self.BEHIND_S,
                )
            )
        return out
