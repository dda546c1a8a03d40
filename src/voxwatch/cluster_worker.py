"""One watch worker of a cluster (:mod:`voxwatch.cluster`): a Ray actor running today's two-thread :class:`Watch`
over its shard of streams, with its own engine. The audio is here, so the worker keeps each alert's snippet and
transcribes its turn, as the service does on one machine. It writes nothing: what it finds (alerts, detections,
snippets, transcripts) waits in a relay until the coordinator polls, and the coordinator is the one writer."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .blas import blas_limited
from .engine import Engine
from .errors import UsageError
from .records import Alert, AlertTranscript, Detection, Quiet
from .settings import Settings
from .snippets import Snippet, SnippetKeeper, Tap, turn_audio
from .sources import FileSource, Source, UrlSource
from .streams import Multiplexer, StreamStatus
from .timings import ModelTime
from .transcripts import Transcription
from .watch import Watch

if TYPE_CHECKING:
    from .service import ServiceOptions

Event = Alert | Detection | StreamStatus | Snippet | AlertTranscript

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamSpec:
    """How a worker opens a stream: a recording (``realtime`` or as fast as it decodes) or a live URL."""

    source: str  # the source's name, which its events carry
    stream_id: str  # the watching of the source that its alerts are keyed by (kept when the stream moves)
    kind: str  # file or url
    realtime: bool = False
    reconnects: int = 0
    url: str = ""  # a live stream's URL with its secrets (``source`` is without them)

    @classmethod
    def of(cls, source: Source, stream_id: str) -> StreamSpec:
        """The spec of a source the service opened (unwrapping its snippet tap)."""
        inner = source.inner if isinstance(source, Tap) else source
        if isinstance(inner, FileSource):
            return cls(inner.name, stream_id, "file", inner.live)
        if isinstance(inner, UrlSource):
            return cls(inner.name, stream_id, "url", True, inner.reconnects, inner.url)
        raise UsageError(f"{source.name}: a cluster watches recordings and URLs, not {type(inner).__name__}")

    def open(self, resume: Quiet | None) -> Source:
        """The source, from ``resume`` on: a recording resumes there, a live stream's clock goes on from there."""
        start_s = resume.at_s if resume else 0.0
        if self.kind == "url":
            return UrlSource(self.url, reconnects=self.reconnects, start_s=start_s)
        return FileSource(self.source, realtime=self.realtime, start_s=start_s)


@dataclass
class Report:
    """What a worker tells the coordinator at each poll: its events since the last poll, in order, and its health."""

    worker: str
    node: str
    events: list[Event]
    resume_points: dict[str, Quiet]  # read before the events were taken: every alert before a point is in events
    streams: list[StreamStatus]
    speech_s: dict[str, float] = field(default_factory=dict)
    model_time: ModelTime | None = None  # its watch's model clock (for /metrics)


class _Relay:
    """The worker's only sink: keeps everything the watch finds until the next poll, and the snippets of its alerts
    (cut from the stream's tap as the service's :class:`SnippetKeeper` does)."""

    def __init__(self, taps: dict[str, Tap], options: ServiceOptions) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []
        self._taps = taps
        self.snippets = SnippetKeeper(self._add, options.snippet_max_s, options.snippet_after_s)

    def _add(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    def alert(self, alert: Alert) -> None:
        self._add(alert)
        tap = self._taps.get(alert.source)
        if tap is not None:
            self.snippets.keep(alert, tap)

    def transcript(self, transcript: AlertTranscript) -> None:
        self._add(transcript)

    def detection(self, detection: Detection) -> None:
        self._add(detection)

    def stream_end(self, status: StreamStatus) -> None:
        self._add(status)
        self._taps.pop(status.source, None)  # its turns are cut; snippets still due hold the tap they need

    def take(self) -> list[Event]:
        with self._lock:
            events, self._events = self._events, []
        return events


class WatchWorker:
    """The actor body (the coordinator wraps it with ``ray.remote``, and ends it with ``ray.kill``). Its methods are
    called one at a time."""

    def __init__(self, settings: Settings, actor: str, worker: str, options: ServiceOptions):
        """``options``: the service's, for how much audio to keep and, unless ``options.transcripts`` is None, how to
        transcribe alerted turns (with the model ``settings`` name)."""
        self.worker = worker
        self.node = os.uname().nodename
        self.engine = Engine(settings, actor=actor)
        self.options = options
        self._taps: dict[str, Tap] = {}
        self._relay = _Relay(self._taps, options)
        transcription = None
        if options.transcripts is not None:
            transcription = Transcription(self.engine.transcriber, self._turn_audio, options.transcripts)
        self.watch = Watch(
            self.engine, Multiplexer([], persistent=True), [self._relay], transcription=transcription, commits=False
        )
        threading.Thread(target=self._run, name="watch", daemon=True).start()

    @blas_limited
    def _run(self) -> None:
        try:
            self.watch.run()
        except Exception:  # the coordinator sees the worker stop reporting streams; the actor stays for its logs
            log.exception("worker %s: the watch stopped", self.worker)

    def add(self, spec: StreamSpec, speakers: list[str] | None, resume: Quiet | None) -> None:
        source = self._taps[spec.source] = Tap(spec.open(resume), self.options.keep_s)
        self.watch.add(source, None if speakers is None else set(speakers), resume, spec.stream_id)

    def _turn_audio(self, source: str, start_s: float, end_s: float) -> tuple[float, np.ndarray]:
        """What is kept of a stretch of a stream this worker holds: its actual start and samples."""
        return turn_audio(self._taps.get(source), start_s, end_s)

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
