"""Scoring (reports/evaluation.py): one split's metrics, a trained model's report, and evaluate."""

import numpy as np
import pytest

from textclf.models.ensemble import Calibration, Outputs
from textclf.reports.evaluation import evaluate, score_splits, split_metrics

from .conftest import make_reviews


def test_split_metrics_add_loss_and_calibration_error():
    y = np.array([0, 1, 1, 0])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    m = split_metrics(y, probs, ["neg", "pos"], "test")
    assert m["accuracy"] == 0.75 and m["loss"] == pytest.approx(-np.log([0.9, 0.8, 0.4, 0.7]).mean(), abs=1e-6)
    assert 0 <= m["ece"] <= 1


def test_the_report_gives_each_view_and_with_a_shortcut_the_full_averages_figures():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    lstm = np.where(y[:, None] == np.arange(2), 0.8, 0.2)
    linear = np.where(y[:, None] == np.arange(2), 0.95, 0.05)
    cal = Calibration(weight=0.5, shortcut=0.9)
    report = score_splits({"test": Outputs.of(cal, lstm, linear)}, {"test": y}, ["a", "b"], None)["test"]
    assert report["lstm_accuracy"] == report["linear_accuracy"] == 1.0
    assert report["shortcut_share"] == 1.0 and {"exact_accuracy", "exact_loss", "exact_ece"} <= set(report)


def test_evaluate_scores_a_saved_model_on_a_file(tiny_run, tmp_path):
    make_reviews(40, seed=5).to_csv(tmp_path / "t.csv", index=False)
    m = evaluate(str(tiny_run), str(tmp_path / "t.csv"), device="cpu", text_column="text", label_column="label",
                 output=str(tmp_path / "m.json"))
    assert m["n"] == 40 and m["accuracy"] >= 0.9 and (tmp_path / "m.json").is_file()
