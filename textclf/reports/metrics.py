"""Classification metrics from scikit-learn, as JSON-ready dicts, and their plain-text report."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

from ..models.decision import DEFAULT_THRESHOLD, decide


def compute(y_true: np.ndarray, probs: np.ndarray, label_names: Sequence[str], threshold: float = DEFAULT_THRESHOLD,
            ranking: np.ndarray | None = None) -> dict:
    """Metrics for class ids `y_true` [N] and probabilities `probs` [N, C].

    Binary: precision/recall/F1 of the second class (the "positive" one); more classes: macro averages over the
    classes the data has rows of (`absent`: those it has none of, whose recall is undefined and would count as 0),
    and ROC-AUC one class against the rest, averaged over those classes too. ROC-AUC ranks by `ranking` (default
    `probs`): a model with a shortcut decides at `threshold` by its own probabilities, while every other threshold,
    and so the curve, is the full model's. It is null when it is undefined (fewer than two classes present, or a
    binary model's data of one class), never a crash.
    """
    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=np.float64)
    scores = probs if ranking is None else np.asarray(ranking, dtype=np.float64)
    binary = probs.shape[1] == 2
    y_pred = decide(probs, threshold)
    labels = list(range(len(label_names)))
    present = [int(k) for k in np.unique(y_true)]
    avg = "binary" if binary else "macro"
    p, r, f1, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=None if binary else present,
                                                      average=avg, zero_division=0)
    auc = None
    if binary and len(present) == 2:
        auc = float(skm.roc_auc_score(y_true, scores[:, 1]))
    elif not binary and len(present) >= 2:  # sklearn's "ovr" macro average, over the classes present
        auc = float(np.mean([skm.roc_auc_score(y_true == k, scores[:, k]) for k in present]))
    report = skm.classification_report(y_true, y_pred, labels=labels, target_names=list(label_names),
                                       output_dict=True, zero_division=0)
    if not binary and len(present) < len(labels):  # its macro row as the headline's: over the classes present
        report["macro avg"] = {"precision": float(p), "recall": float(r), "f1-score": float(f1),
                               "support": int(len(y_true))}
    return {
        "n": int(len(y_true)),
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "precision": float(p),
        "recall": float(r),
        "f1": float(f1),
        "roc_auc": auc,
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "labels": list(label_names),
        "absent": [label_names[k] for k in labels if k not in present],
        "report": report,
    }


def format_report(m: dict, title: str = "") -> str:
    """A readable block: headline figures, per-class table, confusion matrix."""
    auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.4f}"
    lines = [title] if title else []
    lines.append(f"accuracy {m['accuracy']:.4f}  precision {m['precision']:.4f}  recall {m['recall']:.4f}  "
                 f"f1 {m['f1']:.4f}  roc_auc {auc}  (n={m['n']})")
    width = max(12, *(len(n) for n in m["labels"]))
    lines.append(f"{'':>{width}}  precision  recall  f1-score  support")
    for name in m["labels"]:
        row = m["report"][name]
        lines.append(f"{name:>{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1-score']:8.4f}  "
                     f"{int(row['support']):7d}")
    if m.get("absent"):
        lines.append(f"no rows of {', '.join(m['absent'])} here: "
                     + ("left out of the macro averages and ROC-AUC" if len(m["labels"]) > 2 else "ROC-AUC undefined"))
    lines.append("confusion matrix (rows: true, columns: predicted; order: " + ", ".join(m["labels"]) + ")")
    lines += ["  " + " ".join(f"{v:7d}" for v in row) for row in m["confusion_matrix"]]
    return "\n".join(lines)
