"""`Classifier`: a saved model as a Python object that labels raw text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .artifact import Artifact, load_model
from .batching import TextDataset, make_loader
from .fields import Tokenized, truncate_ids
from .trainer import predict_loader, resolve_device


@dataclass
class Prediction:
    label: str
    probability: float  # of `label`
    probabilities: dict[str, float]


class Classifier:
    """Load once, predict many times::

        clf = Classifier.load("runs/imdb")
        clf.predict(["A quiet, beautiful film."])  # [Prediction(label='pos', probability=0.97, ...)]
    """

    def __init__(self, artifact: Artifact, device: torch.device):
        self.artifact = artifact
        self.device = device

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Classifier:
        dev = resolve_device(device)
        return cls(load_model(path, dev), dev)

    @property
    def labels(self) -> list[str]:
        return self.artifact.labels.names

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        a = self.artifact
        if len(texts) == 1:  # the latency path: no interning, no numpy split
            ids = np.asarray(a.vocab.encode(a.tokenizer(texts[0])), dtype=np.int64)
            return [truncate_ids(ids, a.max_length, a.truncate)]
        tok = Tokenized.from_token_lists(list(a.tokenizer.pipe(texts)))
        return tok.numericalize(a.vocab, a.max_length, a.truncate)

    def predict_encoded(self, seqs: Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
        loader = make_loader(TextDataset(seqs), batch_size, shuffle=False, pin_memory=self.device.type == "cuda")
        return predict_loader(self.artifact.model, loader, self.device)[0]

    def predict_proba(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """[N, C] probabilities in input order (batched internally by length)."""
        if isinstance(texts, str):
            raise TypeError("pass a list of texts, not one string")
        if not len(texts):
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self.predict_encoded(self.encode(texts), batch_size)

    def decide(self, probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """Class ids: binary models compare P(second class) to `threshold`; others take the argmax."""
        return (probs[:, 1] >= threshold).astype(np.int64) if probs.shape[1] == 2 else probs.argmax(1)

    def predict(self, texts: Sequence[str], threshold: float = 0.5, batch_size: int = 256) -> list[Prediction]:
        probs = self.predict_proba(texts, batch_size)
        out = []
        for row, k in zip(probs, self.decide(probs, threshold), strict=True):
            out.append(Prediction(self.labels[k], float(row[k]), dict(zip(self.labels, map(float, row), strict=True))))
        return out
