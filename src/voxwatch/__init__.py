"""voxwatch: open speaker spotting. Enroll known voices, watch live streams for them, search archives.

A watch in four lines:

    from voxwatch import Engine, Settings, FileSource, TranscriptOptions
    with Engine(Settings(db="voxwatch.db")) as engine:
        engine.enroll("alice", ["alice.wav"], note="consented interview, 2026-11-01")
        summary = engine.watch([FileSource("radio.mp3", realtime=True)], transcripts=TranscriptOptions())

Recordings are paths or arrays: ``engine.verify(samples, "alice", rate_hz=8000)``, ``engine.embed(samples, 44100)``.
BLAS threads are limited (threadpoolctl) only while voxwatch computes; importing voxwatch changes nothing else.
"""

from .asr import Transcriber, load_transcriber
from .audio import PcmFormat, load_audio
from .comparison import Comparison, compare
from .embedding import EmbeddingBackend, load_backend
from .engine import Analysis, Engine
from .errors import AudioError, EnrollmentError, ModelError, StoreError, UnknownSpeakerError, UsageError, VoxwatchError
from .pipeline import Spotter, SpotterOptions
from .records import (
    Alert,
    AlertTranscript,
    AudioChunk,
    Candidate,
    Detection,
    EnrollmentInfo,
    NamedTurn,
    Segment,
    SpeakerInfo,
    TimedText,
    Transcript,
    Verification,
)
from .scoring import Calibration, Watchlist
from .settings import Settings, resolve_settings
from .sinks import ConsoleSink, JsonLinesSink, WatchSummary
from .sources import FileSource, PcmSource, Source, UrlSource, open_source
from .streams import StreamStatus
from .transcripts import TranscriptOptions
from .vad import SileroVad
from .watch import Sink

# What a user needs: the engine and its settings, sources, results, sinks, errors, models, and the streaming spotter.
# Everything else (the store, the multiplexer, evaluation and benchmark helpers) is imported from its module.
__all__ = [
    "Alert",
    "AlertTranscript",
    "Analysis",
    "AudioChunk",
    "AudioError",
    "Calibration",
    "Candidate",
    "Comparison",
    "ConsoleSink",
    "Detection",
    "EmbeddingBackend",
    "Engine",
    "EnrollmentError",
    "EnrollmentInfo",
    "FileSource",
    "JsonLinesSink",
    "ModelError",
    "NamedTurn",
    "PcmFormat",
    "PcmSource",
    "Segment",
    "Settings",
    "SileroVad",
    "Sink",
    "Source",
    "SpeakerInfo",
    "Spotter",
    "SpotterOptions",
    "StoreError",
    "StreamStatus",
    "TimedText",
    "Transcriber",
    "Transcript",
    "TranscriptOptions",
    "UnknownSpeakerError",
    "UrlSource",
    "UsageError",
    "Verification",
    "VoxwatchError",
    "WatchSummary",
    "Watchlist",
    "compare",
    "load_audio",
    "load_backend",
    "load_transcriber",
    "open_source",
    "resolve_settings",
]
__version__ = "0.1.0"
