"""Whole jobs: `train(cfg)` (data → vocab → model → fit → artifact + metrics) and `evaluate(...)`."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .artifact import load_model, resolve_model_dir, save_model
from .batching import TextDataset, make_loader
from .config import Config, to_dict, to_yaml
from .data import Split, load_splits, stratified_split
from .errors import TextclfError
from .fields import Tokenized, tokenize_cached
from .io import write_json, write_text
from .metrics import compute, format_report
from .model import LSTMClassifier
from .tblog import epoch_logger, log_final, writer_class
from .tokenize import Tokenizer
from .trainer import fit, predict_loader, resolve_device, seed_everything
from .vocab import LabelVocab, Vocab

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Numericalised splits plus the vocabularies built from train."""

    datasets: dict[str, TextDataset]
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
    return Prepared(datasets, vocab, labels, tokenizer, seconds)


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


def evaluate_split(model: LSTMClassifier, loader, device, label_names: list[str], desc: str,
                   plots_dir: Path | None = None) -> dict:
    """Metrics of one split (what `trainer.evaluate` gives), plus its plots when `plots_dir` is set."""
    probs, loss = predict_loader(model, loader, device, desc=desc)
    metrics = {**compute(loader.dataset.labels, probs, label_names), "loss": loss}
    if plots_dir is not None:
        from .plots import plot_evaluation

        plot_evaluation(loader.dataset.labels, probs, label_names, plots_dir, prefix=f"{desc}_")
    return metrics


def train(cfg: Config) -> dict:
    """Train, pick the best validation epoch, save the artifact, report validation and test metrics."""
    run_dir = Path(cfg.run_dir)
    check_run_dir(run_dir, cfg.overwrite)
    summary_writer = writer_class() if cfg.train.tensorboard else None  # a missing extra fails here, early
    seed_everything(cfg.train.seed)
    device = resolve_device(cfg.train.device)
    splits = load_data(cfg)
    data = prepare(cfg, splits)  # every input error is raised by here, before run_dir is touched
    for stale in ("model", "metrics.json", "log.jsonl", "plots", "tb"):
        path = run_dir / stale
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", to_yaml(cfg))

    seed_everything(cfg.train.seed)  # the same initial weights whatever data preparation consumed
    model = build_model(cfg, data.vocab, data.labels)
    pin = device.type == "cuda"
    loaders = {name: make_loader(ds, cfg.train.batch_size if name == "train" else cfg.train.eval_batch_size,
                                 shuffle=name == "train", seed=cfg.train.seed, pin_memory=pin)
               for name, ds in data.datasets.items()}
    log.info("model: %s parameters on %s", f"{sum(p.numel() for p in model.parameters()):,}", device)
    tb = summary_writer(log_dir=str(run_dir / "tb")) if summary_writer else None
    result = fit(model, loaders["train"], loaders["validation"], cfg.train, device, data.labels.names,
                 log_path=run_dir / "log.jsonl", on_epoch=epoch_logger(tb) if tb else None)
    save_model(run_dir / "model", model, data.vocab, data.labels, data.tokenizer, cfg.data.max_length,
               cfg.data.truncate, extra={"data": {"text_column": cfg.data.text_column,
                                                  "label_column": cfg.data.label_column},
                                         "train_config": to_dict(cfg)})
    metrics = {"best_epoch": result.best_epoch, "epochs_run": len(result.history),
               "train_seconds": round(result.seconds, 1), "tokenize_seconds": round(data.tokenize_seconds, 1),
               "device": str(device)}
    plots_dir = run_dir / "plots"
    for name in ("validation", "test"):
        if name in loaders:
            metrics[name] = evaluate_split(model, loaders[name], device, data.labels.names, name, plots_dir)
            log.info("%s", format_report(metrics[name], title=f"{name}:"))
    from .plots import plot_history

    plot_history(result.history, plots_dir, cfg.train.monitor)
    if tb:
        log_final(tb, metrics, result.best_epoch)
        tb.close()
    log.info("plots: %s", plots_dir)
    write_json(run_dir / "metrics.json", metrics)  # last: its presence marks a finished run
    return metrics


def evaluate(model_dir: str, data: str, split: str = "test", text_column: str | None = None,
             label_column: str | None = None, output: str | None = None, device: str = "auto",
             batch_size: int = 256, cache_dir: str | None = None, plots: str | None = None) -> dict:
    """Evaluate a saved model on a split of a dataset folder, a file, or "imdb"; `plots`: a folder for PNGs."""
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
    metrics = evaluate_split(art.model, loader, dev, art.labels.names, split, Path(plots) if plots else None)
    metrics = {"model": str(resolve_model_dir(model_dir)), "data": str(data), "split": split, **metrics}
    if output:
        write_json(output, metrics)
    return metrics

