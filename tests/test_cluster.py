"""voxwatch on a real Ray cluster: two nodes started on this machine (``ray.cluster_utils.Cluster``), one for the
module. Streams of real speech run on watch workers; a worker killed mid-stream, a coordinator killed (SIGKILL) and a
node joining late lose no alert and store none twice: the alert ids stored equal those of an uninterrupted run."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from ray.cluster_utils import Cluster
from test_resume import (
    OTHER,
    TARGET,
    by_size,
    enroll_two,
    stored_alerts,
    uninterrupted_alerts,
    wait_until,
    write_stream,
)
from test_service import Server, make_token

from voxwatch import Engine, Settings
from voxwatch.audio import RATE_HZ, load_audio, write_wav
from voxwatch.records import FileDone
from voxwatch.service import Service, ServiceOptions
from voxwatch.service_metrics import registry
from voxwatch.sinks import WatchSummary
from voxwatch.transcripts import TranscriptOptions


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes.add_node(num_cpus=1)
    ray.init(address=nodes.address, namespace="voxwatch", logging_level="WARNING")
    yield nodes
    ray.shutdown()
    nodes.shutdown()


def holder(service: Service, stream_id: str) -> str | None:
    return next((s["worker"] for s in service.streams() if s["id"] == stream_id), None)


def others(service: Service, worker: str) -> list[str]:
    return [w["worker"] for w in service.workers() or [] if w["worker"] != worker]


def answering(service: Service) -> list[dict[str, Any]]:
    return [w for w in service.workers() or [] if w["alive"]]


def test_a_worker_killed_mid_stream_loses_and_repeats_no_alert(
    cluster: Cluster, engine: Engine, readers: dict[str, list[Path]], tmp_path: Path
) -> None:
    enroll_two(engine, readers)
    # the second voice reads two recordings without a pause: its turn outlasts the first turn's transcription on a
    # loaded machine, so the worker dies while that turn is still being heard
    path = write_stream(tmp_path / "channel.wav", readers, [(TARGET, 3), (OTHER, 3)])
    write_wav(path, np.concatenate([load_audio(path), load_audio(by_size(readers[OTHER])[4])]))
    at_once = TranscriptOptions(yield_lag_s=60.0)  # the workers transcribe, even while this busy machine lags
    service = Service(engine, ServiceOptions(allow_dirs=(tmp_path,), transcripts=at_once, ray=cluster.address))
    service.start()
    heard = WatchSummary()
    service.watch.sinks.append(heard)
    try:
        wait_until(lambda: len(answering(service)) == 2, 60, "a worker on each node")
        stream = service.add_stream("channel.wav", None, 0, True, "tester")
        first = wait_until(lambda: holder(service, stream["id"]), 10, "a worker holding the stream")
        # kill the worker once both alerts are stored and the pause before the second voice is its resume point:
        # it resumes there, so the second voice's turn is processed twice and must be stored once
        wait_until(lambda: len(stored_alerts(engine, path)) == 2, 30, "both alerts")
        wait_until(lambda: len(heard.transcripts) == 1, 30, "the first turn's transcript")
        assert 6.9 < service.watch.resume_points[str(path)].at_s < 11.0
        metrics = {  # /metrics on a cluster: each worker's health and model clock, labelled by worker
            (s.name, s.labels.get("worker")): s.value
            for family in text_string_to_metric_families(generate_latest(registry(service)).decode())
            for s in family.samples
        }
        assert {w: metrics["voxwatch_worker_up", w] for w in (first, *others(service, first))} == dict.fromkeys(
            (first, *others(service, first)), 1.0
        )
        assert metrics["voxwatch_worker_streams", first] == 1 and metrics["voxwatch_audio_seconds_total", first] > 5
        ray.kill(ray.get_actor(first, namespace="voxwatch"))
        wait_until(lambda: (holder(service, stream["id"]) or first) != first, 10, "the stream on another worker")
        moved = holder(service, stream["id"])
        assert moved in {w["worker"] for w in service.workers() or []}
        wait_until(lambda: service.streams()[0]["state"] == "ended", 30, "the stream's end")
        assert service.streams()[0]["worker"] == moved and service.streams()[0]["audio_s"] > 14
        alerts = sorted(engine.store.alerts(), key=lambda a: a.stream_time_s)
        wait_until(lambda: len(heard.transcripts) == 2, 30, "a transcript follow-up for each alert")
        recording_s = len(load_audio(path)) / RATE_HZ
        whole = {a.alert_id: min(a.stream_time_s + 5.0, recording_s) for a in alerts}  # at once: up to the alert
        wait_until(lambda: all(service.alert_audio(i)[2] > end_s - 0.05 for i, end_s in whole.items()), 10, "whole snippets")
    finally:
        service.close()
    expected = uninterrupted_alerts(engine, path, stream["id"])
    assert len(expected) == 2 and sorted(stored_alerts(engine, path)) == sorted(expected), "0 lost, 0 duplicated"
    assert engine.store.watched_streams() == []
    # each alert's audio, cut on its worker: the turn from its start to 5 s past the alert (or the recording's end),
    # real speech as in the file
    recording = load_audio(path)
    for alert in alerts:
        media_type, start_s, end_s, data = service.alert_audio(alert.alert_id)
        assert abs(start_s - alert.segment_start_s) < 0.05
        assert abs(end_s - min(alert.stream_time_s + 5.0, recording_s)) < 0.05
        (tmp_path / "snippet").write_bytes(data)
        played, said = load_audio(tmp_path / "snippet"), recording[int(start_s * RATE_HZ) : int(end_s * RATE_HZ)]
        assert abs(len(played) / RATE_HZ - (end_s - start_s)) < 0.1 and media_type.startswith("audio/")
        assert 0.7 < np.sqrt(np.mean(played**2) / np.mean(said**2)) < 1.3
    # one transcript follow-up per alert, stored and published: the first turn transcribed by Whisper on its worker;
    # the second voice's turn had not ended when its worker died: dropped, naming the worker (the replay's is ignored)
    stored = {t.alert_id: t for t in engine.store.transcripts()}
    assert sorted(stored) == sorted(t.alert_id for t in heard.transcripts) == sorted(a.alert_id for a in alerts)
    done, lost = (stored[a.alert_id] for a in alerts)
    assert done.status == "done" and done.language == "en" and len(done.text.split()) > 3, done
    assert lost.status == "dropped" and first in lost.reason, lost


@pytest.mark.slow
def test_a_killed_coordinator_resumes_its_streams_on_the_cluster(
    cluster: Cluster, engine: Engine, readers: dict[str, list[Path]], tmp_path: Path
) -> None:
    enroll_two(engine, readers)
    allow = tmp_path / "allowed"
    allow.mkdir()
    path = write_stream(allow / "channel.wav", readers, [(TARGET, 3), (OTHER, 5), (TARGET, 4)], pause_s=4.0)
    db = Path(engine.settings.db)
    server = Server(db, allow, make_token(db), "--ray", cluster.address, "--no-transcripts").start(60)
    try:
        with server.client() as c:
            stream = c.post("/api/streams", json={"source": "channel.wav"}).json()
            wait_until(lambda: len(stored_alerts(engine, path)) >= 1, 60, "the first alert")
            wait_until(lambda: [w for w in engine.store.watched_streams() if w.position_s > 6.9], 15, "a resume point")
        server.kill()
        server.start(60)
        with server.client() as c:
            (resumed,) = c.get("/api/streams").json()
            assert resumed["id"] == stream["id"] and resumed["state"] == "running"
            wait_until(lambda: c.get("/api/streams").json()[0]["worker"], 30, "a worker holding the resumed stream")
            wait_until(lambda: c.get("/api/streams").json()[0]["state"] == "ended", 60, "the stream's end")
            assert [w["alive"] for w in c.get("/api/workers").json()] == [True, True]
    finally:
        server.stop()
    expected = uninterrupted_alerts(engine, path, stream["id"])
    assert len(expected) == 3 and sorted(stored_alerts(engine, path)) == sorted(expected), "0 lost, 0 duplicated"


@pytest.mark.slow
def test_a_node_joining_late_gets_a_worker_that_takes_new_streams(
    cluster: Cluster, engine: Engine, readers: dict[str, list[Path]], tmp_path: Path
) -> None:
    enroll_two(engine, readers)
    files = [write_stream(tmp_path / f"channel{i}.wav", readers, [(TARGET, 3 + i), (OTHER, 5)]) for i in range(3)]
    service = Service(engine, ServiceOptions(allow_dirs=(tmp_path,), transcripts=None, ray=cluster.address))
    service.start()
    late = None
    try:
        wait_until(lambda: len(answering(service)) == 2, 60, "a worker on each node")
        held = [service.add_stream(f.name, None, 0, True, "tester")["id"] for f in files[:2]]
        wait_until(lambda: all(holder(service, s) for s in held), 10, "both streams held")
        assert len({holder(service, s) for s in held}) == 2, "one stream per worker"
        late = cluster.add_node(num_cpus=1)
        wait_until(lambda: len(answering(service)) == 3, 60, "a worker on the new node")
        newcomer = next(w["worker"] for w in answering(service) if w["streams"] == 0)
        third = service.add_stream(files[2].name, None, 0, True, "tester")["id"]
        assert wait_until(lambda: holder(service, third), 10, "the third stream held") == newcomer
        wait_until(lambda: all(s["state"] == "ended" for s in service.streams()), 60, "every stream's end")
    finally:
        service.close()
        if late is not None:
            cluster.remove_node(late)
    for f, stream_id in zip(files, held + [third]):
        assert sorted(stored_alerts(engine, f)) == sorted(uninterrupted_alerts(engine, f, stream_id))


def test_index_on_the_cluster_matches_local_indexing_and_skips_what_is_indexed(
    cluster: Cluster, engine: Engine, models: Any, readers: dict[str, list[Path]], tmp_path: Path
) -> None:
    files = [str(f) for name in (TARGET, OTHER) for f in readers[name][:3]]
    seen: list[FileDone] = []
    entries, errors = engine.index(files, seen.append, ray=cluster.address)
    assert errors == [] and len(entries) == len(files) == len(seen) and seen[-1].done == len(files)
    backend, vad = models
    local = Engine(Settings(db=tmp_path / "local.db", workers=1), actor="tester", backend=backend, vad=vad)
    try:
        expected, _ = local.index(files)
    finally:
        local.close()
    for got, want in zip(entries, expected):
        assert got.sha256 == want.sha256 and got.spans.shape == want.spans.shape
        assert np.allclose(got.spans, want.spans, atol=1e-3) and np.allclose(got.vectors, want.vectors, atol=2e-3)
    again, _ = engine.index(files, ray=cluster.address)  # by content hash: nothing is segmented twice
    assert [e.sha256 for e in again] == [e.sha256 for e in entries]


def write_long(path: Path, readers: dict[str, list[Path]]) -> Path:
    """About 3.8 minutes of real speech: three readers taking turns of two readings, with pauses of 0.8 to 4 s."""
    names = [TARGET, OTHER, min(set(readers) - {TARGET, OTHER})]
    pauses_s = [1.0, 4.0, 1.5, 0.8, 3.5, 2.0]
    pieces = []
    for j in range(30):
        reading = load_audio(by_size(readers[names[j // 2 % 3]])[3 + j % 6])  # (0-2 are enrolled)
        pieces += [reading, np.zeros(int(pauses_s[j % 6] * RATE_HZ), np.float32)]
    return write_wav(path, np.concatenate(pieces)).resolve()


def test_index_on_the_cluster_splits_a_long_file_into_chunks_and_joins_them_as_local_indexing_would(
    cluster: Cluster, engine: Engine, models: Any, readers: dict[str, list[Path]], tmp_path: Path, caplog: Any
) -> None:
    path = str(write_long(tmp_path / "long.wav", readers))
    with caplog.at_level(logging.INFO, logger="voxwatch.indexing"):
        (got,), errors = engine.index([path], ray=cluster.address, chunk_s=60)
    assert errors == [] and "long.wav: 4 of 4 chunks segmented" in caplog.text
    backend, vad = models
    local = Engine(Settings(db=tmp_path / "local.db", workers=1), actor="tester", backend=backend, vad=vad)
    try:
        (want,), _ = local.index([path])
        enroll_two(local, readers)
        expected = local.search([path]).detections
    finally:
        local.close()
    assert got.sha256 == want.sha256 and abs(got.duration_s - want.duration_s) < 0.01
    assert abs(len(got.spans) - len(want.spans)) <= 1 and len(want.spans) > 20
    near = [np.abs(got.spans[:, :2] - span[:2]).max(axis=1).min() < 0.5 for span in want.spans]
    assert sum(near) >= len(want.spans) - 1, "every segment but one (split at a chunk's cut) is found again"
    enroll_two(engine, readers)
    found = engine.search([path]).detections
    assert len(found) == len(expected) > 5
    for d, e in zip(found, expected):
        assert d.speaker == e.speaker and abs(d.start_s - e.start_s) < 0.5 and abs(d.end_s - e.end_s) < 0.5


def test_without_ray_voxwatch_runs_and_serve_ray_names_the_extra(tmp_path: Path) -> None:
    blocked = "import sys; sys.modules['ray'] = None; "  # as if ray were not installed
    cli = [sys.executable, "-c", blocked + "from voxwatch.cli import main; main()", "--db", str(tmp_path / "v.db")]
    assert subprocess.run([*cli, "speakers"], check=False, capture_output=True, text=True, timeout=60).returncode == 0
    out = subprocess.run([*cli, "serve", "--ray", "auto"], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "pip install 'voxwatch[cluster]'" in out.stderr and "Traceback" not in out.stderr
