"""Immutable value types that cross module boundaries, each with a JSON round-trip."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np


class _JsonRecord:
    """``to_json``/``from_json`` for flat dataclasses of JSON-able fields."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class AudioChunk:
    """A block of one stream's audio: 16 kHz mono float32, ``start_s`` counted from the stream's first sample."""

    source: str
    start_s: float
    samples: np.ndarray = field(repr=False)
    rate_hz: int = 16000  # audio.RATE_HZ: records import nothing of voxwatch (audio imports them)

    @property
    def end_s(self) -> float:
        return self.start_s + len(self.samples) / self.rate_hz


@dataclass(frozen=True)
class Segment(_JsonRecord):
    """One speaker-homogeneous speech turn in a recording or stream: its mean embedding, and how consistent
    its windows were with that mean (``consistency``, mean cosine)."""

    source: str
    start_s: float
    end_s: float
    speech_s: float
    consistency: float
    embedding: tuple[float, ...] = field(repr=False)
    bandwidth_hz: float = 0.0  # the channel's upper band edge where it was heard (0: unknown)

    def vector(self) -> np.ndarray:
        return np.asarray(self.embedding, np.float32)


@dataclass(frozen=True)
class Evidence(_JsonRecord):
    """The running score of a turn against every watched voice after one more window (emitted when tracing)."""

    source: str
    turn_start_s: float
    stream_time_s: float
    speech_s: float
    scores: tuple[float, ...]


@dataclass(frozen=True)
class Detection(_JsonRecord):
    """An enrolled voice found speaking in ``source`` from ``start_s`` to ``end_s``."""

    source: str
    speaker: str
    start_s: float
    end_s: float
    score: float
    llr: float


@dataclass(frozen=True)
class Alert(_JsonRecord):
    """Raised while a watched voice is still speaking: ``stream_time_s`` is when the evidence sufficed,
    ``segment_start_s`` where that turn began, both in the stream's own clock."""

    alert_id: str
    source: str
    speaker: str
    stream_time_s: float
    segment_start_s: float
    score: float
    llr: float
    speech_s: float
    wall_time: str


@dataclass(frozen=True)
class Quiet(_JsonRecord):
    """A stream fell silent with no turn open and everything before ``at_s`` decided: a point it can resume from
    (a fresh state at ``at_s``, remembering when each voice was last heard) and raise the same alerts."""

    source: str
    at_s: float
    last_heard: dict[str, float]


@dataclass(frozen=True)
class Candidate(_JsonRecord):
    """One enrolled voice scored against a recording."""

    speaker: str
    score: float
    llr: float


@dataclass(frozen=True)
class Verification(_JsonRecord):
    """The outcome of comparing a recording with one enrolled voice."""

    file: str
    speaker: str
    score: float
    llr: float
    accepted: bool
    speech_s: float


@dataclass(frozen=True)
class EnrollmentInfo(_JsonRecord):
    """What the store keeps about one enrollment recording (never the audio)."""

    speaker: str
    file: str
    sha256: str
    speech_s: float
    snr_db: float
    consistency: float
    note: str
    created_at: str
    model: str


@dataclass(frozen=True)
class SpeakerInfo(_JsonRecord):
    """An enrolled voice: name, how much speech backs it, and its enrollments' provenance notes."""

    name: str
    enrollments: int
    speech_s: float
    created_at: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileDone(_JsonRecord):
    """Progress of a batch (indexing, enrollment, a trial list): file number ``done`` of ``total`` has finished, with
    ``duration_s`` of audio, or failed with ``error``."""

    file: str
    done: int
    total: int
    duration_s: float
    error: str | None = None


@dataclass(frozen=True)
class TimedText(_JsonRecord):
    """A stretch of recognised text and when it was said (seconds, in the clock of the audio it came from)."""

    start_s: float
    end_s: float
    text: str


class _WithSegments(_JsonRecord):
    """``from_json`` for records whose ``segments`` are :class:`TimedText` values."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        record = super().from_json(data)
        return dataclasses.replace(record, segments=tuple(TimedText.from_json(s) for s in data.get("segments", ())))  # type: ignore[type-var]


@dataclass(frozen=True)
class Transcript(_WithSegments):
    """What was said in a stretch of audio and in which language (ISO 639-1 code, with the model's probability)."""

    language: str
    language_probability: float
    text: str
    segments: tuple[TimedText, ...] = ()


@dataclass(frozen=True)
class AlertTranscript(_WithSegments):
    """The follow-up of an alert once its turn has ended: what the voice said (``status`` ``done``), or why there is
    no transcript (``dropped``: the transcription queue was full; ``failed``: the model failed), in ``reason``.
    ``start_s``/``end_s`` and the segment times are in the stream's clock."""

    alert_id: str
    source: str
    speaker: str
    start_s: float
    end_s: float
    status: str
    language: str = ""
    language_probability: float = 0.0
    text: str = ""
    segments: tuple[TimedText, ...] = ()
    reason: str = ""
    transcribe_s: float = 0.0  # time the model took
    wall_time: str = ""


@dataclass(frozen=True)
class NamedTurn(_WithSegments):
    """One speech turn of a recording: who spoke (an enrolled voice, or ``unknown speaker N`` numbered within the
    recording), the calibrated LLR of the best enrolled voice, and what was said in which language."""

    source: str
    start_s: float
    end_s: float
    speaker: str
    enrolled: bool
    llr: float
    language: str
    language_probability: float
    text: str
    segments: tuple[TimedText, ...] = ()
