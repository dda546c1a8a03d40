"""Fit the shipped default calibration (src/voxwatch/calibration.json) on ../shared/data.

Speakers used here are kept apart from the tests and benchmarks (which use LibriSpeech test-other, CMU ARCTIC, AMI
and, for other languages, the Arabic speech commands): LibriSpeech train-clean-100 (enroll on the first half of each
reading, test on the second) and English speech commands (enroll on some words, test on turns made of others). Every
test turn is scored as recorded and through a simulated narrowband channel (radio or telephone): one calibration is
fitted per channel band. Only numbers are written to the package: the calibrations with their false-alarm tables, and
a compact summary of the scores they were fitted on (calibration_scores.npz, the reference distributions of
``voxwatch compare`` reports).

    .venv/bin/python benchmarks/fit_calibration.py [--write]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from voxwatch import channels
from voxwatch.audio import load_audio
from voxwatch.corpus import manifest
from voxwatch.engine import Engine, Settings
from voxwatch.evaluate import cllr, eer, min_cllr
from voxwatch.scoring import Calibration
from voxwatch.trials import EvidenceSet, spotting_evidence, voiceprints

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MAX_SCORES = 10000  # scores per class and band kept in calibration_scores.npz (a fixed random subsample beyond that)


def halves(files: list[Path]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    audio = np.concatenate([load_audio(f) for f in files])
    middle = len(audio) // 2
    return [audio[:middle]], [audio[middle:]]


def words(files: list[Path], enroll_n: int, turn_n: tuple[int, ...]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Enrollment from the first words; test turns of the others, their lengths cycling through ``turn_n`` words."""
    clips = [load_audio(f) for f in files]
    enroll = [np.concatenate(clips[:enroll_n])]
    rest, turns, k = clips[enroll_n:], [], 0
    while rest:
        n = turn_n[k % len(turn_n)]
        if len(rest) < n:
            break
        turns.append(np.concatenate(rest[:n]))
        rest, k = rest[n:], k + 1
    return enroll, turns


def collect(engine: Engine, groups: dict[str, tuple[list[np.ndarray], list[np.ndarray]]], rng: np.random.Generator) -> tuple[EvidenceSet, EvidenceSet]:
    """Running scores of every test turn as recorded (wideband) and through a narrowband channel (radio or telephone,
    at random SNRs), against clean multi-condition voiceprints."""
    usable = {k for k, (enroll, _) in groups.items() if sum(engine.analyse_samples(a, k).speech_s for a in enroll) >= 3.0}
    groups = {k: v for k, v in groups.items() if k in usable}
    watchlist = voiceprints(engine, {k: v[0] for k, v in groups.items()})
    wide: list[tuple[str | None, np.ndarray]] = []
    narrow: list[tuple[str | None, np.ndarray]] = []
    for name, (_, turns) in groups.items():
        for t in turns:
            wide.append((name, t))
            if rng.random() < 0.5:
                narrow.append((name, channels.radio(t, rng, snr_db=float(rng.uniform(8, 25)))))
            else:
                narrow.append((name, channels.telephone(t, rng, snr_db=float(rng.uniform(15, 30)))))
    return spotting_evidence(engine, watchlist, wide), spotting_evidence(engine, watchlist, narrow)


def score_summary(evidence: EvidenceSet, calibration: dict[str, float], target_llr: np.ndarray, nontarget_llr: np.ndarray) -> dict[str, np.ndarray]:
    """One band's training scores, compact: float16 scores and speech seconds of at most MAX_SCORES targets and as many
    non-targets (a fixed random subsample), plus the full set's size and metrics. Numbers only, no audio."""
    pick = np.random.default_rng(0)  # its own generator: the fit's draws stay as they were
    tar, non = (np.flatnonzero(mask) for mask in (evidence.target, ~evidence.target))
    tar, non = (np.sort(pick.choice(i, MAX_SCORES, replace=False)) if len(i) > MAX_SCORES else i for i in (tar, non))
    return {
        "target_scores": evidence.scores[tar].astype(np.float16),
        "target_speech_s": evidence.speech_s[tar].astype(np.float16),
        "nontarget_scores": evidence.scores[non].astype(np.float16),
        "nontarget_speech_s": evidence.speech_s[non].astype(np.float16),
        "calibration": np.array([calibration[k] for k in "abcd"]),  # the a, b, c, d these scores were fitted to
        "n_target": np.int64(len(target_llr)),
        "n_nontarget": np.int64(len(nontarget_llr)),
        "eer": np.float64(eer(target_llr, nontarget_llr)[0]),
        "cllr": np.float64(cllr(target_llr, nontarget_llr)),
        "min_cllr": np.float64(min_cllr(target_llr, nontarget_llr)),
    }


def report(band: str, calibration: Calibration, evidence: EvidenceSet) -> None:
    llr = calibration.llr(evidence.scores, evidence.speech_s)
    t, n = llr[evidence.target], llr[~evidence.target]
    print(f"{band}: a={calibration.a:.4f} b={calibration.b:.4f} c={calibration.c:.4f} d={calibration.d:.4f};"
          f" running-score EER {eer(t, n)[0] * 100:.2f} %, Cllr {cllr(t, n):.3f} bits, minCllr {min_cllr(t, n):.3f} bits,"
          f" speech behind the scores up to {evidence.speech_s.max():.1f} s")
    for rate in (10.0, 3.0, 1.0, 0.3, 0.1):
        print(f"  {rate} false alarms per hour of non-target speech per voice: LLR threshold {calibration.threshold_for(rate):+.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="write src/voxwatch/calibration.json and calibration_scores.npz")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"skipped: {DATA} not found (the shared speech data)")
    rng = np.random.default_rng(2026)
    engine = Engine(Settings(db=Path("/tmp/voxwatch-calibration.db")))
    sets = {
        "librispeech-train-clean-100": {
            k: h for k, v in manifest(DATA, "resemblyzer/audio_data/librispeech_train-clean-100").items() if len((h := halves(v))[0][0]) >= 4 * 16000
        },
        "speech-commands-v2": {k: words(v, 6, (3, 6)) for k, v in manifest(DATA, "speech_commands_v2_test").items() if len(v) >= 12},
    }
    wide: EvidenceSet | None = None
    narrow: EvidenceSet | None = None
    for name, groups in sets.items():
        w, n = collect(engine, groups, rng)
        print(f"{name}: {len(groups)} speakers, {int(w.target.sum())} target / {int((~w.target).sum())} non-target running scores per band")
        wide, narrow = (w, n) if wide is None or narrow is None else (wide + w, narrow + n)
    assert wide is not None and narrow is not None
    fits = {band: Calibration.fit(ev.scores, ev.speech_s, ev.target, ev.pairs) for band, ev in (("wideband", wide), ("narrowband", narrow))}
    for band, ev in (("wideband", wide), ("narrowband", narrow)):
        report(band, fits[band], ev)
    if args.write:
        path = Path(__file__).resolve().parents[1] / "src" / "voxwatch" / "calibration.json"
        rounded = {band: {**{k: round(v, 5) for k, v in c.to_json().items() if k in "abcd"}, "false_alarms": c.to_json()["false_alarms"]}  # type: ignore[attr-defined]
                   for band, c in fits.items()}
        path.write_text(json.dumps({"ge2e": {**rounded["wideband"], "narrowband": rounded["narrowband"]}}, indent=1) + "\n")
        print(f"wrote {path}")
        summaries = {}
        for band, ev in (("wideband", wide), ("narrowband", narrow)):
            llr = fits[band].llr(ev.scores, ev.speech_s)
            summaries |= {f"{band}_{k}": v for k, v in score_summary(ev, rounded[band], llr[ev.target], llr[~ev.target]).items()}
        scores_path = path.with_name("calibration_scores.npz")
        np.savez_compressed(scores_path, **summaries)
        print(f"wrote {scores_path}")


if __name__ == "__main__":
    main()
