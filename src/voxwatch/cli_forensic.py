"""The forensic and evaluation commands: compare a questioned recording with references, evaluate on a
trial list, re-fit the calibration."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import click

from .cli_context import Context, guard, stdin_audio, worker_count
from .cli_progress import Progress
from .errors import UsageError


def trial_root(fn: Callable[..., None]) -> Callable[..., None]:
    """``--root``: where the recordings a trial list names are (default: beside the list)."""
    return click.option(
        "--root",
        type=click.Path(exists=True, file_okay=False),
        default=None,
        help="Folder the trial list's relative paths start from [default: the list's folder].",
    )(fn)


@click.command("eval")
@click.argument("trials", type=click.Path(exists=True, dir_okay=False))
@trial_root
@click.option("--p-target", type=float, default=0.01, show_default=True, help="Target prior of the detection cost function.")
@click.option(
    "--det",
    "det_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also draw the DET plot here (PNG; needs the plots extra).",
)
@click.option(
    "--scores",
    "scores_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write a score file: 'enroll test score llr target|nontarget' per trial.",
)
@worker_count
@click.pass_obj
@guard
def evaluate_cmd(
    obj: Context, trials: str, root: str | None, p_target: float, det_path: str, scores_path: str | None, workers: int | None
) -> None:
    """Evaluate on a trial list: EER, minDCF, Cllr, DET plot. Lines are "label enroll test" (VoxCeleb) or
    "enroll test label" (Kaldi), the label 1/0, target/nontarget or tgt/imp.

    \b
    Examples:
      voxwatch eval trials.txt --p-target 0.01 --det det.png
      voxwatch eval voxceleb1-o.txt --root wav/ --scores scores.txt
    """
    from .trials import run_trials

    with Progress("scoring", obj.as_json) as progress:
        metrics = run_trials(obj.engine(workers=workers), trials, p_target, det_path, root, scores_path, progress)
    obj.emit(
        metrics.to_json(),
        f"EER {metrics.eer * 100:.2f} %   minDCF(P_target={p_target}) {metrics.min_dcf:.3f}   "
        f"Cllr {metrics.cllr:.3f} bits (min {metrics.min_cllr:.3f})   {metrics.n_target} target / {metrics.n_nontarget} non-target trials"
        + (f"\nDET plot: {det_path}" if det_path else ""),
    )


@click.command()
@click.argument("trials", type=click.Path(exists=True, dir_okay=False))
@trial_root
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Where to write the calibration (JSON)."
)
@worker_count
@click.pass_obj
@guard
def calibrate(obj: Context, trials: str, root: str | None, out: Path, workers: int | None) -> None:
    """Re-fit the score-to-LLR calibration of the model in use on your own trial list (as for 'voxwatch eval'), then
    use it with --calibration FILE (or $VOXWATCH_CALIBRATION). A calibration belongs to its model, and fits one
    encoder: the default, which hears each channel band with its own, is calibrated through one of its two models.

    \b
    Example:
      voxwatch --model voxwatch-enc calibrate our-trials.txt --out ours.json
      voxwatch --model voxwatch-enc enroll "Jane Doe" jane1.wav
      voxwatch --model voxwatch-enc --calibration ours.json watch line1.wav
    """
    import numpy as np

    from .embedding import routed_models
    from .metrics import evaluate
    from .scoring import Calibration
    from .trials import read_trials, score_trials

    engine = obj.engine(workers=workers)
    routed = routed_models(engine.backend.name)
    if routed is not None:
        wide, narrow = routed
        raise UsageError(
            f"{engine.backend.name} scores each channel band with its own encoder, so one calibration cannot map its"
            f" scores: calibrate one of its models (--model {wide} for wideband, --model {narrow} for narrowband"
            " channels) and use that model with the calibration"
        )
    with Progress("scoring", obj.as_json) as progress:
        scores, speech, target, _ = score_trials(engine, read_trials(trials, root), progress)
    fitted = Calibration.fit(scores, speech, target, np.arange(len(scores)))  # each trial counts as one turn
    in_use = engine.calibration(required=False)  # the scores were normalised against its cohort, if it has one
    fitted = dataclasses.replace(fitted, model=engine.backend.name, cohort=in_use.cohort)
    old, new = in_use.llr(scores, speech), fitted.llr(scores, speech)
    before, after = evaluate(old[target], old[~target]), evaluate(new[target], new[~target])
    try:
        out.write_text(json.dumps(fitted.to_json(), indent=1) + "\n")
    except OSError as exc:
        raise UsageError(f"{out}: cannot write the calibration ({exc.strerror})") from exc
    obj.emit(
        {
            "calibration": str(out),
            "cllr_before": before.cllr,
            "cllr_after": after.cllr,
            "min_cllr": after.min_cllr,
            "eer": after.eer,
        },
        f"Cllr on these trials: {before.cllr:.3f} bits with the current calibration, {after.cllr:.3f} after re-fitting"
        f" (minCllr {after.min_cllr:.3f}, EER {after.eer * 100:.2f} %); written to {out}",
    )


@click.command()
@click.argument("questioned", type=click.Path())
@click.option(
    "--reference",
    "references",
    multiple=True,
    required=True,
    type=click.Path(),
    help="A recording of the claimed speaker alone (repeatable).",
)
@click.option(
    "--report", "report_path", type=click.Path(dir_okay=False), default=None, help="Also write a self-contained HTML report here."
)
@click.pass_obj
@guard
def compare(obj: Context, questioned: str, references: tuple[str, ...], report_path: str | None) -> None:
    """Forensic-style comparison of a QUESTIONED recording with reference recordings of a claimed speaker (nothing
    needs to be enrolled; '-' reads one of them from stdin): a calibrated likelihood ratio with its verbal scale, the quality of both sides, and a
    warning for every condition outside what the calibration covers.

    \b
    Example:
      voxwatch compare intercept.wav --reference suspect-interview1.wav --reference suspect-interview2.flac --report case-17.html
    """
    from .comparison import compare as run_compare
    from .report import reproduce_command, write_report

    if report_path and not Path(report_path).absolute().parent.is_dir():
        raise UsageError(f"cannot write report {report_path}: its folder does not exist")
    engine = obj.engine()
    try:
        with stdin_audio([questioned, *references]) as (spooled, *spooled_references):
            result = run_compare(engine, spooled, spooled_references)
    finally:
        engine.close()
    result = dataclasses.replace(
        result,
        questioned=dataclasses.replace(result.questioned, file=questioned),
        references=tuple(dataclasses.replace(r, file=f) for r, f in zip(result.references, references)),
    )
    command = reproduce_command(result, report_path, engine.settings.model)
    if report_path:
        write_report(result, report_path, command)
    if obj.as_json:
        click.echo(json.dumps({**result.to_json(), "report": report_path, "command": command}))
        return
    for role, r in [("questioned", result.questioned)] + [("reference", r) for r in result.references]:
        band = f"{r.bandwidth_hz:.0f} Hz" if r.bandwidth_hz else "n/a"
        click.echo(
            f"{role:<10}  {r.file}\n            {r.speech_s:.1f} s net speech of {r.duration_s:.1f} s, SNR {r.snr_db:.0f} dB, "
            f"bandwidth {band}, clipping {100 * r.clipping:.2f} %, sha256 {r.sha256}"
        )
    click.echo(f"score {result.score:.3f} (" + ", ".join(f"{c} {s:.3f}" for c, s in result.condition_scores) + ")")
    click.echo(f"LR {result.lr_text} (log10 LR {result.log10_lr:+.2f}): {result.verbal}")
    click.echo(result.statement)
    for warning in result.warnings:
        click.echo(f"warning: {warning}")
    if report_path:
        click.echo(f"report: {report_path}")
    click.echo(f"reproduce: {command}")
