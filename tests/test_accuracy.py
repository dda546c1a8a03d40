"""Accuracy per condition on real speech (issue 5): small fixed-seed versions of benchmarks/accuracy.py,
built from the package (voxwatch.conditions, voxwatch.bench, voxwatch.baseline).

voxwatch runs the product's way (enroll WAVs, watch a stream WAV at the default operating point); the naive spotter
(one 1.6 s window's cosine against a threshold chosen on the clean stream) runs on the same audio. The floors are
regression guards the current system passes with margin, not the issue's targets (the benchmark prints those).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import largest

from voxwatch import Engine, Settings, perturb
from voxwatch.audio import RATE_HZ
from voxwatch.baseline import NaiveSpotter, choose_naive_threshold, run_naive
from voxwatch.bench import SystemResult, enroll, run_voxwatch
from voxwatch.conditions import (
    Condition,
    arabic_condition,
    emotional_condition,
    from_task,
    phone_in_condition,
    radio_condition,
)
from voxwatch.corpus import manifest, spotting_task
from voxwatch.quality import band_edge_hz
from voxwatch.scoring import NARROWBAND_HZ

ENROLLED = ["1688", "2414", "3080", "533"]


@pytest.fixture(scope="module")
def english(data: Path, readers: dict[str, list[Path]], impostors: dict[str, list[Path]], models, tmp_path_factory):  # type: ignore
    """4 readers enrolled from their 2 largest readings; a ~3.5 min stream of 3 other readings each among 9 readers
    never enrolled (5 of LibriSpeech train-clean-100, 4 of test-other). Yields the engine with those voices enrolled,
    its folder, the clean condition, and the naive spotter with its threshold (set on this clean stream)."""
    rng = np.random.default_rng(1234)
    others = dict(list(impostors.items())[:5]) | {k: v for k, v in list(readers.items())[:8] if k not in ENROLLED}
    task = spotting_task({k: readers[k] for k in ENROLLED}, others, rng, enroll_files=2, stream_files=3)
    assert all(set(task.enrollment[k]) == set(largest(readers[k], 2)) for k in ENROLLED)
    clean = from_task(task)
    folder = tmp_path_factory.mktemp("accuracy")
    backend, vad = models
    engine = Engine(Settings(db=folder / "english.db"), actor="tester", backend=backend, vad=vad)
    enroll(engine, clean.enrollment, folder)
    naive = NaiveSpotter(backend, clean.enrollment)
    threshold = choose_naive_threshold(naive.scores(clean.audio), clean)
    yield engine, folder, clean, naive, threshold
    engine.close()


def both(
    engine: Engine, folder: Path, condition: Condition, naive: NaiveSpotter, threshold: float
) -> tuple[SystemResult, SystemResult]:
    """voxwatch and the naive spotter on the same condition."""
    return run_voxwatch(engine, condition, folder), run_naive(naive.scores(condition.audio), condition, threshold)


def report(vox: SystemResult, naive: SystemResult) -> str:
    return (
        f"voxwatch {vox.spotting.to_json()} held back {vox.held_back}, EER {vox.metrics.eer:.3f};"
        f" naive {naive.spotting.to_json()} held back {naive.held_back}, EER {naive.metrics.eer:.3f}"
    )


def test_clean(english) -> None:  # type: ignore[no-untyped-def]
    engine, folder, clean, naive, threshold = english
    vox, base = both(engine, folder, clean, naive, threshold)
    assert vox.spotting.targets == 12
    # every target turn reported: by an alert of its own, or held back by the cooldown after the same voice's turn
    assert vox.spotting.detected + vox.held_back >= 10, report(vox, base)
    assert vox.spotting.detection_rate >= 0.66, report(vox, base)
    assert vox.spotting.false_alarms <= 1, report(vox, base)
    assert vox.spotting.tta_percentile(50) <= 3.5, report(vox, base)
    assert vox.metrics.eer <= 0.02 and vox.metrics.cllr is not None and vox.metrics.cllr <= 0.2, report(vox, base)
    assert vox.metrics.cllr - vox.metrics.min_cllr < 0.1, report(vox, base)  # calibrated on speakers it was not fitted on
    assert vox.unscored_turns == 0


def test_radio_channel(english, rng: np.random.Generator) -> None:  # type: ignore[no-untyped-def]
    """Far from the issue's target. At the default operating point (0.1 false alarms per voice-hour, narrowband
    calibration) voxwatch stays quiet; at 10 per voice-hour it reports some turns (alerts, or turns held by the cooldown);
    its turn scores separate far better than the naive spotter's, which detects nothing at its clean threshold."""
    engine, folder, clean, naive, threshold = english
    condition = radio_condition(clean, rng)
    vox, base = both(engine, folder, condition, naive, threshold)
    assert vox.spotting.false_alarms <= 1, report(vox, base)
    assert vox.metrics.eer <= 0.25 and vox.metrics.eer < base.metrics.eer - 0.05, report(vox, base)
    looser = dataclasses.replace(
        engine.settings, spotter=dataclasses.replace(engine.settings.spotter, false_alarms_per_hour=10.0)
    )
    loose = run_voxwatch(Engine(looser, actor="tester", backend=engine.backend, vad=engine.vad), condition, folder)
    assert loose.spotting.detected + loose.held_back >= max(3, base.spotting.detected + 2), report(loose, base)
    assert loose.spotting.false_alarms_per_hour <= 10.0 * len(condition.enrolled), report(loose, base)


def test_phone_in(english, rng: np.random.Generator) -> None:  # type: ignore[no-untyped-def]
    """A call-in show: about half the turns through a telephone line, the channel changing with the speaker. The
    callers' turns, and only theirs, are narrowband; voxwatch hears them with the narrowband encoder and calibration
    from their first seconds, so the channel changes raise no more false alarms than the clean stream does."""
    engine, folder, clean, naive, threshold = english
    condition = phone_in_condition(clean, rng)
    called = [not np.array_equal(condition.cut(t), clean.cut(t)) for t in condition.turns]
    assert 0.3 < np.mean(called) < 0.7
    narrow = [0 < band_edge_hz(condition.cut(t)) < NARROWBAND_HZ for t in condition.turns]
    assert narrow == called
    vox, base = both(engine, folder, condition, naive, threshold)
    assert vox.spotting.false_alarms <= 1, report(vox, base)
    assert vox.spotting.detected + vox.held_back >= 6, report(vox, base)
    assert vox.metrics.eer <= 0.05 and vox.metrics.eer < base.metrics.eer, report(vox, base)


def test_emotional_speech(english, rng: np.random.Generator) -> None:  # type: ignore[no-untyped-def]
    """Simulated emotion (pitch, tempo, vocal effort) defeats the naive spotter's scores; voxwatch's raised-effort
    voiceprints keep target turns apart (the simulation's effort is what that enrollment condition models)."""
    engine, folder, clean, naive, threshold = english
    vox, base = both(engine, folder, emotional_condition(clean, rng), naive, threshold)
    assert vox.spotting.detected >= 5 and vox.spotting.false_alarms <= 2, report(vox, base)
    assert vox.metrics.eer <= 0.05 and vox.metrics.eer < base.metrics.eer - 0.05, report(vox, base)


def test_non_english(english, data: Path, models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Arabic isolated words: 3 of 5 speakers enrolled from 20 words each; 3 turns of 6-12 words per speaker."""
    speakers = dict(list(manifest(data, "arabic_speech_commands").items())[:5])
    condition = arabic_condition(speakers, np.random.default_rng(1234), enrolled=3, turns_per_speaker=3)
    backend, vad = models
    engine = Engine(Settings(db=tmp_path / "arabic.db"), actor="tester", backend=backend, vad=vad)
    enroll(engine, condition.enrollment, tmp_path)
    naive = NaiveSpotter(backend, condition.enrollment)
    vox, base = both(engine, tmp_path, condition, naive, threshold=english[4])  # the naive threshold set on clean English
    engine.close()
    assert vox.spotting.targets == 9
    assert vox.spotting.detected + vox.held_back >= 6, report(vox, base)
    assert vox.spotting.false_alarms <= min(4, base.spotting.false_alarms), report(vox, base)
    assert vox.metrics.eer <= 0.05, report(vox, base)


def test_emotion_perturbation_is_general() -> None:
    """The perturbations keep length where asked, change what they say they change, and stay within [-1, 1]."""
    rng = np.random.default_rng(0)
    t = np.arange(2 * RATE_HZ) / RATE_HZ
    tone = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    up = perturb.pitch_shift(tone, 12.0)
    assert len(up) == len(tone)
    spectrum = np.abs(np.fft.rfft(up[4000:-4000]))
    assert abs(np.argmax(spectrum) * RATE_HZ / len(up[4000:-4000]) - 400) < 10
    slow = perturb.time_stretch(tone, 40000)
    assert len(slow) == 40000
    assert abs(np.argmax(np.abs(np.fft.rfft(slow))) * RATE_HZ / 40000 - 200) < 5
    y = perturb.emote(tone, rng)
    assert 0.75 * 32000 <= len(y) <= 1.25 * 32000 and np.all(np.abs(y) <= 1.0) and np.all(np.isfinite(y))
