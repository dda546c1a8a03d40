"""One watch worker of a cluster (:mod:`voxwatch.cluster`): a Ray actor running today's two-thread :class:`Watch`
over its shard of streams, with its own engine. It writes nothing: what it finds waits in a relay until the
coordinator polls, and the coordinator is the one writer."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field

from .audio import FileSource, Source, UrlSource
from .blas import blas_limited
from .engine import Engine
from .errors import UsageError
from .records import Alert, Detection, Quiet
from .settings import Settings
from .snippets import Tap
from .streams import Multiplexer, StreamStatus
from .timings import ModelTime
from .watch import Watch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamSpec:
    """How a worker opens a stream: a recording (``realtime`` or as fast as it decodes) or a live URL."""

    source: str
    stream_id: str  # the watching of the source that its alerts are keyed by (kept when the stream moves)
    kind: str  # file or url
    realtime: bool = False
    reconnects: int = 0

    @classmethod
    def of(cls, source: Source, stream_id: str) -> StreamSpec:
        """The spec of a source the service opened (unwrapping its snippet tap)."""
        inner = source.inner if isinstance(source, Tap) else source
        if isinstance(inner, FileSource):
            return cls(inner.name, stream_id, "file", inner.live)
        if isinstance(inner, UrlSource):
            return cls(inner.name, stream_id, "url", True, inner.reconnects)
        raise UsageError(f"{source.name}: a cluster watches recordings and URLs, not {type(inner).__name__}")

    def open(self, resume: Quiet | None) -> Source:
        """The source, from ``resume`` on: a recording resumes there, a live stream's clock goes on from there."""
        start_s = resume.at_s if resume else 0.0
        if self.kind == "url":
            return UrlSource(self.source, reconnects=self.reconnects, start_s=start_s)
        return FileSource(self.source, realtime=self.realtime, start_s=start_s)


@dataclass
class Report:
    """What a worker tells the coordinator at each poll: its events since the last poll, in order, and its health."""

    worker: str
    node: str
    events: list[Alert | Detection | StreamStatus]
    resume_points: dict[str, Quiet]  # read before the events were taken: every alert before a point is in events
    streams: list[StreamStatus]
    speech_s: dict[str, float] = field(default_factory=dict)
    model_time: ModelTime | None = None  # its watch's model clock (for /metrics)


class _Relay:
    """The worker's only sink: keeps everything the watch finds until the next poll."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Alert | Detection | StreamStatus] = []

    def alert(self, alert: Alert) -> None:
        with self._lock:
            self._events.append(alert)

    def transcript(self, transcript: object) -> None:  # a worker runs no transcription
        pass

    def detection(self, detection: Detection) -> None:
        with self._lock:
            self._events.append(detection)

    def stream_end(self, status: StreamStatus) -> None:
        with self._lock:
            self._events.append(status)

    def take(self) -> list[Alert | Detection | StreamStatus]:
        with self._lock:
            events, self._events = self._events, []
        return events


class WatchWorker:
    """The actor body (the coordinator wraps it with ``ray.remote``, and ends it with ``ray.kill``). Its methods are
    called one at a time."""

    def __init__(self, settings: Settings, actor: str, worker: str):
        self.worker = worker
        self.node = os.uname().nodename
        self.engine = Engine(settings, actor=actor)
        self._relay = _Relay()
        self.watch = Watch(self.engine, Multiplexer([], persistent=True), [self._relay], commits=False)
        threading.Thread(target=self._run, name="watch", daemon=True).start()

    @blas_limited
    def _run(self) -> None:
        try:
            self.watch.run()
        except Exception:  # the coordinator sees the worker stop reporting streams; the actor stays for its logs
            log.exception("worker %s: the watch stopped", self.worker)

    def add(self, spec: StreamSpec, speakers: list[str] | None, resume: Quiet | None) -> None:
        source = spec.open(resume)
        self.watch.add(source, None if speakers is None else set(speakers), resume, spec.stream_id)

    def cancel(self, source: str) -> None:
        self.watch.cancel(source)

    def restrict(self, source: str, speakers: list[str] | None) -> None:
        self.watch.restrict(source, None if speakers is None else set(speakers))

    def refresh(self) -> None:
        """Pick up enrollments and forgotten voices from the store."""
        self.watch.refresh()

    def poll(self) -> Report:
        points = dict(self.watch.resume_points)  # first: every alert before these points is already relayed
        events = self._relay.take()
        status = self.watch.status()
        speech = {s.source: self.watch.speech_s(s.source) or 0.0 for s in status if s.state == "running"}
        return Report(self.worker, self.node, events, points, status, speech, self.watch.clock.snapshot())
