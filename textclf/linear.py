"""The linear view of a text: TF-IDF over word 1-2-grams + logistic regression, on the LSTM's own tokens.

It is `textclf baseline`, and inside a trained model it is the second opinion the LSTM's probabilities
are averaged with (see `calibration`): on a few hundred rows it carries the model, on many it adds what a
bag of n-grams sees and a 128-unit LSTM misses. Saved as JSON (the n-grams) + safetensors (the numbers).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from scipy import sparse

from .files import atomic_open, write_text

FILES = ("linear.json", "linear.safetensors")


def _analyzer(ngram_max: int):
    def ngrams(tokens: Sequence[str]) -> list[str]:
        out = list(tokens)
        for n in range(2, ngram_max + 1):
            out += [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        return out

    return ngrams


class LinearModel:
    """`fit` on token lists and class ids; `predict_proba` on token lists → [N, C] (C = 2 for binary)."""

    def __init__(self, ngrams: list[str], idf: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
                 num_classes: int, ngram_max: int = 2, c: float = 4.0):
        self.ngrams, self.idf, self.coef, self.intercept = ngrams, idf, coef, intercept
        self.num_classes, self.ngram_max, self.c = num_classes, ngram_max, c
        self._vectorizer = None

    @classmethod
    def fit(cls, token_lists: Iterable[Sequence[str]], y: np.ndarray, num_classes: int, ngram_max: int = 2,
            min_df: int = 2, c: float = 4.0) -> LinearModel:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vectorizer = TfidfVectorizer(analyzer=_analyzer(ngram_max), min_df=min_df, sublinear_tf=True,
                                     dtype=np.float32)
        docs = list(token_lists)
        try:
            x = vectorizer.fit_transform(docs)
        except ValueError:  # min_df leaves no n-gram (a handful of rows): every text counts once then
            vectorizer.set_params(min_df=1)
            x = vectorizer.fit_transform(docs)
        clf = LogisticRegression(C=c, max_iter=1000).fit(x, y)
        ngrams = [""] * len(vectorizer.vocabulary_)
        for gram, i in vectorizer.vocabulary_.items():
            ngrams[i] = gram
        model = cls(ngrams, vectorizer.idf_.astype(np.float32), clf.coef_.astype(np.float32),
                    clf.intercept_.astype(np.float32), num_classes, ngram_max, c)
        model._vectorizer = vectorizer
        return model

    @property
    def vectorizer(self):
        if self._vectorizer is None:
            from sklearn.feature_extraction.text import TfidfVectorizer

            self._vectorizer = TfidfVectorizer(analyzer=_analyzer(self.ngram_max), vocabulary=self.ngrams,
                                               sublinear_tf=True, dtype=np.float32)
            self._vectorizer.idf_ = self.idf
        return self._vectorizer

    def features(self, token_lists: Iterable[Sequence[str]]) -> sparse.csr_matrix:
        return self.vectorizer.transform(list(token_lists))

    def predict_proba(self, token_lists: Iterable[Sequence[str]]) -> np.ndarray:
        scores = np.asarray(self.features(token_lists) @ self.coef.T, dtype=np.float64) + self.intercept
        if self.num_classes == 2:  # one logit, as the LSTM's binary head
            p = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            return np.stack([1 - p, p], axis=1)
        scores -= scores.max(axis=1, keepdims=True)
        e = np.exp(scores)
        return e / e.sum(axis=1, keepdims=True)

    def describe(self) -> str:
        return f"tfidf(1-{self.ngram_max}-grams) + logistic regression (C={self.c})"

    def save(self, folder: str | Path) -> None:
        from safetensors.numpy import save

        folder = Path(folder)
        meta = {"ngram_max": self.ngram_max, "num_classes": self.num_classes, "c": self.c, "ngrams": self.ngrams}
        write_text(folder / FILES[0], json.dumps(meta, ensure_ascii=False))
        with atomic_open(folder / FILES[1]) as f:
            f.write(save({"idf": self.idf, "coef": self.coef, "intercept": self.intercept}))

    @classmethod
    def load(cls, folder: str | Path) -> LinearModel | None:
        """The folder's linear model, or None when it has none (models saved before it existed)."""
        from safetensors.numpy import load_file

        folder = Path(folder)
        if not (folder / FILES[0]).is_file():
            return None
        meta = json.loads((folder / FILES[0]).read_text(encoding="utf-8"))
        t = load_file(folder / FILES[1])
        return cls(meta["ngrams"], t["idf"], t["coef"], t["intercept"], meta["num_classes"], meta["ngram_max"],
                   meta["c"])
