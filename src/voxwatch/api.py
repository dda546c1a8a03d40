"""The HTTP API of ``voxwatch serve``: thin FastAPI routes over a :class:`~voxwatch.service.Service`.

The service owns the engine, the store and a running :class:`~voxwatch.watch.Watch`; this module exposes them as a
REST API (OpenAPI at ``/openapi.json``, docs at ``/docs``), a live feed over Server-Sent Events (:mod:`voxwatch.feed`)
and the dashboard at ``/``; webhooks are delivered by :mod:`voxwatch.delivery`.

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
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from . import __version__
from .audio import AUDIO_SUFFIXES
from .errors import AudioError, Forbidden, UsageError, VoxwatchError
from .feed import event_text
from .service import Service

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
JSON_BODY_LIMIT = 1 << 20


def _actor(request: Request) -> str:
    """The bearer check every API route depends on: the acting token's audit name, or 401 (audit-logged)."""
    service: Service = request.app.state.service
    client = request.client.host if request.client else "?"
    who = service.authenticate(request.headers.get("authorization"), request.method, request.url.path, client)
    if who is None:
        raise HTTPException(
            401, "a valid bearer token is required (Authorization: Bearer <token>)", headers={"WWW-Authenticate": "Bearer"}
        )
    request.state.actor = who
    return who


Actor = Annotated[str, Depends(_actor)]


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
            await run_in_threadpool(service.audit, who, "forbidden", f"{request.method} {request.url.path}", str(exc))
        return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=exc.http_status)

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

    @api.post(
        "/speakers",
        status_code=201,
        summary="Enroll a voice from uploaded recordings (multipart)",
        max_body_size=int(service.options.max_upload_mb * (1 << 20)),
    )
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

    @api.get(
        "/alerts", summary="Alerts, newest first, filtered by speaker, stream (id or source), wall-time range, words and language"
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

    @api.get("/alerts/{alert_id}", summary="One alert, with its transcript once its turn has been transcribed")
    def get_alert(alert_id: str) -> dict[str, Any]:
        return service.alert(alert_id)

    @api.get(
        "/alerts/{alert_id}/audio",
        summary="The audio of the alerted turn (Ogg/Opus or WAV)",
        responses={200: {"content": {"audio/ogg": {}, "audio/wav": {}}}},
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

    @api.post("/alerts/{alert_id}/ack", summary="Acknowledge an alert (once; repeats return the first acknowledgement)")
    def acknowledge(alert_id: str, who: Actor) -> dict[str, Any]:
        return service.acknowledge(alert_id, who)

    @api.post("/search", status_code=202, summary="Search allowed files/folders for enrolled voices (a background job)")
    def submit_search(body: SearchRequest, who: Actor) -> dict[str, Any]:
        return service.start_search(body.paths, body.speakers, who)

    @api.get("/search", summary="Recent search jobs")
    def list_searches() -> list[dict[str, Any]]:
        return service.search_jobs()

    @api.get("/search/{job_id}", summary="A search job: status, progress, and per-recording timelines")
    def get_search(job_id: str) -> dict[str, Any]:
        return service.search_job(job_id)

    @api.get("/webhooks", summary="Webhooks with delivery counts")
    def list_webhooks() -> list[dict[str, Any]]:
        return service.webhooks()

    @api.post("/webhooks", status_code=201, summary="Send every new alert (optionally for some voices) to a URL")
    def add_webhook(body: WebhookRequest, who: Actor) -> dict[str, Any]:
        return service.add_webhook(body.url, body.secret, body.speakers, who)

    @api.delete(
        "/webhooks/{webhook_id}",
        status_code=204,
        response_class=Response,
        summary="Remove a webhook (its undelivered alerts are dropped)",
    )
    def remove_webhook(webhook_id: int, who: Actor) -> Response:
        service.remove_webhook(webhook_id, who)
        return Response(status_code=204)

    @api.get("/audit", summary="The audit log, newest first")
    def audit(limit: Annotated[int, Query(ge=1, le=10000)] = 200) -> list[dict[str, str]]:
        return service.audit_log(limit)

    @api.get(
        "/events",
        summary="Live feed (Server-Sent Events): alert, transcript, ack, streams, stream_end, detection, speakers, search",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def events(request: Request) -> StreamingResponse:
        entry = service.feed.subscribe()
        queue = entry[1]

        async def feed() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
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

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, bool]:
        return {"ok": service.watch_error is None}

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
    uvicorn.run(create_app(service), host=host, port=port, log_level=log_level, timeout_graceful_shutdown=2)
