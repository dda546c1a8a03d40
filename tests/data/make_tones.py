"""Makes tests/data/tones.flac (a 12.5 s stream of tone "voices" and pauses, 8 kHz FLAC) and the truth in tones.json.

    PYTHONPATH=src python tests/data/make_tones.py

The golden alerts in tones.json were recorded once from a watch of this file (tests/test_fast.py checks them with
tolerances); rerun with --golden to record them again after a deliberate change of behaviour.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

from voxwatch.audio import RATE_HZ
from voxwatch.testing import compose_tones

HERE = Path(__file__).resolve().parent
VOICES = {"low": 300.0, "mid": 700.0, "high": 1200.0}  # mid is never enrolled: a stranger
TURNS: list[tuple[str | None, float]] = [
    (None, 1.0),
    ("low", 3.5),
    (None, 1.0),
    ("mid", 3.0),
    (None, 1.0),
    ("high", 2.5),
    (None, 0.5),
]
SEED = 7


def write_flac(path: Path, samples: np.ndarray, rate_hz: int = 8000) -> None:
    pcm = np.round(np.clip(samples[:: RATE_HZ // rate_hz], -1, 1) * 32767).astype(
        np.int16
    )  # tones below 4 kHz: decimation is enough
    with av.open(str(path), "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate_hz)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(pcm[None], format="s16", layout="mono")
        frame.sample_rate = rate_hz
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def main() -> None:
    audio = compose_tones([(None if v is None else VOICES[v], s) for v, s in TURNS], seed=SEED)
    write_flac(HERE / "tones.flac", audio)
    truth, t = [], 0.0
    for voice, seconds in TURNS:
        if voice is not None:
            truth.append({"speaker": voice, "start_s": round(t, 3), "end_s": round(t + seconds, 3)})
        t += seconds
    record = {"voices": VOICES, "enrolled": ["low", "high"], "turns": truth, "duration_s": round(t, 3)}
    target = HERE / "tones.json"
    if "--golden" in sys.argv:
        from voxwatch import FileSource
        from voxwatch.audio import write_wav
        from voxwatch.testing import tone_engine, tone_voice

        with tempfile.TemporaryDirectory() as folder:
            engine = tone_engine(folder)
            for i, name in enumerate(record["enrolled"]):
                engine.enroll(name, [write_wav(Path(folder) / f"{name}.wav", tone_voice(VOICES[name], 5.0, seed=100 + i))])
            summary = engine.watch([FileSource(str(HERE / "tones.flac"))])
            engine.close()
        record["alerts"] = [
            {"speaker": a.speaker, "segment_start_s": a.segment_start_s, "stream_time_s": a.stream_time_s} for a in summary.alerts
        ]
    elif target.exists():
        record["alerts"] = json.loads(target.read_text()).get("alerts", [])
    target.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
