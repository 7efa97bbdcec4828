"""Which words pushed a prediction: integrated gradients (Captum) over the embedding layer."""

from __future__ import annotations

import copy
import threading
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..errors import TextclfError
from ..text.tokens import truncate_ids
from ..text.vocab import PAD_ID, UNK_ID
from .classifier import Classifier


@dataclass
class Explanation:
    """One text's prediction and a weight per token read; weight > 0 pushed toward `label`.

    `label` and the probabilities are the model's, as `predict` gives them. The weights explain its LSTM:
    they add up to (score of the text) - (score of an all-<pad> text of the same length), up to `delta`,
    where the score is the LSTM's logit of `label` (binary: the log-odds, signed toward `label`). A model
    that averages the LSTM with its linear view gives the LSTM the share `lstm_weight`.
    """

    label: str
    probability: float
    probabilities: dict[str, float]
    tokens: list[str]  # the tokens the model read, in order
    weights: list[float]
    unknown: list[bool]  # read as <unk>: not in the vocabulary
    dropped: int  # tokens beyond max_length that the model never read
    cut_at: int | None  # where in `tokens` those dropped tokens were
    delta: float  # integrated-gradients completeness error (small: the weights are trustworthy)
    lstm_weight: float = 1.0  # the LSTM's share of the model's probabilities (the rest: the linear view)

    def to_dict(self) -> dict:
        return asdict(self)

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        """The k tokens that pushed hardest, toward the label (> 0) or away from it (< 0)."""
        order = np.argsort(-np.abs(self.weights), kind="stable")[:k]
        return [(self.tokens[i], self.weights[i]) for i in order]


class Explainer:
    """Integrated gradients for a `Classifier`, on its own copy of the network.

    Captum hooks the embedding layer while it works, so the copy keeps concurrent `predict` calls on
    the shared model untouched, and a lock keeps two explanations from hooking the copy at once.
    """

    def __init__(self, clf: Classifier, steps: int = 100):
        try:
            from captum.attr import LayerIntegratedGradients
        except ImportError:
            raise TextclfError("explanations need the captum package: pip install 'textclf[explain]'") from None
        if steps < 2:
            raise TextclfError(f"--steps must be at least 2, got {steps}")
        self.clf = clf
        self.steps = steps
        self.model = copy.deepcopy(clf.artifact.model).float().eval()  # gradients in float32, whatever predicts
        for p in self.model.parameters():
            p.requires_grad_(False)  # gradients are needed for the embeddings' output only
        if clf.device.type == "cuda":
            # cuDNN's LSTM has a backward pass in training mode only; without dropout that mode computes what
            # eval mode does. Set on this copy alone: switching cuDNN off would slow every concurrent /predict
            self.model.lstm.dropout = 0.0
            self.model.lstm.train()
        self._ig = LayerIntegratedGradients(self._score, self.model.embedding)
        self._lock = threading.Lock()

    def _score(self, tokens: torch.Tensor, lengths: torch.Tensor, sign: float) -> torch.Tensor:
        logits = self.model(tokens, lengths)
        return logits * sign if logits.dim() == 1 else logits

    def _tokens(self, text: str) -> tuple[list[str], int, int | None]:
        art = self.clf.artifact
        tokens = art.tokenizer(text)
        keep = truncate_ids(np.arange(len(tokens)), art.max_length, art.truncate)
        dropped = len(tokens) - len(keep)
        cut_at = None
        if dropped:
            gaps = np.flatnonzero(np.diff(keep) > 1)  # "both" keeps two ends: the gap is in the middle
            cut_at = int(gaps[0] + 1) if len(gaps) else (0 if keep[0] > 0 else len(keep))
        return [tokens[i] for i in keep], dropped, cut_at

    def explain(self, text: str, threshold: float = 0.5) -> Explanation:
        art, device = self.clf.artifact, self.clf.device
        tokens, dropped, cut_at = self._tokens(text)
        ids = art.vocab.lookup(tokens).tolist()
        x = torch.tensor([ids or [PAD_ID]], device=device)
        lengths = torch.tensor([len(ids)])
        probs = self.clf.predict_proba([text])
        k = int(self.clf.decide(probs, threshold)[0])
        binary = probs.shape[1] == 2
        sign = (1.0 if k == 1 else -1.0) if binary else 1.0
        weights, delta = [], 0.0
        if ids:
            with self._lock, torch.enable_grad():
                attr, err = self._ig.attribute(x, baselines=torch.zeros_like(x), target=None if binary else k,
                                               additional_forward_args=(lengths, sign), n_steps=self.steps,
                                               internal_batch_size=self.steps, return_convergence_delta=True)
            weights = attr.sum(-1)[0].float().cpu().tolist()
            delta = float(err.abs().max())
        return Explanation(
            label=art.labels.names[k], probability=float(probs[0, k]),
            probabilities=dict(zip(art.labels.names, map(float, probs[0]), strict=True)),
            tokens=tokens, weights=weights, unknown=[i == UNK_ID for i in ids], dropped=dropped, cut_at=cut_at,
            delta=delta, lstm_weight=art.weight)
