"""Word vectors pretrained with gensim's word2vec on the training (and unlabelled) texts, to start the embedding."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import atomic_open, default_cache_dir
from ..text.tokens import Tokenized
from ..text.vocab import Vocab

log = logging.getLogger(__name__)


class _Sentences:
    """Re-iterable token lists (word2vec reads the corpus once per epoch plus once for its vocabulary)."""

    def __init__(self, corpora: list[Tokenized]):
        self.corpora = corpora

    def __iter__(self) -> Iterator[list[str]]:
        for tok in self.corpora:
            yield from tok.token_lists()


@dataclass(frozen=True)
class Settings:
    """How word2vec trains: vector size, passes, window, seed, and gensim's threads (`workers`: with one the
    vectors are a function of the seed, with more they race and may differ run to run)."""

    dim: int
    epochs: int = 5
    window: int = 5
    seed: int = 0
    workers: int = 1


def word2vec(corpora: list[Tokenized], vocab: Vocab, how: Settings,
             cache_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Skip-gram vectors for `vocab`'s tokens: (vectors [V, dim] float32, found [V] bool).

    Vectors are scaled to unit standard deviation, like `nn.Embedding`'s N(0, 1) start, so the learning
    rate means the same with or without them. Cached by corpus, vocabulary and settings.
    """
    path = cache_path(corpora, vocab, how, cache_dir)
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return centred(z["vectors"], z["found"]), z["found"]
    from gensim.models import Word2Vec  # heavy import, only when pretraining

    start = time.perf_counter()
    model = Word2Vec(_Sentences(corpora), vector_size=how.dim, window=how.window, min_count=1, sg=1, negative=5,
                     sample=1e-4, epochs=how.epochs, seed=how.seed, workers=how.workers)
    vectors = np.zeros((len(vocab), how.dim), dtype=np.float32)
    found = np.zeros(len(vocab), dtype=bool)
    for i, token in enumerate(vocab.itos):
        if token in model.wv.key_to_index:
            vectors[i], found[i] = model.wv[token], True
    vectors[found] /= vectors[found].std()
    log.info("word2vec: %d of %d vocabulary tokens, %d texts, %d epochs, %s%.0fs", found.sum(), len(vocab),
             sum(len(t) for t in corpora), how.epochs, f"{how.workers} threads, " if how.workers > 1 else "",
             time.perf_counter() - start)
    if path is not None:
        with atomic_open(path) as f:
            np.savez(f, vectors=vectors, found=found)
    return centred(vectors, found), found


def cache_path(corpora: list[Tokenized], vocab: Vocab, how: Settings, cache_dir: str | Path | None) -> Path | None:
    """Where `word2vec` keeps these vectors: keyed by the corpus, the vocabulary and the settings (None: a corpus
    without a content key cannot be cached). Vectors of several threads are kept apart from the seed's own
    (one thread), which keep the key they always had."""
    if not all(t.key for t in corpora):
        return None
    settings = (CACHE_VERSION, [t.key for t in corpora], vocab.itos, how.dim, how.epochs, how.window, how.seed)
    key = hashlib.sha256(repr(settings + ((("workers", how.workers),) if how.workers > 1 else ()))
                         .encode("utf-8", errors="surrogatepass")).hexdigest()[:32]
    return Path(cache_dir or default_cache_dir()) / f"word2vec-{key}.npz"


def centred(vectors: np.ndarray, found: np.ndarray) -> np.ndarray:
    """The vectors less their mean and their top principal component, at unit standard deviation again.

    word2vec's vectors share a few dominant directions that encode word frequency, not meaning, and the
    smaller the corpus, the more they dominate: on a few thousand short texts, the top principal component
    (after the mean) holds most of the variance. Scaled up as they are, every word of a small corpus starts
    as nearly the same vector and the LSTM cannot tell words apart. Removing both is
    "all-but-the-top" (Mu & Viswanath 2018, one component per 100 dimensions).
    """
    out = np.zeros_like(vectors)
    if found.sum() > 1:
        v = vectors[found] - vectors[found].mean(axis=0)
        top = np.linalg.svd(v, full_matrices=False)[2][: max(1, v.shape[1] // 100)]
        v = v - (v @ top.T) @ top
        out[found] = v / max(float(v.std()), 1e-12)
    return out


CACHE_VERSION = 1
