"""Averaging with the linear view, temperature scaling and the calibration error."""

import numpy as np
import pytest

from textclf.calibration import (
    Calibration,
    combine,
    expected_calibration_error,
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
    assert Calibration.from_dict({"weight": 0.3, "temperature": 2.0}) == Calibration(0.3, 2.0, 1.0, 1.0)  # older
    assert np.allclose(Calibration().apply(overconfident), overconfident)
