"""The transcript commands: named transcripts of recordings, and alerts listed by voice, time, words and language."""

from __future__ import annotations

import csv
import json
import sys

import click

from .audio import find_audio_files
from .cli_context import Context, fail_on, guard, language_code, language_filter, operating_point
from .errors import AudioError
from .named_transcripts import as_srt, as_text, as_vtt
from .rttm import file_ids, rttm_line
from .service import utc_iso
from .sinks import clock

FORMATS = ["text", "srt", "vtt", "json", "rttm"]


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True, help="Output format.")
@language_filter("turns")
@operating_point
@click.pass_obj
@guard
def transcribe(
    obj: Context, files: tuple[str, ...], fmt: str, language: str | None, threshold: float | None, fa_rate: float | None
) -> None:
    """Who said what, in which language: each speech turn with its enrolled voice (by the same decision as 'search')
    or "unknown speaker N" (numbered within each recording), its language and its text. Turns print as soon as
    they are transcribed; a progress bar runs on stderr.

    \b
    Examples:
      voxwatch transcribe interview.mp3
      voxwatch transcribe hearing.flac --format srt > hearing.srt
      voxwatch transcribe /archive/call-0142.wav --format json --language nl
    """
    language = language_code(language)
    engine = obj.engine(threshold, fa_rate)
    _ = engine.transcriber  # a missing model stops here, before any audio is read
    paths = [str(f) for f in find_audio_files(list(files))]
    if not paths:
        raise AudioError("no audio files found under the given paths")
    ids = file_ids(paths, list(files))
    errors: list[str] = []
    if fmt == "vtt":
        click.echo("WEBVTT\n")
    number = 0
    for path in paths:
        try:
            bar_shown = sys.stderr.isatty() and not obj.as_json
            with click.progressbar(length=1000, label=path, file=sys.stderr, hidden=not bar_shown) as bar:

                def progress(fraction: float, bar=bar) -> None:  # type: ignore[no-untyped-def]
                    bar.update(int(fraction * 1000) - bar.pos)

                for turn in engine.transcribe(path, progress):
                    if language and turn.language != language:
                        continue
                    number += 1
                    if fmt == "json" or obj.as_json:
                        click.echo(json.dumps(turn.to_json()))
                    elif fmt == "srt":
                        click.echo(as_srt(turn, number))
                    elif fmt == "vtt":
                        click.echo(as_vtt(turn))
                    elif fmt == "rttm":
                        click.echo(rttm_line(turn, ids[path]))
                    else:
                        click.echo(as_text(turn))
        except AudioError as exc:
            errors.append(str(exc))
    fail_on(errors)


ALERT_COLUMNS = [
    "alert_id", "wall_time", "source", "speaker", "stream_time_s", "segment_start_s", "score", "llr",
    "transcript_status", "language", "language_probability", "text",
]  # fmt: skip


@click.command()
@click.option("--speaker", default=None, help="Only this voice.")
@click.option("--source", default=None, help="Only this stream (its source as watched).")
@click.option("--since", default=None, help="Alerts at or after this time (ISO 8601, e.g. 2026-11-29T08:00:00Z).")
@click.option("--until", default=None, help="Alerts at or before this time (ISO 8601).")
@click.option("--text", default=None, help='Words said in the alerted turn (all must occur; "a phrase"; prefix*).')
@language_filter("alerts whose turn was")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=1000, show_default=True, help="Newest this many.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "jsonl", "csv"]), default="text", show_default=True, help="Output format."
)
@click.pass_obj
@guard
def alerts(
    obj: Context,
    speaker: str | None,
    source: str | None,
    since: str | None,
    until: str | None,
    text: str | None,
    language: str | None,
    limit: int,
    fmt: str,
) -> None:
    """List stored alerts, oldest first, with what was said in each alerted turn and in which language.

    \b
    Examples:
      voxwatch alerts --speaker "Jane Doe" --since 2026-11-29T08:00:00Z
      voxwatch alerts --text "bridge" --language en
      voxwatch alerts --format csv > alerts.csv
    """
    language = language_code(language)
    engine = obj.engine()
    if speaker:
        engine.store.enrollments(speaker)  # an unknown voice is an error, not an empty list
    records = engine.store.alert_records(
        speaker, source, utc_iso(since, "--since"), utc_iso(until, "--until"), limit=limit, text=text, language=language
    )[::-1]
    filters = {
        k: v for k, v in {"source": source, "since": since, "until": until, "text": text, "language": language}.items() if v
    }
    engine.store.audit(engine.actor, "alerts", speaker or "*", json.dumps(filters))
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(ALERT_COLUMNS)
        for r in records:
            t = r["transcript"] or {}
            row = {
                **r,
                "transcript_status": t.get("status", ""),
                **{k: t.get(k, "") for k in ("language", "language_probability", "text")},
            }
            writer.writerow([row.get(c, "") for c in ALERT_COLUMNS])
        return
    for r in records:
        t = r["transcript"] or {}
        said = f"{t['language']}: {t['text']}" if t.get("status") == "done" else (f"({t['status']}: {t['reason']})" if t else "")
        line = f"{r['wall_time']}\t{r['speaker']}\t{r['source']}\t{clock(float(r['stream_time_s']))}\tLLR {float(r['llr']):+.1f}\t{said}"  # type: ignore[arg-type]
        if fmt == "jsonl" or obj.as_json:
            click.echo(json.dumps(r))
        else:
            click.echo(line)
    if not records and fmt == "text" and not obj.as_json:
        click.echo("no alerts match", err=True)
