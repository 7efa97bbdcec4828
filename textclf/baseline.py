"""A linear baseline to sanity-check any dataset: TF-IDF over word 1-2-grams + logistic regression."""

from __future__ import annotations

import logging
import time

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from .data import Split
from .metrics import compute
from .tokenizer import Tokenizer
from .tokens import Tokenized, tokenize_cached
from .vocab import LabelVocab

log = logging.getLogger(__name__)


def _joined(tok: Tokenized) -> list[str]:
    """Each text's tokens joined by spaces: the vectorizer then only splits on whitespace."""
    return [" ".join(tokens) for tokens in tok.token_lists()]


def run_baseline(splits: dict[str, Split], tokenizer: Tokenizer, cache_dir: str | None = None,
                 ngram_max: int = 2, min_df: int = 2, c: float = 4.0) -> dict:
    """Fit on `splits["train"]`, report metrics (the same dicts as the LSTM's) on every other split.

    Texts go through the same tokenizer (and token cache) as the LSTM, so the two compare like for like.
    """
    start = time.perf_counter()
    labels = LabelVocab.from_values(splits["train"].labels)
    texts = {name: _joined(tokenize_cached(s.texts, tokenizer, cache_dir, desc=f"tokenising {name}"))
             for name, s in splits.items()}
    vectorizer = TfidfVectorizer(tokenizer=str.split, token_pattern=None, lowercase=False,
                                 ngram_range=(1, ngram_max), min_df=min_df, sublinear_tf=True, dtype=np.float32)
    x_train = vectorizer.fit_transform(texts["train"])
    clf = LogisticRegression(C=c, max_iter=1000)
    clf.fit(x_train, labels.encode(splits["train"].labels, splits["train"].source))
    seconds = time.perf_counter() - start
    log.info("baseline: %d features, fitted in %.1fs", x_train.shape[1], seconds)
    out: dict = {"model": f"tfidf(1-{ngram_max}-grams, min_df={min_df}) + logistic regression (C={c})",
                 "features": int(x_train.shape[1]), "fit_seconds": round(seconds, 1)}
    for name, split in splits.items():
        if name != "train":
            probs = clf.predict_proba(vectorizer.transform(texts[name]))
            out[name] = compute(labels.encode(split.labels, split.source), probs, labels.names)
    return out
