"""Packaging: the models ship inside the package (the same files their sources give), plots are an extra with a
clear message, and a wheel installed into a fresh venv runs the demo with the network cut off."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

from voxwatch.embedding import GE2E_FILE, packaged
from voxwatch.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_ge2e_is_resemblyzers_weights_rebuilt() -> None:
    pytest.importorskip("onnx", reason="rebuilding the graph needs onnx (the test extra)")
    from voxwatch.ge2e import build_onnx, read_legacy_state, resemblyzer_weights

    if find_spec("resemblyzer") is None:
        pytest.skip("resemblyzer (the source of the GE2E weights) is not installed")
    assert build_onnx(read_legacy_state(resemblyzer_weights())) == packaged(GE2E_FILE).read_bytes()


@pytest.mark.parametrize("name", ["silero_vad.onnx", "silero_vad_16k_sequence.onnx"])
def test_shipped_silero_vad_is_the_published_file(name: str) -> None:
    spec = find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("silero-vad (the source of the VAD model) is not installed")
    published = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (published, packaged(f"weights/{name}"))]
    assert digest[0] == digest[1]


def test_plots_without_matplotlib_say_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from voxwatch.plots import new_figure

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if matplotlib were not installed
    with pytest.raises(UsageError, match=r"pip install 'voxwatch\[plots\]'"):
        new_figure(6, 6)


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_the_demo_offline(tmp_path: Path) -> None:
    if subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot cut the network off (unshare -n needs root)")
    if shutil.which("espeak-ng") is None:
        pytest.skip("the demo's voices need espeak-ng")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {"HOME": str(tmp_path)}
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", str(ROOT), "--no-deps", "-w", str(tmp_path / "dist")], check=True, env=env, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("voxwatch-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True, env=env)
    venv = tmp_path / "venv" / "bin"
    subprocess.run([str(venv / "pip"), "install", "-q", str(wheel)], check=True, env=env, cwd=tmp_path)
    installed = subprocess.run([str(venv / "pip"), "list"], capture_output=True, text=True, check=True, env=env).stdout
    for unwanted in ("torch", "onnx ", "matplotlib", "resemblyzer", "silero"):
        assert unwanted not in installed.lower(), f"{unwanted.strip()} installed by a plain pip install"
    demo = subprocess.run(
        ["unshare", "-n", str(venv / "voxwatch"), "demo", "--out", str(tmp_path / "demo"), "--seconds", "60"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr
    assert "ALERT" in demo.stdout and "summary: detected" in demo.stdout
