"""The GE2E speaker encoder shipped in ``resemblyzer``, rebuilt as an ONNX graph without torch.

``resemblyzer/pretrained.pt`` is a legacy (pre-1.6) torch pickle: a few small pickles followed by raw
little-endian storages. This module reads it with the standard library and numpy, then writes the
network (3-layer LSTM, linear, ReLU, L2 norm) as an ONNX graph that onnxruntime runs.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelError

HIDDEN = 256
LAYERS = 3
N_MELS = 40

_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "LongStorage": np.int64}


@dataclass
class _Storage:
    dtype: type
    numel: int
    data: np.ndarray | None = None


@dataclass
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> np.ndarray:
        assert self.storage.data is not None
        item = self.storage.data.itemsize
        return np.lib.stride_tricks.as_strided(
            self.storage.data[self.offset :], self.size, tuple(s * item for s in self.stride)
        ).copy()


class _StateDict(dict):
    """Stands in for ``OrderedDict``; torch pickles attributes (``_metadata``) onto it."""


class _LegacyUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, storages: dict[str, _Storage]):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str):
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return lambda storage, offset, size, stride, *_: _TensorRef(storage, offset, size, stride)
        if module == "torch" and name in _DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            return _StateDict
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a weights file")

    def persistent_load(self, pid):
        _, type_name, key, _location, numel, _view = pid
        if key not in self.storages:
            self.storages[key] = _Storage(_DTYPES[type_name], numel)
        return self.storages[key]


def read_legacy_state(path: Path) -> dict[str, np.ndarray]:
    """Read the ``model_state`` tensors of a legacy torch checkpoint as numpy arrays."""
    try:
        with open(path, "rb") as f:
            for _ in range(3):  # magic number, protocol version, system info
                pickle.load(f)
            storages: dict[str, _Storage] = {}
            checkpoint = _LegacyUnpickler(f, storages).load()
            for key in pickle.load(f):
                storage = storages[key]
                (numel,) = np.frombuffer(f.read(8), "<i8")
                storage.data = np.frombuffer(f.read(int(numel) * np.dtype(storage.dtype).itemsize), storage.dtype)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable GE2E weights file ({exc})") from exc
    return {name: ref.array() for name, ref in checkpoint["model_state"].items()}


def _reorder_gates(w: np.ndarray) -> np.ndarray:
    """torch packs LSTM gates as (input, forget, cell, output); ONNX wants (input, output, forget, cell)."""
    i, f, g, o = np.split(w, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def build_onnx(state: dict[str, np.ndarray]) -> bytes:
    """Serialise the GE2E network as ONNX: input ``mels`` (batch, frames, 40), output ``embedding`` (batch, 256)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    x = "x_tbf"
    nodes.append(helper.make_node("Transpose", ["mels"], [x], perm=[1, 0, 2]))
    for layer in range(LAYERS):
        w = _reorder_gates(state[f"lstm.weight_ih_l{layer}"])[None]
        r = _reorder_gates(state[f"lstm.weight_hh_l{layer}"])[None]
        b = np.concatenate([_reorder_gates(state[f"lstm.bias_ih_l{layer}"]), _reorder_gates(state[f"lstm.bias_hh_l{layer}"])])[
            None
        ]
        for name, value in (("W", w), ("R", r), ("B", b)):
            inits.append(numpy_helper.from_array(value.astype(np.float32), f"{name}{layer}"))
        y, y_h = f"y{layer}", f"h{layer}"
        nodes.append(helper.make_node("LSTM", [x, f"W{layer}", f"R{layer}", f"B{layer}"], [y, y_h], hidden_size=HIDDEN))
        if layer < LAYERS - 1:
            x = f"x{layer + 1}"
            inits.append(numpy_helper.from_array(np.array([1], np.int64), f"axis{layer}"))
            nodes.append(helper.make_node("Squeeze", [y, f"axis{layer}"], [x]))
    inits.append(numpy_helper.from_array(np.array([0], np.int64), "axis_h"))
    inits.append(numpy_helper.from_array(state["linear.weight"].astype(np.float32), "linear_w"))
    inits.append(numpy_helper.from_array(state["linear.bias"].astype(np.float32), "linear_b"))
    nodes += [
        helper.make_node("Squeeze", [f"h{LAYERS - 1}", "axis_h"], ["last"]),
        helper.make_node("Gemm", ["last", "linear_w", "linear_b"], ["proj"], transB=1),
        helper.make_node("Relu", ["proj"], ["rect"]),
        helper.make_node("LpNormalization", ["rect"], ["embedding"], axis=-1, p=2),
    ]
    graph = helper.make_graph(
        nodes,
        "ge2e",
        [helper.make_tensor_value_info("mels", TensorProto.FLOAT, ["batch", "frames", N_MELS])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", HIDDEN])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="voxwatch")
    onnx.checker.check_model(model)
    return model.SerializeToString()


def resemblyzer_weights() -> Path:
    """Path of ``pretrained.pt`` inside the installed ``resemblyzer`` package (found without importing it)."""
    from importlib.util import find_spec

    spec = find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the GE2E weights ship in the 'resemblyzer' package: pip install --no-deps resemblyzer==0.1.4")
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise ModelError(f"{path}: GE2E weights file missing; reinstall resemblyzer")
    return path


def export(path: Path, state: dict[str, np.ndarray] | None = None, name: str = "ge2e") -> Path:
    """Write a GE2E-architecture encoder as ``path`` (ONNX) plus the sidecar that :class:`OnnxBackend` reads:
    the shipped GE2E weights, or ``state`` (same tensor names, e.g. a fine-tuned student) under ``name``."""
    import json

    path = Path(path)
    path.write_bytes(build_onnx(read_legacy_state(resemblyzer_weights()) if state is None else state))
    sidecar = {"name": name, "features": "ge2e-mel", "window_s": 1.6, "input": "mels", "output": "embedding"}
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return path
