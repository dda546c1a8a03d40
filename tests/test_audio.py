"""Audio in: every common format and rate decodes to 16 kHz mono; bad files fail with one clear error."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import av
import numpy as np
import pytest

from voxwatch import AudioError, FileSource, PcmFormat, PcmSource, UsageError, load_audio, open_source
from voxwatch.audio import RATE_HZ, decode, duration_s, find_audio_files
from voxwatch.sources import UrlSource
from voxwatch.streams import Multiplexer


def _speech(data: Path) -> np.ndarray:
    return load_audio(data / "resemblyzer/audio_data/librispeech_test-other/2609/2609-156975-0000.flac")[: RATE_HZ * 3]


def _encode(path: Path, samples: np.ndarray, rate: int, codec: str, channels: int = 1) -> Path:
    """Write real speech with PyAV in another container/codec/rate/channel layout."""
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate)
        frame = av.AudioFrame.from_ndarray(samples[None].astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = RATE_HZ
        for f in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.mark.parametrize(
    ("suffix", "codec", "rate", "channels"),
    [
        ("wav", "pcm_s16le", 44100, 2),
        ("flac", "flac", 8000, 1),
        ("mp3", "libmp3lame", 22050, 1),
        ("ogg", "libopus", 48000, 2),
        ("opus", "libopus", 48000, 1),
        ("m4a", "aac", 32000, 2),
    ],
)
def test_formats_rates_and_channels_decode_to_16k_mono(
    tmp_path: Path, data: Path, suffix: str, codec: str, rate: int, channels: int
) -> None:
    speech = _speech(data)
    path = _encode(tmp_path / f"speech.{suffix}", speech, rate, codec, channels)
    decoded = load_audio(path)
    assert decoded.dtype == np.float32 and decoded.ndim == 1
    assert abs(len(decoded) - len(speech)) < 0.1 * RATE_HZ, "duration preserved within 100 ms (codec padding)"
    # Same speech: the energy envelopes (50 ms frames) correlate strongly once aligned.
    n = min(len(decoded), len(speech)) // 800 * 800
    env = lambda x: np.sqrt(np.mean(x[:n].reshape(-1, 800) ** 2, axis=1))
    best = max(np.corrcoef(env(np.roll(decoded, -lag)), env(speech))[0, 1] for lag in range(0, 1600, 160))
    assert best > 0.9


@pytest.mark.parametrize(("suffix", "codec", "rate"), [("flac", "flac", 16000), ("mp3", "libmp3lame", 22050)])
def test_decoding_from_a_time_on_seeks_and_keeps_the_files_clock(
    tmp_path: Path, data: Path, suffix: str, codec: str, rate: int
) -> None:
    path = str(_encode(tmp_path / f"speech.{suffix}", _speech(data), rate, codec))
    whole = load_audio(path)
    assert abs(duration_s(path) - len(whole) / RATE_HZ) < 0.1
    part = np.concatenate(list(decode(path, start_s=1.3)))
    tail = whole[round(1.3 * RATE_HZ) :]
    assert abs(len(part) - len(tail)) < 0.01 * RATE_HZ, "starts at 1.3 s, within 10 ms"
    n = min(len(part), len(tail))
    assert np.corrcoef(part[:n], tail[:n])[0, 1] > 0.9


def test_narrowband_8k_file_is_upsampled(data: Path) -> None:
    files = sorted((data / "fsdd").rglob("*.flac"))
    if not files:
        pytest.skip("no FSDD recordings in the shared data")
    decoded = load_audio(files[0])
    assert 0.2 < len(decoded) / RATE_HZ < 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "cannot open as audio"),
        (b"this is plainly a text file, not audio\n" * 50, "cannot open as audio"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "cannot open|no audio stream|contains no audio"),
    ],
)
def test_bad_files_fail_with_a_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    with pytest.raises(AudioError, match=message) as info:
        load_audio(bad)
    assert str(bad) in str(info.value)


def test_truncated_file_is_refused_or_shortened_never_crashes(tmp_path: Path, data: Path) -> None:
    source = data / "resemblyzer/audio_data/librispeech_test-other/2609/2609-156975-0000.flac"
    cut = tmp_path / "cut.flac"
    cut.write_bytes(source.read_bytes()[: len(source.read_bytes()) // 3])
    try:
        audio = load_audio(cut)
    except AudioError as exc:
        assert "cut.flac" in str(exc)
    else:
        assert 0 < len(audio) < len(load_audio(source))


def test_missing_file_and_directories(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="no such file or directory"):
        find_audio_files([str(tmp_path / "nope")])
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.flac").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    assert find_audio_files([str(tmp_path)]) == [tmp_path / "sub" / "a.flac"]


def test_file_source_chunks_carry_stream_time(data: Path) -> None:
    path = data / "resemblyzer/audio_data/librispeech_test-other/2609/2609-156975-0000.flac"
    chunks = list(FileSource(str(path)).chunks())
    assert chunks[0].start_s == 0.0
    assert all(abs(b.start_s - a.end_s) < 1e-9 for a, b in itertools.pairwise(chunks))
    assert abs(chunks[-1].end_s - len(load_audio(path)) / RATE_HZ) < 1e-6


def test_realtime_pace_takes_about_real_time(tmp_path: Path, data: Path) -> None:
    import time

    clip = _encode(tmp_path / "one-second.wav", _speech(data)[:RATE_HZ], RATE_HZ, "pcm_s16le")
    started = time.monotonic()
    list(FileSource(str(clip), realtime=True).chunks())
    assert 0.8 < time.monotonic() - started < 2.0


def test_stdin_pcm_at_8k_stereo(data: Path) -> None:
    speech = _speech(data)
    stereo8k = np.repeat(speech[::2, None], 2, axis=1)  # crude decimation is enough for a format test
    raw = (stereo8k * 32767).astype("<i2").tobytes()
    chunks = list(PcmSource(PcmFormat("s16le", 8000, 2), io.BytesIO(raw)).chunks())
    total = sum(len(c.samples) for c in chunks)
    assert abs(total - len(speech)) < 400
    assert max(np.abs(c.samples).max() for c in chunks) > 0.1


def test_empty_stdin_and_bad_pcm_formats() -> None:
    with pytest.raises(AudioError, match="carried no audio"):
        list(PcmSource(PcmFormat(), io.BytesIO(b"")).chunks())
    with pytest.raises(UsageError, match="unknown PCM format"):
        PcmFormat("s24be")
    with pytest.raises(UsageError, match="out of range"):
        PcmFormat("s16le", 100)


def test_open_source_kinds(tmp_path: Path) -> None:
    assert isinstance(open_source("http://127.0.0.1:9/stream.mp3"), UrlSource)
    assert isinstance(open_source("-"), PcmSource)
    with pytest.raises(AudioError, match="no such file"):
        open_source(str(tmp_path / "missing.wav"))


def test_unreachable_stream_fails_after_reconnects() -> None:
    source = UrlSource("http://127.0.0.1:9/live.mp3", reconnects=2, backoff_s=0.01)
    with pytest.raises(AudioError, match="cannot open as audio"):
        list(source.chunks())
    assert source.drops == 2


def test_a_live_stream_not_kept_up_with_is_reported_behind(tmp_path: Path, data: Path) -> None:
    """Lag of a live (real-time) source is flagged once processing trails by more than BEHIND_S; a file read as fast
    as it decodes waits for its consumer instead and is never 'behind'."""
    import time

    clip = _encode(tmp_path / "ten-seconds.wav", np.tile(_speech(data), 4)[: 10 * RATE_HZ], RATE_HZ, "pcm_s16le")
    copy = tmp_path / "copy.wav"
    copy.write_bytes(clip.read_bytes())
    mux = Multiplexer([FileSource(str(clip), realtime=True), FileSource(str(copy))])
    batches = iter(mux)
    for item in next(batches):
        mux.processed(item)
    time.sleep(Multiplexer.BEHIND_S + 1.5)  # the consumer stalls
    status = {s.source: s for s in mux.status()}
    assert status[str(clip)].behind and status[str(clip)].lag_s > Multiplexer.BEHIND_S
    assert not status[str(copy)].behind and status[str(copy)].state == "running"
    caught_up = False
    for batch in batches:
        for item in batch:
            mux.processed(item)
        live = next(s for s in mux.status() if s.source == str(clip))
        if live.state == "running" and not live.behind:
            caught_up = True
            break
    mux.stop()
    assert caught_up, "the flag clears once the consumer catches up"
