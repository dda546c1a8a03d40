"""Scores and their calibration: AS-norm against the shipped cohort, the calibration that carries it, and the lowest
score a threshold can be reached from (the archive search's pre-filter)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from voxwatch import UsageError, channels, load_audio, load_backend
from voxwatch.metrics import eer
from voxwatch.scoring import NARROWBAND_HZ, Calibration, Cohort, Watchlist, l2_normalise, pair_maxima

ENCODER = "voxwatch-enc"


def test_watchlist_scores_are_as_norm_against_the_calibrations_cohort(rng: np.random.Generator) -> None:
    cohort = Cohort("test", l2_normalise(rng.normal(size=(40, 8))), top=5)
    calibration = dataclasses.replace(Calibration.default(ENCODER), cohort=cohort)
    prints, tests = l2_normalise(rng.normal(size=(3, 8))), l2_normalise(rng.normal(size=(4, 8)))
    raw = tests @ prints.T

    def closest(x: np.ndarray) -> np.ndarray:  # each row's five highest cohort scores
        return np.sort(x @ cohort.vectors.T, axis=1)[:, ::-1][:, :5]

    t, p = closest(tests), closest(prints)
    expected = 0.5 * ((raw - t.mean(1)[:, None]) / t.std(1)[:, None] + (raw - p.mean(1)[None]) / p.std(1)[None])
    normalised = Watchlist(("a", "b", "c"), prints, calibration).scores(tests)
    np.testing.assert_allclose(normalised, expected, rtol=1e-5)
    plain = dataclasses.replace(calibration, cohort=None)
    np.testing.assert_allclose(Watchlist(("a", "b", "c"), prints, plain).scores(tests), raw, rtol=1e-6)
    with pytest.raises(UsageError, match="cohort 'test' has 8-d voices, the watchlist 4-d voiceprints"):
        Watchlist(("a",), l2_normalise(rng.normal(size=(1, 4))), calibration)


def test_the_cohort_travels_with_the_calibration_that_was_fitted_with_it() -> None:
    shipped = Calibration.default(ENCODER)
    assert shipped.cohort is not None and shipped.cohort.name == ENCODER and shipped.cohort.vectors.shape[1] == 256
    assert len(shipped.cohort.vectors) > 100  # one voice per training speaker
    again = Calibration.from_json(shipped.to_json())  # as `voxwatch calibrate` writes and --calibration reads it
    assert again == shipped and again.cohort is not None and again.cohort.top == shipped.cohort.top
    assert Calibration.default("ge2e").cohort is None  # GE2E keeps plain cosines
    assert Calibration.borrowed("someone-elses-model").cohort is None  # another model's cohort would be meaningless


def test_the_false_alarm_table_counts_each_non_target_turn_once_at_its_worst() -> None:
    assert pair_maxima(np.array([0.5, 3.0, 1.0, -2.0]), np.array([7, 7, 9, 9])).tolist() == [3.0, 1.0]
    # two non-target turns (pairs 0 and 1) of 1800 s each, one voice-hour in all, and two target turns
    scores = np.array([0.1, 0.3, 0.2, 0.05, 0.9, 0.8])
    speech = np.array([900.0, 1800.0, 900.0, 1800.0, 20.0, 20.0])
    target = np.array([False, False, False, False, True, True])
    fitted = Calibration.fit(scores, speech, target, np.array([0, 0, 1, 1, 2, 3]))
    llr = fitted.llr(scores, speech)
    worst = [max(llr[0], llr[1]), max(llr[2], llr[3])]
    for threshold, rate in zip(fitted.fa_llr, fitted.fa_per_hour, strict=True):
        assert rate == sum(w >= threshold for w in worst)  # false alarms per hour: turns whose worst reaches it


def test_rows_heard_on_either_band_are_mapped_by_their_bands_calibration() -> None:
    """Search hits, trial lists and the accuracy benchmark's turns mix both bands: each row's LLR is its band's."""
    calibration = Calibration.default(ENCODER)
    assert calibration.narrowband is not None
    scores, speech = np.array([[2.0, 4.0], [2.0, 4.0], [6.0, -1.0]]), np.array([[3.0], [3.0], [12.0]])
    narrow = np.array([True, False, True])
    llrs = calibration.llr_by_band(scores, speech, narrow)
    assert np.array_equal(llrs[narrow], calibration.narrowband.llr(scores[narrow], speech[narrow]))
    assert np.array_equal(llrs[1], calibration.llr(scores[1], speech[1]))
    assert llrs[0, 1] != llrs[1, 1]  # the same score is other evidence on a narrowband channel


@pytest.mark.parametrize("model", [ENCODER, "ge2e"])
def test_lowest_score_is_the_lowest_that_reaches_the_threshold(model: str) -> None:
    for calibration in (Calibration.default(model), Calibration.default(model).narrowband):
        assert calibration is not None
        for threshold in (-2.0, 3.0, 9.0):
            lowest = calibration.lowest_score(threshold, longest_s=600.0)
            reached = [calibration.llr(lowest + 1e-6, s) for s in (1.0, 10.0, 600.0)]
            below = [calibration.llr(lowest - 1e-3, s) for s in (1.0, 10.0, 600.0)]
            assert max(reached) >= threshold > max(below), (model, threshold, lowest)


def test_as_norm_makes_one_threshold_serve_clean_and_radio_speech(readers: dict[str, list[Path]]) -> None:
    """Held-out readers enrolled on clean speech, tested on other readings as recorded and through radio and telephone
    channels: pooled over the channels, as one threshold must serve them all, the shipped cohort's AS-norm misses
    fewer same-voice trials than plain cosines at a low false-alarm rate (where spotting operates), and is no worse
    at the equal-error rate."""
    backend = load_backend(ENCODER)
    cohort = Calibration.default(ENCODER).cohort
    assert cohort is not None
    rng = np.random.default_rng(7)

    def embed(audio: np.ndarray) -> np.ndarray:
        windows = np.stack([audio[s : s + 25600] for s in range(0, len(audio) - 25600 + 1, 12800)])
        return l2_normalise(backend.embed(windows).mean(axis=0))

    names = sorted(readers)
    prints = np.stack([embed(np.concatenate([load_audio(f) for f in readers[n][:3]])) for n in names])
    tests = [(n, load_audio(f)) for n in names for f in readers[n][3:6]]
    heard = np.stack([embed(y) for _, x in tests for y in (x, channels.radio(x, rng), channels.telephone(x, rng))])
    truth = np.repeat(np.array([[n == t for n in names] for t, _ in tests]), 3, axis=0)
    raw = heard @ prints.T
    normalised = cohort.normalise(raw, cohort.stats(heard), cohort.stats(prints))
    raw_eer, norm_eer = eer(raw[truth], raw[~truth])[0], eer(normalised[truth], normalised[~truth])[0]
    raw_miss, norm_miss = (float(np.mean(s[truth] < np.quantile(s[~truth], 0.99))) for s in (raw, normalised))
    # measured: missed at 1 % false alarms 20.0 -> 12.2 %; EER 3.0 -> 3.3 % (one of the 90 same-voice trials is 1.1 %)
    assert norm_miss < 0.8 * raw_miss and norm_eer < raw_eer + 0.011, (raw_eer, norm_eer, raw_miss, norm_miss)


def test_a_band_routed_calibration_scores_each_band_as_its_own_model_does(rng: np.random.Generator) -> None:
    """ge2e+voxwatch-enc: a wideband test (GE2E's part filled) scores exactly as GE2E scores it, a narrowband one
    (voxwatch-enc's part) exactly as voxwatch-enc does, AS-norm and all, against voiceprints holding both parts."""
    routed, ge2e, enc = (Calibration.default(m) for m in ("ge2e+voxwatch-enc", "ge2e", ENCODER))
    assert (routed.part, routed.band("narrowband").part) == ((0, 256), (256, 512))
    wide_prints, narrow_prints = l2_normalise(rng.random((4, 256))), l2_normalise(rng.random((4, 256)))
    prints = l2_normalise(np.hstack([wide_prints, narrow_prints]))  # a voiceprint is made for either band
    wide_tests, narrow_tests = l2_normalise(rng.random((3, 256))), l2_normalise(rng.random((3, 256)))
    zeros = np.zeros((3, 256), np.float32)
    labels = ("a", "a", "b", "b")
    for band, tests, single, calibration in (
        (2000.0, np.hstack([zeros, narrow_tests]), Watchlist(labels, narrow_prints, enc), enc.band("narrowband")),
        (8000.0, np.hstack([wide_tests, zeros]), Watchlist(labels, wide_prints, ge2e), ge2e),
    ):
        scores, llrs = Watchlist(labels, prints, routed).llrs(tests, 3.0, band)
        expected, expected_llrs = single.llrs(tests[:, 256:] if band < NARROWBAND_HZ else tests[:, :256], 3.0, band)
        np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(llrs, expected_llrs, rtol=1e-5, atol=1e-5)
        assert routed.for_band(band).threshold_for(0.1) == calibration.threshold_for(0.1)
    made = np.vstack([np.hstack([wide_tests, zeros]), np.hstack([zeros, narrow_tests])])
    assert routed.narrow(made, 8000.0).tolist() == [False] * 3 + [True] * 3  # by the encoder that made each (search)
    assert ge2e.narrow(made, 3000.0).all() and not ge2e.narrow(made, 8000.0).any()  # by the recording's band
    # a test embedded for one band and scored as the other reads an empty part: no evidence either way
    assert np.all(Watchlist(labels, prints, routed).scores(np.hstack([wide_tests, zeros]), "narrowband") < 0)
    with pytest.raises(UsageError, match="reads values 256 to 512 of each voiceprint, the watchlist has 256-d"):
        Watchlist(labels, wide_prints, routed)
