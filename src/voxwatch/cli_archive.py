"""The archive commands: index recordings once, then search them for enrolled voices."""

from __future__ import annotations

import click

from .cli_context import Context, fail_on, guard, language_code, language_filter, operating_point, progress
from .sinks import clock


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.pass_obj
@guard
def index(obj: Context, paths: tuple[str, ...]) -> None:
    """Index recordings once (skips files already indexed) so searches need not touch the audio again.

    \b
    Example:
      voxwatch index /archive/2026
    """
    entries, errors = obj.engine().index(list(paths), progress(obj))
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
    fail_on(errors)


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--speaker", "speakers", multiple=True, help="Only this voice (repeatable) [default: all enrolled].")
@operating_point
@click.option("--rttm", is_flag=True, help="Print RTTM lines instead.")
@language_filter("hits")
@click.pass_obj
@guard
def search(
    obj: Context,
    paths: tuple[str, ...],
    speakers: tuple[str, ...],
    threshold: float | None,
    fa_rate: float | None,
    rttm: bool,
    language: str | None,
) -> None:
    """When does each enrolled voice speak? Searches FILES/DIRS (indexing them first), or the whole index.

    \b
    Examples:
      voxwatch search /archive/2026 --speaker "Jane Doe"
      voxwatch search --speaker "Jane Doe" --rttm > jane.rttm     # everything indexed so far
      voxwatch search /archive/calls --language ar                # only where a voice speaks Arabic
    """
    result = obj.engine(threshold, fa_rate).search(
        list(paths) or None, list(speakers) or None, progress=progress(obj) if paths else None, language=language_code(language)
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
    fail_on(result.errors)
