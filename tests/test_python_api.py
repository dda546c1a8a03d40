"""The Python API, fast, with the tone doubles: the engine as a context manager, embeddings and verification of
arrays as well as files, BLAS thread limits scoped to the work (nothing changed at import), and the typing marker."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import av
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from voxwatch import AudioError, Engine, StoreError, UsageError
from voxwatch.audio import RATE_HZ, write_wav
from voxwatch.testing import EnergyVad, ToneBackend, tone_engine, tone_settings, tone_voice

LOW, HIGH = 300.0, 1200.0


def resample(samples: np.ndarray, rate_hz: int) -> np.ndarray:
    """16 kHz float32 → ``rate_hz`` with PyAV (the test's own resampling, independent of voxwatch's)."""
    frame = av.AudioFrame.from_ndarray(samples[None].astype(np.float32), format="flt", layout="mono")
    frame.sample_rate = RATE_HZ
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate_hz)
    frames = resampler.resample(frame) + resampler.resample(None)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames])


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    with tone_engine(tmp_path) as e:
        e.enroll("low", [write_wav(tmp_path / "low.wav", tone_voice(LOW, 5.0, seed=1))], note="tone")
        e.enroll("high", [write_wav(tmp_path / "high.wav", tone_voice(HIGH, 5.0, seed=2))], note="tone")
        yield e


def test_engine_is_a_context_manager_that_closes_its_store(tmp_path: Path) -> None:
    with tone_engine(tmp_path) as engine:
        assert engine.store.speakers() == []
    with pytest.raises(StoreError, match="closed"):
        engine.store.audit("tester", "probe", "x")


def test_embed_takes_files_and_arrays_at_any_rate(engine: Engine, tmp_path: Path) -> None:
    samples = tone_voice(LOW, 4.0, seed=9)
    from_file = engine.embed(write_wav(tmp_path / "q.wav", samples))
    from_array = engine.embed(samples, RATE_HZ)
    assert from_file.shape == (engine.backend.dimension,) and from_file.dtype == np.float32
    assert np.allclose(from_file, from_array, atol=1e-4)  # the wav's 16-bit rounding only
    at_44k = engine.embed(resample(samples, 44100), 44100)
    stereo_int16 = np.stack([resample(samples, 8000)] * 2)
    at_8k = engine.embed((stereo_int16 * 32767).astype(np.int16), 8000)
    assert float(at_44k @ from_array) > 0.99 and float(at_8k @ from_array) > 0.99
    assert float(engine.embed(tone_voice(HIGH, 4.0), RATE_HZ) @ from_array) < 0.2
    with pytest.raises(UsageError, match="rate_hz"):
        engine.verify(samples, "low")  # an array without its rate
    with pytest.raises(AudioError, match="no speech"):
        engine.embed(np.zeros(3 * RATE_HZ, np.float32), RATE_HZ)
    with pytest.raises(AudioError, match="NaN"):
        engine.embed(np.full(RATE_HZ, np.nan, np.float32), RATE_HZ)


def test_verify_and_identify_take_arrays_and_name_them_in_results_and_audit(engine: Engine) -> None:
    samples = resample(tone_voice(HIGH, 4.0, seed=5), 22050)
    verdict = engine.verify(samples, "high", rate_hz=22050)
    assert verdict.accepted and verdict.file.startswith("array:") and verdict.speech_s > 3
    assert not engine.verify(samples, "low", rate_hz=22050).accepted
    [best] = engine.identify(samples, rate_hz=22050)
    assert best.speaker == "high"
    audited = [a for a in engine.store.audit_log() if a["action"] in ("verify", "identify")]
    assert [a["detail"] for a in audited] == [verdict.file] * 3


def test_blas_threads_are_limited_during_work_and_restored_after(tmp_path: Path) -> None:
    seen: list[int] = []

    class Recording(ToneBackend):
        def embed(self, batch: np.ndarray, band: str | None = None) -> np.ndarray:
            seen.extend(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")
            return super().embed(batch, band)

    if not [lib for lib in threadpool_info() if lib["user_api"] == "blas"]:
        pytest.skip("numpy here links no BLAS that threadpoolctl can see")
    limited = threadpool_limits(limits=2, user_api="blas")
    with limited, Engine(tone_settings(tmp_path), backend=Recording(), vad=EnergyVad()) as engine:
        engine.embed(tone_voice(LOW, 3.0), RATE_HZ)
        after = {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}
    assert seen and set(seen) == {1}
    assert after == {2}


def test_importing_voxwatch_leaves_the_environment_alone() -> None:
    code = "import os; before = dict(os.environ); import voxwatch; print(sorted(set(os.environ.items()) ^ set(before.items())))"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_package_is_marked_typed() -> None:
    assert (resources.files("voxwatch") / "py.typed").is_file()
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"py.typed"' in pyproject  # shipped with the package data
