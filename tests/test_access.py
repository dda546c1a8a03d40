"""Roles, expiry, internal-URL refusal and retention of the service, fast: an in-process app over a tone engine
(no models, no ../shared/data)."""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from test_service import http_radio

from voxwatch import FileSource
from voxwatch.api import create_app
from voxwatch.audio import write_wav
from voxwatch.auth import Role, create_token
from voxwatch.cli import main
from voxwatch.engine import Engine
from voxwatch.errors import UsageError
from voxwatch.outbound import internal, redact_url
from voxwatch.records import AlertTranscript
from voxwatch.retention import Retention
from voxwatch.service import Service, ServiceOptions
from voxwatch.settings import resolve_settings
from voxwatch.store import Store, WatchedStream
from voxwatch.testing import tone_engine, tone_voice

DATA = Path(__file__).resolve().parent / "data"
RECORDING = DATA / "tones.flac"
TRUTH = json.loads((DATA / "tones.json").read_text())


@pytest.fixture
def tones(tmp_path: Path, db: str | Path) -> Iterator[Engine]:
    """A tone engine on each store in turn with the recording's two voices enrolled and its alerts raised and stored."""
    engine = tone_engine(tmp_path, actor="admin", db=db)
    for i, name in enumerate(TRUTH["enrolled"]):
        wav = write_wav(tmp_path / f"{name}.wav", tone_voice(TRUTH["voices"][name], 5.0, seed=100 + i))
        engine.enroll(name, [wav], note="tone")
    engine.watch([FileSource(str(RECORDING))])
    yield engine
    engine.close()


def app_client(engine: Engine, tmp_path: Path, **options: object) -> TestClient:
    allowed = tmp_path / "allowed"
    allowed.mkdir(exist_ok=True)
    shutil.copy(RECORDING, allowed / "tones.flac")
    return TestClient(create_app(Service(engine, ServiceOptions(allow_dirs=(allowed,), **options))))  # type: ignore[arg-type]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def backdate(store: Store, alert_id: str, days: float) -> None:
    """Move one alert (and the detections of its voice) ``days`` into the past, straight in the database."""
    at = datetime.now(UTC) - timedelta(days=days)
    with store._tx() as con:
        con.execute("UPDATE alerts SET wall_time = ? WHERE alert_id = ?", (at.isoformat(timespec="milliseconds"), alert_id))
        speaker = con.execute("SELECT speaker FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone()[0]
        con.execute("UPDATE detections SET created_at = ? WHERE speaker = ?", (at.isoformat(timespec="seconds"), speaker))


# -- roles and expiry ---------------------------------------------------------------------------------------------


def test_each_role_may_do_its_part_and_every_refusal_is_403_and_audited(tones: Engine, tmp_path: Path) -> None:
    tokens = {role: create_token(tones.store, role.value, "admin", role) for role in Role}
    alert_id = tones.store.alerts()[0].alert_id
    wav = write_wav(tmp_path / "new.wav", tone_voice(600.0, 5.0, seed=7))
    upload = {"data": {"name": "mid", "note": "tone"}, "files": [("files", (wav.name, wav.read_bytes(), "audio/wav"))]}
    reads = ["/api/alerts", f"/api/alerts/{alert_id}", "/api/streams", "/api/speakers", "/api/search", "/api/status"]
    with app_client(tones, tmp_path) as client:
        viewer, operator, admin = (bearer(tokens[r]) for r in (Role.VIEWER, Role.OPERATOR, Role.ADMIN))
        for path in reads:
            assert client.get(path, headers=viewer).status_code == 200, path
        assert client.get("/api/status", headers=viewer).json()["role"] == "viewer"
        refused = {
            "viewer": [
                ("POST", "/api/streams", {"json": {"source": "tones.flac"}}),
                ("POST", f"/api/alerts/{alert_id}/ack", {}),
                ("POST", "/api/search", {"json": {"paths": ["tones.flac"]}}),
                ("DELETE", "/api/speakers/low", {}),
                ("GET", "/api/audit", {}),
            ],
            "operator": [
                ("POST", "/api/speakers", upload),
                ("DELETE", "/api/speakers/low", {}),
                ("GET", "/api/webhooks", {}),
                ("POST", "/api/webhooks", {"json": {"url": "https://hooks.example/x"}}),
                ("DELETE", "/api/webhooks/1", {}),
                ("GET", "/api/tokens", {}),
            ],
        }
        for role, calls in refused.items():
            for method, path, kw in calls:
                r = client.request(method, path, headers=bearer(tokens[Role(role)]), **kw)  # type: ignore[arg-type]
                assert r.status_code == 403, (role, method, path, r.text)
                assert f"has role {role}" in r.json()["detail"], r.text
        # what the refused roles could not do, the next role up can
        assert client.post(f"/api/alerts/{alert_id}/ack", headers=operator).json()["acknowledged_by"] == "token:operator"
        assert client.post("/api/search", headers=operator, json={"paths": ["tones.flac"]}).status_code == 202
        assert client.post("/api/speakers", headers=admin, **upload).status_code == 201  # type: ignore[arg-type]
        assert {t["name"]: t["role"] for t in client.get("/api/tokens", headers=admin).json()} == {
            "viewer": "viewer",
            "operator": "operator",
            "admin": "admin",
        }
        audit = client.get("/api/audit", headers=admin, params={"limit": 1000}).json()
    forbidden = [(a["actor"], a["detail"]) for a in audit if a["action"] == "forbidden"]
    assert len(forbidden) == sum(map(len, refused.values()))
    assert sum(actor == "token:viewer" for actor, _ in forbidden) == len(refused["viewer"])
    assert any("DELETE /api/speakers/low needs role admin" in detail for _, detail in forbidden)
    assert "mid" in [s.name for s in tones.store.speakers()] and "low" in [s.name for s in tones.store.speakers()]


def test_expired_and_unknown_tokens_get_401_and_are_audited(tones: Engine, tmp_path: Path) -> None:
    token = create_token(tones.store, "temp", "admin", Role.VIEWER, expires_days=1)
    with app_client(tones, tmp_path) as client:
        assert client.get("/api/alerts", headers=bearer(token)).status_code == 200
        with tones.store._tx() as con:  # a day later
            con.execute(
                "UPDATE tokens SET expires_at = ?", ((datetime.now(UTC) - timedelta(seconds=1)).isoformat(timespec="seconds"),)
            )
        r = client.get("/api/alerts", headers=bearer(token))
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    refused = [a for a in tones.store.audit_log() if a["action"] == "unauthorized"]
    assert len(refused) == 1 and "token 'temp' expired at" in refused[0]["detail"]
    with pytest.raises(UsageError, match="expires-days 0"):
        create_token(tones.store, "never", "admin", Role.VIEWER, expires_days=0)


def test_cli_creates_tokens_with_a_role_and_an_expiry(tmp_path: Path) -> None:
    db = str(tmp_path / "voxwatch.db")
    runner = CliRunner()
    made = runner.invoke(main, ["--db", db, "token", "create", "desk", "--role", "viewer", "--expires-days", "30"])
    assert made.exit_code == 0, made.output
    assert runner.invoke(main, ["--db", db, "token", "create", "nobody"]).exit_code == 2  # the role is required
    listed = runner.invoke(main, ["--db", db, "--json", "token", "list"])
    [token] = [json.loads(line) for line in listed.output.splitlines()]
    assert token["name"] == "desk" and token["role"] == "viewer" and token["expires_at"] > token["created_at"]
    days = (time.mktime(time.strptime(token["expires_at"][:10], "%Y-%m-%d")) - time.time()) / 86400
    assert 29 <= days <= 30


# -- internal URLs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "inside"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("172.16.0.9", True),
        ("192.168.1.10", True),
        ("169.254.169.254", True),
        ("0.0.0.0", True),
        ("::1", True),
        ("fe80::1", True),
        ("fd00::1", True),
        ("::ffff:127.0.0.1", True),
        ("93.184.215.14", False),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", False),
    ],
)
def test_internal_addresses_are_loopback_link_local_private_or_unspecified(address: str, inside: bool) -> None:
    assert internal(ipaddress.ip_address(address)) is inside


def test_webhooks_and_streams_to_internal_hosts_are_refused_unless_allowed(tones: Engine, tmp_path: Path) -> None:
    headers = bearer(create_token(tones.store, "root", "admin", Role.ADMIN))
    internal_urls = [
        "http://127.0.0.1:9/hook",
        "http://localhost:8080/hook",  # a name that resolves to loopback
        "http://169.254.169.254/latest/meta-data",
        "https://10.0.0.5/hook",
        "http://[::1]/hook",
        "http://[::ffff:192.168.0.1]/hook",
    ]
    with app_client(tones, tmp_path) as client:
        for url in internal_urls:
            r = client.post("/api/webhooks", headers=headers, json={"url": url})
            assert r.status_code == 403 and "--allow-private-urls" in r.json()["detail"], (url, r.text)
        for source in ["rtsp://192.168.1.10/cam", "udp://@:1234", "http://127.0.0.1:8000/live.mp3"]:
            assert client.post("/api/streams", headers=headers, json={"source": source}).status_code == 403, source
        assert client.post("/api/webhooks", headers=headers, json={"url": "http://no-such-host.invalid/x"}).status_code == 400
        assert client.post("/api/webhooks", headers=headers, json={"url": "https://93.184.215.14/hook"}).status_code == 201
        assert client.get("/api/streams", headers=headers).json() == []
        assert client.delete("/api/webhooks/999", headers=headers).status_code == 404
    assert len(tones.store.webhooks()) == 1
    assert sum(a["action"] == "forbidden" for a in tones.store.audit_log()) == len(internal_urls) + 3
    with app_client(tones, tmp_path, allow_private_urls=True) as client:
        assert client.post("/api/webhooks", headers=headers, json={"url": "http://127.0.0.1:9/hook"}).status_code == 201


def test_urls_are_shown_without_their_secrets() -> None:
    assert redact_url("rtsp://admin:pw@cam.example:554/live?channel=1") == "rtsp://admin:***@cam.example:554/live?channel=1"
    assert redact_url("https://radio.example/a.mp3?token=abc&bitrate=32") == "https://radio.example/a.mp3?token=***&bitrate=32"
    assert (
        redact_url("srt://relay.example:9000?passphrase=zz&latency=200") == "srt://relay.example:9000?passphrase=***&latency=200"
    )
    for unchanged in ("http://listener@radio.example/live", "http://[::1]:80/x?key=", "recordings/a.wav", "pulse:monitor"):
        assert redact_url(unchanged) == unchanged


def test_a_streams_password_opens_it_but_is_never_shown_logged_or_stored_with_its_alerts(
    tones: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream behind HTTP basic authentication, added with its user and password in the URL: the password reaches
    the server, and the stream plays and alerts; its name in the API, its alerts, the audit log, the logs and its
    error when it goes off the air hide the password. The store keeps it only to reopen the stream after a restart."""
    headers = bearer(create_token(tones.store, "root", "admin", Role.ADMIN))
    login = http_radio(RECORDING.read_bytes(), "audio/flac", plays=1, login="listener:s3cret")
    with login as (url, connections), app_client(tones, tmp_path, allow_private_urls=True) as client:
        shown = url.replace("s3cret", "***")
        added = client.post("/api/streams", headers=headers, json={"source": url, "reconnects": 1})
        assert added.status_code == 201 and added.json()["source"] == shown, added.text
        (kept,) = tones.store.watched_streams()
        assert (kept.source, kept.location) == (shown, url)  # what a restart reopens
        deadline = time.monotonic() + 30
        while (status := client.get("/api/streams", headers=headers).json()[0])["state"] == "running":
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        assert status["state"] == "failed" and "404" in status["error"] and status["source"] == shown, status
        alerts = client.get("/api/alerts", headers=headers, params={"stream": shown}).json()
        assert alerts, "the stream played and alerted"
        shown_anywhere = json.dumps([status, alerts, tones.store.audit_log()]) + caplog.text
        assert "s3cret" not in shown_anywhere and shown in shown_anywhere
        assert len(connections) == 2  # with the password: played, then the reconnection found it off the air


def test_a_stream_kept_with_its_password_in_its_name_resumes_under_its_name_without_it(tones: Engine) -> None:
    """A stream that an earlier version kept under its URL with the password: a restart reopens it with the password,
    and keeps it from then on under the name without it (the old row goes)."""
    with http_radio(RECORDING.read_bytes(), "audio/flac", plays=1, login="listener:s3cret") as (url, connections):
        tones.store.watch_stream(WatchedStream(url, "s1", "url", None, True, 0, "2026-12-01T00:00:00+00:00", "admin"))
        service = Service(tones, ServiceOptions(allow_private_urls=True, transcripts=None))
        service.start()
        try:
            (resumed,) = service.streams()
            (kept,) = tones.store.watched_streams()
            shown = url.replace("s3cret", "***")
            assert (resumed["id"], resumed["source"], kept.source, kept.location) == ("s1", shown, shown, url)
            deadline = time.monotonic() + 10
            while not connections:
                assert time.monotonic() < deadline, "the resumed stream was never opened with its password"
                time.sleep(0.1)
        finally:
            service.close()


def test_delivery_refuses_a_webhook_host_that_resolves_inside_by_now(
    tones: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the host resolved to a public address when the webhook was added, to loopback when an alert is
    due. The attempt is refused (and retried later), and the local receiver behind that name hears nothing."""
    heard: list[bytes] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            heard.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    answer = {"rebind.example": "93.184.215.14"}
    real = socket.getaddrinfo

    def getaddrinfo(host: str, *args: object, **kw: object) -> list:  # type: ignore[type-arg]
        if host in answer:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer[host], args[0] or 80))]
        return real(host, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    headers = bearer(create_token(tones.store, "root", "admin", Role.ADMIN))
    url = f"http://rebind.example:{receiver.server_address[1]}/hook"
    try:
        with app_client(tones, tmp_path) as client:
            hook = client.post("/api/webhooks", headers=headers, json={"url": url})
            assert hook.status_code == 201, hook.text
            answer["rebind.example"] = "127.0.0.1"
            alert = tones.store.alerts()[0]
            tones.store.add_alert(replace(alert, alert_id="rebound", wall_time=alert.wall_time))
            client.app.state.service.deliverer.wake()  # type: ignore[attr-defined]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                counts = client.get("/api/webhooks", headers=headers).json()[0]["deliveries"]
                if counts.get("last_error"):
                    break
                time.sleep(0.05)
    finally:
        receiver.shutdown()
        receiver.server_close()
    assert counts["pending"] == 1 and "refused" in counts["last_error"] and "internal address" in counts["last_error"], counts
    assert heard == []


# -- retention ----------------------------------------------------------------------------------------------------


def test_retention_purges_old_alerts_with_their_rows_and_detections_and_audits_it(tones: Engine) -> None:
    store = tones.store
    old, new = store.alerts()
    store.acknowledge(old.alert_id, "admin")
    store.add_snippet(old.alert_id, old.speaker, "audio/wav", 1.0, 2.0, b"RIFF")
    said = AlertTranscript(old.alert_id, old.source, old.speaker, 1.0, 2.0, "done", "en", 0.9, "meet at the bridge")
    assert store.add_transcript(said) and [r["alert_id"] for r in store.alert_records(text="bridge")] == [old.alert_id]
    store.add_webhook("https://hooks.example/x", None, None, "admin")
    store.queue_deliveries(store.webhooks()[0][0])
    backdate(store, old.alert_id, 31)
    counts = Retention(store, 30).purge()
    assert counts == {"snippets": 1, "acknowledgements": 1, "deliveries": 2, "transcripts": 1, "alerts": 1, "detections": 1}
    assert store.alert_records(text="bridge") == []  # the words' index forgets them too
    assert [a.alert_id for a in store.alerts()] == [new.alert_id]
    assert [d.speaker for d in store.detections()] == [new.speaker]
    assert store.delivery_counts(store.webhooks()[0][0]) == {"skipped": 1}  # the new alert's row is kept
    [purge] = [a for a in store.audit_log() if a["action"] == "purge"]
    assert purge["actor"] == "retention" and json.loads(purge["detail"])["alerts"] == 1
    assert Retention(store, 30).purge() == dict.fromkeys(counts, 0)
    assert len([a for a in store.audit_log() if a["action"] == "purge"]) == 1  # nothing purged, nothing logged
    with pytest.raises(UsageError, match="retain_days=0"):
        Retention(store, 0)


def test_the_service_purges_on_a_schedule(tones: Engine, tmp_path: Path) -> None:
    old, new = tones.store.alerts()
    settings = replace(tones.settings, retain_days=7)  # the same database
    with (
        Engine(settings, backend=tones.backend, vad=tones.vad) as keeping,
        app_client(keeping, tmp_path, retention_interval_s=0.1) as client,
    ):
        headers = bearer(create_token(tones.store, "root", "admin", Role.VIEWER))
        assert client.get("/api/status", headers=headers).json()["retain_days"] == 7
        backdate(tones.store, old.alert_id, 8)  # ages while the service runs
        deadline = time.monotonic() + 10
        while len(tones.store.alerts()) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [a.alert_id for a in tones.store.alerts()] == [new.alert_id]


def test_watch_purges_with_retain_days_from_the_settings_file(tones: Engine, tmp_path: Path) -> None:
    old, new = tones.store.alerts()
    backdate(tones.store, old.alert_id, 3)
    config = tmp_path / "voxwatch.toml"
    config.write_text("retain_days = 2.5\n")
    assert resolve_settings(config, environ={}).retain_days == 2.5
    args = ["--db", str(tones.settings.db), "--config", str(config), "--model", "nonexistent-model", "watch", str(RECORDING)]
    # the first purge runs before the watch starts; here the watch then stops at once (the model does not exist)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 4 and "nonexistent-model" in result.output, result.output
    assert [a.alert_id for a in tones.store.alerts()] == [new.alert_id]
    config.write_text("retain_days = -1\n")
    with pytest.raises(UsageError, match="retain_days = -1 is not a positive number of days"):
        resolve_settings(config, environ={})
