"""The ``voxwatch`` command: a thin layer that resolves settings, calls one :class:`Engine` method per command,
prints the result, and turns every :class:`VoxwatchError` into one line on stderr and an exit code."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from .audio import RATE_HZ, PcmFormat, open_source
from .embedding import DEFAULT_MODEL
from .engine import Engine, Settings, default_db
from .errors import UsageError, VoxwatchError
from .pipeline import DEFAULT_FALSE_ALARMS_PER_HOUR, SpotterOptions
from .sinks import ConsoleSink, JsonLinesSink, clock


class _Context:
    def __init__(self, db: Path, model: str, calibration: Path | None, as_json: bool):
        self.db, self.model, self.calibration, self.as_json = db, model, calibration, as_json

    def engine(self, threshold_llr: float | None = None, false_alarms_per_hour: float | None = None) -> Engine:
        if threshold_llr is not None and false_alarms_per_hour is not None:
            raise UsageError("give --threshold or --false-alarms-per-hour, not both")
        spotter = SpotterOptions(
            threshold_llr=threshold_llr,
            false_alarms_per_hour=DEFAULT_FALSE_ALARMS_PER_HOUR if false_alarms_per_hour is None else false_alarms_per_hour,
        )
        return Engine(Settings(db=self.db, model=self.model, calibration=self.calibration, spotter=spotter))

    def emit(self, record: dict[str, Any], text: str) -> None:
        click.echo(json.dumps(record) if self.as_json else text)


def _operating_point(fn: Callable[..., None]) -> Callable[..., None]:
    """The two ways to set when a detection counts: ``--false-alarms-per-hour`` (the default) or ``--threshold``."""
    fn = click.option(
        "--false-alarms-per-hour",
        "fa_rate",
        type=float,
        default=None,
        help="False alarms to allow per enrolled voice per hour of other people's speech; sets the LLR threshold"
        " for each channel band from the calibration [default: 0.1].",
    )(fn)
    return click.option(
        "--threshold",
        type=float,
        default=None,
        help="Instead of --false-alarms-per-hour: the log-likelihood ratio a detection needs on every channel.",
    )(fn)


def _guard(fn: Callable[..., None]) -> Callable[..., None]:
    """Map library errors to one clear line and an exit code; never a traceback."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except VoxwatchError as exc:
            click.echo(f"voxwatch: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("voxwatch: interrupted", err=True)
            sys.exit(130)

    return run


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="VOXWATCH_DB",
    help="Database file [default: user data dir].",
)
@click.option(
    "--model",
    default=DEFAULT_MODEL,
    envvar="VOXWATCH_MODEL",
    show_default=True,
    help="Embedding model: voxwatch-enc, ge2e, a .onnx path, or hf:OWNER/REPO/FILE.onnx.",
)
@click.option(
    "--calibration",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    envvar="VOXWATCH_CALIBRATION",
    help="Calibration file from 'voxwatch calibrate' [default: the shipped one].",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="voxwatch")
@click.pass_context
def main(ctx: click.Context, db: Path | None, model: str, calibration: Path | None, as_json: bool, verbose: int) -> None:
    """voxwatch: enroll known voices, watch live streams for them, search archives.

    \b
    Example session:
      voxwatch enroll alice alice-ref1.wav alice-ref2.flac --note "consented 2026-11-01, interview"
      voxwatch watch radio.mp3 http://icecast.example/stream --pace realtime
      voxwatch search /archive --speaker alice --rttm
    """
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)], format="%(levelname)s %(name)s: %(message)s"
    )
    ctx.obj = _Context(db or default_db(), model, calibration, as_json)


@main.command()
@click.argument("name")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--note", default="", help="Provenance: source, consent or legal basis, who recorded it and when.")
@click.pass_obj
@_guard
def enroll(obj: _Context, name: str, files: tuple[str, ...], note: str) -> None:
    """Enroll a voice from one or more recordings of that person alone.

    \b
    Example:
      voxwatch enroll "Jane Doe" jane1.wav jane2.mp3 --note "press conference 2026-03-02, public broadcast"
    """
    engine = obj.engine()
    for info in engine.enroll(name, list(files), note):
        obj.emit(
            info.to_json(),
            f"enrolled {name!r} from {info.file}: {info.speech_s:.1f} s net speech, SNR {info.snr_db:.0f} dB, consistency {info.consistency:.2f}",
        )


@main.command()
@click.pass_obj
@_guard
def speakers(obj: _Context) -> None:
    """List enrolled voices.

    \b
    Example:
      voxwatch speakers --json
    """
    found = obj.engine().store.speakers()
    for s in found:
        obj.emit(
            s.to_json(),
            f"{s.name}\t{s.enrollments} recording(s)\t{s.speech_s:.1f} s speech\tenrolled {s.created_at}\t{'; '.join(s.notes)}",
        )
    if not found and not obj.as_json:
        click.echo("no voices enrolled")


@main.command()
@click.argument("name")
@click.pass_obj
@_guard
def forget(obj: _Context, name: str) -> None:
    """Delete every trace of a voice: voiceprints, enrollments, detections, alerts.

    \b
    Example:
      voxwatch forget "Jane Doe"
    """
    counts = obj.engine().forget(name)
    obj.emit({"forgotten": name, **counts}, f"forgot {name!r}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))


@main.command()
@click.argument("file", type=click.Path())
@click.option("--speaker", required=True, help="Enrolled voice to compare with.")
@click.pass_obj
@_guard
def verify(obj: _Context, file: str, speaker: str) -> None:
    """Is FILE this enrolled voice? Prints the score, the log-likelihood ratio and the decision.

    \b
    Example:
      voxwatch verify questioned.wav --speaker "Jane Doe"
    """
    v = obj.engine().verify(file, speaker)
    verdict = "SAME speaker" if v.accepted else "DIFFERENT speaker"
    obj.emit(
        v.to_json(), f"{v.file} vs {v.speaker}: score {v.score:.3f}, LLR {v.llr:+.2f} → {verdict} ({v.speech_s:.1f} s speech)"
    )


@main.command()
@click.argument("file", type=click.Path())
@click.option("--top", default=5, show_default=True, help="How many candidates to show.")
@click.pass_obj
@_guard
def identify(obj: _Context, file: str, top: int) -> None:
    """Which enrolled voice is speaking in FILE? Ranked, or "none of the above".

    \b
    Example:
      voxwatch identify caller.wav --top 3
    """
    candidates = obj.engine().identify(file, top)
    for rank, c in enumerate(candidates, 1):
        obj.emit({"rank": rank, **c.to_json()}, f"{rank}. {c.speaker}  LLR {c.llr:+.2f}  score {c.score:.3f}")
    if not candidates:
        obj.emit({"rank": None, "speaker": None}, "none of the above: no enrolled voice fits")


def _progress(obj: _Context) -> Callable[[str, str | None], None]:
    def report(path: str, error: str | None) -> None:
        if not obj.as_json:
            click.echo(f"  {'failed' if error else 'indexed'} {path}" + (f": {error}" if error else ""), err=True)

    return report


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.pass_obj
@_guard
def index(obj: _Context, paths: tuple[str, ...]) -> None:
    """Index recordings once (skips files already indexed) so searches need not touch the audio again.

    \b
    Example:
      voxwatch index /archive/2026
    """
    entries, errors = obj.engine().index(list(paths), _progress(obj))
    for e in entries:
        obj.emit(
            {
                "file": e.path,
                "sha256": e.sha256,
                "duration_s": e.duration_s,
                "speech_s": round(e.speech_s, 2),
                "segments": len(e.spans),
            },
            f"{e.path}\t{e.duration_s:.1f} s\t{e.speech_s:.1f} s speech\t{len(e.spans)} segments",
        )
    _fail_on(errors)


def _fail_on(errors: list[str]) -> None:
    for error in errors:
        click.echo(f"voxwatch: error: {error}", err=True)
    if errors:
        sys.exit(3)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--speaker", "speakers", multiple=True, help="Only this voice (repeatable) [default: all enrolled].")
@_operating_point
@click.option("--rttm", is_flag=True, help="Print RTTM lines instead.")
@click.pass_obj
@_guard
def search(
    obj: _Context, paths: tuple[str, ...], speakers: tuple[str, ...], threshold: float | None, fa_rate: float | None, rttm: bool
) -> None:
    """When does each enrolled voice speak? Searches FILES/DIRS (indexing them first), or the whole index.

    \b
    Examples:
      voxwatch search /archive/2026 --speaker "Jane Doe"
      voxwatch search --speaker "Jane Doe" --rttm > jane.rttm     # everything indexed so far
    """
    result = obj.engine(threshold, fa_rate).search(
        list(paths) or None, list(speakers) or None, progress=_progress(obj) if paths else None
    )
    found = result.detections
    for d in found:
        if rttm:
            click.echo(d.rttm())
        else:
            obj.emit(
                d.to_json(),
                f"{d.source}\t{clock(d.start_s)}-{clock(d.end_s)}\t{d.speaker}\tscore {d.score:.3f}\tLLR {d.llr:+.1f}",
            )
    if not found and not obj.as_json and not rttm:
        click.echo("no enrolled voice found", err=True)
    _fail_on(result.errors)


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--speaker", "speakers", multiple=True, help="Only watch for this voice (repeatable) [default: all enrolled].")
@click.option(
    "--pace",
    type=click.Choice(["realtime", "fast"]),
    default="realtime",
    show_default=True,
    help="Play files in real time or as fast as possible.",
)
@click.option("--rate", type=int, default=RATE_HZ, show_default=True, help="Sample rate of raw PCM on stdin ('-').")
@click.option(
    "--format",
    "encoding",
    type=click.Choice(["s16le", "s32le", "f32le", "u8"]),
    default="s16le",
    show_default=True,
    help="Sample format of raw PCM on stdin.",
)
@click.option("--channels", type=int, default=1, show_default=True, help="Channel count of raw PCM on stdin.")
@_operating_point
@click.option(
    "--alerts-file", type=click.Path(dir_okay=False), default=None, help="Also append every alert to this JSON-lines file."
)
@click.option(
    "--reconnect", type=int, default=0, show_default=True, help="Reconnect attempts (with backoff) when a network stream drops."
)
@click.option("--detections", is_flag=True, help="Also print every detected turn when it ends.")
@click.pass_obj
@_guard
def watch(
    obj: _Context,
    sources: tuple[str, ...],
    speakers: tuple[str, ...],
    pace: str,
    rate: int,
    encoding: str,
    channels: int,
    threshold: float | None,
    fa_rate: float | None,
    alerts_file: str | None,
    reconnect: int,
    detections: bool,
) -> None:
    """Watch live sources and alert the moment an enrolled voice speaks. Runs until the sources end or Ctrl-C.

    SOURCES are files, network streams (http, icecast, hls, rtsp, rtp, udp), '-' for raw PCM on stdin, or a sound
    card as alsa:NAME / pulse:NAME.

    \b
    Examples:
      voxwatch watch channel1.mp3 channel2.flac --pace realtime
      voxwatch watch http://radio.example/live.mp3 --speaker "Jane Doe" --reconnect 10 --alerts-file alerts.jsonl
      arecord -f S16_LE -r 8000 | voxwatch watch - --rate 8000
    """
    pcm = PcmFormat(encoding, rate, channels)
    engine = obj.engine(threshold, fa_rate)
    srcs = [open_source(s, realtime=pace == "realtime", pcm=pcm, reconnects=reconnect) for s in sources]
    sinks: list = [ConsoleSink(obj.as_json, detections=detections)]  # type: ignore[type-arg]
    if alerts_file:
        sinks.append(JsonLinesSink(alerts_file))
    summary = engine.watch(srcs, sinks, list(speakers) or None)
    if not obj.as_json:
        click.echo(f"{len(summary.alerts)} alert(s), {len(summary.detections)} detected turn(s)")
    _fail_on([s.error or s.source for s in summary.streams if s.state == "failed"])


@main.command("eval")
@click.argument("trials", type=click.Path(exists=True, dir_okay=False))
@click.option("--p-target", type=float, default=0.01, show_default=True, help="Target prior of the detection cost function.")
@click.option(
    "--det",
    "det_path",
    type=click.Path(dir_okay=False),
    default="det.png",
    show_default=True,
    help="Where to write the DET plot.",
)
@click.pass_obj
@_guard
def evaluate_cmd(obj: _Context, trials: str, p_target: float, det_path: str) -> None:
    """Evaluate on a VoxCeleb-style trial list ("1 enroll.wav test.wav" per line): EER, minDCF, Cllr, DET plot.

    \b
    Example:
      voxwatch eval trials.txt --p-target 0.01 --det det.png
    """
    from .trials import run_trials

    metrics = run_trials(obj.engine(), trials, p_target, det_path)
    obj.emit(
        metrics.to_json(),
        f"EER {metrics.eer * 100:.2f} %   minDCF(P_target={p_target}) {metrics.min_dcf:.3f}   "
        f"Cllr {metrics.cllr:.3f} bits (min {metrics.min_cllr:.3f})   {metrics.n_target} target / {metrics.n_nontarget} non-target trials\nDET plot: {det_path}",
    )


@main.command()
@click.argument("trials", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Where to write the calibration (JSON)."
)
@click.pass_obj
@_guard
def calibrate(obj: _Context, trials: str, out: Path) -> None:
    """Re-fit the score-to-LLR calibration on your own trial list ("1 enroll.wav test.wav" per line), then use it with
    --calibration FILE (or $VOXWATCH_CALIBRATION).

    \b
    Example:
      voxwatch calibrate our-trials.txt --out ours.json && voxwatch --calibration ours.json watch line1.wav
    """
    import numpy as np

    from .metrics import evaluate
    from .scoring import Calibration
    from .trials import score_trials

    engine = obj.engine()
    scores, speech, target = score_trials(engine, trials)
    fitted = Calibration.fit(scores, speech, target, np.arange(len(scores)))  # each trial counts as one turn
    old, new = engine.calibration().llr(scores, speech), fitted.llr(scores, speech)
    before, after = evaluate(old[target], old[~target]), evaluate(new[target], new[~target])
    try:
        out.write_text(json.dumps(fitted.to_json(), indent=1) + "\n")
    except OSError as exc:
        raise UsageError(f"{out}: cannot write the calibration ({exc.strerror})") from exc
    obj.emit(
        {
            "calibration": str(out),
            "cllr_before": before.cllr,
            "cllr_after": after.cllr,
            "min_cllr": after.min_cllr,
            "eer": after.eer,
        },
        f"Cllr on these trials: {before.cllr:.3f} bits with the current calibration, {after.cllr:.3f} after re-fitting"
        f" (minCllr {after.min_cllr:.3f}, EER {after.eer * 100:.2f} %); written to {out}",
    )


@main.command()
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Use real recordings: a folder with one sub-folder of audio per speaker.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="demo-out",
    show_default=True,
    help="Where the demo writes its audio, database and alerts.",
)
@click.option(
    "--pace",
    type=click.Choice(["realtime", "fast"]),
    default="fast",
    show_default=True,
    help="Play the demo stream in real time or as fast as possible.",
)
@click.option("--seconds", type=float, default=120.0, show_default=True, help="Length of the demo stream.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.pass_obj
@_guard
def demo(obj: _Context, data: str | None, out: str, pace: str, seconds: float, seed: int) -> None:
    """Make audio, enroll some voices, watch a stream where they speak among others, and score the alerts.

    \b
    Examples:
      voxwatch demo                                  # synthetic voices through a simulated broadcast channel
      voxwatch demo --data ../shared/data/resemblyzer/audio_data/librispeech_test-other
    """
    from .demo import run_demo

    run_demo(
        Path(out),
        data=Path(data) if data else None,
        realtime=pace == "realtime",
        seconds=seconds,
        seed=seed,
        as_json=obj.as_json,
        model=obj.model,
    )


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; anything but loopback exposes the API to the network.",
)
@click.option("--port", default=8686, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option(
    "--allow-dir",
    "allow_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Directory whose files may be named in requests (file streams, search paths); repeatable [default: none].",
)
@click.option(
    "--max-upload-mb", default=100.0, show_default=True, type=float, help="Largest enrollment upload (all files of one request)."
)
@_operating_point
@click.pass_obj
@_guard
def serve(
    obj: _Context,
    host: str,
    port: int,
    allow_dirs: tuple[Path, ...],
    max_upload_mb: float,
    threshold: float | None,
    fa_rate: float | None,
) -> None:
    """Run the HTTP API, the live dashboard (http://HOST:PORT/) and webhook delivery in one process.

    Every API call needs a bearer token: create one first with 'voxwatch token create NAME'.
    OpenAPI: /openapi.json, interactive docs: /docs.

    \b
    Example:
      voxwatch token create alice
      voxwatch serve --allow-dir /srv/recordings --port 8686
    """
    from .api import serve as run_service
    from .service import Service, ServiceOptions

    service = Service(obj.engine(threshold, fa_rate), ServiceOptions(allow_dirs=allow_dirs, max_upload_mb=max_upload_mb))
    run_service(service, host, port)


@main.group()
def token() -> None:
    """API tokens for 'voxwatch serve' (stored hashed; shown once, when created).

    \b
    Example:
      voxwatch token create operator-1
      voxwatch token list
    """


@token.command("create")
@click.argument("name")
@click.pass_obj
@_guard
def token_create(obj: _Context, name: str) -> None:
    """Create an API token and print it; this is the only time it is shown.

    \b
    Example:
      voxwatch token create operator-1
      curl -H "Authorization: Bearer vxw_..." http://127.0.0.1:8686/api/speakers
    """
    from .auth import create_token

    engine = obj.engine()
    secret = create_token(engine.store, name, engine.actor)
    obj.emit({"name": name, "token": secret}, secret)
    if not obj.as_json:
        click.echo(f"token {name!r} created; copy it now, it cannot be shown again", err=True)


@token.command("list")
@click.pass_obj
@_guard
def token_list(obj: _Context) -> None:
    """List API token names (never the tokens).

    \b
    Example:
      voxwatch token list --json
    """
    found = obj.engine().store.tokens()
    for t in found:
        obj.emit(t, f"{t['name']}\tcreated {t['created_at']} by {t['created_by']}")
    if not found and not obj.as_json:
        click.echo("no tokens; create one with 'voxwatch token create NAME'")


@main.command()
@click.argument("questioned", type=click.Path())
@click.option(
    "--reference",
    "references",
    multiple=True,
    required=True,
    type=click.Path(),
    help="A recording of the claimed speaker alone (repeatable).",
)
@click.option(
    "--report", "report_path", type=click.Path(dir_okay=False), default=None, help="Also write a self-contained HTML report here."
)
@click.pass_obj
@_guard
def compare(obj: _Context, questioned: str, references: tuple[str, ...], report_path: str | None) -> None:
    """Forensic-style comparison of a QUESTIONED recording with reference recordings of a claimed speaker (nothing
    needs to be enrolled): a calibrated likelihood ratio with its verbal scale, the quality of both sides, and a
    warning for every condition outside what the calibration covers.

    \b
    Example:
      voxwatch compare intercept.wav --reference suspect-interview1.wav --reference suspect-interview2.flac --report case-17.html
    """
    from .comparison import compare as run_compare
    from .errors import UsageError
    from .report import reproduce_command, write_report

    if report_path and not Path(report_path).absolute().parent.is_dir():
        raise UsageError(f"cannot write report {report_path}: its folder does not exist")
    engine = obj.engine()
    try:
        result = run_compare(engine, questioned, list(references))
    finally:
        engine.close()
    command = reproduce_command(result, report_path, obj.model)
    if report_path:
        write_report(result, report_path, command)
    if obj.as_json:
        click.echo(json.dumps({**result.to_json(), "report": report_path, "command": command}))
        return
    for role, r in [("questioned", result.questioned)] + [("reference", r) for r in result.references]:
        band = f"{r.bandwidth_hz:.0f} Hz" if r.bandwidth_hz else "n/a"
        click.echo(
            f"{role:<10}  {r.file}\n            {r.speech_s:.1f} s net speech of {r.duration_s:.1f} s, SNR {r.snr_db:.0f} dB, "
            f"bandwidth {band}, clipping {100 * r.clipping:.2f} %, sha256 {r.sha256}"
        )
    click.echo(f"score {result.score:.3f} (" + ", ".join(f"{c} {s:.3f}" for c, s in result.condition_scores) + ")")
    click.echo(f"LR {result.lr_text} (log10 LR {result.log10_lr:+.2f}): {result.verbal}")
    click.echo(result.statement)
    for warning in result.warnings:
        click.echo(f"warning: {warning}")
    if report_path:
        click.echo(f"report: {report_path}")
    click.echo(f"reproduce: {command}")
