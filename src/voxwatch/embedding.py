"""Speaker embedding backends behind one narrow interface: ``name``, ``sample_rate``, ``dimension``,
``window_s`` and ``embed(batch, band)`` of raw 16 kHz audio windows heard on a channel band. Only :func:`load_backend`
turns names into models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import ModelError
from .features import HOP, log_fbank, mel_spectrogram

TARGET_DBFS = -30.0
DEFAULT_MODEL = "ge2e+voxwatch-enc"  # GE2E on wideband channels, voxwatch-enc on narrowband ones (BandRouted)
SHIPPED_MODELS = {"voxwatch-enc": "models/voxwatch-enc.onnx"}  # trained by training/ (docs/model-card.md)
GE2E_FILE = "weights/ge2e.onnx"  # resemblyzer's GE2E (Apache-2.0), see weights/README.md


class EmbeddingBackend(Protocol):
    """Maps a batch of equal-length audio windows (batch, samples) to L2-normalised embeddings (batch, dimension).

    ``band`` is the channel band the windows were heard on, "wideband" or "narrowband", or None for a voiceprint,
    which must match speech heard on any band. Only a :class:`BandRouted` backend uses it."""

    name: str
    sample_rate: int
    dimension: int
    window_s: float
    min_window_s: float

    def embed(self, batch: np.ndarray, band: str | None = None) -> np.ndarray: ...


def _session(model: bytes | str, threads: int):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle workers must not burn a core
    try:
        return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(f"cannot load ONNX model: {exc}") from exc


def _normalise_volume(batch: np.ndarray) -> np.ndarray:
    """Raise each window to -30 dBFS RMS (never lower it), as GE2E's training audio was."""
    rms_db = 10 * np.log10(np.mean(batch.astype(np.float64) ** 2, axis=1) + 1e-12)
    gain = 10 ** (np.maximum(0.0, TARGET_DBFS - rms_db) / 20)
    return (batch * gain[:, None]).astype(np.float32)


def _l2(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)).astype(np.float32)


class _OnnxEmbedder:
    """Shared machinery: features per window, one ONNX run per batch."""

    sample_rate = 16000
    min_window_s = 1.0

    def __init__(
        self, model: bytes | str, *, name: str, features: str, window_s: float, input_name: str, output_name: str, threads: int
    ):
        if features not in FEATURES:
            raise ModelError(f"unknown feature type {features!r}; use one of {', '.join(FEATURES)}")
        self.name = name
        self.window_s = window_s
        self._features = features
        self._session = _session(model, threads)
        inputs = [i.name for i in self._session.get_inputs()]
        outputs = [o.name for o in self._session.get_outputs()]
        if input_name not in inputs or output_name not in outputs:
            raise ModelError(
                f"model {name!r} takes {', '.join(inputs)} and gives {', '.join(outputs)}, not the {input_name!r} and"
                f" {output_name!r} expected: describe it in a sidecar <model>.json (features, window_s, input, output)"
            )
        self._input = input_name
        self._output = output_name
        probe = self.embed(np.zeros((1, int(window_s * self.sample_rate)), np.float32) + 1e-3)
        self.dimension = int(probe.shape[1])

    def embed(self, batch: np.ndarray, band: str | None = None) -> np.ndarray:
        if batch.ndim != 2 or batch.shape[1] < self.min_window_s * self.sample_rate:
            raise ValueError(f"embed expects (batch, >= {self.min_window_s * self.sample_rate:.0f}) samples, got {batch.shape}")
        if len(batch) == 0:
            return np.zeros((0, getattr(self, "dimension", 0)), np.float32)
        feats = FEATURES[self._features](batch)
        out = self._session.run([self._output], {self._input: feats})[0]
        return _l2(np.asarray(out, np.float32).reshape(len(batch), -1))


def _ge2e_features(batch: np.ndarray) -> np.ndarray:
    frames = batch.shape[1] // HOP  # drop the last centred frame: a 1.6 s window gives GE2E's 160 frames
    return mel_spectrogram(_normalise_volume(batch))[:, :frames]


def _fbank_features(batch: np.ndarray) -> np.ndarray:
    return np.stack([log_fbank(w) for w in batch])


FEATURES = {"ge2e-mel": _ge2e_features, "fbank80": _fbank_features}


class OnnxBackend(_OnnxEmbedder):
    """Any ONNX speaker model with a sidecar ``<model>.json`` naming its features and window.

    Without a sidecar, the WeSpeaker export contract is assumed: input ``feats`` of 80 log-mel filterbanks
    (25 ms / 10 ms, mean-normalised), output ``embs``, 2 s windows.
    """

    def __init__(self, path: str | Path, threads: int = 1):
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        sidecar = path.with_suffix(".json")
        meta = {"name": path.stem, "features": "fbank80", "window_s": 2.0, "input": "feats", "output": "embs"}
        if sidecar.is_file():
            try:
                meta |= json.loads(sidecar.read_text())
            except json.JSONDecodeError as exc:
                raise ModelError(f"{sidecar}: not valid JSON ({exc})") from exc
        super().__init__(
            str(path),
            name=str(meta["name"]),
            features=str(meta["features"]),
            window_s=float(meta["window_s"]),
            input_name=str(meta["input"]),
            output_name=str(meta["output"]),
            threads=threads,
        )


class Ge2eBackend(OnnxBackend):
    """The GE2E encoder of ``resemblyzer`` (256-d, 1.6 s windows), shipped in this package as an ONNX graph
    (``weights/ge2e.onnx``, made by :func:`.ge2e.export`) and run by onnxruntime without torch."""

    def __init__(self, threads: int = 1):
        super().__init__(packaged(GE2E_FILE), threads)


class BandRouted:
    """One encoder for wideband channels and another for narrowband ones (telephone, radio), in one vector space.

    A window heard on a wideband channel is embedded by ``wide`` into the first ``wide.dimension`` values (the rest
    zero), one heard on a narrowband channel by ``narrow`` into the rest; a voiceprint (``band`` None) holds both, so it
    can be scored against speech from either. Each window runs one encoder, so a stream costs what one model costs;
    a voiceprint costs both. Scores read the part of the band they are made for (:attr:`.Calibration.part`)."""

    def __init__(self, wide: EmbeddingBackend, narrow: EmbeddingBackend):
        if (wide.sample_rate, wide.window_s) != (narrow.sample_rate, narrow.window_s):
            raise ModelError(
                f"{wide.name} and {narrow.name} cannot share windows: {wide.window_s} s and {narrow.window_s} s at"
                f" {wide.sample_rate} and {narrow.sample_rate} Hz"
            )
        self.wide, self.narrow = wide, narrow
        self.name = f"{wide.name}+{narrow.name}"
        self.sample_rate = wide.sample_rate
        self.window_s = wide.window_s
        self.min_window_s = max(wide.min_window_s, narrow.min_window_s)
        self.dimension = wide.dimension + narrow.dimension

    def embed(self, batch: np.ndarray, band: str | None = None) -> np.ndarray:
        if band not in (None, "wideband", "narrowband"):
            raise ValueError(f"band must be 'wideband', 'narrowband' or None, not {band!r}")
        out = np.zeros((len(batch), self.dimension), np.float32)
        if band != "narrowband":
            out[:, : self.wide.dimension] = self.wide.embed(batch)
        if band != "wideband":
            out[:, self.wide.dimension :] = self.narrow.embed(batch)
        return _l2(out)


def routed_models(name: str) -> tuple[str, str] | None:
    """The wideband and the narrowband model of a band-routed model's name (``WIDE+NARROW``); None for one model."""
    if "+" not in name:
        return None
    wide, _, narrow = name.partition("+")
    return wide, narrow


def packaged(name: str) -> Path:
    """A model file shipped inside the package."""
    from importlib import resources

    return Path(str(resources.files("voxwatch").joinpath(name)))


def load_backend(spec: str = DEFAULT_MODEL, threads: int = 1) -> EmbeddingBackend:
    """``voxwatch-enc`` or ``ge2e`` (both shipped in this package), a path to an ``.onnx`` file,
    ``hf:OWNER/REPO/FILE.onnx`` (downloaded with huggingface_hub when online), or ``WIDE+NARROW``, two of these routed
    by channel band (:class:`BandRouted`; the default is ``ge2e+voxwatch-enc``)."""
    routed = routed_models(spec)
    if routed is not None and not Path(spec).is_file():
        if "+" in routed[1]:
            raise ModelError(f"{spec}: route two models, one per channel band: WIDE+NARROW")
        return BandRouted(load_backend(routed[0], threads), load_backend(routed[1], threads))
    if spec == "ge2e":
        return Ge2eBackend(threads)
    if spec in SHIPPED_MODELS:
        return OnnxBackend(packaged(SHIPPED_MODELS[spec]), threads)
    if spec.startswith("hf:"):
        try:
            from huggingface_hub import hf_hub_download
        except ImportError as exc:
            raise ModelError("hub models need the 'huggingface_hub' package") from exc
        owner, repo, filename = (spec[3:].split("/", 2) + ["", ""])[:3]
        if not filename:
            raise ModelError(f"{spec}: expected hf:OWNER/REPO/FILE.onnx")
        try:
            return OnnxBackend(hf_hub_download(f"{owner}/{repo}", filename), threads)
        except Exception as exc:  # network and hub errors come in many types
            raise ModelError(f"{spec}: cannot download ({exc})") from exc
    if spec.endswith(".onnx"):
        return OnnxBackend(spec, threads)
    raise ModelError(
        f"unknown embedding model {spec!r}: use {', '.join([DEFAULT_MODEL, *SHIPPED_MODELS, 'ge2e'])}, a path to an .onnx file,"
        " hf:OWNER/REPO/FILE.onnx, or two of these joined by '+' (wideband+narrowband)"
    )
