"""What every ``voxwatch`` command shares: the context that resolves settings and builds the engine, the
operating-point options, and the mapping of library errors to one line on stderr and an exit code."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from .engine import Engine
from .errors import UsageError, VoxwatchError
from .settings import Settings, resolve_settings


class Context:
    """The group's options: the settings file, the settings given on the command line, and the output format."""

    def __init__(self, config: Path | None, given: dict[str, object], as_json: bool):
        self.config, self.given, self.as_json = config, given, as_json

    def settings(self, threshold_llr: float | None = None, false_alarms_per_hour: float | None = None) -> Settings:
        """Defaults, then the settings file, then the environment, then the command line (see :mod:`.settings`)."""
        if threshold_llr is not None and false_alarms_per_hour is not None:
            raise UsageError("give --threshold or --false-alarms-per-hour, not both")
        given = {**self.given, "threshold": threshold_llr, "false_alarms_per_hour": false_alarms_per_hour}
        return resolve_settings(self.config, given)

    def engine(self, threshold_llr: float | None = None, false_alarms_per_hour: float | None = None) -> Engine:
        return Engine(self.settings(threshold_llr, false_alarms_per_hour))

    def emit(self, record: dict[str, Any], text: str) -> None:
        click.echo(json.dumps(record) if self.as_json else text)


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


def progress(obj: Context) -> Callable[[str, str | None], None]:
    """Report each file as it is indexed or fails, on stderr (not with --json)."""

    def report(path: str, error: str | None) -> None:
        if not obj.as_json:
            click.echo(f"  {'failed' if error else 'indexed'} {path}" + (f": {error}" if error else ""), err=True)

    return report


def fail_on(errors: list[str]) -> None:
    """Print each error on stderr, then exit with the audio error code if there were any."""
    for error in errors:
        click.echo(f"voxwatch: error: {error}", err=True)
    if errors:
        sys.exit(3)
