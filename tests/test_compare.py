"""voxwatch compare: forensic-style verification of a questioned recording against references, on real speech."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import largest

from voxwatch import Calibration, Engine, Settings, load_audio
from voxwatch.audio import RATE_HZ, write_wav
from voxwatch.channels import radio
from voxwatch.comparison import Comparison, calibration_scores, compare, format_lr, verbal_scale
from voxwatch.errors import AudioError, UsageError
from voxwatch.quality import band_edge_hz
from voxwatch.report import write_report
from voxwatch.scoring import band_name

READER, OTHER = "2609", "3331"


@pytest.fixture(scope="module")
def case(readers: dict[str, list[Path]]) -> dict[str, object]:
    """References of one reader; questioned recordings from other utterances of that reader and from another reader."""
    references = largest(readers[READER], 2)
    return {
        "references": references,
        "same": largest([f for f in readers[READER] if f not in references], 1)[0],
        "other": largest(readers[OTHER], 1)[0],
    }


@pytest.fixture(scope="module")
def module_engine(tmp_path_factory: pytest.TempPathFactory, models) -> Engine:  # type: ignore[no-untyped-def]
    backend, vad = models
    e = Engine(Settings(db=tmp_path_factory.mktemp("compare") / "voxwatch.db"), actor="tester", backend=backend, vad=vad)
    yield e
    e.close()


@pytest.fixture(scope="module")
def same(module_engine: Engine, case: dict) -> Comparison:  # type: ignore[type-arg]
    return compare(module_engine, case["same"], case["references"])


def test_same_speaker_supports_the_same_speaker_proposition(same: Comparison) -> None:
    assert same.llr > 0 and same.lr > 1
    assert same.verbal.endswith("support for the same-speaker proposition")
    assert "more probable if the questioned speaker is the reference speaker" in same.statement
    assert dict(same.condition_scores)["clean"] == same.score == max(s for _, s in same.condition_scores)
    assert same.questioned.speech_s > 3 and len(same.references) == 2
    assert not any(w.startswith(("narrowband", "short speech", "channel mismatch")) for w in same.warnings), same.warnings
    assert Comparison.from_json(json.loads(json.dumps(same.to_json()))) == same


def test_different_speaker_supports_the_different_speaker_proposition(module_engine: Engine, case: dict) -> None:  # type: ignore[type-arg]
    result = compare(module_engine, case["other"], case["references"])
    assert result.llr < 0 and result.lr < 1
    assert result.verbal.endswith("support for the different-speaker proposition")
    assert result.lr_text.startswith("1/")


def test_narrowband_questioned_recording_is_flagged(module_engine: Engine, case: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    heard = radio(load_audio(case["same"]), np.random.default_rng(5), snr_db=15.0)
    result = compare(module_engine, write_wav(tmp_path / "radio.wav", heard), case["references"])
    assert result.questioned.bandwidth_hz < 4000 and all(r.bandwidth_hz > 6000 for r in result.references)
    narrow = [w for w in result.warnings if w.startswith("narrowband")]
    assert len(narrow) == 1 and "simulated radio" in narrow[0] and "radio.wav" in narrow[0]
    assert any(w.startswith("channel mismatch") for w in result.warnings)
    assert result.calibration == Calibration.default().narrowband  # the LR comes from the narrowband calibration


def test_short_questioned_recording_is_flagged(module_engine: Engine, case: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    audio = load_audio(case["same"])
    start = int(np.argmax(np.abs(audio) > 0.05))  # the first speech, so the cut holds mostly speech
    result = compare(
        module_engine, write_wav(tmp_path / "short.wav", audio[start : start + int(2.5 * RATE_HZ)]), case["references"]
    )
    assert 0 < result.questioned.speech_s < 3
    assert any(w.startswith("short speech: the questioned recording") for w in result.warnings), result.warnings


def test_report_is_self_contained_and_complete(same: Comparison, tmp_path: Path) -> None:
    page = write_report(same, tmp_path / "case.html").read_text(encoding="utf-8")
    assert f"LR = {same.lr_text}" in page and f"{same.log10_lr:+.2f}" in page
    assert same.verbal[1:] in page and "Same-speaker proposition" in page and "Different-speaker proposition" in page
    assert same.questioned.sha256 in page and all(r.sha256 in page for r in same.references)
    assert len(re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', page)) == 3
    assert "voxwatch compare " in page and "--reference" in page
    for section in ("Warnings", "Recording quality", "Tippett", "DET", "Limitations", "C<sub>llr</sub>"):
        assert section in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    band = band_name(same.questioned.bandwidth_hz)
    encoder = "voxwatch-enc, voxwatch&#x27;s own speaker encoder" if band == "narrowband" else "the GE2E speaker encoder"
    assert f"embedded with {encoder}, the encoder ge2e+voxwatch-enc uses for {band} recordings" in page


def test_a_recording_cannot_be_its_own_reference(module_engine: Engine, case: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(UsageError, match="own reference"):
        compare(module_engine, case["same"], [case["references"][0], case["same"]])
    with pytest.raises(UsageError, match="twice"):
        compare(module_engine, case["same"], [case["references"][0], case["references"][0]])
    with pytest.raises(AudioError, match="no such file"):
        compare(module_engine, case["same"], ["/nonexistent.wav"])


def test_arrays_compare_exactly_as_their_files(module_engine: Engine, case: dict, same: Comparison) -> None:  # type: ignore[type-arg]
    arrays = [load_audio(f) for f in [case["same"], *case["references"]]]
    result = compare(module_engine, arrays[0], arrays[1:], rate_hz=RATE_HZ)
    assert result.llr == same.llr and result.score == same.score and result.warnings == same.warnings
    assert result.questioned.file.startswith("array:") and result.questioned.speech_s == same.questioned.speech_s
    with pytest.raises(UsageError, match="own reference"):
        compare(module_engine, arrays[0], [arrays[0]], rate_hz=RATE_HZ)


def test_cli_turns_non_audio_into_one_clean_error(tmp_path: Path, case: dict) -> None:  # type: ignore[type-arg]
    notes = tmp_path / "notes.txt"
    notes.write_text("not a recording\n" * 100)
    env = {**os.environ, "VOXWATCH_DB": str(tmp_path / "cli.db")}
    exe = Path(sys.executable).with_name("voxwatch")
    command = [str(exe), "compare", str(notes), "--reference", str(case["references"][0])]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == AudioError.exit_code
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("voxwatch: error:") and "notes.txt" in lines[0], result.stderr


@pytest.mark.parametrize(
    ("log10_lr", "words"),
    [
        (0.5, "weak support for the same"),
        (1.0, "moderate support for the same"),
        (2.5, "moderately strong support for the same"),
        (3.0, "strong support for the same"),
        (5.9, "very strong support for the same"),
        (6.0, "extremely strong support for the same"),
        (-0.3, "weak support for the different"),
        (-3.5, "strong support for the different"),
        (-7, "extremely strong support for the different"),
        (0.001, "no support for either"),
    ],
)
def test_verbal_scale_follows_enfsi(log10_lr: float, words: str) -> None:
    assert verbal_scale(log10_lr).startswith(words)


def test_format_lr() -> None:
    assert [format_lr(x) for x in (0.3, 1.5, 2.58, 4.08, 7.49, -2.58)] == ["2.00", "31.6", "380", "12,000", "3.1 × 10^7", "1/380"]


def test_channel_bandwidth_tells_narrow_channels_from_dark_voices(readers: dict[str, list[Path]]) -> None:
    rng = np.random.default_rng(3)
    for files in readers.values():
        clean = load_audio(files[0])
        assert band_edge_hz(clean) > 4500  # wideband, whatever the voice
        assert band_edge_hz(radio(clean, rng, snr_db=10.0)) < 3800  # broadband noise does not widen a radio channel
        # nor do two transmissions apart by squelch (digital silence), one received 10 dB weaker than the other
        squelched = np.zeros(RATE_HZ, np.float32)
        assert band_edge_hz(np.concatenate([radio(clean, rng), squelched, 0.3 * radio(clean, rng)])) < 3800


@pytest.mark.parametrize("band", ["wideband", "narrowband"])
def test_shipped_calibration_scores_are_small_and_consistent(band: str) -> None:
    shipped = calibration_scores(band)
    assert (Path(__file__).parents[1] / "src/voxwatch/calibration_scores.npz").stat().st_size < 200_000
    assert len(shipped.nontarget_scores) <= 10_000 < shipped.n_nontarget and len(shipped.target_scores) > 500
    in_use = Calibration.default().for_band(3400 if band == "narrowband" else 8000)
    assert (shipped.calibration.a, shipped.calibration.d) == (in_use.a, in_use.d)  # the summary belongs to that band's fit
    assert Calibration.from_json(json.loads(json.dumps(in_use.to_json()))) == in_use
    target, nontarget = shipped.llrs()
    assert np.mean(target > 0) > 0.6 and np.mean(nontarget < 0) > 0.8
    assert shipped.cllr < 1 and shipped.cllr - shipped.min_cllr < 0.1  # calibrated: little lost to calibration
