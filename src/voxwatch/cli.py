"""The ``voxwatch`` command: the group with its global options; the commands live in ``cli_*`` modules by job.

A thin layer: each command resolves the settings once (file, environment, command line; see :mod:`.settings`),
calls one :class:`Engine` method, prints the result, and turns every :class:`VoxwatchError` into one line on stderr
and an exit code (:mod:`.cli_context`)."""

from __future__ import annotations

import logging
from pathlib import Path

import click
from click.core import ParameterSource

from .cli_archive import index, search
from .cli_context import Context
from .cli_forensic import calibrate, compare, evaluate_cmd
from .cli_live import demo, serve, token, watch
from .cli_transcripts import alerts, transcribe
from .cli_voices import enroll, forget, identify, speakers, verify
from .embedding import DEFAULT_MODEL

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Database file [default: user data dir].",
)
@click.option(
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Embedding model: voxwatch-enc, ge2e, a .onnx path, or hf:OWNER/REPO/FILE.onnx.",
)
@click.option(
    "--asr-model",
    default=None,
    help="Speech recognition model: a CTranslate2 Whisper folder [default: the shipped Whisper base].",
)
@click.option(
    "--calibration",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Calibration file from 'voxwatch calibrate' [default: the shipped one].",
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Settings file (TOML) [default: $VOXWATCH_CONFIG, else voxwatch.toml in the user config dir].",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="voxwatch")
@click.pass_context
def main(
    ctx: click.Context,
    db: Path | None,
    model: str,
    asr_model: str | None,
    calibration: Path | None,
    config: Path | None,
    as_json: bool,
    verbose: int,
) -> None:
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
    # Only options given on the command line override the settings file and the environment; --model's shown
    # default is the built-in one.
    given_model = model if ctx.get_parameter_source("model") is ParameterSource.COMMANDLINE else None
    ctx.obj = Context(config, {"db": db, "model": given_model, "asr_model": asr_model, "calibration": calibration}, as_json)


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
):
    main.add_command(_command)
