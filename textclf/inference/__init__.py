"""A saved model at work: the Classifier API (classifier.py), explanations (explain.py), ONNX export (export.py);
running a network (device, precision, forward passes) is textclf/device.py. None of it imports training code or
the config."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import TextclfError
from ..models.decision import DEFAULT_THRESHOLD

# Texts per forward pass when predicting and evaluating (and validating, train.eval_batch_size). On a CPU, small
# batches run faster: their [batch, length, 2 x hidden] tensors stay in its cache. On a GPU, larger ones (256+) pay.
PREDICT_BATCH_SIZE = 64
PREDICT_CHUNK_ROWS = 10_000  # rows of a file read, labelled and written at a time: what bounds predict's memory


@dataclass(frozen=True)
class LoadOptions:
    """How a saved model is loaded to answer (see `Classifier.load`): on which `device` ("auto": cuda, then mps,
    then cpu), in which precision (`bf16`: "auto", True, False), with or without the linear view's `shortcut`, and
    which `views` answer ("both", "lstm", "linear"). The commands, the server, Ray and `evaluate` take the four
    together; `load_model` checks them."""

    device: str = "auto"
    bf16: bool | str = "auto"
    shortcut: bool = True
    views: str = "both"


def binary_threshold(threshold: float | None, num_classes: int, option: str = "--threshold") -> float:
    """The decision threshold a request asks for (None: 0.5). Only a binary model has one: a multi-class model
    picks the most probable class, so a threshold given for it is refused, by every command and the server alike,
    rather than ignored."""
    if threshold is None:
        return DEFAULT_THRESHOLD
    if num_classes != 2:
        raise TextclfError(f"{option} is for binary models; this one has {num_classes} classes and picks the most "
                           "probable (drop it)")
    return threshold


def check_texts(texts: Iterable[str]) -> list[str]:
    """What the Python API labels, as a list: strings, none blank. One string is refused (it would be read as a list
    of its characters); a non-string (NaN, a DataFrame's empty cell, or None) or a blank text is named by its
    position, as `textclf serve` names it. The commands and `predict_frame` leave empty texts unlabelled instead.
    Any iterable is taken (a generator too: read once, here)."""
    if isinstance(texts, str):
        raise TypeError("pass a list of texts, not one string")
    texts = texts if isinstance(texts, list) else list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__} {text!r}, not a string (a DataFrame column with "
                            "empty cells: predict_frame(df, column) leaves them unlabelled)")
        if not text.strip():
            raise TextclfError(f"texts[{i}] is empty: there is nothing to classify (drop it, or use predict_frame, "
                               "which leaves empty texts unlabelled)")
    return texts


def check_threshold(threshold: float | None, num_classes: int) -> None:
    """The Python API's `threshold=` refused where `--threshold` is: outside [0, 1] (NaN too) it labels every text one
    class, and a multi-class model has none (None, or the default 0.5 it is called with, passes)."""
    if threshold is None:
        return
    if not 0 <= threshold <= 1:
        raise TextclfError(f"threshold={threshold!r}: must be a probability in [0, 1]")
    if threshold != DEFAULT_THRESHOLD:
        binary_threshold(threshold, num_classes, option="threshold=")
