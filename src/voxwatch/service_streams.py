"""The streams a service watches: opening them (allowed folders, URL schemes, internal hosts refused), keeping them
in the store so that they resume after a restart, their positions, and how they are described to the API."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import AudioError, Conflict, Forbidden, NotFound, ServiceDown, VoxwatchError
from .outbound import redact_url
from .records import Quiet
from .snippets import Tap
from .sources import FileSource, Source, UrlSource
from .store import Store, WatchedStream
from .streams import StreamStatus
from .watch import Watch, resume_point

if TYPE_CHECKING:
    from .cluster import ClusterWatch
    from .feed import Feed
    from .service import ServiceOptions

log = logging.getLogger(__name__)

STREAM_SCHEMES = {"http", "https", "rtsp", "rtsps", "rtmp", "rtmps", "rtp", "udp", "srt", "mms", "mmsh"}


@dataclass
class _Stream:
    id: str
    tap: Tap
    speakers: list[str] | None
    kind: str  # file or url
    added_at: str
    added_by: str
    speech_s: float = 0.0


class ServiceStreams:
    """The part of :class:`voxwatch.service.Service` that keeps its streams (the store's parts are built the same
    way): what it uses of the service is declared here."""

    store: Store
    options: ServiceOptions
    feed: Feed
    watch_error: str | None
    _streams: dict[str, _Stream]
    _lock: threading.Lock
    _closing: threading.Event

    if TYPE_CHECKING:  # provided by Service

        @property
        def watch(self) -> Watch | ClusterWatch: ...

        def allowed(self, path: str) -> Path: ...

        def vet_url(self, url: str, what: str) -> None: ...

        def require_speakers(self, speakers: list[str] | None) -> None: ...

    # streams

    def add_stream(self, spec: str, speakers: list[str] | None, reconnects: int, realtime: bool, actor: str) -> dict[str, Any]:
        if self.watch_error:
            raise ServiceDown(f"the watch has stopped ({self.watch_error}); restart the service")
        self.require_speakers(speakers)
        stream = self._open(spec, speakers, reconnects, realtime, actor, uuid.uuid4().hex[:12], _now(), None)
        self.store.audit(actor, "stream-add", stream.tap.name, json.dumps({"speakers": speakers, "reconnects": reconnects}))
        self.publish_streams()
        return self._describe(stream, {s.source: s for s in self.watch.status()})

    def _open(
        self,
        spec: str,
        speakers: list[str] | None,
        reconnects: int,
        realtime: bool,
        actor: str,
        stream_id: str,
        added_at: str,
        resume: Quiet | None,
    ) -> _Stream:
        """Start watching ``spec`` (from ``resume`` on) and keep it among the watched streams, to resume after a
        restart."""
        start_s = resume.at_s if resume else 0.0
        if "://" in spec:
            scheme = urlsplit(spec).scheme.lower()
            if scheme not in STREAM_SCHEMES:
                raise Forbidden(
                    f"{redact_url(spec)}: stream scheme {scheme!r} is not allowed; use one of {', '.join(sorted(STREAM_SCHEMES))}"
                )
            self.vet_url(spec, "stream URL")
            source: Source = UrlSource(spec, reconnects=reconnects, start_s=start_s)
            kind = "url"
        else:
            path = self.allowed(spec)
            if not path.is_file():
                raise AudioError(f"{spec}: no such file")
            source = FileSource(str(path), realtime=realtime, start_s=start_s)
            kind = "file"
        tap = Tap(source, keep_s=self.options.keep_s)
        with self._lock:
            running = {s.source for s in self.watch.status() if s.state == "running"}
            if tap.name in running:
                raise Conflict(f"{tap.name}: this source is already being watched")
            for old in [k for k, s in self._streams.items() if s.tap.name == tap.name]:
                del self._streams[old]
            listed = None if speakers is None else list(speakers)
            stream = _Stream(stream_id, tap, listed, kind, added_at, actor)
            self._streams[stream.id] = stream
            self.watch.add(tap, None if speakers is None else set(speakers), resume, stream_id)
        self.store.watch_stream(
            WatchedStream(
                tap.name,
                stream_id,
                kind,
                listed,
                realtime,
                reconnects,
                added_at,
                actor,
                start_s,
                resume.last_heard if resume else None,
                spec if kind == "url" and spec != tap.name else None,
            )
        )
        return stream

    def streams(self) -> list[dict[str, Any]]:
        status = {s.source: s for s in self.watch.status()}
        with self._lock:
            streams = list(self._streams.values())
        return [self._describe(s, status) for s in streams]

    def _describe(self, stream: _Stream, status: dict[str, StreamStatus]) -> dict[str, Any]:
        st = status.get(stream.tap.name)
        speech_s = self.watch.speech_s(stream.tap.name)
        if speech_s is not None:
            stream.speech_s = round(speech_s, 1)
        last = stream.tap.last_audio_at
        running = st is not None and st.state == "running"
        connected = bool(running and last is not None and time.time() - last < 5)
        if st is not None and st.worker is not None:  # on a cluster the audio arrives at its worker
            connected = running and st.audio_s > 0
        return {
            "id": stream.id,
            "source": stream.tap.name,
            "kind": stream.kind,
            "speakers": stream.speakers,
            "state": st.state if st else "starting",
            "connected": connected,
            "audio_s": st.audio_s if st else 0.0,
            "speech_s": stream.speech_s,
            "lag_s": st.lag_s if st else 0.0,
            "behind": bool(st and st.behind),
            "last_audio_at": None if last is None else datetime.fromtimestamp(last, UTC).isoformat(timespec="seconds"),
            "drops": stream.tap.drops,
            "error": st.error if st else None,
            "added_at": stream.added_at,
            "added_by": stream.added_by,
            "worker": st.worker if st else None,
        }

    def stop_stream(self, stream_id: str, actor: str) -> None:
        with self._lock:
            stream = self._streams.pop(stream_id, None)
        if stream is None:
            raise NotFound(f"no stream with id {stream_id!r}")
        if any(s.source == stream.tap.name and s.state == "running" for s in self.watch.status()):
            self.watch.cancel(stream.tap.name)
        self.store.unwatch_stream(stream.tap.name)
        self.store.audit(actor, "stream-stop", stream.tap.name, "")
        self.publish_streams()

    def stream_id(self, source: str) -> str | None:
        """The id of the stream reading ``source`` (None when no stream does)."""
        with self._lock:
            return next((s.id for s in self._streams.values() if s.tap.name == source), None)

    def publish_streams(self) -> None:
        self.feed.publish("streams", self.streams())

    def _resume_streams(self) -> None:
        """Watch again what the previous run was watching: recordings from their resume points, live streams anew."""
        for ws in self.store.watched_streams():
            known = {s.name for s in self.store.speakers()}
            speakers = None if ws.speakers is None else [s for s in ws.speakers if s in known]
            shown = redact_url(ws.source)  # kept by a version that stored a stream's URL with its secrets as its name
            try:
                spec = ws.location if ws.kind == "url" else str(self.allowed(ws.source))
                self._open(spec, speakers, ws.reconnects, ws.realtime, ws.added_by, ws.stream_id, ws.added_at, ws.resume)
            except (VoxwatchError, OSError) as exc:
                log.warning("stream %s could not resume: %s", shown, exc)
                self.store.unwatch_stream(ws.source)
                continue
            if shown != ws.source:
                self.store.unwatch_stream(ws.source)  # watched again under its name without secrets
            log.info("stream %s resumed%s", shown, f" at {ws.position_s:.1f} s" if ws.resume else "")

    def _keep_positions(self) -> None:
        """Every second, store where each watched stream can resume after a restart (a live stream's clock every
        ``WatchedStream.LIVE_CLOCK_STEP_S``: it resumes that much later, so its times never repeat)."""
        kept: dict[str, Quiet] = {}
        while not self._closing.wait(1.0):
            try:
                status = {s.source: s for s in self.watch.status() if s.state == "running"}
                with self._lock:
                    kinds = {s.tap.name: s.kind for s in self._streams.values()}
                changed = []
                for source, kind in kinds.items():
                    point, last = resume_point(kind, self.watch.resume_points.get(source), status.get(source)), kept.get(source)
                    step = WatchedStream.LIVE_CLOCK_STEP_S if kind == "url" else 0.0
                    if point is not None and (
                        last is None or point.at_s - last.at_s > step or point.last_heard != last.last_heard
                    ):
                        changed.append(point)
                        kept[source] = point
                self.store.stream_positions(changed)
            except Exception:  # a database hiccup: the next round tries again
                log.exception("could not store the streams' positions")

    def _tap(self, source: str) -> Tap | None:
        """The tap (recent audio) of the stream reading ``source``; None when no stream does."""
        with self._lock:
            return next((s.tap for s in self._streams.values() if s.tap.name == source), None)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
