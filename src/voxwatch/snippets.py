"""Alert audio: a ring buffer of each watched stream's recent audio, and the snippets of alerted turns cut from it."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .audio import RATE_HZ, encode_snippet
from .records import Alert
from .sources import Source
from .store import Store

log = logging.getLogger(__name__)


class Tap(Source):
    """Passes a source's blocks through unchanged, keeping the last ``keep_s`` seconds for alert snippets.
    Its clock is the wrapped source's: sample ``n`` of the blocks is at ``n / RATE_HZ`` s, as in :meth:`Source.chunks`."""

    def __init__(self, inner: Source, keep_s: float):
        super().__init__(inner.name)
        self.inner = inner
        self.live = inner.live
        self._keep = int(keep_s * RATE_HZ)
        self._blocks: deque[np.ndarray] = deque()
        self.start_s = inner.start_s
        self._first = round(inner.start_s * RATE_HZ)  # stream sample index of the first kept sample
        self._end = self._first  # stream sample index just past the last sample that arrived
        self._waiting: list[tuple[int, Callable[[], None]]] = []
        self._lock = threading.Lock()
        self.ended = False
        self.last_audio_at: float | None = None

    @property
    def drops(self) -> int:
        return int(getattr(self.inner, "drops", 0))

    def blocks(self) -> Iterator[np.ndarray]:
        try:
            for block in self.inner.blocks():
                with self._lock:
                    self._blocks.append(block)
                    self._end += len(block)
                    self.last_audio_at = time.time()
                    while self._blocks and self._end - self._first - len(self._blocks[0]) >= self._keep:
                        self._first += len(self._blocks.popleft())
                    due = [cb for end, cb in self._waiting if end <= self._end]
                    self._waiting = [(end, cb) for end, cb in self._waiting if end > self._end]
                for callback in due:
                    callback()
                yield block
        finally:
            with self._lock:
                self.ended = True
                due, self._waiting = [cb for _, cb in self._waiting], []
            for callback in due:
                callback()

    def cut(self, start_s: float, end_s: float) -> tuple[float, np.ndarray]:
        """The kept audio between two stream times (clipped to what is kept): its actual start and samples."""
        with self._lock:
            blocks, first, end = list(self._blocks), self._first, self._end
        lo = max(first, int(start_s * RATE_HZ))
        hi = min(end, int(end_s * RATE_HZ))
        if hi <= lo or not blocks:
            return lo / RATE_HZ, np.zeros(0, np.float32)
        audio = np.concatenate(blocks)
        return lo / RATE_HZ, audio[lo - first : hi - first]

    def when(self, end_s: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the reader thread) once audio up to ``end_s`` has arrived or the stream ended."""
        with self._lock:
            if not self.ended and int(end_s * RATE_HZ) > self._end:
                self._waiting.append((int(end_s * RATE_HZ), callback))
                return
        callback()


@dataclass(frozen=True)
class Snippet:
    """The audio of an alert's turn, encoded as the store keeps it (a later, longer one replaces an earlier one)."""

    alert_id: str
    speaker: str
    media_type: str
    start_s: float
    end_s: float
    audio: bytes

    def save(self, store: Store) -> bool:
        """Store it; False when its alert is not (or no longer) stored."""
        return store.add_snippet(self.alert_id, self.speaker, self.media_type, self.start_s, self.end_s, self.audio)


def turn_audio(tap: Tap | None, start_s: float, end_s: float) -> tuple[float, np.ndarray]:
    """What ``tap`` kept of a stretch of its stream (see :meth:`Tap.cut`); nothing when there is no tap (the stream
    is gone): how a transcription worker gets an alerted turn's audio."""
    return (start_s, np.zeros(0, np.float32)) if tap is None else tap.cut(start_s, end_s)


class SnippetKeeper:
    """Keeps the audio of each alerted turn: at once what has arrived, and a longer snippet (up to ``after_s``
    past the alert, at most ``max_s`` in all) once that audio has arrived, encoded off the reader thread; each goes
    to ``save`` (the store, or a cluster worker's relay to the coordinator)."""

    def __init__(self, save: Callable[[Snippet], object], max_s: float, after_s: float):
        self.save = save
        self.max_s = max_s
        self.after_s = after_s
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="snippets")

    def keep(self, alert: Alert, tap: Tap) -> None:
        """Called on the watch thread once the alert is committed (or, on a cluster worker, relayed)."""
        end = alert.stream_time_s + self.after_s
        start = max(alert.segment_start_s, end - self.max_s)
        try:
            self._keep(alert, tap, start, alert.stream_time_s)
        except Exception:
            log.exception("alert %s: could not keep its audio", alert.alert_id)
        tap.when(end, lambda: self._later(self._keep, alert, tap, start, end))

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _later(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self._pool.submit(fn, *args)
        except RuntimeError:  # shutting down: the snippet kept at alert time stays
            pass

    def _keep(self, alert: Alert, tap: Tap, start_s: float, end_s: float) -> None:
        actual_start, samples = tap.cut(start_s, end_s)
        if len(samples) < RATE_HZ // 10:
            return
        media_type, data = encode_snippet(samples)
        end = round(actual_start + len(samples) / RATE_HZ, 3)
        self.save(Snippet(alert.alert_id, alert.speaker, media_type, round(actual_start, 3), end, data))
