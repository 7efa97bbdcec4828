import numpy as np

from textclf.reports.metrics import compute, format_report


def test_binary_metrics_match_hand_computation():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.8, 0.2]])
    m = compute(y, probs, ["neg", "pos"])
    assert m["accuracy"] == 0.5 and m["precision"] == 0.5 and m["recall"] == 0.5
    assert m["confusion_matrix"] == [[1, 1], [1, 1]] and m["roc_auc"] == 0.75
    assert compute(y, probs, ["neg", "pos"], threshold=0.65)["accuracy"] == 0.75


def test_multiclass_uses_macro_averages_and_ovr_auc():
    y = np.array([0, 1, 2, 2])
    probs = np.eye(3)[[0, 1, 2, 1]] * 0.8 + 0.2 / 3
    m = compute(y, probs, ["a", "b", "c"])
    assert m["accuracy"] == 0.75 and abs(m["recall"] - (1 + 1 + 0.5) / 3) < 1e-9
    assert m["roc_auc"] is not None and len(m["confusion_matrix"]) == 3


def test_one_class_present_gives_null_auc_not_a_crash():
    m = compute(np.array([1, 1]), np.array([[0.2, 0.8], [0.6, 0.4]]), ["neg", "pos"])
    assert m["roc_auc"] is None and m["accuracy"] == 0.5
    assert "roc_auc n/a" in format_report(m)


def test_report_is_readable():
    m = compute(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]), ["neg", "pos"])
    text = format_report(m, title="test:")
    assert text.startswith("test:\naccuracy 1.0000") and "confusion matrix" in text and "pos" in text
