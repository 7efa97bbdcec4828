"""Whole jobs: `train(cfg)` (data → vocab → model → fit → artifact + metrics) and `evaluate(...)`."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .artifact import load_model, resolve_model_dir, save_model
from .batching import TextDataset, make_loader
from .config import Config, to_dict, to_yaml
from .data import Split, load_splits, load_unlabelled, stratified_split
from .embeddings import word2vec
from .errors import TextclfError
from .fields import Tokenized, tokenize_cached
from .io import write_json, write_text
from .metrics import format_report
from .model import LSTMClassifier
from .tokenize import Tokenizer
from .trainer import evaluate as evaluate_loader
from .trainer import fit, resolve_device, seed_everything
from .vocab import LabelVocab, Vocab

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Numericalised splits plus the vocabularies built from train."""

    datasets: dict[str, TextDataset]
    tokens: dict[str, Tokenized]
    vocab: Vocab
    labels: LabelVocab
    tokenizer: Tokenizer
    tokenize_seconds: float


def load_data(cfg: Config) -> dict[str, Split]:
    """train / validation / test splits; validation carved from train when the data has none."""
    d = cfg.data
    files = {"train": d.train, "validation": d.validation, "test": d.test}
    splits = load_splits(d.path, files, d.text_column, d.label_column)
    if "train" not in splits:
        raise TextclfError("the data has no train split (set data.train=FILE or name a file train.csv/parquet)")
    if "validation" not in splits:
        train = splits["train"]
        tr, va = stratified_split(train.labels, d.validation_fraction, cfg.train.seed)
        if len(tr) == 0 or len(va) == 0:
            raise TextclfError(f"{train.source} has too few rows ({len(train)}) to carve a validation split")
        pick = lambda idx, name: Split([train.texts[i] for i in idx], [train.labels[i] for i in idx], name)  # noqa: E731
        splits["train"], splits["validation"] = pick(tr, train.source), pick(va, f"{train.source} (validation)")
        log.info("validation: %d rows carved from train (%.0f%%, stratified, seed %d)",
                 len(va), 100 * d.validation_fraction, cfg.train.seed)
    return splits


def prepare(cfg: Config, splits: dict[str, Split]) -> Prepared:
    tokenizer = Tokenizer(cfg.tokenizer.kind, cfg.tokenizer.lowercase)
    start = time.perf_counter()
    tokens = {name: tokenize_cached(s.texts, tokenizer, cfg.data.cache_dir, desc=f"tokenising {name}")
              for name, s in splits.items()}
    seconds = time.perf_counter() - start
    vocab = Vocab.build(tokens["train"].counts(), cfg.vocab.min_freq, cfg.vocab.max_size)
    labels = LabelVocab.from_values(splits["train"].labels)
    if len(labels) < 2:
        raise TextclfError(f"{splits['train'].source} has one class only ({labels.names[0]}); "
                           "a classifier needs at least two (check data.label_column)")
    datasets = {name: encode_split(tok, splits[name], vocab, labels, cfg.data.max_length, cfg.data.truncate)
                for name, tok in tokens.items()}
    n_tokens = int(tokens["train"].offsets[-1])
    log.info("data: %s | vocab %d | labels %s | train tokens %d | tokenised in %.1fs",
             ", ".join(f"{k} {len(v)}" for k, v in datasets.items()), len(vocab), labels.names, n_tokens, seconds)
    return Prepared(datasets, tokens, vocab, labels, tokenizer, seconds)


def pretrain_vectors(cfg: Config, data: Prepared) -> tuple[np.ndarray, np.ndarray]:
    """word2vec over the training texts, plus the unlabelled ones when asked and present (never test)."""
    corpora = [data.tokens["train"]]
    unlabelled = load_unlabelled(cfg.data.path, cfg.data.text_column) if cfg.pretrain.unlabelled else None
    if unlabelled is not None:
        corpora.append(tokenize_cached(unlabelled.texts, data.tokenizer, cfg.data.cache_dir, desc="tokenising unsup"))
    log.info("pretraining word vectors on %s", " + ".join(f"{len(t):,} texts" for t in corpora))
    return word2vec(corpora, data.vocab, cfg.model.embedding_dim, cfg.pretrain.epochs, cfg.pretrain.window,
                    cfg.train.seed, cfg.data.cache_dir)


def encode_split(tok: Tokenized, split: Split, vocab: Vocab, labels: LabelVocab,
                 max_length: int | None, truncate: str) -> TextDataset:
    return TextDataset(tok.numericalize(vocab, max_length, truncate), labels.encode(split.labels, split.source))


def build_model(cfg: Config, vocab: Vocab, labels: LabelVocab) -> LSTMClassifier:
    m = cfg.model
    model = LSTMClassifier(len(vocab), len(labels), m.embedding_dim, m.hidden_size, m.num_layers,
                           m.bidirectional, m.dropout, m.embedding_dropout, m.pooling)
    model.lstm_impl = cfg.train.lstm_impl
    return model


def check_run_dir(run_dir: Path, overwrite: bool) -> None:
    if (run_dir / "metrics.json").exists() and not overwrite:
        raise TextclfError(f"{run_dir} already holds a finished run; pass overwrite=true or another run_dir=DIR")


def train(cfg: Config) -> dict:
    """Train, pick the best validation epoch, save the artifact, report validation and test metrics."""
    run_dir = Path(cfg.run_dir)
    check_run_dir(run_dir, cfg.overwrite)
    seed_everything(cfg.train.seed)
    device = resolve_device(cfg.train.device)
    splits = load_data(cfg)
    data = prepare(cfg, splits)
    vectors = pretrain_vectors(cfg, data) if cfg.pretrain.word2vec else None
    # every input error is raised by here, before run_dir is touched
    for stale in ("model", "metrics.json", "log.jsonl"):
        path = run_dir / stale
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", to_yaml(cfg))

    seed_everything(cfg.train.seed)  # the same initial weights whatever data preparation consumed
    model = build_model(cfg, data.vocab, data.labels)
    if vectors is not None:
        with torch.no_grad():
            model.embedding.weight[vectors[1]] = torch.from_numpy(vectors[0][vectors[1]])
    pin = device.type == "cuda"
    loaders = {name: make_loader(ds, cfg.train.batch_size if name == "train" else cfg.train.eval_batch_size,
                                 shuffle=name == "train", seed=cfg.train.seed, pin_memory=pin)
               for name, ds in data.datasets.items()}
    log.info("model: %s parameters on %s", f"{sum(p.numel() for p in model.parameters()):,}", device)
    result = fit(model, loaders["train"], loaders["validation"], cfg.train, device, data.labels.names,
                 log_path=run_dir / "log.jsonl")
    save_model(run_dir / "model", model, data.vocab, data.labels, data.tokenizer, cfg.data.max_length,
               cfg.data.truncate, extra={"data": {"text_column": cfg.data.text_column,
                                                  "label_column": cfg.data.label_column},
                                         "train_config": to_dict(cfg)})
    metrics = {"best_epoch": result.best_epoch, "epochs_run": len(result.history),
               "train_seconds": round(result.seconds, 1), "tokenize_seconds": round(data.tokenize_seconds, 1),
               "device": str(device)}
    for name in ("validation", "test"):
        if name in loaders:
            metrics[name] = evaluate_loader(model, loaders[name], device, data.labels.names, desc=name)
            log.info("%s", format_report(metrics[name], title=f"{name}:"))
    write_json(run_dir / "metrics.json", metrics)
    return metrics


def evaluate(model_dir: str, data: str, split: str = "test", text_column: str | None = None,
             label_column: str | None = None, output: str | None = None, device: str = "auto",
             batch_size: int = 256, cache_dir: str | None = None) -> dict:
    """Evaluate a saved model on a split of a dataset folder, a file, or "imdb"."""
    dev = resolve_device(device)
    art = load_model(resolve_model_dir(model_dir), dev)
    columns = art.meta.get("data", {})
    text_column = text_column or columns.get("text_column", "text")
    label_column = label_column or columns.get("label_column", "label")
    splits = load_splits(data, None, text_column, label_column, splits=(split,))
    if split not in splits:
        raise TextclfError(f"{data} has no {split} split (pass --split, or a file)")
    part = splits[split]
    tok = tokenize_cached(part.texts, art.tokenizer, cache_dir, desc=f"tokenising {split}")
    ds = encode_split(tok, part, art.vocab, art.labels, art.max_length, art.truncate)
    loader = make_loader(ds, batch_size, shuffle=False, pin_memory=dev.type == "cuda")
    metrics = evaluate_loader(art.model, loader, dev, art.labels.names, desc=split)
    metrics = {"model": str(resolve_model_dir(model_dir)), "data": str(data), "split": split, **metrics}
    if output:
        write_json(output, metrics)
    return metrics

