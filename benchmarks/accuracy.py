"""Accuracy benchmark (issue 5): per condition, voxwatch side by side with a naive spotter, at ONE operating point.

Conditions, all built from ../shared/data (enrollment and stream audio never shared, impostors never enrolled):

  clean       10 LibriSpeech test-other readers enrolled from their 4 largest files; a stream of their other
              readings among 120 train-clean-100 readers (``common.librispeech_task``)
  radio       the same stream through ``channels.radio`` (300-3400 Hz, 8 kHz, compander, 10 dB SNR); clean enrollment
  phone-in    a call-in show: each turn of the clean stream through ``channels.telephone`` with probability 1/2, the
              others as recorded, so the channel changes with the speaker (no squelch between); clean enrollment
  emotional   each turn of the clean stream perturbed on its own (simulated, see ``voxwatch.perturb.emote``): pitch 2-4 semitones up
              or down with the formants kept (WSOLA + resampling + spectral-envelope restoration), tempo 10-20 %
              faster or slower (WSOLA), raised vocal effort (+6 dB/octave tilt, compression, mild clipping); turns
              re-assembled with new pauses; clean neutral enrollment
  emotional-resampled
              the same, but pitch shifted by resampling alone: the formants move 12-26 % with it, as if the vocal
              tract were that much shorter or longer (closer to a different speaker than to an emotion)
  non-English Arabic Speech Commands (not used by the calibration): 7 of the 15 speakers enrolled from 20
              concatenated words each; turns of 6-12 concatenated words of their other words and of the 8 others

The conditions are built by ``voxwatch.conditions``. voxwatch runs the product's way (``voxwatch.bench``): enrollment
WAVs through ``Engine.enroll``, the stream as a WAV through ``Engine.watch`` at the default settings (one operating
point for every condition). The naive spotter (``voxwatch.baseline``) is the same embedding model (--model): the mean of 1.6 s enrollment windows per voice, 1.6 s windows every 0.8 s over the stream (windows below
-45 dBFS skipped), an alert when one window's cosine passes a threshold, at most one per voice per 10 s. It knows no
channel band, so with a band-routed model (the default) it embeds every window with both encoders. Its
threshold is chosen ONCE, on the clean condition (the lowest giving <= 2 false alarms per stream-hour), and kept.

Per condition and system: detection rate over target turns, false alarms per stream-hour (all enrolled voices
together), time-to-alert median/p95 (stream time from the turn's first word), and turn-level EER, minDCF (P_target
0.01) and Cllr over every (truth turn x enrolled voice) trial: voxwatch's final running turn score as an LLR, the
naive spotter's best window cosine in the turn (no Cllr: it has no calibration). Then the score distributions behind
them. With several seeds (each draws other enrolled voices, impostors and turns), each seed's table comes first, then
the same table over all their turns and trials pooled. Last, voxwatch's false alarms per enrolled voice per hour of
stream, the unit of the promise, over every seed: one seed has 10 voices (7 on Arabic) for about 20 minutes, too few
to measure a rate promised at 1 per voice-hour.

    .venv/bin/python benchmarks/accuracy.py [--seed N [N ...]] [--quick]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from common import DATA, librispeech_task, require_data

from voxwatch.baseline import NAIVE_MAX_FA_PER_HOUR, NaiveSpotter, choose_naive_threshold, run_naive
from voxwatch.bench import SystemResult, enroll, run_voxwatch
from voxwatch.conditions import arabic_condition, emotional_condition, from_task, phone_in_condition, radio_condition
from voxwatch.corpus import manifest
from voxwatch.embedding import DEFAULT_MODEL
from voxwatch.engine import Engine, Settings
from voxwatch.spotting_metrics import SpottingResult

# The issue's targets: (minimum detection rate, maximum false alarms per stream-hour); median time-to-alert <= 1.5 s.
TARGETS = {
    "clean": (0.96, 2.0),
    "radio": (0.80, 2.0),
    "phone-in": (0.80, 2.0),  # the narrowband target: half its turns are telephone calls
    "emotional": (0.70, 5.0),
    "emotional-resampled": (0.70, 5.0),
    "non-English": (0.95, 2.0),
}
TTA_TARGET_S = 1.5


# ---------------------------------------------------------------------------------------------------------------
# Report


def _seconds(x: float) -> str:
    return f"{x:7.2f}s" if math.isfinite(x) else f"{'—':>8}"


def _detected(r: SpottingResult) -> str:
    return f"{r.detected}/{r.targets} {r.detection_rate:6.1%}"


def _met(condition: str, r: SpottingResult) -> str:
    rate, fa = TARGETS[condition]
    ok = r.detection_rate >= rate and r.false_alarms_per_hour <= fa and r.tta_percentile(50) <= TTA_TARGET_S
    return "yes" if ok else "no"


def table(results: dict[str, dict[str, SystemResult]]) -> str:
    head = (
        f"{'condition':<19} {'system':<9} {'detected':>13} {'held':>4} {'FA/h':>6} {'(n)':>4} {'TTA med':>8} {'TTA p95':>8}"
        f" {'EER':>7} {'minDCF':>7} {'Cllr':>6}  {'target':<24} met"
    )
    lines = [head, "-" * len(head)]
    for condition, systems in results.items():
        rate, fa = TARGETS[condition]
        for i, (system, r) in enumerate(systems.items()):
            s, m = r.spotting, r.metrics
            cllr = f"{m.cllr:6.3f}" if m.cllr is not None else f"{'n/a':>6}"
            target = f">={rate:.0%} @ <={fa:g} FA/h, TTA<={TTA_TARGET_S:g}s" if i == 0 else ""
            lines.append(
                f"{condition if i == 0 else '':<19} {system:<9} {_detected(s):>13} {r.held_back:>4}"
                f" {s.false_alarms_per_hour:6.1f} {s.false_alarms:>4} {_seconds(s.tta_percentile(50))} {_seconds(s.tta_percentile(95))}"
                f" {m.eer:7.2%} {m.min_dcf:7.3f} {cllr}  {target:<24} {_met(condition, s)}"
            )
    return "\n".join(lines)


def pooled(runs: list[SystemResult]) -> SystemResult:
    """One system on one condition over several seeds: every turn, trial and alert of each, as if one stream."""
    spotting = [r.spotting for r in runs]

    def joined(field: str) -> np.ndarray | None:
        parts = [getattr(r, field) for r in runs]
        return None if any(p is None for p in parts) else np.concatenate(parts)

    return SystemResult(
        spotting=SpottingResult(
            targets=sum(s.targets for s in spotting),
            detected=sum(s.detected for s in spotting),
            false_alarms=sum(s.false_alarms for s in spotting),
            stream_s=sum(s.stream_s for s in spotting),
            times_to_alert_s=tuple(t for s in spotting for t in s.times_to_alert_s),
        ),
        **{
            f: joined(f)
            for f in ("target_scores", "nontarget_scores", "target_llr", "nontarget_llr", "target_peak_llr", "nontarget_peak_llr")
        },
        unscored_turns=sum(r.unscored_turns for r in runs),
        held_back=sum(r.held_back for r in runs),
        threshold_llr=runs[0].threshold_llr,
    )


def _spread(x: np.ndarray) -> str:
    if not len(x):
        return "—"
    return f"{np.mean(x):+7.3f} [{np.percentile(x, 5):+7.3f}, {np.percentile(x, 95):+7.3f}]"


def distributions(results: dict[str, dict[str, SystemResult]], naive_threshold: float) -> str:
    lines = [
        "final-turn scores per trial: mean [5th, 95th percentile]; 'pass' = share of trials at or above the operating point,",
        "max non-target = the hardest impostor trial (what sets false alarms)",
        (
            f"{'condition':<19} {'score':<16} {'target':>27} {'pass':>6} {'non-target':>27} {'pass':>7} {'max non':>8}"
            f" {'turns unscored':>15}"
        ),
    ]
    for condition, systems in results.items():
        vox, naive = systems["voxwatch"], systems["naive"]
        rows = [
            ("voxwatch cosine", vox.target_scores, vox.nontarget_scores, None, vox.unscored_turns),
            ("voxwatch LLR", vox.target_llr, vox.nontarget_llr, vox.threshold_llr, None),
            ("voxwatch max LLR", vox.target_peak_llr, vox.nontarget_peak_llr, vox.threshold_llr, None),
            ("naive max cos", naive.target_scores, naive.nontarget_scores, naive_threshold, naive.unscored_turns),
        ]
        for i, (label, tar, non, threshold, unscored) in enumerate(rows):
            if tar is None or non is None:
                continue
            tp = f"{np.mean(tar >= threshold):6.1%}" if threshold is not None else ""
            np_ = f"{np.mean(non >= threshold):7.2%}" if threshold is not None else ""
            lines.append(
                f"{condition if i == 0 else '':<19} {label:<16} {_spread(tar):>27} {tp:>6} {_spread(non):>27} {np_:>7}"
                f" {np.max(non):+8.3f} {'' if unscored is None else unscored:>15}"
            )
    return "\n".join(lines)


def run(seed: int, quick: bool, model: str) -> tuple[dict[str, dict[str, SystemResult]], dict[str, int], float]:
    """One seed's conditions, both systems on each: the results, each condition's enrolled voices, the naive
    spotter's threshold."""
    rng = np.random.default_rng(seed)
    task = librispeech_task(rng, stream_files=3, impostors=40) if quick else librispeech_task(rng)
    clean = from_task(task)
    conditions = [clean, radio_condition(clean, rng)]
    conditions.append(phone_in_condition(clean, np.random.default_rng([seed, 1])))  # its own draws: the others' as before
    conditions.append(emotional_condition(clean, rng))
    conditions.append(emotional_condition(clean, rng, keep_vocal_tract=False))
    arabic = arabic_condition(manifest(DATA, "arabic_speech_commands"), rng, turns_per_speaker=3 if quick else None)

    results: dict[str, dict[str, SystemResult]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        engine = Engine(Settings(db=folder / "english.db", threads=1, model=model))
        print(
            f"seed {seed}; voxwatch operating point: the default settings, {engine.settings.spotter.false_alarms_per_hour:g} false alarms per enrolled"
            f" voice per hour for every condition: LLR threshold {engine.threshold(8000.0):+.2f} on wideband streams,"
            f" {engine.threshold(3400.0):+.2f} on narrowband ones (each stream's band measured as it plays)"
        )
        for c in conditions + [arabic]:
            targets = sum(t.speaker in c.enrolled for t in c.turns)
            print(
                f"  {c.name:<19} stream {c.duration_s / 60:5.1f} min, {len(c.turns)} turns, {targets} by {len(c.enrolled)} enrolled voices"
            )
        enroll(engine, clean.enrollment, folder)
        naive = NaiveSpotter(engine.backend, clean.enrollment)
        naive_scores = {c.name: naive.scores(c.audio) for c in conditions}
        naive_threshold = choose_naive_threshold(naive_scores["clean"], clean)
        print(
            f"naive operating point: cosine {naive_threshold:.4f}, chosen once on the clean condition as the lowest giving"
            f" <= {NAIVE_MAX_FA_PER_HOUR:g} false alarms per stream-hour, then kept for every condition"
        )
        for c in conditions:
            results[c.name] = {
                "voxwatch": run_voxwatch(engine, c, folder),
                "naive": run_naive(naive_scores[c.name], c, naive_threshold),
            }
        engine.close()
        arabic_engine = Engine(Settings(db=folder / "arabic.db", threads=1, model=model), backend=engine.backend, vad=engine.vad)
        enroll(arabic_engine, arabic.enrollment, folder)
        arabic_naive = NaiveSpotter(engine.backend, arabic.enrollment)
        results[arabic.name] = {
            "voxwatch": run_voxwatch(arabic_engine, arabic, folder),
            "naive": run_naive(arabic_naive.scores(arabic.audio), arabic, naive_threshold),
        }
        arabic_engine.close()
    return results, {c.name: len(c.enrolled) for c in conditions + [arabic]}, naive_threshold


def report(results: dict[str, dict[str, SystemResult]], naive_threshold: float | None) -> None:
    """The table, its notes and (with the naive spotter's threshold, which a pooled run has not one of) the score
    distributions."""
    print()
    print(table(results))
    print(
        "  (n) = false alarms; TTA = stream time from the turn's first word to the alert; EER/minDCF/Cllr over (truth turn x enrolled voice)"
    )
    print(
        "  held = target turns without an alert of their own that began within 10 s of the same voice being found"
        " (the per-voice cooldown; counted as missed in 'detected'); for voxwatch only turns it still recognised"
        " (a detection record of that voice on the turn)"
    )
    for condition, systems in results.items():
        if systems["voxwatch"].false_alarm_notes:
            print(f"  voxwatch, {condition}: {systems['voxwatch'].false_alarm_notes}")
    if naive_threshold is not None:
        print()
        print(distributions(results, naive_threshold))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, nargs="+", default=[1], help="one or more seeds (several: also pooled)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer turns: 3 stream readings per enrolled reader, 40 impostors, 3 Arabic turns per speaker",
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help="embedding model of voxwatch and of the naive spotter")
    args = parser.parse_args()
    require_data()
    started = time.perf_counter()
    runs = []
    for seed in args.seed:
        results, enrolled, naive_threshold = run(seed, args.quick, args.model)
        print(f"\n=== seed {seed}")
        report(results, naive_threshold)
        runs.append((results, enrolled))
    together = {c: {s: pooled([r[c][s] for r, _ in runs]) for s in runs[0][0][c]} for c in runs[0][0]}
    if len(runs) > 1:
        print(f"\n=== seeds {', '.join(map(str, args.seed))} pooled")
        report(together, None)
    print()
    for condition, systems in together.items():
        vox = systems["voxwatch"].spotting
        voice_hours = sum(r[condition]["voxwatch"].spotting.stream_s * e[condition] for r, e in runs) / 3600
        print(
            f"  voxwatch, {condition}: {vox.false_alarms} false alarm{'' if vox.false_alarms == 1 else 's'} in {voice_hours:.1f} voice-hours"
            f" = {vox.false_alarms / voice_hours:.2f} per voice-hour (the promise: at most 1)"
        )
    print(
        f"\n(model {args.model}, seed {' '.join(map(str, args.seed))}{', quick' if args.quick else ''}; {time.perf_counter() - started:.0f} s)"
    )


if __name__ == "__main__":
    main()
