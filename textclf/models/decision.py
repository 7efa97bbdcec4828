"""The decision: class ids from a model's probabilities, its default threshold, and which views answer (VIEWS).
Its one home: every module that decides, or defaults a threshold, imports it from here (tests/test_layout.py
checks that no other writes 0.5). It imports nothing at load, numpy included, so the CLI's --help stays cheap."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

VIEWS = ("both", "lstm", "linear")  # what answers: the model as trained, or one of its views alone
DEFAULT_THRESHOLD = 0.5  # binary models: P(second class) needed for it; every fitted number is checked at it


def decide(probs: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Class ids: binary models compare P(second class) to `threshold`; others take the argmax."""
    import numpy as np

    return (probs[:, 1] >= threshold).astype(np.int64) if probs.shape[1] == 2 else probs.argmax(1)
