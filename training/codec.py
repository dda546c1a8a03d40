"""Real codec round trips through PyAV (FFmpeg): encode 16 kHz mono float32 audio, decode it, and bring it back to
16 kHz with the same length. The codecs of telephone, radio-over-IP and low-rate streaming channels."""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np

from voxwatch.audio import RATE_HZ


@dataclass(frozen=True)
class Codec:
    """One encoder setting: FFmpeg ``codec`` in ``container`` at ``rate_hz`` (and ``bit_rate`` where it has one)."""

    name: str
    codec: str
    container: str
    rate_hz: int
    bit_rate: int | None = None
    sample_format: str = "s16"


CODECS = {
    c.name: c
    for c in (
        Codec("mulaw", "pcm_mulaw", "wav", 8000),
        Codec("alaw", "pcm_alaw", "wav", 8000),
        Codec("g722", "g722", "wav", 16000, 64000),
        Codec("g726", "adpcm_g726", "wav", 8000, 16000),
        Codec("amrnb", "libopencore_amrnb", "amr", 8000, 4750),
        Codec("amrnb-12k", "libopencore_amrnb", "amr", 8000, 12200),
        Codec("opus-6k", "libopus", "ogg", 8000, 6000),
        Codec("opus-12k", "libopus", "ogg", 16000, 12000),
        Codec("mp3-16k", "libmp3lame", "mp3", 16000, 16000, "s16p"),
        Codec("mp3-8k", "libmp3lame", "mp3", 8000, 8000, "s16p"),
    )
}


def _resample(x: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    if from_hz == to_hz:
        return x.astype(np.float32)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=to_hz)
    frame = av.AudioFrame.from_ndarray(x.astype(np.float32)[None], format="flt", layout="mono")
    frame.sample_rate = from_hz
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame) + resampler.resample(None)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def round_trip(x: np.ndarray, codec: Codec) -> np.ndarray:
    """``x`` (16 kHz mono float32) encoded with ``codec`` and decoded again: 16 kHz, the same length, time-aligned
    (the codec's delay is found by cross-correlation and removed)."""
    narrow = np.clip(_resample(x, RATE_HZ, codec.rate_hz), -1, 1)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=codec.container) as out:
        stream = out.add_stream(codec.codec, rate=codec.rate_hz, layout="mono")
        if codec.bit_rate:
            stream.bit_rate = codec.bit_rate
        pcm = (narrow * 32767).astype(np.int16)[None]
        frame_size = stream.codec_context.frame_size or 1024
        for start in range(0, pcm.shape[1], frame_size):
            frame = av.AudioFrame.from_ndarray(pcm[:, start : start + frame_size], format="s16", layout="mono")
            frame.sample_rate = codec.rate_hz
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buffer.seek(0)
    with av.open(buffer, "r") as inp:
        decoded = [_float(f.to_ndarray()[0]) for f in inp.decode(audio=0)]
        rate = inp.streams.audio[0].rate
    y = np.concatenate(decoded) if decoded else np.zeros(0, np.float32)
    y = _resample(y, rate, RATE_HZ)
    return _align(y, x)


def _float(samples: np.ndarray) -> np.ndarray:
    """One decoded channel as float32 in [-1, 1], whatever sample format the decoder gave."""
    if np.issubdtype(samples.dtype, np.integer):
        return (samples / float(np.iinfo(samples.dtype).max + 1)).astype(np.float32)
    return samples.astype(np.float32)


def _align(y: np.ndarray, x: np.ndarray, most: int = 1600) -> np.ndarray:
    """``y`` shifted by the lag (0..most samples) that best matches ``x``, cut or padded to ``len(x)``."""
    n = min(len(x), len(y), 16000 * 4)
    if n > most * 2:
        size = 1 << (2 * n).bit_length()
        corr = np.fft.irfft(np.fft.rfft(y[:n], size) * np.conj(np.fft.rfft(x[:n], size)), size)[: most + 1]
        lag = int(np.argmax(corr))
        y = y[lag:]
    return np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)].astype(np.float32)
