"""Which words pushed a prediction: integrated gradients (Captum) over the embedding layer."""

from __future__ import annotations

import copy
import threading
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..errors import TextclfError
from ..models.decision import DEFAULT_THRESHOLD
from ..text.tokenizer import without_spaces
from ..text.tokens import truncate_ids
from ..text.vocab import UNK_ID
from .classifier import Classifier

# Integrated gradients' steps at most: they run as one batch, so 100,000 asked numpy for 74.5 GiB; past a few
# hundred the completeness error (`delta`) hardly shrinks
MAX_STEPS = 1000


@dataclass
class Explanation:
    """One text's prediction and a weight per token; weight > 0 pushed toward `label`.

    `label` and the probabilities are the model's, as `predict` gives them, and the weights explain what gave
    them (`answered_by`):
    - "lstm": the LSTM's integrated gradients. They add up to (score of the text) - (score of an all-<pad> text
      of the same length), up to `delta`, where the score is the LSTM's logit of `label` (binary: the log-odds,
      signed toward `label`). `tokens` are those it read: `dropped` more beyond max_length, at `cut_at`.
    - "linear": the linear view alone (its shortcut, or views="linear"): each token's exact share of the view's
      score (log-odds, or logit of `label`) less its intercept; every token counts, none is dropped.
    - "both": the two averaged, each view's weights times its share (`lstm_weight` and 1 - `lstm_weight`); the
      LSTM's are 0 on tokens beyond its max_length.
    A fine-tuned model that averages in the model it started from (`start_weight` > 0) is explained as it
    answers: the start model's weights toward the same class (explained as above, `start_answered_by`) times its
    share, plus the model's own times the rest, on every token of the text.
    """

    label: str
    probability: float
    probabilities: dict[str, float]
    tokens: list[str]  # the tokens the answering views read, in order
    weights: list[float]
    unknown: list[bool]  # read as <unk> by the LSTM: not in its vocabulary
    dropped: int  # tokens beyond max_length that the LSTM never read (LSTM-only explanations)
    cut_at: int | None  # where in `tokens` those dropped tokens were
    delta: float  # integrated-gradients completeness error (small: the weights are trustworthy; 0: exact)
    lstm_weight: float = 1.0  # the LSTM's share of the model's probabilities (the rest: the linear view)
    answered_by: str = "lstm"  # lstm | linear | both
    spaced: bool = True  # whether the text's script puts spaces between its tokens (not Chinese, Japanese ...)
    # a fine-tuned model that averages in the model it started from: that model's share (1: it answered alone,
    # and the weights are its own), and what answered in it (lstm | linear | both); `answered_by` and
    # `lstm_weight` are then the fine-tuned model's own, where it has a share
    start_weight: float = 0.0
    start_answered_by: str | None = None

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
        if not 2 <= steps <= MAX_STEPS:
            raise TextclfError(f"--steps must be in 2..{MAX_STEPS}, got {steps}")
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
        self._start_explainer: Explainer | None = None

    def _score(self, tokens: torch.Tensor, lengths: torch.Tensor, sign: float) -> torch.Tensor:
        logits = self.model(tokens, lengths)
        return logits * sign if logits.dim() == 1 else logits

    def _kept(self, tokens: list[str]) -> tuple[np.ndarray, int, int | None]:
        """The positions the LSTM reads (max_length, truncate), how many it drops and where."""
        art = self.clf.artifact
        keep = truncate_ids(np.arange(len(tokens)), art.max_length, art.truncate)
        dropped = len(tokens) - len(keep)
        cut_at = None
        if dropped:
            gaps = np.flatnonzero(np.diff(keep) > 1)  # "both" keeps two ends: the gap is in the middle
            cut_at = int(gaps[0] + 1) if len(gaps) else (0 if keep[0] > 0 else len(keep))
        return keep, dropped, cut_at

    def _integrated_gradients(self, ids: list[int], k: int, sign: float, binary: bool) -> tuple[list[float], float]:
        if not ids:
            return [], 0.0
        device = self.clf.device
        x = torch.tensor([ids], device=device)
        with self._lock, torch.enable_grad():
            attr, err = self._ig.attribute(x, baselines=torch.zeros_like(x), target=None if binary else k,
                                           additional_forward_args=(torch.tensor([len(ids)]), sign),
                                           n_steps=self.steps, internal_batch_size=self.steps,
                                           return_convergence_delta=True)
        return attr.sum(-1)[0].float().cpu().tolist(), float(err.abs().max())

    def explain(self, text: str, threshold: float = DEFAULT_THRESHOLD) -> Explanation:
        art = self.clf.artifact
        tokens = art.tokenizer(text)
        probs = self.clf.predict_proba([text], threshold=threshold)
        k = int(self.clf.decide(probs, threshold)[0])
        share = art.calibration_at(threshold).start_weight if art.start is not None else 0.0
        own = self._part(tokens, k, threshold) if share < 1 else None
        start = self._start()._part(tokens, art.start_rows[k], threshold) if share > 0 else None
        if own is None or start is None:  # one model answered: its weights as its views give them
            part = own or start
        else:  # the two averaged at the start's share, every token in place
            weights = (1 - share) * own.full(len(tokens)) + share * start.full(len(tokens))
            part = _Part(tokens, weights.tolist(), (art.vocab.lookup(tokens) == UNK_ID).tolist(), 0, None,
                         (1 - share) * own.delta + share * start.delta, own.lstm_weight, own.answered_by,
                         list(range(len(tokens))))
        return Explanation(
            label=art.labels.names[k], probability=float(probs[0, k]),
            probabilities=dict(zip(art.labels.names, map(float, probs[0]), strict=True)),
            tokens=part.tokens, weights=part.weights, unknown=part.unknown, dropped=part.dropped, cut_at=part.cut_at,
            delta=part.delta, lstm_weight=part.lstm_weight, answered_by=part.answered_by,
            spaced=not without_spaces(art.tokenizer.kind), start_weight=share,
            start_answered_by=start.answered_by if start is not None else None)

    def _start(self) -> Explainer:
        """The explainer of the model a fine-tuned one averages in (`Artifact.start`), made once."""
        if self._start_explainer is None:
            self._start_explainer = Explainer(Classifier(self.clf.artifact.start, self.clf.device), self.steps)
        return self._start_explainer

    def _part(self, tokens: list[str], k: int, threshold: float) -> _Part:
        """This model's own views' weights toward class `k` (not its start model's), as they answer the text."""
        art = self.clf.artifact
        binary = len(art.labels) == 2
        sign = (1.0 if k == 1 else -1.0) if binary else 1.0
        cal = art.calibration_at(threshold)
        p_linear = art.linear.predict_proba([tokens]) if cal.uses_linear() and art.linear is not None else None
        if p_linear is not None and (not cal.uses_lstm() or cal.sure(p_linear)[0]):
            answered_by = "linear"
        else:
            answered_by = "both" if p_linear is not None else "lstm"
        keep, dropped, cut_at = self._kept(tokens)
        read = [tokens[i] for i in keep]
        ids = art.vocab.lookup(read).tolist()
        weights, delta = [], 0.0
        if answered_by != "linear":
            weights, delta = self._integrated_gradients(ids, k, sign, binary)
        if answered_by == "lstm":
            return _Part(read, weights, [i == UNK_ID for i in ids], dropped, cut_at, delta, 1.0, "lstm",
                         keep.tolist())
        linear = art.linear.token_weights(tokens, k)[0] * sign
        share = cal.weight if answered_by == "both" else 0.0
        lstm = np.zeros(len(tokens))
        if share:
            lstm[keep] = weights
        return _Part(tokens, (share * lstm + (1 - share) * linear).tolist(),
                     (art.vocab.lookup(tokens) == UNK_ID).tolist(), 0, None, share * delta, share, answered_by,
                     list(range(len(tokens))))


@dataclass
class _Part:
    """One model's explanation (`Explainer._part`): the tokens shown, where each stands in the text's tokens
    (`positions`), and the rest of an `Explanation`'s fields."""

    tokens: list[str]
    weights: list[float]
    unknown: list[bool]
    dropped: int
    cut_at: int | None
    delta: float
    lstm_weight: float
    answered_by: str
    positions: list[int]

    def full(self, n: int) -> np.ndarray:
        """[n] the weights of all of the text's tokens, 0 on those this model did not read."""
        out = np.zeros(n)
        out[self.positions] = self.weights
        return out
