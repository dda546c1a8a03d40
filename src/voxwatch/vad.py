"""Voice activity: Silero VAD (the silero-vad project's ONNX model, shipped in this package), batched across streams,
behind a cheap energy gate so silent frames never reach the network."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from .audio import RATE_HZ
from .errors import ModelError

FRAME = 512  # 32 ms at 16 kHz
CONTEXT = 64
SILENCE_DBFS = -60.0


@dataclass
class VadState:
    """One stream's recurrent VAD state; reset by replacing it."""

    hidden: np.ndarray = field(default_factory=lambda: np.zeros((2, 128), np.float32))
    context: np.ndarray = field(default_factory=lambda: np.zeros(CONTEXT, np.float32))


class VoiceActivity(Protocol):
    """What the spotter needs of a VAD: a name and per-frame speech probabilities for many streams in one call."""

    name: str

    def probabilities(self, frames: np.ndarray, states: list[VadState]) -> np.ndarray: ...


def silero_model_path() -> Path:
    """Silero VAD's streaming export, shipped in this package (MIT; see weights/README.md)."""
    from .embedding import packaged

    path = packaged("weights/silero_vad.onnx")
    if not path.is_file():
        raise ModelError(f"{path}: Silero VAD model missing; reinstall voxwatch")
    return path


class SileroVad:
    """Speech probability per 32 ms frame for many streams in one call.

    Two exports of the same network: the streaming one batches one frame of many streams per run; the sequence
    one runs many frames of one stream per run (bit-identical results). A stream's block goes to the sequence
    export when it holds more frames than there are streams in the call, i.e. when that makes fewer runs.
    """

    name = "silero-vad"
    SEQUENCE_MIN_FRAMES = 8

    def __init__(self, path: Path | None = None, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle workers must not burn a core
        path = path or silero_model_path()
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        sequence = path.with_name("silero_vad_16k_sequence.onnx")
        self._sequence = (
            ort.InferenceSession(str(sequence), opts, providers=["CPUExecutionProvider"]) if sequence.is_file() else None
        )
        self._rate = np.array(RATE_HZ, np.int64)

    def probabilities(self, frames: np.ndarray, states: list[VadState]) -> np.ndarray:
        """Speech probability of ``frames`` (n, 512), frame i belonging to the stream whose state is ``states[i]``.

        A stream may appear several times; its frames are run in order. Frames below ``SILENCE_DBFS`` are
        scored 0 without running the network.
        """
        probs = np.zeros(len(frames), np.float32)
        energy = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
        by_stream: dict[int, list[int]] = defaultdict(list)
        for i, state in enumerate(states):
            by_stream[id(state)].append(i)
        rest = []
        for idx in by_stream.values():
            if self._sequence is not None and len(idx) >= max(self.SEQUENCE_MIN_FRAMES, len(by_stream)):
                probs[idx] = self._run_sequence(frames[idx], states[idx[0]])
            else:
                rest += idx
        # Rounds: each round takes at most one frame per stream, so recurrent state stays in order.
        rounds: list[list[int]] = []
        seen: dict[int, int] = {}
        for i in rest:
            state = states[i]
            r = seen.get(id(state), 0)
            seen[id(state)] = r + 1
            if r == len(rounds):
                rounds.append([])
            rounds[r].append(i)
        for idx in rounds:
            active = [i for i in idx if energy[i] > SILENCE_DBFS]
            for i in idx:
                if energy[i] <= SILENCE_DBFS:
                    states[i].context = frames[i, -CONTEXT:].copy()
            if not active:
                continue
            batch = np.concatenate([np.stack([states[i].context for i in active]), frames[active]], axis=1)
            hidden = np.stack([states[i].hidden for i in active], axis=1)
            out, hidden = self._session.run(None, {"input": batch, "state": hidden, "sr": self._rate})
            for k, i in enumerate(active):
                states[i].hidden = hidden[:, k]
                states[i].context = frames[i, -CONTEXT:].copy()
                probs[i] = out[k, 0]
        return probs

    def _run_sequence(self, frames: np.ndarray, state: VadState) -> np.ndarray:
        """Consecutive frames of one stream in one run (the energy gate does not apply here)."""
        assert self._sequence is not None
        context = np.empty((len(frames), CONTEXT), np.float32)
        context[0] = state.context
        context[1:] = frames[:-1, -CONTEXT:]
        h, c = state.hidden[0][None, None], state.hidden[1][None, None]
        out, h, c = self._sequence.run(None, {"input": np.concatenate([context, frames], axis=1), "h": h, "c": c})
        state.hidden = np.stack([h[0, 0], c[0, 0]])
        state.context = frames[-1, -CONTEXT:].copy()
        return out
