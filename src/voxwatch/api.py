"""The HTTP API of ``voxwatch serve``: thin FastAPI routes over a :class:`~voxwatch.service.Service`.

The service owns the engine, the store and a running :class:`~voxwatch.watch.Watch`; this module exposes them as a
REST API (OpenAPI at ``/openapi.json``, docs at ``/docs``), a live feed over Server-Sent Events (:mod:`voxwatch.feed`)
and the dashboard at ``/``; webhooks are delivered by :mod:`voxwatch.delivery`.

Authentication: every ``/api`` route needs ``Authorization: Bearer <token>`` (tokens from
``voxwatch token create NAME --role ROLE``). The live feed ``GET /api/events`` is read with ``fetch()`` and the same header (the dashboard parses the
``text/event-stream`` body itself), so no token ever appears in a URL or a server log; the alert audio is fetched
the same way and played from a blob. Requests without a valid (or with an expired) token get 401 and an
``unauthorized`` audit row. Each token has a role (:class:`~voxwatch.auth.Role`): ``viewer`` reads, ``operator``
also runs streams, acknowledgements and searches, ``admin`` also enrolls, forgets, and manages webhooks and tokens;
a request beyond the token's role gets 403 and a ``forbidden`` audit row.

Files named in requests (file streams, search paths) must resolve, symlinks and ``..`` included, inside one of
the ``allow_dirs``; anything else is 403. Uploads larger than ``max_upload_mb`` are refused with 413 while they
arrive, and each uploaded file must decode as audio in a known container (422 otherwise; nothing is stored).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool

from . import __version__
from .api_auth import ADMIN, VIEWER, Admin, Operator, authenticated
from .api_models import (
    AlertView,
    AuditEntry,
    Enrolled,
    Forgotten,
    SearchJob,
    SearchJobSummary,
    SearchRequest,
    SpeakerDetail,
    SpeakerView,
    Status,
    StreamRequest,
    StreamView,
    TokenInfo,
    TranscriptPayload,
    WebhookPayload,
    WebhookRequest,
    WebhookView,
    WorkerHealth,
)
from .audio import AUDIO_SUFFIXES
from .auth import Principal
from .errors import AudioError, Forbidden, UsageError, VoxwatchError
from .feed import event_text
from .service import Service
from .service_metrics import registry

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
JSON_BODY_LIMIT = 1 << 20


EVENTS_DESCRIPTION = """A `text/event-stream` body, read with `fetch()` and the bearer header. Each event has a kind
(`event:`) and JSON data (`data:`):

- `alert`: a new alert (as in `GET /api/alerts`); `ack`: `{alert_id, acknowledged_at, acknowledged_by}`
- `transcript`: an alert's follow-up once its turn has ended (as `transcript` in `GET /api/alerts/{id}`)
- `streams`: every watched stream (as in `GET /api/streams`), when they change and every second
- `stream_end`: a stream's final status; `detection`: a detected turn `{source, speaker, start_s, end_s, score, llr,
  stream}`
- `speakers`: a voice was enrolled or forgotten (reload); `search`: a search job's progress `{id, done, total}`
- `error`: the watch stopped; `resync`: events since `Last-Event-ID` cannot be replayed (reload everything)

Every published event carries an `id:` (the `streams` snapshots sent to one client every second do not). A client that reconnects with the `Last-Event-ID` header (as
`EventSource` does) first gets the events it missed, from the last 1000."""

EVENTS_EXAMPLE = 'id: 5f3a9c1e-42\nevent: alert\ndata: {"alert_id":"9c0f...","speaker":"Jane Doe","stream_time_s":83.4,...}\n\n'


def create_app(service: Service) -> FastAPI:
    """The FastAPI application over ``service`` (started and closed with the app's lifespan)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(service.start)
        try:
            yield
        finally:
            await run_in_threadpool(service.close)

    app = FastAPIOffline(  # /docs and /redoc with their assets served from the package: they work offline
        title="voxwatch",
        version=__version__,
        description="Speaker spotting service: enroll voices, watch streams, get alerts, search archives. "
        "Every /api route needs `Authorization: Bearer <token>` (create one with `voxwatch token create NAME --role ROLE`): "
        "**viewer** reads alerts, streams, voices and search results; **operator** also adds and stops streams, "
        "acknowledges alerts and starts searches; **admin** also enrolls and forgets voices, and manages webhooks and "
        "tokens. A missing, unknown or expired token gets 401; a request beyond the token's role gets 403. Both are "
        "written to the audit log.",
        lifespan=lifespan,
        max_body_size=JSON_BODY_LIMIT,
        static_url="/static/docs",
    )
    app.state.service = service

    @app.exception_handler(VoxwatchError)
    async def voxwatch_error(request: Request, exc: VoxwatchError) -> JSONResponse:
        if isinstance(exc, Forbidden):  # a file outside, an internal URL, a role too low: who tried is worth keeping
            who = getattr(request.state, "actor", "anonymous")
            await run_in_threadpool(service.audit, who, "forbidden", f"{request.method} {request.url.path}", str(exc))
        return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=exc.http_status)

    api = APIRouter(prefix="/api", dependencies=[Depends(authenticated)])

    @api.get("/status", summary="Who you are (token and role) and how the service is doing", response_model=Status)
    def get_status(principal: Annotated[Principal, Depends(authenticated)]) -> dict[str, Any]:
        return service.status(principal)

    @api.get(
        "/speakers", summary="Enrolled voices with enrollment quality", dependencies=VIEWER, response_model=list[SpeakerView]
    )
    def list_speakers() -> list[dict[str, Any]]:
        return service.speakers()

    @api.get("/speakers/{name}", summary="One voice with its enrollments", dependencies=VIEWER, response_model=SpeakerDetail)
    def get_speaker(name: str) -> dict[str, Any]:
        return service.speaker(name)

    @api.post(
        "/speakers",
        status_code=201,
        summary="Enroll a voice from uploaded recordings (multipart)",
        response_model=Enrolled,
        max_body_size=int(service.options.max_upload_mb * (1 << 20)),
    )
    def enroll(
        who: Admin,
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

    @api.delete(
        "/speakers/{name}",
        summary="Forget a voice: voiceprints, enrollments, detections, alerts and their audio",
        response_model=Forgotten,
    )
    def forget(name: str, who: Admin) -> dict[str, Any]:
        return {"forgotten": name, **service.forget(name, who)}

    @api.get("/streams", summary="Watched streams with live status", dependencies=VIEWER, response_model=list[StreamView])
    def list_streams() -> list[dict[str, Any]]:
        return service.streams()

    @api.get("/workers", summary="Cluster watch workers and their health", dependencies=VIEWER, response_model=list[WorkerHealth])
    def list_workers() -> list[dict[str, Any]]:
        return service.workers() or []

    @api.post(
        "/streams", status_code=201, summary="Watch a URL or an allowed file for some or all voices", response_model=StreamView
    )
    def add_stream(body: StreamRequest, who: Operator) -> dict[str, Any]:
        return service.add_stream(body.source, body.speakers, body.reconnects, body.realtime, who)

    @api.delete("/streams/{stream_id}", status_code=204, response_class=Response, summary="Stop watching a stream")
    def stop_stream(stream_id: str, who: Operator) -> Response:
        service.stop_stream(stream_id, who)
        return Response(status_code=204)

    @api.get(
        "/alerts",
        summary="Alerts, newest first, filtered by speaker, stream (id or source), wall-time range, words and language",
        dependencies=VIEWER,
        response_model=list[AlertView],
    )
    def list_alerts(
        speaker: str | None = None,
        stream: str | None = None,
        since: Annotated[str | None, Query(description="ISO 8601 time, inclusive")] = None,
        until: Annotated[str | None, Query(description="ISO 8601 time, inclusive")] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
        text: Annotated[str | None, Query(description='Words said in the turn (all must occur; "a phrase"; prefix*)')] = None,
        language: Annotated[str | None, Query(description="Language of the turn, ISO 639-1 (en, nl, ar, ...)")] = None,
    ) -> list[dict[str, Any]]:
        return service.alerts(speaker, stream, since, until, limit, text, language)

    @api.get(
        "/alerts/{alert_id}",
        summary="One alert, with its transcript once its turn has been transcribed",
        dependencies=VIEWER,
        response_model=AlertView,
    )
    def get_alert(alert_id: str) -> dict[str, Any]:
        return service.alert(alert_id)

    @api.get(
        "/alerts/{alert_id}/audio",
        summary="The audio of the alerted turn (Ogg/Opus or WAV)",
        responses={200: {"content": {"audio/ogg": {}, "audio/wav": {}}}},
        dependencies=VIEWER,
    )
    def alert_audio(alert_id: str) -> Response:
        media_type, start_s, end_s, data = service.alert_audio(alert_id)
        ext = "ogg" if media_type == "audio/ogg" else "wav"
        headers = {
            "Content-Disposition": f'inline; filename="alert-{alert_id}.{ext}"',
            "Cache-Control": "private, no-store",
            "X-Voxwatch-Start-S": str(start_s),
            "X-Voxwatch-End-S": str(end_s),
        }
        return Response(data, media_type=media_type, headers=headers)

    @api.post(
        "/alerts/{alert_id}/ack",
        summary="Acknowledge an alert (once; repeats return the first acknowledgement)",
        response_model=AlertView,
    )
    def acknowledge(alert_id: str, who: Operator) -> dict[str, Any]:
        return service.acknowledge(alert_id, who)

    @api.post(
        "/search",
        status_code=202,
        summary="Search allowed files/folders for enrolled voices (a background job)",
        response_model=SearchJob,
    )
    def submit_search(body: SearchRequest, who: Operator) -> dict[str, Any]:
        return service.start_search(body.paths, body.speakers, who)

    @api.get("/search", summary="Recent search jobs", dependencies=VIEWER, response_model=list[SearchJobSummary])
    def list_searches() -> list[dict[str, Any]]:
        return service.search_jobs()

    @api.get(
        "/search/{job_id}",
        summary="A search job: status, progress, and per-recording timelines",
        dependencies=VIEWER,
        response_model=SearchJob,
    )
    def get_search(job_id: str) -> dict[str, Any]:
        return service.search_job(job_id)

    @api.get("/webhooks", summary="Webhooks with delivery counts", dependencies=ADMIN, response_model=list[WebhookView])
    def list_webhooks() -> list[dict[str, Any]]:
        return service.webhooks()

    @api.post(
        "/webhooks",
        status_code=201,
        summary="Send every new alert (optionally for some voices) to a URL (see the webhook 'alert' for the body)",
        response_model=WebhookView,
    )
    def add_webhook(body: WebhookRequest, who: Admin) -> dict[str, Any]:
        return service.add_webhook(body.url, body.secret, body.speakers, who)

    @api.delete(
        "/webhooks/{webhook_id}",
        status_code=204,
        response_class=Response,
        summary="Remove a webhook (its undelivered alerts are dropped)",
    )
    def remove_webhook(webhook_id: int, who: Admin) -> Response:
        service.remove_webhook(webhook_id, who)
        return Response(status_code=204)

    @api.get(
        "/tokens",
        summary="API tokens: names, roles and expiry (never the tokens)",
        dependencies=ADMIN,
        response_model=list[TokenInfo],
    )
    def list_tokens() -> list[dict[str, str | None]]:
        return service.store.tokens()

    @api.get("/audit", summary="The audit log, newest first", dependencies=ADMIN, response_model=list[AuditEntry])
    def audit(limit: Annotated[int, Query(ge=1, le=10000)] = 200) -> list[dict[str, str]]:
        return service.audit_log(limit)

    @api.get(
        "/events",
        summary="Live feed (Server-Sent Events): alert, transcript, ack, streams, stream_end, detection, speakers, search",
        description=EVENTS_DESCRIPTION,
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}, "example": EVENTS_EXAMPLE}}}},
        dependencies=VIEWER,
    )
    async def events(
        request: Request,
        last_event_id: Annotated[
            str | None, Header(description="Resume after this event id: the missed events are sent first.")
        ] = None,
    ) -> StreamingResponse:
        entry, missed = service.feed.subscribe(last_event_id)
        queue = entry[1]

        async def feed() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                for text in missed:
                    yield text
                yield event_text("streams", await run_in_threadpool(service.streams))
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
                        yield event_text("streams", await run_in_threadpool(service.streams))
            finally:
                service.feed.unsubscribe(entry)

        return StreamingResponse(
            feed(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )

    app.include_router(api)

    @app.webhooks.post("alert", summary="An alert, POSTed to every webhook whose speaker filter it passes")
    def alert_webhook(
        body: WebhookPayload,
        idempotency_key: Annotated[str, Header(description="The alert id: deduplicate on it.")],
        x_voxwatch_signature: Annotated[
            str | None,
            Header(description="With a secret: `sha256=` and the hex HMAC-SHA256 of the exact body bytes under it."),
        ] = None,
    ) -> None:
        """Sent once per alert and webhook, in commit order, as compact JSON with sorted keys. Answer 2xx to take
        it; any other answer or no answer is retried with exponential backoff (1 s doubling up to 60 s), and the
        alerts behind it wait. Check the signature over the raw body before parsing it, e.g. in Python
        `hmac.compare_digest(header, "sha256=" + hmac.new(secret, body, "sha256").hexdigest())`."""

    @app.webhooks.post("transcript", summary="An alert's transcript, POSTed after the alert to each webhook that had it")
    def transcript_webhook(
        body: TranscriptPayload,
        idempotency_key: Annotated[str, Header(description="`ALERT_ID:transcript`: deduplicate on it.")],
        x_voxwatch_signature: Annotated[str | None, Header(description="As for alerts.")] = None,
    ) -> None:
        """Sent once the alert's turn has been transcribed (``status`` ``done``) or could not be (``dropped``,
        ``failed``, with the ``reason``), with the same ordering, retries and signature as alerts."""

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        """For load balancers, without a token: 200 when every check passes, else 503 (the shape of :class:`Health`)."""
        health = service.health()
        return JSONResponse(health, status_code=200 if health["status"] == "ok" else 503)

    metrics = registry(service)

    @app.get("/metrics", include_in_schema=False, dependencies=[] if service.options.metrics_public else VIEWER)
    def get_metrics(accept: Annotated[str, Header()] = "") -> Response:
        """Prometheus metrics (docs/operations.md), in the text or OpenMetrics format the scraper accepts: a viewer
        token, unless the service runs with ``metrics_public``."""
        encode, media_type = choose_encoder(accept)
        return Response(encode(metrics), headers={"Content-Type": media_type})

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def serve(service: Service, host: str = "127.0.0.1", port: int = 8686, log_level: str = "info") -> None:
    """Run the service until interrupted (SIGINT/SIGTERM); loopback only unless ``host`` says otherwise."""
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: the API is reachable from other machines; put TLS in front of it", host)
    # log_config=None: uvicorn's own loggers propagate to voxwatch's handler, so they share its format (voxwatch.logs)
    uvicorn.run(create_app(service), host=host, port=port, log_level=log_level, log_config=None, timeout_graceful_shutdown=2)
