"""`textclf baseline`: the linear view alone (TF-IDF + logistic regression, `linear.py`: over word 1-2-grams, or
character 1-3-grams for scripts written without spaces), fitted on train and scored like the model on every
other split: a sanity check of any dataset. Its own room, beside reports/ (whose metrics it reports) rather than
in it: a model fit is no part of the metrics library that training imports."""

from __future__ import annotations

import logging
import time

import numpy as np

from .data import Split
from .models.linear import LinearModel, tfidf_kind
from .reports.metrics import compute
from .text.tokenizer import Tokenizer
from .text.tokens import tokenize_cached
from .text.vocab import LabelVocab

log = logging.getLogger(__name__)


def linear_baseline(splits: dict[str, Split], tokenizer: Tokenizer, cache_dir: str | None = None,
                    c: float | None = None) -> dict:
    """Fit on `splits["train"]` and report validation's metrics (the same dicts as the model's); then, as the
    model's linear view is, fit again on train and validation together and report test's. `c`: the inverse
    regularisation strength (None: the TF-IDF view's, `linear.KINDS`).

    Texts go through the same tokenizer (and token cache) as the model, so the two compare like for like.
    """
    start = time.perf_counter()
    labels = LabelVocab.from_values(splits["train"].labels)
    tokens = {name: tokenize_cached(s.texts, tokenizer, cache_dir, desc=f"tokenising {name}")
              for name, s in splits.items()}
    y = {name: labels.encode(s.labels, s.source) for name, s in splits.items()}
    kind = tfidf_kind(tokenizer.kind)
    model = LinearModel.fit(tokens["train"].token_lists(), y["train"], len(labels), kind, c=c)
    out: dict = {"model": model.describe(), "features": len(model.ngrams)}
    if "validation" in splits:
        out["validation"] = compute(y["validation"], model.predict_proba(tokens["validation"].token_lists()),
                                    labels.names)
        model = LinearModel.fit([*tokens["train"].token_lists(), *tokens["validation"].token_lists()],
                                np.concatenate([y["train"], y["validation"]]), len(labels), kind, c=c)
    if "test" in splits:
        out["test"] = compute(y["test"], model.predict_proba(tokens["test"].token_lists()), labels.names)
    out["fit_seconds"] = round(time.perf_counter() - start, 1)
    log.info("baseline: %d features, fitted in %.1fs", len(model.ngrams), out["fit_seconds"])
    return out
