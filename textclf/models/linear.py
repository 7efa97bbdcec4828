"""The linear view of a text: n-gram features + logistic regression, on the LSTM's own tokens.

Kinds (`KINDS`), one class:
- "tfidf": TF-IDF over word 1-2-grams (sublinear tf, n-grams in 2+ texts), C=4. It is `textclf baseline`.
- "nb": which of 1-3-grams a text holds, each weighted by its naive-Bayes log-count ratio between the two
  classes, C=1 (NBSVM's features, Wang & Manning 2012; two classes only). On long reviews it is the stronger
  view, on tweets the weaker: a run fits both and keeps the one with the lower validation loss
  (`ensemble.fit_linear_view`).
- "char_tfidf", "char_nb": the same over character 1-3-grams of the text the tokens cover, for scripts
  written without spaces (Chinese, Japanese, Thai), where they are the strongest classic model; there
  `textclf baseline` is char_tfidf (C=8).
- "tfidf_wordchar": TF-IDF over word 1-2-grams beside TF-IDF over the character 2-5-grams inside each word
  (scikit-learn's "char_wb": a word padded with a space each side), each L2-normalised on its own, one logistic
  regression, C=4. Misspellings, elongations and word forms share features ("soooo", "delayed"/"delays"): on
  short informal texts (tweets) it scores above the word view; a candidate for small corpora only
  (`WORDCHAR_MAX_TOKENS`), where its many n-grams cost little.
Inside a trained model it is the second opinion the LSTM's probabilities are averaged with (`calibration`):
on a few hundred rows it carries the model, on many it adds what a bag of n-grams sees and the LSTM misses.
Saved as JSON (the n-grams) + safetensors (the numbers), no pickle.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from ..files import atomic_open, write_text
from ..text.tokenizer import without_spaces

FILES = ("linear.json", "linear.safetensors")
# weighting: TF-IDF, or naive-Bayes log-count ratios (two classes); unit: n-grams of tokens, or of the characters
# the tokens are made of
KINDS = {"tfidf": {"weighting": "tfidf", "unit": "word", "ngram_max": 2, "c": 4.0},
         "nb": {"weighting": "nb", "unit": "word", "ngram_max": 3, "c": 1.0},
         "char_tfidf": {"weighting": "tfidf", "unit": "char", "ngram_max": 3, "c": 8.0},
         "char_nb": {"weighting": "nb", "unit": "char", "ngram_max": 3, "c": 1.0},
         "tfidf_wordchar": {"weighting": "tfidf", "unit": "word", "ngram_max": 2, "c": 4.0, "chars": (2, 5)}}
# The word-and-character view is a candidate up to this many train tokens: tweets and short reviews by the thousand
# (all 11,712 airline tweets: ~240k). Above it the word views have the data they need, and character n-grams of
# many long texts (IMDB: ~6M tokens) would cost minutes and gigabytes.
WORDCHAR_MAX_TOKENS = 1_000_000
CHAR_MARK = "\x1f"  # starts a character n-gram's name: a tokenizer's tokens never hold it (it is white space)


def word_grams(ngrams: Sequence[str]) -> int:
    """How many of a view's n-grams are word n-grams: all of them, or in a word-and-character view the first ones
    (`_WordsAndChars`' columns), the character n-grams after them."""
    return sum(not g.startswith(CHAR_MARK) for g in ngrams)


def kinds_for(tokenizer_kind: str, num_classes: int, train_tokens: int | None = None) -> list[str]:
    """The linear views worth fitting (`ensemble.fit_linear_view` keeps the best on validation): TF-IDF, and for
    two classes the naive-Bayes weighting; over characters too where the script is written without spaces; words
    and the characters inside them on a corpus of at most `WORDCHAR_MAX_TOKENS` train tokens (None: not known)."""
    units = ["", "char_"] if without_spaces(tokenizer_kind) else [""]
    weightings = ["tfidf", "nb"] if num_classes == 2 else ["tfidf"]
    small = train_tokens is not None and train_tokens <= WORDCHAR_MAX_TOKENS
    wordchar = ["tfidf_wordchar"] if small and not without_spaces(tokenizer_kind) else []
    return [unit + weighting for unit in units for weighting in weightings] + wordchar


def tfidf_kind(tokenizer_kind: str) -> str:
    """The TF-IDF view for a tokenizer (`textclf baseline`): over words, or characters for scripts without spaces."""
    return "char_tfidf" if without_spaces(tokenizer_kind) else "tfidf"
_BITS = 21  # per token id in an n-gram's integer key: up to 2M distinct words, 3 of them in 63 bits
# Texts scored at a time (`LinearModel.scores`): a text's scores do not depend on the others, and the n-gram arrays
# of a longer list (several int64 arrays of all its n-grams) only cost memory and, on a first call, time: all of
# IMDB's test reviews at once scored far slower than in batches (figures: benchmarks/README.md)
SCORE_CHUNK = 4096


class NgramIndex:
    """The features' n-grams as integer keys, so a batch of texts becomes a sparse matrix in a few numpy
    passes instead of a Python loop over every n-gram of every text (scikit-learn's vectorizers).

    Each word of the n-grams gets an id; an n-gram's key packs its words' ids + 1 into 21-bit fields, so
    keys of different lengths never collide. Texts are turned into keys with the same packing, and the
    keys found among the features' are the text's columns: looked up in hash tables (pandas Indexes), not by
    a binary search (`np.searchsorted`) over the sorted keys, which misses the cache on nearly every step of a
    large view (figures: benchmarks/README.md). One table per n-gram length: a text's n-grams of each length are
    looked up in a table of that length's keys alone, smaller, so missing the cache less than one table for all.
    """

    def __init__(self, ngrams: list[str], ngram_max: int):
        words: dict[str, int] = {}
        keys = np.empty(len(ngrams), dtype=np.int64)
        lengths = np.empty(len(ngrams), dtype=np.int64)
        for col, gram in enumerate(ngrams):
            key = 0
            parts = gram.split(" ")
            for word in parts:
                key = (key << _BITS) | (words.setdefault(word, len(words)) + 1)
            keys[col], lengths[col] = key, len(parts)
        self.words, self.ngram_max, self.size = words, ngram_max, len(ngrams)
        # per length n: its n-grams' keys (unique: the packing is one-to-one) and their columns
        self.tables = [(pd.Index(keys[cols]), cols)
                       for cols in (np.flatnonzero(lengths == n) for n in range(1, ngram_max + 1))]

    @staticmethod
    def fits(ngrams: list[str]) -> bool:
        """Whether the n-grams' words fit the packing (fewer than 2M distinct words, no word holding a space)."""
        return len({w for g in ngrams for w in g.split(" ")}) < (1 << _BITS) - 1

    def tally(self, token_lists: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(text, column, count): each feature n-gram found in a text, in text then column order, and how often
        it occurs there. The occurrences are grouped by sorting their (text, column) pairs, one int64 each:
        numpy's sort is vectorised, faster than hashing them (`pd.factorize`) or scipy's COO → CSR conversion and
        its sorting (figures: benchmarks/README.md)."""
        return _grouped(*self.occurrences(token_lists), self.size)

    def occurrences(self, token_lists: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(text, column) of every occurrence of a feature n-gram."""
        lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
        ids = np.fromiter(map(self.words.get, chain.from_iterable(token_lists), repeat(-1)), dtype=np.int64,
                          count=int(lengths.sum())) + 1  # 0: a word in no feature n-gram
        doc = np.repeat(np.arange(len(token_lists), dtype=np.int64), lengths)
        docs, cols = [], []
        key = np.zeros(len(ids), dtype=np.int64)
        ok = np.ones(len(ids), dtype=bool)
        for n in range(1, self.ngram_max + 1):
            m = len(ids) - n + 1  # n-grams starting at position i < m
            if m <= 0:
                break
            key = (key[:m] << _BITS) | ids[n - 1 :]
            ok = ok[:m] & (ids[n - 1 :] > 0) & (doc[:m] == doc[n - 1 :])  # known words, inside one text
            table, columns = self.tables[n - 1]
            at = table.get_indexer(key[ok])  # -1: not a feature
            hit = at >= 0
            docs.append(doc[:m][ok][hit])
            cols.append(columns[at[hit]])
        empty = np.zeros(0, dtype=np.int64)
        return (np.concatenate(docs), np.concatenate(cols)) if docs else (empty, empty)


def _grouped(doc: np.ndarray, col: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Occurrences (text, column) → (text, column, count), in text then column order (`NgramIndex.tally`)."""
    pair, count = np.unique(doc * size + col, return_counts=True)
    return pair // size, pair % size, count


class WordCharIndex:
    """The word-and-character view's n-grams (`_WordsAndChars`' columns: word n-grams, then character n-grams
    inside words) found in texts in a few numpy passes, as `NgramIndex` finds word n-grams: the word block through
    an `NgramIndex`, the character block word by word, each distinct word's columns looked up once and kept
    (`CACHED_WORDS` of them), so a text's character n-grams cost a gather, not a Python loop over them."""

    CACHED_WORDS = 200_000

    def __init__(self, ngrams: list[str], ngram_max: int, chars: tuple[int, int]):
        split = word_grams(ngrams)
        self.words = NgramIndex(ngrams[:split], ngram_max)
        self.char_columns = {g[len(CHAR_MARK):]: split + i for i, g in enumerate(ngrams[split:])}
        self.chars, self.size, self._cached = chars, len(ngrams), {}

    @staticmethod
    def fits(ngrams: list[str]) -> bool:
        return NgramIndex.fits(ngrams[: word_grams(ngrams)])

    def _columns(self, word: str) -> np.ndarray:
        cols = self._cached.get(word)
        if cols is None:
            found = [self.char_columns.get(g) for g in char_wb(word, *self.chars)]
            cols = np.array([c for c in found if c is not None], dtype=np.int64)
            if len(self._cached) >= self.CACHED_WORDS:
                self._cached.clear()
            self._cached[word] = cols
        return cols

    def tally(self, token_lists: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(text, column, count) of both blocks, as `NgramIndex.tally`."""
        word_doc, word_col = self.words.occurrences(token_lists)
        ids: dict[str, int] = {}
        token_id = np.fromiter((ids.setdefault(t, len(ids)) for t in chain.from_iterable(token_lists)), dtype=np.int64)
        per_word = [self._columns(w) for w in ids]
        lengths = np.fromiter(map(len, per_word), dtype=np.int64, count=len(per_word))
        flat = np.concatenate(per_word) if per_word else np.zeros(0, dtype=np.int64)
        starts = np.cumsum(lengths) - lengths
        n = lengths[token_id]  # each token's character n-grams found
        within = np.arange(int(n.sum()), dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
        char_col = flat[np.repeat(starts[token_id], n) + within]
        texts = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
        char_doc = np.repeat(np.repeat(np.arange(len(token_lists), dtype=np.int64), texts), n)
        return _grouped(np.concatenate([word_doc, char_doc]), np.concatenate([word_col, char_col]), self.size)


def _occurrences(columns: dict[str, int], ngram_max: int, units: Sequence[str]) -> list[tuple[int, int, int]]:
    """(column, start, n) of every feature n-gram (n-gram → column: `columns`) occurring in `units` (one text's
    words, or characters)."""
    found = []
    for n in range(1, ngram_max + 1):
        for start in range(len(units) - n + 1):
            col = columns.get(" ".join(units[start : start + n]))
            if col is not None:
                found.append((col, start, n))
    return found


def units(tokens: Sequence[str], unit: str) -> Sequence[str]:
    """What a view's n-grams are made of: the tokens themselves, or the characters they hold (a text in a script
    without spaces reads as its characters; tokens are joined with nothing between them)."""
    return tokens if unit == "word" else list("".join(tokens))


def char_wb(word: str, lo: int, hi: int) -> list[str]:
    """The character lo..hi-grams of one word padded with a space each side, as scikit-learn's
    analyzer="char_wb" makes them (the padded word itself, once, where it is no longer than n)."""
    padded, out = f" {word} ", []
    for n in range(lo, hi + 1):
        if len(padded) <= n:
            out.append(padded)
            break
        out += [padded[i : i + n] for i in range(len(padded) - n + 1)]
    return out


def _analyzer(ngram_max: int):
    def ngrams(tokens: Sequence[str]) -> list[str]:
        out = list(tokens)
        for n in range(2, ngram_max + 1):
            out += [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        return out

    return ngrams


def _char_analyzer(chars: tuple[int, int]):
    def ngrams(tokens: Sequence[str]) -> list[str]:
        return [g for tok in tokens for g in char_wb(tok, *chars)]

    return ngrams


def _sklearn(kind: str, analyzer, **kwargs):
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    if kind == "tfidf":
        return TfidfVectorizer(analyzer=analyzer, sublinear_tf=True, dtype=np.float32, **kwargs)
    return CountVectorizer(analyzer=analyzer, binary=kind != "count", dtype=np.float32, **kwargs)


def _vectorizer(kind: str, ngram_max: int, chars: tuple[int, int] | None = None, **kwargs):
    """scikit-learn's vectorizer of a view: "tfidf", "nb" (binary counts) or "count", over word 1-`ngram_max`-grams;
    with `chars` (the lengths of the character n-grams inside each word), beside those (`_WordsAndChars`)."""
    if chars:
        return _WordsAndChars(kind, ngram_max, chars, **kwargs)
    return _sklearn(kind, _analyzer(ngram_max), **kwargs)


class _WordsAndChars:
    """The word-and-character view's vectorizer: scikit-learn's over word n-grams and over the character n-grams
    inside words (`char_wb`), side by side, each weighted and L2-normalised on its own (TF-IDF), so a text's many
    character n-grams do not shrink the values of its few word n-grams. Columns: the word n-grams, then the
    character ones, named with `CHAR_MARK` in front (`vocabulary`: such names, in that order)."""

    def __init__(self, kind: str, ngram_max: int, chars: tuple[int, int], vocabulary: list[str] | None = None,
                 **kwargs):
        known = ({}, {})
        if vocabulary is not None:
            split = word_grams(vocabulary)
            char_grams = [g[len(CHAR_MARK):] for g in vocabulary[split:]]
            known = ({"vocabulary": vocabulary[:split]}, {"vocabulary": char_grams})
        self.parts = (_sklearn(kind, _analyzer(ngram_max), **known[0], **kwargs),
                      _sklearn(kind, _char_analyzer(chars), **known[1], **kwargs))

    def _words(self) -> int:
        words = self.parts[0]
        return len(words.vocabulary_ if hasattr(words, "vocabulary_") else words.vocabulary)

    def fit_transform(self, docs: list) -> sparse.csr_matrix:
        return sparse.hstack([p.fit_transform(docs) for p in self.parts], format="csr")

    def transform(self, docs: list) -> sparse.csr_matrix:
        return sparse.hstack([p.transform(docs) for p in self.parts], format="csr")

    def set_params(self, **params) -> None:
        for p in self.parts:
            p.set_params(**params)

    @property
    def idf_(self) -> np.ndarray:
        return np.concatenate([p.idf_ for p in self.parts])

    @idf_.setter
    def idf_(self, value: np.ndarray) -> None:
        n = self._words()
        self.parts[0].idf_, self.parts[1].idf_ = value[:n], value[n:]

    @property
    def vocabulary_(self) -> dict[str, int]:
        n = self._words()
        return {**self.parts[0].vocabulary_, **{CHAR_MARK + g: n + i for g, i in self.parts[1].vocabulary_.items()}}

    def get_feature_names_out(self) -> np.ndarray:
        words, chars = (p.get_feature_names_out() for p in self.parts)
        return np.concatenate([words.astype(object), np.array([CHAR_MARK + g for g in chars], dtype=object)])


def nb_ratio(x: sparse.csr_matrix, y: np.ndarray) -> np.ndarray:
    """Each feature's log-count ratio log((p / |p|) / (q / |q|)), p and q its counts in class 1 and 0, plus 1."""
    p = np.asarray(x[y == 1].sum(axis=0)).ravel() + 1.0
    q = np.asarray(x[y == 0].sum(axis=0)).ravel() + 1.0
    return np.log((p / p.sum()) / (q / q.sum())).astype(np.float32)


def _weighted(x: sparse.csr_matrix, y: np.ndarray, weighting: str) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Counts [N, F] → what the logistic regression reads, and the per-n-gram scale: sublinear tf x smoothed
    idf, L2-normalised (scikit-learn's TfidfTransformer: what TfidfVectorizer runs), or binary x log-count ratio
    (`x` made binary in place)."""
    from sklearn.feature_extraction.text import TfidfTransformer

    if weighting == "tfidf":
        tfidf = TfidfTransformer(sublinear_tf=True)
        x = tfidf.fit_transform(x)
        return x, tfidf.idf_.astype(np.float32)
    x.data[:] = 1.0
    scale = nb_ratio(x, y)
    return x.multiply(scale).tocsr(), scale


def _fit_rows(counts: sparse.csr_matrix, grams: np.ndarray, rows: np.ndarray, y: np.ndarray, num_classes: int,
              kind: str, settings: dict) -> LinearModel | None:
    """The view `LinearModel.fit` makes of `rows`, from every text's n-gram `counts` (columns: `grams`, those in
    2+ of all the texts): the columns in 2+ of these rows, weighted as `fit` weighs them (`_weighted`). None when
    no n-gram is in 2+ of the rows (`fit` then takes every n-gram)."""
    x = counts[rows]
    keep = np.flatnonzero(np.bincount(x.indices, minlength=x.shape[1]) >= 2)
    if not len(keep):
        return None
    names = [str(g) for g in grams[keep]]
    # the word-and-character view's two blocks (`_WordsAndChars`), each weighted on its own; None: `fit` makes a
    # block of every n-gram when min_df leaves one empty
    blocks = [keep] if not settings.get("chars") else np.split(keep, [word_grams(names)])
    if not all(len(b) for b in blocks):
        return None
    parts = [_weighted(x[:, b].tocsr(), y[rows], settings["weighting"]) for b in blocks]
    x, scale = sparse.hstack([p[0] for p in parts], format="csr"), np.concatenate([p[1] for p in parts])
    return LinearModel.from_features(x, y[rows], names, scale, num_classes, kind, settings)


@dataclass(frozen=True)
class ViewSettings:
    """What a view was fitted with, as linear.json keeps it: its kind (`KINDS`), its longest n-gram, and C, the
    inverse regularisation strength of its logistic regression."""

    kind: str = "tfidf"
    ngram_max: int = 2
    c: float = 4.0


class LinearModel:
    """`fit` on token lists and class ids; `predict_proba` on token lists → [N, C] (C = 2 for binary).

    `scale`: per n-gram, the idf ("tfidf") or the log-count ratio ("nb").
    """

    def __init__(self, ngrams: list[str], scale: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
                 num_classes: int, settings: ViewSettings | None = None):
        self.ngrams, self.scale, self.coef, self.intercept = ngrams, scale, coef, intercept
        settings = settings or ViewSettings()
        self.num_classes, self.kind, self.ngram_max, self.c = num_classes, settings.kind, settings.ngram_max, settings.c
        self.weighting, self.unit = KINDS[self.kind]["weighting"], KINDS[self.kind]["unit"]
        self.chars = KINDS[self.kind].get("chars")  # the character n-grams' lengths inside words, or None
        self._vectorizer = None
        self._index = None
        self._columns = None

    @classmethod
    def fit(cls, token_lists: Iterable[Sequence[str]], y: np.ndarray, num_classes: int, kind: str = "tfidf",
            c: float | None = None) -> LinearModel:
        """`c`: the inverse regularisation strength (default: the kind's, see KINDS)."""
        settings = {**KINDS[kind], **({"c": c} if c is not None else {})}
        weighting = settings["weighting"]
        if weighting == "nb" and num_classes != 2:
            raise ValueError("the naive-Bayes view is for two classes")
        docs = [units(t, settings["unit"]) for t in token_lists]
        vectorizer = _vectorizer(weighting, settings["ngram_max"], settings.get("chars"), min_df=2)
        try:
            x = vectorizer.fit_transform(docs)
        except ValueError:  # min_df leaves no n-gram (a handful of rows): every text counts once then
            vectorizer.set_params(min_df=1)
            x = vectorizer.fit_transform(docs)
        scale = vectorizer.idf_.astype(np.float32) if weighting == "tfidf" else nb_ratio(x, y)
        if weighting == "nb":
            x = x.multiply(scale).tocsr()
        ngrams = [""] * len(vectorizer.vocabulary_)
        for gram, i in vectorizer.vocabulary_.items():
            ngrams[i] = gram
        model = cls.from_features(x, y, ngrams, scale, num_classes, kind, settings)
        model._vectorizer = vectorizer
        return model

    @classmethod
    def from_features(cls, x: sparse.csr_matrix, y: np.ndarray, ngrams: list[str], scale: np.ndarray,
                      num_classes: int, kind: str, settings: dict) -> LinearModel:
        """The view whose logistic regression (C: settings["c"]) is fitted on `x`, the weighted n-grams."""
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=settings["c"], max_iter=1000).fit(x, y)
        coef = np.ascontiguousarray(clf.coef_, dtype=np.float32)  # multinomial: Fortran order; rows read per class
        return cls(ngrams, scale, coef, clf.intercept_.astype(np.float32), num_classes,
                   ViewSettings(kind, settings["ngram_max"], settings["c"]))

    @property
    def vectorizer(self):
        if self._vectorizer is None:
            self._vectorizer = _vectorizer(self.weighting, self.ngram_max, self.chars, vocabulary=self.ngrams)
            if self.weighting == "tfidf":
                self._vectorizer.idf_ = self.scale
        return self._vectorizer

    def _docs(self, token_lists: Iterable[Sequence[str]]) -> tuple[list, NgramIndex | None]:
        """The texts as lists of the units their n-grams are made of, and the n-gram index (built on first use;
        None when the n-grams' words do not fit it: scikit-learn's slower vectorizer then)."""
        docs = [units(t, self.unit) for t in token_lists] if self.unit != "word" else (
            token_lists if isinstance(token_lists, list) else list(token_lists))
        if self._index is None and self.chars and WordCharIndex.fits(self.ngrams):
            self._index = WordCharIndex(self.ngrams, self.ngram_max, self.chars)
        elif self._index is None and not self.chars and NgramIndex.fits(self.ngrams):
            self._index = NgramIndex(self.ngrams, self.ngram_max)
        return docs, self._index

    def features(self, token_lists: Iterable[Sequence[str]]) -> sparse.csr_matrix:
        """What the logistic regression reads: binary counts x log-count ratios ("nb"), or sublinear tf x idf,
        L2-normalised per text ("tfidf"), exactly as scikit-learn's vectorizers compute them."""
        docs, index = self._docs(token_lists)
        if index is None:
            x = self.vectorizer.transform(docs)
            return x.multiply(self.scale).tocsr() if self.weighting == "nb" else x
        doc, col, count = index.tally(docs)
        indptr = np.zeros(len(docs) + 1, dtype=np.int64)
        np.cumsum(np.bincount(doc, minlength=len(docs)), out=indptr[1:])
        return sparse.csr_matrix((self._values(doc, col, count, len(docs)).astype(np.float32), col, indptr),
                                 shape=(len(docs), len(self.ngrams)))

    def scores(self, token_lists: Iterable[Sequence[str]]) -> np.ndarray:
        """[N, 1] (two classes) or [N, C] logits: `features(...) @ coef.T + intercept`, without a sparse matrix.
        Each text's sum over its n-grams (`NgramIndex.tally`) is a `np.bincount` per class, in float64."""
        docs, index = self._docs(token_lists)
        if index is None:  # `docs` are units already: made units again, they stay the same
            return np.asarray(self.features(docs) @ self.coef.T, dtype=np.float64) + self.intercept
        if len(docs) > SCORE_CHUNK:
            return np.concatenate([self._scores(index, docs[i : i + SCORE_CHUNK])
                                   for i in range(0, len(docs), SCORE_CHUNK)])
        return self._scores(index, docs)

    def _values(self, doc: np.ndarray, col: np.ndarray, count: np.ndarray, texts: int) -> np.ndarray:
        """What the logistic regression reads of each (text, column, count) of a tally (float64): the log-count ratio
        ("nb": present once or more), or sublinear tf x idf, L2-normalised per text ("tfidf"): per text and block,
        where the view has a block of character n-grams beside its word n-grams (`_WordsAndChars`)."""
        value = self.scale[col].astype(np.float64)
        if self.weighting == "tfidf":
            value *= 1.0 + np.log(count)
            blocks = 2 if self.chars else 1
            group = doc * 2 + (col >= self._words) if self.chars else doc
            norms = np.sqrt(np.bincount(group, value * value, minlength=blocks * texts))
            value /= norms[group]  # a text with a pair has a norm > 0
        return value

    @functools.cached_property
    def _words(self) -> int:
        """How many of the columns are word n-grams (the rest: character n-grams inside words)."""
        return word_grams(self.ngrams)

    def _scores(self, index: NgramIndex | WordCharIndex, docs: Sequence[Sequence[str]]) -> np.ndarray:
        doc, col, count = index.tally(docs)
        value = self._values(doc, col, count, len(docs))
        return np.stack([np.bincount(doc, value * c[col], minlength=len(docs)) for c in self.coef],
                        axis=1) + self.intercept

    def predict_proba(self, token_lists: Iterable[Sequence[str]]) -> np.ndarray:
        scores = self.scores(token_lists)
        if self.num_classes == 2:  # one logit, as the LSTM's binary head
            p = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            return np.stack([1 - p, p], axis=1)
        scores -= scores.max(axis=1, keepdims=True)
        e = np.exp(scores)
        return e / e.sum(axis=1, keepdims=True)

    @classmethod
    def cross_fit(cls, token_lists: Sequence[Sequence[str]], y: np.ndarray, folds: np.ndarray, num_classes: int,
                  kind: str, c: float) -> tuple[LinearModel, np.ndarray]:
        """The view of `kind` and `c` fitted on every row, and [N, C] out-of-fold probabilities: a row of fold
        k >= 0 scored by the view fitted on every row not in fold k (rows of fold -1 are always fitted on, and
        left NaN). Each view is the one `fit` makes of its rows, n-grams in 2+ of them, its own idf or
        log-count ratios, up to float rounding; the texts' n-grams are counted once for all of them, and counting
        is most of a fit's time."""
        settings = {**KINDS[kind], "c": c}
        docs = [units(t, settings["unit"]) for t in token_lists]
        counter = _vectorizer("count", settings["ngram_max"], settings.get("chars"), min_df=2)
        try:
            counts = counter.fit_transform(docs).tocsr()
        except ValueError:  # no n-gram in 2+ texts: `fit` falls back to every n-gram then
            counts = None
        grams = counter.get_feature_names_out() if counts is not None else None

        def fit_on(rows: np.ndarray) -> LinearModel:
            view = _fit_rows(counts, grams, rows, y, num_classes, kind, settings) if counts is not None else None
            return view if view is not None else cls.fit([token_lists[i] for i in rows], y[rows], num_classes, kind, c)

        out = np.full((len(docs), num_classes), np.nan)
        for k in np.unique(folds[folds >= 0]):
            held = np.flatnonzero(folds == k)
            out[held] = fit_on(np.flatnonzero(folds != k)).predict_proba([token_lists[i] for i in held])
        return fit_on(np.arange(len(docs))), out

    def token_weights(self, tokens: Sequence[str], target: int) -> tuple[np.ndarray, float]:
        """Each token's exact share of the text's score, and the intercept: the weights add up to the score less
        the intercept. The score is the log-odds of class 1 (two classes) or the logit of class `target` (more);
        each feature n-gram's term (its value times its coefficient) is split evenly over its occurrences in the
        text, and each occurrence over the tokens it covers."""
        row = 0 if self.num_classes == 2 else target
        x = self.features([list(tokens)])
        value = dict(zip(x.indices.tolist(), x.data.tolist(), strict=True))
        if self._columns is None:  # built on the first explanation: a dict of every n-gram
            self._columns = {gram: i for i, gram in enumerate(self.ngrams)}
        parts = units(tokens, self.unit)
        found = _occurrences(self._columns, self.ngram_max, parts)
        if self.chars:  # a character n-gram lies inside one word: all of its share goes to that word
            found += [(col, i, 1) for i, tok in enumerate(tokens) for g in char_wb(tok, *self.chars)
                      if (col := self._columns.get(CHAR_MARK + g)) is not None]
        seen = {}
        for col, _, _ in found:
            seen[col] = seen.get(col, 0) + 1
        weights = np.zeros(len(parts))
        for col, start, n in found:
            weights[start : start + n] += value.get(col, 0.0) * float(self.coef[row, col]) / seen[col] / n
        if self.unit == "char":  # each character's weight to the token it belongs to
            owner = np.repeat(np.arange(len(tokens)), [len(tok) for tok in tokens])
            weights = np.bincount(owner, weights, minlength=len(tokens))
        return weights, float(self.intercept[row])

    def describe(self) -> str:
        what = "tfidf" if self.weighting == "tfidf" else "naive-Bayes-weighted"
        grams = "character " if self.unit == "char" else ""
        inside = f" and character {self.chars[0]}-{self.chars[1]}-grams inside words" if self.chars else ""
        return f"{what}({grams}1-{self.ngram_max}-grams{inside}) + logistic regression (C={self.c:g})"

    def save(self, folder: str | Path) -> None:
        from safetensors.numpy import save

        folder = Path(folder)
        meta = {"kind": self.kind, "ngram_max": self.ngram_max, "num_classes": self.num_classes, "c": self.c,
                "ngrams": self.ngrams}
        write_text(folder / FILES[0], json.dumps(meta, ensure_ascii=False))
        # safetensors writes an array's memory as it lies, and scikit-learn's multinomial coef_ is in Fortran order
        arrays = {"scale": self.scale, "coef": self.coef, "intercept": self.intercept}
        with atomic_open(folder / FILES[1]) as f:
            f.write(save({name: np.ascontiguousarray(a) for name, a in arrays.items()}))

    @classmethod
    def load(cls, folder: str | Path) -> LinearModel | None:
        """The folder's linear model, or None when it has none (models saved before it existed)."""
        from safetensors.numpy import load_file

        folder = Path(folder)
        if not (folder / FILES[0]).is_file():
            return None
        meta = json.loads((folder / FILES[0]).read_text(encoding="utf-8"))
        t = load_file(folder / FILES[1])
        scale = t["scale"] if "scale" in t else t["idf"]  # "idf" before the naive-Bayes kind existed
        return cls(meta["ngrams"], scale, t["coef"], t["intercept"], meta["num_classes"],
                   ViewSettings(meta.get("kind", "tfidf"), meta["ngram_max"], meta["c"]))
