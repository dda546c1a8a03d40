"""voxwatch: open speaker spotting. Enroll known voices, watch live streams for them, search archives.

A watch in four lines:

    from voxwatch import Engine, Settings, FileSource
    with Engine(Settings(db="voxwatch.db")) as engine:
        engine.enroll("alice", ["alice.wav"], note="consented interview, 2026-11-01")
        summary = engine.watch([FileSource("radio.mp3", realtime=True)])

Recordings are paths or arrays: ``engine.verify(samples, "alice", rate_hz=8000)``, ``engine.embed(samples, 44100)``.
BLAS threads are limited (threadpoolctl) only while voxwatch computes; importing voxwatch changes nothing else.
"""

from .audio import FileSource, PcmFormat, PcmSource, Source, UrlSource, load_audio, open_source
from .comparison import Comparison, compare
from .embedding import EmbeddingBackend, load_backend
from .engine import Analysis, Engine
from .errors import AudioError, EnrollmentError, ModelError, StoreError, UnknownSpeakerError, UsageError, VoxwatchError
from .pipeline import Spotter, SpotterOptions
from .records import Alert, AudioChunk, Candidate, Detection, EnrollmentInfo, Segment, SpeakerInfo, Verification
from .scoring import Calibration, Watchlist
from .settings import Settings, resolve_settings
from .sinks import CollectingSink, ConsoleSink, JsonLinesSink
from .streams import StreamStatus
from .vad import SileroVad
from .watch import Sink, WatchSummary

# What a user needs: the engine and its settings, sources, results, sinks, errors, models, and the streaming spotter.
# Everything else (the store, the multiplexer, evaluation and benchmark helpers) is imported from its module.
__all__ = [
    "Alert",
    "Analysis",
    "AudioChunk",
    "AudioError",
    "Calibration",
    "Candidate",
    "CollectingSink",
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
    "open_source",
    "resolve_settings",
]
__version__ = "0.1.0"
