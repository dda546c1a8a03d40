"""What every ``voxwatch`` command shares: the global options (accepted before or after the command), the context
that resolves settings and builds the engine, the operating-point options, and the mapping of library errors to one
line on stderr and an exit code."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from .embedding import DEFAULT_MODEL
from .engine import Engine
from .errors import UsageError, VoxwatchError
from .logs import FORMATS, configure_logging
from .settings import Settings, resolve_settings


class Context:
    """The global options, wherever on the command line they were given (see :func:`global_options`): the settings
    file, the settings given on the command line, and the output format."""

    def __init__(self, given: dict[str, Any]):
        self._given = given  # shared with the option callbacks, which fill it while the command line is parsed

    @property
    def config(self) -> Path | None:
        return self._given.get("config")

    @property
    def as_json(self) -> bool:
        return bool(self._given.get("json"))

    @property
    def given(self) -> dict[str, object]:
        """The settings given on the command line, keyed as :data:`.settings.KEYS`."""
        return {key: self._given.get(key) for key in ("db", "model", "asr_model", "calibration", "log_format")}

    def settings(
        self, threshold_llr: float | None = None, false_alarms_per_hour: float | None = None, retain_days: float | None = None
    ) -> Settings:
        """Defaults, then the settings file, then the environment, then the command line (see :mod:`.settings`)."""
        if threshold_llr is not None and false_alarms_per_hour is not None:
            raise UsageError("give --threshold or --false-alarms-per-hour, not both")
        given = {
            **self.given,
            "threshold": threshold_llr,
            "false_alarms_per_hour": false_alarms_per_hour,
            "retain_days": retain_days,
        }
        settings = resolve_settings(self.config, given)
        configure_logging(log_format=settings.log_format)  # the settings file or environment may name it
        return settings

    def engine(
        self,
        threshold_llr: float | None = None,
        false_alarms_per_hour: float | None = None,
        retain_days: float | None = None,
        workers: int | None = None,
    ) -> Engine:
        settings = self.settings(threshold_llr, false_alarms_per_hour, retain_days)
        return Engine(settings if workers is None else dataclasses.replace(settings, workers=workers))

    def emit(self, record: dict[str, Any], text: str) -> None:
        click.echo(json.dumps(record) if self.as_json else text)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Keep a global option's value if it was given on the command line (after the command, it wins)."""
    if ctx.get_parameter_source(param.name or "") is not ParameterSource.COMMANDLINE:
        return
    given = ctx.meta.setdefault(GIVEN, {})  # ctx.meta is shared by the group's and the command's contexts
    given[param.name] = value
    if param.name == "verbose":
        configure_logging(LEVELS[min(value, 2)])
    elif param.name == "log_format":
        configure_logging(log_format=value)


LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)  # -v count → log level
GIVEN = "voxwatch.given"  # the key of the global options' values in ``click.Context.meta``


def global_options() -> list[click.Option]:
    """The options every command takes, before or after its name: ``voxwatch --json speakers`` and
    ``voxwatch speakers --json`` are the same."""
    common: dict[str, Any] = {"expose_value": False, "callback": _remember}
    return [
        click.Option(
            ["--db"],
            metavar="FILE|URL",
            help="Database: a SQLite file, or a PostgreSQL server as postgresql://USER@HOST:PORT/DBNAME"
            " (needs voxwatch[postgres]) [default: voxwatch.db in the user data dir].",
            **common,
        ),
        click.Option(
            ["--model"],
            help="Embedding model: voxwatch-enc, ge2e, a .onnx path, hf:OWNER/REPO/FILE.onnx, or WIDE+NARROW, one for"
            f" wideband and one for narrowband (telephone, radio) channels [default: {DEFAULT_MODEL}].",
            **common,
        ),
        click.Option(
            ["--asr-model"],
            help="Speech recognition model: a CTranslate2 Whisper folder [default: the shipped Whisper base].",
            **common,
        ),
        click.Option(
            ["--calibration"],
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Calibration file from 'voxwatch calibrate' [default: the shipped one for the model].",
            **common,
        ),
        click.Option(
            ["--config"],
            type=click.Path(dir_okay=False, path_type=Path),
            help="Settings file (TOML) [default: $VOXWATCH_CONFIG, else voxwatch.toml in the user config dir].",
            **common,
        ),
        click.Option(["--json"], is_flag=True, help="Print one JSON object per line.", **common),
        click.Option(["-v", "--verbose"], count=True, help="More log output (-vv for debug).", **common),
        click.Option(
            ["--log-format"],
            type=click.Choice(FORMATS),
            help="Log lines as text or one JSON object per line, each with its UTC time [default: text; settings key log_format].",
            **common,
        ),
    ]


def operating_point(fn: Callable[..., None]) -> Callable[..., None]:
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


def worker_count(fn: Callable[..., None]) -> Callable[..., None]:
    """``--workers``: how many recordings are analysed at once."""
    return click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=None,
        help=f"How many recordings are analysed at once, each on a core [default: {Settings().workers}].",
    )(fn)


def language_filter(what: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """``--language CODE``: keep only ``what`` spoken in that language (checked by :func:`language_code`)."""
    return click.option("--language", default=None, help=f"Only {what} spoken in this language (en, nl, ar, ...).")


def language_code(value: str | None) -> str | None:
    """A ``--language`` value as the model names languages (ISO 639-1, lower case), or a usage error."""
    if value is not None and not re.fullmatch(r"[a-z]{2,3}", value):
        raise UsageError(f"--language {value!r} is not a language code; use ISO 639-1 codes such as en, nl, de, ar")
    return value


def guard(fn: Callable[..., None]) -> Callable[..., None]:
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


def fail_on(errors: list[str]) -> None:
    """Print each error on stderr, then exit with the audio error code if there were any."""
    for error in errors:
        click.echo(f"voxwatch: error: {error}", err=True)
    if errors:
        sys.exit(3)


STDIN = "-"  # a file argument that means: the audio comes on stdin


@contextmanager
def stdin_audio(paths: Sequence[str]) -> Iterator[list[str]]:
    """``paths`` with ``-`` replaced by a private temporary file holding the audio read from stdin (removed after)."""
    if list(paths).count(STDIN) > 1:
        raise UsageError("'-' (audio on stdin) can be given only once")
    if STDIN not in paths:
        yield list(paths)
        return
    stream = sys.stdin.buffer
    if stream.isatty():
        raise UsageError("'-' reads a recording from stdin, but stdin is a terminal; pipe one in (… < call.wav)")
    with tempfile.TemporaryDirectory(prefix="voxwatch-") as folder:  # mode 0700: the audio is personal data
        spooled = Path(folder) / "stdin"
        with open(spooled, "wb") as out:
            shutil.copyfileobj(stream, out)
        yield [str(spooled) if p == STDIN else p for p in paths]
