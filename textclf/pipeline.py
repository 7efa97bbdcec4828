"""Whole jobs: `train(cfg)` (data → vocab → model → fit → artifact + metrics) and `evaluate(...)`."""

from __future__ import annotations

import copy
import gc
import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import checkpoint, distributed, finetune, lm
from .artifact import Artifact, load_model, resolve_model_dir, save_model
from .batching import TextDataset, make_loader
from .calibration import combine, expected_calibration_error, fit_temperature, fit_weight, log_loss
from .config import PREDICT_BATCH_SIZE, Config, DataConfig, check_finetune, to_dict, to_yaml
from .data import Split, apply_label_map, check_text_file, load_splits, load_unlabelled, read_split, stratified_split
from .embeddings import word2vec
from .errors import TextclfError
from .files import write_json, write_text
from .inference import predict_loader, resolve_device
from .linear import LinearModel
from .metrics import compute, decide, format_report
from .model import build_model
from .modelcard import write_card
from .optim import amp_dtype, release_memory
from .tblog import epoch_logger, log_final, writer_class
from .tokenizer import Tokenizer
from .tokens import Tokenized, tokenize_cached
from .trainer import balanced_class_weights, deterministic, fit, seed_everything
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
    init_from: dict | None = None  # what fine-tuning kept (head, OOV rates), when it started from a model


def file_format(d: DataConfig) -> dict:
    """How to read the user's files (None: detect): data.encoding, data.delimiter, data.sheet."""
    return {"encoding": d.encoding, "delimiter": d.delimiter, "sheet": d.sheet}


def uses_files(d: DataConfig) -> bool:
    """data.train / validation / test name the data: data.path is then not read at all."""
    return bool(d.train or d.validation or d.test)


def load_data(cfg: Config) -> dict[str, Split]:
    """train / validation / test splits; validation carved from train when the data has none."""
    d = cfg.data
    files = {"train": d.train, "validation": d.validation, "test": d.test}
    if uses_files(d) and d.path:
        log.info("data.train/validation/test are given: data.path (%s) is not read", d.path)
    if d.unlabelled:  # checked now, before the run folder is touched, though only pretraining reads it
        check_text_file(d.unlabelled, d.text_column, d.encoding_errors, **file_format(d))
        if not (cfg.pretrain.unlabelled and (cfg.pretrain.word2vec or cfg.pretrain.lm_epochs)) or cfg.init_from:
            log.warning("data.unlabelled is read by pretraining only (pretrain.word2vec or pretrain.lm_epochs, with "
                        "pretrain.unlabelled, from scratch): this run does not read it")
    names = {"train": d.train_split, "validation": d.validation_split, "test": d.test_split}
    splits = load_splits(None if uses_files(d) else d.path, files, d.text_column, d.label_column,
                         encoding_errors=d.encoding_errors, split_names=names, streaming=d.streaming,
                         **file_format(d))
    splits = {name: apply_label_map(split, d.label_map) for name, split in splits.items()}
    if "train" not in splits:
        raise TextclfError("the data has no train split (set data.train=FILE or name a file train.csv/parquet)")
    if "validation" not in splits:
        train = splits["train"]
        fraction = carve_fraction(len(train), d.validation_fraction)
        try:
            tr, va = stratified_split(train.labels, fraction, cfg.train.seed)
        except ValueError:  # scikit-learn's way of saying the split would leave train empty
            tr, va = [], []
        if len(tr) == 0 or len(va) == 0:
            raise TextclfError(f"{train.source} has too few rows ({len(train)}) to carve a validation split "
                               "(add rows, or pass data.validation=FILE)")
        pick = lambda idx, name: Split([train.texts[i] for i in idx], [train.labels[i] for i in idx], name)  # noqa: E731
        splits["train"], splits["validation"] = pick(tr, train.source), pick(va, f"{train.source} (validation)")
        log.info("validation: %d rows carved from train (%.0f%%, stratified, seed %d)",
                 len(va), 100 * fraction, cfg.train.seed)
    if len(splits["validation"]) < 100:
        log.warning("validation has %d rows: its accuracy moves in steps of %.1f%%, so small differences are noise",
                    len(splits["validation"]), 100 / len(splits["validation"]))
    return splits


VALIDATION_ROWS, MAX_FRACTION = 200, 0.3


def carve_fraction(rows: int, fraction: float) -> float:
    """The share of train carved off for validation: `fraction`, but on small data as much as gives
    validation 200 rows, up to 30%: validation picks the epoch, the LSTM's share and the temperature, and 10
    rows cannot."""
    return max(fraction, min(MAX_FRACTION, VALIDATION_ROWS / max(rows, 1)))


@distributed.main_first()  # under torchrun rank 0 fills the token cache, the others read it
def prepare(cfg: Config, splits: dict[str, Split], pretrained: Artifact | None = None) -> Prepared:
    """Tokenise, build (or, fine-tuning, inherit) the vocab and label set, and numericalise every split."""
    tokenizer = pretrained.tokenizer if pretrained else Tokenizer(cfg.tokenizer.kind, cfg.tokenizer.lowercase)
    start = time.perf_counter()
    tokens = {name: tokenize_cached(s.texts, tokenizer, cfg.data.cache_dir, desc=f"tokenising {name}")
              for name, s in splits.items()}
    seconds = time.perf_counter() - start
    labels = LabelVocab.from_values(splits["train"].labels)
    if len(labels) < 2:
        raise TextclfError(f"{splits['train'].source} has one class only ({labels.names[0]}); "
                           "a classifier needs at least two (check data.label_column / data.label_map)")
    info = None
    if pretrained is None:
        vocab = Vocab.build(tokens["train"].counts(), cfg.vocab.min_freq, cfg.vocab.max_size)
    else:
        vocab, labels, info = finetune.adapt(pretrained, cfg.init_from, tokens, labels, cfg.vocab.new_tokens,
                                             cfg.vocab.min_freq, splits["train"].labels, cfg.init_head)
    datasets = {name: encode_split(tok, splits[name], vocab, labels, cfg.data.max_length, cfg.data.truncate)
                for name, tok in tokens.items()}
    n_tokens = int(tokens["train"].offsets[-1])
    log.info("data: %s | vocab %d | labels %s | train tokens %d | tokenised in %.1fs",
             ", ".join(f"{k} {len(v)}" for k, v in datasets.items()), len(vocab), labels.names, n_tokens, seconds)
    return Prepared(datasets, tokens, vocab, labels, tokenizer, seconds, info)


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
        unlabelled = read_split(d.unlabelled, d.text_column, None, d.encoding_errors, **file_format(d))
    elif cfg.pretrain.unlabelled and not uses_files(d):
        unlabelled = load_unlabelled(d.path, d.text_column, d.encoding_errors, encoding=d.encoding,
                                     delimiter=d.delimiter)
    if unlabelled is not None:
        corpora.append(tokenize_cached(unlabelled.texts, data.tokenizer, cfg.data.cache_dir, desc="tokenising unsup"))
    return corpora


@distributed.main_first()
def pretrain_vectors(cfg: Config, data: Prepared, corpora: list[Tokenized]) -> tuple[np.ndarray, np.ndarray]:
    log.info("pretraining word vectors on %s", " + ".join(f"{len(t):,} texts" for t in corpora))
    return word2vec(corpora, data.vocab, cfg.model.embedding_dim, cfg.pretrain.epochs, cfg.pretrain.window,
                    cfg.train.seed, cfg.data.cache_dir)


@distributed.main_first()
def pretrain_language_model(cfg: Config, data: Prepared, corpora: list[Tokenized], model: nn.Module,
                            device: torch.device) -> dict:
    seqs = [s for tok in corpora for s in tok.numericalize(data.vocab, cfg.data.max_length, cfg.data.truncate)]
    log.info("pretraining the encoder as a language model on %s (%d epochs)",
             " + ".join(f"{len(t):,} texts" for t in corpora), cfg.pretrain.lm_epochs)
    settings = {"epochs": cfg.pretrain.lm_epochs, "lr": cfg.pretrain.lm_lr, "sample": cfg.pretrain.lm_sample,
                "batch_size": cfg.train.batch_size,
                "seed": cfg.train.seed, "max_length": cfg.data.max_length, "truncate": cfg.data.truncate,
                "word2vec": [cfg.pretrain.word2vec, cfg.pretrain.epochs, cfg.pretrain.window]}
    dtype = amp_dtype(device, cfg.train.amp, cfg.train.amp_cpu, cfg.train.amp_gpu)  # the classifier's precision
    if dtype is not None:  # float32 LMs keep the cache keys they had before mixed precision was an option
        settings["precision"] = str(dtype)
    cache = lm.cache_path([t.key for t in corpora], data.vocab.itos, model.arch, settings, cfg.data.cache_dir)
    return lm.pretrain_lm(model, seqs, epochs=cfg.pretrain.lm_epochs, batch_size=cfg.train.batch_size,
                          lr=cfg.pretrain.lm_lr, device=device, seed=cfg.train.seed, sample=cfg.pretrain.lm_sample,
                          clip=cfg.train.clip_grad_norm, cache=cache, dtype=dtype)


def encode_split(tok: Tokenized, split: Split, vocab: Vocab, labels: LabelVocab,
                 max_length: int | None, truncate: str) -> TextDataset:
    return TextDataset(tok.numericalize(vocab, max_length, truncate), labels.encode(split.labels, split.source))


def new_model(cfg: Config, vocab: Vocab, labels: LabelVocab) -> nn.Module:
    """A new network of type model.type, from model.*, sized for the vocab and the label set."""
    model = build_model(cfg.model.type, {**asdict(cfg.model), "vocab_size": len(vocab), "num_classes": len(labels)})
    model.lstm_impl = cfg.train.lstm_impl
    return model


def check_run_dir(run_dir: Path, overwrite: bool, resume: str | None = None) -> Path | None:
    """Refuse to replace a finished or interrupted run unless asked; with `resume`, the checkpoint to load."""
    finished = (run_dir / "metrics.json").exists()
    saved = checkpoint.existing(run_dir / checkpoint.FOLDER)
    if resume:
        if finished:
            raise TextclfError(f"{run_dir} holds a finished run, there is nothing to resume "
                               "(pass overwrite=true instead of resume to train it again)")
        if not saved:
            raise TextclfError(f"nothing to resume in {run_dir}: no {checkpoint.FOLDER}/ckpt-*.pt there "
                               "(check run_dir, or train without resume)")
        return saved[-1]
    if finished and not overwrite:
        raise TextclfError(f"{run_dir} already holds a finished run; pass overwrite=true or another run_dir=DIR")
    if saved and not overwrite:
        raise TextclfError(f"{run_dir} holds an interrupted run ({checkpoint.FOLDER}/); pass resume=true to "
                           "continue it, or overwrite=true to start again")
    return None


# What a resumed run may change: where files are, and how often it checkpoints. Anything else
# would make the continuation a different run from the one the checkpoint belongs to.
RESUME_MAY_CHANGE = frozenset({
    "run_dir", "overwrite", "resume", "data.path", "data.train", "data.validation", "data.test", "data.cache_dir",
    "train.device", "train.checkpoint_every", "train.checkpoint_steps", "train.keep_last",
})


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


def data_fingerprint(data: Prepared) -> str:
    """A hash of what the model sees (vocabulary, labels, every split's ids): a resume checks the data."""
    h = hashlib.sha256(data.vocab.to_json().encode("utf-8"))
    h.update(json.dumps(data.labels.names).encode("utf-8"))
    for name in sorted(data.datasets):
        ds = data.datasets[name]
        for part in (name.encode("utf-8"), ds.lengths, np.asarray(ds.labels, dtype=np.int64)):
            h.update(part if isinstance(part, bytes) else part.tobytes())
        if len(ds.seqs):
            h.update(np.concatenate(ds.seqs).astype(np.int64).tobytes())
    return h.hexdigest()


def start_run_dir(run_dir: Path, cfg: Config, resume: dict | None) -> None:
    """Clear a new run's folder of an old run's outputs (or cut a resumed run's log back), write config.yaml."""
    for stale in ("model", "metrics.json", "log.jsonl", "plots", "tb", checkpoint.FOLDER) if resume is None else ():
        path = run_dir / stale
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", to_yaml(replace(cfg, resume=None)))
    if resume is not None:  # the log as it stood at the checkpoint: later rows (or a torn last line) go
        write_text(run_dir / "log.jsonl", "".join(json.dumps(r) + "\n" for r in json.loads(resume["history"])))


def check_resumable(ckpt: dict, cfg: Config, fingerprint: str) -> None:
    then, now = _flat(json.loads(ckpt["config"])), _flat(to_dict(cfg))
    changed = [k for k in sorted(then.keys() | now.keys()) if k not in RESUME_MAY_CHANGE and then.get(k) != now.get(k)]
    if changed:
        shown = ", ".join(f"{k} {then.get(k)!r} → {now.get(k)!r}" for k in changed[:3])
        raise TextclfError(f"{ckpt['path']} was saved with another config ({shown}); resume with the run's own "
                           f"(python train.py resume={cfg.run_dir}) or train in a new run_dir")
    saved_world, world = ckpt.get("world_size", 1), distributed.world_size()
    if saved_world != world:  # the batches, their positions and the schedule's length all depend on it
        how = "python train.py" if saved_world == 1 else f"torchrun --nproc_per_node={saved_world} train.py"
        raise TextclfError(f"{ckpt['path']} was written by a run in {saved_world} process(es), this one has {world}; "
                           f"resume it with as many ({how} resume=...)")
    if ckpt["fingerprint"] != fingerprint:
        raise TextclfError(f"the data are not those {ckpt['path']} was trained on (rows, vocabulary or labels "
                           "changed); resume with the same data or train in a new run_dir")


def split_metrics(labels: np.ndarray, probs: np.ndarray, label_names: list[str], desc: str,
                  plots_dir: Path | None = None) -> dict:
    """Metrics of one split's probabilities (log-loss and calibration error included), and its plots."""
    metrics = {**compute(labels, probs, label_names), "loss": log_loss(probs, labels),
               "ece": round(expected_calibration_error(probs, labels), 4)}
    if plots_dir is not None:
        from .plots import plot_evaluation

        plot_evaluation(labels, probs, label_names, plots_dir, prefix=f"{desc}_")
    return metrics


def calibrate(model: nn.Module, linear: LinearModel | None, loaders: dict, data: Prepared,
              device: torch.device) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """Fit the LSTM's share of the average with the linear view, then the temperature, on validation.

    Returns the settings saved with the model, and each split's probabilities: the LSTM's, the linear
    view's, the average before and after temperature scaling.
    """
    parts: dict[str, dict[str, np.ndarray]] = {}
    for name in ("validation", "test"):
        if name in loaders:
            lstm = predict_loader(model, loaders[name], device, desc=name)[0]
            lin = linear.predict_proba(data.tokens[name].token_lists()) if linear is not None else None
            parts[name] = {"lstm": lstm, "linear": lin}
    y = data.datasets["validation"].labels
    val = parts["validation"]
    weight = fit_weight(val["lstm"], val["linear"], y) if linear is not None else 1.0
    temperature = fit_temperature(combine(val["lstm"], val["linear"], weight), y)
    for p in parts.values():
        p["raw"] = combine(p["lstm"], p["linear"], weight)
        p["final"] = combine(p["lstm"], p["linear"], weight, temperature)
    settings = {"weight": weight, "temperature": round(temperature, 4)}
    log.info("calibration on validation: LSTM weight %.1f%s, temperature %.3f", weight,
             "" if linear is None else f" (linear view {1 - weight:.1f})", temperature)
    return settings, parts


def train(cfg: Config) -> dict:
    """Train, pick the best validation epoch, save the artifact, report validation and test metrics.

    Started by torchrun with several processes, it trains with DistributedDataParallel (see `distributed`):
    every process returns the same metrics; only rank 0 writes run_dir.
    """
    with deterministic(cfg.train.deterministic), distributed.process_group(resolve_device(cfg.train.device)) as dev:
        return _train(cfg, dev)


def _train(cfg: Config, device: torch.device) -> dict:
    check_finetune(cfg)
    run_dir = Path(cfg.run_dir)
    resume_from = check_run_dir(run_dir, cfg.overwrite, cfg.resume)
    summary_writer = writer_class() if cfg.train.tensorboard else None  # a missing extra fails here, early
    seed_everything(cfg.train.seed)
    main, world, rank = distributed.is_main(), distributed.world_size(), distributed.rank()
    pretrained = finetune.load_pretrained(cfg.init_from) if cfg.init_from else None
    if pretrained is not None:  # the architecture and tokenizer come with the weights; record them truthfully
        cfg = copy.deepcopy(cfg)
        cfg.tokenizer.kind, cfg.tokenizer.lowercase = pretrained.tokenizer.kind, pretrained.tokenizer.lowercase
        cfg.model.type = pretrained.model.kind
        for key, value in pretrained.model.arch.items():
            if hasattr(cfg.model, key):  # not the vocab's and label set's sizes: those are this run's
                setattr(cfg.model, key, value)
    splits = load_data(cfg)
    data = prepare(cfg, splits, pretrained)
    fingerprint = data_fingerprint(data)
    resume = checkpoint.load(resume_from) if resume_from else None
    if resume is not None:
        check_resumable(resume, cfg, fingerprint)
    from_scratch = resume is None and pretrained is None
    corpora = pretrain_corpora(cfg, data) if from_scratch and (cfg.pretrain.word2vec or cfg.pretrain.lm_epochs) else []
    clock = time.perf_counter()
    vectors = pretrain_vectors(cfg, data, corpora) if cfg.pretrain.word2vec and from_scratch else None
    pretrain_seconds = time.perf_counter() - clock
    # every input error is raised by here, before run_dir is touched
    if main:
        start_run_dir(run_dir, cfg, resume)

    seed_everything(cfg.train.seed)  # the same initial weights whatever data preparation consumed
    if pretrained is None:
        model = new_model(cfg, data.vocab, data.labels)
    else:
        model = finetune.init_model(pretrained, data.vocab, len(data.labels), data.init_from["head"] == "kept")
        if data.init_from["head"] == "new" and resume is None:
            finetune.linear_probe(model, data.datasets["train"])
        model.lstm_impl = cfg.train.lstm_impl
    if vectors is not None:
        with torch.no_grad():
            model.embedding.weight[vectors[1]] = torch.from_numpy(vectors[0][vectors[1]])
    lm_stats = None
    if cfg.pretrain.lm_epochs and from_scratch:
        clock = time.perf_counter()
        lm_stats = pretrain_language_model(cfg, data, corpora, model.to(device), device)
        pretrain_seconds += time.perf_counter() - clock
        seed_everything(cfg.train.seed)  # the classifier's own training starts from the same RNG state either way
    del corpora  # the unlabelled texts' tokens: not needed from here on
    gc.collect()
    release_memory()
    pin = device.type == "cuda"
    loaders = {name: make_loader(ds, cfg.train.batch_size if name == "train" else cfg.train.eval_batch_size,
                                 shuffle=name == "train", seed=cfg.train.seed, pin_memory=pin, num_replicas=world,
                                 rank=rank, min_steps=cfg.train.min_epoch_steps)
               for name, ds in data.datasets.items()}
    log.info("model: %s parameters on %s", f"{sum(p.numel() for p in model.parameters()):,}", device)
    if world > 1:
        log.info("DistributedDataParallel: %d processes (%s); global batch %d = train.batch_size %d x %d processes "
                 "(train.lr %g is not scaled)", world, "nccl" if device.type == "cuda" else "gloo",
                 cfg.train.batch_size * world, cfg.train.batch_size, world, cfg.train.lr)
    weights = None
    if cfg.train.class_weights == "balanced":
        weights = balanced_class_weights(data.datasets["train"].labels, len(data.labels))
        log.info("class weights: %s", ", ".join(f"{n} {w:.2f}" for n, w in zip(data.labels.names, weights.tolist(),
                                                                                strict=True)))
        weights = weights.to(device)
    freeze = None
    if cfg.train.freeze_embedding_epochs or cfg.train.freeze_encoder_epochs:
        freeze = finetune.freezer(model, len(pretrained.vocab), cfg.train.freeze_embedding_epochs,
                                  cfg.train.freeze_encoder_epochs)
    checkpoints = checkpoint.Checkpoints(run_dir / checkpoint.FOLDER, cfg.train.checkpoint_every,
                                         cfg.train.checkpoint_steps, cfg.train.keep_last,
                                         meta={"config": json.dumps(to_dict(cfg)), "fingerprint": fingerprint,
                                               "world_size": world}, writer=main)
    extra = {"data": {"text_column": cfg.data.text_column, "label_column": cfg.data.label_column,
                      "label_map": cfg.data.label_map},
             "train_config": to_dict(cfg)}
    if data.init_from:
        extra["init_from"] = data.init_from

    def save_best(m: nn.Module, linear: LinearModel | None = None) -> None:  # model/: the best epoch so far
        save_model(run_dir / "model", m, data.vocab, data.labels, data.tokenizer, cfg.data.max_length,
                   cfg.data.truncate, extra=extra, linear=linear)

    tb = summary_writer(log_dir=str(run_dir / "tb")) if summary_writer and main else None
    result = fit(model, loaders["train"], loaders["validation"], cfg.train, device, data.labels.names,
                 log_path=run_dir / "log.jsonl" if main else None, class_weights=weights, on_epoch_start=freeze,
                 checkpoints=checkpoints, resume=resume, on_best=save_best if main else None,
                 on_epoch=epoch_logger(tb) if tb else None, start_as_best=pretrained is not None)
    distributed.check_same_weights(model)
    linear = None
    if cfg.model.linear:
        linear = LinearModel.fit(data.tokens["train"].token_lists(), data.datasets["train"].labels, len(data.labels))
    metrics = {"best_epoch": result.best_epoch, "epochs_run": len(result.history),
               "train_seconds": round(result.seconds, 1), "tokenize_seconds": round(data.tokenize_seconds, 1),
               "device": str(device), "precision": result.precision}
    if world > 1:
        metrics["processes"] = world
    if vectors is not None or lm_stats is not None:  # word2vec / LM time: part of the recipe's cost, not of fit
        metrics["pretrain_seconds"] = round(pretrain_seconds, 1)
    if lm_stats is not None:
        metrics["language_model"] = lm_stats
    if data.init_from:
        metrics["init_from"] = data.init_from
    plots_dir = run_dir / "plots"
    settings, parts = calibrate(model, linear, loaders, data, device)
    for name, p in parts.items():
        y = data.datasets[name].labels
        metrics[name] = split_metrics(y, p["final"], data.labels.names, name, plots_dir if main else None)
        metrics[name]["lstm_accuracy"] = float((decide(p["lstm"]) == y).mean())
        if p["linear"] is not None:
            metrics[name]["linear_accuracy"] = float((decide(p["linear"]) == y).mean())
        metrics[name]["ece_before_calibration"] = round(expected_calibration_error(p["raw"], y), 4)
        log.info("%s", format_report(metrics[name], title=f"{name}:"))
    metrics["calibration"] = settings
    extra["calibration"] = settings
    if main:
        save_best(model, linear if settings["weight"] < 1 else None)
    if not main:
        return metrics
    from .plots import plot_history

    plot_history(result.history, plots_dir, cfg.train.monitor)
    if tb:
        log_final(tb, metrics, result.best_epoch)
        tb.close()
    log.info("plots: %s", plots_dir)
    write_card(run_dir / "model", metrics)  # the model card, with the figures metrics.json is about to hold
    write_json(run_dir / "metrics.json", metrics)  # last: its presence marks a finished run
    return metrics


def evaluate(model_dir: str, data: str, split: str = "test", text_column: str | None = None,
             label_column: str | None = None, output: str | None = None, device: str = "auto",
             batch_size: int = PREDICT_BATCH_SIZE, cache_dir: str | None = None, encoding_errors: str = "strict",
             plots: str | None = None, bf16: bool = False, encoding: str | None = None, delimiter: str | None = None,
             sheet: str | None = None) -> dict:
    """Evaluate a saved model on a split of a dataset folder, a file, "imdb" or "hf:NAME"; `plots`: a folder for PNGs.

    Labels go through the `data.label_map` the model was trained with, so star ratings evaluate as-is.
    `encoding`, `delimiter`, `sheet`: how to read a file (see `data.iter_table`; None: detect).
    """
    dev = resolve_device(device)
    folder = resolve_model_dir(model_dir)  # once: an hf: model is downloaded here
    art = load_model(folder, dev, bf16)
    columns = art.meta.get("data", {})
    text_column = text_column or columns.get("text_column", "text")
    label_column = label_column or columns.get("label_column", "label")
    splits = load_splits(data, None, text_column, label_column, splits=(split,), encoding_errors=encoding_errors,
                         required=(split,), encoding=encoding, delimiter=delimiter, sheet=sheet)
    if split not in splits:
        raise TextclfError(f"{data} has no {split} split (pass --split, or a file)")
    part = apply_label_map(splits[split], columns.get("label_map"), known=lambda v: art.labels.get(v) is not None)
    tok = tokenize_cached(part.texts, art.tokenizer, cache_dir, desc=f"tokenising {split}")
    ds = encode_split(tok, part, art.vocab, art.labels, art.max_length, art.truncate)
    loader = make_loader(ds, batch_size, shuffle=False, pin_memory=dev.type == "cuda")
    lstm = predict_loader(art.model, loader, dev, desc=split)[0]
    lin = art.linear.predict_proba(tok.token_lists()) if art.weight < 1 else None
    probs = combine(lstm, lin, art.weight, art.temperature)
    metrics = split_metrics(ds.labels, probs, art.labels.names, split, Path(plots) if plots else None)
    metrics = {"model": str(folder) if not str(model_dir).startswith("hf:") else model_dir, "data": str(data),
               "split": split, **metrics}
    if output:
        write_json(output, metrics)
    return metrics

