"""The log lines of every ``voxwatch`` command (uvicorn's included, under ``serve``): an ISO 8601 UTC time, the
level, the logger and the message, as text or as one JSON object per line (``--log-format json``).

Text: ``2026-12-01T15:02:11.342Z WARNING voxwatch.watch: 1 of 3 streams falling behind real time ...``

JSON: ``{"time": "2026-12-01T15:02:11.342Z", "level": "WARNING", "logger": "voxwatch.watch", "message": "..."}``, with
``"exception"`` (the traceback text) when there is one."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from .errors import UsageError

FORMATS = ("text", "json")


def _utc(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: MESSAGE``, the traceback on the lines below."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message`` and, when there is one, ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": _utc(record), "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (a test runner may swap it)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr


_HANDLER = _Stderr()


def configure_logging(level: int | None = None, log_format: str | None = None) -> None:
    """Send the root logger's records to stderr in ``log_format`` (text or json) from ``level`` up; None keeps what is
    set (at first: WARNING, text). Called by the CLI as the options and the settings are read."""
    root = logging.getLogger()
    if _HANDLER not in root.handlers:
        root.addHandler(_HANDLER)
        _HANDLER.setFormatter(TextFormatter())
        root.setLevel(logging.WARNING)
    if level is not None:
        root.setLevel(level)
    if log_format is not None:
        if log_format not in FORMATS:
            raise UsageError(f"log format {log_format!r}: use one of {', '.join(FORMATS)}")
        _HANDLER.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
