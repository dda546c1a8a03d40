"""The archive commands: index recordings once, then search them for enrolled voices."""

from __future__ import annotations

import click

from .cli_context import Context, fail_on, guard, language_code, language_filter, operating_point, worker_count
from .cli_progress import Progress
from .indexing import CHUNK_S
from .rttm import file_ids, rttm_line
from .sinks import clock


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@worker_count
@click.option(
    "--ray",
    "ray_address",
    metavar="auto|ray://HOST:PORT",
    default=None,
    help="Segment on a Ray cluster, a task per group of files (the files at the same paths on every node);"
    " needs pip install 'voxwatch[cluster]'.",
)
@click.option(
    "--chunk-minutes",
    type=click.FloatRange(min=1),
    default=CHUNK_S / 60,
    show_default=True,
    help="With --ray, split a file longer than this into time ranges (cut in pauses), a task each.",
)
@click.pass_obj
@guard
def index(obj: Context, paths: tuple[str, ...], workers: int | None, ray_address: str | None, chunk_minutes: float) -> None:
    """Index recordings once (skips files already indexed) so searches need not touch the audio again. Shows progress
    on a terminal; with --json, one progress line per file on stderr. On a cluster, long files are split into
    chunks, indexed by separate tasks and joined again (one entry per file, as without --ray).

    \b
    Example:
      voxwatch index /archive/2026 --workers 4
      voxwatch index /shared/archive --ray auto --chunk-minutes 20
    """
    if ray_address is not None:
        from .cluster import require_ray

        require_ray()
    with Progress("indexing", obj.as_json) as progress:
        entries, errors = obj.engine(workers=workers).index(list(paths), progress, ray_address, chunk_minutes * 60)
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
@click.option("--rttm", is_flag=True, help="Print RTTM lines instead (file ids: paths relative to the searched folder).")
@worker_count
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
    workers: int | None,
    language: str | None,
) -> None:
    """When does each enrolled voice speak? Searches FILES/DIRS (indexing them first), or the whole index.

    \b
    Examples:
      voxwatch search /archive/2026 --speaker "Jane Doe"
      voxwatch search --speaker "Jane Doe" --rttm > jane.rttm     # everything indexed so far
      voxwatch search /archive/calls --language ar                # only where a voice speaks Arabic
    """
    with Progress("indexing", obj.as_json) as progress:
        result = obj.engine(threshold, fa_rate, workers).search(
            list(paths) or None, list(speakers) or None, progress=progress, language=language_code(language)
        )
    found = result.detections
    ids = file_ids((d.source for d in found), list(paths) or [r.path for r in result.recordings])
    for d in found:
        if rttm:
            click.echo(rttm_line(d, ids[d.source]))
        else:
            obj.emit(
                d.to_json(),
                f"{d.source}\t{clock(d.start_s)}-{clock(d.end_s)}\t{d.speaker}\tscore {d.score:.3f}\tLLR {d.llr:+.1f}",
            )
    if not found and not obj.as_json and not rttm:
        click.echo("no enrolled voice found", err=True)
    fail_on(result.errors)
