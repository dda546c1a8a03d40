"""Progress of long batch work on the command line: on a terminal, one redrawn line on stderr with a bar, the count of
files, the hours of audio done and the time left; under ``--json``, one JSON line per finished file on stderr (stdout
keeps the results)."""

from __future__ import annotations

import json
import sys
import time
from typing import Self, TextIO

from .records import FileDone

WIDTH = 24  # characters of the bar


def duration(seconds: float) -> str:
    """``1:02:03`` or ``2:03``."""
    minutes, s = divmod(round(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}" if hours else f"{m}:{s:02d}"


class Progress:
    """Called with each :class:`FileDone` of a batch; :meth:`close` (or leaving ``with``) ends the terminal line."""

    def __init__(self, verb: str, as_json: bool, stream: TextIO | None = None):
        self.verb = verb
        self.as_json = as_json
        self.stream = stream or sys.stderr
        self.drawn = False
        self.audio_s = 0.0
        self.started = time.monotonic()

    def __call__(self, file: FileDone) -> None:
        self.audio_s += file.duration_s
        if self.as_json:
            self.stream.write(json.dumps({"type": "progress", **file.to_json()}) + "\n")
            self.stream.flush()
        elif self.stream.isatty():
            self.stream.write("\r\033[K" + self.line(file, time.monotonic() - self.started))
            self.stream.flush()
            self.drawn = True

    def line(self, file: FileDone, elapsed_s: float) -> str:
        """The progress line after ``file``, ``elapsed_s`` into the batch."""
        filled = WIDTH * file.done // max(file.total, 1)
        left = elapsed_s / file.done * (file.total - file.done) if file.done else 0.0
        return (
            f"{self.verb} [{'#' * filled}{'.' * (WIDTH - filled)}] {file.done}/{file.total} files,"
            f" {self.audio_s / 3600:.2f} h of audio, {duration(elapsed_s)} elapsed, ETA {duration(left)}"
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.drawn = False
