"""Audio in: the one place that decodes, downmixes and resamples (PyAV, and raw PCM), and writes WAV and snippets.

Everything leaves this module as 16 kHz mono float32; :mod:`voxwatch.sources` turns it into live streams.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import AudioError, UsageError
from .outbound import redact_url

RATE_HZ = 16000
BLOCK_S = 0.25  # chunk length: a live stream's audio reaches the spotter in steps of this
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".wma", ".webm", ".mka", ".mp4", ".aiff", ".au"}
PCM_FORMATS = {"s16le": np.dtype("<i2"), "s32le": np.dtype("<i4"), "f32le": np.dtype("<f4"), "u8": np.dtype("u1")}


_PASSTHROUGH = {"flt": 1.0, "fltp": 1.0, "s16": 1 / 32768, "s16p": 1 / 32768}  # 16 kHz mono frames that need no resampler


class _Resampler:
    """Streaming conversion of PyAV frames or numpy blocks to 16 kHz mono float32."""

    def __init__(self) -> None:
        import av

        self._av = av
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE_HZ)

    def frame(self, frame) -> np.ndarray:  # type: ignore[no-untyped-def]
        if frame.sample_rate == RATE_HZ and len(frame.layout.channels) == 1 and frame.format.name in _PASSTHROUGH:
            return frame.to_ndarray().reshape(-1).astype(np.float32) * _PASSTHROUGH[frame.format.name]
        frame.pts = None
        return self._join(self._resampler.resample(frame))

    def array(self, samples: np.ndarray, rate_hz: int) -> np.ndarray:
        """Resample a mono float32 block."""
        if rate_hz == RATE_HZ:
            return samples.astype(np.float32, copy=False)
        frame = self._av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, np.float32)[None], format="flt", layout="mono")
        frame.sample_rate = rate_hz
        return self.frame(frame)

    def flush(self) -> np.ndarray:
        return self._join(self._resampler.resample(None))

    @staticmethod
    def _join(frames: list) -> np.ndarray:  # type: ignore[type-arg]
        if not frames:
            return np.zeros(0, np.float32)
        return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32, copy=False)


def decode(
    location: str, *, options: dict[str, str] | None = None, timeout_s: float = 10.0, start_s: float = 0.0
) -> Iterator[np.ndarray]:
    """Decode the first audio stream of a file, URL or device into 16 kHz mono float32 blocks; from ``start_s`` on (a
    file is sought there, then decoded samples before it are dropped).

    Raises :class:`AudioError` naming ``location`` (without its secrets: :func:`redact_url`) when it cannot be opened
    or decoded.
    """
    import av

    fmt = None
    if ":" in location and location.split(":", 1)[0] in ("alsa", "pulse", "dshow", "avfoundation"):
        fmt, location = location.split(":", 1)
    shown = redact_url(location)
    try:
        container = av.open(location, format=fmt, options=options or {}, timeout=timeout_s)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise AudioError(f"{shown}: cannot open as audio ({_reason(exc)})") from exc
    with container:
        if not container.streams.audio:
            raise AudioError(f"{shown}: has no audio stream")
        stream = container.streams.audio[0]
        resampler = _Resampler()
        skip: int | None = 0  # samples still to drop before start_s (None: not known until the first frame)
        try:
            if start_s > 0:  # in the stream's time base, which starts at its first sample's time (a codec's delay)
                first = stream.start_time or 0
                container.seek(int(start_s / stream.time_base) + first, stream=stream)
                skip = None
            for frame in container.decode(stream):
                if skip is None:
                    skip = max(0, round((start_s - float(((frame.pts or first) - first) * stream.time_base)) * RATE_HZ))
                block = resampler.frame(frame)
                dropped = min(skip, len(block))
                skip -= dropped
                if len(block) > dropped:
                    yield block[dropped:]
            tail = resampler.flush()
        except (av.FFmpegError, ValueError) as exc:
            raise AudioError(f"{shown}: audio is corrupt or truncated ({_reason(exc)})") from exc
    if len(tail):
        yield tail


def duration_s(path: str) -> float:
    """A file's duration as its container states it, without decoding (0.0 when unknown or unreadable)."""
    import av

    try:
        with av.open(path) as container:
            return max(0.0, (container.duration or 0) / av.time_base)
    except (av.FFmpegError, OSError, ValueError):
        return 0.0


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(": '")[0] if text else type(exc).__name__


def check_file(path: str | Path) -> None:
    """Raise :class:`AudioError` unless ``path`` is a file (a folder is named as such)."""
    if Path(path).is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file; name the recordings in it")
    if not Path(path).is_file():
        raise AudioError(f"{path}: no such file")


def load_audio(path: str | Path, *, max_s: float = 4 * 3600) -> np.ndarray:
    """The whole recording at ``path`` as 16 kHz mono float32; refuses empty and over-long files."""
    path = str(path)
    if "://" not in path:
        check_file(path)
    blocks, total = [], 0
    for block in decode(path):
        blocks.append(block)
        total += len(block)
        if total > max_s * RATE_HZ:
            raise AudioError(f"{path}: longer than {max_s:.0f} s; split it or use 'voxwatch search' for long recordings")
    if total == 0:
        raise AudioError(f"{path}: contains no audio samples")
    return np.concatenate(blocks)


AudioInput = str | Path | np.ndarray  # a recording's path, or its samples in memory (with their rate)


@dataclass(frozen=True)
class Clip:
    """A recording ready to analyse: 16 kHz mono float32 samples, a name for results and the audit log, and the
    SHA-256 that identifies it (of the file; of the given samples for an array)."""

    name: str
    samples: np.ndarray
    sha256: str


def read_input(audio: AudioInput, rate_hz: int | None = None, *, max_s: float = 4 * 3600) -> Clip:
    """Any audio the library accepts → a :class:`Clip`: a path (or URL) is decoded (:func:`load_audio`); an array of
    ``rate_hz`` samples (1-D, or 2-D as channels × samples; float in [-1, 1] or integer PCM) is downmixed and
    resampled. Raises :class:`UsageError` for an array without a rate, :class:`AudioError` for unusable audio."""
    if not isinstance(audio, np.ndarray):
        if "://" in str(audio):  # a recording behind a URL: identified by its decoded samples
            samples = load_audio(audio, max_s=max_s)
            return Clip(str(audio), samples, hashlib.sha256(samples.tobytes()).hexdigest())
        check_file(audio)
        return Clip(str(audio), load_audio(audio, max_s=max_s), sha256_file(audio))
    if rate_hz is None:
        raise UsageError("audio given as an array needs its sample rate (rate_hz=...)")
    if not 1000 <= rate_hz <= 384000:
        raise UsageError(f"rate_hz={rate_hz} is out of range (1000 to 384000 Hz)")
    if audio.dtype.kind not in "fiu" or audio.ndim not in (1, 2) or audio.size == 0:
        raise AudioError(f"audio array of {audio.dtype} with shape {audio.shape}: need 1-D or channels × samples numbers")
    digest = hashlib.sha256(np.ascontiguousarray(audio).tobytes()).hexdigest()
    samples = _to_float(audio)
    if samples.ndim == 2:
        samples = samples.mean(axis=0)
    if not np.isfinite(samples).all():
        raise AudioError("audio array holds NaN or infinite values")
    if len(samples) > max_s * rate_hz:
        raise AudioError(f"audio array is longer than {max_s:.0f} s; split it")
    if rate_hz != RATE_HZ:
        resampler = _Resampler()
        samples = np.concatenate([resampler.array(samples, rate_hz), resampler.flush()])
    return Clip(f"array:{digest[:12]}", samples.astype(np.float32, copy=False), digest)


def wav_bytes(samples: np.ndarray) -> bytes:
    """16 kHz mono float audio as the bytes of a 16-bit WAV file."""
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE_HZ)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def write_wav(path: str | Path, samples: np.ndarray) -> Path:
    """16 kHz mono float audio as a 16-bit WAV file (folders created as needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(samples))
    return path


UPLOAD_FORMATS = {
    "wav",
    "flac",
    "mp3",
    "ogg",
    "mov",
    "mp4",
    "m4a",
    "3gp",
    "matroska",
    "webm",
    "aiff",
    "au",
    "aac",
    "asf",
    "w64",
    "caf",
}


def encode_snippet(samples: np.ndarray) -> tuple[str, bytes]:
    """16 kHz mono float32 → ``(media type, bytes)``: Ogg/Opus at 32 kbit/s, or 16-bit WAV without libopus."""
    import av

    samples = np.clip(np.asarray(samples, np.float32), -1.0, 1.0)
    if "libopus" in av.codecs_available:
        buf = io.BytesIO()
        with av.open(buf, "w", format="ogg") as container:
            stream = container.add_stream("libopus", rate=RATE_HZ)
            stream.bit_rate = 32000
            stream.layout = "mono"
            frame = av.AudioFrame.from_ndarray(samples[None], format="flt", layout="mono")
            frame.sample_rate = RATE_HZ
            for packet in stream.encode(frame):
                container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        return "audio/ogg", buf.getvalue()
    return "audio/wav", wav_bytes(samples)


def check_upload(path: Path) -> None:
    """Refuse a file that is empty, not in a known audio container, or without a decodable audio stream."""
    import av

    if path.stat().st_size == 0:
        raise AudioError(f"{path.name}: the file is empty")
    try:
        with av.open(str(path)) as container:
            names = set(container.format.name.split(","))
            if not names & UPLOAD_FORMATS:
                raise AudioError(f"{path.name}: {container.format.name!r} is not an accepted audio format")
            if not container.streams.audio:
                raise AudioError(f"{path.name}: has no audio stream")
            for _ in container.decode(container.streams.audio[0]):
                return
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise AudioError(f"{path.name}: not a readable audio file ({type(exc).__name__})") from exc
    raise AudioError(f"{path.name}: contains no audio samples")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def find_audio_files(paths: list[str]) -> list[Path]:
    """Expand files and directories (recursively) into audio files, sorted; missing paths are an error."""
    found: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
        elif p.is_file():
            found.append(p)
        else:
            raise AudioError(f"{item}: no such file or directory")
    return found


@dataclass(frozen=True)
class PcmFormat:
    """Raw PCM layout for stdin: sample format (s16le, s32le, f32le, u8), rate and channel count."""

    encoding: str = "s16le"
    rate_hz: int = RATE_HZ
    channels: int = 1

    def __post_init__(self) -> None:
        if self.encoding not in PCM_FORMATS:
            raise UsageError(f"unknown PCM format {self.encoding!r}; use one of {', '.join(sorted(PCM_FORMATS))}")
        if not 1000 <= self.rate_hz <= 384000:
            raise UsageError(f"PCM rate {self.rate_hz} Hz is out of range (1000 to 384000)")
        if not 1 <= self.channels <= 32:
            raise UsageError(f"PCM channel count {self.channels} is out of range (1 to 32)")


def decode_pcm(stream: BinaryIO, fmt: PcmFormat, name: str) -> Iterator[np.ndarray]:
    """Decode raw interleaved PCM read from ``stream`` into 16 kHz mono float32 blocks; :class:`AudioError` naming
    ``name`` if it carried none."""
    dtype = PCM_FORMATS[fmt.encoding]
    frame_bytes = dtype.itemsize * fmt.channels
    want = max(frame_bytes, int(fmt.rate_hz * BLOCK_S) * frame_bytes)
    resampler = _Resampler()
    leftover = b""
    total = 0
    while True:
        data = stream.read(want)
        if not data:
            break
        data = leftover + data
        usable = len(data) - len(data) % frame_bytes
        data, leftover = data[:usable], data[usable:]
        raw = np.frombuffer(data, dtype).reshape(-1, fmt.channels)
        samples = _to_float(raw).mean(axis=1)
        total += len(samples)
        block = resampler.array(samples, fmt.rate_hz)
        if len(block):
            yield block
    tail = resampler.flush()
    if len(tail):
        yield tail
    if total == 0:
        raise AudioError(f"{name}: the stream carried no audio")


def _to_float(raw: np.ndarray) -> np.ndarray:
    if raw.dtype.kind == "f":
        return raw.astype(np.float32)
    if raw.dtype == np.uint8:
        return (raw.astype(np.float32) - 128.0) / 128.0
    return raw.astype(np.float32) / float(np.iinfo(raw.dtype).max + 1)
