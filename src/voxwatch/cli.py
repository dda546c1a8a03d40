"""The ``voxwatch`` command: the group with its global options; the commands live in ``cli_*`` modules by job.

A thin layer: each command resolves the settings once (file, environment, command line; see :mod:`.settings`),
calls one :class:`Engine` method, prints the result, and turns every :class:`VoxwatchError` into one line on stderr
and an exit code (:mod:`.cli_context`)."""

from __future__ import annotations

import click

from .cli_archive import index, search
from .cli_audit import audit
from .cli_context import GIVEN, LEVELS, Context, global_options
from .cli_forensic import calibrate, compare, evaluate_cmd
from .cli_live import demo, serve, token, watch
from .cli_transcripts import alerts, transcribe
from .cli_voices import enroll, forget, identify, speakers, verify
from .logs import configure_logging

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="voxwatch")
@click.pass_context
def main(ctx: click.Context) -> None:
    """voxwatch: enroll known voices, watch live streams for them, search archives.

    The options below may also be given after the command: 'voxwatch speakers --json --db cases.db'.

    \b
    Example session:
      voxwatch enroll alice alice-ref1.wav alice-ref2.flac --note "consented 2026-11-01, interview"
      voxwatch watch radio.mp3 http://icecast.example/stream --pace realtime
      voxwatch search /archive --speaker alice --rttm
    """
    given = ctx.meta.setdefault(GIVEN, {})
    configure_logging(LEVELS[min(given.get("verbose", 0), 2)], given.get("log_format") or "text")
    ctx.obj = Context(given)


def _with_global_options(command: click.Command) -> None:
    """Give ``command`` (and, for a group, each of its commands) the global options."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _with_global_options(sub)
    else:
        command.params.extend(global_options())


main.params.extend(global_options())
for _command in (
    enroll,
    speakers,
    forget,
    verify,
    identify,
    index,
    search,
    watch,
    alerts,
    transcribe,
    evaluate_cmd,
    calibrate,
    demo,
    serve,
    token,
    compare,
    audit,
):
    _with_global_options(_command)
    main.add_command(_command)
