"""Prometheus metrics of a running :class:`~voxwatch.service.Service`, read from its live state at each scrape.

:func:`registry` gives each service its own registry (nothing global), so several services in one process (tests)
never share a metric. No label carries a voice's name (voices are biometric personal data) or a stream's source (a
URL may hold credentials): streams are labelled by their id, alerts and detections counted by kind of stream. The
metrics are listed in docs/operations.md."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from . import __version__
from .timings import STAGES
from .watch import Watch

if TYPE_CHECKING:
    from .service import Service

STATES = ("starting", "running", "ended", "failed")
KINDS = ("file", "url")


class ServiceCollector:
    """A custom collector: each scrape reads the service's streams, counts, delivery queues and model clock."""

    def __init__(self, service: Service):
        self.service = service

    def collect(self) -> Iterator[Metric]:
        service = self.service
        info = GaugeMetricFamily(
            "voxwatch_info", "The running voxwatch: version and embedding model.", labels=["version", "model"]
        )
        info.add_metric([__version__, service.engine.backend.name], 1)
        yield info
        health = service.health()
        up = GaugeMetricFamily("voxwatch_health", "1 when a health check passes (watch, store), else 0.", labels=["check"])
        for name, check in health["checks"].items():
            up.add_metric([name], 1 if check["status"] == "ok" else 0)
        yield up
        yield from self._streams()
        yield from self._counts()
        if health["checks"]["store"]["status"] == "ok":  # the delivery queues are in the store: without it, only health
            yield from self._deliveries()
        yield from self._transcripts()
        yield from self._model_time()

    def _streams(self) -> Iterator[Metric]:
        streams = self.service.streams()
        by_state = GaugeMetricFamily("voxwatch_streams", "Watched streams by state.", labels=["state"])
        for state in STATES:
            by_state.add_metric([state], sum(1 for s in streams if s["state"] == state))
        lag = GaugeMetricFamily(
            "voxwatch_stream_lag_seconds", "How far processing trails the audio that has arrived.", labels=["stream", "kind"]
        )
        behind = GaugeMetricFamily(
            "voxwatch_stream_behind", "1 when a live stream is more than 3 s behind real time.", labels=["stream", "kind"]
        )
        for s in streams:
            lag.add_metric([s["id"], s["kind"]], s["lag_s"])
            behind.add_metric([s["id"], s["kind"]], 1 if s["behind"] else 0)
        yield from (by_state, lag, behind)

    def _counts(self) -> Iterator[Metric]:
        counts = self.service.counts()
        for what, text in (("alerts", "Alerts raised"), ("detections", "Detected turns of enrolled voices")):
            family = CounterMetricFamily(
                f"voxwatch_{what}", f"{text}, by kind of stream (file, url; gone: stopped).", labels=["kind"]
            )
            kinds = KINDS + tuple(sorted({k for w, k in counts if w == what} - set(KINDS)))
            for kind in kinds:
                family.add_metric([kind], counts.get((what, kind), 0))
            yield family

    def _deliveries(self) -> Iterator[Metric]:
        pending = GaugeMetricFamily(
            "voxwatch_webhook_deliveries_pending", "Alerts and transcripts waiting to be delivered.", labels=["webhook"]
        )
        failed = GaugeMetricFamily(
            "voxwatch_webhook_failed_attempts",
            "Failed attempts at the head of the webhook's queue (0 while deliveries succeed).",
            labels=["webhook"],
        )
        for webhook in self.service.deliverer.webhooks():
            counts = self.service.deliverer.status(webhook.id)
            pending.add_metric([str(webhook.id)], float(counts.get("pending", 0)))  # type: ignore[arg-type]
            failed.add_metric([str(webhook.id)], float(counts.get("head_attempts", 0)))  # type: ignore[arg-type]
        yield from (pending, failed)

    def _transcripts(self) -> Iterator[Metric]:
        worker = self.service.watch.transcripts
        if worker is None:
            return
        yield GaugeMetricFamily("voxwatch_transcripts_pending", "Alerted turns waiting to be transcribed.", value=worker.pending)
        yield CounterMetricFamily("voxwatch_transcripts_done", "Alerted turns transcribed.", value=worker.done)
        dropped = CounterMetricFamily(
            "voxwatch_transcripts_dropped",
            "Turns dropped because the worker fell behind: alert transcripts, or languages of other detected turns.",
            labels=["queue"],
        )
        dropped.add_metric(["transcript"], worker.dropped)
        dropped.add_metric(["language"], worker.languages_dropped)
        yield dropped

    def _model_time(self) -> Iterator[Metric]:
        """The watch's model clock; on a cluster each worker's, labelled by ``worker``, and each worker's health."""
        watch = self.service.watch
        if isinstance(watch, Watch):
            clocks, labels = {(): watch.clock.snapshot()}, []
        else:
            clocks, labels = {(name,): clock for name, clock in watch.model_times().items()}, ["worker"]
            yield from self._workers()
        busy = CounterMetricFamily(
            "voxwatch_model_busy_seconds",
            "Time in model calls by stage: vad (VAD and framing), embedding (embedding and scoring).",
            labels=[*labels, "stage"],
        )
        audio = CounterMetricFamily("voxwatch_audio_seconds", "Stream audio that went through the watch.", labels=labels)
        windows = HistogramMetricFamily(
            "voxwatch_window_embedding_seconds",
            "Embedding and scoring time per speech window (each batched call's time shared among its windows).",
            labels=labels,
        )
        rtf = GaugeMetricFamily(
            "voxwatch_real_time_factor",
            "Model seconds per second of stream audio over the last minute, by stage (absent without audio).",
            labels=[*labels, "stage"],
        )
        capacity = GaugeMetricFamily(
            "voxwatch_capacity_streams",
            "Real-time streams the watch could hold at the last minute's mix of speech (1 / the slower stage's real-time factor).",
            labels=labels,
        )
        for key, clock in clocks.items():
            for stage in STAGES:
                busy.add_metric([*key, stage], clock.busy_s[stage])
            audio.add_metric(list(key), clock.audio_s)
            windows.add_metric(list(key), [(_le(le), n) for le, n in clock.window_buckets], clock.window_sum_s)
            for stage, factor in clock.real_time_factor.items():
                rtf.add_metric([*key, stage], factor)
            if clock.capacity_streams is not None:
                capacity.add_metric(list(key), clock.capacity_streams)
        yield from (busy, audio, windows, rtf)
        if capacity.samples:
            yield capacity

    def _workers(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("voxwatch_worker_up", "1 while a watch worker answers the coordinator's polls.", labels=["worker"])
        held = GaugeMetricFamily("voxwatch_worker_streams", "Streams a watch worker holds.", labels=["worker"])
        lag = GaugeMetricFamily("voxwatch_worker_lag_seconds", "A watch worker's worst stream lag.", labels=["worker"])
        for w in self.service.workers() or []:
            up.add_metric([w["worker"]], 1 if w["alive"] else 0)
            held.add_metric([w["worker"]], w["streams"])
            lag.add_metric([w["worker"]], w["lag_s"])
        yield from (up, held, lag)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def registry(service: Service) -> CollectorRegistry:
    """A registry of its own holding ``service``'s collector."""
    own = CollectorRegistry(auto_describe=False)
    own.register(ServiceCollector(service))
    return own
