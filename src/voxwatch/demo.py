"""``voxwatch demo``: make (or take) audio, enroll some voices, watch a stream where they speak among others,
and score the alerts against the known truth; each alert is followed by what was said."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from .audio import write_wav
from .corpus import SpottingTask, Turn, speaker_folders, spotting_task
from .embedding import DEFAULT_MODEL
from .engine import Engine, Settings
from .sinks import ConsoleSink, JsonLinesSink
from .sources import FileSource
from .spotting_metrics import score_alerts
from .transcripts import TranscriptOptions


def synthetic_task(out: Path, seconds: float, rng: np.random.Generator) -> SpottingTask:
    """Six espeak-ng voices on a simulated broadcast channel; three of them enrolled from clean speech."""
    from .synth import VOICES, conversation, enrollment_audio

    voices = list(VOICES[:6])
    enrollment = {v.name: [write_wav(out / "enroll" / f"{v.name}.wav", enrollment_audio(v, 20.0))] for v in voices[:3]}
    audio, turns = conversation(voices, seconds, rng, channel="broadcast")
    return SpottingTask(enrollment, audio, turns)


def recorded_task(data: Path, rng: np.random.Generator) -> SpottingTask:
    """Half the speakers of ``data`` (one sub-folder each) enrolled, the others as never-enrolled voices."""
    speakers = speaker_folders(data)
    names = sorted(speakers)
    enrolled = {n: speakers[n] for n in names[: max(1, len(names) // 2)] if len(speakers[n]) >= 4}
    others = {n: speakers[n] for n in names if n not in enrolled}
    return spotting_task(enrolled, others, rng, enroll_files=3, stream_files=3, impostor_files=3)


def run_demo(
    out: Path, data: Path | None, realtime: bool, seconds: float, seed: int, as_json: bool, model: str = DEFAULT_MODEL
) -> None:
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    db = out / "voxwatch.db"
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"), out / "alerts.jsonl"):
        stale.unlink(missing_ok=True)
    say = (lambda text: None) if as_json else click.echo
    say("making the demo audio ..." if data is None else f"building a stream from {data} ...")
    task = synthetic_task(out, seconds, rng) if data is None else recorded_task(data, rng)
    stream = write_wav(out / "stream.wav", task.audio)
    (out / "truth.json").write_text(json.dumps([t.to_json() for t in task.turns], indent=1))
    engine = Engine(Settings(db=db, model=model), actor="demo")
    for name, files in task.enrollment.items():
        for info in engine.enroll(name, [str(f) for f in files], note="voxwatch demo (synthetic or public-licence audio)"):
            say(f"enrolled {name} from {Path(info.file).name}: {info.speech_s:.1f} s speech")
    enrolled = set(task.enrollment)
    say(
        f"watching {stream} ({task.duration_s:.0f} s, {'real time' if realtime else 'as fast as possible'});"
        f" enrolled: {', '.join(sorted(enrolled))}; also speaking: {', '.join(sorted({t.speaker for t in task.turns} - enrolled))}"
    )
    sinks = [ConsoleSink(as_json), JsonLinesSink(out / "alerts.jsonl")]
    summary = engine.watch([FileSource(str(stream), realtime=realtime)], sinks, transcripts=TranscriptOptions())
    result = score_alerts(summary.alerts, task.turns, enrolled, task.duration_s)
    if as_json:
        click.echo(json.dumps({"type": "summary", **result.to_json()}))
    else:
        _report(result.to_json(), task.turns, enrolled, out)


def _report(figures: dict[str, float], turns: list[Turn], enrolled: set[str], out: Path) -> None:
    click.echo(
        f"\nsummary: detected {figures['detected']}/{figures['targets']} turns of enrolled voices"
        f" ({figures['detection_rate']:.0%}), missed {figures['targets'] - figures['detected']},"
        f" false alarms {figures['false_alarms']} ({figures['false_alarms_per_hour']:.1f}/stream-hour),"
        f" time-to-alert median {figures['tta_median_s']:.1f} s, 95th percentile {figures['tta_p95_s']:.1f} s"
    )
    click.echo(f"audio, truth, alerts and database are in {out}/")
