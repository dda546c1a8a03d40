"""Operating ``voxwatch serve``: Prometheus metrics at /metrics (read from live state, parsed with prometheus_client's
own parser), /healthz for load balancers (200, and 503 naming the failed check), and log lines with UTC times as
text or JSON, uvicorn's included, with no token or webhook secret in them."""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from test_service import OTHER, TARGET, Server, by_size, free_port, make_token, speech_stream

from voxwatch.api import create_app
from voxwatch.auth import Role, create_token
from voxwatch.cli import main
from voxwatch.engine import Engine
from voxwatch.errors import UsageError
from voxwatch.logs import JsonFormatter, TextFormatter
from voxwatch.service import Service, ServiceOptions
from voxwatch.settings import Settings, resolve_settings
from voxwatch.testing import ToneTranscriber, tone_engine

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient, headers: dict[str, str] | None = None) -> Samples:
    """Every sample of ``GET /metrics``, keyed by name and sorted labels, parsed as Prometheus parses it."""
    response = client.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, tuple(sorted(labels.items()))]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wait_until(check: Callable[[], object], timeout_s: float, what: str) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if got := check():
            return got
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout_s} s")


@pytest.fixture
def speech_service(tmp_path: Path, models, readers: dict[str, list[Path]]) -> Iterator[tuple[TestClient, dict[str, str], Path]]:  # type: ignore[no-untyped-def]
    """The real models over a fresh database with TARGET enrolled; a tone transcriber stands in for Whisper."""
    backend, vad = models
    engine = Engine(
        Settings(db=tmp_path / "voxwatch.db"), actor="tester", backend=backend, vad=vad, transcriber=ToneTranscriber()
    )
    engine.enroll(TARGET, by_size(readers[TARGET])[:3], note="LibriSpeech test-other, public domain")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    token = create_token(engine.store, "desk", "tester", Role.ADMIN)
    options = ServiceOptions(allow_dirs=(allowed,), allow_private_urls=True)  # the webhook's dead receiver is local
    with TestClient(create_app(Service(engine, options))) as client:
        yield client, bearer(token), allowed
    engine.close()


def test_metrics_follow_streams_of_speech_through_an_alert(speech_service, readers: dict[str, list[Path]]) -> None:  # type: ignore[no-untyped-def]
    client, auth, allowed = speech_service
    turns = speech_stream(allowed / "channel1.wav", readers, [(TARGET, 3), (OTHER, 0)])
    shutil.copy(allowed / "channel1.wav", allowed / "channel2.wav")
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: every delivery attempt fails
    hook = client.post("/api/webhooks", headers=auth, json={"url": dead}).json()
    before = scrape(client, auth)
    assert value(before, "voxwatch_webhook_deliveries_pending", webhook=str(hook["id"])) == 0
    assert value(before, "voxwatch_streams", state="running") == 0 and value(before, "voxwatch_alerts_total", kind="file") == 0
    assert value(before, "voxwatch_health", check="watch") == 1 and value(before, "voxwatch_audio_seconds_total") == 0

    # a real-time stream is running while it is scraped: counted, with its lag, not behind
    live = client.post("/api/streams", headers=auth, json={"source": "channel2.wav", "realtime": True}).json()
    wait_until(lambda: client.get("/api/streams", headers=auth).json()[0]["audio_s"] > 1, 30, "the live stream's first second")
    during = scrape(client, auth)
    assert value(during, "voxwatch_streams", state="running") == 1
    listed = client.get("/api/streams", headers=auth).json()[0]
    lag = value(during, "voxwatch_stream_lag_seconds", stream=live["id"], kind="file")
    assert 0 <= lag < 3 and abs(lag - listed["lag_s"]) < 1.0, (lag, listed)
    assert value(during, "voxwatch_stream_behind", stream=live["id"], kind="file") == 0
    assert client.delete(f"/api/streams/{live['id']}", headers=auth).status_code == 204

    # a file played as fast as it decodes: it ends, and its alert shows in the counter
    fast = client.post("/api/streams", headers=auth, json={"source": "channel1.wav", "realtime": False}).json()
    wait_until(lambda: client.get("/api/streams", headers=auth).json()[0]["state"] == "ended", 60, "the stream's end")
    alerts = client.get("/api/alerts", headers=auth, params={"stream": fast["id"]}).json()
    assert alerts and alerts[0]["speaker"] == TARGET and alerts[0]["segment_start_s"] <= turns[0].end_s
    after = scrape(client, auth)
    assert (live["id"], "file") not in {
        (dict(k)["stream"], dict(k)["kind"]) for n, k in after if n == "voxwatch_stream_lag_seconds"
    }
    assert value(after, "voxwatch_streams", state="ended") == 1 and value(after, "voxwatch_streams", state="running") == 0
    assert value(after, "voxwatch_stream_lag_seconds", stream=fast["id"], kind="file") == 0  # all of it acted on
    assert value(after, "voxwatch_alerts_total", kind="file") == len(alerts)
    assert value(after, "voxwatch_detections_total", kind="file") >= 1 and value(after, "voxwatch_alerts_total", kind="url") == 0
    text = client.get("/metrics", headers=auth).text
    assert TARGET not in text and "channel1" not in text  # no voice's name, no source, in any label

    # the model clock: both stages busy, the audio of both streams counted, each embedded window in the histogram
    duration_s = (allowed / "channel1.wav").stat().st_size / 2 / 16000  # 16-bit mono at 16 kHz
    audio_s = value(after, "voxwatch_audio_seconds_total")
    assert duration_s < audio_s < duration_s + value(during, "voxwatch_audio_seconds_total") + 2, (audio_s, duration_s)
    assert value(after, "voxwatch_model_busy_seconds_total", stage="vad") > 0
    embedding_s = value(after, "voxwatch_model_busy_seconds_total", stage="embedding")
    windows = value(after, "voxwatch_window_embedding_seconds_count")
    assert windows >= 10 and value(after, "voxwatch_window_embedding_seconds_bucket", le="+Inf") == windows
    assert 0 < value(after, "voxwatch_window_embedding_seconds_sum") <= embedding_s
    rtf = max(value(after, "voxwatch_real_time_factor", stage=s) for s in ("vad", "embedding"))
    assert 0 < rtf < 1 and value(after, "voxwatch_capacity_streams") == pytest.approx(1 / rtf)
    # the transcript of the alerted turn: done, none waiting, none dropped
    wait_until(lambda: value(scrape(client, auth), "voxwatch_transcripts_done_total") >= 1, 30, "the alert's transcript")
    last = scrape(client, auth)
    assert (
        value(last, "voxwatch_transcripts_pending") == 0
        and value(last, "voxwatch_transcripts_dropped_total", queue="transcript") == 0
    )
    # the alert and its transcript wait for the dead receiver, whose failed attempts are counted
    webhook = str(hook["id"])
    wait_until(
        lambda: value(scrape(client, auth), "voxwatch_webhook_failed_attempts", webhook=webhook) >= 1, 30, "a failed attempt"
    )
    pending = value(scrape(client, auth), "voxwatch_webhook_deliveries_pending", webhook=webhook)
    assert len(alerts) <= pending <= 2 * len(alerts), pending


def test_metrics_need_a_viewer_token_unless_public(tmp_path: Path) -> None:
    """Two services in one process (each with its own registry): one asks scrapers for a token, one does not."""
    for name in ("closed", "open"):
        (tmp_path / name).mkdir()
    closed, open_ = tone_engine(tmp_path / "closed"), tone_engine(tmp_path / "open")
    viewer = create_token(closed.store, "prometheus", "tester", Role.VIEWER)
    with (
        TestClient(create_app(Service(closed, ServiceOptions()))) as guarded,
        TestClient(create_app(Service(open_, ServiceOptions(metrics_public=True)))) as public,
    ):
        assert guarded.get("/metrics").status_code == 401
        assert guarded.get("/metrics", headers=bearer("vxw_wrong")).status_code == 401
        assert value(scrape(guarded, bearer(viewer)), "voxwatch_streams", state="running") == 0
        assert value(scrape(public), "voxwatch_health", check="store") == 1
        assert public.get("/api/streams").status_code == 401  # only /metrics is opened
        refused = [a for a in closed.store.audit_log() if a["action"] == "unauthorized"]
        assert {a["target"] for a in refused} == {"GET /metrics"}
    closed.close()
    open_.close()


def test_healthz_is_200_while_running_and_503_naming_a_dead_watch_or_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for broken in ("watch", "store"):
        (tmp_path / broken).mkdir()
        engine = tone_engine(tmp_path / broken)
        token = create_token(engine.store, "desk", "tester", Role.VIEWER)
        service = Service(engine, ServiceOptions(metrics_public=True))
        with TestClient(create_app(service)) as client:
            ok = client.get("/healthz")  # no token
            assert ok.status_code == 200 and ok.json() == {
                "status": "ok",
                "checks": {"watch": {"status": "ok", "reason": None}, "store": {"status": "ok", "reason": None}},
            }
            assert client.get("/api/status", headers=bearer(token)).json()["health"]["status"] == "ok"
            if broken == "watch":
                service.watch.stop()  # the watch thread ends as it would if its loop died
            else:
                engine.store.close()
            down = wait_until(lambda: (r := client.get("/healthz")).status_code == 503 and r, 10, f"a 503 for the {broken}")
            body = down.json()  # type: ignore[attr-defined]
            assert body["status"] == "failing" and body["checks"][broken]["status"] == "failing", body
            assert body["checks"][broken]["reason"] in ("the watch thread has ended", "the database does not answer (StoreError)")
            other = "store" if broken == "watch" else "watch"
            assert body["checks"][other] == {"status": "ok", "reason": None}, body
            assert value(scrape(client), "voxwatch_health", check=broken) == 0  # the scrape itself still works
            if broken == "watch":
                assert client.get("/api/status", headers=bearer(token)).json()["health"] == body
            else:  # the log says why, once, however often a load balancer asks
                assert client.get("/healthz").status_code == 503
                said = [r for r in caplog.records if r.name == "voxwatch.service" and "store does not answer" in r.message]
                assert len(said) == 1 and "closed" in said[0].message, [r.message for r in said]
        engine.close()


def test_log_lines_carry_utc_time_level_and_logger_and_json_adds_the_exception() -> None:
    logger = logging.getLogger("voxwatch.test_operations")
    text, js = io.StringIO(), io.StringIO()
    for stream, formatter in ((text, TextFormatter()), (js, JsonFormatter())):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    try:
        logger.warning("stream %s is %.1f s behind", "abc123", 4.25)
        try:
            raise RuntimeError("model crashed")
        except RuntimeError:
            logger.exception("a watch step failed")
    finally:
        logger.handlers.clear()
    first = text.getvalue().splitlines()[0]
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARNING voxwatch\.test_operations: stream abc123 is 4\.2 s behind", first
    )
    assert "RuntimeError: model crashed" in text.getvalue()
    plain, failed = (json.loads(line) for line in js.getvalue().splitlines())
    assert set(plain) == {"time", "level", "logger", "message"} and plain["message"] == "stream abc123 is 4.2 s behind"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", plain["time"]) and plain["level"] == "WARNING"
    assert failed["message"] == "a watch step failed" and failed["exception"].endswith("RuntimeError: model crashed")
    assert "Traceback" in failed["exception"]


def test_watch_logs_text_lines_with_utc_time_then_json_when_asked(engine: Engine, readers: dict[str, list[Path]]) -> None:
    """``voxwatch watch`` of a radio that is off the air: its reconnection warning is a timestamped text line, and with
    ``--log-format json`` (after the command) a JSON object; the next run without it is text again."""
    engine.enroll(TARGET, by_size(readers[TARGET])[:1], note="LibriSpeech test-other, public domain")  # watch needs a voice
    dead = f"http://127.0.0.1:{free_port()}/radio.mp3"
    args = ["watch", dead, "--reconnect", "1", "--no-transcripts", "--db", str(engine.settings.db)]
    runner = CliRunner()
    as_json = runner.invoke(main, [*args, "--log-format", "json"])
    as_text = runner.invoke(main, args)
    assert as_json.exit_code == 3 and as_text.exit_code == 3, as_json.output + as_text.output
    line = next(json.loads(x) for x in as_json.stderr.splitlines() if x.startswith("{"))
    assert (
        line["logger"] == "voxwatch.sources" and line["level"] == "WARNING" and "reconnecting in 1.0 s (1/1)" in line["message"]
    )
    pattern = (
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARNING voxwatch\.sources: .* dropped \(.*\); reconnecting in 1\.0 s \(1/1\)"
    )
    assert any(re.fullmatch(pattern, x) for x in as_text.stderr.splitlines()), as_text.stderr


def test_log_format_is_a_setting_checked_like_the_others(tmp_path: Path) -> None:
    config = tmp_path / "voxwatch.toml"
    config.write_text('log_format = "json"\n')
    assert resolve_settings(config, environ={}).log_format == "json"
    assert resolve_settings(config, {"log_format": "text"}, environ={}).log_format == "text"  # the command line wins
    config.write_text('log_format = "xml"\n')
    with pytest.raises(UsageError, match='log_format.*"text" or "json"'):
        resolve_settings(config, environ={})


def test_serve_logs_json_lines_for_uvicorn_and_voxwatch_without_tokens_or_secrets(tmp_path: Path) -> None:
    """A real ``voxwatch serve ... --log-format json`` (the option after the command): its startup, its access log and
    a dead stream's reconnection warning are JSON lines; the bearer token and a webhook's secret appear in none."""
    allow = tmp_path / "allowed"
    allow.mkdir()
    db = tmp_path / "voxwatch.db"
    token = make_token(db)
    secret = "s3cret-never-logged"
    server = Server(db, allow, token, "--log-format", "json", "--no-transcripts", "--allow-private-urls").start()
    try:
        with server.client() as c:
            assert c.get("/api/status").status_code == 200
            assert c.post("/api/webhooks", json={"url": "http://127.0.0.1:9/hook", "secret": secret}).status_code == 201
            dead = f"http://127.0.0.1:{free_port()}/radio.mp3"  # nothing listens: the stream drops, is retried, fails
            stream = c.post("/api/streams", json={"source": dead, "reconnects": 1}).json()
            wait_until(lambda: c.get("/api/streams").json()[0]["state"] == "failed", 30, "the dead stream's failure")
            assert c.get("/metrics").status_code == 200 and c.delete(f"/api/streams/{stream['id']}").status_code == 204
            assert httpx.get(server.url + "/healthz").status_code == 200
    finally:
        server.stop()
    text = server.log.read_text()
    assert token not in text and secret not in text
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    assert all(set(line) >= {"time", "level", "logger", "message"} for line in lines)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]) for line in lines)
    loggers = {line["logger"] for line in lines}
    assert {"uvicorn.error", "uvicorn.access", "voxwatch.sources"} <= loggers
    reconnect = next(line for line in lines if line["logger"] == "voxwatch.sources")
    assert reconnect["level"] == "WARNING" and "reconnecting in 1.0 s (1/1)" in reconnect["message"], reconnect
    assert any(line["logger"] == "uvicorn.access" and "GET /api/status" in line["message"] for line in lines)
