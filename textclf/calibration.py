"""Probabilities a user can threshold: the LSTM averaged with the linear view, temperature-scaled.

Every number is fitted on the validation split, never on test (`Calibration.fit`):
- each view's own temperature first (Guo et al. 2017): an LSTM trained to a train loss near 0 says 0.9999
  where it is right 75% of the time, and averaged as it is, it outvotes a calibrated linear view whenever
  it is sure (IMDB, 500 rows: the average scored 0.747 on test, the linear view alone 0.793; 0.786 with
  each view scaled first);
- `weight`: the LSTM's share in `weight * p_lstm + (1 - weight) * p_linear`, the one of 0, 0.1, ..., 1 with
  the lowest validation log-loss (1 where there is no linear view);
- `temperature` of the average;
- `shortcut`: the linear view's top probability (at its temperature) from which the LSTM is not run at all and
  the linear view answers alone: the lowest of SHORTCUTS at which that changes at most 0.2% of validation
  decisions (0: never; fitted on 1,000+ validation texts only). The LSTM is most of a prediction's time and
  a linear view is sure of most texts (IMDB: 70-80%), so prediction runs ~2x faster at the same accuracy.
A temperature never changes a decision at the default threshold (argmax, or p >= 0.5 for binary), only how
sure the model says it is; the weight and the shortcut do change decisions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np

WEIGHTS = np.round(np.linspace(0.0, 1.0, 11), 2)
SHORTCUTS = (0.8, 0.85, 0.9, 0.95, 0.98, 0.99)
SHORTCUT_CHANGES = 0.002  # the most validation decisions the shortcut may change
SHORTCUT_MIN_TEXTS = 1000  # fewer validation texts cannot show a change rate of 0.2%
_EPS = 1e-7


def combine(p_lstm: np.ndarray, p_linear: np.ndarray | None, weight: float = 1.0,
            temperature: float = 1.0) -> np.ndarray:
    """[N, C] probabilities: the weighted average, sharpened or softened by `temperature`."""
    p = p_lstm if p_linear is None or weight >= 1 else weight * p_lstm + (1 - weight) * p_linear
    if temperature == 1.0:
        return p.astype(np.float32)
    logits = np.log(np.clip(p, _EPS, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def log_loss(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], _EPS, 1.0)).mean())


def fit_weight(p_lstm: np.ndarray, p_linear: np.ndarray, y: np.ndarray) -> float:
    """The LSTM's share of the average with the lowest log-loss on (validation) labels `y`; ties go to the LSTM."""
    losses = [log_loss(combine(p_lstm, p_linear, w), y) for w in WEIGHTS]
    best = min(losses)
    return float(max(w for w, loss in zip(WEIGHTS, losses, strict=True) if loss <= best + 1e-9))


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """T > 0 minimising the log-loss of softmax(log(probs) / T): golden-section search over log T in [-3, 3]."""
    f = lambda log_t: log_loss(combine(probs, None, 1.0, float(np.exp(log_t))), y)  # noqa: E731
    lo, hi = -3.0, 3.0
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = f(a), f(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = f(b)
    t = float(np.exp((lo + hi) / 2))
    return t if f(np.log(t)) < f(0.0) else 1.0


def calibrated_log_loss(probs: np.ndarray, y: np.ndarray) -> float:
    """The log-loss of `probs` at the temperature that suits them best on `y`: the loss of the probabilities a
    model saying them would give once calibrated."""
    return log_loss(combine(probs, None, 1.0, fit_temperature(probs, y)), y)


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """ECE: over 15 equal-width bins of the top probability, the gap between confidence and accuracy, weighted
    by the bin's share of the texts (Guo et al. 2017)."""
    if not len(y):
        return 0.0
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(conf[mask].mean() - correct[mask].mean())
    return float(ece)


@dataclass
class Calibration:
    """How a model turns its views' probabilities into its own (saved in config.json as "calibration")."""

    weight: float = 1.0  # the LSTM's share of the average (1: the LSTM alone)
    temperature: float = 1.0  # of the average
    lstm_temperature: float = 1.0
    linear_temperature: float = 1.0
    shortcut: float = 0.0  # the linear view answers alone where it is this sure (0: never)

    def sure(self, p_linear: np.ndarray | None) -> np.ndarray:
        """[N] bool: the texts the linear view answers alone, their LSTM probabilities unused."""
        if p_linear is None or not self.shortcut or self.weight >= 1:
            return np.zeros(0 if p_linear is None else len(p_linear), dtype=bool)
        return combine(p_linear, None, 1.0, self.linear_temperature).max(axis=1) >= self.shortcut

    def average(self, p_lstm: np.ndarray, p_linear: np.ndarray | None) -> np.ndarray:
        """The views, each at its temperature, averaged: before the final temperature."""
        lstm = combine(p_lstm, None, 1.0, self.lstm_temperature)
        if p_linear is None or self.weight >= 1:
            return lstm
        return combine(lstm, combine(p_linear, None, 1.0, self.linear_temperature), self.weight)

    def apply(self, p_lstm: np.ndarray, p_linear: np.ndarray | None = None) -> np.ndarray:
        """[N, C] probabilities as the model gives them: where the linear view is sure (`sure`), its own,
        at its temperature; elsewhere the average at the final temperature."""
        p = combine(self.average(p_lstm, p_linear), None, 1.0, self.temperature)
        sure = self.sure(p_linear)
        if sure.any():
            p[sure] = combine(p_linear[sure], None, 1.0, self.linear_temperature)
        return p

    def exact(self) -> Calibration:
        """The same without the shortcut: the LSTM on every text."""
        return replace(self, shortcut=0.0)

    @classmethod
    def fit(cls, p_lstm: np.ndarray, p_linear: np.ndarray | None, y: np.ndarray) -> Calibration:
        """Each view's temperature, then the weight, then the average's temperature, on validation labels `y`."""
        cal = cls(lstm_temperature=fit_temperature(p_lstm, y))
        if p_linear is not None:
            cal.linear_temperature = fit_temperature(p_linear, y)
            cal.weight = fit_weight(combine(p_lstm, None, 1.0, cal.lstm_temperature),
                                    combine(p_linear, None, 1.0, cal.linear_temperature), y)
        cal.temperature = fit_temperature(cal.average(p_lstm, p_linear), y)
        cal.shortcut = fit_shortcut(cal, p_lstm, p_linear)
        return cal

    def to_dict(self) -> dict:
        return {k: round(v, 4) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict | None) -> Calibration:
        """From config.json; a model saved without it (or without a newer field) gets 1 for what it lacks."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: float(v) for k, v in (d or {}).items() if k in names})


def fit_shortcut(cal: Calibration, p_lstm: np.ndarray, p_linear: np.ndarray | None) -> float:
    """The lowest of SHORTCUTS at which the linear view answering alone where it is that sure changes at most
    SHORTCUT_CHANGES of the (validation) decisions of the full model `cal` describes; 0 (never) when none
    does, when the LSTM is not averaged with a linear view, or on fewer than SHORTCUT_MIN_TEXTS texts. The
    change rate bounds the accuracy it can cost; no labels are needed."""
    if p_linear is None or cal.weight >= 1 or len(p_lstm) < SHORTCUT_MIN_TEXTS:
        return 0.0
    full = cal.exact().apply(p_lstm, p_linear).argmax(axis=1)
    for threshold in SHORTCUTS:
        changed = (replace(cal, shortcut=threshold).apply(p_lstm, p_linear).argmax(axis=1) != full).mean()
        if changed <= SHORTCUT_CHANGES:
            return threshold
    return 0.0
