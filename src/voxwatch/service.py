"""``voxwatch serve``: one process that owns the engine, the store and a running :class:`~voxwatch.engine.Watch`,
and exposes them as a REST API (OpenAPI at ``/openapi.json``, docs at ``/docs``), a live feed over Server-Sent
Events, webhook delivery (:mod:`voxwatch.delivery`) and the dashboard at ``/``.

Authentication: every ``/api`` route needs ``Authorization: Bearer <token>`` (tokens from ``voxwatch token create``).
The live feed ``GET /api/events`` is read with ``fetch()`` and the same header (the dashboard parses the
``text/event-stream`` body itself), so no token ever appears in a URL or a server log; the alert audio is fetched
the same way and played from a blob. Requests without a valid token get 401 and an ``unauthorized`` audit row.

Files named in requests (file streams, search paths) must resolve, symlinks and ``..`` included, inside one of
the ``allow_dirs``; anything else is 403. Uploads larger than ``max_upload_mb`` are refused with 413 while they
arrive, and each uploaded file must decode as audio in a known container (422 otherwise; nothing is stored).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from . import __version__
from .audio import AUDIO_SUFFIXES, RATE_HZ, FileSource, Source, UrlSource, check_upload, encode_snippet, find_audio_files
from .auth import Guard
from .delivery import Deliverer, DeliveryOptions
from .engine import Engine, Watch
from .errors import AudioError, EnrollmentError, ModelError, StoreError, UnknownSpeakerError, UsageError, VoxwatchError
from .records import Alert, Detection, EnrollmentInfo
from .streams import Multiplexer, StreamStatus

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
STREAM_SCHEMES = {"http", "https", "rtsp", "rtsps", "rtmp", "rtmps", "rtp", "udp", "srt", "mms", "mmsh"}
# Containers an uploaded recording may come in (never playlists or concat lists that could pull in other files).
JSON_BODY_LIMIT = 1 << 20

STATUS_OF: dict[type[VoxwatchError], int] = {
    UnknownSpeakerError: 404,
    UsageError: 400,
    AudioError: 422,
    EnrollmentError: 422,
    ModelError: 503,
    StoreError: 503,
}


@dataclass(frozen=True)
class ServiceOptions:
    """What ``voxwatch serve`` is allowed to touch, and how much of it."""

    allow_dirs: tuple[Path, ...] = ()
    max_upload_mb: float = 100.0
    snippet_max_s: float = 20.0  # longest stored alert snippet
    snippet_after_s: float = 5.0  # audio kept after the alert moment, when it arrives
    delivery: DeliveryOptions = field(default_factory=DeliveryOptions)

    def __post_init__(self) -> None:
        if not 0 < self.max_upload_mb <= 4096:
            raise UsageError(f"max_upload_mb={self.max_upload_mb} is out of range (0 to 4096 MB)")
        if not 1 <= self.snippet_max_s <= 120 or not 0 <= self.snippet_after_s < self.snippet_max_s:
            raise UsageError("need 1 <= snippet_max_s <= 120 and 0 <= snippet_after_s < snippet_max_s")
        for d in self.allow_dirs:
            if not Path(d).is_dir():
                raise UsageError(f"--allow-dir {d}: no such directory")


class Forbidden(VoxwatchError):
    """A path outside every allowed directory (HTTP 403)."""


class Conflict(VoxwatchError):
    """The request clashes with what is running (HTTP 409)."""


class NotFound(VoxwatchError):
    """No such alert, stream, job or webhook (HTTP 404)."""


class ServiceDown(VoxwatchError):
    """A part of the service has stopped (HTTP 503)."""


STATUS_OF.update({Forbidden: 403, Conflict: 409, NotFound: 404, ServiceDown: 503})


def http_status(exc: VoxwatchError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]  # type: ignore[index]
    return 400


# -- audio snippets ---------------------------------------------------------------------------------------------


class _Tap(Source):
    """Passes a source's blocks through unchanged, keeping the last ``keep_s`` seconds for alert snippets.
    Its clock is the wrapped source's: sample ``n`` of the blocks is at ``n / 16000`` s, as in :meth:`Source.chunks`."""

    def __init__(self, inner: Source, keep_s: float):
        super().__init__(inner.name)
        self.inner = inner
        self.live = inner.live
        self._keep = int(keep_s * RATE_HZ)
        self._blocks: deque[np.ndarray] = deque()
        self._first = 0  # stream sample index of the first kept sample
        self._end = 0  # stream sample index just past the last sample that arrived
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


# -- live feed ----------------------------------------------------------------------------------------------------


class _Hub:
    """Fans events out from any thread to every connected SSE client's asyncio queue."""

    def __init__(self, backlog: int = 1000):
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[str | None]]] = set()
        self._lock = threading.Lock()
        self._backlog = backlog

    def subscribe(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Queue[str | None]]:
        entry = (asyncio.get_running_loop(), asyncio.Queue(self._backlog))
        with self._lock:
            self._subscribers.add(entry)  # type: ignore[arg-type]
        return entry  # type: ignore[return-value]

    def unsubscribe(self, entry: tuple[asyncio.AbstractEventLoop, asyncio.Queue[str | None]]) -> None:
        with self._lock:
            self._subscribers.discard(entry)

    def publish(self, kind: str, data: Any) -> None:
        text = f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
        self._send(text)

    def close(self) -> None:
        self._send(None)

    def _send(self, text: str | None) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            try:
                loop.call_soon_threadsafe(self._offer, queue, text)
            except RuntimeError:  # that client's loop has closed
                pass

    @staticmethod
    def _offer(queue: asyncio.Queue[str | None], text: str | None) -> None:
        try:
            queue.put_nowait(text)
        except asyncio.QueueFull:  # a client this far behind reconnects and reloads
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(None)


class _Sink:
    """What the running watch tells the service."""

    def __init__(self, service: Service):
        self.service = service

    def alert(self, alert: Alert) -> None:
        self.service._on_alert(alert)

    def detection(self, detection: Detection) -> None:
        self.service.hub.publish("detection", {**detection.to_json(), "stream": self.service._stream_id(detection.source)})

    def stream_end(self, status: StreamStatus) -> None:
        self.service.hub.publish("stream_end", {**status.to_json(), "stream": self.service._stream_id(status.source)})


@dataclass
class _Stream:
    id: str
    tap: _Tap
    speakers: list[str] | None
    kind: str  # file or url
    added_at: str
    added_by: str
    speech_s: float = 0.0


def _utc_iso(value: str | None, name: str) -> str | None:
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError as exc:
        raise UsageError(f"{name}={value!r} is not an ISO 8601 time (e.g. 2026-11-29T08:00:00Z)") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def enrollment_quality(enrollments: list[EnrollmentInfo]) -> dict[str, Any]:
    """How well a voice is backed: net speech, worst SNR, speech-weighted consistency, and a grade."""
    speech = sum(e.speech_s for e in enrollments)
    snr = min((e.snr_db for e in enrollments), default=0.0)
    consistency = sum(e.consistency * e.speech_s for e in enrollments) / speech if speech else 0.0
    if speech >= 20 and consistency >= 0.75 and snr >= 15:
        grade = "good"
    elif speech >= 8 and consistency >= 0.6:
        grade = "fair"
    else:
        grade = "poor"
    return {"speech_s": round(speech, 2), "min_snr_db": round(snr, 1), "consistency": round(consistency, 3), "grade": grade}


# -- the service ----------------------------------------------------------------------------------------------------


class Service:
    """The engine with a running watch, the live feed, webhook delivery and search jobs; :func:`create_app`
    puts HTTP in front of it. :meth:`start` and :meth:`close` bracket its life."""

    def __init__(self, engine: Engine, options: ServiceOptions | None = None):
        self.engine = engine
        self.options = options or ServiceOptions()
        self.store = engine.store
        self.guard = Guard(self.store)
        self.hub = _Hub()
        self.deliverer = Deliverer(self.store, self.options.delivery)
        self._roots = tuple(Path(d).resolve() for d in self.options.allow_dirs)
        self._streams: dict[str, _Stream] = {}
        self._lock = threading.Lock()
        self._snippets = ThreadPoolExecutor(1, thread_name_prefix="snippets")
        self._watch: Watch | None = None
        self._thread: threading.Thread | None = None
        self.watch_error: str | None = None
        self.started_at = time.time()

    # lifecycle

    def start(self) -> None:
        _ = self.engine.backend, self.engine.vad  # load the models before the first request needs them
        interrupted = self.store.interrupt_search_jobs()
        if interrupted:
            log.warning("%d search job(s) were interrupted by the previous shutdown", interrupted)
        self._watch = Watch(self.engine, Multiplexer([], persistent=True), [_Sink(self)])
        self._thread = threading.Thread(target=self._run_watch, name="watch", daemon=True)
        self._thread.start()
        self.deliverer.start()

    def _run_watch(self) -> None:
        assert self._watch is not None
        try:
            self._watch.run()
        except Exception as exc:  # keep serving what is stored; the status says the watch is down
            log.exception("the watch stopped")
            self.watch_error = f"{type(exc).__name__}: {exc}"
            self.hub.publish("error", {"detail": f"the watch stopped: {self.watch_error}"})

    @property
    def watch(self) -> Watch:
        if self._watch is None:
            raise UsageError("the service has not been started")
        return self._watch

    def close(self) -> None:
        self.hub.close()
        if self._watch is not None:
            self._watch.stop()
        if self._thread is not None:
            self._thread.join(5)
        self.deliverer.stop()
        self._snippets.shutdown(wait=True)

    def engine_as(self, actor: str) -> Engine:
        """The shared engine (same store, models, settings) acting and audited as ``actor``."""
        engine = copy.copy(self.engine)
        engine.actor = actor
        return engine

    # paths

    def allowed(self, path: str) -> Path:
        """``path`` resolved (symlinks, ``..``) if it lies inside an allowed directory; relative paths are taken
        relative to the first one."""
        if not self._roots:
            raise Forbidden(f"{path}: file paths are disabled; start the service with --allow-dir DIR")
        p = Path(path).expanduser()
        resolved = (p if p.is_absolute() else self._roots[0] / p).resolve()
        if not any(resolved == root or resolved.is_relative_to(root) for root in self._roots):
            raise Forbidden(f"{path}: outside the allowed directories ({', '.join(map(str, self._roots))})")
        return resolved

    def audio_files(self, paths: list[str]) -> list[Path]:
        """Files and folders (searched recursively) → allowed audio files; any file resolving outside is 403."""
        files = find_audio_files([str(self.allowed(p)) for p in paths])
        return [self.allowed(str(f)) for f in files]

    # voices

    def speakers(self) -> list[dict[str, Any]]:
        out = []
        for s in self.store.speakers():
            out.append({**s.to_json(), "quality": enrollment_quality(self.store.enrollments(s.name))})
        return out

    def speaker(self, name: str) -> dict[str, Any]:
        enrollments = self.store.enrollments(name)
        info = next(s for s in self.store.speakers() if s.name == name)
        return {**info.to_json(), "quality": enrollment_quality(enrollments), "recordings": [e.to_json() for e in enrollments]}

    def enroll(self, name: str, files: list[Path], note: str, actor: str, labels: list[str]) -> list[EnrollmentInfo]:
        for f in files:
            check_upload(f)
        infos = self.engine_as(actor).enroll(name, list(files), note, labels)
        self.watch.refresh()
        self.hub.publish("speakers", {"enrolled": name})
        return infos

    def forget(self, name: str, actor: str) -> dict[str, int]:
        counts = self.engine_as(actor).forget(name)
        self.watch.refresh()
        with self._lock:
            for s in self._streams.values():
                if s.speakers is not None and name in s.speakers:
                    s.speakers = [x for x in s.speakers if x != name]
                    self.watch.spotter.restrict(s.tap.name, set(s.speakers))
        self.hub.publish("speakers", {"forgotten": True})
        return counts

    def _require_speakers(self, speakers: list[str] | None) -> None:
        for name in speakers or []:
            self.store.enrollments(name)  # raises UnknownSpeakerError

    # streams

    def add_stream(self, spec: str, speakers: list[str] | None, reconnects: int, realtime: bool, actor: str) -> dict[str, Any]:
        if self.watch_error:
            raise ServiceDown(f"the watch has stopped ({self.watch_error}); restart the service")
        self._require_speakers(speakers)
        if "://" in spec:
            scheme = urlsplit(spec).scheme.lower()
            if scheme not in STREAM_SCHEMES:
                raise Forbidden(f"{spec}: stream scheme {scheme!r} is not allowed; use one of {', '.join(sorted(STREAM_SCHEMES))}")
            source: Source = UrlSource(spec, reconnects=reconnects)
            kind = "url"
        else:
            path = self.allowed(spec)
            if not path.is_file():
                raise AudioError(f"{spec}: no such file")
            source = FileSource(str(path), realtime=realtime)
            kind = "file"
        tap = _Tap(source, keep_s=self.options.snippet_max_s + 20)
        with self._lock:
            running = {s.source for s in self.watch.status() if s.state == "running"}
            if tap.name in running:
                raise Conflict(f"{tap.name}: this source is already being watched")
            for old in [k for k, s in self._streams.items() if s.tap.name == tap.name]:
                del self._streams[old]
            stream = _Stream(uuid.uuid4().hex[:12], tap, None if speakers is None else list(speakers), kind, _now(), actor)
            self._streams[stream.id] = stream
            self.watch.add(tap, None if speakers is None else set(speakers))
        self.store.audit(actor, "stream-add", tap.name, json.dumps({"speakers": speakers, "reconnects": reconnects}))
        self.publish_streams()
        return self._describe(stream, {s.source: s for s in self.watch.status()})

    def streams(self) -> list[dict[str, Any]]:
        status = {s.source: s for s in self.watch.status()}
        with self._lock:
            streams = list(self._streams.values())
        return [self._describe(s, status) for s in streams]

    def _describe(self, stream: _Stream, status: dict[str, StreamStatus]) -> dict[str, Any]:
        st = status.get(stream.tap.name)
        state = self.watch.spotter.streams.get(stream.tap.name)
        if state is not None:
            stream.speech_s = round(state.speech_total_s, 1)
        last = stream.tap.last_audio_at
        running = st is not None and st.state == "running"
        return {
            "id": stream.id,
            "source": stream.tap.name,
            "kind": stream.kind,
            "speakers": stream.speakers,
            "state": st.state if st else "starting",
            "connected": bool(running and last is not None and time.time() - last < 5),
            "audio_s": st.audio_s if st else 0.0,
            "speech_s": stream.speech_s,
            "lag_s": st.lag_s if st else 0.0,
            "behind": bool(st and st.behind),
            "last_audio_at": None if last is None else datetime.fromtimestamp(last, timezone.utc).isoformat(timespec="seconds"),
            "drops": stream.tap.drops,
            "error": st.error if st else None,
            "added_at": stream.added_at,
            "added_by": stream.added_by,
        }

    def stop_stream(self, stream_id: str, actor: str) -> None:
        with self._lock:
            stream = self._streams.pop(stream_id, None)
        if stream is None:
            raise NotFound(f"no stream with id {stream_id!r}")
        if any(s.source == stream.tap.name and s.state == "running" for s in self.watch.status()):
            self.watch.cancel(stream.tap.name)
        self.store.audit(actor, "stream-stop", stream.tap.name, "")
        self.publish_streams()

    def _stream_id(self, source: str) -> str | None:
        with self._lock:
            return next((s.id for s in self._streams.values() if s.tap.name == source), None)

    def publish_streams(self) -> None:
        self.hub.publish("streams", self.streams())

    # alerts

    def _on_alert(self, alert: Alert) -> None:
        """On the watch thread, after the alert is committed: keep its audio, tell the feed, wake delivery."""
        with self._lock:
            tap = next((s.tap for s in self._streams.values() if s.tap.name == alert.source), None)
        if tap is not None:
            end = alert.stream_time_s + self.options.snippet_after_s
            start = max(alert.segment_start_s, end - self.options.snippet_max_s)
            try:
                self._keep_snippet(alert, tap, start, alert.stream_time_s)
            except Exception:
                log.exception("alert %s: could not keep its audio", alert.alert_id)
            tap.when(end, lambda: self._later(self._keep_snippet, alert, tap, start, end))
        self.deliverer.wake()
        records = self.store.alert_records(alert_id=alert.alert_id)
        if records:
            self.hub.publish("alert", self._alert_view(records[0]))

    def _later(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self._snippets.submit(fn, *args)
        except RuntimeError:  # shutting down: the snippet kept at alert time stays
            pass

    def _keep_snippet(self, alert: Alert, tap: _Tap, start_s: float, end_s: float) -> None:
        actual_start, samples = tap.cut(start_s, end_s)
        if len(samples) < RATE_HZ // 10:
            return
        media_type, data = encode_snippet(samples)
        self.store.add_snippet(alert.alert_id, alert.speaker, media_type, round(actual_start, 3), round(actual_start + len(samples) / RATE_HZ, 3), data)

    def _alert_view(self, record: dict[str, Any]) -> dict[str, Any]:
        record["time_to_alert_s"] = round(float(record["stream_time_s"]) - float(record["segment_start_s"]), 2)
        record["stream"] = self._stream_id(str(record["source"]))
        record["audio_url"] = f"/api/alerts/{record['alert_id']}/audio" if record.get("audio") else None
        return record

    def alerts(self, speaker: str | None, stream: str | None, since: str | None, until: str | None, limit: int) -> list[dict[str, Any]]:
        if stream is not None:
            with self._lock:
                known = self._streams.get(stream)
            stream = known.tap.name if known else stream
        records = self.store.alert_records(speaker or None, stream or None, _utc_iso(since, "since"), _utc_iso(until, "until"), limit=limit)
        return [self._alert_view(r) for r in records]

    def alert(self, alert_id: str) -> dict[str, Any]:
        records = self.store.alert_records(alert_id=alert_id)
        if not records:
            raise NotFound(f"no alert with id {alert_id!r}")
        return self._alert_view(records[0])

    def acknowledge(self, alert_id: str, actor: str) -> dict[str, Any]:
        self.alert(alert_id)
        at, by = self.store.acknowledge(alert_id, actor)
        self.hub.publish("ack", {"alert_id": alert_id, "acknowledged_at": at, "acknowledged_by": by})
        return self.alert(alert_id)

    # search

    def start_search(self, paths: list[str], speakers: list[str] | None, actor: str) -> dict[str, Any]:
        self._require_speakers(speakers)
        if not self.store.speakers():
            raise UsageError("no voices are enrolled; enroll one first")
        files = self.audio_files(paths)
        if not files:
            raise AudioError("no audio files found under the given paths")
        job_id = uuid.uuid4().hex[:16]
        self.store.add_search_job(job_id, actor, [str(p) for p in paths], speakers, len(files))
        self.store.audit(actor, "search-submit", ",".join(speakers or ["*"]), f"job {job_id}: {len(files)} files")
        threading.Thread(target=self._search, args=(job_id, files, speakers, actor), name=f"search:{job_id}", daemon=True).start()
        return self.search_job(job_id)

    def _search(self, job_id: str, files: list[Path], speakers: list[str] | None, actor: str) -> None:
        engine = self.engine_as(actor)
        done = 0

        def progress(path: str, error: str | None) -> None:
            nonlocal done
            done += 1
            self.store.search_progress(job_id, done)
            self.hub.publish("search", {"id": job_id, "done": done, "total": len(files)})

        try:
            names = [str(f) for f in files]
            result = engine.search(names, speakers, progress=progress)
            entries, found, errors = result.recordings, result.detections, result.errors
            recordings = [
                {"path": e.path, "duration_s": round(e.duration_s, 3), "speech_s": round(e.speech_s, 2),
                 "segments": [[round(float(s[0]), 3), round(float(s[1]), 3)] for s in e.spans]}
                for e in entries
            ]
            self.store.finish_search_job(job_id, "done", recordings, found, errors)
        except VoxwatchError as exc:
            self.store.finish_search_job(job_id, "failed", [], [], [str(exc)])
        except Exception as exc:
            log.exception("search job %s failed", job_id)
            self.store.finish_search_job(job_id, "failed", [], [], [f"{type(exc).__name__}: {exc}"])
        self.hub.publish("search", {"id": job_id, "done": len(files), "total": len(files), "finished": True})

    def search_job(self, job_id: str) -> dict[str, Any]:
        job = self.store.search_job(job_id)
        if job is None:
            raise NotFound(f"no search job with id {job_id!r}")
        total = int(job["total"]) or 1  # type: ignore[call-overload]
        job["progress"] = round(int(job["done"]) / total, 3)  # type: ignore[call-overload]
        by_file: dict[str, list[dict[str, Any]]] = {}
        for d in job.pop("detections"):  # type: ignore[attr-defined]
            by_file.setdefault(d["source"], []).append(d)
        for rec in job["recordings"]:  # type: ignore[attr-defined]
            rec["detections"] = by_file.get(rec["path"], [])
        return job

    def status(self, actor: str) -> dict[str, Any]:
        return {
            "version": __version__,
            "actor": actor,
            "model": self.engine.backend.name,
            "watch": "failed" if self.watch_error else "running",
            "watch_error": self.watch_error,
            "allow_dirs": [str(r) for r in self._roots],
            "max_upload_mb": self.options.max_upload_mb,
            "uptime_s": round(time.time() - self.started_at, 1),
        }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- HTTP ---------------------------------------------------------------------------------------------------------


def _actor(request: Request) -> str:
    """The bearer check every API route depends on: the acting token's audit name, or 401 (audit-logged)."""
    service: Service = request.app.state.service
    client = request.client.host if request.client else "?"
    who = service.guard.actor(request.headers.get("authorization"), request.method, request.url.path, client)
    if who is None:
        raise HTTPException(401, "a valid bearer token is required (Authorization: Bearer <token>)", headers={"WWW-Authenticate": "Bearer"})
    request.state.actor = who
    return who


Actor = Annotated[str, Depends(_actor)]


class StreamRequest(BaseModel):
    source: str = Field(description="A URL (http, https, rtsp, rtmp, rtp, udp, srt, mms) or a file path inside an allowed directory.")
    speakers: list[str] | None = Field(None, description="Only alert on these voices [default: every enrolled voice].")
    reconnects: int = Field(0, ge=0, le=10000, description="Reconnect attempts with backoff when a network stream drops.")
    realtime: bool = Field(True, description="Play files at real-time pace (as a live stream would arrive) or as fast as they decode.")


class SearchRequest(BaseModel):
    paths: list[str] = Field(min_length=1, max_length=1000, description="Files or folders inside an allowed directory.")
    speakers: list[str] | None = Field(None, description="Only these voices [default: all enrolled].")


class WebhookRequest(BaseModel):
    url: str = Field(description="http:// or https:// URL that receives one POST per alert.")
    secret: str | None = Field(None, description="Signs each body: header X-Voxwatch-Signature: sha256=<hex HMAC-SHA256>.")
    speakers: list[str] | None = Field(None, description="Only alerts for these voices [default: all].")


def create_app(service: Service) -> FastAPI:
    """The FastAPI application over ``service`` (started and closed with the app's lifespan)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(service.start)
        try:
            yield
        finally:
            await run_in_threadpool(service.close)

    app = FastAPI(
        title="voxwatch",
        version=__version__,
        description="Speaker spotting service: enroll voices, watch streams, get alerts, search archives. "
        "Every /api route needs `Authorization: Bearer <token>` (create one with `voxwatch token create NAME`).",
        lifespan=lifespan,
        max_body_size=JSON_BODY_LIMIT,
    )
    app.state.service = service

    @app.exception_handler(VoxwatchError)
    async def voxwatch_error(request: Request, exc: VoxwatchError) -> JSONResponse:
        if isinstance(exc, Forbidden):  # who tried to reach which file is worth keeping
            who = getattr(request.state, "actor", "anonymous")
            await run_in_threadpool(service.store.audit, who, "forbidden", f"{request.method} {request.url.path}", str(exc))
        return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=http_status(exc))

    api = APIRouter(prefix="/api", dependencies=[Depends(_actor)])

    @api.get("/status", summary="Who you are and how the service is doing")
    def get_status(who: Actor) -> dict[str, Any]:
        return service.status(who)

    @api.get("/speakers", summary="Enrolled voices with enrollment quality")
    def list_speakers() -> list[dict[str, Any]]:
        return service.speakers()

    @api.get("/speakers/{name}", summary="One voice with its enrollments")
    def get_speaker(name: str) -> dict[str, Any]:
        return service.speaker(name)

    @api.post("/speakers", status_code=201, summary="Enroll a voice from uploaded recordings (multipart)",
              max_body_size=int(service.options.max_upload_mb * (1 << 20)))
    def enroll(
        who: Actor,
        name: Annotated[str, Form(description="Voice name (new, or an enrolled one to add recordings to).")],
        files: Annotated[list[UploadFile], File(description="One or more recordings of that voice alone.")],
        note: Annotated[str, Form(description="Provenance: source, consent or legal basis, who recorded it and when.")] = "",
    ) -> dict[str, Any]:
        if not files or len(files) > 20:
            raise UsageError("upload 1 to 20 recordings")
        folder = Path(tempfile.mkdtemp(prefix="voxwatch-upload-"))
        try:
            paths, labels = [], []
            for i, upload in enumerate(files):
                original = Path(upload.filename or f"recording-{i}").name
                suffix = Path(original).suffix.lower()
                if suffix not in AUDIO_SUFFIXES:
                    raise AudioError(f"{original}: not an audio file name (expected one of {', '.join(sorted(AUDIO_SUFFIXES))})")
                target = folder / f"{i}-{original}"
                with open(target, "wb") as out:
                    shutil.copyfileobj(upload.file, out)
                paths.append(target)
                labels.append(f"upload:{original}")
            infos = service.enroll(name, paths, note, who, labels)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return {**service.speaker(name.strip()), "added": [i.to_json() for i in infos]}

    @api.delete("/speakers/{name}", summary="Forget a voice: voiceprints, enrollments, detections, alerts and their audio")
    def forget(name: str, who: Actor) -> dict[str, Any]:
        return {"forgotten": name, **service.forget(name, who)}

    @api.get("/streams", summary="Watched streams with live status")
    def list_streams() -> list[dict[str, Any]]:
        return service.streams()

    @api.post("/streams", status_code=201, summary="Watch a URL or an allowed file for some or all voices")
    def add_stream(body: StreamRequest, who: Actor) -> dict[str, Any]:
        return service.add_stream(body.source, body.speakers, body.reconnects, body.realtime, who)

    @api.delete("/streams/{stream_id}", status_code=204, response_class=Response, summary="Stop watching a stream")
    def stop_stream(stream_id: str, who: Actor) -> Response:
        service.stop_stream(stream_id, who)
        return Response(status_code=204)

    @api.get("/alerts", summary="Alerts, newest first, filtered by speaker, stream (id or source) and wall-time range")
    def list_alerts(
        speaker: str | None = None,
        stream: str | None = None,
        since: Annotated[str | None, Query(description="ISO 8601 time, inclusive")] = None,
        until: Annotated[str | None, Query(description="ISO 8601 time, inclusive")] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    ) -> list[dict[str, Any]]:
        return service.alerts(speaker, stream, since, until, limit)

    @api.get("/alerts/{alert_id}", summary="One alert")
    def get_alert(alert_id: str) -> dict[str, Any]:
        return service.alert(alert_id)

    @api.get("/alerts/{alert_id}/audio", summary="The audio of the alerted turn (Ogg/Opus or WAV)",
             responses={200: {"content": {"audio/ogg": {}, "audio/wav": {}}}})
    def alert_audio(alert_id: str) -> Response:
        found = service.store.snippet(alert_id)
        if found is None:
            raise NotFound(f"no audio kept for alert {alert_id!r}")
        media_type, start_s, end_s, data = found
        ext = "ogg" if media_type == "audio/ogg" else "wav"
        headers = {"Content-Disposition": f'inline; filename="alert-{alert_id}.{ext}"', "Cache-Control": "private, no-store",
                   "X-Voxwatch-Start-S": str(start_s), "X-Voxwatch-End-S": str(end_s)}
        return Response(data, media_type=media_type, headers=headers)

    @api.post("/alerts/{alert_id}/ack", summary="Acknowledge an alert (once; repeats return the first acknowledgement)")
    def acknowledge(alert_id: str, who: Actor) -> dict[str, Any]:
        return service.acknowledge(alert_id, who)

    @api.post("/search", status_code=202, summary="Search allowed files/folders for enrolled voices (a background job)")
    def submit_search(body: SearchRequest, who: Actor) -> dict[str, Any]:
        return service.start_search(body.paths, body.speakers, who)

    @api.get("/search", summary="Recent search jobs")
    def list_searches() -> list[dict[str, Any]]:
        return service.store.search_jobs()

    @api.get("/search/{job_id}", summary="A search job: status, progress, and per-recording timelines")
    def get_search(job_id: str) -> dict[str, Any]:
        return service.search_job(job_id)

    @api.get("/webhooks", summary="Webhooks with delivery counts")
    def list_webhooks() -> list[dict[str, Any]]:
        return [{**w.to_json(), "deliveries": service.deliverer.status(w.id)} for w in service.deliverer.webhooks()]

    @api.post("/webhooks", status_code=201, summary="Send every new alert (optionally for some voices) to a URL")
    def add_webhook(body: WebhookRequest, who: Actor) -> dict[str, Any]:
        service._require_speakers(body.speakers)
        return service.deliverer.add(body.url, body.secret, body.speakers, who).to_json()

    @api.delete("/webhooks/{webhook_id}", status_code=204, response_class=Response, summary="Remove a webhook (its undelivered alerts are dropped)")
    def remove_webhook(webhook_id: int, who: Actor) -> Response:
        service.deliverer.remove(webhook_id, who)
        return Response(status_code=204)

    @api.get("/audit", summary="The audit log, newest first")
    def audit(limit: Annotated[int, Query(ge=1, le=10000)] = 200) -> list[dict[str, str]]:
        return service.store.audit_log()[::-1][:limit]

    @api.get("/events", summary="Live feed (Server-Sent Events): alert, ack, streams, stream_end, detection, speakers, search",
             response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}}})
    async def events(request: Request) -> StreamingResponse:
        entry = service.hub.subscribe()
        queue = entry[1]

        async def feed() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                yield _event("streams", await run_in_threadpool(service.streams))
                last_status = time.monotonic()
                while True:
                    try:
                        text = await asyncio.wait_for(queue.get(), timeout=1.0)
                    except TimeoutError:
                        text = ""
                    if text is None or await request.is_disconnected():
                        break
                    if text:
                        yield text
                    if time.monotonic() - last_status >= 1.0:
                        last_status = time.monotonic()
                        yield _event("streams", await run_in_threadpool(service.streams))
            finally:
                service.hub.unsubscribe(entry)

        return StreamingResponse(feed(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    app.include_router(api)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, bool]:
        return {"ok": service.watch_error is None}

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _event(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def serve(service: Service, host: str = "127.0.0.1", port: int = 8686, log_level: str = "info") -> None:
    """Run the service until interrupted (SIGINT/SIGTERM); loopback only unless ``host`` says otherwise."""
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: the API is reachable from other machines; put TLS in front of it", host)
    uvicorn.run(create_app(service), host=host, port=port, log_level=log_level, timeout_graceful_shutdown=2)
