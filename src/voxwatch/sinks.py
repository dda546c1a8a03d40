"""Sinks observe what a watch produces: the console, an append-only JSON-lines file, lists (a watch's summary, and a
test double), and a language filter in front of other sinks; :func:`tell` hands them each record."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .errors import UsageError
from .records import Alert, AlertTranscript, Detection
from .streams import StreamStatus

if TYPE_CHECKING:
    from .watch import Sink

log = logging.getLogger(__name__)


def tell(sinks: Iterable[Sink], event: str, record: Alert | AlertTranscript | Detection | StreamStatus) -> bool:
    """Hand ``record`` to every sink's ``event`` method (``alert``, ``transcript``, ``detection`` or ``stream_end``),
    in order. A failing sink is logged and keeps it from no other sink, nor stops the watch; what it failed to take
    stays stored. Whether every sink took it."""
    took = True
    for sink in sinks:
        try:
            getattr(sink, event)(record)
        except Exception:
            name = record.alert_id if isinstance(record, Alert | AlertTranscript) else record.source
            log.exception("sink %s could not take the %s of %s", type(sink).__name__, event, name)
            took = False
    return took


def clock(seconds: float) -> str:
    """``HH:MM:SS.s`` for a stream position."""
    m, s = divmod(max(0.0, seconds), 60)
    h, m = divmod(int(m), 60)
    return f"{h:02d}:{m:02d}:{s:04.1f}"


class ConsoleSink:
    """Alerts as they happen: one readable line each, or one JSON object per line with ``as_json``."""

    def __init__(self, as_json: bool = False, out: TextIO | None = None, detections: bool = False):
        self.as_json = as_json
        self.out = out or sys.stdout
        self.detections = detections

    def _emit(self, kind: str, payload: dict, text: str) -> None:  # type: ignore[type-arg]
        self.out.write(json.dumps({"type": kind, **payload}) + "\n" if self.as_json else text + "\n")
        self.out.flush()

    def alert(self, alert: Alert) -> None:
        delay = alert.stream_time_s - alert.segment_start_s
        self._emit(
            "alert",
            alert.to_json(),
            f"ALERT {clock(alert.stream_time_s)}  {alert.source}  {alert.speaker}  llr={alert.llr:+.1f} score={alert.score:.3f}"
            f"  (turn began {clock(alert.segment_start_s)}, alerted after {delay:.1f} s)",
        )

    def transcript(self, transcript: AlertTranscript) -> None:
        t = transcript
        if t.status == "done":
            text = f"  said ({t.language} {t.language_probability:.2f}, {clock(t.start_s)}-{clock(t.end_s)}): {t.text or '(no words)'}"
        else:
            text = f"  no transcript ({t.status}): {t.reason}"
        self._emit("transcript", t.to_json(), f"{text}   [{t.speaker}, {t.source}]")

    def detection(self, detection: Detection) -> None:
        if self.detections:
            d = detection
            self._emit(
                "detection", d.to_json(), f"  turn {clock(d.start_s)}-{clock(d.end_s)}  {d.source}  {d.speaker}  llr={d.llr:+.1f}"
            )

    def stream_end(self, status: StreamStatus) -> None:
        text = f"stream {status.source} {status.state} after {status.audio_s:.1f} s" + (
            f": {status.error}" if status.error else ""
        )
        self._emit("stream", status.to_json(), text)


class JsonLinesSink:
    """Appends each alert to a file as one JSON line, flushed and fsynced before the alert counts as delivered; each
    alert's transcript follows later as a line with ``"type": "transcript"``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 -- held open for every alert until close()
        except OSError as exc:
            raise UsageError(f"{self.path}: cannot open for appending alerts ({exc.strerror})") from exc

    def alert(self, alert: Alert) -> None:
        self._append(alert.to_json())

    def transcript(self, transcript: AlertTranscript) -> None:
        self._append({"type": "transcript", **transcript.to_json()})

    def _append(self, record: dict) -> None:  # type: ignore[type-arg]
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def detection(self, detection: Detection) -> None:
        pass

    def stream_end(self, status: StreamStatus) -> None:
        pass

    def close(self) -> None:
        self._file.close()


@dataclass
class WatchSummary:
    """Everything a watch raised, in lists: what :meth:`Engine.watch <voxwatch.engine.Engine.watch>` returns once its
    sources have ended (a service, which runs for months, keeps none), and a test double."""

    alerts: list[Alert] = field(default_factory=list)
    detections: list[Detection] = field(default_factory=list)
    streams: list[StreamStatus] = field(default_factory=list)  # each stream's status when it ended
    transcripts: list[AlertTranscript] = field(default_factory=list)

    def alert(self, alert: Alert) -> None:
        self.alerts.append(alert)

    def transcript(self, transcript: AlertTranscript) -> None:
        self.transcripts.append(transcript)

    def detection(self, detection: Detection) -> None:
        self.detections.append(detection)

    def stream_end(self, status: StreamStatus) -> None:
        self.streams.append(status)


class LanguageFilter:
    """``watch --language``: ``sinks`` see an alert only once its transcript shows the turn was spoken in
    ``language``, and then the alert and its transcript together. A turn whose language could not be told (its
    transcription was dropped or failed) passes, marked by its transcript, so no gap in transcription hides an alert;
    :meth:`flush` passes the alerts still held when the watch ends. Detections and stream ends pass at once. The store,
    and so the API and webhooks, keep every alert."""

    def __init__(self, sinks: list[Any], language: str):
        self.sinks, self.language = sinks, language
        self._held: dict[str, Alert] = {}

    def alert(self, alert: Alert) -> None:
        self._held[alert.alert_id] = alert

    def transcript(self, transcript: AlertTranscript) -> None:
        alert = self._held.pop(transcript.alert_id, None)
        if transcript.status == "done" and transcript.language != self.language:
            return
        for sink in self.sinks:
            if alert is not None:
                sink.alert(alert)
            sink.transcript(transcript)

    def detection(self, detection: Detection) -> None:
        for sink in self.sinks:
            sink.detection(detection)

    def stream_end(self, status: StreamStatus) -> None:
        for sink in self.sinks:
            sink.stream_end(status)

    def flush(self) -> None:
        for alert in self._held.values():
            for sink in self.sinks:
                sink.alert(alert)
        self._held.clear()
