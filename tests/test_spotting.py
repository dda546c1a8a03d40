"""Live spotting on real speech: enrolled readers among never-enrolled ones, scored against the known truth."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import largest

from voxwatch import Engine, FileSource, WatchSummary, channels
from voxwatch.audio import RATE_HZ, load_audio, write_wav
from voxwatch.corpus import spotting_task
from voxwatch.records import Alert, AudioChunk, Evidence, Segment
from voxwatch.scoring import NARROWBAND_HZ, band_name
from voxwatch.spotting_metrics import score_alerts
from voxwatch.streams import Multiplexer, StreamStatus
from voxwatch.watch import Watch

ENROLLED = ["1688", "2414", "3080", "533"]


@pytest.fixture
def task(readers: dict[str, list[Path]], impostors: dict[str, list[Path]], rng: np.random.Generator):  # type: ignore[no-untyped-def]
    """4 readers enrolled from 3 utterances; a stream of 4 of their other utterances each among 20 other readers."""
    others = {k: v for k, v in list(impostors.items())[:16]}
    others |= {k: v for k, v in readers.items() if k not in ENROLLED}
    return spotting_task({k: readers[k] for k in ENROLLED}, others, rng, enroll_files=3, stream_files=4, impostor_files=1)


@pytest.fixture
def watched(tmp_path: Path, engine: Engine, task):  # type: ignore[no-untyped-def]
    for name, files in task.enrollment.items():
        engine.enroll(name, [str(f) for f in files], note="test")
    stream = write_wav(tmp_path / "stream.wav", task.audio)
    sink = WatchSummary()
    summary = engine.watch([FileSource(str(stream))], [sink])
    return summary, sink, task, str(stream)


def test_enrolled_readers_are_spotted_with_few_false_alarms(watched) -> None:  # type: ignore[no-untyped-def]
    summary, _, task, _ = watched
    result = score_alerts(summary.alerts, task.turns, set(ENROLLED), task.duration_s)
    assert result.targets == 16
    assert result.detection_rate >= 0.85, result.to_json()
    assert result.false_alarms <= 1, result.to_json()
    assert result.tta_percentile(50) <= 3.0, result.to_json()


def test_a_turn_is_timed_from_its_first_word(watched) -> None:  # type: ignore[no-untyped-def]
    """Readings open with silence: a turn's time-to-alert runs from where its voice begins, which is also where the
    spotter's VAD hears the turn start."""
    summary, _, task, _ = watched
    assert all(t.start_s <= t.onset_s < t.end_s for t in task.turns)
    assert np.median([t.onset_s - t.start_s for t in task.turns]) > 0.2, "LibriSpeech readings open with silence"
    heard = [min(abs(a.segment_start_s - t.onset_s) for t in task.turns) for a in summary.alerts]
    assert np.median(heard) < 0.1, heard


def test_alerts_fire_while_the_voice_is_still_speaking(watched, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    summary, _, task, stream = watched
    long_turns = [t for t in task.turns if t.speaker in ENROLLED and t.end_s - t.start_s > 6]
    assert long_turns
    for turn in long_turns:
        alerts = [a for a in summary.alerts if a.speaker == turn.speaker and turn.start_s <= a.stream_time_s <= turn.end_s]
        assert len(alerts) == 1, f"one alert per turn, before it ends: {turn} {alerts}"
        assert abs(alerts[0].segment_start_s - turn.start_s) < 1.0, "the alert says where the turn began"
        assert alerts[0].source == stream and alerts[0].llr >= engine.threshold(8000.0) and len(alerts[0].alert_id) == 32
        assert alerts[0].stream_time_s < turn.end_s - 1, "evidence accumulates while the voice speaks; no waiting for the end"


def test_alerts_are_committed_and_detections_recorded(watched, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    summary, sink, task, _ = watched
    stored = engine.store.alerts()
    assert [a.alert_id for a in stored] == [a.alert_id for a in sink.alerts] == [a.alert_id for a in summary.alerts]
    assert engine.store.alerts(undelivered=True) == []
    detections = engine.store.detections()
    assert detections and all(d.speaker in ENROLLED for d in detections)
    assert sink.streams and sink.streams[0].state == "ended" and abs(sink.streams[0].audio_s - task.duration_s) < 0.2


def test_several_streams_in_one_watch(tmp_path: Path, engine: Engine, task) -> None:  # type: ignore[no-untyped-def]
    for name, files in task.enrollment.items():
        engine.enroll(name, [str(f) for f in files])
    half = len(task.audio) // 2
    a = write_wav(tmp_path / "a.wav", task.audio[:half])
    b = write_wav(tmp_path / "b.wav", task.audio[half:])
    summary = engine.watch([FileSource(str(a)), FileSource(str(b))], speakers=["1688", "533"])
    assert {a.source for a in summary.alerts} <= {str(a), str(b)}
    assert {x.speaker for x in summary.alerts} <= {"1688", "533"}
    offset = half / RATE_HZ
    truth = [
        t
        for t in task.turns
        if t.speaker in ("1688", "533") and t.end_s < offset - 1 or t.speaker in ("1688", "533") and t.start_s > offset + 1
    ]
    alerted = sum(
        any(
            x.speaker == t.speaker and t.start_s <= x.stream_time_s + (offset if x.source == str(b) else 0) <= t.end_s + 1
            for x in summary.alerts
        )
        for t in truth
    )
    assert alerted >= len(truth) - 1
    assert len(summary.streams) == 2


def test_two_thread_watch_decides_like_the_spotter_alone(watched, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    """The watch splits VAD/framing and embedding/decision over two threads; the alerts are those of one spotter
    fed the same chunks in one thread."""
    summary, _, _, stream = watched
    spotter = engine.spotter(engine.watchlist())
    events = []
    for chunk in FileSource(stream).chunks():
        events += spotter.process([chunk])
    events += spotter.finish(stream)
    alone = [(e.speaker, e.stream_time_s, e.llr) for e in events if isinstance(e, Alert)]
    assert alone and alone == [(a.speaker, a.stream_time_s, a.llr) for a in summary.alerts]


def test_each_stream_is_scored_for_its_measured_channel_band(engine: Engine, readers: dict[str, list[Path]]) -> None:
    """Two readings as recorded and through a walkie-talkie channel, the radio's transmissions apart by squelch (digital
    silence): the spotter measures each stream's band on its latest audio up to each window, and the calibration for
    that band scores it. A stream's first window is measured on its first 1.5 s alone: here the radio's was measured
    wideband (a 1 s segment), so that one is allowed."""
    readings = [load_audio(f) for f in largest(readers["2033"], 2)]
    rng, squelched = np.random.default_rng(2), np.zeros(RATE_HZ, np.float32)
    heard = {
        "clean": np.concatenate([readings[0], squelched, readings[1]]),
        "radio": np.concatenate([channels.radio(readings[0], rng), squelched, channels.radio(readings[1], rng)]),
    }
    audio = heard["clean"]
    spotter = engine.spotter()
    segments: list[Segment] = []
    step = RATE_HZ // 2
    for start in range(0, len(audio), step):
        events = spotter.process([AudioChunk(name, start / RATE_HZ, x[start : start + step]) for name, x in heard.items()])
        segments += [e for e in events if isinstance(e, Segment)]
    for name in heard:
        segments += [e for e in spotter.finish(name) if isinstance(e, Segment)]
    clean = [s for s in segments if s.source == "clean"]
    radio = [s for s in segments if s.source == "radio"]
    assert clean and radio
    narrow = [s for s in radio if 0 < s.bandwidth_hz < NARROWBAND_HZ]
    assert all(s.bandwidth_hz > NARROWBAND_HZ for s in clean) and all(s in narrow for s in radio if s.start_s > 1.6)
    assert sum(s.end_s - s.start_s for s in narrow) >= 0.95 * sum(s.end_s - s.start_s for s in radio)
    calibration = engine.calibration()
    assert calibration.for_band(radio[-1].bandwidth_hz) is calibration.narrowband is not None
    assert calibration.for_band(clean[-1].bandwidth_hz) is calibration


def test_the_band_follows_a_caller_within_seconds(engine: Engine, readers: dict[str, list[Path]]) -> None:
    """A call-in show: the studio, a caller on a telephone line, the studio again, with no squelch between. The
    stream's band turns narrow within about 3 s of the caller's first words and wide again as soon after the studio
    returns, so the caller is heard by the narrowband encoder and calibration for nearly all of the call. The audio
    comes seconds at a time, as a recording read faster than real time does: a window's band is measured on the audio
    up to its end, so the call's last window is not measured on the studio's first words."""
    studio = [load_audio(f) for f in largest(readers["2033"], 3)]
    caller = channels.telephone(studio[1], np.random.default_rng(4))
    audio = np.concatenate([studio[0], caller, studio[2]])
    change = np.cumsum([0, len(studio[0]), len(caller), len(studio[2])]) / RATE_HZ
    spotter = engine.spotter()
    segments: list[Segment] = []
    step = 4 * RATE_HZ
    for start in range(0, len(audio), step):
        events = spotter.process([AudioChunk("show", start / RATE_HZ, audio[start : start + step])])
        segments += [e for e in events if isinstance(e, Segment)]
    segments += [e for e in spotter.finish("show") if isinstance(e, Segment)]

    def heard(start_s: float, end_s: float, narrow: bool) -> float:
        """Seconds of ``start_s``..``end_s`` in segments measured narrowband (or wideband)."""
        return sum(
            max(0.0, min(end_s, s.end_s) - max(start_s, s.start_s))
            for s in segments
            if (0 < s.bandwidth_hz < NARROWBAND_HZ) == narrow
        )

    assert heard(change[1], change[2], narrow=True) >= change[2] - change[1] - 3.5
    assert heard(change[2], change[3], narrow=False) >= change[3] - change[2] - 3.5
    assert heard(0.0, change[1], narrow=True) == 0.0
    assert all(0 < s.bandwidth_hz < NARROWBAND_HZ for s in segments if change[1] + 3.0 <= s.start_s < change[2])


def test_a_turn_is_scored_after_its_first_second_then_every_0_3_s_up_to_a_full_window(
    engine: Engine, readers: dict[str, list[Path]]
) -> None:
    """Evidence arrives early: a turn's first window ends after 1.0 s of its speech, the next two 0.3 s apart, then
    one every hop (0.8 s) of speech."""
    files = largest(readers["2033"], 3)
    engine.enroll("reader", [str(f) for f in files[1:]])
    spotter = engine.spotter(engine.watchlist(), dataclasses.replace(engine.settings.spotter, trace=True))
    reading, step = load_audio(files[0]), RATE_HZ // 2
    events = []
    for offset in range(0, len(reading), step):
        events += spotter.process([AudioChunk("s", offset / RATE_HZ, reading[offset : offset + step])])
    evidence = [e for e in events if isinstance(e, Evidence)]
    first_turn = [round(e.speech_s, 1) for e in evidence if e.turn_start_s == evidence[0].turn_start_s]
    assert first_turn[:4] == [1.0, 1.3, 1.6, 2.4], first_turn


def test_an_early_window_is_scored_with_the_turn_but_not_kept_in_it(engine: Engine, readers: dict[str, list[Path]]) -> None:
    """The window at 1.3 s of a turn's speech gives an earlier decision; the full window at 1.6 s holds its speech, so
    from then on the turn's running score is that of the windows at 1.0 and 1.6 s, as if no early window had been."""
    files = largest(readers["2033"], 3)
    engine.enroll("reader", [str(f) for f in files[1:]])
    watchlist = engine.watchlist()
    spotter = engine.spotter(watchlist, dataclasses.replace(engine.settings.spotter, trace=True))
    reading, step = load_audio(files[0]), RATE_HZ // 2
    windows, events = [], []
    for offset in range(0, len(reading), step):
        cut = spotter.windows([AudioChunk("s", offset / RATE_HZ, reading[offset : offset + step])])
        windows += [w for w in cut if len(w.samples)]
        events += spotter.decide(cut)
    evidence = [e for e in events if isinstance(e, Evidence)]
    band = band_name(windows[2].bandwidth_hz)
    embedded = np.concatenate([engine.backend.embed(w.samples[None], band) for w in windows[:3]])
    assert [len(w.samples) / RATE_HZ for w in windows[:3]] == pytest.approx([1.024, 1.344, 1.6], abs=0.001)
    assert np.allclose(evidence[1].scores, watchlist.scores(embedded[:2].sum(axis=0, keepdims=True), band)[0], atol=1e-4)
    kept = watchlist.scores(embedded[[0, 2]].sum(axis=0, keepdims=True), band)[0]
    assert np.allclose(evidence[2].scores, kept, atol=1e-4), (evidence[2].scores, kept)
    assert not np.allclose(evidence[2].scores, watchlist.scores(embedded.sum(axis=0, keepdims=True), band)[0], atol=1e-3)


def test_a_turn_alerts_only_its_most_likely_voice(tmp_path: Path, engine: Engine, readers: dict[str, list[Path]]) -> None:
    """One reader enrolled twice under two names (from different readings): each turn of theirs passes both voices'
    thresholds, but a turn is one voice, so only the more likely name alerts on it."""
    files = largest(readers["2033"], 6)
    engine.enroll("twin-a", [str(f) for f in files[:2]])
    engine.enroll("twin-b", [str(f) for f in files[2:4]])
    stream = write_wav(
        tmp_path / "stream.wav", np.concatenate([load_audio(files[4]), np.zeros(RATE_HZ * 4, np.float32), load_audio(files[5])])
    )
    spotter = engine.spotter(engine.watchlist(), dataclasses.replace(engine.settings.spotter, trace=True, cooldown_s=0.0))
    events = []
    for chunk in FileSource(str(stream)).chunks():
        events += spotter.process([chunk])
    events += spotter.finish(str(stream))
    threshold = engine.threshold(8000.0)
    both_pass = [
        e
        for e in events
        if isinstance(e, Evidence) and min(engine.calibration().llr(np.array(e.scores), e.speech_s)) >= threshold
    ]
    alerts = [e for e in events if isinstance(e, Alert)]
    assert both_pass, "both names pass the threshold on this reader's turns"
    assert alerts and len({(a.segment_start_s) for a in alerts}) == len(alerts), f"one alert per turn: {alerts}"


def test_a_failing_step_or_sink_does_not_stop_the_watch(tmp_path: Path, engine: Engine, task, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A model error on one step and a sink that always fails: the watch logs them, goes on to the end of the stream,
    the sink after the failing one still hears every alert and the stream's end, and every alert stays in the outbox
    as undelivered."""
    for name, files in task.enrollment.items():
        engine.enroll(name, [str(f) for f in files])
    stream = write_wav(tmp_path / "stream.wav", task.audio[: 90 * RATE_HZ])

    class Down(WatchSummary):
        def alert(self, alert: Alert) -> None:
            raise RuntimeError("receiver down")

        def stream_end(self, status: StreamStatus) -> None:
            raise RuntimeError("receiver down")

    summary = WatchSummary()
    watch = Watch(engine, Multiplexer([FileSource(str(stream))]), [Down(), summary])
    decide, calls = watch.spotter.decide, []

    def hiccup(windows):  # type: ignore[no-untyped-def]
        calls.append(len(windows))
        if len(calls) == 2:
            raise RuntimeError("model hiccup")
        return decide(windows)

    monkeypatch.setattr(watch.spotter, "decide", hiccup)
    watch.run()
    assert len(calls) > 2 and summary.alerts, "the watch went on after the failed step"
    assert [s.state for s in summary.streams] == ["ended"]
    assert {a.alert_id for a in engine.store.alerts(undelivered=True)} == {a.alert_id for a in summary.alerts}
