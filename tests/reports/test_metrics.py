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


def test_a_class_the_data_has_no_rows_of_is_left_out_of_the_macro_averages():
    """A 3-class model on data without "neutral": macro recall was (0.95 + 0 + 0.46) / 3, the absent class's
    undefined recall counted as 0, and ROC-AUC was n/a with no reason given."""
    from sklearn import metrics as skm

    y = np.array([0, 0, 0, 2, 2])  # no row of class 1
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.1, 0.3], [0.1, 0.2, 0.7], [0.5, 0.1, 0.4]])
    m = compute(y, probs, ["negative", "neutral", "positive"])
    assert m["absent"] == ["neutral"] and m["accuracy"] == 0.6
    assert abs(m["recall"] - (2 / 3 + 1 / 2) / 2) < 1e-9  # over negative and positive
    predicted_neutral_once = skm.precision_score(y, probs.argmax(1), labels=[0, 2], average="macro")
    assert abs(m["precision"] - predicted_neutral_once) < 1e-9
    want_auc = (skm.roc_auc_score(y == 0, probs[:, 0]) + skm.roc_auc_score(y == 2, probs[:, 2])) / 2
    assert abs(m["roc_auc"] - want_auc) < 1e-9
    assert "no rows of neutral here: left out of the macro averages and ROC-AUC" in format_report(m)
    macro = m["report"]["macro avg"]  # the per-class table's macro row says what the headline says
    assert (macro["precision"], macro["recall"], macro["f1-score"]) == (m["precision"], m["recall"], m["f1"])
    y4, p4 = np.array([0, 1, 2, 2]), np.eye(3)[[0, 1, 2, 1]] * 0.8 + 0.2 / 3
    full = compute(y4, p4, ["a", "b", "c"])  # every class present: scikit-learn's "ovr" macro AUC, as before
    assert full["absent"] == [] and "no rows" not in format_report(full)
    assert abs(full["roc_auc"] - skm.roc_auc_score(y4, p4, multi_class="ovr")) < 1e-9
