"""Spotting benchmark: enrolled LibriSpeech voices in a long stream among never-enrolled speakers.

Prints detection rate over target turns, false alarms per stream-hour, time-to-alert (median, 95th percentile, stream
time from the turn's first word) and speed (× real time on one core), at the default operating point (a false-alarm
rate per enrolled voice) and at a sweep of rates.

    .venv/bin/python benchmarks/spotting.py [--seed N]
"""

from __future__ import annotations

import argparse

import numpy as np
from common import librispeech_task, require_data, run_watch

from voxwatch.engine import Settings
from voxwatch.pipeline import SpotterOptions
from voxwatch.scoring import Calibration
from voxwatch.spotting_metrics import score_alerts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rates", default="", help="comma-separated false-alarm rates (per voice per hour) to sweep as well")
    args = parser.parse_args()
    require_data()
    task = librispeech_task(np.random.default_rng(args.seed))
    enrolled = set(task.enrollment)
    print(
        f"stream {task.duration_s / 60:.1f} min, {len(task.turns)} turns, {sum(t.speaker in enrolled for t in task.turns)} by {len(enrolled)} enrolled voices"
    )
    default = SpotterOptions().false_alarms_per_hour
    for rate in [default] + [float(x) for x in args.rates.split(",") if x]:
        settings = Settings(threads=1, spotter=SpotterOptions(false_alarms_per_hour=rate))
        summary, seconds = run_watch(task, settings)
        result = score_alerts(summary.alerts, task.turns, enrolled, task.duration_s)
        tag = "default" if rate == default else "sweep"
        print(
            f"[{tag}] {rate:g} false alarms/voice-hour (wideband LLR threshold {settings.spotter.threshold(Calibration.default(), 8000.0):+.2f}):"
            f" detected {result.detected}/{result.targets} target turns ({result.detection_rate:.1%}),"
            f" {result.false_alarms_per_hour:.1f} false alarms/stream-hour ({result.false_alarms}),"
            f" time-to-alert median {result.tta_percentile(50):.2f} s, p95 {result.tta_percentile(95):.2f} s,"
            f" speed {task.duration_s / seconds:.0f}x real time on one core"
        )


if __name__ == "__main__":
    main()
