"""Fit the shipped default calibration (src/voxwatch/calibration.json) on ../shared/data.

Only speakers held apart from the encoder's training (``training/speakers.tsv``) are used: LibriSpeech
train-clean-100 (enroll on the first half of each reading, test on the second), English speech commands and
DSPSpeech-20 (many microphones; enroll on some words, test on turns made of others) and Common Voice Persian. Every
test turn is scored as recorded and through a narrowband channel (the simulated radio or telephone, or one of the
training's randomised radio and telephone chains with real codecs): one calibration is fitted per model and band.
Only numbers are written to the package: the calibrations with their false-alarm tables, a compact summary of the
scores they were fitted on (calibration_scores.npz, the reference distributions of ``voxwatch compare`` reports), and
for the models scored with AS-norm (``COHORT_TOP``) the cohort: one embedding per speaker the encoder was trained on
(``models/<model>-cohort.npy``), against which their scores are normalised before they are calibrated.

    .venv/bin/python benchmarks/fit_calibration.py [--model voxwatch-enc ge2e] [--write]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from common import DATA, heldout

from training.augment import Degrader
from training.data import speakers
from training.prepare import trim
from voxwatch import channels
from voxwatch.audio import RATE_HZ, load_audio
from voxwatch.embedding import SHIPPED_MODELS, load_backend
from voxwatch.engine import Engine, Settings
from voxwatch.metrics import cllr, eer, min_cllr
from voxwatch.scoring import Calibration, Cohort, l2_normalise, pair_maxima
from voxwatch.trials import EvidenceSet, enrollment_watchlist, spotting_evidence

# Models whose scores are AS-normalised, with how many of the closest cohort voices count (of about 480: each training
# speaker in every enrollment condition). GE2E keeps plain cosines: measured on held-apart speakers, AS-norm against
# clean training speakers raised its radio, telephone and babble EERs (docs/model-card.md).
COHORT_TOP = {"voxwatch-enc": 200}
COHORT_S = 12.0  # seconds of each training speaker's speech (from up to six recordings) behind its cohort embedding
MAX_SCORES = 10000  # scores per class and band kept in calibration_scores.npz (a fixed random subsample beyond that)


def halves(files: list[Path]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    audio = np.concatenate([load_audio(f) for f in files])
    middle = len(audio) // 2
    return [audio[:middle]], [audio[middle:]]


def words(files: list[Path], enroll_n: int, turn_n: tuple[int, ...]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Enrollment from the first words; test turns of the others, their lengths cycling through ``turn_n`` words.
    Each word is trimmed of its silences and followed by a 0.15 s pause, as words are in running speech."""
    pause = np.zeros(int(0.15 * RATE_HZ), np.float32)
    clips = [np.concatenate([trim(load_audio(f)), pause]) for f in files]
    enroll = [np.concatenate(clips[:enroll_n])]
    rest, turns, k = clips[enroll_n:], [], 0
    while rest:
        n = turn_n[k % len(turn_n)]
        if len(rest) < n:
            break
        turns.append(np.concatenate(rest[:n]))
        rest, k = rest[n:], k + 1
    return enroll, turns


def cohort_vectors(engine: Engine) -> np.ndarray:
    """The embeddings of each speaker the encoder was trained on (``training/speakers.tsv``) as enrollment makes a
    voiceprint's rows, one per enrollment condition: float16, for the package."""
    rows = []
    for i, (name, files) in enumerate(sorted(speakers("train").items())):
        audio = np.concatenate([load_audio(f) for f in files[:6]])[: int(COHORT_S * RATE_HZ)]
        analysis = engine.analyse_samples(audio, name, voiceprint=True)
        if analysis.segments:
            rows += engine.condition_embeddings(audio, analysis, seed=i).values()
    return np.stack(rows).astype(np.float16)


def collect(
    engine: Engine,
    groups: dict[str, tuple[list[np.ndarray], list[np.ndarray]]],
    rng: np.random.Generator,
    degrade: Degrader,
    cohort: Cohort | None,
) -> tuple[EvidenceSet, EvidenceSet]:
    """Running scores of every test turn as recorded (wideband) and through a narrowband channel (radio or telephone
    at random SNRs, or a randomised radio or telephone chain), against clean multi-condition voiceprints."""
    analyses = {k: [engine.analyse_samples(a, k) for a in enroll] for k, (enroll, _) in groups.items()}
    usable = {k for k, found in analyses.items() if sum(a.speech_s for a in found) >= 3.0 and any(a.segments for a in found)}
    groups = {k: v for k, v in groups.items() if k in usable}
    watchlist = enrollment_watchlist(engine, {k: v[0] for k, v in groups.items()})
    watchlist = dataclasses.replace(watchlist, calibration=dataclasses.replace(watchlist.calibration, cohort=cohort))
    wide: list[tuple[str | None, np.ndarray]] = []
    narrow: list[tuple[str | None, np.ndarray]] = []
    for name, (_, turns) in groups.items():
        for t in turns:
            wide.append((name, t))
            pick = rng.random()
            if pick < 0.3:
                narrow.append((name, channels.radio(t, rng, snr_db=float(rng.uniform(8, 25)))))
            elif pick < 0.5:
                narrow.append((name, channels.telephone(t, rng, snr_db=float(rng.uniform(15, 30)))))
            else:
                narrow.append((name, (degrade.radio if pick < 0.8 else degrade.telephone)(t, rng)))
    return spotting_evidence(engine, watchlist, wide), spotting_evidence(engine, watchlist, narrow)


def score_summary(
    evidence: EvidenceSet, calibration: dict[str, float], target_llr: np.ndarray, nontarget_llr: np.ndarray
) -> dict[str, np.ndarray]:
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
    print(
        f"{band}: a={calibration.a:.4f} b={calibration.b:.4f} c={calibration.c:.4f} d={calibration.d:.4f};"
        f" running-score EER {eer(t, n)[0] * 100:.2f} %, Cllr {cllr(t, n):.3f} bits, minCllr {min_cllr(t, n):.3f} bits,"
        f" speech behind the scores up to {evidence.speech_s.max():.1f} s"
    )
    best = pair_maxima(t, evidence.pairs[evidence.target])  # what each target turn reaches at its best
    worst = pair_maxima(n, evidence.pairs[~evidence.target])  # what raises a false alarm on a non-target turn
    for rate in (10.0, 3.0, 1.0, 0.3, 0.1):
        threshold = calibration.threshold_for(rate)
        below = max((t for t in calibration.fa_llr if t < threshold), default=threshold)  # the table's step below
        print(
            f"  {rate} false alarms per hour of non-target speech per voice: LLR threshold {threshold:+.2f};"
            f" {np.mean(best >= threshold) * 100:.0f} % of the {len(best)} target turns reach it;"
            f" it rests on the {int(np.sum(worst >= below))} non-target turns that reach the step below it ({below:+.2f})"
        )


def fit(
    model: str, rng: np.random.Generator, degrade: Degrader
) -> tuple[dict[str, Calibration], dict[str, EvidenceSet], Cohort | None]:
    """One model's wideband and narrowband calibrations, the running scores they were fitted on, and its cohort."""
    engine = Engine(Settings(db=Path(f"/tmp/voxwatch-calibration-{Path(model).stem}.db"), model=model))
    cohort = None
    if model in COHORT_TOP:
        cohort = Cohort(model, l2_normalise(cohort_vectors(engine)), COHORT_TOP[model])
        print(f"{model}: cohort of {len(cohort.vectors)} training speakers, top {cohort.top}")
    sets = {
        "librispeech-train-clean-100": {
            k: h
            for k, v in heldout("resemblyzer/audio_data/librispeech_train-clean-100").items()
            if len((h := halves(v))[0][0]) >= 4 * 16000
        },
        "speech-commands-v2": {k: words(v, 6, (3, 6)) for k, v in heldout("speech_commands_v2_test").items() if len(v) >= 12},
        "dspspeech20": {k: words(v, 8, (3, 5)) for k, v in heldout("dspspeech20").items()},
        "commonvoice-fa": {k: words(v, 3, (1, 2)) for k, v in heldout("commonvoice_fa").items() if len(v) >= 5},
    }
    evidence: dict[str, EvidenceSet] = {}
    for name, groups in sets.items():
        w, n = collect(engine, groups, rng, degrade, cohort)
        print(
            f"{model}, {name}: {len(groups)} speakers, {int(w.target.sum())} target / {int((~w.target).sum())} non-target running scores per band"
        )
        for band, ev in (("wideband", w), ("narrowband", n)):
            evidence[band] = evidence[band] + ev if band in evidence else ev
    engine.close()
    fits = {band: Calibration.fit(ev.scores, ev.speech_s, ev.target, ev.pairs) for band, ev in evidence.items()}
    for band, ev in evidence.items():
        report(f"{model} {band}", fits[band], ev)
    return fits, evidence, cohort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", nargs="+", default=list(SHIPPED_MODELS) + ["ge2e"], help="models to fit (each keeps its own calibration)"
    )
    parser.add_argument(
        "--write", action="store_true", help="write src/voxwatch/calibration.json, calibration_scores.npz and the cohorts"
    )
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"skipped: {DATA} not found (the shared speech data)")
    degrade = Degrader.from_data()
    path = Path(__file__).resolve().parents[1] / "src" / "voxwatch" / "calibration.json"
    scores_path = path.with_name("calibration_scores.npz")
    shipped = json.loads(path.read_text())
    with np.load(scores_path) as old:
        summaries = {k: old[k] for k in old.files if k.split("__")[0] not in args.model}
    cohorts: dict[str, Cohort] = {}
    for model in args.model:
        fits, evidence, cohort = fit(model, np.random.default_rng(2026), degrade)
        rounded = {
            band: {**{k: round(v, 5) for k, v in c.to_json().items() if k in "abcd"}, "false_alarms": c.to_json()["false_alarms"]}  # type: ignore[attr-defined]
            for band, c in fits.items()
        }
        shipped[model] = {**rounded["wideband"], "narrowband": rounded["narrowband"]}
        if cohort is not None:
            cohorts[model] = cohort
            shipped[model]["cohort"] = {"name": model, "top": cohort.top}
        shipped[model]["dimension"] = load_backend(model).dimension  # a band-routed pair of models splits its vectors by it
        for band, ev in evidence.items():
            llr = fits[band].llr(ev.scores, ev.speech_s)
            summaries |= {
                f"{model}__{band}_{k}": v for k, v in score_summary(ev, rounded[band], llr[ev.target], llr[~ev.target]).items()
            }
    if args.write:
        path.write_text(json.dumps(shipped, indent=1) + "\n")
        np.savez_compressed(scores_path, **summaries)
        for model, cohort in cohorts.items():
            np.save(path.with_name("models") / f"{model}-cohort.npy", cohort.vectors.astype(np.float16))
        print(f"wrote {path}, {scores_path} and the cohorts of {', '.join(cohorts) or 'no model'}")


if __name__ == "__main__":
    main()
