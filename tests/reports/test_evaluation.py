"""Scoring (reports/evaluation.py): one split's metrics, a trained model's report, and evaluate."""

import numpy as np
import pytest

from textclf.models.ensemble import Calibration, Outputs
from textclf.reports.evaluation import evaluate, score_splits, split_metrics

from ..conftest import make_reviews


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


def test_the_reports_auc_ranks_by_the_full_model_and_its_accuracy_scores_the_predictions():
    """A shortcut's probabilities decide at 0.5 only; every other threshold is the full model's, so the ROC-AUC
    (which sweeps them all) comes from `Outputs.exact` (issue 30)."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    lstm = np.clip(0.5 + (2 * y - 1) * 0.2 + rng.normal(0, 0.25, 400), 0.01, 0.99)
    linear = np.clip(0.5 + (2 * y - 1) * 0.3 + rng.normal(0, 0.3, 400), 0.01, 0.99)
    two = lambda p: np.stack([1 - p, p], 1)  # noqa: E731
    p = Outputs.of(Calibration(weight=0.5, shortcut=0.8), two(lstm), two(linear))
    assert 0 < p.sure.mean() < 1
    report = score_splits({"test": p}, {"test": y}, ["a", "b"], None)["test"]
    assert report["roc_auc"] == pytest.approx(roc_auc_score(y, p.exact[:, 1]))
    assert roc_auc_score(y, p.final[:, 1]) != pytest.approx(report["roc_auc"])  # the two rank differently here
    assert report["accuracy"] == pytest.approx(((p.final[:, 1] >= 0.5) == y).mean())


def test_evaluate_draws_curves_and_auc_from_the_full_models_probabilities(tiny_run, tmp_path, monkeypatch):
    """evaluate's ROC-AUC and ROC/PR curves were those of the shortcut's probabilities, while `--threshold` at
    any point but 0.5 decides by the full model's: an operating point read off its PR curve was not the one
    `--threshold` gave (issue 30). Now they rank by the full model's; decisions are still the predictions'."""
    from sklearn.metrics import roc_auc_score

    from textclf.inference.classifier import Classifier
    from textclf.reports import plots

    from ..conftest import save_classifier, with_shortcut

    path = save_classifier(with_shortcut(Classifier.load(tiny_run, "cpu")), tmp_path / "model")
    data = make_reviews(120, seed=12)
    flip = np.random.default_rng(0).random(len(data)) < 0.25  # noisy labels: neither ranking is perfect
    data.loc[flip, "label"] = np.where(data.label[flip] == "pos", "neg", "pos")
    data.to_csv(tmp_path / "t.csv", index=False)
    texts, y = data.text.tolist(), (data.label == "pos").to_numpy(int)
    fast = Classifier.load(path, "cpu", bf16=False).predict_proba(texts)
    exact = Classifier.load(path, "cpu", bf16=False, shortcut=False).predict_proba(texts)
    assert roc_auc_score(y, fast[:, 1]) != pytest.approx(roc_auc_score(y, exact[:, 1]))  # the test can tell
    seen = {}
    for name in ("RocCurveDisplay", "PrecisionRecallDisplay"):
        display = getattr(plots, name)
        monkeypatch.setattr(display, "from_predictions", lambda yy, scores, *a, _n=name, _real=display.from_predictions,
                            **k: seen.setdefault(_n, np.asarray(scores)) is None or _real(yy, scores, *a, **k))
    m = evaluate(str(path), str(tmp_path / "t.csv"), device="cpu", text_column="text", label_column="label",
                 plots=str(tmp_path / "plots"), bf16=False)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, exact[:, 1]))
    for name in ("RocCurveDisplay", "PrecisionRecallDisplay"):
        np.testing.assert_allclose(seen[name], exact[:, 1], atol=1e-6)
    assert m["accuracy"] == pytest.approx(((fast[:, 1] >= 0.5) == y).mean())  # decisions: the predictions'


def test_evaluate_says_when_validation_may_be_rows_the_linear_view_learnt(tiny_run, tmp_path, caplog):
    """A run's saved linear view is refitted on train and validation (issue 30): scored on those validation rows
    it looks better than it is, so evaluate says so in one line (a warning: the rows may be others)."""
    import json

    from textclf.inference.classifier import Classifier

    from ..conftest import save_classifier, with_shortcut

    path = save_classifier(with_shortcut(Classifier.load(tiny_run, "cpu")), tmp_path / "model")
    data = tmp_path / "data"
    data.mkdir()
    for split in ("validation", "test"):
        make_reviews(40, seed=5).to_csv(data / f"{split}.csv", index=False)
    config = json.loads((path / "config.json").read_text())

    def warned(split: str, record: dict | None) -> list[str]:
        (path / "config.json").write_text(json.dumps({**config, **({"linear_view": record} if record else {})}))
        caplog.clear()
        evaluate(str(path), str(data), split=split, device="cpu", text_column="text", label_column="label")
        return [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "linear view" in r.getMessage()]

    seen = warned("validation", {"rows": ["train", "validation"], "calibrated_out_of_fold": 5})
    assert len(seen) == 1 and "fitted on its training run's validation rows" in seen[0] and "\n" not in seen[0]
    assert "perhaps" in warned("validation", None)[0]  # saved before textclf recorded it
    assert warned("test", {"rows": ["train", "validation"]}) == warned("validation", {"rows": ["train"]}) == []
