"""Fast tests on the committed tone recording (tests/data/tones.flac) with the shipped test doubles: the spotter, the
watch, the store, the service and the CLI, in seconds and without ../shared/data or model files."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from voxwatch import FileSource, WatchSummary, load_audio
from voxwatch.api import create_app
from voxwatch.audio import RATE_HZ, write_wav
from voxwatch.auth import Role, create_token
from voxwatch.cli import main
from voxwatch.engine import Engine
from voxwatch.records import Alert, AudioChunk, Detection, Segment
from voxwatch.service import Service, ServiceOptions
from voxwatch.streams import Multiplexer
from voxwatch.testing import ArraySource, EnergyVad, ToneBackend, compose_tones, tone_engine, tone_voice
from voxwatch.transcripts import TranscriptOptions
from voxwatch.watch import Watch

DATA = Path(__file__).resolve().parent / "data"
RECORDING = DATA / "tones.flac"
TRUTH = json.loads((DATA / "tones.json").read_text())


@pytest.fixture
def tones(tmp_path: Path) -> Engine:
    """A tone engine with the recording's two enrolled voices."""
    engine = tone_engine(tmp_path)
    for i, name in enumerate(TRUTH["enrolled"]):
        engine.enroll(
            name, [write_wav(tmp_path / f"{name}.wav", tone_voice(TRUTH["voices"][name], 5.0, seed=100 + i))], note="tone"
        )
    yield engine
    engine.close()


def assert_golden(alerts: list[Alert], source: str) -> None:
    """The alerts recorded in tones.json: same voices in the same order, within 0.1 s."""
    golden = TRUTH["alerts"]
    assert [a.speaker for a in alerts] == [g["speaker"] for g in golden], alerts
    for a, g in zip(alerts, golden):
        assert a.source == source
        assert abs(a.segment_start_s - g["segment_start_s"]) <= 0.1 and abs(a.stream_time_s - g["stream_time_s"]) <= 0.1, (a, g)


# -- the doubles --------------------------------------------------------------------------------------------------


def test_tone_backend_tells_tones_apart_and_is_deterministic() -> None:
    backend = ToneBackend()
    windows = np.stack([tone_voice(f, 1.0, seed=s) for f, s in [(300, 1), (300, 2), (1200, 3)]])
    e = backend.embed(windows)
    assert e.shape == (3, backend.dimension) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    assert e[0] @ e[1] > 0.95 and e[0] @ e[2] < 0.1
    assert np.array_equal(e, backend.embed(windows))


def test_array_source_blocks_and_energy_vad() -> None:
    audio = compose_tones([(None, 1.0), (300.0, 1.0)])
    source = ArraySource("a", audio, block_s=0.3)
    assert np.array_equal(np.concatenate(list(source.blocks())), audio)
    chunks = list(source.chunks())
    assert [c.start_s for c in chunks[:3]] == [0.0, 0.25, 0.5] and sum(len(c.samples) for c in chunks) == len(audio)
    frames = audio[: len(audio) // 512 * 512].reshape(-1, 512)
    probs = EnergyVad().probabilities(frames, [None] * len(frames))  # type: ignore[list-item]
    assert probs[: RATE_HZ // 512 - 1].max() < 0.01 and probs[RATE_HZ // 512 + 1 :].min() > 0.99


# -- the spotter and the watch --------------------------------------------------------------------------------------


def test_spotter_alerts_the_enrolled_tones_of_the_recording(tones: Engine) -> None:
    spotter = tones.spotter(tones.watchlist())
    events = []
    for chunk in FileSource(str(RECORDING)).chunks():
        events += spotter.process([chunk])
    events += spotter.finish(str(RECORDING))
    assert_golden([e for e in events if isinstance(e, Alert)], str(RECORDING))
    segments = [e for e in events if isinstance(e, Segment)]
    truth = TRUTH["turns"]
    assert len(segments) == len(truth)
    for s, t in zip(segments, truth):
        assert abs(s.start_s - t["start_s"]) < 0.1 and abs(s.end_s - t["end_s"]) < 0.3 and s.consistency > 0.95
    detections = [e for e in events if isinstance(e, Detection)]
    assert [d.speaker for d in detections] == ["low", "high"]  # the stranger (mid) is never detected


def test_watch_commits_alerts_before_sinks_and_restricts_streams(tones: Engine) -> None:
    audio = load_audio(RECORDING)
    sink = WatchSummary()
    watch = Watch(tones, Multiplexer([]), [sink])
    watch.add(ArraySource("both", audio))
    watch.add(ArraySource("high only", audio), {"high"})
    watch.run()
    by_source = {name: [a.speaker for a in sink.alerts if a.source == name] for name in ("both", "high only")}
    assert by_source == {"both": ["low", "high"], "high only": ["high"]}
    assert [a.alert_id for a in sink.alerts] == [a.alert_id for a in tones.store.alerts()]
    assert tones.store.alerts(undelivered=True) == []
    assert sorted(s.source for s in sink.streams) == ["both", "high only"] and all(s.state == "ended" for s in sink.streams)
    assert watch.speech_s("both") is None  # ended streams keep no state


def test_watch_from_a_file_matches_the_golden_alerts(tones: Engine) -> None:
    summary = tones.watch([FileSource(str(RECORDING))])
    assert_golden(summary.alerts, str(RECORDING))


def test_analysis_and_search_on_the_recording(tones: Engine) -> None:
    result = tones.search([str(RECORDING)])
    turns = {t["speaker"]: t for t in TRUTH["turns"]}
    assert [d.speaker for d in result.detections] == ["low", "high"]
    for d in result.detections:
        assert abs(d.start_s - turns[d.speaker]["start_s"]) < 0.3 and abs(d.end_s - turns[d.speaker]["end_s"]) < 0.3, d
    again = tones.search()  # the whole index, from the store
    assert [(d.speaker, d.start_s) for d in again.detections] == [(d.speaker, d.start_s) for d in result.detections]


# -- the service ----------------------------------------------------------------------------------------------------


def test_service_enrolls_watches_alerts_and_forgets(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    shutil.copy(RECORDING, allowed / "tones.flac")
    engine = tone_engine(tmp_path)
    token = create_token(engine.store, "tester", "admin", Role.ADMIN)
    service = Service(engine, ServiceOptions(allow_dirs=(allowed,), snippet_after_s=1.0))
    with TestClient(create_app(service), headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/api/speakers", headers={"Authorization": "Bearer vxw_wrong"}).status_code == 401
        for i, name in enumerate(TRUTH["enrolled"]):
            wav = write_wav(tmp_path / f"{name}.wav", tone_voice(TRUTH["voices"][name], 5.0, seed=100 + i))
            r = client.post(
                "/api/speakers", data={"name": name, "note": "tone"}, files=[("files", (wav.name, wav.read_bytes(), "audio/wav"))]
            )
            assert r.status_code == 201, r.text
        assert client.post("/api/streams", json={"source": "../tones.flac"}).status_code == 403
        assert client.post("/api/streams", json={"source": "tones.flac", "speakers": ["nobody"]}).status_code == 404
        stream = client.post("/api/streams", json={"source": "tones.flac", "realtime": False})
        assert stream.status_code == 201, stream.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and client.get("/api/streams").json()[0]["state"] == "running":
            time.sleep(0.1)
        alerts = client.get("/api/alerts").json()[::-1]
        assert [a["speaker"] for a in alerts] == ["low", "high"] and all(a["stream"] == stream.json()["id"] for a in alerts)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not client.get(f"/api/alerts/{alerts[0]['alert_id']}").json()["audio_url"]:
            time.sleep(0.1)
        audio = client.get(f"/api/alerts/{alerts[0]['alert_id']}/audio")
        assert audio.status_code == 200 and audio.content[:4] in (b"OggS", b"RIFF")
        assert client.post(f"/api/alerts/{alerts[0]['alert_id']}/ack").json()["acknowledged_by"] == "token:tester"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not client.get(f"/api/alerts/{alerts[0]['alert_id']}").json()["transcript"]:
            time.sleep(0.1)
        said = client.get(f"/api/alerts/{alerts[0]['alert_id']}").json()["transcript"]
        assert said["status"] == "done" and said["text"].startswith(f"tone {int(TRUTH['voices']['low'])} hertz"), said
        assert [a["speaker"] for a in client.get("/api/alerts", params={"text": "hertz", "language": "xx"}).json()]
        assert client.get("/api/alerts/nope").status_code == 404 and client.get("/api/search/nope").status_code == 404
        forgotten = client.delete("/api/speakers/low").json()
        assert forgotten["forgotten"] == "low" and forgotten["alerts"] == 1 and forgotten["enrollments"] == 1
        assert [a["speaker"] for a in client.get("/api/alerts").json()] == ["high"]
        assert client.get("/api/status").json()["watch"] == "running"


def test_service_without_transcripts_alerts_only(tones: Engine, tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    shutil.copy(RECORDING, allowed / "tones.flac")
    token = create_token(tones.store, "tester", "admin", Role.ADMIN)
    service = Service(tones, ServiceOptions(allow_dirs=(allowed,), transcripts=None))
    with TestClient(create_app(service), headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/api/status").json()["transcripts"] is None
        assert client.post("/api/streams", json={"source": "tones.flac", "realtime": False}).status_code == 201
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and client.get("/api/streams").json()[0]["state"] == "running":
            time.sleep(0.1)
        alerts = client.get("/api/alerts").json()
        assert [a["speaker"] for a in alerts[::-1]] == ["low", "high"] and all(a["transcript"] is None for a in alerts)
    assert tones.transcriber.calls == 0  # type: ignore[attr-defined]


def test_each_error_class_carries_its_http_status_and_exit_code() -> None:
    from voxwatch import errors

    expected = {
        "VoxwatchError": 400,
        "UsageError": 400,
        "UnknownSpeakerError": 404,
        "NotFound": 404,
        "Forbidden": 403,
        "Conflict": 409,
        "AudioError": 422,
        "EnrollmentError": 422,
        "ModelError": 503,
        "StoreError": 503,
        "ServiceDown": 503,
    }
    assert {name: getattr(errors, name).http_status for name in expected} == expected
    assert errors.UnknownSpeakerError.exit_code == 6 and errors.NotFound.exit_code == 1


# -- the CLI --------------------------------------------------------------------------------------------------------


def test_cli_lists_and_forgets_voices_without_models(tones: Engine) -> None:
    db = str(tones.settings.db)
    tones.watch([FileSource(str(RECORDING))], transcripts=TranscriptOptions())
    runner = CliRunner()
    listed = runner.invoke(main, ["--db", db, "--json", "speakers"])
    assert listed.exit_code == 0, listed.output
    assert [json.loads(line)["name"] for line in listed.output.splitlines()] == ["high", "low"]
    forgotten = runner.invoke(main, ["--db", db, "--json", "forget", "low"])
    assert forgotten.exit_code == 0, forgotten.output
    assert json.loads(forgotten.output) == {
        "forgotten": "low",
        "enrollments": 1,
        "detections": 1,
        "snippets": 0,
        "transcripts": 1,
        "search_hits": 0,
        "alerts": 1,
    }
    missing = runner.invoke(main, ["--db", db, "forget", "low"])
    assert missing.exit_code == 6 and "no enrolled voice named 'low'" in missing.output


def test_chunks_of_many_streams_are_embedded_in_one_call(tmp_path: Path) -> None:
    """Batching across streams: one embed() call per step serves every stream that has a window ready."""
    engine = tone_engine(tmp_path)
    backend = engine.backend
    assert isinstance(backend, ToneBackend)
    spotter = engine.spotter()
    audio = tone_voice(300.0, 2.0)
    step = RATE_HZ // 2
    for start in range(0, len(audio), step):
        before = backend.calls
        events = spotter.process([AudioChunk(name, start / RATE_HZ, audio[start : start + step]) for name in "abcd"])
        assert backend.calls - before <= 1 and not [e for e in events if isinstance(e, Alert)]
    engine.close()
