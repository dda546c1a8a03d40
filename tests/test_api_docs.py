"""The HTTP API describes itself and resumes its live feed, fast: the OpenAPI document (typed answers, the bearer
scheme, the webhook), /docs without network, SSE event ids with Last-Event-ID, and 404 for unknown resources."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient

from voxwatch.api import create_app
from voxwatch.auth import Role, create_token
from voxwatch.feed import Feed
from voxwatch.service import Service, ServiceOptions
from voxwatch.testing import tone_engine

UNTYPED = {("delete", "/api/streams/{stream_id}"), ("delete", "/api/webhooks/{webhook_id}")}  # 204: no body


def app(tmp_path: Path) -> tuple[Service, TestClient, str]:
    engine = tone_engine(tmp_path)
    token = create_token(engine.store, "root", "tester", Role.ADMIN)
    service = Service(engine, ServiceOptions())
    return service, TestClient(create_app(service)), token


def test_openapi_types_every_answer_and_declares_the_bearer_scheme_and_the_webhook(tmp_path: Path) -> None:
    _, client, _ = app(tmp_path)
    with client:
        doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["token"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["token"]["description"],
    }
    operations = [(m, p, op) for p, item in doc["paths"].items() for m, op in item.items()]
    assert len(operations) >= 20
    for method, path, op in operations:
        assert op["security"] == [{"token": []}], (method, path)
        ok = next(code for code in op["responses"] if code.startswith("2"))
        if (method, path) in UNTYPED:
            continue
        content = op["responses"][ok]["content"]
        if path in ("/api/events", "/api/alerts/{alert_id}/audio"):
            assert set(content) <= {"text/event-stream", "audio/ogg", "audio/wav", "application/json"}, path
            continue
        schema = content["application/json"]["schema"]
        assert "$ref" in schema or "$ref" in schema.get("items", {}), (method, path, schema)
    schemas = doc["components"]["schemas"]
    alert_view = schemas["AlertView"]["properties"]
    assert {"alert_id", "speaker", "stream_time_s", "wall_time", "acknowledged_by", "audio_url", "time_to_alert_s"} <= set(
        alert_view
    )
    assert schemas["Alert"]["description"].startswith("Raised while a watched voice is still speaking")
    assert set(schemas["TokenInfo"]["properties"]["role"]["enum"]) == {"viewer", "operator", "admin"}

    hook = doc["webhooks"]["alert"]["post"]
    assert hook["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/WebhookPayload"}
    headers = {p["name"]: p for p in hook["parameters"] if p["in"] == "header"}
    assert set(headers) == {"idempotency-key", "x-voxwatch-signature"}
    assert "HMAC-SHA256" in headers["x-voxwatch-signature"]["description"] and "hmac.compare_digest" in hook["description"]
    events = doc["paths"]["/api/events"]["get"]
    assert "Last-Event-ID" in events["description"] and "last-event-id" in {p["name"] for p in events["parameters"]}


def test_docs_page_loads_its_assets_from_the_service_itself(tmp_path: Path) -> None:
    _, client, _ = app(tmp_path)
    with client:
        page = client.get("/docs")
        assert page.status_code == 200
        assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
        assert assets and all(a.startswith("/") for a in assets), assets  # nothing from a CDN
        for asset in assets:
            got = client.get(asset)
            assert got.status_code == 200 and len(got.content) > 1000, asset
        bundle = client.get(next(a for a in assets if a.endswith("swagger-ui-bundle.js"))).text
        assert re.search(r'"5\.\d+\.\d+"', bundle), "Swagger UI 5 or later is needed to show OpenAPI 3.1"
        assert "/openapi.json" in page.text
        assert client.get("/redoc").status_code == 200


def test_unknown_resources_are_404(tmp_path: Path) -> None:
    _, client, token = app(tmp_path)
    headers = {"Authorization": f"Bearer {token}"}
    with client:
        for method, path in [
            ("DELETE", "/api/webhooks/41"),
            ("DELETE", "/api/streams/nope"),
            ("GET", "/api/alerts/nope"),
            ("GET", "/api/alerts/nope/audio"),
            ("POST", "/api/alerts/nope/ack"),
            ("GET", "/api/search/nope"),
            ("GET", "/api/speakers/nobody"),
            ("DELETE", "/api/speakers/nobody"),
        ]:
            r = client.request(method, path, headers=headers)
            assert r.status_code == 404 and r.json()["detail"], (method, path, r.text)


def ids_and_kinds(text: str) -> list[tuple[str | None, str]]:
    out = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            out.append((fields.get("id"), fields["event"]))
    return out


def test_feed_replays_what_a_client_missed_after_its_last_event_id() -> None:
    async def run() -> None:
        feed = Feed(backlog=3)
        for n in range(5):
            feed.publish("detection", {"n": n})
        entry, fresh = feed.subscribe()  # a new client starts with what comes next
        assert fresh == []
        feed.unsubscribe(entry)
        run_id = feed._history[0][1].split("\n")[0].removeprefix("id: ").split("-")[0]
        assert [n for n, _ in feed._history] == [3, 4, 5]  # the backlog keeps the last three
        _, missed = feed.subscribe(f"{run_id}-3")
        assert [i for i, _ in ids_and_kinds("".join(missed))] == [f"{run_id}-4", f"{run_id}-5"]
        _, none = feed.subscribe(f"{run_id}-5")
        assert none == []
        for stale in (f"{run_id}-1", "otherrun-4", f"{run_id}-9", "garbage"):  # too old, another run, unknown
            _, got = feed.subscribe(stale)
            assert [k for _, k in ids_and_kinds("".join(got))] == ["resync"], stale
        loop_entry, _ = feed.subscribe()
        feed.publish("ack", {"alert_id": "a"})
        text = await asyncio.wait_for(loop_entry[1].get(), 1)
        assert ids_and_kinds(text or "") == [(f"{run_id}-6", "ack")]

    asyncio.run(run())


def test_events_endpoint_sends_ids_and_resumes_from_last_event_id(tmp_path: Path) -> None:
    service, client, token = app(tmp_path)

    def close_when_subscribed() -> None:  # ends the response (the feed closes), once the request has subscribed
        deadline = time.monotonic() + 10
        while not service.feed._subscribers and time.monotonic() < deadline:
            time.sleep(0.02)
        service.feed.close()

    with client:
        for n in range(3):
            service.feed.publish("speakers", {"enrolled": f"v{n}"})
        first_id = service.feed._history[0][1].split("\n")[0].removeprefix("id: ")
        closer = threading.Thread(target=close_when_subscribed)
        closer.start()
        response = client.get("/api/events", headers={"Authorization": f"Bearer {token}", "Last-Event-ID": first_id})
        closer.join()
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = ids_and_kinds(response.text)
    run = first_id.split("-")[0]
    assert events[:2] == [(f"{run}-2", "speakers"), (f"{run}-3", "speakers")], events  # the two it missed, in order
    assert ("streams" in [k for _, k in events]) and all(i is None for i, k in events if k == "streams")
