"""Watched streams outlive the service: a recording stopped part-way resumes from its last quiet point when the service
starts again, and the alerts stored in the end are exactly those of an uninterrupted run (none lost, none twice).

The helpers (``write_stream``, ``enroll_two``, ``uninterrupted_alerts``, ``wait_until``) are reused by
test_cluster.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from voxwatch import Engine
from voxwatch.audio import RATE_HZ, load_audio, write_wav
from voxwatch.pipeline import StreamState
from voxwatch.records import Alert, Quiet
from voxwatch.service import Service, ServiceOptions
from voxwatch.sources import FileSource
from voxwatch.store import WatchedStream

TARGET, OTHER = "2033", "3005"  # readers whose other utterances alert reliably


def by_size(files: list[Path]) -> list[Path]:
    return sorted(files, key=lambda f: (-f.stat().st_size, f.name))


def write_stream(path: Path, readers: dict[str, list[Path]], parts: list[tuple[str, int]], pause_s: float = 3.5) -> Path:
    """Real speech, ``(reader, k)`` being that reader's k-th largest recording (0-2 are enrolled), with a pause longer
    than a turn's ``max_pause_s`` between parts: each pause is a point the stream can resume from."""
    pause = np.zeros(int(pause_s * RATE_HZ), np.float32)
    pieces = []
    for name, k in parts:
        pieces += [load_audio(by_size(readers[name])[k]), pause]
    write_wav(path, np.concatenate(pieces[:-1] + [pause[: RATE_HZ // 2]]))
    return path.resolve()


def enroll_two(engine: Engine, readers: dict[str, list[Path]]) -> None:
    for name in (TARGET, OTHER):
        engine.enroll(name, by_size(readers[name])[:3], "LibriSpeech test-other, public domain")


def uninterrupted_alerts(engine: Engine, path: Path, stream_id: str) -> set[str]:
    """The alert ids of the recording processed in one go as stream ``stream_id``, by a spotter of its own (nothing
    stored)."""
    spotter = engine.spotter(engine.watchlist())
    spotter.streams[str(path)] = StreamState(str(path), stream_id=stream_id)
    events = []
    for chunk in FileSource(str(path)).chunks():
        events += spotter.process([chunk])
    events += spotter.finish(str(path))
    return {e.alert_id for e in events if isinstance(e, Alert)}


def wait_until(check: Callable[[], object], timeout_s: float, what: str) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def stored_alerts(engine: Engine, source: Path) -> list[str]:
    return [a.alert_id for a in engine.store.alerts() if a.source == str(source)]


def test_a_recording_resumes_after_a_restart_with_the_same_alerts(
    engine: Engine, readers: dict[str, list[Path]], tmp_path: Path
) -> None:
    enroll_two(engine, readers)
    path = write_stream(tmp_path / "channel.wav", readers, [(TARGET, 3), (OTHER, 5)])
    options = ServiceOptions(allow_dirs=(tmp_path,), transcripts=None)

    first = Service(engine, options)
    first.start()
    stream = first.add_stream("channel.wav", None, 0, True, "tester")
    # stop once the target's alert is stored and the pause after its turn is a stored resume point
    wait_until(lambda: stored_alerts(engine, path), 20, "the first alert")
    wait_until(lambda: [w for w in engine.store.watched_streams() if w.position_s > 6.9], 10, "a stored resume point")
    first.close()
    (kept,) = engine.store.watched_streams()
    assert kept.stream_id == stream["id"] and 6.9 < kept.position_s < 11.0 and kept.last_heard, kept
    assert len(stored_alerts(engine, path)) < 2, "stopped before the second voice's alert"

    second = Service(engine, options)
    second.start()
    try:
        (resumed,) = second.streams()
        assert resumed["id"] == stream["id"] and resumed["state"] == "running"
        wait_until(lambda: second.streams()[0]["state"] == "ended", 30, "the resumed stream's end")
        assert second.streams()[0]["audio_s"] > 14
    finally:
        second.close()
    expected = uninterrupted_alerts(engine, path, stream["id"])
    assert len(expected) == 2, "both voices alert in an uninterrupted run"
    alerts = stored_alerts(engine, path)
    assert sorted(alerts) == sorted(expected), "0 lost, 0 duplicated"

    third = Service(engine, options)  # the same recording watched again later is a new stream: it alerts again
    third.start()
    try:
        third.add_stream("channel.wav", None, 0, False, "tester")
        wait_until(lambda: len(stored_alerts(engine, path)) == 4, 30, "the second watching's alerts")
    finally:
        third.close()
    turns = sorted((a.speaker, a.segment_start_s) for a in engine.store.alerts() if a.source == str(path))
    for (voice, start), (again, start_again) in zip(turns[0::2], turns[1::2]):  # read at another pace: VAD frames shift
        assert voice == again and abs(start - start_again) < 0.1, turns
    assert engine.store.watched_streams() == [], "an ended stream is not resumed again"


def test_forgetting_a_voice_removes_it_from_the_watched_streams(engine: Engine, readers: dict[str, list[Path]]) -> None:
    engine.enroll(TARGET, by_size(readers[TARGET])[:3], "LibriSpeech test-other, public domain")
    engine.store.watch_stream(WatchedStream("/a.wav", "s1", "file", [TARGET, "x"], True, 0, "2026-12-01T00:00:00", "t"))
    engine.store.stream_positions([Quiet("/a.wav", 12.0, {TARGET: 9.5, "x": 3.0})])
    engine.forget(TARGET)
    (kept,) = engine.store.watched_streams()
    assert kept.speakers == ["x"] and kept.last_heard == {"x": 3.0} and kept.position_s == 12.0
