"""The shapes of the HTTP API's requests and answers, for its OpenAPI document and for checking each of them: the
answers made from the records the library already has (:mod:`voxwatch.records`), plus what the service adds to
them."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, get_type_hints

from pydantic import BaseModel, Field, create_model

from .delivery import Webhook
from .records import Alert, AlertTranscript, Detection, EnrollmentInfo, SpeakerInfo


def model_of(record: type, **extra: Any) -> type[BaseModel]:
    """A pydantic model with the fields of the dataclass ``record`` (same names, types and defaults), its
    docstring, and ``extra`` fields given as ``(type, default)``."""
    hints = get_type_hints(record)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        default = f.default if f.default is not dataclasses.MISSING else ...
        fields[f.name] = (hints[f.name], default)
    return create_model(  # type: ignore[call-overload,no-any-return]
        record.__name__ + ("View" if extra else ""),
        __doc__=record.__doc__,
        **fields,
        **extra,
    )


AlertModel = model_of(Alert)
TranscriptModel = model_of(AlertTranscript)
DetectionModel = model_of(Detection)
EnrollmentModel = model_of(EnrollmentInfo)


class Quality(BaseModel):
    """How well a voice's enrollments back it."""

    speech_s: float
    min_snr_db: float
    consistency: float
    grade: Literal["good", "fair", "poor"]


class AudioSpan(BaseModel):
    """The span of a stream's clock that an alert's stored audio covers."""

    start_s: float
    end_s: float


SpeakerView = model_of(SpeakerInfo, quality=(Quality, ...))
SpeakerDetail = create_model("SpeakerDetail", __base__=SpeakerView, recordings=(list[EnrollmentModel], ...))  # type: ignore[valid-type]
Enrolled = create_model("Enrolled", __base__=SpeakerDetail, added=(list[EnrollmentModel], ...))  # type: ignore[valid-type]
AlertView = model_of(
    Alert,
    acknowledged_at=(str | None, None),
    acknowledged_by=(str | None, None),
    audio=(AudioSpan | None, Field(None, description="The stored audio of the turn, when it was kept.")),
    time_to_alert_s=(float, Field(..., description="stream_time_s - segment_start_s")),
    stream=(str | None, Field(None, description="The id of the stream that raised it, while it is watched.")),
    audio_url=(str | None, None),
    transcript=(TranscriptModel | None, Field(None, description="What was said in the turn, once it has been transcribed.")),
)
WebhookView = model_of(
    Webhook,
    deliveries=(dict[str, Any], Field(..., description="Deliveries by status; the pending head's attempts and last error.")),
)


class Forgotten(BaseModel):
    """What forgetting a voice deleted."""

    forgotten: str
    enrollments: int
    detections: int
    snippets: int
    search_hits: int
    alerts: int


class StreamView(BaseModel):
    """A watched stream and its live status."""

    id: str
    source: str
    kind: Literal["file", "url"]
    speakers: list[str] | None
    state: str = Field(description="starting, running, ended or failed")
    connected: bool
    audio_s: float
    speech_s: float
    lag_s: float
    behind: bool
    last_audio_at: str | None
    drops: int
    error: str | None
    added_at: str
    added_by: str
    worker: str | None = Field(None, description="The cluster worker holding it (serve --ray); null in one process.")


class WorkerHealth(BaseModel):
    """A watch worker of a cluster, as it last reported."""

    worker: str
    node: str | None
    alive: bool = Field(description="It answered the coordinator's polls lately.")
    streams: int = Field(description="Streams it holds.")
    lag_s: float = Field(description="How far its worst stream's processing trails the audio that arrived.")
    behind: int = Field(description="Its live streams falling behind real time.")
    last_report_s: float | None = Field(description="Seconds since it last reported (null: not yet).")


class SearchJobSummary(BaseModel):
    """A search job in the list of recent jobs."""

    id: str
    actor: str
    status: Literal["running", "done", "failed"]
    done: int
    total: int
    created_at: str
    finished_at: str | None


class SearchedRecording(BaseModel):
    """One searched recording: its speech segments and the voices found in it."""

    path: str
    duration_s: float
    speech_s: float
    segments: list[tuple[float, float]]
    detections: list[DetectionModel]  # type: ignore[valid-type]


class SearchJob(SearchJobSummary):
    """A search job with its progress and, once done, its per-recording timelines."""

    paths: list[str]
    speakers: list[str] | None
    progress: float
    recordings: list[SearchedRecording]
    errors: list[str]


class AuditEntry(BaseModel):
    at: str
    actor: str
    action: str
    target: str
    detail: str


class TokenInfo(BaseModel):
    """An API token's name, role and expiry (the token itself is never stored)."""

    name: str
    role: Literal["viewer", "operator", "admin"]
    created_at: str
    created_by: str
    expires_at: str | None


class TranscriptWorker(BaseModel):
    """The transcription worker: its model, turns waiting, transcribed, and dropped because it fell behind."""

    model: str
    pending: int
    done: int
    dropped: int
    languages_dropped: int


class Check(BaseModel):
    """One health check: ``ok``, or ``failing`` with a short reason."""

    status: Literal["ok", "failing"]
    reason: str | None = None


class Health(BaseModel):
    """``GET /healthz`` (503 when failing) and the ``health`` of ``GET /api/status``: each check by name (``watch``:
    the watch thread runs; ``store``: the database answers; on a cluster ``workers``: a watch worker answers, each
    one's health in ``GET /api/workers``); ``failing`` when any check fails."""

    status: Literal["ok", "failing"]
    checks: dict[str, Check]


class Status(BaseModel):
    """Who the caller is and how the service is doing."""

    version: str
    actor: str
    role: Literal["viewer", "operator", "admin"]
    model: str
    watch: Literal["running", "failed"]
    watch_error: str | None
    allow_dirs: list[str]
    max_upload_mb: float
    retain_days: float | None
    uptime_s: float
    transcripts: TranscriptWorker | None = Field(None, description="The transcription worker, when the service transcribes.")
    health: Health = Field(description="Readiness: the checks of /healthz.")
    workers: list[WorkerHealth] | None = Field(None, description="The watch workers, on a cluster (serve --ray).")


class WebhookPayload(BaseModel):
    """The body POSTed to a webhook for each alert."""

    event: Literal["alert"]
    alert: AlertModel  # type: ignore[valid-type]


class TranscriptPayload(BaseModel):
    """The body POSTed to a webhook for each alert's transcript, after the alert."""

    event: Literal["transcript"]
    transcript: TranscriptModel  # type: ignore[valid-type]


class StreamRequest(BaseModel):
    source: str = Field(
        description="A URL (http, https, rtsp, rtmp, rtp, udp, srt, mms) or a file path inside an allowed directory."
    )
    speakers: list[str] | None = Field(None, description="Only alert on these voices [default: every enrolled voice].")
    reconnects: int = Field(0, ge=0, le=10000, description="Reconnect attempts with backoff when a network stream drops.")
    realtime: bool = Field(
        True, description="Play files at real-time pace (as a live stream would arrive) or as fast as they decode."
    )


class SearchRequest(BaseModel):
    paths: list[str] = Field(min_length=1, max_length=1000, description="Files or folders inside an allowed directory.")
    speakers: list[str] | None = Field(None, description="Only these voices [default: all enrolled].")


class WebhookRequest(BaseModel):
    url: str = Field(description="http:// or https:// URL that receives one POST per alert.")
    secret: str | None = Field(None, description="Signs each body: header X-Voxwatch-Signature: sha256=<hex HMAC-SHA256>.")
    speakers: list[str] | None = Field(None, description="Only alerts for these voices [default: all].")
