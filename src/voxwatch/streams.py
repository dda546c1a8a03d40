"""Runs many sources at once: one reader thread per source, a bounded queue with backpressure, and a live
status per stream. The consumer takes every chunk available in one go, so it can batch across streams."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from .audio import Source
from .errors import VoxwatchError
from .records import AudioChunk, _JsonRecord

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


class Multiplexer:
    """Reads sources concurrently and yields batches of :class:`AudioChunk` and :class:`StreamEnd` values.

    ``max_pending`` chunks may wait per stream; a reader that gets further ahead blocks (file and stdin
    sources slow down; live network sources then fall behind, which shows as lag in :meth:`status`).
    """

    def __init__(self, sources: list[Source], max_pending: int = 50):
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise VoxwatchError(f"the same source is given twice: {sorted({n for n in names if names.count(n) > 1})}")
        self._queue: queue.Queue[AudioChunk | StreamEnd] = queue.Queue(maxsize=max_pending * max(1, len(sources)))
        self._stop = threading.Event()
        self._sources = {s.name: s for s in sources}
        self._arrived: dict[str, float] = {s.name: 0.0 for s in sources}
        self._done: dict[str, float] = {s.name: 0.0 for s in sources}
        self._state: dict[str, tuple[str, str | None]] = {s.name: ("running", None) for s in sources}
        self._threads = [threading.Thread(target=self._read, args=(s,), name=f"source:{s.name}", daemon=True) for s in sources]
        self._live = len(sources)

    def _read(self, source: Source) -> None:
        error = None
        try:
            for chunk in source.chunks():
                self._arrived[source.name] = chunk.end_s
                while not self._stop.is_set():
                    try:
                        self._queue.put(chunk, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except VoxwatchError as exc:
            error = str(exc)
        except Exception as exc:  # a reader must always report its end, whatever broke
            log.exception("source %s failed", source.name)
            error = f"{source.name}: {type(exc).__name__}: {exc}"
        self._queue.put(StreamEnd(source.name, error))

    def __iter__(self) -> Iterator[list[AudioChunk | StreamEnd]]:
        for t in self._threads:
            t.start()
        try:
            while self._live and not self._stop.is_set():
                try:
                    batch = [self._queue.get(timeout=0.2)]
                except queue.Empty:
                    continue
                while True:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                for item in batch:
                    if isinstance(item, StreamEnd):
                        self._live -= 1
                        self._state[item.source] = ("failed", item.error) if item.error else ("ended", None)
                yield batch
        finally:
            self.stop()

    def processed(self, chunk: AudioChunk) -> None:
        """Record that ``chunk`` has been fully processed (for lag reporting)."""
        self._done[chunk.source] = chunk.end_s

    def stop(self) -> None:
        self._stop.set()

    def status(self) -> list[StreamStatus]:
        out = []
        for name, source in self._sources.items():
            state, error = self._state[name]
            lag = max(0.0, self._arrived[name] - self._done[name])
            out.append(StreamStatus(name, state, round(self._done[name], 2), round(lag, 2), error, getattr(source, "drops", 0)))
        return out
