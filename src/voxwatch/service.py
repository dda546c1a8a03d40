"""The service behind ``voxwatch serve``: one engine with a running watch, its streams, alerts, webhooks and searches.

:mod:`voxwatch.api` puts HTTP in front of it; its streams are kept by :mod:`voxwatch.service_streams`, the live
feed is :mod:`voxwatch.feed`, alert audio :mod:`voxwatch.snippets`, search jobs :mod:`voxwatch.searches`, webhook
delivery :mod:`voxwatch.delivery`.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__
from .audio import check_upload, find_audio_files
from .auth import Guard, Principal
from .blas import blas_limited
from .delivery import Deliverer, DeliveryOptions, Webhook, check_url
from .engine import Engine
from .errors import Forbidden, NotFound, UsageError, VoxwatchError
from .feed import Feed
from .outbound import require_public
from .quality import enrollment_quality
from .records import Alert, AlertTranscript, Detection, EnrollmentInfo
from .retention import Retention
from .searches import Searches
from .service_streams import ServiceStreams, _Stream
from .snippets import SnippetKeeper, turn_audio
from .streams import Multiplexer, StreamStatus
from .transcripts import Transcription, TranscriptOptions
from .watch import Watch

if TYPE_CHECKING:
    from .cluster import ClusterWatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceOptions:
    """What ``voxwatch serve`` is allowed to touch, and how much of it."""

    allow_dirs: tuple[Path, ...] = ()
    max_upload_mb: float = 100.0
    snippet_max_s: float = 20.0  # longest stored alert snippet
    snippet_after_s: float = 5.0  # audio kept after the alert moment, when it arrives
    delivery: DeliveryOptions = field(default_factory=DeliveryOptions)
    allow_private_urls: bool = False  # let webhooks and streams reach loopback, link-local and private addresses
    retention_interval_s: float = 3600.0  # how often alerts older than the engine's settings.retain_days are purged
    transcripts: TranscriptOptions | None = field(default_factory=TranscriptOptions)  # None: alerts only
    metrics_public: bool = False  # serve /metrics without a token (Prometheus scrapers); else a viewer token
    ray: str | None = None  # a Ray cluster's address (auto, ray://HOST:PORT): streams run on its workers

    @property
    def keep_s(self) -> float:
        """How much of each stream's latest audio is kept: for its alerts' snippets and their turns' transcripts."""
        return max(self.snippet_max_s + 20, self.transcripts.keep_s if self.transcripts else 0)

    def __post_init__(self) -> None:
        if not 0 < self.max_upload_mb <= 4096:
            raise UsageError(f"max_upload_mb={self.max_upload_mb} is out of range (0 to 4096 MB)")
        if not 1 <= self.snippet_max_s <= 120 or not 0 <= self.snippet_after_s < self.snippet_max_s:
            raise UsageError("need 1 <= snippet_max_s <= 120 and 0 <= snippet_after_s < snippet_max_s")
        for d in self.allow_dirs:
            if not Path(d).is_dir():
                raise UsageError(f"--allow-dir {d}: no such directory")


class _Sink:
    """What the running watch tells the service."""

    def __init__(self, service: Service):
        self.service = service

    def alert(self, alert: Alert) -> None:
        self.service.on_alert(alert)

    def transcript(self, transcript: AlertTranscript) -> None:
        self.service.on_transcript(transcript)

    def detection(self, detection: Detection) -> None:
        self.service.count("detections", detection.source)
        self.service.feed.publish("detection", {**detection.to_json(), "stream": self.service.stream_id(detection.source)})

    def stream_end(self, status: StreamStatus) -> None:
        self.service.store.unwatch_stream(status.source)  # ended or failed: not resumed after a restart
        self.service.feed.publish("stream_end", {**status.to_json(), "stream": self.service.stream_id(status.source)})


def utc_iso(value: str | None, name: str, timespec: str = "milliseconds") -> str | None:
    """An ISO 8601 date or time given by a user (no zone: UTC), in UTC to ``timespec`` as the store keeps that table's
    times (alerts to milliseconds, the audit log to seconds), so that the two compare as strings (None: not given)."""
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError as exc:
        raise UsageError(
            f"{name}={value!r} is not an ISO 8601 time (an ISO date such as 2026-11-29, or 2026-11-29T08:00:00Z)"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec=timespec)


class Service(ServiceStreams):
    """The engine with a running watch, the live feed, webhook delivery and search jobs; :func:`voxwatch.api.create_app`
    puts HTTP in front of it. :meth:`start` and :meth:`close` bracket its life."""

    def __init__(self, engine: Engine, options: ServiceOptions | None = None):
        self.engine = engine
        self.options = options or ServiceOptions()
        self.store = engine.store
        self.guard = Guard(self.store)
        self.feed = Feed()
        self.deliverer = Deliverer(self.store, self.options.delivery, lambda url: self.vet_url(url, "webhook URL"))
        self.searches = Searches(self)
        self._roots = tuple(Path(d).resolve() for d in self.options.allow_dirs)
        self._streams: dict[str, _Stream] = {}
        self._lock = threading.Lock()
        self._snippets = SnippetKeeper(
            lambda snippet: snippet.save(self.store), self.options.snippet_max_s, self.options.snippet_after_s
        )
        self._watch: Watch | ClusterWatch | None = None
        self._thread: threading.Thread | None = None
        self._checkpoints: threading.Thread | None = None
        self._closing = threading.Event()
        days = engine.settings.retain_days
        self._retention = None if days is None else Retention(self.store, days, self.options.retention_interval_s)
        self.watch_error: str | None = None
        self.started_at = time.time()
        self._counts: Counter[tuple[str, str]] = Counter()  # (alerts|detections, stream kind) → how many
        self._store_failing = False  # the last health check found the store down

    # lifecycle

    def start(self) -> None:
        _ = self.engine.backend, self.engine.vad  # load the models before the first request needs them
        interrupted = self.store.interrupt_search_jobs()
        if interrupted:
            log.warning("%d search job(s) were interrupted by the previous shutdown", interrupted)
        if self.options.ray is not None:  # the workers keep the audio: they cut its snippets and transcribe
            from .cluster import ClusterWatch

            self._watch = ClusterWatch(self.engine, [_Sink(self)], self.options.ray, self.options)
        else:
            transcription = None
            if self.options.transcripts is not None:
                transcription = Transcription(self.engine.transcriber, self._turn_audio, self.options.transcripts)
            self._watch = Watch(self.engine, Multiplexer([], persistent=True), [_Sink(self)], transcription=transcription)
        self._thread = threading.Thread(target=self._run_watch, name="watch", daemon=True)
        self._thread.start()
        self.deliverer.start()
        if self._retention is not None:
            self._retention.start()
        self._resume_streams()
        self._checkpoints = threading.Thread(target=self._keep_positions, name="stream-positions", daemon=True)
        self._checkpoints.start()

    @blas_limited
    def _run_watch(self) -> None:
        assert self._watch is not None
        try:
            self._watch.run()
        except Exception as exc:  # keep serving what is stored; the status says the watch is down
            log.exception("the watch stopped")
            self.watch_error = f"{type(exc).__name__}: {exc}"
            self.feed.publish("error", {"detail": f"the watch stopped: {self.watch_error}"})

    @property
    def watch(self) -> Watch | ClusterWatch:
        if self._watch is None:
            raise UsageError("the service has not been started")
        return self._watch

    def close(self) -> None:
        self.feed.close()
        self._closing.set()
        if self._checkpoints is not None:
            self._checkpoints.join(5)
        if self._watch is not None:
            self._watch.stop()
        if self._thread is not None:
            self._thread.join(5)
        self.deliverer.stop()
        if self._retention is not None:
            self._retention.stop()
        self._snippets.close()

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
        self.feed.publish("speakers", {"enrolled": name})
        return infos

    def forget(self, name: str, actor: str) -> dict[str, int]:
        counts = self.engine_as(actor).forget(name)
        self.watch.refresh()
        with self._lock:
            for s in self._streams.values():
                if s.speakers is not None and name in s.speakers:
                    s.speakers = [x for x in s.speakers if x != name]
                    self.watch.restrict(s.tap.name, set(s.speakers))
                    self.store.stream_speakers(s.tap.name, s.speakers)
        self.feed.publish("speakers", {"forgotten": True})
        return counts

    def vet_url(self, url: str, what: str) -> None:
        """Refuse (403) a URL whose host resolves to an internal address, unless ``allow_private_urls``."""
        if not self.options.allow_private_urls:
            require_public(url, what)

    def require_speakers(self, speakers: list[str] | None) -> None:
        for name in speakers or []:
            self.store.enrollments(name)  # raises UnknownSpeakerError

    # alerts

    def count(self, what: str, source: str) -> None:
        """Count an alert or a detection by the kind of stream it came from (never by voice: names are personal data)."""
        with self._lock:
            kind = next((s.kind for s in self._streams.values() if s.tap.name == source), "gone")
            self._counts[what, kind] += 1

    def counts(self) -> dict[tuple[str, str], int]:
        """Alerts and detections since the start, by ``(alerts|detections, kind of stream)``."""
        with self._lock:
            return dict(self._counts)

    def on_alert(self, alert: Alert) -> None:
        """On the watch thread, after the alert is committed: keep its audio, tell the feed, wake delivery."""
        self.count("alerts", alert.source)
        tap = self._tap(alert.source)
        if tap is not None and self.options.ray is None:  # on a cluster its worker kept it, the coordinator stored it
            self._snippets.keep(alert, tap)
        self.deliverer.wake()
        records = self.store.alert_records(alert_id=alert.alert_id)
        if records:
            self.feed.publish("alert", self._alert_view(records[0]))

    def _turn_audio(self, source: str, start_s: float, end_s: float) -> tuple[float, np.ndarray]:
        """What is kept of a stretch of a watched stream: its actual start and samples (none when the stream is gone)."""
        return turn_audio(self._tap(source), start_s, end_s)

    def on_transcript(self, transcript: AlertTranscript) -> None:
        """On the transcription worker, after the transcript is committed: tell the feed, wake delivery."""
        self.deliverer.wake()
        self.feed.publish("transcript", {**transcript.to_json(), "stream": self.stream_id(transcript.source)})

    def _alert_view(self, record: dict[str, Any]) -> dict[str, Any]:
        record["time_to_alert_s"] = round(float(record["stream_time_s"]) - float(record["segment_start_s"]), 2)
        record["stream"] = self.stream_id(str(record["source"]))
        record["audio_url"] = f"/api/alerts/{record['alert_id']}/audio" if record.get("audio") else None
        return record

    def alerts(
        self,
        speaker: str | None,
        stream: str | None,
        since: str | None,
        until: str | None,
        limit: int,
        text: str | None = None,
        language: str | None = None,
    ) -> list[dict[str, Any]]:
        """Alerts newest first; ``text`` finds them by the words of their transcripts, ``language`` by its language."""
        if stream is not None:
            with self._lock:
                known = self._streams.get(stream)
            stream = known.tap.name if known else stream
        records = self.store.alert_records(
            speaker or None,
            stream or None,
            utc_iso(since, "since"),
            utc_iso(until, "until"),
            limit=limit,
            text=text or None,
            language=language or None,
        )
        return [self._alert_view(r) for r in records]

    def alert(self, alert_id: str) -> dict[str, Any]:
        records = self.store.alert_records(alert_id=alert_id)
        if not records:
            raise NotFound(f"no alert with id {alert_id!r}")
        return self._alert_view(records[0])

    def acknowledge(self, alert_id: str, actor: str) -> dict[str, Any]:
        self.alert(alert_id)
        at, by = self.store.acknowledge(alert_id, actor)
        self.feed.publish("ack", {"alert_id": alert_id, "acknowledged_at": at, "acknowledged_by": by})
        return self.alert(alert_id)

    def alert_audio(self, alert_id: str) -> tuple[str, float, float, bytes]:
        """``(media_type, start_s, end_s, audio)`` of the alerted turn."""
        found = self.store.snippet(alert_id)
        if found is None:
            raise NotFound(f"no audio kept for alert {alert_id!r}")
        return found

    # webhooks

    def webhooks(self) -> list[dict[str, Any]]:
        return [self._webhook_view(w) for w in self.deliverer.webhooks()]

    def _webhook_view(self, webhook: Webhook) -> dict[str, Any]:
        return {**webhook.to_json(), "deliveries": self.deliverer.status(webhook.id)}

    def add_webhook(self, url: str, secret: str | None, speakers: list[str] | None, actor: str) -> dict[str, Any]:
        self.require_speakers(speakers)
        self.vet_url(check_url(url), "webhook URL")
        return self._webhook_view(self.deliverer.add(url, secret, speakers, actor))

    def remove_webhook(self, webhook_id: int, actor: str) -> None:
        self.deliverer.remove(webhook_id, actor)

    # access

    def authenticate(self, token: str | None, method: str, path: str, client: str) -> Principal | None:
        """Who a bearer token acts as; None (and an audit row) when it is missing or not valid."""
        return self.guard.principal(token, method, path, client)

    def audit(self, actor: str, action: str, target: str, detail: str = "") -> None:
        self.store.audit(actor, action, target, detail)

    def audit_log(self, limit: int) -> list[dict[str, str]]:
        """The audit log, newest first."""
        return self.store.audit_log()[::-1][:limit]

    # search

    def start_search(self, paths: list[str], speakers: list[str] | None, actor: str) -> dict[str, Any]:
        return self.searches.start(paths, speakers, actor)

    def search_job(self, job_id: str) -> dict[str, Any]:
        return self.searches.job(job_id)

    def search_jobs(self) -> list[dict[str, Any]]:
        return self.store.search_jobs()

    def status(self, principal: Principal) -> dict[str, Any]:
        return {
            "version": __version__,
            "actor": principal.actor,
            "role": principal.role.value,
            "model": self.engine.backend.name,
            "watch": "failed" if self.watch_error else "running",
            "watch_error": self.watch_error,
            "allow_dirs": [str(r) for r in self._roots],
            "max_upload_mb": self.options.max_upload_mb,
            "retain_days": self.engine.settings.retain_days,
            "uptime_s": round(time.time() - self.started_at, 1),
            "transcripts": self._transcript_status(),
            "health": self.health(),
            "workers": self.workers(),
        }

    def health(self) -> dict[str, Any]:
        """``{"status": "ok" | "failing", "checks": {name: {"status": ..., "reason": ...}}}``: the watch thread runs and
        the store answers. Reasons are short (``/healthz`` needs no token); the log and ``/api/status`` say more."""
        checks = {"watch": _check(self._watch_down()), "store": _check(self._store_down())}
        workers = self.workers()
        if workers is not None:  # on a cluster: failing when no worker answers (each one's health: /api/workers)
            alive = sum(w["alive"] for w in workers)
            checks["workers"] = _check(None if alive else f"none of {len(workers)} watch workers answers")
        failing = any(c["status"] != "ok" for c in checks.values())
        return {"status": "failing" if failing else "ok", "checks": checks}

    def _watch_down(self) -> str | None:
        if self._thread is None:
            return "not started"
        if self.watch_error is not None:
            return f"the watch stopped ({self.watch_error.split(':')[0]})"
        return None if self._thread.is_alive() else "the watch thread has ended"

    def _store_down(self) -> str | None:
        try:
            self.store.webhooks()  # a small read: the database answers
        except (VoxwatchError, OSError) as exc:
            if not self._store_failing:  # once, not at every probe of a load balancer
                log.warning("health check: the store does not answer: %s", exc)
            self._store_failing = True
            return f"the database does not answer ({type(exc).__name__})"
        self._store_failing = False
        return None

    def workers(self) -> list[dict[str, Any]] | None:
        """On a cluster, each watch worker's health (alive, streams held, lag); None for a watch in this process."""
        watch = self._watch
        return None if watch is None or isinstance(watch, Watch) else watch.workers()

    def _transcript_status(self) -> dict[str, Any] | None:
        """The transcription worker: turns waiting, transcribed, and dropped because it fell behind."""
        worker = self._watch.transcripts if self._watch is not None else None
        if worker is None:
            return None
        return {
            "model": worker.transcriber.name,
            "pending": worker.pending,
            "done": worker.done,
            "dropped": worker.dropped,
            "languages_dropped": worker.languages_dropped,
        }


def _check(reason: str | None) -> dict[str, Any]:
    return {"status": "ok" if reason is None else "failing", "reason": reason}
