"""Webhook delivery under faults, end to end on real speech: a receiver that is down and then comes up, and a
service killed with SIGKILL mid-stream and restarted on the same database. Each alert, and then its transcript,
must reach each webhook exactly once (by idempotency key), in commit order, with a valid signature."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from test_service import OTHER, TARGET, Server, by_size, free_port, make_token, speech_stream, upload

from voxwatch.delivery import DeliveryOptions, body_of, sign

SECRET = "correct horse battery staple"


class Receiver:
    """A webhook receiver on a fixed port that can be down (connection refused) or up; ``answer(path, n)`` picks the
    status of the n-th request (0-based) to ``path``. Records every request."""

    def __init__(self, port: int, answer: Callable[[str, int], int] = lambda path, n: 200):
        self.port = port
        self.answer = answer
        self.requests: list[dict] = []  # type: ignore[type-arg]
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._lock:
                    n = sum(1 for r in receiver.requests if r["path"] == self.path)
                    status = receiver.answer(self.path, n)
                    receiver.requests.append(
                        {
                            "path": self.path,
                            "key": self.headers["Idempotency-Key"],
                            "status": status,
                            "body": json.loads(body),
                            "signature": self.headers.get("X-Voxwatch-Signature"),
                            "raw": body,
                        }
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def accepted(self, path: str) -> list[str]:
        """Idempotency keys answered with 2xx, in arrival order."""
        with self._lock:
            return [r["key"] for r in self.requests if r["path"] == path and 200 <= r["status"] < 300]

    def posts(self, path: str, key: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r["path"] == path and r["key"] == key)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def committed(c: httpx.Client) -> list[dict]:  # type: ignore[type-arg]
    """Alerts in commit order."""
    return list(reversed(c.get("/api/alerts").json()))


def alert_keys(keys: list[str]) -> list[str]:
    """The alerts' idempotency keys among delivered keys (a transcript's is ``<alert_id>:transcript``)."""
    return [k for k in keys if not k.endswith(":transcript")]


def follows_its_alert(keys: list[str], alert_id: str) -> bool:
    """The alert's transcript was delivered once, after the alert."""
    return keys.count(f"{alert_id}:transcript") == 1 and keys.index(alert_id) < keys.index(f"{alert_id}:transcript")


@pytest.fixture
def service(tmp_path: Path, data: Path, readers: dict[str, list[Path]], suite_db: str | Path) -> Iterator[Server]:
    """A running service with TARGET and OTHER enrolled through the API."""
    allow = tmp_path / "allowed"
    allow.mkdir()
    db = suite_db
    srv = Server(db, allow, make_token(db), "--allow-private-urls").start()  # the receivers listen on 127.0.0.1
    with srv.client() as c:
        for name in (TARGET, OTHER):
            assert upload(c, name, by_size(readers[name])[:3]).status_code == 201
    yield srv
    srv.stop()


def test_backoff_doubles_up_to_the_cap() -> None:
    options = DeliveryOptions(first_backoff_s=1, max_backoff_s=60)
    assert [options.backoff_s(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    body = body_of(json.dumps({"alert_id": "a1", "speaker": "x"}))
    assert sign("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


def test_receiver_down_then_up_gets_every_alert_once_in_order(service: Server, readers: dict[str, list[Path]]) -> None:
    receiver = Receiver(free_port())  # nothing listens there yet: connection refused
    speech_stream(service.allow / "archive-feed.wav", readers, [(TARGET, 3), (OTHER, 3), (TARGET, 4), (OTHER, 4)])
    with service.client() as c:
        everything = c.post("/api/webhooks", json={"url": receiver.url("/all"), "secret": SECRET}).json()
        only_target = c.post("/api/webhooks", json={"url": receiver.url("/target"), "speakers": [TARGET]}).json()
        assert everything["signed"] and not only_target["signed"] and "secret" not in everything
        assert c.post("/api/webhooks", json={"url": "ftp://example.invalid/x"}).status_code == 400
        assert c.post("/api/streams", json={"source": "archive-feed.wav", "realtime": False}).status_code == 201
        wait_until(lambda: c.get("/api/streams").json()[0]["state"] == "ended", 60, "the stream to end")
        alerts = committed(c)
        assert len(alerts) >= 3 and {a["speaker"] for a in alerts} == {TARGET, OTHER}

        def retrying() -> bool:
            hooks = {w["id"]: w["deliveries"] for w in c.get("/api/webhooks").json()}
            return all(h.get("head_attempts", 0) >= 2 and "Connect" in (h.get("last_error") or "") for h in hooks.values())

        wait_until(retrying, 20, "both webhooks to retry against the refused connection")
        assert receiver.requests == []

        receiver.up()
        try:
            ids = [a["alert_id"] for a in alerts]
            target_ids = [a["alert_id"] for a in alerts if a["speaker"] == TARGET]
            wait_until(
                lambda: (
                    len(receiver.accepted("/all")) == 2 * len(ids) and len(receiver.accepted("/target")) == 2 * len(target_ids)
                ),
                120,
                "every alert and its transcript delivered after the receiver came up",
            )
            time.sleep(1.0)  # nothing more may follow
            everything, target = receiver.accepted("/all"), receiver.accepted("/target")
            assert alert_keys(everything) == ids and alert_keys(target) == target_ids
            assert all(follows_its_alert(everything, i) for i in ids) and all(follows_its_alert(target, i) for i in target_ids)
            for r in receiver.requests:
                event = r["body"]["event"]
                assert r["key"] == r["body"][event]["alert_id"] + ("" if event == "alert" else ":transcript")
                if r["path"] == "/all":
                    assert r["signature"] == "sha256=" + hmac.new(SECRET.encode(), r["raw"], hashlib.sha256).hexdigest()
                else:
                    assert r["signature"] is None and r["body"][event]["speaker"] == TARGET
            counts = {w["url"]: w["deliveries"] for w in c.get("/api/webhooks").json()}
            assert counts[receiver.url("/all")]["delivered"] == 2 * len(ids) and "pending" not in counts[receiver.url("/all")]
            assert counts[receiver.url("/target")].get("filtered") == 2 * (len(ids) - len(target_ids))
        finally:
            receiver.down()


def test_sigkill_mid_stream_then_restart_loses_nothing_and_resends_nothing(
    service: Server, readers: dict[str, list[Path]]
) -> None:
    healed = threading.Event()
    # The receiver takes the first alert, then answers 503 until it is "healed": at the kill, committed alerts wait.
    receiver = Receiver(free_port(), answer=lambda path, n: 200 if n == 0 or healed.is_set() else 503)
    receiver.up()
    speech_stream(service.allow / "ch1.wav", readers, [(TARGET, 3), (OTHER, 4), (TARGET, 5)], seed=2)
    speech_stream(service.allow / "ch2.wav", readers, [(OTHER, 3), (TARGET, 4), (OTHER, 5)], seed=3)
    try:
        with service.client() as c:
            assert c.post("/api/webhooks", json={"url": receiver.url("/hook"), "secret": SECRET}).status_code == 201
            for name in ("ch1.wav", "ch2.wav"):
                assert c.post("/api/streams", json={"source": name}).status_code == 201  # real time
            wait_until(
                lambda: len(receiver.accepted("/hook")) == 1 and len(c.get("/api/alerts").json()) >= 2,
                30,
                "two alerts, one delivered",
            )
            wait_until(lambda: len(receiver.requests) >= 2, 10, "a refused delivery")
            assert all(s["state"] == "running" for s in c.get("/api/streams").json())  # mid-stream
            before = {a["alert_id"] for a in c.get("/api/alerts").json()}
        service.kill()
        first = receiver.accepted("/hook")[0]

        service.start()
        healed.set()
        with service.client() as c:
            resumed = c.get("/api/streams").json()  # the streams resume (test_resume.py); stopped here, so the
            assert sorted(Path(s["source"]).name for s in resumed) == ["ch1.wav", "ch2.wav"]  # alerts stay still
            for s in resumed:
                assert c.delete(f"/api/streams/{s['id']}").status_code == 204
            after = committed(c)
            ids = [a["alert_id"] for a in after]
            assert before <= set(ids)  # no committed alert lost
            transcribed = [a["alert_id"] for a in after if a["transcript"]]  # committed before the kill
            wait_until(
                lambda: (
                    alert_keys(receiver.accepted("/hook")) == ids
                    and all(follows_its_alert(receiver.accepted("/hook"), i) for i in transcribed)
                ),
                60,
                "every committed alert and transcript delivered after the restart",
            )
            time.sleep(1.0)
        accepted = receiver.accepted("/hook")
        assert alert_keys(accepted) == ids  # in commit order, each once
        assert all(follows_its_alert(accepted, i) for i in transcribed)
        assert receiver.posts("/hook", first) == 1  # acknowledged before the kill: never sent again
        for r in receiver.requests:
            assert r["signature"] == sign(SECRET, r["raw"])
    finally:
        receiver.down()
