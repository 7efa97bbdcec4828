"""PNG plots of a run: loss and validation metrics per epoch, confusion matrix, ROC and PR curves."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, and no GUI backend probing on a server

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay  # noqa: E402

from ..files import atomic_open  # noqa: E402
from ..models.decision import DEFAULT_THRESHOLD, decide  # noqa: E402

log = logging.getLogger(__name__)


@functools.cache
def _charmap(font_file: str) -> frozenset[int]:
    """The code points a font file draws."""
    from matplotlib.ft2font import FT2Font

    try:
        return frozenset(FT2Font(font_file).get_charmap())
    except (OSError, RuntimeError, ValueError):
        return frozenset()


def _drawable(labels: Sequence[str]) -> tuple[list[str], dict]:
    """Tick labels the plots can draw, and the matplotlib settings that draw them. Labels the default font lacks
    (the 9 Chinese product categories in DejaVu Sans) are drawn in the first installed font that has every one of
    their characters (e.g. Noto Sans CJK); with none installed, each label is its position in the report's order,
    said once, where matplotlib drew rows of empty boxes and warned 36 times."""
    needed = {ord(c) for label in labels for c in label if not c.isspace()}
    if needed <= _charmap(font_manager.findfont(font_manager.FontProperties())):
        return list(labels), {}
    for font in font_manager.fontManager.ttflist:
        charmap = _charmap(font.fname)  # not matplotlib's "Last Resort", which claims every code point, drawing boxes
        if needed <= charmap and len(charmap) < ALL_OF_UNICODE and not font.name.startswith("Last Resort"):
            # after DejaVu Sans: matplotlib takes from the second family only the glyphs the first lacks
            return list(labels), {"font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans", font.name]}
    if not _warned:
        _warned.append(True)
        log.warning("plots: no installed font draws the labels %s; they are numbered in that order (a font such as "
                    "Noto Sans CJK, e.g. the fonts-noto-cjk package, names them)", ", ".join(labels))
    return [str(i) for i in range(len(labels))], {}


ALL_OF_UNICODE = 0x30000  # a font claiming more code points than a real one has: a fallback of boxes
_warned: list[bool] = []  # the numbered labels are said once a process


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_history(history: Sequence[dict], out_dir: str | Path, best: int) -> Path:
    """history.png: train/validation loss (left) and validation metrics (right) per epoch, the epoch the run kept
    (`best`; 0: the model it started from, fine-tuning) marked."""
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [row["train_loss"] for row in history], "o-", label="train")
    ax_loss.plot(epochs, [row["val_loss"] for row in history], "o-", label="validation")
    ax_loss.set(title="loss", xlabel="epoch")
    for key in ("val_accuracy", "val_f1", "val_roc_auc"):
        values = [row.get(key) for row in history]
        if all(v is not None for v in values):
            ax_metric.plot(epochs, values, "o-", label=key.removeprefix("val_"))
    ax_metric.set(title="validation", xlabel="epoch")
    for ax in (ax_loss, ax_metric):
        label = f"kept: epoch {best}" + (" (the start)" if not best else "")
        ax.axvline(best, color="grey", linestyle=":", label=label)
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, Path(out_dir) / "history.png")


def plot_evaluation(y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str], out_dir: str | Path,
                    prefix: str = "", threshold: float = DEFAULT_THRESHOLD,
                    ranking: np.ndarray | None = None) -> list[Path]:
    """{prefix}confusion_matrix.png always (the decisions at `threshold`); {prefix}roc.png and {prefix}pr.png for
    binary models, ranked by `ranking` (default `probs`; a model with a shortcut: the full model's, which every
    threshold but the default decides by, so an operating point read off a curve is the one `--threshold` gives)."""
    out_dir, y_true, probs = Path(out_dir), np.asarray(y_true), np.asarray(probs)
    scores = probs if ranking is None else np.asarray(ranking)
    binary = probs.shape[1] == 2
    y_pred = decide(probs, threshold)
    size = max(4.5, 0.6 * len(labels) + 2)
    labels, font = _drawable(labels)
    with plt.rc_context(font):
        fig, ax = plt.subplots(figsize=(size, size))
        ConfusionMatrixDisplay.from_predictions(y_true, y_pred, labels=list(range(len(labels))),
                                                display_labels=labels, ax=ax, colorbar=False, cmap="Blues")
        ax.set_title(f"confusion matrix (n={len(y_true)})")
        paths = [_save(fig, out_dir / f"{prefix}confusion_matrix.png")]
    if not binary:
        return paths
    if len(np.unique(y_true)) < 2:  # a curve needs both classes; say so instead of drawing nonsense
        log.warning("%s: only one class present; ROC and precision-recall plots skipped", prefix.rstrip("_") or "data")
        return paths
    named = np.asarray(labels, dtype=object)[y_true]  # so the axes say "Positive label: pos", not 1
    for name, display in (("roc", RocCurveDisplay), ("pr", PrecisionRecallDisplay)):
        with plt.rc_context(font):
            fig, ax = plt.subplots(figsize=(5, 5))
            display.from_predictions(named, scores[:, 1], pos_label=labels[1], name="model", ax=ax,
                                     plot_chance_level=True)
            ax.set_title("ROC curve" if name == "roc" else "precision-recall curve")
            ax.grid(alpha=0.3)
            paths.append(_save(fig, out_dir / f"{prefix}{name}.png"))
    return paths
