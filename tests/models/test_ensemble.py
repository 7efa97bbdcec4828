"""Averaging with the linear view, temperature scaling and the calibration error."""

from dataclasses import replace

import numpy as np
import pytest

from textclf.models.ensemble import (
    SHORTCUTS,
    Calibration,
    combine,
    expected_calibration_error,
    fit_shortcut,
    fit_temperature,
    fit_weight,
    log_loss,
)


def _overconfident(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Binary probabilities that are right 80% of the time but claim 99%."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    right = rng.random(n) < 0.8
    p1 = np.where(right == (y == 1), 0.99, 0.01)
    return np.stack([1 - p1, p1], axis=1), y


def test_temperature_fixes_overconfidence_without_changing_decisions():
    probs, y = _overconfident()
    t = fit_temperature(probs, y)
    calibrated = combine(probs, None, 1.0, t)
    assert t > 1  # softer
    assert log_loss(calibrated, y) < log_loss(probs, y)
    assert expected_calibration_error(calibrated, y) < 0.05 < expected_calibration_error(probs, y)
    assert (calibrated.argmax(1) == probs.argmax(1)).all()
    assert abs(calibrated.max(1).mean() - 0.8) < 0.02  # confidence now matches accuracy


def test_temperature_stays_one_when_calibrated():
    rng = np.random.default_rng(1)
    p1 = rng.random(5000)
    y = (rng.random(5000) < p1).astype(int)  # labels drawn from the probabilities: calibrated by construction
    assert fit_temperature(np.stack([1 - p1, p1], 1), y) == pytest.approx(1.0, abs=0.1)


def test_weight_picks_the_better_view_and_mixes_complementary_ones():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 3000)
    good = np.full((3000, 3), 0.1)
    good[np.arange(3000), y] = 0.8
    noise = rng.dirichlet(np.ones(3), 3000)
    assert fit_weight(good, noise, y) == 1.0  # the LSTM is the good one: all its
    assert fit_weight(noise, good, y) == 0.0  # the linear view is: all of it
    # each right on a different half: the average beats both
    half = np.arange(3000) < 1500
    a, b = np.where(half[:, None], good, noise), np.where(half[:, None], noise, good)
    w = fit_weight(a, b, y)
    assert 0 < w < 1
    assert log_loss(combine(a, b, w), y) < min(log_loss(a, y), log_loss(b, y))


def test_combine_rows_are_distributions():
    rng = np.random.default_rng(3)
    a, b = rng.dirichlet(np.ones(4), 50), rng.dirichlet(np.ones(4), 50)
    for w, t in ((1.0, 1.0), (0.3, 1.0), (0.3, 2.5), (0.0, 0.2)):
        out = combine(a, b, w, t)
        assert out.shape == (50, 4) and np.allclose(out.sum(1), 1, atol=1e-5)
    assert np.allclose(combine(a, b, 1.0), a) and np.allclose(combine(a, b, 0.0), b)


def test_ece_of_perfect_and_of_constant_predictions():
    y = np.array([0, 1, 1, 0])
    assert expected_calibration_error(np.eye(2)[y], y) == 0.0
    assert expected_calibration_error(np.full((4, 2), 0.5), y) == pytest.approx(0.0)
    assert expected_calibration_error(np.eye(2)[1 - y], y) == pytest.approx(1.0)


def test_each_view_is_scaled_before_they_are_averaged():
    """An overconfident view must not outvote a calibrated one just by being sure."""
    rng = np.random.default_rng(4)
    n = 4000
    y = rng.integers(0, 2, n)
    p = np.clip(0.5 + (2 * y - 1) * 0.15 + rng.normal(0, 0.2, n), 0.01, 0.99)  # calibrated-ish, ~77% right
    calibrated = np.stack([1 - p, p], 1)
    overconfident, _ = _overconfident(n, seed=5)  # 80% right, but says 99%
    cal = Calibration.fit(overconfident, calibrated, y)
    assert cal.lstm_temperature > 1  # the overconfident view is softened first
    assert log_loss(cal.apply(overconfident, calibrated), y) < log_loss(combine(overconfident, calibrated, 0.5), y)
    assert Calibration.from_dict(cal.to_dict()) == Calibration(**cal.to_dict())
    assert Calibration.from_dict({"weight": 0.3, "temperature": 2.0}) == Calibration(0.3, 2.0, 1.0, 1.0, 0.0)  # older
    assert np.allclose(Calibration().apply(overconfident), overconfident)


def _shortcut_views(n: int = 2000, sure_wrong: float = 0.0, seed: int = 6):
    """Binary views: a linear view 0.97 sure and right on the first half of the texts (easy ones), 0.6 sure and
    70% right on the rest; an LSTM (0.9 / 0.1) right on the easy half and on 90% of the rest. On a `sure_wrong`
    share of the first half the linear view is 0.97 sure of the wrong class while the LSTM is 0.99 sure of the
    right one."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    easy = np.arange(n) < n // 2
    p_lstm = np.where(easy | (rng.random(n) < 0.9), 0.9, 0.1)
    p_lin = np.where(easy, 0.97, np.where(rng.random(n) < 0.7, 0.6, 0.4))
    trap = easy & (np.arange(n) < int(sure_wrong * n))
    p_lin, p_lstm = np.where(trap, 0.03, p_lin), np.where(trap, 0.99, p_lstm)
    to_probs = lambda p_true: np.stack([np.where(y == 1, 1 - p_true, p_true),  # noqa: E731
                                        np.where(y == 1, p_true, 1 - p_true)], 1)
    return to_probs(p_lstm), to_probs(p_lin), y


def test_the_shortcut_is_the_lowest_threshold_that_changes_almost_no_decision():
    cal = Calibration(weight=0.5)
    lstm, lin, y = _shortcut_views()
    assert fit_shortcut(cal, lstm, lin) == 0.8  # the linear view's sure half: the average agrees with it there
    with_shortcut = replace(cal, shortcut=0.8)
    sure = with_shortcut.sure(lin)
    assert sure.mean() == 0.5
    out = with_shortcut.apply(lstm, lin)
    np.testing.assert_allclose(out[sure], lin[sure], atol=1e-6)  # its own probabilities (temperature 1 here)
    np.testing.assert_allclose(out[~sure], cal.apply(lstm, lin)[~sure], atol=1e-6)
    np.testing.assert_allclose(with_shortcut.exact().apply(lstm, lin), cal.apply(lstm, lin))
    # sure and wrong on 1% where the LSTM is surer and right: 0.8..0.95 would change those decisions, and no text
    # reaches 0.98 (the traps and the easy half are 0.97 sure): nothing shows a shortcut safe there
    lstm, lin, y = _shortcut_views(sure_wrong=0.01)
    assert fit_shortcut(cal, lstm, lin) == 0.0
    lstm, lin, y = _shortcut_views(n=8000, sure_wrong=0.001)  # 8 changes of 4,000 sure: bounded within 0.2%
    assert fit_shortcut(cal, lstm, lin) == 0.8
    lstm, lin, y = _shortcut_views(sure_wrong=0.001)  # 2 of 1,000 sure: 0.1%, but 2,000 texts cannot bound it
    assert fit_shortcut(cal, lstm, lin) == 0.0


def test_no_shortcut_without_a_linear_view_its_weight_or_enough_validation():
    lstm, lin, y = _shortcut_views()
    assert fit_shortcut(Calibration(weight=1.0), lstm, lin) == 0.0
    assert fit_shortcut(Calibration(weight=0.5), lstm, None) == 0.0
    assert fit_shortcut(Calibration(weight=0.5), lstm[:1400], lin[:1400]) == 0.0  # no change, but too few to show it
    assert not Calibration(weight=1.0, shortcut=0.8).sure(lin).any()
    assert Calibration(weight=0.5, shortcut=0.8).sure(None).shape == (0,)
    # 0.995 sure and wrong on a tenth of the texts, outweighed by the LSTM: every threshold changes those
    lstm, lin, y = _shortcut_views(sure_wrong=0.1)
    lin[:200] = np.where(lin[:200] > 0.5, 0.995, 0.005)
    assert fit_shortcut(Calibration(weight=0.8), lstm, lin) == 0.0


def test_calibration_fits_the_shortcut_last():
    lstm, lin, y = _shortcut_views()
    cal = Calibration.fit(lstm, lin, y)
    assert cal.weight < 1 and cal.shortcut in SHORTCUTS
    changed = (cal.apply(lstm, lin).argmax(1) != cal.exact().apply(lstm, lin).argmax(1)).mean()
    assert changed <= 0.002 and cal.sure(lin).mean() >= 0.5
    assert Calibration.from_dict(cal.to_dict()).shortcut == cal.shortcut
    assert cal.shortcut_rows == cal.sure(lin).sum() >= 1000  # the texts it was checked on, saved with it
    saved = cal.to_dict()
    assert isinstance(saved["shortcut_rows"], int) and Calibration.from_dict(saved).shortcut_rows == cal.shortcut_rows
    assert Calibration.from_dict({"weight": 0.5, "shortcut": 0.9}).shortcut_rows == 0  # saved before it was recorded


def test_unlabelled_texts_check_the_shortcut_beside_validation():
    """The shortcut's check needs no labels. 1,000 validation texts cannot show the bound even with no change (it
    is about 3 / N); with 4,000 unlabelled texts beside them it is shown. Where the unlabelled texts reveal the
    linear view sure and wrong, the shortcut validation alone would allow is refused."""
    lstm, lin, y = _shortcut_views(1000)
    assert Calibration.fit(lstm, lin, y).shortcut == 0.0
    more_lstm, more_lin, _ = _shortcut_views(4000, seed=7)
    cal = Calibration.fit(lstm, lin, y, (more_lstm, more_lin))
    assert cal.shortcut in SHORTCUTS and cal.weight == Calibration.fit(lstm, lin, y).weight  # only the shortcut
    assert cal.shortcut_rows == cal.sure(lin).sum() + cal.sure(more_lin).sum()
    assert cal.shortcut_unlabelled == cal.sure(more_lin).sum() >= 1000
    assert Calibration.from_dict(cal.to_dict()).shortcut_unlabelled == cal.shortcut_unlabelled
    lstm, lin, y = _shortcut_views(3000)
    assert Calibration.fit(lstm, lin, y).shortcut == 0.8
    trap_lstm, trap_lin, _ = _shortcut_views(4000, sure_wrong=0.05, seed=8)
    assert Calibration.fit(lstm, lin, y, (trap_lstm, trap_lin)).shortcut == 0.0


def test_unlabelled_texts_never_pass_a_shortcut_that_validation_shows_changing_too_much():
    """Validation's rows are drawn as test's are; unlabelled ones may come from elsewhere. 20,000 of them that the
    shortcut never changes would pull the bound of the union under 0.2% while validation alone changes 1%."""
    lstm, lin, y = _shortcut_views(1000, sure_wrong=0.01)
    more_lstm, more_lin, _ = _shortcut_views(20000, seed=9)
    cal = Calibration.fit(lstm, lin, y, (more_lstm, more_lin))
    pooled = fit_shortcut(cal, np.concatenate([lstm, more_lstm]), np.concatenate([lin, more_lin]))
    assert pooled in SHORTCUTS  # the union alone would pass it
    changed = replace(cal, shortcut=pooled).apply(lstm, lin).argmax(1) != cal.exact().apply(lstm, lin).argmax(1)
    assert changed.mean() > 0.002 and cal.shortcut == 0.0


def test_no_shortcut_where_no_validation_text_reaches_it():
    """Issue 30: a 5-class set whose linear view is never above 0.735 on validation got shortcut 0.8 (no decision
    changed among no texts); a later text the linear view is 0.85 sure of (class 0) and the LSTM 0.95 sure of
    something else (class 1) was then answered by the linear view alone."""
    rng = np.random.default_rng(30)
    n, k = 1500, 5
    y = rng.integers(0, k, n)
    lstm = np.full((n, k), 0.05 / (k - 1))
    lstm_says = np.where(rng.random(n) < 0.85, y, rng.integers(0, k, n))
    lstm[np.arange(n), lstm_says] = 0.95
    lin = np.full((n, k), 0.265 / (k - 1))
    lin_says = np.where(rng.random(n) < 0.6, y, rng.integers(0, k, n))
    lin[np.arange(n), lin_says] = 0.735
    cal = Calibration.fit(lstm, lin, y)
    text_lin, text_lstm = np.full((1, k), 0.0375), np.full((1, k), 0.0125)
    text_lin[0, 0], text_lstm[0, 1] = 0.85, 0.95
    assert cal.apply(text_lstm, text_lin).argmax() == cal.exact().apply(text_lstm, text_lin).argmax() == 1
    assert cal.uses_linear() and (cal.sure(lin).sum(), cal.shortcut, cal.shortcut_rows) == (0, 0.0, 0)


def test_a_shortcut_needs_enough_texts_above_it():
    """No decision changed on 50 sure texts of 2,000 is within the bound, but too few texts to check it on."""
    lstm, lin, y = _shortcut_views()
    lin[50:1000] = np.where(lin[50:1000] > 0.5, 0.75, 0.25)  # the easy half: 50 texts 0.97 sure, the rest 0.75
    assert (Calibration(weight=0.5, shortcut=0.8).sure(lin).sum(), fit_shortcut(Calibration(weight=0.5), lstm, lin)) \
        == (50, 0.0)


def test_the_shortcut_maps_the_linear_views_probabilities_onto_the_full_models_scale():
    """Where the shortcut answers, probabilities keep the full model's scale: monotone in the linear view's,
    closer to what the full model says there, no decision moved (issue 23: the linear view's own probabilities
    there made them non-monotone across the cut)."""
    rng = np.random.default_rng(7)
    n = 4000
    y = rng.integers(0, 2, n)
    margin = rng.normal(2.0, 1.2, n) * (2 * y - 1)  # what the text says
    p_lin = 1 / (1 + np.exp(-0.8 * (margin + rng.normal(0, 0.8, n))))  # the linear view: noisier, less sure
    p_lstm = 1 / (1 + np.exp(-2.5 * (margin + rng.normal(0, 0.4, n))))  # the LSTM: sure, and mostly right
    two = lambda p: np.stack([1 - p, p], 1)  # noqa: E731
    cal = Calibration.fit(two(p_lstm), two(p_lin), y)
    assert cal.shortcut and cal.shortcut_scale != 1.0
    sure = cal.sure(two(p_lin))
    full = cal.exact().apply(two(p_lstm), two(p_lin))
    unmapped = replace(cal, shortcut_scale=1.0, shortcut_bias=0.0).apply(two(p_lstm), two(p_lin))
    out = cal.apply(two(p_lstm), two(p_lin))
    assert (out.argmax(1) == unmapped.argmax(1)).all()  # the map moves no decision
    k = full[sure].argmax(1)
    top = lambda p: p[sure][np.arange(len(k)), k].astype(np.float64)  # noqa: E731
    cross_entropy = lambda p: -np.mean(top(full) * np.log(top(p)) + (1 - top(full)) * np.log(1 - top(p)))  # noqa: E731
    assert cross_entropy(out) < cross_entropy(unmapped)  # nearer the full model's probabilities
    order = np.argsort(p_lin[sure])
    assert (np.diff(out[sure, 1][order]) >= -1e-6).all()  # monotone in the linear view's probability
    assert Calibration.from_dict(cal.to_dict()).shortcut_scale == round(cal.shortcut_scale, 4)


def test_the_shortcuts_map_stays_finite_where_the_full_model_is_sure_of_every_text():
    """The IMDB recipe on a validation split without train's copies mapped the shortcut's probabilities through
    sigmoid(6,333,853 * logit(p) + 707,214): 1.0 for every text the shortcut answered. Newton's full steps flew
    off where the full model's probabilities flatten the loss; here its probabilities even fall as the linear
    view's rise (the best increasing map is then all but constant)."""
    from types import SimpleNamespace

    from textclf.models.ensemble import MIN_SCALE, _logit, _sigmoid, fit_shortcut_map

    rng = np.random.default_rng(1)
    lin_top = 1 - 0.16 * 10 ** -rng.uniform(0, 3, 1000)  # the linear view: 0.84 to 0.99984 sure
    target = _sigmoid(-0.93 * _logit(lin_top) + 15.4 + rng.normal(0, 2.5, 1000)).astype(np.float32).astype(float)
    two = lambda p: np.stack([1 - p, p], 1)  # noqa: E731
    cal = SimpleNamespace(linear_temperature=1.0, sure=lambda p: np.ones(len(p), dtype=bool),
                          exact=lambda: SimpleNamespace(apply=lambda a, b: two(target)))
    scale, bias = fit_shortcut_map(cal, two(lin_top), two(lin_top))
    assert scale == MIN_SCALE and abs(bias) < 50
    mapped = _sigmoid(scale * _logit(lin_top) + bias)
    assert abs(mapped.mean() - target.mean()) < 1e-3  # the full model's mean confidence on them, not 1.0
