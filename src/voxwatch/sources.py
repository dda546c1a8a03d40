"""Live sources: a stream's name and its audio as 16 kHz mono blocks, re-cut into time-stamped
:class:`AudioChunk` steps whose times come from the samples (the stream's own clock), never from the wall clock. A
recording (at its own pace or in real time), a network stream (reconnecting), raw PCM on stdin or a sound card;
:mod:`voxwatch.audio` decodes them all."""

from __future__ import annotations

import logging
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from .audio import BLOCK_S, RATE_HZ, PcmFormat, check_file, decode, decode_pcm
from .errors import AudioError, UsageError
from .outbound import redact_url
from .records import AudioChunk

log = logging.getLogger(__name__)


class Source(ABC):
    """A stream of audio: a name and 16 kHz mono float32 blocks. Subclasses only produce blocks.

    ``live`` sources bring audio at their own pace, which processing has to keep up with; the others wait for it."""

    live = True
    start_s = 0.0  # the stream time of the first block (a recording resumed part-way)

    def __init__(self, name: str):
        self.name = name

    @abstractmethod
    def blocks(self) -> Iterator[np.ndarray]:
        """Yield successive blocks; return at the end of the stream; raise :class:`AudioError` on failure."""

    def chunks(self) -> Iterator[AudioChunk]:
        """The blocks, re-cut to ``BLOCK_S`` and time-stamped by sample count."""
        size = int(BLOCK_S * RATE_HZ)
        pending = np.zeros(0, np.float32)
        position = round(self.start_s * RATE_HZ)
        for block in self.blocks():
            pending = np.concatenate([pending, block]) if len(pending) else block
            while len(pending) >= size:
                yield AudioChunk(self.name, position / RATE_HZ, pending[:size])
                position += size
                pending = pending[size:]
        if len(pending):
            yield AudioChunk(self.name, position / RATE_HZ, pending)


class FileSource(Source):
    """A recording played as fast as it decodes, or at real-time pace (as a live stream would arrive); from
    ``start_s`` on when it resumes part-way (its clock still counts from the recording's start)."""

    def __init__(self, path: str, *, realtime: bool = False, loop: bool = False, start_s: float = 0.0):
        super().__init__(path)
        check_file(path)
        if start_s < 0 or (loop and start_s):
            raise UsageError(f"{path}: start_s={start_s} must be >= 0 (and 0 for a looped recording)")
        self.live = realtime  # played at real-time pace, as a live stream would arrive
        self.loop = loop
        self.start_s = start_s

    def blocks(self) -> Iterator[np.ndarray]:
        started = time.monotonic()
        played = 0
        while True:
            empty = True
            decoded = _skip(decode(self.name), round(self.start_s * RATE_HZ))
            for block in _gather(decoded, int(BLOCK_S * RATE_HZ)) if self.live else decoded:
                empty = False
                played += len(block)
                if self.live:  # a block is released when its last sample would have arrived live
                    time.sleep(max(0.0, played / RATE_HZ - (time.monotonic() - started)))
                yield block
            if empty and not self.start_s:  # (resumed at its very end: nothing was left to play)
                raise AudioError(f"{self.name}: contains no audio samples")
            if not self.loop:
                return


def _skip(blocks: Iterator[np.ndarray], samples: int) -> Iterator[np.ndarray]:
    """The blocks without their first ``samples`` samples: exact to the sample, where ``decode(start_s=)`` seeks to
    within milliseconds (a resumed stream's turns, and so its alert ids, must come out at the times they had)."""
    for block in blocks:
        if samples >= len(block):
            samples -= len(block)
            continue
        yield block[samples:]
        samples = 0


def _gather(blocks: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Join small decoded blocks into blocks of at least ``size`` samples (the last may be shorter)."""
    pending: list[np.ndarray] = []
    have = 0
    for block in blocks:
        pending.append(block)
        have += len(block)
        if have >= size:
            yield np.concatenate(pending)
            pending, have = [], 0
    if pending:
        yield np.concatenate(pending)


class UrlSource(Source):
    """A network stream PyAV can open (http/icecast/hls/rtsp/rtp/udp), reconnecting with backoff when it drops.

    Its ``name``, which alerts, logs and the API carry, is the URL without its secrets (:func:`redact_url`); ``url``,
    with them, is only opened.

    ``reconnects`` bounds *consecutive* failed attempts: once audio flows again the count starts afresh, so a
    live stream that drops now and then is followed indefinitely, and a dead one is given up after that many.
    ``start_s``: the stream's clock goes on from there (watched again after a restart, its times never repeat)."""

    def __init__(
        self, url: str, *, reconnects: int = 0, backoff_s: float = 1.0, max_backoff_s: float = 30.0, start_s: float = 0.0
    ):
        super().__init__(redact_url(url))
        if start_s < 0:
            raise UsageError(f"{self.name}: start_s={start_s} must be >= 0")
        self.url = url
        self.start_s = start_s
        self.reconnects = reconnects
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.drops = 0

    def blocks(self) -> Iterator[np.ndarray]:
        attempt = 0
        while True:
            try:
                for block in decode(self.url):
                    attempt = 0
                    yield block
                error: AudioError | None = None
            except AudioError as exc:
                error = exc
            if attempt >= self.reconnects:
                if error is not None:
                    raise error
                return
            self.drops += 1
            delay = min(self.max_backoff_s, self.backoff_s * 2**attempt)
            attempt += 1
            log.warning(
                "%s dropped (%s); reconnecting in %.1f s (%d/%d)", self.name, error or "ended", delay, attempt, self.reconnects
            )
            time.sleep(delay)


class PcmSource(Source):
    """Raw interleaved PCM from a binary pipe (stdin by default)."""

    def __init__(self, fmt: PcmFormat, stream: BinaryIO | None = None, name: str = "stdin"):
        super().__init__(name)
        self.fmt = fmt
        self.stream = stream if stream is not None else sys.stdin.buffer

    def blocks(self) -> Iterator[np.ndarray]:
        yield from decode_pcm(self.stream, self.fmt, self.name)


def open_source(spec: str, *, realtime: bool = False, pcm: PcmFormat | None = None, reconnects: int = 0) -> Source:
    """Turn a command-line source into a :class:`Source`: ``-`` (raw PCM on stdin), ``alsa:NAME`` or
    ``pulse:NAME`` (a sound card), ``scheme://...`` (a network stream) or a file path."""
    if spec == "-":
        return PcmSource(pcm or PcmFormat())
    if "://" in spec or spec.split(":", 1)[0] in ("alsa", "pulse"):
        return UrlSource(spec, reconnects=reconnects)
    return FileSource(spec, realtime=realtime)
