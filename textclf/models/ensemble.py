"""The model's probabilities from its two views: the LSTM averaged with the linear view, temperature-scaled, and
the shortcut that lets the linear view answer alone where it is sure. Fitting all of it (on validation) and
applying it (training's report, `Artifact`, `Classifier`, evaluation, export) live here, and only here.

Every number is fitted on the validation split, never on test (`Calibration.fit`), to the linear view's
out-of-fold probabilities there (`linear_view.refit`: the saved view has learnt from validation's rows too):
- which linear view (`fit_linear_view`): the kinds of `linear.KINDS` that suit the data, the one with the lowest
  validation log-loss at its own temperature;
- each view's own temperature first (Guo et al. 2017): an LSTM trained to a train loss near 0 is nearly
  certain where it is often wrong, and averaged as it is, it outvotes a calibrated linear view whenever it
  is sure;
- `weight`: the LSTM's share in `weight * p_lstm + (1 - weight) * p_linear`, the one of 0, 0.1, ..., 1 with
  the lowest validation log-loss (1 where there is no linear view);
- `temperature` of the average;
- `shortcut`: the linear view's top probability (at its temperature) from which the LSTM is not run at all and
  the linear view answers alone: the lowest of SHORTCUTS at which validation shows that it changes at most
  SHORTCUT_CHANGES of the decisions, with SHORTCUT_CONFIDENCE, on SHORTCUT_MIN_SURE+ texts it answers
  (`fit_shortcut`; 0: never). The change rate needs no labels: where the run pretrains on unlabelled texts, a
  sample of them (up to SHORTCUT_CHECK_ROWS, none that a labelled split repeats: `pipeline.unlabelled_sample`) is
  checked beside validation, scored by the saved linear view, which never saw them; validation alone must not show
  more changed than the bound. `shortcut_rows`: how many checked texts it answered there, `shortcut_unlabelled`
  how many of those were unlabelled. The LSTM is most
  of a prediction's time and a linear view is sure of most long reviews, so prediction runs faster (figures:
  benchmarks/README.md);
- `shortcut_scale`, `shortcut_bias`: where the shortcut answers, the linear view's top probability is mapped
  onto the full model's scale, sigmoid(scale * logit(p) + bias), a monotone fit to what the full model says
  on those texts; so probabilities stay comparable across the cut (ranking, thresholds, ECE).
A fine-tuned model whose labels are those of the model it started from (`init_from`) has one more candidate: that
model in full, as `Classifier.load(init_from)` answers (both its views, its own calibration and shortcut):
- `start_weight`: its share in `start_weight * p_start + (1 - start_weight) * p_model`, of 0, 0.1, ..., 1: 1
  where the start's validation log-loss is within one standard error of the lowest, else the largest within
  one standard error of the lowest on the row-by-row differences (`start_share`), the fine-tuned model calibrated out of
  fold (`Calibration.fit_start`; 1: the start model unchanged, 0: the fine-tuned model alone), and
  `start_temperature` of that average. The model's own shortcut is checked on its own
  decisions, so it is dropped where the start has a share.
A temperature never changes a decision at the default threshold (argmax, or p >= 0.5 for binary), only how
sure the model says it is; the weight and the shortcut do change decisions. The shortcut is checked at the
default decision only, so a binary model asked for another threshold runs the LSTM on every text
(`Calibration.for_use`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from .decision import DEFAULT_THRESHOLD, VIEWS
from .linear import LinearModel

log = logging.getLogger(__name__)

WEIGHTS = np.round(np.linspace(0.0, 1.0, 11), 2)
SHORTCUTS = (0.8, 0.85, 0.9, 0.95, 0.98, 0.99)
SHORTCUT_CHANGES = 0.002  # the most decisions the shortcut may change
SHORTCUT_CONFIDENCE = 0.95  # of the one-sided bound that validation puts on that share
SHORTCUT_MIN_SURE = 100  # the fewest texts above its threshold a shortcut is checked on
SHORTCUT_CHECK_ROWS = 10_000  # the most unlabelled texts checked beside validation
_EPS = 1e-7
MIN_SCALE = 1e-3  # the shortcut's map: sigmoid(scale * logit(p) + bias) stays increasing in p


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


def _row_losses(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    return -np.log(np.clip(probs[np.arange(len(y)), y].astype(np.float64), _EPS, 1.0))


def one_standard_error(losses: Sequence[np.ndarray], values: Sequence[float]) -> float:
    """Of `values`, each with its row-by-row `losses` on the same rows, the largest whose mean loss is within one
    standard error of the lowest mean: the error of the mean of the row-by-row differences from the best."""
    means = [float(loss.mean()) for loss in losses]
    best = losses[int(np.argmin(means))]
    n = len(best)
    ok = [v for v, loss, m in zip(values, losses, means, strict=True)
          if m - min(means) <= 1e-12 or (n > 1 and m - min(means) <= float((loss - best).std(ddof=1)) / np.sqrt(n))]
    return float(max(ok))


def start_share(losses: Sequence[np.ndarray]) -> float:
    """The start model's share of a fine-tuned model, of WEIGHTS (1: the start alone), each share with its
    row-by-row validation `losses`. First, whether the rows show any share better than the start alone: not where
    the start's mean loss is within one standard error of the lowest mean, the error of that mean itself
    (Breiman's one-standard-error rule as he gave it). Then how much: `one_standard_error`, on the paired
    differences, which are sharper. The paired step alone gave the start up on 30 rows where a fine-tuned model
    was surer of the rows both had right and as wrong as the start on the rest: surer on 27 easy rows is a
    consistent gain, so the differences' error was small, but the 2 or 3 errors are most of either loss, and
    which rows are errors is the chance that 30 rows leave (IMDB reviews the start never saw: 0.9216 on test
    against the start's 0.9326; benchmarks/README.md)."""
    means = [float(loss.mean()) for loss in losses]
    best = losses[int(np.argmin(means))]
    if len(best) < 2 or means[-1] - min(means) <= float(best.std(ddof=1)) / np.sqrt(len(best)):
        return float(WEIGHTS[-1])
    return one_standard_error(losses, WEIGHTS)


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


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))


def map_top(p: np.ndarray, scale: float, bias: float) -> np.ndarray:
    """Rows of `p` with their top probability put through sigmoid(scale * logit + bias) and the other classes
    rescaled to fill the rest in their proportions; the top class stays on top (so decisions do not move)."""
    if scale == 1.0 and bias == 0.0:
        return p.astype(np.float32)
    rows = np.arange(len(p))
    k = p.argmax(axis=1)
    top = p[rows, k].astype(np.float64)
    mapped = _sigmoid(scale * _logit(top) + bias)
    rest = np.clip(1.0 - top, _EPS, None)
    second = np.sort(p, axis=1)[:, -2]
    mapped = np.maximum(mapped, second / (rest + second) + 1e-4)  # strictly above the class that would pass it
    out = p.astype(np.float64) * ((1.0 - mapped) / rest)[:, None]
    out[rows, k] = mapped
    return out.astype(np.float32)


@dataclass
class Calibration:
    """How a model turns its views' probabilities into its own (saved in config.json as "calibration")."""

    weight: float = 1.0  # the LSTM's share of the average (1: the LSTM alone; 0: the linear view alone)
    temperature: float = 1.0  # of the average
    lstm_temperature: float = 1.0
    linear_temperature: float = 1.0
    shortcut: float = 0.0  # the linear view answers alone where it is this sure (0: never)
    shortcut_scale: float = 1.0  # where it does, its top probability p becomes sigmoid(scale * logit(p) + bias)
    shortcut_bias: float = 0.0
    shortcut_rows: int = 0  # the texts the shortcut answered, on which it was checked (`fit_shortcut`)
    shortcut_unlabelled: int = 0  # how many of those were unlabelled texts (the rest: validation's)
    start_weight: float = 0.0  # fine-tuned models: the share of the model it started from, in full (`fit_start`)
    start_temperature: float = 1.0  # of that average

    def uses_linear(self) -> bool:
        return self.weight < 1

    def uses_lstm(self) -> bool:
        return self.weight > 0

    def uses_own(self) -> bool:
        """Whether the model's own views answer at all (not where the model it started from has all the weight)."""
        return self.start_weight < 1

    def uses_start(self) -> bool:
        return self.start_weight > 0

    def sure(self, p_linear: np.ndarray | None) -> np.ndarray:
        """[N] bool: the texts the linear view answers alone, their LSTM probabilities unused."""
        if p_linear is None or not self.shortcut or not self.uses_linear():
            return np.zeros(0 if p_linear is None else len(p_linear), dtype=bool)
        return combine(p_linear, None, 1.0, self.linear_temperature).max(axis=1) >= self.shortcut

    def average(self, p_lstm: np.ndarray | None, p_linear: np.ndarray | None) -> np.ndarray:
        """The views, each at its temperature, averaged: before the final temperature."""
        if not self.uses_lstm():
            return combine(p_linear, None, 1.0, self.linear_temperature)
        lstm = combine(p_lstm, None, 1.0, self.lstm_temperature)
        if p_linear is None or not self.uses_linear():
            return lstm
        return combine(lstm, combine(p_linear, None, 1.0, self.linear_temperature), self.weight)

    def apply(self, p_lstm: np.ndarray | None, p_linear: np.ndarray | None = None,
              p_start: np.ndarray | None = None) -> np.ndarray:
        """[N, C] probabilities as the model gives them: where the linear view is sure (`sure`), its own at its
        temperature, mapped onto the full model's scale; elsewhere the average at the final temperature. With a
        start model's share, averaged with `p_start` (`with_start`)."""
        if not self.uses_own():
            return self.with_start(None, p_start)
        p = combine(self.average(p_lstm, p_linear), None, 1.0, self.temperature)
        sure = self.sure(p_linear)
        if sure.any():
            p[sure] = self.shortcut_probabilities(p_linear[sure])
        return self.with_start(p, p_start)

    def with_start(self, p_own: np.ndarray | None, p_start: np.ndarray | None) -> np.ndarray:
        """The model's own probabilities averaged with the start model's (its share: `start_weight`) at
        `start_temperature`; the own ones as they are where the start has no share."""
        if not self.uses_start():
            return p_own
        if p_start is None:
            raise ValueError("this model averages in the model it was fine-tuned from: pass its probabilities")
        return combine(p_start, p_own, self.start_weight, self.start_temperature)

    def fit_start(self, own: np.ndarray, p_start: np.ndarray, y: np.ndarray) -> Calibration:
        """This calibration with the start model's share and the temperature of that average fitted on
        (validation) labels `y`. `own`: the fine-tuned model's probabilities there, calibrated out of fold
        (`cross_calibrated`), as the start's were calibrated on rows other than these.

        The share, in two steps (`start_share`): the start keeps all of it (1) unless the lowest log-loss beats
        the start's by more than that loss's own standard error; otherwise, of WEIGHTS, the largest whose log-loss
        is within one standard error of the lowest, on the row-by-row differences. On a few dozen rows a lower
        loss is often chance, and then the model that never saw the rows keeps its say; on enough rows the best
        share wins. Where the start has a share, the model's own shortcut is dropped: it was checked against the
        model's own decisions, not the average's."""
        weight = start_share([_row_losses(combine(p_start, own, w), y) for w in WEIGHTS])
        if not weight:
            return replace(self, start_weight=0.0, start_temperature=1.0)
        return replace(self, shortcut=0.0, shortcut_scale=1.0, shortcut_bias=0.0, shortcut_rows=0,
                       shortcut_unlabelled=0, start_weight=weight,
                       start_temperature=fit_temperature(combine(p_start, own, weight), y))

    def shortcut_probabilities(self, p_linear: np.ndarray) -> np.ndarray:
        """What the model says of texts the shortcut answers: the linear view's at its temperature, mapped."""
        return map_top(combine(p_linear, None, 1.0, self.linear_temperature), self.shortcut_scale, self.shortcut_bias)

    def exact(self) -> Calibration:
        """The same without the shortcut: the LSTM on every text."""
        return replace(self, shortcut=0.0)

    def view(self, views: str) -> Calibration:
        """The model as trained ("both"), or one of its views alone at its own temperature ("lstm", "linear")."""
        if views == "both":
            return self
        if views == "lstm":
            temperature = self.temperature if not self.uses_linear() else 1.0
            return Calibration(weight=1.0, temperature=temperature, lstm_temperature=self.lstm_temperature)
        if views == "linear":
            return Calibration(weight=0.0, linear_temperature=self.linear_temperature)
        raise ValueError(f"views must be one of {', '.join(VIEWS)}, got {views!r}")

    def for_use(self, views: str = "both", shortcut: bool = True, threshold: float | None = None,
                num_classes: int = 2) -> Calibration:
        """The calibration that answers a request: `views`, with the shortcut only where it was checked (the
        default decision: any multi-class model, a binary one at threshold 0.5) and not turned off."""
        cal = self.view(views)
        other_threshold = num_classes == 2 and threshold is not None and threshold != DEFAULT_THRESHOLD
        return cal.exact() if not shortcut or other_threshold else cal

    @classmethod
    def fit(cls, p_lstm: np.ndarray, p_linear: np.ndarray | None, y: np.ndarray,
            unlabelled: tuple[np.ndarray, np.ndarray] | None = None) -> Calibration:
        """Each view's temperature, then the weight, then the average's temperature, on validation labels `y`; then
        the shortcut and its mapping, on validation and the views' probabilities (LSTM, linear) of `unlabelled`
        texts, when given: the shortcut's checks need no labels."""
        cal = cls(lstm_temperature=fit_temperature(p_lstm, y))
        if p_linear is not None:
            cal.linear_temperature = fit_temperature(p_linear, y)
            cal.weight = fit_weight(combine(p_lstm, None, 1.0, cal.lstm_temperature),
                                    combine(p_linear, None, 1.0, cal.linear_temperature), y)
        cal.temperature = fit_temperature(cal.average(p_lstm, p_linear), y)
        if p_linear is not None and unlabelled is not None:
            p_lstm, p_linear = np.concatenate([p_lstm, unlabelled[0]]), np.concatenate([p_linear, unlabelled[1]])
        cal.shortcut = fit_shortcut(cal, p_lstm, p_linear, own=len(y))
        if cal.shortcut:
            sure = cal.sure(p_linear)
            cal.shortcut_rows = int(sure.sum())
            cal.shortcut_unlabelled = int(sure[len(y):].sum())
            cal.shortcut_scale, cal.shortcut_bias = fit_shortcut_map(cal, p_lstm, p_linear)
        return cal

    def to_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict | None) -> Calibration:
        """From config.json; a model saved without it (or without a newer field) gets the defaults for what it
        lacks (1 for the weight and temperatures, no shortcut, an identity mapping, 0 rows checked: unknown)."""
        kinds = {f.name: int if f.type in (int, "int") else float for f in fields(cls)}
        return cls(**{k: kinds[k](v) for k, v in (d or {}).items() if k in kinds})


def cross_calibrated(p_lstm: np.ndarray, p_linear: np.ndarray | None, y: np.ndarray,
                     folds: np.ndarray) -> np.ndarray:
    """[N, C] each row's probabilities from the views as calibrated (`Calibration.fit`, no shortcut) on the other
    folds' rows only: a model's probabilities on rows its calibration did not see."""
    if len(np.unique(folds)) < 2:  # a single row: no other fold to calibrate on
        return Calibration.fit(p_lstm, p_linear, y).exact().apply(p_lstm, p_linear)
    out = np.zeros_like(p_lstm, dtype=np.float32)
    for k in np.unique(folds):
        held, rest = folds == k, folds != k
        cal = Calibration.fit(p_lstm[rest], None if p_linear is None else p_linear[rest], y[rest]).exact()
        out[held] = cal.apply(p_lstm[held], None if p_linear is None else p_linear[held])
    return out


def fit_shortcut(cal: Calibration, p_lstm: np.ndarray, p_linear: np.ndarray | None, own: int | None = None) -> float:
    """The lowest of SHORTCUTS at which validation (and the unlabelled texts `Calibration.fit` adds) shows that the
    linear view answering alone where it is that sure changes at most SHORTCUT_CHANGES of the decisions of the full
    model `cal` describes; 0 (never) when none does, or when the LSTM is not averaged with a linear view. No labels
    are needed: the change rate bounds the accuracy it can cost.

    Shown, not assumed: only the texts above the threshold can change, so at a threshold that n of N validation
    (and unlabelled) texts reach, c of them changed, the bound is the one-sided SHORTCUT_CONFIDENCE Clopper-Pearson
    upper bound on the change rate among such texts, times their share n / N. It must stay within
    SHORTCUT_CHANGES, on at least SHORTCUT_MIN_SURE texts. Zero changes over no texts shows nothing; and since the
    bound with c = 0 is about 3 / N, a shortcut needs 1,500 or so texts, more where it changes any.

    The first `own` rows (validation's, where unlabelled texts follow them) must not show more than
    SHORTCUT_CHANGES changed on their own either: unlabelled texts (another source, maybe) add rows to the bound,
    never a pass to a threshold that the labelled rows, drawn as test's are, already exceed. With no rows after
    them this adds nothing: the bound is never under the share changed."""
    from scipy.stats import beta

    if p_linear is None or not cal.uses_linear() or not len(p_lstm):
        return 0.0
    full = cal.exact().apply(p_lstm, p_linear).argmax(axis=1)
    for threshold in SHORTCUTS:
        shortcut = replace(cal, shortcut=threshold)
        n = int(shortcut.sure(p_linear).sum())
        if n < SHORTCUT_MIN_SURE:
            continue
        moved = shortcut.apply(p_lstm, p_linear).argmax(axis=1) != full
        changed = int(moved.sum())
        upper = 1.0 if changed >= n else float(beta.ppf(SHORTCUT_CONFIDENCE, changed + 1, n - changed))
        if upper * n / len(p_lstm) <= SHORTCUT_CHANGES and (own is None or moved[:own].mean() <= SHORTCUT_CHANGES):
            return threshold
    return 0.0


def fit_shortcut_map(cal: Calibration, p_lstm: np.ndarray, p_linear: np.ndarray) -> tuple[float, float]:
    """(scale, bias) of the monotone map from the linear view's top probability to the full model's probability
    of that class, on the (validation) texts the shortcut answers: a logistic fit to the full model's
    probabilities as soft targets (cross-entropy, `_newton`), scale kept >= MIN_SCALE. Where the full model's
    probabilities fall as the linear view's rise, the best increasing map is all but constant: the scale is held
    at MIN_SCALE and the bias alone fitted."""
    sure = cal.sure(p_linear)
    lin = combine(p_linear[sure], None, 1.0, cal.linear_temperature)
    full = cal.exact().apply(p_lstm[sure], p_linear[sure])
    k = lin.argmax(axis=1)
    z, target = _logit(lin[np.arange(len(k)), k]), full[np.arange(len(k)), k].astype(np.float64)
    scale, bias = _newton(np.stack([z, np.ones_like(z)], axis=1), target, np.array([1.0, 0.0]))
    if scale >= MIN_SCALE:
        return scale, bias
    (bias,) = _newton(np.ones((len(z), 1)), target, np.array([0.0]), offset=MIN_SCALE * z)
    return MIN_SCALE, bias


def _newton(x: np.ndarray, target: np.ndarray, w: np.ndarray, offset: np.ndarray | float = 0.0) -> np.ndarray:
    """w minimising the cross-entropy of sigmoid(x @ w + offset) against soft targets (convex): Newton's steps,
    each halved until the loss falls. Full steps flew off to scales of 1e6 where the full model is sure of every
    text: its probabilities flatten the loss there, and the old fit took the step regardless."""
    def loss(v: np.ndarray) -> float:  # in log-sigmoids, which cannot overflow
        a = x @ v + offset
        return float(np.mean(target * np.logaddexp(0.0, -a) + (1 - target) * np.logaddexp(0.0, a)))

    current = loss(w)
    for _ in range(50):
        q = _sigmoid(x @ w + offset)
        grad = x.T @ (q - target) / len(target)
        step = np.linalg.solve((x * (q * (1 - q))[:, None]).T @ x / len(target) + 1e-6 * np.eye(len(w)), grad)
        for _ in range(40):
            if (new := loss(w - step)) < current:
                break
            step = step / 2
        else:
            break  # no step lowers the loss: w is the fit
        w, current = w - step, new
        if np.abs(step).max() < 1e-9:
            break
    return w


@dataclass
class Outputs:
    """One split's probabilities, as a trained model's report reads them."""

    lstm: np.ndarray  # the LSTM's own, every text
    linear: np.ndarray | None  # the linear view's own (None: no linear view)
    raw: np.ndarray  # the views averaged with the fitted weight: no temperature, no shortcut
    final: np.ndarray  # the model's: what predict gives (shortcut where fitted)
    exact: np.ndarray  # the full average on every text (no shortcut)
    sure: np.ndarray  # [N] bool: the texts the shortcut gives the linear view
    start: np.ndarray | None = None  # the model it was fine-tuned from, in full (its calibration), where it has a say
    own: np.ndarray | None = None  # ... and then the fine-tuned model's own views, calibrated, without it

    @classmethod
    def of(cls, cal: Calibration, p_lstm: np.ndarray, p_linear: np.ndarray | None,
           start: Outputs | None = None) -> Outputs:
        """`start`: the outputs of the model it was fine-tuned from, in this model's label order."""
        own = replace(cal, start_weight=0.0, start_temperature=1.0).apply(p_lstm, p_linear) if start else None
        final, exact = (None, None) if start is None else (start.final, start.exact)
        return cls(p_lstm, p_linear, Calibration(weight=cal.weight).apply(p_lstm, p_linear),
                   cal.apply(p_lstm, p_linear, final), cal.exact().apply(p_lstm, p_linear, exact),
                   cal.sure(p_linear), final, own)

    def columns(self, rows: Sequence[int]) -> Outputs:
        """The same with the classes in another order: class j is this one's `rows[j]`."""
        pick = lambda p: None if p is None else p[:, list(rows)]  # noqa: E731
        return replace(self, **{f.name: pick(getattr(self, f.name)) for f in fields(self) if f.name != "sure"})


StartProbabilities = Callable[[], np.ndarray]  # the start model's [N, C] probabilities of the texts at hand
StartOutputs = Callable[[], Outputs]  # ... and its outputs, for a report


def probabilities(cal: Calibration, linear: LinearModel | None, token_lists: Sequence[Sequence[str]],
                  run_lstm: Callable[[np.ndarray], np.ndarray], num_classes: int,
                  start: StartProbabilities | None = None) -> np.ndarray:
    """The model's [N, C] probabilities for texts given as token lists (untruncated): the one path from the two
    views to the model's answer. `run_lstm(rows)` gives the LSTM's probabilities of those rows (indices into
    `token_lists`); it is called once, for the texts the shortcut does not answer (none, when `cal` uses the
    linear view alone). `cal`: the model's calibration, as `Calibration.for_use` picks it for a request.
    `start()`: the probabilities of the model it was fine-tuned from, where `cal` gives that one a share."""
    p_start = start() if cal.uses_start() else None
    if not cal.uses_own():
        return cal.apply(None, None, p_start)
    return cal.apply(*_views(cal, linear, token_lists, run_lstm, num_classes), p_start)


def outputs(cal: Calibration, linear: LinearModel | None, token_lists: Sequence[Sequence[str]],
            run_lstm: Callable[[np.ndarray], np.ndarray], num_classes: int,
            start: StartOutputs | None = None) -> Outputs:
    """As `probabilities`, with the LSTM run on every text: the model's probabilities (`Outputs.final`, what
    predict gives at the default decision) and the full model's (`Outputs.exact`), which a ranking (ROC and PR
    curves, ROC-AUC) reads, as decisions at any other threshold do (`Calibration.for_use`)."""
    return Outputs.of(cal, *_views(cal.exact(), linear, token_lists, run_lstm, num_classes),
                      start() if cal.uses_start() else None)


def _views(cal: Calibration, linear: LinearModel | None, token_lists: Sequence[Sequence[str]],
           run_lstm: Callable[[np.ndarray], np.ndarray], num_classes: int) -> tuple[np.ndarray | None, ...]:
    """(LSTM, linear view) probabilities that `cal` reads: the LSTM's only where its shortcut does not answer."""
    n = len(token_lists)
    p_linear = linear.predict_proba(token_lists) if cal.uses_linear() and linear is not None else None
    if p_linear is None and not cal.uses_lstm():
        raise ValueError("this model has no linear view")
    p_lstm = None
    if cal.uses_lstm():
        todo = np.flatnonzero(~cal.sure(p_linear)) if p_linear is not None else np.arange(n)
        p_lstm = np.full((n, num_classes), 1.0 / num_classes, dtype=np.float32)  # unread where the shortcut answers
        if len(todo):
            p_lstm[todo] = run_lstm(todo)
    return p_lstm, p_linear


def fit_linear_view(train: list[Sequence[str]], y_train: np.ndarray, validation: list[Sequence[str]],
                    y_validation: np.ndarray, num_classes: int, kinds: Sequence[str]) -> LinearModel:
    """The linear view: of `kinds` (see `linear.KINDS`; the naive-Bayes ones for two classes only), the one with
    the lowest validation log-loss, each at its own temperature."""
    best = None
    for kind in kinds:
        clock = time.perf_counter()
        model = LinearModel.fit(train, y_train, num_classes, kind)
        probs = model.predict_proba(validation)
        loss = calibrated_log_loss(probs, y_validation)
        accuracy = float((probs.argmax(axis=1) == y_validation).mean())
        log.info("linear view %s: %d n-grams, validation loss %.4f, accuracy %.4f (%.0fs)", model.describe(),
                 len(model.ngrams), loss, accuracy, time.perf_counter() - clock)
        if best is None or loss < best[0]:
            best = (loss, model)
    return best[1]
