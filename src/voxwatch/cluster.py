"""Watching on a Ray cluster: the service becomes a coordinator, its streams run on watch workers (Ray actors, one per
node, :mod:`voxwatch.cluster_worker`). :class:`ClusterWatch` has the face of :class:`~voxwatch.watch.Watch`, so the
service, its API and the dashboard work as before.

The coordinator is the one writer: it polls each worker for what it found and commits it (an alert's id is derived
from its stream, turn and voice, and stored once), then tells the sinks. The audio stays on the workers: each keeps
its alerts' snippets and transcribes their turns, and relays both; every alert still gets exactly one transcript
follow-up (the first relayed wins), and when a worker dies first the coordinator records it ``dropped``, naming the
worker (a replay of the turn on another worker does not make a second follow-up). A stream goes to the worker with
the most room by what the workers report (streams held, lag, falling behind). When a worker or its node dies its streams start
again on the others: a live stream reconnects, a recording resumes from its latest quiet point with everything
before it already committed, so alerts are neither lost nor, thanks to their ids, duplicated. A node that joins gets
a worker of its own and takes new streams.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .cluster_worker import Report, StreamSpec, WatchWorker
from .errors import ServiceDown, UsageError
from .records import Alert, AlertTranscript, Detection, Quiet
from .sinks import tell
from .snippets import Snippet
from .sources import Source
from .streams import StreamStatus
from .timings import ModelTime
from .transcripts import outcome
from .watch import commit_transcript, resume_point

if TYPE_CHECKING:
    from .engine import Engine
    from .service import ServiceOptions
    from .watch import Sink

log = logging.getLogger(__name__)

NAMESPACE = "voxwatch"


def require_ray() -> ModuleType:
    """The ``ray`` module, or a clear error naming the extra that installs it."""
    try:
        import ray
    except ImportError as exc:
        raise UsageError("--ray needs Ray, which is not installed: pip install 'voxwatch[cluster]'") from exc
    return ray


def connect(address: str) -> ModuleType:
    """Join the Ray cluster at ``address`` (``auto``: the one this machine belongs to, or a new one on this machine;
    ``ray://HOST:PORT``: a remote head); a no-op when already connected."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    try:
        ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING)
    except ConnectionError as exc:
        if address != "auto":
            raise ServiceDown(f"--ray {address}: no Ray cluster answers there ({exc})") from exc
        log.warning("no Ray cluster is running on this machine; starting one here (see 'ray start --head')")
        ray.init(namespace=NAMESPACE, include_dashboard=False, logging_level=logging.WARNING)
    return ray


@dataclass
class _Worker:
    name: str
    node_id: str
    handle: Any  # the Ray actor handle
    started: float = field(default_factory=time.monotonic)
    seen: float | None = None  # when it last answered a poll
    report: Report | None = None

    def health(self) -> tuple[int, int, float]:
        """As it last reported: streams falling behind, streams held, the worst lag."""
        running = [s for s in self.report.streams if s.state == "running"] if self.report else []
        return sum(s.behind for s in running), len(running), max((s.lag_s for s in running), default=0.0)


@dataclass
class _Placed:
    spec: StreamSpec
    speakers: list[str] | None
    worker: str | None  # None: waiting for a worker
    status: StreamStatus | None = None
    speech_s: float = 0.0
    cancelled: bool = False  # stopped: it ends where it is, and is not moved if its worker dies first


class ClusterWatch:
    """A watch whose streams run on Ray workers. :meth:`run` coordinates until :meth:`stop`; the other methods may be
    called from other threads."""

    transcripts = None  # the transcription queues are on the workers

    def __init__(
        self,
        engine: Engine,
        sinks: Iterable[Sink],
        address: str,
        options: ServiceOptions,
        worker_cpus: float = 1.0,
        poll_s: float = 0.5,
        dead_after_s: float = 8.0,
    ):
        """``options``: the service's, handed to every worker (how much audio it keeps, how it transcribes)."""
        if worker_cpus <= 0:
            raise UsageError(f"worker_cpus={worker_cpus} must be positive")
        self.engine = engine
        self.sinks = list(sinks)
        self.options = options
        self.ray = connect(address)
        self.worker_cpus = worker_cpus
        self.poll_s = poll_s
        self.dead_after_s = dead_after_s
        self.resume_points: dict[str, Quiet] = {}
        self._session = uuid.uuid4().hex[:6]
        self._count = 0
        self._workers: dict[str, _Worker] = {}
        self._placed: dict[str, _Placed] = {}
        self._ended: dict[str, StreamStatus] = {}
        self._awaiting: dict[str, tuple[str, Alert]] = {}  # committed alerts without a transcript yet → their worker
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._synced = 0.0
        self._actor = self.ray.remote(num_cpus=worker_cpus, max_restarts=0)(WatchWorker)
        self._sync_nodes()

    # the face of Watch

    def add(
        self,
        source: Source,
        speakers: set[str] | None = None,
        resume: Quiet | None = None,
        stream_id: str | None = None,
    ) -> None:
        spec = StreamSpec.of(source, stream_id or uuid.uuid4().hex)
        with self._lock:
            self._ended.pop(spec.source, None)
            self.resume_points.pop(spec.source, None)
            if resume is not None:
                self.resume_points[spec.source] = resume
            self._placed[spec.source] = _Placed(spec, None if speakers is None else sorted(speakers), None)
            self._place(spec.source)

    def cancel(self, name: str) -> None:
        with self._lock:
            placed = self._placed.get(name)
            if placed is None:
                raise UsageError(f"{name}: no such stream")
            if placed.worker is None:  # not running anywhere: it ends here
                del self._placed[name]
                self._ended[name] = StreamStatus(name, "ended", 0.0, 0.0)
                return
            placed.cancelled = True
            self._workers[placed.worker].handle.cancel.remote(name)

    def restrict(self, name: str, speakers: set[str] | None) -> None:
        with self._lock:
            placed = self._placed.get(name)
            if placed is not None:
                placed.speakers = None if speakers is None else sorted(speakers)
                if placed.worker is not None:
                    self._workers[placed.worker].handle.restrict.remote(name, placed.speakers)

    def speech_s(self, name: str) -> float | None:
        with self._lock:
            placed = self._placed.get(name)
            return None if placed is None else placed.speech_s

    def refresh(self) -> None:
        with self._lock:
            for w in self._workers.values():
                w.handle.refresh.remote()

    def stop(self) -> None:
        self._stop.set()

    def status(self) -> list[StreamStatus]:
        with self._lock:
            out = list(self._ended.values())
            for name, p in self._placed.items():
                st = p.status or StreamStatus(name, "running", 0.0, 0.0)
                out.append(dataclasses.replace(st, state="running", worker=p.worker))
            return out

    def model_times(self) -> dict[str, ModelTime]:
        """Each answering worker's model clock, as it last reported."""
        now = time.monotonic()
        with self._lock:
            return {
                w.name: w.report.model_time
                for w in self._workers.values()
                if w.report is not None and w.report.model_time is not None and w.seen and now - w.seen < self.dead_after_s
            }

    def workers(self) -> list[dict[str, Any]]:
        """Each worker's health: alive (answering polls), streams held, worst lag, streams falling behind."""
        now = time.monotonic()
        with self._lock:
            out = []
            for w in self._workers.values():
                behind, held, lag = w.health()
                out.append(
                    {
                        "worker": w.name,
                        "node": w.report.node if w.report else None,
                        "alive": w.seen is not None and now - w.seen < self.dead_after_s,
                        "streams": held,
                        "lag_s": round(lag, 2),
                        "behind": behind,
                        "last_report_s": None if w.seen is None else round(now - w.seen, 1),
                    }
                )
            return out

    def run(self) -> None:
        """Coordinate until :meth:`stop`: poll every worker, commit what it found, replace what died; then stop
        the workers (their streams stay persisted by the service, to resume with the next coordinator), and the
        alerts still waiting for their transcripts get a ``dropped`` one."""
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                if started - self._synced > 2.0:
                    self._sync_nodes()
                self._poll()
                self._stop.wait(max(0.0, self.poll_s - (time.monotonic() - started)))
        finally:
            with self._lock:
                workers, self._workers = list(self._workers.values()), {}
            for w in workers:
                self.ray.kill(w.handle)
            with self._lock:
                waiting, self._awaiting = [a for _, a in self._awaiting.values()], {}
            for alert in waiting:
                reason = "the watch ended before it was transcribed"
                self._follow_up(outcome(alert, alert.segment_start_s, alert.stream_time_s, "dropped", reason))

    # coordination

    def _sync_nodes(self) -> None:
        """Give every live node with room a worker (a node that joined, or one whose worker died)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._synced = time.monotonic()
        nodes = [n for n in self.ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) >= self.worker_cpus]
        with self._lock:
            held = {w.node_id for w in self._workers.values()}
            for node in nodes:
                if node["NodeID"] in held:
                    continue
                self._count += 1
                name = f"voxwatch-{self._session}-w{self._count}"
                handle = self._actor.options(
                    name=name,
                    namespace=NAMESPACE,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
                ).remote(self.engine.settings, self.engine.actor, name, self.options)
                self._workers[name] = _Worker(name, node["NodeID"], handle)
                log.info("worker %s started on node %s", name, node["NodeManagerAddress"])
            for name in [n for n, p in self._placed.items() if p.worker is None]:
                self._place(name)

    def _place(self, name: str) -> None:
        """Start a stream on the worker with the most room (answering workers first); without one it waits."""
        placed = self._placed[name]
        if not self._workers:
            placed.worker = None
            return
        held = {w: 0 for w in self._workers}
        for p in self._placed.values():
            if p.worker in held:
                held[p.worker] += 1

        def load(w: _Worker) -> tuple[bool, int, int, float, float]:
            """Fuller workers sort last: not answering yet, streams falling behind, streams placed, the worst lag."""
            behind, _, lag = w.health()
            return w.seen is None, behind, held[w.name], lag, w.started

        worker = min(self._workers.values(), key=load)
        placed.worker = worker.name
        placed.status = None
        worker.handle.add.remote(placed.spec, placed.speakers, self.resume_points.get(name))
        log.info("stream %s placed on %s", name, worker.name)

    def _poll(self) -> None:
        with self._lock:
            asked = {w.handle.poll.remote(): w for w in self._workers.values()}
        ready, _ = self.ray.wait(list(asked), num_returns=len(asked), timeout=max(self.poll_s * 4, 1.0))
        dead = []
        for ref in ready:
            worker = asked[ref]
            try:
                report: Report = self.ray.get(ref)
            except self.ray.exceptions.RayActorError as exc:
                log.warning("worker %s died: %s", worker.name, exc)
                dead.append(worker)
                continue
            worker.seen, worker.report = time.monotonic(), report
            self._take(worker, report)
        now = time.monotonic()
        for ref, worker in asked.items():
            if ref not in ready and now - (worker.seen or worker.started) > (self.dead_after_s if worker.seen else 120):
                log.warning("worker %s stopped answering; its streams move", worker.name)
                dead.append(worker)
        for worker in dead:
            self._lose(worker)

    def _take(self, worker: _Worker, report: Report) -> None:
        """Commit a worker's events (alerts idempotently), tell the sinks, then note its streams' resume points."""
        store = self.engine.store
        store.add_detections([e for e in report.events if isinstance(e, Detection)])
        alerted = {e.alert_id for e in report.events if isinstance(e, Alert)}
        snippets = [e for e in report.events if isinstance(e, Snippet)]
        for e in report.events:
            if isinstance(e, Alert):
                if not store.add_alert(e):
                    continue  # already committed (processed again after a move), or its voice was forgotten
                if self.options.transcripts is not None:
                    with self._lock:
                        self._awaiting[e.alert_id] = (worker.name, e)
                for snippet in snippets:  # its audio before the sinks hear of it, as on one machine
                    if snippet.alert_id == e.alert_id:
                        snippet.save(store)
                if tell(self.sinks, "alert", e):  # else it stays in the outbox
                    store.mark_delivered(e.alert_id)
            elif isinstance(e, Snippet) and e.alert_id not in alerted:  # a longer one, once its audio arrived
                e.save(store)
            elif isinstance(e, AlertTranscript):
                self._follow_up(e)
            elif isinstance(e, Detection):
                tell(self.sinks, "detection", e)
            elif isinstance(e, StreamStatus):
                with self._lock:
                    placed = self._placed.get(e.source)
                    if placed is None or placed.worker != worker.name:
                        continue
                    del self._placed[e.source]
                    self._ended[e.source] = final = dataclasses.replace(e, worker=worker.name)
                tell(self.sinks, "stream_end", final)
        with self._lock:
            mine = {n for n, p in self._placed.items() if p.worker == worker.name}
            self.resume_points.update({n: q for n, q in report.resume_points.items() if n in mine})
            for st in report.streams:
                if st.source in mine and st.state == "running":
                    self._placed[st.source].status = st
                    self._placed[st.source].speech_s = round(report.speech_s.get(st.source, 0.0), 1)

    def _follow_up(self, transcript: AlertTranscript) -> None:
        """Commit an alert's transcript unless it has one (from a worker that held the stream before), then tell the
        sinks."""
        with self._lock:
            self._awaiting.pop(transcript.alert_id, None)
        if not commit_transcript(self.engine.store, transcript, replace=False):
            return
        tell(self.sinks, "transcript", transcript)

    def _lose(self, worker: _Worker) -> None:
        """A worker died: its streams start again on the others, from their resume points."""
        with self._lock:
            if self._workers.pop(worker.name, None) is None:
                return
            held = [n for n, p in self._placed.items() if p.worker == worker.name]
            for name in [n for n in held if self._placed[n].cancelled]:
                placed = self._placed.pop(name)
                self._ended[name] = dataclasses.replace(
                    placed.status or StreamStatus(name, "ended", 0.0, 0.0), state="ended", worker=worker.name
                )
            moved = [n for n in held if n in self._placed]
            lost = [a for w, a in self._awaiting.values() if w == worker.name]
            for name in moved:
                self.resume_points[name] = resume_point(
                    self._placed[name].spec.kind, self.resume_points.get(name), self._placed[name].status
                )
                self._place(name)
        try:
            self.ray.kill(worker.handle)
        except Exception:  # already gone with its node
            log.debug("worker %s could not be killed", worker.name, exc_info=True)
        if moved:
            log.warning("%d stream(s) of worker %s moved: %s", len(moved), worker.name, ", ".join(moved))
        for alert in lost:
            reason = f"worker {worker.name} was lost before it transcribed the turn"
            self._follow_up(outcome(alert, alert.segment_start_s, alert.stream_time_s, "dropped", reason))
