"""The report of a forensic comparison: one self-contained HTML file (plots embedded as PNG, no scripts, no network)
that states the likelihood ratio and what it means, the recordings and their quality, what the calibration behind
the number was fitted on and how well it performs there, and the limits of the method."""

from __future__ import annotations

import base64
import html
import io
import math
import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .comparison import DIFFERENT, SAME, CalibrationScores, Comparison, Limits, calibration_scores
from .embedding import DEFAULT_MODEL, routed_models
from .errors import UsageError
from .metrics import Metrics, evaluate
from .plots import det_figure, new_figure, tippett_figure
from .scoring import band_name

__all__ = ["reproduce_command", "write_report"]

_MIN_SIMILAR = 100  # calibration trials per class needed to show only those with net speech like the questioned side's


def _absolute(file: str) -> str:
    return file if file == "-" else str(Path(file).absolute())  # "-": the recording came on stdin


def reproduce_command(comparison: Comparison, report: str | Path | None = None, model: str | None = None) -> str:
    """The shell command that repeats ``comparison`` (absolute paths; the model only when it is not the default)."""
    model = model or comparison.model
    parts = (
        ["voxwatch"] + (["--model", model] if model != DEFAULT_MODEL else []) + ["compare", _absolute(comparison.questioned.file)]
    )
    for r in comparison.references:
        parts += ["--reference", _absolute(r.file)]
    if report is not None:
        parts += ["--report", str(Path(report).absolute())]
    return shlex.join(parts)


def write_report(
    comparison: Comparison, path: str | Path, command: str | None = None, scores: CalibrationScores | None = None
) -> Path:
    """Write the HTML report of ``comparison`` to ``path``; ``command`` is the command line that reproduces it, and
    ``scores`` the calibration trials to show (by default the ones shipped with the package)."""
    out = Path(path)
    scores = scores or calibration_scores(band_name(comparison.questioned.bandwidth_hz), comparison.model)
    target_llr, nontarget_llr = scores.llrs(comparison.calibration)
    metrics = evaluate(target_llr, nontarget_llr, p_target=0.01, llr=True)
    similar, caption = _similar_speech(scores, comparison.questioned.speech_s)
    page = _page(
        comparison,
        command or reproduce_command(comparison, out),
        scores,
        metrics,
        caption,
        images={
            "scores": _score_plot(comparison, scores, similar),
            "tippett": _png(
                tippett_figure(
                    target_llr,
                    nontarget_llr,
                    "Tippett plot of the calibration trials",
                    ("same speaker", "different speakers"),
                    comparison.log10_lr,
                )
            ),
            "det": _png(det_figure({"calibration trials": (target_llr, nontarget_llr)}, "DET curve of the calibration trials")),
        },
        misleading=(float(np.mean(nontarget_llr >= comparison.llr)), float(np.mean(target_llr <= comparison.llr))),
    )
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write report {out}: {exc.strerror or exc}") from exc
    return out


# ---------------------------------------------------------------------------------------------------------------
# Plots (matplotlib's Figure API with the Agg canvas: no global state, no display needed)


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _similar_speech(scores: CalibrationScores, speech_s: float) -> tuple[tuple[np.ndarray, np.ndarray], str]:
    """The calibration scores of trials with about as much net speech as the questioned side (within a factor 1.5
    of it, or of the nearest end of the calibration's range), or all of them when too few are that close."""
    lowest = float(min(scores.target_speech_s.min(), scores.nontarget_speech_s.min()))
    longest = float(max(scores.target_speech_s.max(), scores.nontarget_speech_s.max()))
    centre = min(max(speech_s, lowest), longest)
    low, high = centre / 1.5, centre * 1.5
    tar = scores.target_scores[(scores.target_speech_s >= low) & (scores.target_speech_s <= high)]
    non = scores.nontarget_scores[(scores.nontarget_speech_s >= low) & (scores.nontarget_speech_s <= high)]
    if min(len(tar), len(non)) >= _MIN_SIMILAR:
        span = f"{max(low, lowest):.1f} to {min(high, longest):.1f} s"
        return (
            tar,
            non,
        ), f"calibration trials with {span} of net speech ({len(tar):,} same-speaker, {len(non):,} different-speaker)"
    tar, non = scores.target_scores, scores.nontarget_scores
    return (tar, non), f"all calibration trials ({len(tar):,} same-speaker, {len(non):,} different-speaker)"


def _density(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density (Silverman's bandwidth) of ``values`` on ``grid``."""
    v = np.asarray(values, np.float64)
    h = max(1.06 * float(np.std(v)) * len(v) ** -0.2, 1e-3)
    total = np.zeros_like(grid)
    for start in range(0, len(v), 4096):
        z = (grid[None, :] - v[start : start + 4096, None]) / h
        total += np.exp(-0.5 * z * z).sum(axis=0)
    return total / (len(v) * h * math.sqrt(2 * math.pi))


def _score_plot(comparison: Comparison, scores: CalibrationScores, similar: tuple[np.ndarray, np.ndarray]) -> str:
    tar, non = similar
    everything = np.concatenate([tar, non, [comparison.score]])
    lo, hi = max(-1.0, float(everything.min()) - 0.05), min(1.0, float(everything.max()) + 0.05)
    grid = np.linspace(lo, hi, 400)
    bins = np.linspace(lo, hi, 60)
    figure = new_figure(8, 4.2)
    ax = figure.add_subplot()
    for values, label, color in ((tar, "same speaker", "tab:blue"), (non, "different speakers", "tab:red")):
        ax.hist(values, bins=bins, density=True, color=color, alpha=0.25)
        ax.plot(grid, _density(values, grid), color=color, linewidth=1.8, label=f"{label} ({len(values):,} trials)")
    ax.axvline(comparison.score, color="black", linewidth=2)
    right = comparison.score > (lo + hi) / 2
    ax.annotate(
        f"this case\nscore {comparison.score:.3f}",
        xy=(comparison.score, 0.97),
        xycoords=("data", "axes fraction"),
        xytext=(-6 if right else 6, 0),
        textcoords="offset points",
        va="top",
        ha="right" if right else "left",
        fontsize=9,
    )
    ax.set_xlabel("score (cosine of the questioned recording with the best-matching reference voiceprint)")
    ax.set_ylabel("density")
    ax.set_title("The score against the calibration's same- and different-speaker scores")
    ax.grid(True, color="0.9")
    ax.legend(loc="upper left", fontsize=9)
    figure.tight_layout()
    return _png(figure)


# ---------------------------------------------------------------------------------------------------------------
# The page

_CSS = """
body { font-family: Georgia, 'Times New Roman', serif; max-width: 62rem; margin: 2rem auto; padding: 0 1rem; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.7rem; margin-bottom: 0.2rem; } h2 { font-size: 1.25rem; border-bottom: 1px solid #bbb; padding-bottom: 0.2rem; margin-top: 2rem; }
.sub { color: #555; margin-top: 0; }
.finding { border: 2px solid #333; padding: 0.8rem 1.2rem; background: #f7f7f2; }
.lr { font-size: 1.6rem; font-weight: bold; } .verbal { font-size: 1.2rem; font-style: italic; }
table { border-collapse: collapse; width: 100%; font-size: 0.92rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #eee; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.out { background: #fde2e1; } code, pre, .hash { font-family: Menlo, Consolas, monospace; font-size: 0.85rem; }
.hash { word-break: break-all; } pre { background: #f3f3f3; padding: 0.6rem; white-space: pre-wrap; word-break: break-all; }
ul.warnings li { color: #8a1c13; margin-bottom: 0.3rem; } img { max-width: 100%; } .plots { display: flex; flex-wrap: wrap; gap: 1rem; }
.plots figure { flex: 1 1 26rem; margin: 0; } figcaption { font-size: 0.88rem; color: #444; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _img(data: str, alt: str) -> str:
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'


def _quality_rows(comparison: Comparison, limits: Limits) -> str:
    rows = []
    sides = [("questioned", comparison.questioned)] + [(f"reference {i}", r) for i, r in enumerate(comparison.references, 1)]
    for role, r in sides:
        speech_out = r.speech_s < limits.min_speech_s
        cells = [
            (f"{r.duration_s:.1f} s", False),
            (f"{r.speech_s:.1f} s", speech_out),
            (str(r.segments), False),
            (f"{r.snr_db:.0f} dB", r.snr_db < limits.min_snr_db),
            (f"{r.bandwidth_hz:.0f} Hz" if r.bandwidth_hz else "not measurable", 0 < r.bandwidth_hz < limits.narrowband_hz),
            (f"{100 * r.clipping:.2f} %", r.clipping > limits.max_clipping),
        ]
        tds = "".join(f'<td class="num{" out" if flagged else ""}">{_e(text)}</td>' for text, flagged in cells)
        rows.append(f"<tr><td>{_e(role)}</td><td>{_e(Path(r.file).name)}</td>{tds}</tr>")
    return "\n".join(rows)


def _encoder(model: str, band: str) -> tuple[str, str]:
    """The encoder that embedded a recording heard on ``band`` under ``model``, named for the method section, and
    what limits it."""
    routed = routed_models(model)
    if routed is not None:
        name, why = _encoder(routed[1] if band == "narrowband" else routed[0], band)
        return f"{name}, the encoder {model} uses for {band} recordings", why
    if model == "ge2e":
        return "the GE2E speaker encoder", (
            "GE2E (the encoder shipped with Resemblyzer: a 3-layer LSTM, 256-dimensional embeddings) is a small, older"
            " speaker encoder trained mostly on English read and interview speech; current systems discriminate markedly"
            " better, and on narrowband channels it is weak."
        )
    if model == "voxwatch-enc":
        return "voxwatch-enc, voxwatch's own speaker encoder", (
            "voxwatch-enc is GE2E's network fine-tuned on 48 minutes of speech of 137 speakers to hear voices through"
            " radio, telephone and codec channels (see its model card); its scores are normalised against a cohort of"
            " its training speakers. Current systems trained on thousands of speakers discriminate markedly better."
        )
    return f"the speaker encoder {model}", f"{model} is a speaker encoder plugged in by the user, not validated by voxwatch."


def _page(
    comparison: Comparison,
    command: str,
    scores: CalibrationScores,
    metrics: Metrics,
    caption: str,
    images: dict[str, str],
    misleading: tuple[float, float],
) -> str:
    from . import __version__

    c = comparison
    limits = Limits()
    encoder, limitation = _encoder(c.model, band_name(c.questioned.bandwidth_hz))
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    files = "\n".join(
        f'<tr><td>{_e(role)}</td><td>{_e(r.file)}</td><td class="hash">{_e(r.sha256)}</td><td class="num">{r.duration_s:.1f} s</td>'
        f'<td class="num">{r.speech_s:.1f} s</td></tr>'
        for role, r in [("questioned", c.questioned)] + [(f"reference {i}", r) for i, r in enumerate(c.references, 1)]
    )
    warnings = (
        '<ul class="warnings">' + "".join(f"<li>{_e(w)}</li>" for w in c.warnings) + "</ul>"
        if c.warnings
        else "<p>None: every measured condition is within what the calibration covers.</p>"
    )
    per_condition = ", ".join(f"{_e(name)} {score:.3f}" for name, score in c.condition_scores)
    cal = c.calibration
    non_above, tar_below = misleading
    if c.log10_lr >= 0:
        misleading_text = (
            f"{100 * non_above:.2f} % of the different-speaker calibration trials gave an LR at least this large"
            " (the rate of evidence this strong that would mislead towards the same-speaker proposition)."
        )
    else:
        misleading_text = (
            f"{100 * tar_below:.2f} % of the same-speaker calibration trials gave an LR this small or smaller"
            " (the rate of evidence this strong that would mislead towards the different-speaker proposition)."
        )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Speaker comparison: {_e(Path(c.questioned.file).name)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>Forensic speaker comparison</h1>
<p class="sub">voxwatch {_e(__version__)} &middot; generated {_e(now)} &middot; automatic speaker recognition, calibrated likelihood ratio</p>

<h2>1. Finding</h2>
<div class="finding">
<p class="lr">LR = {_e(c.lr_text)} &nbsp; (log10 LR = {c.log10_lr:+.2f})</p>
<p class="verbal">{_e(c.verbal[0].upper() + c.verbal[1:])}.</p>
<p>{_e(c.statement)}</p>
</div>
<p>The likelihood ratio (LR) compares the probability of the observed voice similarity under two propositions:</p>
<ul>
<li><b>Same-speaker proposition (H<sub>p</sub>):</b> {_e(SAME)}.</li>
<li><b>Different-speaker proposition (H<sub>d</sub>):</b> {_e(DIFFERENT)}.</li>
</ul>
<p>An LR above 1 supports H<sub>p</sub>, below 1 supports H<sub>d</sub>. The verbal equivalent follows the ENFSI guideline for
evaluative reporting (2015): LR 1&ndash;10 weak, 10&ndash;100 moderate, 100&ndash;1,000 moderately strong, 1,000&ndash;10,000 strong,
10,000&ndash;1,000,000 very strong, above 1,000,000 extremely strong support (and the same steps of 1/LR for H<sub>d</sub>).
The LR is not the probability that the speakers are the same: that also needs the prior odds, which are not a matter for this
analysis. The finding holds subject to the warnings and limitations below.</p>

<h2>2. Warnings</h2>
{warnings}

<h2>3. Case</h2>
<table>
<tr><th>role</th><th>file</th><th>SHA-256</th><th>duration</th><th>net speech</th></tr>
{files}
</table>
<p>Reproduce this comparison and report with:</p>
<pre>{_e(command)}</pre>
<p>Model: <code>{_e(c.model)}</code>. Score {c.score:.4f}, the best of the reference voiceprints made through each simulated
channel ({per_condition}). Calibration: LLR = a + b&middot;score + (c + d&middot;score)&middot;ln(net speech of the questioned
recording in s) with a = {cal.a}, b = {cal.b}, c = {cal.c}, d = {cal.d}; natural-log LLR {c.llr:+.3f}.</p>

<h2>4. Recording quality</h2>
<table>
<tr><th>role</th><th>file</th><th>duration</th><th>net speech</th><th>speech turns</th><th>SNR</th><th>channel bandwidth</th><th>clipping</th></tr>
{_quality_rows(c, limits)}
</table>
<p>Net speech is what the voice activity detector kept. SNR compares loud frames with the noise floor. Channel bandwidth is the
highest frequency at which the speech stands above both the pauses and a filter's stop band (telephone and radio channels end
near 3,400 Hz; below {limits.narrowband_hz:,.0f} Hz counts as narrowband). Clipping is the share of samples at full scale.
Highlighted cells are outside what the calibration covers (under {limits.min_speech_s:g} s of speech, SNR under
{limits.min_snr_db:g} dB, narrowband, over {100 * limits.max_clipping:g} % clipping).</p>

<h2>5. The score against the calibration trials</h2>
<figure>{_img(images["scores"], "histograms of same-speaker and different-speaker calibration scores with this case's score marked")}
<figcaption>Score distributions of the trials the calibration was fitted on: {_e(caption)}. The black line is this case's score.
How far it lies inside one distribution and in the tail of the other is what the LR quantifies.</figcaption></figure>

<h2>6. Performance on the calibration trials</h2>
<div class="plots">
<figure>{_img(images["tippett"], "Tippett plot of the calibration trials with this case's LR marked")}
<figcaption>Tippett plot: the proportion of same-speaker (blue) and different-speaker (red) calibration trials whose LR exceeds
each value; the black line is this case. {_e(misleading_text)}</figcaption></figure>
<figure>{_img(images["det"], "DET curve of the calibration trials")}
<figcaption>Detection error trade-off: miss rate against false-alarm rate over all thresholds, equal error rate marked.</figcaption></figure>
</div>
<table>
<tr><th>trials</th><th>EER</th><th>minDCF (P<sub>target</sub> 0.01)</th><th>C<sub>llr</sub></th><th>min C<sub>llr</sub></th></tr>
<tr><td>{metrics.n_target:,} same-speaker / {metrics.n_nontarget:,} different-speaker (shipped summary, calibration in use)</td>
<td class="num">{100 * metrics.eer:.2f} %</td><td class="num">{metrics.min_dcf:.3f}</td><td class="num">{metrics.cllr:.3f} bits</td><td class="num">{metrics.min_cllr:.3f} bits</td></tr>
<tr><td>all {scores.n_target:,} / {scores.n_nontarget:,} trials, when the calibration was fitted</td>
<td class="num">{100 * scores.eer:.2f} %</td><td class="num">&ndash;</td><td class="num">{scores.cllr:.3f} bits</td><td class="num">{scores.min_cllr:.3f} bits</td></tr>
</table>
<p>C<sub>llr</sub> is the cost of the LRs themselves (0 is perfect, 1 is uninformative); min C<sub>llr</sub> is what a perfect
calibration of the same scores would cost, so the difference is the calibration loss. The calibration trials are running
scores of speech turns of {_e(f"{scores.target_speech_s.min():.1f}")} to {_e(f"{max(scores.target_speech_s.max(), scores.nontarget_speech_s.max()):.1f}")} s
of net speech against voiceprints of other recordings of the same or of other speakers.</p>

<h2>7. Method</h2>
<p>Each recording is decoded to 16 kHz mono; a voice activity detector (Silero VAD) keeps the speech, which is cut into
speaker-homogeneous turns and embedded with {_e(encoder)} (1.6 s windows). The questioned recording is represented
by the speech-weighted mean of its turn embeddings. The reference voiceprint is made as voxwatch enrollment makes it: from the
reference recordings as they are, as heard through simulated radio and telephone channels and with a simulated raised vocal
effort, one print per condition, each the speech-weighted mean over the reference recordings. The score is the cosine with the
best-matching print; the calibration for the questioned recording's channel band (wideband, or narrowband below {limits.narrowband_hz:,.0f} Hz;
logistic regression on the trials of section 6) turns score and net speech into the LLR.</p>

<h2>8. Limitations</h2>
<ul>
<li><b>The model.</b> {_e(limitation)} It has not been validated for the language, speaking style, emotional state or vocal effort of
this case unless the calibration trials cover them.</li>
<li><b>The calibration data.</b> Public speech: LibriSpeech read English (train-clean-100), Arabic speech commands and English
speech commands, scored as turns of at most {_e(f"{max(scores.target_speech_s.max(), scores.nontarget_speech_s.max()):.1f}")} s of net
speech. They stand in for the relevant population only as far as the speakers of this case resemble them; no case-specific
reference population was used.</li>
<li><b>Simulated channels.</b> The only degraded speech in the calibration is simulated: narrowband questioned recordings
are calibrated on trials through a radio chain (300&ndash;3,400 Hz band, 8 kHz, compander, noise at 8&ndash;25 dB SNR) or a
telephone chain (the same band, 8-bit &mu;-law, noise at 15&ndash;30 dB SNR), and the reference prints use simulated radio,
telephone and raised-vocal-effort versions of the reference recordings. Real radios, phone networks, codecs, rooms,
microphones and shouting differ.</li>
<li><b>Conditions outside the calibration</b> (section 2) make the LR less reliable; its strength should then be read with caution.</li>
<li><b>Automatic analysis only.</b> No auditory or acoustic-phonetic analysis by an expert is part of this report, and the
recordings' integrity and provenance are not examined beyond their SHA-256.</li>
</ul>
</body>
</html>
"""
