"""The HTTP service end to end: a real ``voxwatch serve`` process on a free port, driven with httpx over HTTP, fed
with real speech (LibriSpeech test-other from the shared data directory).

The helpers at the top (``Server``, ``speech_stream``, ``upload``, ``Feed``) are reused by test_delivery.py and
test_dashboard.py.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest

from voxwatch.audio import RATE_HZ, load_audio, write_wav
from voxwatch.corpus import Turn, compose
from voxwatch.store import Store

CLI = [sys.executable, "-c", "from voxwatch.cli import main; main()"]
TARGET, OTHER, THIRD = "2033", "3005", "1998"  # readers whose other utterances alert reliably in a short stream


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def http_radio(programme: bytes, content_type: str, plays: int, login: str | None = None) -> Iterator[tuple[str, list[float]]]:
    """A local HTTP radio that plays ``programme`` on its first ``plays`` connections, then is off the air (404). With
    ``login`` ("user:password") it first asks for basic authentication and counts only the requests that carry it.
    Its URL (with the login in it) and when each counted connection came."""
    connections: list[float] = []
    expected = "Basic " + base64.b64encode(login.encode()).decode() if login else None

    class Radio(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if expected and self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="radio"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            connections.append(time.monotonic())
            on_air = len(connections) <= plays
            self.send_response(200 if on_air else 404)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(programme) if on_air else 0))
            self.end_headers()
            if on_air:
                self.wfile.write(programme)

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    radio = ThreadingHTTPServer(("127.0.0.1", 0), Radio)
    threading.Thread(target=radio.serve_forever, daemon=True).start()
    try:
        yield f"http://{login + '@' if login else ''}127.0.0.1:{radio.server_address[1]}/live", connections
    finally:
        radio.shutdown()
        radio.server_close()


def make_token(db: Path | str, name: str = "tester", role: str = "admin") -> str:
    out = subprocess.run(
        [*CLI, "--db", str(db), "token", "create", name, "--role", role],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    assert token.startswith("vxw_") and "copy it now" in out.stderr
    return token


class Server:
    """``voxwatch serve`` in a subprocess on a free port; :meth:`kill` sends SIGKILL, :meth:`start` starts it again
    on the same database."""

    def __init__(self, db: Path | str, allow: Path, token: str, *extra: str):
        self.db, self.allow, self.token, self.extra = db, allow, token, extra
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = allow.parent / "serve.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> Server:
        args = [*CLI, "--db", str(self.db), "serve", "--port", str(self.port), "--allow-dir", str(self.allow), *self.extra]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"voxwatch serve exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"voxwatch serve did not come up in {timeout_s} s:\n{self.log.read_text()[-3000:]}")

    def client(self, token: str | None = "default", **kw) -> httpx.Client:  # type: ignore[no-untyped-def]
        headers = {} if token is None else {"Authorization": f"Bearer {self.token if token == 'default' else token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=kw.pop("timeout", 60), **kw)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def by_size(files: list[Path]) -> list[Path]:
    return sorted(files, key=lambda f: (-f.stat().st_size, f.name))


def speech_stream(path: Path, readers: dict[str, list[Path]], order: list[tuple[str, int]], seed: int = 1) -> list[Turn]:
    """Write a wav of real speech: ``(reader, k)`` is that reader's k-th largest recording (0-2 are the enrollment
    files, so streams use k >= 3). Returns the ground-truth turns."""
    parts = [(name, load_audio(by_size(readers[name])[k])) for name, k in order]
    audio, turns = compose(parts, np.random.default_rng(seed), gap_s=(0.5, 0.8))
    write_wav(path, audio)
    return turns


def upload(
    client: httpx.Client, name: str, files: list[Path], note: str = "LibriSpeech test-other, public domain"
) -> httpx.Response:
    handles = [("files", (f.name, f.read_bytes(), "audio/flac")) for f in files]
    return client.post("/api/speakers", data={"name": name, "note": note}, files=handles)


class Feed:
    """Reads ``GET /api/events`` in a thread and keeps every event."""

    def __init__(self, server: Server):
        self.events: list[tuple[str, dict | list]] = []  # type: ignore[type-arg]
        self._stop = threading.Event()
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(server,), daemon=True)
        self._thread.start()
        assert self.connected.wait(10), "the live feed did not connect"

    def _run(self, server: Server) -> None:
        with server.client(timeout=httpx.Timeout(5, read=None)) as client, client.stream("GET", "/api/events") as response:
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
            self.connected.set()
            kind = None
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:") and kind:
                    self.events.append((kind, json.loads(line[5:])))

    def wait_for(self, kind: str, timeout_s: float, where=lambda e: True) -> dict:  # type: ignore[no-untyped-def,type-arg]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for k, e in list(self.events):
                if k == kind and where(e):
                    return e  # type: ignore[return-value]
            time.sleep(0.05)
        raise AssertionError(f"no {kind!r} event within {timeout_s} s; got {[k for k, _ in self.events][-20:]}")

    def close(self) -> None:
        self._stop.set()


# -- fixtures -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, data: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("service")
    allow = root / "allowed"
    allow.mkdir()
    on_postgres = os.environ.get("VOXWATCH_TEST_DB") == "postgresql"
    db = request.getfixturevalue("postgres").create_database() if on_postgres else root / "voxwatch.db"
    # --allow-private-urls: the network-stream test serves its radio on 127.0.0.1
    srv = Server(db, allow, make_token(db), "--max-upload-mb", "2", "--allow-private-urls").start()
    yield srv
    srv.stop()
    if on_postgres:
        request.getfixturevalue("postgres").drop_database(db)


@pytest.fixture(scope="module")
def enrolled(server: Server, readers: dict[str, list[Path]]) -> dict:  # type: ignore[type-arg]
    """TARGET enrolled through a multipart upload of its three largest recordings."""
    with server.client() as c:
        response = upload(c, TARGET, by_size(readers[TARGET])[:3])
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


# -- tests --------------------------------------------------------------------------------------------------------


def test_requests_without_a_valid_token_get_401_and_are_audited(server: Server) -> None:
    with server.client(token=None) as anonymous, server.client(token="vxw_not-a-real-token") as wrong:
        r = anonymous.get("/api/speakers")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert wrong.post("/api/streams", json={"source": "x.wav"}).status_code == 401
        assert anonymous.get("/api/events").status_code == 401
        assert anonymous.get("/api/alerts/x/audio").status_code == 401
        # the dashboard and the API description load without a token; the data behind them does not
        assert anonymous.get("/").status_code == 200 and "voxwatch" in anonymous.get("/").text
        assert "/api/streams" in anonymous.get("/openapi.json").json()["paths"]
    with server.client() as c:
        status = c.get("/api/status").json()
        assert status["actor"] == "token:tester"
        refused = [a for a in c.get("/api/audit", params={"limit": 1000}).json() if a["action"] == "unauthorized"]
    targets = {a["target"] for a in refused}
    assert {"GET /api/speakers", "POST /api/streams", "GET /api/events", "GET /api/alerts/x/audio"} <= targets
    assert any("unknown token" in a["detail"] for a in refused) and any("no bearer token" in a["detail"] for a in refused)


def test_enrollment_by_upload_is_stored_with_quality_and_audited(server: Server, enrolled: dict) -> None:  # type: ignore[type-arg]
    assert enrolled["name"] == TARGET and enrolled["enrollments"] == 3 and len(enrolled["added"]) == 3
    assert enrolled["quality"]["speech_s"] > 20 and enrolled["quality"]["grade"] in ("good", "fair")
    assert all(e["note"].startswith("LibriSpeech") for e in enrolled["added"])
    with server.client() as c:
        listed = {s["name"]: s for s in c.get("/api/speakers").json()}
        assert listed[TARGET]["quality"] == enrolled["quality"]
        audit = c.get("/api/audit").json()
    assert sum(1 for a in audit if a["action"] == "enroll" and a["target"] == TARGET and a["actor"] == "token:tester") == 3


def test_bad_uploads_get_a_clear_4xx_and_store_nothing(server: Server, readers: dict[str, list[Path]], tmp_path: Path) -> None:
    good = by_size(readers[OTHER])[0]
    with server.client() as c:
        before = c.get("/api/speakers").json()
        cases = {
            "text renamed .wav": [("files", ("notes.wav", b"this is not audio at all\n" * 200, "audio/wav"))],
            "empty file": [("files", ("empty.flac", b"", "audio/flac"))],
            "not an audio name": [("files", ("script.sh", b"#!/bin/sh\necho hi\n", "text/plain"))],
            "one good, one bad": [
                ("files", (good.name, good.read_bytes(), "audio/flac")),
                ("files", ("bad.mp3", os.urandom(4000), "audio/mpeg")),
            ],
        }
        for label, files in cases.items():
            r = c.post("/api/speakers", data={"name": "mallory"}, files=files)
            assert r.status_code == 422, (label, r.status_code, r.text)
            assert r.json()["detail"], label
        # above the 1 MB JSON limit but within --max-upload-mb: judged by content (422), not by size
        mid = c.post(
            "/api/speakers", data={"name": "mallory"}, files=[("files", ("mid.wav", os.urandom(1536 << 10), "audio/wav"))]
        )
        assert mid.status_code == 422, mid.text
        big = c.post("/api/speakers", data={"name": "mallory"}, files=[("files", ("big.wav", os.urandom(3 << 20), "audio/wav"))])
        assert big.status_code == 413, big.text
        assert c.post("/api/speakers", data={"name": "mallory"}).status_code == 422  # no files at all
        assert c.get("/api/speakers").json() == before
        assert c.get("/api/speakers/mallory").status_code == 404
        assert not [a for a in c.get("/api/audit").json() if a["action"] == "enroll" and a["target"] == "mallory"]


def test_path_arguments_cannot_escape_the_allowed_directories(server: Server, enrolled: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    outside = write_wav(tmp_path / "outside.wav", np.zeros(RATE_HZ, np.float32))
    link = server.allow / "link.wav"
    if not link.exists():
        link.symlink_to(outside)
    (server.allow / "sub").mkdir(exist_ok=True)
    with server.client() as c:
        for source in [
            "../outside.wav",
            str(outside),
            "sub/../../outside.wav",
            "link.wav",
            "file:///etc/passwd",
            "subfile:///etc/passwd",
        ]:
            r = c.post("/api/streams", json={"source": source})
            assert r.status_code == 403, (source, r.status_code, r.text)
        assert c.post("/api/search", json={"paths": [str(tmp_path)]}).status_code == 403
        assert c.post("/api/search", json={"paths": ["."]}).status_code == 403  # the allowed folder holds a symlink out
        assert c.post("/api/streams", json={"source": "missing.wav"}).status_code == 422
        assert (
            c.post("/api/streams", json={"source": "concat:/etc/passwd|x.wav"}).status_code == 422
        )  # a file name here, never a protocol
        assert c.post("/api/streams", json={"source": "x.wav", "speakers": ["nobody"]}).status_code == 404
        assert not c.get("/api/streams").json()
        refused = [a for a in c.get("/api/audit").json() if a["action"] == "forbidden"]
        assert len(refused) >= 8 and all(a["actor"] == "token:tester" for a in refused)
        assert any("../outside.wav" in a["detail"] for a in refused)
    link.unlink()


def test_network_stream_that_drops_reconnects_and_reports_drops(
    server: Server, enrolled: dict, readers: dict[str, list[Path]], tmp_path: Path
) -> None:  # type: ignore[type-arg]
    """An HTTP radio that plays one programme per connection, twice, then goes off the air (404): the watch
    reconnects with backoff after each drop, counts the drops, and gives up after ``reconnects`` failed attempts."""
    speech_stream(tmp_path / "live.wav", readers, [(TARGET, 5)])
    with http_radio((tmp_path / "live.wav").read_bytes(), "audio/wav", plays=2) as (url, connections), server.client() as c:
        stream = c.post("/api/streams", json={"source": url, "reconnects": 2, "speakers": [TARGET]})
        assert stream.status_code == 201, stream.text
        deadline = time.monotonic() + 30
        while (status := next(s for s in c.get("/api/streams").json() if s["source"] == url))[
            "state"
        ] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
        # two programmes ended (drops 1, 2), the first failed reconnection (drop 3), the second failure is final
        assert status["state"] == "failed" and status["drops"] == 3 and "404" in status["error"], status
        assert len(connections) == 4 and connections[3] - connections[2] >= 1.9  # backoff doubled: 1 s, then 2 s
        assert status["audio_s"] > 1.9 * len(load_audio(tmp_path / "live.wav")) / RATE_HZ  # both plays, one clock
        alerts = c.get("/api/alerts", params={"stream": url}).json()
        assert alerts and all(a["speaker"] == TARGET for a in alerts)
        assert c.delete(f"/api/streams/{stream.json()['id']}").status_code == 204


def test_stream_alert_arrives_live_with_audio_then_ack_and_forget(
    server: Server, enrolled: dict, readers: dict[str, list[Path]]
) -> None:  # type: ignore[type-arg]
    turns = speech_stream(server.allow / "channel1.wav", readers, [(TARGET, 3), (OTHER, 0), (TARGET, 4)])
    feed = Feed(server)
    with server.client() as c:
        t0 = time.monotonic()
        stream = c.post("/api/streams", json={"source": "channel1.wav"})
        assert stream.status_code == 201, stream.text
        stream_id = stream.json()["id"]
        assert c.post("/api/streams", json={"source": "channel1.wav"}).status_code == 409  # already watched
        alert = feed.wait_for("alert", 30, lambda e: e["speaker"] == TARGET)
        latency = time.monotonic() - t0
        first = turns[0]
        # the alert belongs to the target's first turn and came while it was speaking, in real time
        assert first.start_s - 0.5 <= alert["segment_start_s"] <= first.end_s and alert["stream_time_s"] <= first.end_s + 1.0
        assert latency < alert["stream_time_s"] + 5, (
            f"alert took {latency:.1f} s of wall time for {alert['stream_time_s']} s of audio"
        )
        assert alert["stream"] == stream_id and alert["time_to_alert_s"] >= 0
        listed = c.get("/api/streams").json()
        assert listed[0]["id"] == stream_id and listed[0]["state"] == "running" and listed[0]["audio_s"] > 0

        audio = c.get(f"/api/alerts/{alert['alert_id']}/audio")
        assert audio.status_code == 200 and audio.headers["content-type"] in ("audio/ogg", "audio/wav")
        assert audio.content[:4] in (b"OggS", b"RIFF")
        clip = server.allow / "clip.ogg"
        clip.write_bytes(audio.content)
        assert len(load_audio(clip)) >= RATE_HZ  # at least a second of the turn, decodable
        clip.unlink()

        ack = c.post(f"/api/alerts/{alert['alert_id']}/ack")
        assert ack.status_code == 200 and ack.json()["acknowledged_by"] == "token:tester"
        assert c.post(f"/api/alerts/{alert['alert_id']}/ack").json()["acknowledged_at"] == ack.json()["acknowledged_at"]
        feed.wait_for("ack", 5, lambda e: e["alert_id"] == alert["alert_id"])
        assert [a["alert_id"] for a in c.get("/api/alerts", params={"speaker": TARGET, "stream": stream_id}).json()][-1] == alert[
            "alert_id"
        ]
        assert c.get("/api/alerts", params={"speaker": "nobody"}).json() == []
        assert c.get("/api/alerts", params={"since": "2999-01-01T00:00:00Z"}).json() == []
        assert c.get("/api/alerts", params={"until": "2000-01-01T00:00:00Z"}).json() == []

        # when the turn has ended, its transcript follows the alert on the feed and in the alert itself
        said = feed.wait_for("transcript", 90, lambda e: e["alert_id"] == alert["alert_id"])
        order = [(k, e.get("alert_id")) for k, e in feed.events if isinstance(e, dict)]
        assert order.index(("alert", alert["alert_id"])) < order.index(("transcript", alert["alert_id"]))
        assert said["status"] == "done" and said["language"] == "en" and said["stream"] == stream_id, said
        assert said["start_s"] == alert["segment_start_s"] and said["segments"], said
        assert c.get(f"/api/alerts/{alert['alert_id']}").json()["transcript"]["text"] == said["text"]
        word = max(said["text"].split(), key=len).strip(".,;:!?\"'")
        assert alert["alert_id"] in [a["alert_id"] for a in c.get("/api/alerts", params={"text": word}).json()]
        assert c.get("/api/alerts", params={"text": "zyzzyva"}).json() == []
        assert c.get("/api/alerts", params={"language": "ar"}).json() == []
        assert c.get("/api/status").json()["transcripts"]["done"] >= 1

        assert c.delete(f"/api/streams/{stream_id}").status_code == 204
        assert c.get("/api/streams").json() == []
        forgotten = c.delete(f"/api/speakers/{TARGET}").json()
        assert forgotten["alerts"] >= 1 and forgotten["snippets"] >= 1
        assert c.get(f"/api/alerts/{alert['alert_id']}").status_code == 404
        assert c.get(f"/api/alerts/{alert['alert_id']}/audio").status_code == 404
        assert c.get("/api/alerts").json() == []
        audit = c.get("/api/audit", params={"limit": 10000}).json()
        assert not [a for a in audit if TARGET in a["target"].split(",") or f"{TARGET}-" in a["detail"]]
    feed.close()
    store = Store(server.db)  # straight from the database: nothing of the voice is left behind
    try:
        for table in ("alerts", "snippets", "acknowledgements", "deliveries", "transcripts"):
            assert store._query(f"SELECT COUNT(*) FROM {table}") == [(0,)], table
        if store._dialect.name == "sqlite":  # FTS5 keeps the words apart from the rows (PostgreSQL: in the rows)
            assert store._query("SELECT COUNT(*) FROM transcript_words WHERE transcript_words MATCH ?", (f'"{word}"',)) == [(0,)]
    finally:
        store.close()
