"""Settings and their one resolution: defaults, then a TOML file, then ``VOXWATCH_*`` variables, then the command line.

The settings file is ``--config FILE``, else ``$VOXWATCH_CONFIG``, else ``voxwatch.toml`` in the user config
directory (that one may be missing). It holds any of the keys in :data:`KEYS`, e.g.::

    db = "~/cases/voxwatch.db"        # relative paths are relative to the file's folder; or a PostgreSQL server:
                                      # db = "postgresql://voxwatch@db.example:5432/voxwatch"
    model = "voxwatch-enc"
    false_alarms_per_hour = 0.05      # or: threshold = 3.0

This module is the only place that reads the environment for settings.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from .channels import CONDITIONS
from .embedding import DEFAULT_MODEL
from .errors import UsageError
from .logs import FORMATS
from .pipeline import SpotterOptions
from .store.dialect import is_url

__all__ = ["KEYS", "Settings", "config_path", "default_db", "resolve_settings"]


def default_db() -> Path:
    """``voxwatch.db`` in the user data directory."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("voxwatch")) / "voxwatch.db"


@dataclass(frozen=True)
class Settings:
    """Everything configurable. ``Settings()`` is the defaults; :func:`resolve_settings` adds file, environment and
    command line."""

    db: Path | str = field(default_factory=default_db)  # a SQLite file, or a postgresql:// URL
    model: str = DEFAULT_MODEL
    asr_model: str | None = None  # a CTranslate2 Whisper directory; None: the shipped Whisper base
    threads: int = 1
    spotter: SpotterOptions = field(default_factory=SpotterOptions)
    calibration: Path | None = None  # a file from 'voxwatch calibrate'; None: the shipped calibration
    verify_threshold_llr: float = 2.303  # accept at LR >= 10 ("moderate support" on the ENFSI scale) or more
    min_enroll_speech_s: float = 3.0
    min_same_speaker: float = 0.65  # segments of one enrollment recording less alike than this: several voices
    enroll_conditions: tuple[str, ...] = CONDITIONS  # channels each enrollment is also heard through
    max_parallel_files: int = 8  # files one indexing worker decodes at once, as streams of one spotter
    workers: int = 2  # indexing processes
    index_hop_s: float = 1.6  # archives are embedded every 1.6 s of speech (live streams every hop_s)
    search_prefilter_llr: float = 4.0  # how far below the LLR threshold a voice summary still gets its segments scored
    search_merge_gap_s: float = 2.0  # one voice's detections closer than this form one region in search results
    retain_days: float | None = None  # serve and watch purge alerts, snippets and detections older than this
    log_format: str = "text"  # log lines as text or JSON objects (voxwatch.logs)


def _database(value: object) -> Path | str:
    """A PostgreSQL URL as given, anything else as a file path."""
    return str(value) if is_url(str(value)) else Path(str(value))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _whole(value: object) -> int | None:
    if isinstance(value, str):
        value = int(value) if value.strip().isdigit() else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def _number(value: object) -> float | None:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    fit = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if fit else None  # type: ignore[arg-type]


def _rate(value: object) -> float | None:
    rate = _number(value)
    return rate if rate is not None and rate > 0 else None


@dataclass(frozen=True)
class _Key:
    parse: Callable[[object], object | None]  # the value, or None when it is unfit
    wanted: str  # what a fit value looks like, for the error message
    example: str


# Every setting the file, the environment (VOXWATCH_<KEY>) and the command line can give.
KEYS: dict[str, _Key] = {
    "db": _Key(_text, "a file name or a postgresql:// URL", '"voxwatch.db"'),
    "model": _Key(_text, "a model name or file", '"voxwatch-enc"'),
    "asr_model": _Key(_text, "a CTranslate2 Whisper folder", '"whisper-small-ct2"'),
    "calibration": _Key(_text, "a file from 'voxwatch calibrate'", '"ours.json"'),
    "threads": _Key(_whole, "a whole number of 1 or more", "2"),
    "false_alarms_per_hour": _Key(_rate, "a positive number", "0.1"),
    "threshold": _Key(_number, "a number (a log-likelihood ratio)", "3.0"),
    "retain_days": _Key(_rate, "a positive number of days", "30"),
    "log_format": _Key(lambda v: v if v in FORMATS else None, '"text" or "json"', '"json"'),
}
_PATHS = ("db", "calibration")


def config_path(config: str | Path | None = None, environ: Mapping[str, str] | None = None) -> tuple[Path, str | None]:
    """The settings file to read and what named it: ``--config``, else ``$VOXWATCH_CONFIG``, else the default file
    (what named it is then None: it may be missing)."""
    environ = os.environ if environ is None else environ
    if config:
        return Path(config).expanduser(), "--config"
    if environ.get("VOXWATCH_CONFIG"):
        return Path(environ["VOXWATCH_CONFIG"]).expanduser(), "$VOXWATCH_CONFIG"
    from platformdirs import user_config_dir

    return Path(user_config_dir("voxwatch")) / "voxwatch.toml", None


def _read_file(path: Path, named_by: str | None) -> dict[str, object]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if named_by is None:
            return {}
        raise UsageError(f"{path}: no such settings file (named by {named_by}); fix the path or create the file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the settings file ({exc}); fix its permissions or encoding") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc}); write one 'key = value' per line") from exc
    values: dict[str, object] = {}
    for key, value in raw.items():
        if key not in KEYS:
            known = ", ".join(KEYS)
            raise UsageError(f"{path}: unknown key '{key}'; the keys are {known} (spelt with underscores)")
        values[key] = _parse(key, value, f"{path}: {key} = {value!r}", f"write e.g. {key} = {KEYS[key].example}")
        if key in _PATHS and not is_url(str(values[key])):
            values[key] = path.parent / Path(str(values[key])).expanduser()
        if key == "calibration" and not Path(str(values[key])).is_file():
            raise UsageError(f"{path}: calibration = {value!r}: no such file ({values[key]}); fix the path or remove the key")
    return values


def _read_environment(environ: Mapping[str, str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for key, spec in KEYS.items():
        name = f"VOXWATCH_{key.upper()}"
        if environ.get(name):  # empty counts as unset
            example = spec.example.strip('"')
            values[key] = _parse(key, environ[name], f"${name}={environ[name]!r}", f"set e.g. {name}={example} or unset it")
            if key in _PATHS and not is_url(str(values[key])):
                values[key] = Path(str(values[key])).expanduser()
            if key == "calibration" and not Path(str(values[key])).is_file():
                raise UsageError(f"${name}={environ[name]!r}: no such file; fix the path or unset it")
    return values


def _parse(key: str, value: object, where: str, fix: str) -> object:
    parsed = KEYS[key].parse(value)
    if parsed is None:
        raise UsageError(f"{where} is not {KEYS[key].wanted}; {fix}")
    return parsed


def resolve_settings(
    config: str | Path | None = None,
    overrides: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """The settings from defaults, then the settings file (see :func:`config_path`), then ``VOXWATCH_*`` variables
    in ``environ`` (default: the process environment), then ``overrides`` (the options given on the command line,
    keyed as :data:`KEYS`; None values are ignored). Later layers win key by key; the operating point
    (``threshold`` or ``false_alarms_per_hour``) comes whole from the last layer that sets either.

    Raises :class:`UsageError` for a missing explicit file, a bad file, a bad value or an unknown key."""
    environ = os.environ if environ is None else environ
    path, named_by = config_path(config, environ)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    for key in given:
        if key not in KEYS:
            raise UsageError(f"unknown setting '{key}'; the settings are {', '.join(KEYS)}")
    layers = [
        (_read_file(path, named_by), f"{path}: give threshold or false_alarms_per_hour, not both; remove one"),
        (_read_environment(environ), "set $VOXWATCH_THRESHOLD or $VOXWATCH_FALSE_ALARMS_PER_HOUR, not both; unset one"),
        (given, "give --threshold or --false-alarms-per-hour, not both"),
    ]
    values: dict[str, object] = {}
    for layer, both in layers:
        if "threshold" in layer and "false_alarms_per_hour" in layer:
            raise UsageError(both)
        if "threshold" in layer or "false_alarms_per_hour" in layer:
            values.pop("threshold", None)
            values.pop("false_alarms_per_hour", None)
        values.update(layer)
    calibration = values.get("calibration")
    defaults = Settings()
    spotter = defaults.spotter
    if "threshold" in values or "false_alarms_per_hour" in values:
        spotter = replace(
            spotter,
            threshold_llr=values.get("threshold"),  # type: ignore[arg-type]
            false_alarms_per_hour=values.get("false_alarms_per_hour", spotter.false_alarms_per_hour),  # type: ignore[arg-type]
        )
    return replace(
        defaults,
        db=_database(values.get("db", defaults.db)),
        model=str(values.get("model", defaults.model)),
        asr_model=str(values["asr_model"]) if "asr_model" in values else None,
        threads=int(values.get("threads", defaults.threads)),  # type: ignore[call-overload]
        calibration=Path(str(calibration)) if calibration is not None else None,
        spotter=spotter,
        retain_days=values.get("retain_days"),  # type: ignore[arg-type]
        log_format=str(values.get("log_format", defaults.log_format)),
    )
