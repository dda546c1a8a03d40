"""The dashboard in a real browser: Debian's chromium driven by Playwright (never a downloaded browser) against a
running ``voxwatch serve``. Sign in with a token, enroll a voice through the page, start a stream of real speech,
see its alert arrive live, play and acknowledge it, search a recording, and take screenshots (into
$VOXWATCH_SCREENSHOTS when set, e.g. docs/, otherwise a temporary folder)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_service import OTHER, TARGET, Server, by_size, make_token, speech_stream, upload

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def service(tmp_path: Path, data: Path) -> Iterator[Server]:
    allow = tmp_path / "recordings"
    allow.mkdir()
    db = tmp_path / "voxwatch.db"
    srv = Server(db, allow, make_token(db, "operator")).start()
    yield srv
    srv.stop()


def test_operator_enrolls_watches_sees_alert_live_plays_and_acknowledges(
    browser, service: Server, readers: dict[str, list[Path]], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    speech_stream(service.allow / "studio-a.wav", readers, [(TARGET, 3), (OTHER, 4), (TARGET, 4)])
    speech_stream(service.allow / "studio-b.wav", readers, [(OTHER, 3), (TARGET, 5)], seed=2)
    with service.client() as c:
        assert upload(c, OTHER, by_size(readers[OTHER])[:3], note="API upload").status_code == 201
    uploads = []
    for f in by_size(readers[TARGET])[:3]:  # the file chooser wants real files
        uploads.append(tmp_path / f.name)
        shutil.copy(f, uploads[-1])

    page = browser.new_page(viewport={"width": 1360, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(service.url + "/")

    # sign in: a wrong token is refused, the right one is kept for this tab
    page.fill("#token", "vxw_wrong")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:has-text('refused')")
    page.fill("#token", service.token)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#feed.on", timeout=10_000)
    assert page.inner_text("#who") == "operator (admin)"

    # enroll through the page
    page.click("nav a[data-tab=voices]")
    page.fill("#enroll-name", TARGET)
    page.fill("#enroll-note", "LibriSpeech test-other (public domain), enrolled in the browser")
    page.set_input_files("#enroll-files", [str(f) for f in uploads])
    page.click("#enroll-form button[type=submit]")
    page.wait_for_selector(f"#enroll-status:has-text('Enrolled {TARGET}')", timeout=60_000)
    page.wait_for_selector(f"#voices tr[data-voice='{TARGET}'] .grade")
    page.wait_for_selector(f"#voices tr[data-voice='{OTHER}'] .grade")

    # watch two studios; the alert rows appear without reloading
    page.click("nav a[data-tab=live]")
    page.fill("#stream-source", "studio-a.wav")
    page.click("#stream-form button[type=submit]")
    page.wait_for_selector("#streams td.state-running", timeout=10_000)
    with service.client() as c:
        assert c.post("/api/streams", json={"source": "studio-b.wav"}).status_code == 201
    target_row = page.wait_for_selector(f"#alerts tbody tr:has(td.speaker:text-is('{TARGET}'))", timeout=30_000)
    page.wait_for_selector(f"#alerts tbody tr:has(td.speaker:text-is('{OTHER}'))", timeout=30_000)
    alert_id = target_row.get_attribute("data-alert-id")
    assert alert_id and "studio-a.wav" in target_row.inner_text()

    # play: the snippet is fetched with the token and loads in an audio element
    target_row.query_selector("button.play").click()
    page.wait_for_function(
        "id => { const a = document.querySelector(`tr[data-alert-id='${id}'] audio.snippet`); return a && a.duration > 0.5; }",
        arg=alert_id,
        timeout=15_000,
    )
    # the transcript and its language arrive beside the alert once the turn has ended, and the words filter finds it
    said = page.wait_for_selector(f"tr[data-alert-id='{alert_id}'] td.said .text", timeout=90_000)
    assert page.inner_text(f"tr[data-alert-id='{alert_id}'] td.said .language").lower() == "en"
    word = max(said.inner_text().split(), key=len).strip(".,;:!?\"'")
    row = f"#alerts tbody tr[data-alert-id='{alert_id}']"
    page.fill("#filter-text", "zyzzyva")  # no alert said that: the list empties
    page.click("#alert-filter button[type=submit]")
    page.wait_for_selector(row, state="detached", timeout=10_000)
    page.fill("#filter-text", word)
    page.click("#alert-filter button[type=submit]")
    page.wait_for_selector(row, timeout=10_000)
    page.fill("#filter-text", "")
    page.click("#alert-filter button[type=submit]")
    page.wait_for_selector(f"#alerts tbody tr:has(td.speaker:text-is('{OTHER}'))", timeout=10_000)
    # acknowledge
    page.locator(f"{row} button.ack-button").click()
    page.wait_for_selector(f"tr[data-alert-id='{alert_id}'] .acked-by:has-text('operator')", timeout=10_000)
    with service.client() as c:
        assert c.get(f"/api/alerts/{alert_id}").json()["acknowledged_by"] == "token:operator"
    shots = Path(os.environ.get("VOXWATCH_SCREENSHOTS", tmp_path))
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / "dashboard.png"), full_page=True)
    assert (shots / "dashboard.png").read_bytes()[:4] == b"\x89PNG"

    # search an archive recording: one timeline per recording, a lane per voice found
    page.click("nav a[data-tab=search]")
    page.fill("#search-paths", "studio-b.wav")
    page.click("#search-form button[type=submit]")
    page.wait_for_selector(f"#timeline .recording .who:text-is('{TARGET}')", timeout=60_000)
    page.wait_for_selector(f"#timeline .recording .who:text-is('{OTHER}')")
    assert page.locator("#timeline .seg.hit").count() >= 2
    page.screenshot(path=str(shots / "dashboard-search.png"), full_page=True)
    assert not errors, errors
