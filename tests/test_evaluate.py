"""Tests of the evaluation modules: metrics against known values and brute force (voxwatch.metrics), the calibration fit
(voxwatch.calibration_fit), plots (voxwatch.plots) and trial lists (voxwatch.trials)."""

from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pytest

from voxwatch.calibration_fit import fit_logistic
from voxwatch.errors import ModelError, UsageError
from voxwatch.metrics import Metrics, _pav, cllr, det_curve, eer, evaluate, min_cllr, min_dcf
from voxwatch.plots import plot_det, plot_tippett
from voxwatch.testing import tone_engine, tone_voice
from voxwatch.trials import enrollment_watchlist, read_trials, spotting_evidence

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def gaussian_llrs(m: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Perfectly calibrated LLRs: target ~ N(m, 2m), non-target ~ N(-m, 2m) (variance 2m)."""
    rng = np.random.default_rng(seed)
    sd = math.sqrt(2 * m)
    return rng.normal(m, sd, n), rng.normal(-m, sd, n)


# --- DET / EER -------------------------------------------------------------------------------------------------


def test_det_curve_endpoints_and_ties() -> None:
    p_miss, p_fa, thresholds = det_curve(np.array([1.0, 2.0, 2.0]), np.array([0.0, 2.0]))
    assert np.all(np.diff(thresholds) > 0)
    assert (p_miss[0], p_fa[0]) == (0.0, 1.0)
    assert (p_miss[-1], p_fa[-1]) == (1.0, 0.0)
    assert np.all(np.diff(p_miss) >= 0) and np.all(np.diff(p_fa) <= 0)
    # at threshold 2 the tied target pair and the tied non-target are accepted together
    i = int(np.flatnonzero(thresholds == 2.0)[0])
    assert p_miss[i] == pytest.approx(1 / 3)
    assert p_fa[i] == pytest.approx(1 / 2)
    assert len(thresholds) == 4  # 0, 1, 2 and reject-all


def test_eer_perfect_separation_is_zero() -> None:
    rate, threshold = eer(np.array([3.0, 4.0, 5.0]), np.array([-1.0, 0.0, 1.0, 2.0]))
    assert rate == 0.0
    assert 2.0 < threshold <= 3.0


def test_eer_all_tied_is_half() -> None:
    assert eer(np.ones(5), np.ones(7))[0] == pytest.approx(0.5)


def test_eer_identical_distributions_is_half() -> None:
    rng = np.random.default_rng(1)
    rate, _ = eer(rng.normal(size=20000), rng.normal(size=20000))
    assert rate == pytest.approx(0.5, abs=0.02)


def test_eer_gaussians_d_prime_2() -> None:
    rng = np.random.default_rng(2)
    target, nontarget = rng.normal(2.0, 1.0, 20000), rng.normal(0.0, 1.0, 20000)
    rate, threshold = eer(target, nontarget)
    assert rate == pytest.approx(NormalDist().cdf(-1.0), abs=0.01)
    assert threshold == pytest.approx(1.0, abs=0.05)  # by symmetry the crossing is midway


# --- minDCF ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("p_target", "c_miss", "c_fa"), [(0.01, 1.0, 1.0), (0.05, 10.0, 1.0), (0.5, 1.0, 3.0)])
def test_min_dcf_matches_brute_force(p_target: float, c_miss: float, c_fa: float) -> None:
    rng = np.random.default_rng(3)
    target = np.round(rng.normal(1.0, 1.0, 40), 1)  # rounding makes ties
    nontarget = np.round(rng.normal(0.0, 1.0, 70), 1)
    value, threshold = min_dcf(target, nontarget, p_target, c_miss, c_fa)
    norm = min(c_miss * p_target, c_fa * (1 - p_target))
    candidates = np.r_[np.unique(np.r_[target, nontarget]), np.inf]
    costs = [
        (c_miss * p_target * np.mean(target < t) + c_fa * (1 - p_target) * np.mean(nontarget >= t)) / norm for t in candidates
    ]
    assert value <= 1.0 + 1e-12
    assert value == pytest.approx(min(costs), abs=1e-12)
    at_threshold = (
        c_miss * p_target * np.mean(target < threshold) + c_fa * (1 - p_target) * np.mean(nontarget >= threshold)
    ) / norm
    assert at_threshold == pytest.approx(value, abs=1e-12)


# --- Cllr / PAV ------------------------------------------------------------------------------------------------


def test_pav_is_monotone_and_least_squares() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(size=500) + np.linspace(0, 3, 500)
    fit = _pav(y)
    assert np.all(np.diff(fit) >= 0)
    assert fit.mean() == pytest.approx(y.mean())  # pooling preserves the total
    assert np.sum((fit - y) ** 2) < np.sum((np.maximum.accumulate(y) - y) ** 2)
    np.testing.assert_allclose(_pav(np.array([3.0, 1.0, 2.0])), [2.0, 2.0, 2.0])
    np.testing.assert_allclose(_pav(np.array([1.0, 3.0, 2.0, 4.0]), np.array([1.0, 1.0, 3.0, 1.0])), [1.0, 2.25, 2.25, 4.0])


def test_cllr_calibrated_close_to_min_and_shift_hurts() -> None:
    target, nontarget = gaussian_llrs(m=2.0, n=10000, seed=5)
    calibrated = cllr(target, nontarget)
    assert calibrated == pytest.approx(min_cllr(target, nontarget), abs=0.02)
    assert cllr(target + 3.0, nontarget + 3.0) > calibrated + 0.2
    assert cllr(np.zeros(3), np.zeros(4)) == pytest.approx(1.0)


def test_min_cllr_random_scores_is_one_bit() -> None:
    rng = np.random.default_rng(6)
    value = min_cllr(rng.normal(size=5000), rng.normal(size=5000))
    assert 0.97 < value <= 1.0 + 1e-9


def test_min_cllr_perfect_separation_is_zero() -> None:
    assert min_cllr(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 0.0


def test_fit_logistic_recovers_calibration() -> None:
    target, nontarget = gaussian_llrs(m=2.0, n=5000, seed=7)
    scores = np.r_[5.0 * target + 4.0, 5.0 * nontarget + 4.0]  # badly scaled and shifted
    labels = np.r_[np.ones(target.size), np.zeros(nontarget.size)]
    assert cllr(scores[labels == 1], scores[labels == 0]) > 1.0
    weights = fit_logistic(scores[:, None], labels)
    assert weights.shape == (2,)
    assert weights[1] == pytest.approx(0.2, rel=0.1)
    assert weights[0] == pytest.approx(-0.8, abs=0.15)
    llr = weights[0] + scores * weights[1]
    calibrated = cllr(llr[labels == 1], llr[labels == 0])
    assert calibrated == pytest.approx(min_cllr(scores[labels == 1], scores[labels == 0]), abs=0.02)


def test_fit_logistic_prior_changes_only_bias_and_stays_calibrated() -> None:
    target, nontarget = gaussian_llrs(m=2.0, n=3000, seed=8)
    scores = np.r_[target, nontarget]
    labels = np.r_[np.ones(target.size), np.zeros(nontarget.size)]
    for prior in (0.1, 0.5, 0.9):
        weights = fit_logistic(scores, labels, prior=prior)
        assert weights[1] == pytest.approx(1.0, abs=0.1)
        assert weights[0] == pytest.approx(0.0, abs=0.15)


def test_fit_logistic_separable_data_converges() -> None:
    features = np.array([[0.0], [1.0], [2.0], [3.0], [10.0], [11.0]])
    labels = np.array([0, 0, 0, 0, 1, 1])
    weights = fit_logistic(features, labels)
    assert np.all(np.isfinite(weights))
    llr = weights[0] + features[:, 0] * weights[1]
    assert np.all(llr[labels == 1] > 0) and np.all(llr[labels == 0] < 0)


# --- evaluate / validation -------------------------------------------------------------------------------------


def test_evaluate_and_json_round_trip() -> None:
    target, nontarget = gaussian_llrs(m=2.0, n=2000, seed=9)
    metrics = evaluate(target, nontarget, p_target=0.05)
    assert (metrics.n_target, metrics.n_nontarget, metrics.p_target) == (2000, 2000, 0.05)
    assert metrics.eer == pytest.approx(eer(target, nontarget)[0])
    assert metrics.cllr is not None and metrics.min_cllr <= metrics.cllr
    assert 0.0 < metrics.min_dcf <= 1.0
    assert Metrics.from_json(json.loads(json.dumps(metrics.to_json()))) == metrics
    assert evaluate(target, nontarget, llr=False).cllr is None


@pytest.mark.parametrize("func", [det_curve, eer, min_dcf, cllr, min_cllr, evaluate])
def test_empty_scores_raise_usage_error(func) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match="target"):
        func(np.array([]), np.array([1.0]))
    with pytest.raises(UsageError, match="non-target"):
        func(np.array([1.0]), [])


def test_bad_inputs_raise_usage_error() -> None:
    with pytest.raises(UsageError, match="NaN"):
        eer(np.array([1.0, np.nan]), np.array([0.0]))
    with pytest.raises(UsageError, match="p_target"):
        min_dcf(np.array([1.0]), np.array([0.0]), p_target=1.0)
    with pytest.raises(UsageError, match="both classes"):
        fit_logistic(np.ones((3, 1)), np.ones(3))


# --- plots -----------------------------------------------------------------------------------------------------


def test_plot_det_writes_png(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(10)
    curves = {
        "good": (rng.normal(3, 1, 500), rng.normal(0, 1, 2000)),
        "poor": (rng.normal(1, 1, 500), rng.normal(0, 1, 2000)),
    }
    out = plot_det(curves, tmp_path / "det.png", title="test")
    assert out == tmp_path / "det.png"
    data = out.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC)


def test_plot_tippett_writes_png(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target, nontarget = gaussian_llrs(m=2.0, n=500, seed=11)
    out = plot_tippett(target, nontarget, str(tmp_path / "tippett.png"), "test")
    data = out.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC)


# --- trial lists -----------------------------------------------------------------------------------------------


def test_read_trials_parses_and_resolves(tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "lists"
    folder.mkdir()
    trials = folder / "trials.txt"
    trials.write_text(
        "# VoxCeleb1-O style\n1 id1/a.wav id1/b.wav\n\n0\tid1/a.wav   /data/id2/c.wav\ntarget x.wav y.wav\nimp x.wav z.wav\n"
    )
    parsed = read_trials(trials)
    assert [t.label for t in parsed] == [1, 0, 1, 0]
    assert parsed[0] == (1, str(folder / "id1/a.wav"), str(folder / "id1/b.wav"), "id1/a.wav", "id1/b.wav")
    assert parsed[1].test == "/data/id2/c.wav"


def test_read_trials_in_kaldi_order_under_a_root(tmp_path) -> None:  # type: ignore[no-untyped-def]
    trials = tmp_path / "trials"
    trials.write_text("id1/a.wav id1/b.wav target\nid1/a.wav id2/c.wav nontarget\n")
    parsed = read_trials(trials, root="/corpus/wav")
    assert parsed == [
        (1, "/corpus/wav/id1/a.wav", "/corpus/wav/id1/b.wav", "id1/a.wav", "id1/b.wav"),
        (0, "/corpus/wav/id1/a.wav", "/corpus/wav/id2/c.wav", "id1/a.wav", "id2/c.wav"),
    ]
    trials.write_text("id1/a.wav id1/b.wav maybe\n")
    with pytest.raises(UsageError, match=r"trials:1: no label first or last"):
        read_trials(trials)


def test_read_trials_bad_line_names_file_and_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    trials = tmp_path / "trials.txt"
    trials.write_text("1 a.wav b.wav\n0 a.wav c.wav\nmaybe a.wav d.wav\n")
    with pytest.raises(UsageError, match=r"trials\.txt:3"):
        read_trials(trials)
    trials.write_text("1 a.wav b.wav\n\n0 a.wav\n")
    with pytest.raises(UsageError, match=r"trials\.txt:3"):
        read_trials(trials)


def test_read_trials_needs_trials_of_both_classes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    trials = tmp_path / "trials.txt"
    trials.write_text("# nothing\n\n")
    with pytest.raises(UsageError, match="no trials"):
        read_trials(trials)
    trials.write_text("1 a.wav b.wav\ntgt a.wav c.wav\n")
    with pytest.raises(UsageError, match="non-target"):
        read_trials(trials)
    with pytest.raises(UsageError, match="cannot read"):
        read_trials(tmp_path / "missing.txt")


def test_a_model_without_a_calibration_still_gives_the_evidence_to_fit_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = tone_engine(tmp_path, calibration=None)  # the tone model has no shipped calibration
    with pytest.raises(ModelError, match="'tones' has no calibration.*voxwatch calibrate"):
        engine.watchlist()
    watchlist = enrollment_watchlist(engine, {"a4": [tone_voice(440.0, 4.0)], "c5": [tone_voice(523.0, 4.0, seed=2)]})
    evidence = spotting_evidence(engine, watchlist, [("a4", tone_voice(440.0, 3.0, seed=1))])
    assert evidence.target.any() and evidence.scores[evidence.target].min() > evidence.scores[~evidence.target].max()
    engine.close()
