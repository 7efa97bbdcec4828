"""`textclf baseline`: the linear view alone (TF-IDF + logistic regression, `linear.py`: over word 1-2-grams, or
character 1-3-grams for scripts written without spaces), fitted on train and scored like the model on every
other split: a sanity check of any dataset."""

from __future__ import annotations

import logging
import time

from ..data import Split
from ..models.linear import LinearModel, tfidf_kind
from ..text.tokenizer import Tokenizer
from ..text.tokens import tokenize_cached
from ..text.vocab import LabelVocab
from .metrics import compute

log = logging.getLogger(__name__)


def linear_baseline(splits: dict[str, Split], tokenizer: Tokenizer, cache_dir: str | None = None,
                    c: float | None = None) -> dict:
    """Fit on `splits["train"]`, report metrics (the same dicts as the LSTM's) on every other split; `c`: the
    inverse regularisation strength (None: the TF-IDF view's, `linear.KINDS`).

    Texts go through the same tokenizer (and token cache) as the LSTM, so the two compare like for like.
    """
    start = time.perf_counter()
    labels = LabelVocab.from_values(splits["train"].labels)
    tokens = {name: tokenize_cached(s.texts, tokenizer, cache_dir, desc=f"tokenising {name}")
              for name, s in splits.items()}
    model = LinearModel.fit(tokens["train"].token_lists(), labels.encode(splits["train"].labels,
                                                                         splits["train"].source), len(labels),
                            tfidf_kind(tokenizer.kind), c=c)
    seconds = time.perf_counter() - start
    log.info("baseline: %d features, fitted in %.1fs", len(model.ngrams), seconds)
    out: dict = {"model": model.describe(), "features": len(model.ngrams), "fit_seconds": round(seconds, 1)}
    for name, split in splits.items():
        if name != "train":
            probs = model.predict_proba(tokens[name].token_lists())
            out[name] = compute(labels.encode(split.labels, split.source), probs, labels.names)
    return out
