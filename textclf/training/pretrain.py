"""Pretraining on the run's own texts before the classifier learns the labels: word2vec vectors that start the
embedding, and the encoder as a bidirectional language model (lm.py). Both cached, keyed by what they read."""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from ..config import Config
from ..data import load_unlabelled, read_split
from ..device import resolve_device
from ..text.tokens import Tokenized, tokenize_cached
from ..threads import cores
from . import distributed, lm
from .optim import amp_dtype
from .prepare import Prepared, file_format, uses_files
from .word2vec import Settings, cache_path, word2vec

log = logging.getLogger(__name__)


@distributed.main_first()
def pretrain_corpora(cfg: Config, data: Prepared) -> list[Tokenized]:
    """The texts pretraining may read: train, plus the unlabelled ones when asked and present (never test).

    Unlabelled texts are the user's own: data.unlabelled, else data.path's unlabelled split when data.path is
    the data (never a dataset the user did not name, e.g. IMDB's for a data.train run).
    """
    d = cfg.data
    corpora = [data.tokens["train"]]
    unlabelled = None
    if cfg.pretrain.unlabelled and d.unlabelled:
        unlabelled = read_split(d.unlabelled, d.text_column, None, d.encoding_errors, file_format(d))
    elif cfg.pretrain.unlabelled and not uses_files(d):
        unlabelled = load_unlabelled(d.path, d.text_column, d.encoding_errors, file_format(d))
    if unlabelled is not None:
        corpora.append(tokenize_cached(unlabelled.texts, data.tokenizer, cfg.data.cache_dir, desc="tokenising unsup"))
    return corpora


@distributed.main_first()
def pretrain_vectors(cfg: Config, data: Prepared, corpora: list[Tokenized]) -> tuple[np.ndarray, np.ndarray]:
    """word2vec vectors for the vocab from `corpora` (cached), and the rows they were found for."""
    p, how = cfg.pretrain, _word2vec_settings(cfg, corpora)
    raised = ""
    if how.epochs > p.epochs:
        capped = f", at most pretrain.max_epochs={p.max_epochs}" if how.epochs == p.max_epochs else ""
        raised = (f", not pretrain.epochs={p.epochs}: the corpus is small for pretrain.min_tokens={p.min_tokens:,}"
                  f"{capped} (pretrain.min_tokens=0 keeps pretrain.epochs)")
    on = (f", {how.workers} threads, so the vectors differ run to run; pretrain.workers=1 keeps the seed's own"
          if how.workers > 1 else "")
    log.info("pretraining word vectors on %s (%d passes%s%s)", " + ".join(f"{len(t):,} texts" for t in corpora),
             how.epochs, raised, on)
    return word2vec(corpora, data.vocab, how, cfg.data.cache_dir)


def word2vec_reads(cfg: Config, data: Prepared, corpora: list[Tokenized]) -> int:
    """How many tokens `pretrain_vectors` will have word2vec read (its passes x the corpus): 0 when the vectors
    are cached."""
    how = _word2vec_settings(cfg, corpora)
    path = cache_path(corpora, data.vocab, how, cfg.data.cache_dir)
    return 0 if path is not None and path.is_file() else how.epochs * sum(len(t.ids) for t in corpora)


def _word2vec_settings(cfg: Config, corpora: list[Tokenized]) -> Settings:
    """This run's word2vec over `corpora`: its passes (`word2vec_epochs`) and threads (`word2vec_workers`) with the
    config's size, window and seed; they key its cache too (`word2vec.cache_path`)."""
    p = cfg.pretrain
    tokens = sum(len(t.ids) for t in corpora)
    return Settings(cfg.model.embedding_dim, word2vec_epochs(p.epochs, p.min_tokens, tokens, p.max_epochs), p.window,
                    cfg.train.seed, word2vec_workers(p.workers, resolve_device(cfg.train.device), tokens))


PARALLEL_TOKENS = 1_000_000  # a corpus this large (per pass) gets several word2vec threads on a GPU machine


def word2vec_workers(workers: int, device: torch.device, corpus_tokens: int) -> int:
    """pretrain.workers, or for 0 (auto): 1 where the classifier trains on the CPU, so the vectors follow the seed
    and a run repeats bit for bit (on 2 cores the second fits the linear view meanwhile), and on a corpus under
    PARALLEL_TOKENS, which word2vec reads in seconds and where its threads' races cost accuracy (on 2,000 tweets);
    on a GPU machine, whose runs do not repeat bit for bit anyway, one a core but one, up to 8 (gensim feeds its
    threads from one Python thread). There word2vec on one thread was most of a cold IMDB run. The figures:
    benchmarks/README.md."""
    if workers:
        return workers
    if device.type == "cpu" or corpus_tokens < PARALLEL_TOKENS:
        return 1
    return max(1, min(8, cores() - 1))


def word2vec_epochs(epochs: int, min_tokens: int, corpus_tokens: int, max_epochs: int = 0) -> int:
    """`epochs` passes, or on a small corpus as many more as it takes to read `min_tokens` tokens, up to
    `max_epochs` (0: no limit): 5 passes over 240k tweet tokens leave word2vec's vectors close to their random
    start, 30 give words neighbours; on a few thousand texts, passes beyond that cost time and buy no accuracy
    (benchmarks/README.md, issue 29)."""
    wanted = -(-min_tokens // max(corpus_tokens, 1))
    return max(epochs, min(wanted, max_epochs) if max_epochs else wanted)


@distributed.main_first()
def pretrain_language_model(cfg: Config, data: Prepared, corpora: list[Tokenized], model: nn.Module,
                            device: torch.device) -> dict:
    """The encoder pretrained as a bidirectional language model on `corpora`, in place (cached; see lm.py)."""
    seqs = [s for tok in corpora for s in tok.numericalize(data.vocab, cfg.data.max_length, cfg.data.truncate)]
    log.info("pretraining the encoder as a language model on %s (%d epochs)",
             " + ".join(f"{len(t):,} texts" for t in corpora), cfg.pretrain.lm_epochs)
    settings = {"epochs": cfg.pretrain.lm_epochs, "lr": cfg.pretrain.lm_lr, "sample": cfg.pretrain.lm_sample,
                "batch_size": cfg.train.batch_size,
                "seed": cfg.train.seed, "max_length": cfg.data.max_length, "truncate": cfg.data.truncate,
                "word2vec": [cfg.pretrain.word2vec, cfg.pretrain.epochs, cfg.pretrain.window]}
    threads = _word2vec_settings(cfg, corpora).workers
    if cfg.pretrain.word2vec and threads > 1:  # vectors of several threads: an LM of its own (one keeps its old key)
        settings["word2vec"].append(threads)
    dtype = amp_dtype(device, cfg.train.amp, cfg.train.amp_cpu, cfg.train.amp_gpu)  # the classifier's precision
    if dtype is not None:  # float32 LMs keep the cache keys they had before mixed precision was an option
        settings["precision"] = str(dtype)
    cache = lm.cache_path([t.key for t in corpora], data.vocab.itos, model.arch, settings, cfg.data.cache_dir)
    how = lm.LMSettings(cfg.pretrain.lm_epochs, cfg.train.batch_size, cfg.pretrain.lm_lr, cfg.train.seed,
                        cfg.pretrain.lm_sample, cfg.train.clip_grad_norm)
    return lm.pretrain_lm(model, seqs, how, device, cache=cache, dtype=dtype)
