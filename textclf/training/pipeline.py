"""Training a model from start to end. `train(cfg)` runs the steps below in this order; `dry_run(cfg)` runs each
of them once, small, so a config and its data can be checked (and CI can run the real entry point) in seconds.

    checks → data (prepare.py) → resume check (rundir.py) → word vectors → run folder → model → language model
           → loaders → fit (trainer.py) → linear view → calibration and report → model folder, plots, card, metrics

    The linear view needs only the data: beside a long word2vec it is fitted in a second process (linear_view.py).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import gc
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..allocator import release_memory
from ..config import Config, ModelConfig, check_finetune, to_dict
from ..device import predict_loader, resolve_device
from ..errors import TextclfError
from ..files import write_json
from ..hub.card import write_card
from ..inference.classifier import lstm_runner
from ..models.artifact import Artifact, save_model
from ..models.decision import decide
from ..models.ensemble import SHORTCUT_CHECK_ROWS, Calibration, Outputs, cross_calibrated, log_loss
from ..models.linear import LinearModel
from ..models.lstm import build_model, split_directions
from ..reports.evaluation import score_splits
from ..text.batching import Shard, make_loader, predict_seqs
from ..text.tokens import Tokenized, group_ids
from ..text.vocab import LabelVocab, Vocab
from ..threads import cores, intra_op
from . import distributed, finetune, linear_view
from .checkpoint import Checkpoints
from .linear_view import LINEAR_FOLDS, Beside, Here, ViewData, stratified_folds
from .prepare import Prepared, load_data, prepare
from .pretrain import pretrain_corpora, pretrain_language_model, pretrain_vectors, word2vec_reads
from .record import DryRun, ModelMeta, RunSummary
from .rundir import (
    check_resumable,
    check_run_dir,
    check_unlabelled,
    data_fingerprint,
    holds_run,
    load_resume,
    run_checkpoints,
    start_run_dir,
    write_config,
)
from .seeding import deterministic, seed_everything
from .steps import train_step
from .tblog import epoch_logger, log_final, writer_class
from .trainer import FitResult, Hooks, Loop

log = logging.getLogger(__name__)


def train(cfg: Config) -> dict:
    """Train, pick the best validation epoch, save the model folder, report validation and test metrics.

    Started by torchrun with several processes, it trains with DistributedDataParallel (see `distributed`):
    every process returns the same metrics; only rank 0 writes run_dir.
    """
    with deterministic(cfg.train.deterministic), distributed.process_group(resolve_device(cfg.train.device)) as dev:
        return _train(cfg, dev)


def use_threads(cfg: Config, device: torch.device) -> None:
    """PyTorch's CPU threads for this run (`threads.intra_op`), said in one line. On the CPU a BiLSTM's two
    directions run side by side, half the threads each (`lstm.split_directions`): no barrier every time step."""
    n = intra_op(cfg.train.threads)
    split = cfg.train.split_directions and device.type == "cpu" and cfg.model.bidirectional and n >= 2
    per = split_directions(n, split)
    how = f"the BiLSTM's two directions side by side, {per} each" if split else f"{n} intra-op"
    log.info("threads: %d of %d cores (train.threads=N to set): %s; OpenMP threads %s", n, cores(), how,
             f"wait {os.environ['OMP_WAIT_POLICY'].lower()}ly" if os.environ.get("OMP_WAIT_POLICY")
             else "spin while they wait (OMP_WAIT_POLICY unset)")


def set_up(cfg: Config) -> tuple[Config, Artifact | None, Prepared, dict | None]:
    """The steps every run starts with, a dry one too: the checks that need no data (fine-tuning keys, the run
    folder, TensorBoard's extra, a resumed checkpoint's config), the threads, the seed, the model to start from,
    and the data, tokenised. Returns the config as the run records it, that model, the data, and the checkpoint a
    resume continues (its data not yet checked)."""
    check_finetune(cfg)
    resume_from = check_run_dir(Path(cfg.run_dir), cfg.overwrite, cfg.resume)
    if cfg.train.tensorboard:
        writer_class()  # a missing extra fails here, early
    seed_everything(cfg.train.seed)
    cfg, pretrained = start_from(cfg)
    use_threads(cfg, resolve_device(cfg.train.device))  # after start_from: a fine-tuned model's shape is its start's
    resume = load_resume(resume_from, cfg)  # after start_from too (it sets the model's keys), before the data
    return cfg, pretrained, prepare(cfg, load_data(cfg), pretrained), resume


@dataclass
class Run:
    """A run as `_train` sets it up for `fit_model` and `report`: the config as the run records it, the device, the
    data, the network and its loaders, config.json's meta beside the model, what pretraining took, and the
    TensorBoard writer (rank 0, with train.tensorboard)."""

    cfg: Config
    device: torch.device
    data: Prepared
    model: nn.Module
    loaders: dict[str, DataLoader]
    meta: ModelMeta
    pretrain_seconds: float | None = None  # word2vec and the language model, when either ran
    language_model: dict | None = None  # the language model's stats, when it ran
    tb: Any = None  # a SummaryWriter
    views: Here | Beside | None = None  # the linear view's fitting (`linear_view.start`), with model.linear
    unlabelled: Tokenized | None = None  # what the shortcut is checked on beside validation (`unlabelled_sample`)


def _train(cfg: Config, device: torch.device) -> dict:
    cfg, pretrained, data, resume = set_up(cfg)
    run_dir = Path(cfg.run_dir)
    fingerprint = data_fingerprint(data)
    if resume is not None:
        check_resumable(resume, cfg, fingerprint)
    from_scratch = resume is None and pretrained is None
    # a resumed run reads them too: the shortcut is checked on a sample of the unlabelled ones (`unlabelled_sample`)
    corpora = pretrain_corpora(cfg, data) if pretrained is None and (cfg.pretrain.word2vec or cfg.pretrain.lm_epochs) \
        else []
    unlabelled_key = corpora[1].key if len(corpora) > 1 else None
    if resume is not None:
        check_unlabelled(resume, unlabelled_key)
    with contextlib.ExitStack() as closing:  # on SIGTERM and errors too: the linear view's process, TensorBoard's log
        views = closing.enter_context(contextlib.closing(start_views(cfg, data, corpora, from_scratch))) \
            if cfg.model.linear else None
        clock = time.perf_counter()
        vectors = pretrain_vectors(cfg, data, corpora) if cfg.pretrain.word2vec and from_scratch else None
        pretrain_seconds = time.perf_counter() - clock
        main = distributed.is_main()
        if main:  # every input error is raised by here, before run_dir is touched
            start_run_dir(run_dir, cfg, resume)
        model = starting_model(cfg, data, vectors, probe=resume is None)
        lm_stats = None
        if cfg.pretrain.lm_epochs and from_scratch:
            clock = time.perf_counter()
            lm_stats = pretrain_language_model(cfg, data, corpora, model.to(device), device)
            pretrain_seconds += time.perf_counter() - clock
            seed_everything(cfg.train.seed)  # the classifier's own training starts from the same RNG state either way
        unlabelled = unlabelled_sample(corpora[1], list(data.tokens.values()), cfg.train.seed) \
            if cfg.model.linear and len(corpora) > 1 else None
        del corpora  # the unlabelled texts' tokens: only that sample is needed from here on
        gc.collect()
        # its own table, made now: the corpus's table strings it used kept ~0.4 GB of tokenising's memory (IMDB)
        unlabelled = unlabelled.compacted() if unlabelled is not None else None
        release_memory()
        run = Run(cfg, device, data, model, make_loaders(cfg, data, device), model_meta(cfg, data),
                  pretrain_seconds if vectors is not None or lm_stats is not None else None, lm_stats, views=views,
                  unlabelled=unlabelled)
        if cfg.train.tensorboard and main:
            run.tb = closing.enter_context(contextlib.closing(writer_class()(log_dir=str(run_dir / "tb"))))
        return report(run, fit_model(run, run_checkpoints(cfg, fingerprint, unlabelled_key), resume))


def start_views(cfg: Config, data: Prepared, corpora: list, from_scratch: bool) -> Here | Beside:
    """The linear view's fitting (`linear_view.start`): in a second process beside a word2vec about to read long
    enough, when the run is one process that may use 2 threads or more (train.threads, OMP_NUM_THREADS, its
    cores: `threads.intra_op`); else in this one, when the report asks for it. A run held to one thread (two
    runs side by side with OMP_NUM_THREADS=1) starts no second busy process."""
    room = distributed.world_size() == 1 and intra_op(cfg.train.threads) >= 2
    reads = word2vec_reads(cfg, data, corpora) if cfg.pretrain.word2vec and from_scratch and room else 0
    return linear_view.start(ViewData.of(data), cfg.train.seed, reads)


def report(run: Run, result: FitResult) -> dict:
    """After `fit_model`: the linear view, the calibration, every split's figures (metrics.json's contents,
    returned), and on rank 0 the final model folder, the plots, the card and metrics.json."""
    cfg, data, main = run.cfg, run.data, distributed.is_main()
    run_dir = Path(cfg.run_dir)
    distributed.check_same_weights(run.model)
    views = run.views.result() if run.views is not None else None
    unlabelled = unlabelled_outputs(run, views[0]) if views is not None else None
    cal, parts, linear = calibrate(run.model, views, run.loaders, data, run.device, cfg.train.seed, unlabelled)
    scores = score_splits(parts, {name: data.datasets[name].labels for name in parts}, data.labels.names,
                          run_dir / "plots" if main else None)
    for name, source in sources(cal, linear).items():
        if name in parts:
            scores[name].update(source)
    started = data.finetune is not None and "start_accuracy" in scores["validation"]  # a candidate answer
    metrics = {**run_summary(run, result, start_choice(cal) if started else None).to_dict(), **scores,
               "calibration": cal.to_dict()}
    run.meta.calibration = metrics["calibration"]
    if linear is not None and cal.uses_linear():
        run.meta.linear_view = {"rows": ["train", "validation"], "calibrated_out_of_fold": LINEAR_FOLDS}
    start = None
    if started and cal.uses_start():
        start = data.finetune.pretrained.folder
        run.meta.start_view = {"from": str(cfg.init_from), "rows": data.finetune.head_rows}
    if not main:
        return metrics
    save(run, linear if cal.uses_linear() else None, start)
    finish(run_dir, cfg, result, metrics, run.tb)
    return metrics


def start_from(cfg: Config) -> tuple[Config, Artifact | None]:
    """init_from's model, and the config with the architecture and tokenizer that came with its weights (recorded
    truthfully, whatever model.* and tokenizer.* said)."""
    if not cfg.init_from:
        return cfg, None
    pretrained = finetune.load_pretrained(cfg.init_from)
    warn_if_trained_on(pretrained, cfg)
    cfg = copy.deepcopy(cfg)
    cfg.tokenizer.kind, cfg.tokenizer.lowercase = pretrained.tokenizer.kind, pretrained.tokenizer.lowercase
    cfg.model.type = pretrained.model.kind
    default = ModelConfig()
    for key, value in pretrained.model.arch.items():
        if hasattr(cfg.model, key):  # not the vocab's and label set's sizes: those are this run's
            asked = getattr(cfg.model, key)
            if asked != value and asked != getattr(default, key):  # set by the user, and not what the weights are
                log.warning("model.%s=%s is not used: fine-tuning keeps init_from's architecture (model.%s=%s)", key,
                            asked, key, value)
            setattr(cfg.model, key, value)
    return cfg, pretrained


def warn_if_trained_on(pretrained: Artifact, cfg: Config) -> None:
    """A warning where init_from was trained on this run's own train data (the same file or folder, as its
    recorded config names it from here): the rows this run validates on were its training rows, so the start
    model's validation figures, and the share they give it of the average, flatter it."""
    then = (pretrained.meta.get("train_config") or {}).get("data") or {}
    for key, now in (("train", cfg.data.train), ("path", None if cfg.data.train else cfg.data.path)):
        old = then.get(key)
        if old and now and Path(old).exists() and Path(now).exists() and Path(old).resolve() == Path(now).resolve():
            log.warning("init_from was trained on data.%s=%s, as this run is: this run's validation rows were its "
                        "training rows, so its validation figures and its share of the average flatter it; fine-tune "
                        "on rows it has not seen", key, now)
            return


def new_model(m: ModelConfig, vocab: Vocab, labels: LabelVocab) -> nn.Module:
    """A new network of type model.type from model.*, sized for the vocab and the label set."""
    return build_model(m.type, {**asdict(m), "vocab_size": len(vocab), "num_classes": len(labels)})


def starting_model(cfg: Config, data: Prepared, vectors: tuple | None, probe: bool) -> nn.Module:
    """The network training starts from, seeded: a new one, or the fine-tuning plan's (`finetune.start_model`; a
    new head started by a linear probe when `probe`); word2vec's rows in its embedding."""
    seed_everything(cfg.train.seed)  # the same initial weights whatever data preparation consumed
    if data.finetune is None:
        model = new_model(cfg.model, data.vocab, data.labels)
    else:
        model = finetune.start_model(data.finetune, data.datasets["train"] if probe else None)
    model.lstm_impl = cfg.train.lstm_impl
    if vectors is not None:
        with torch.no_grad():
            model.embedding.weight[vectors[1]] = torch.from_numpy(vectors[0][vectors[1]])
    return model


def make_loaders(cfg: Config, data: Prepared, device: torch.device) -> dict[str, DataLoader]:
    """Length-bucketed loaders of every split: train shuffled (seeded), the others longest first; under torchrun,
    this process's share of each."""
    return {name: make_loader(ds, cfg.train.batch_size if name == "train" else cfg.train.eval_batch_size,
                              shuffle=name == "train", seed=cfg.train.seed, pin_memory=device.type == "cuda",
                              num_replicas=distributed.world_size(), rank=distributed.rank(),
                              min_steps=cfg.train.min_epoch_steps)
            for name, ds in data.datasets.items()}


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse class frequency (`train.class_weights=balanced`), 1.0 everywhere for balanced data."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return torch.tensor(len(labels) / (num_classes * np.maximum(counts, 1)), dtype=torch.float32)


IMBALANCED = 2.0  # train.class_weights=auto weighs classes when the largest has this many times the smallest's rows


def class_weights(cfg: Config, data: Prepared, device: torch.device) -> torch.Tensor | None:
    """Each class weighed by its inverse frequency in train: with train.class_weights=balanced, or auto and
    imbalanced labels. The LSTM then learns the rare classes as well as the common ones; the linear view stays
    unweighted, and their average is more accurate than either on imbalanced classes (benchmarks/README.md)."""
    counts = np.bincount(data.datasets["train"].labels, minlength=len(data.labels))
    imbalanced = counts.max() >= IMBALANCED * max(counts.min(), 1)
    if cfg.train.class_weights == "none" or (cfg.train.class_weights == "auto" and not imbalanced):
        return None
    weights = balanced_class_weights(data.datasets["train"].labels, len(data.labels))
    log.info("class weights: %s", ", ".join(f"{n} {w:.2f}" for n, w in zip(data.labels.names, weights.tolist(),
                                                                            strict=True)))
    return weights.to(device)


def model_meta(cfg: Config, data: Prepared) -> ModelMeta:
    """What config.json records beside the model from the start: the data's columns and label map, the run's
    config, and what fine-tuning kept; `report` adds the calibration."""
    return ModelMeta({"text_column": cfg.data.text_column, "label_column": cfg.data.label_column,
                      "label_map": cfg.data.label_map}, to_dict(cfg),
                     data.finetune.summary() if data.finetune else None)


def save(run: Run, linear: LinearModel | None = None, start: Path | None = None) -> None:
    """RUN_DIR/model/: the best epoch so far while training, the final model (its linear view, and the model it
    started from where that has a share) at the end."""
    cfg, data = run.cfg, run.data
    art = Artifact(run.model, data.vocab, data.labels, data.tokenizer, cfg.data.max_length, cfg.data.truncate,
                   run.meta.to_dict(), linear)
    save_model(Path(cfg.run_dir) / "model", art, start=start)


def fit_model(run: Run, checkpoints: Checkpoints, resume: dict | None) -> FitResult:
    """`Loop.fit` with this run's class weights, freezing (fine-tuning), checkpoints (and `resume`, the loaded one
    to continue from), log.jsonl and TensorBoard log, and the model folder saved at each best epoch."""
    cfg, model, data, device = run.cfg, run.model, run.data, run.device
    world = distributed.world_size()
    log.info("model: %s parameters on %s", f"{sum(p.numel() for p in model.parameters()):,}", device)
    if world > 1:
        log.info("DistributedDataParallel: %d processes (%s); global batch %d = train.batch_size %d x %d processes "
                 "(train.lr %g is not scaled)", world, "nccl" if device.type == "cuda" else "gloo",
                 cfg.train.batch_size * world, cfg.train.batch_size, world, cfg.train.lr)
    weights = class_weights(cfg, data, device)
    main = distributed.is_main()
    hooks = Hooks(log_path=Path(cfg.run_dir) / "log.jsonl" if main else None,
                  on_epoch=epoch_logger(run.tb) if run.tb else None,
                  on_best=(lambda _model: save(run)) if main else None,
                  on_epoch_start=data.finetune.freezer(model) if data.finetune else None,
                  warm_up=data.finetune.freeze_encoder_epochs if data.finetune else 0)
    loop = Loop(model, cfg.train, device, run.loaders["train"], weights, checkpoints, resume)
    return loop.fit(run.loaders["validation"], data.labels.names, hooks, start_as_best=data.finetune is not None)


def unlabelled_sample(pool: Tokenized, labelled: Sequence[Tokenized], seed: int, rows: int = SHORTCUT_CHECK_ROWS
                      ) -> Tokenized | None:
    """Up to `rows` of the unlabelled texts `pool` (the ones pretraining reads, `pretrain_corpora`), drawn with
    `seed`, each once, none that a `labelled` split (train, validation, test) repeats token for token: the LSTM
    learnt train's, validation's are checked already, test's stay unseen. The shortcut needs no labels to be
    checked (`Calibration.fit`), and more texts than validation's show its bound for more of the linear view's
    answers. None where no text is left."""
    known = []  # per split: the pool's tokens as that split's ids, and the hashes of its texts as those ids
    for split in labelled:
        where = {token: i for i, token in enumerate(split.table)}
        as_split = np.fromiter((where.get(t, -1) for t in pool.table), dtype=np.int64, count=len(pool.table))
        bounds = zip(split.offsets[:-1], split.offsets[1:], strict=True)
        known.append((as_split, {hash(split.ids[a:b].astype(np.int64).tobytes()) for a, b in bounds}))
    keep, taken = [], set()  # taken: the kept texts, so that a text the pool repeats counts once
    for j in np.random.default_rng(seed).permutation(len(pool)) if rows > 0 else ():
        ids = pool.ids[pool.offsets[j]:pool.offsets[j + 1]]
        text = hash(ids.astype(np.int64).tobytes())
        if text not in taken and not any(hash(as_split[ids].tobytes()) in texts for as_split, texts in known):
            keep.append(j)
            taken.add(text)
            if len(keep) == rows:
                break
    return pool.take(np.sort(keep)) if keep else None


def unlabelled_outputs(run: Run, linear: LinearModel) -> tuple[np.ndarray, np.ndarray] | None:
    """The LSTM's and the linear view's probabilities (as saved: it never saw them) of the run's sample of
    unlabelled texts, or None where it has none. Under torchrun each process predicts its share, summed as
    validation's are (`calibrate`): every process then holds the same numbers."""
    if run.unlabelled is None:
        return None
    cfg = run.cfg
    seqs = run.unlabelled.numericalize(run.data.vocab, cfg.data.max_length, cfg.data.truncate)
    p_lstm = predict_seqs(run.model, seqs, run.device, cfg.train.eval_batch_size,
                          shard=Shard(distributed.world_size(), distributed.rank()), desc="unlabelled",
                          reduce=distributed.all_sum, quiet=distributed.tqdm_disable())[0]
    return p_lstm, linear.predict_proba(run.unlabelled.token_lists())


def calibrate(model: nn.Module, views: tuple[LinearModel, np.ndarray] | None, loaders: dict, data: Prepared,
              device: torch.device, seed: int, unlabelled: tuple[np.ndarray, np.ndarray] | None = None
              ) -> tuple[Calibration, dict[str, Outputs], LinearModel | None]:
    """Fit the LSTM's share of the average with the linear view, the temperatures and the shortcut on validation
    (`Calibration.fit`) to `views`: the linear view refitted on train and validation and validation's out-of-fold
    probabilities of views fitted as the saved one is (`linear_view.refit`), so each number describes the saved
    model on rows its linear view did not see. Every split's probabilities, as the report reads them (`Outputs`):
    validation's from those views, test's from the model as saved. The shortcut is checked on validation and on
    `unlabelled` (`unlabelled_outputs`), when given. Returns the calibration, those, and the linear view to save."""
    lstm = {name: predict_loader(model, loaders[name], device, desc=name, reduce=distributed.all_sum,
                                 quiet=distributed.tqdm_disable())[0]
            for name in ("validation", "test") if name in loaders}  # under torchrun: each process's share, summed
    linear, val_linear = views if views is not None else (None, None)
    y = data.datasets["validation"].labels
    cal = Calibration.fit(lstm["validation"], val_linear, y, unlabelled)
    start = start_outputs(data, device)
    if start:
        groups = group_ids(map(tuple, data.tokens["validation"].token_lists()))
        own = cross_calibrated(lstm["validation"], val_linear, y, stratified_folds(y, LINEAR_FOLDS, seed, groups))
        cal = cal.fit_start(own, start["validation"].final, y)
    parts = {"validation": Outputs.of(cal, lstm["validation"], val_linear, start.get("validation"))}
    if "test" in lstm:
        test_linear = linear.predict_proba(data.tokens["test"].token_lists()) if linear is not None else None
        parts["test"] = Outputs.of(cal, lstm["test"], test_linear, start.get("test"))
    if start:
        log_start(cal, parts["validation"], y)
    log.info("calibration on validation%s: temperatures LSTM %.3f%s, LSTM weight %.1f, temperature %.3f%s",
             "" if linear is None else " (the linear view out of fold)", cal.lstm_temperature,
             "" if linear is None else f", linear view {cal.linear_temperature:.3f}", cal.weight, cal.temperature,
             f"; shortcut {cal.shortcut:g}: the linear view alone on {parts['validation'].sure.mean():.0%} of "
             f"validation{checked_too(cal, unlabelled)}" if cal.shortcut else "")
    return cal, parts, linear


def checked_too(cal: Calibration, unlabelled: tuple[np.ndarray, np.ndarray] | None) -> str:
    """The log's words for the unlabelled texts the shortcut was checked on as well, if any."""
    if unlabelled is None:
        return ""
    return f" and on {cal.shortcut_unlabelled / len(unlabelled[0]):.0%} of {len(unlabelled[0]):,} unlabelled texts"


def start_outputs(data: Prepared, device: torch.device) -> dict[str, Outputs]:
    """Fine-tuning with the labels of the model it started from: that model in full (`Classifier.load(init_from)`:
    both views, its calibration and shortcut) on validation and test, its classes in this run's label order; the
    calibration weighs it against the fine-tuned model (`Calibration.fit_start`). {} when there is no such model,
    or its labels are not this run's (a new head: it cannot answer them)."""
    plan = data.finetune
    if plan is None or not plan.keep_head or plan.head_rows is None:
        if plan is not None:
            log.info("the start model is no candidate answer: its labels %s are not this run's %s",
                     plan.pretrained.labels.names, data.labels.names)
        return {}
    art = plan.pretrained
    art.model.to(device)
    out = {}
    for name in ("validation", "test"):
        if name in data.tokens:
            tokens = list(data.tokens[name].token_lists())
            run = functools.partial(lstm_runner, token_lists=tokens, device=device, desc=f"{name}, start model")
            out[name] = art.outputs(tokens, run(art), run).columns(plan.head_rows)
    return out


def log_start(cal: Calibration, val: Outputs, y: np.ndarray) -> None:
    """One line each: the start model's validation figures, the fine-tuned one's, and which the model is, and why."""
    for what, probs in (("the start model in full", val.start), ("fine-tuned", val.own), ("the model", val.final)):
        log.info("validation, %s: accuracy %.4f, log-loss %.4f", what, float((decide(probs) == y).mean()),
                 log_loss(probs, y))
    log.info("the model: %s", start_choice(cal))


def start_choice(cal: Calibration) -> str:
    """What a fine-tuned model is, of its start and its fine-tuned views, and why: said in the log and metrics.json."""
    why = ("the start alone unless a share of it, of 0, 0.1, ..., 1, beats its validation log-loss by more than one "
           "standard error; then the largest share within one standard error of the lowest")
    if not cal.uses_start():
        return f"the fine-tuned model alone (start model's share 0: {why})"
    if not cal.uses_own():
        return f"the start model unchanged (its share 1: {why})"
    share = cal.start_weight
    return f"{share:g} of the start model's probabilities, {1 - share:g} of the fine-tuned one's ({why})"


def sources(cal: Calibration, linear: LinearModel | None) -> dict[str, dict]:
    """What metrics.json says each split's figures are of: test's the saved model's; validation's the saved LSTM's
    with the out-of-fold linear views the calibration was fitted to (`linear_view.refit`), not the saved linear
    view, which learnt from those rows."""
    if linear is None or not cal.uses_linear():
        return {"validation": {"source": "the saved model (its epoch and calibration picked on these rows)"},
                "test": {"source": "the saved model"}}
    return {"validation": {"source": f"the saved LSTM with out-of-fold linear views: each row scored by a view fitted "
                                     f"like the saved one on train and the other {LINEAR_FOLDS - 1} of "
                                     f"{LINEAR_FOLDS} folds of validation",
                           "linear_folds": LINEAR_FOLDS},
            "test": {"source": "the saved model"}}


def run_summary(run: Run, result: FitResult, the_model: str | None) -> RunSummary:
    """metrics.json's account of the run itself; `the_model`: what a fine-tuned model is of its start and its
    fine-tuned views (`start_choice`), when its start was a candidate answer."""
    world, data = distributed.world_size(), run.data
    init_from = None if run.meta.init_from is None else {
        **run.meta.init_from, **({"the_model": the_model} if the_model is not None else {})}
    return RunSummary(result.best_epoch, len(result.history), round(result.seconds, 1),
                      round(data.tokenize_seconds, 1), str(run.device), result.precision, result.adversarial,
                      processes=world if world > 1 else None,
                      pretrain_seconds=None if run.pretrain_seconds is None else round(run.pretrain_seconds, 1),
                      language_model=run.language_model, init_from=init_from, duplicates=data.duplicates or None)


def finish(run_dir: Path, cfg: Config, result: FitResult, metrics: dict, tb) -> None:
    """The run's last files: the history plots, TensorBoard's final scalars, the model card with the figures,
    and metrics.json, last: its presence marks a finished run."""
    from ..reports.plots import plot_history

    plots_dir = run_dir / "plots"
    plot_history(result.history, plots_dir, result.best_epoch)
    if tb:
        log_final(tb, metrics, result.best_epoch)
    log.info("plots: %s", plots_dir)
    write_card(run_dir / "model", metrics)  # the model card, with the figures metrics.json is about to hold
    write_json(run_dir / "metrics.json", metrics)


def dry_run(cfg: Config) -> DryRun:
    """Each step of `train` once, small: the config checked, the data loaded and tokenised, the model built, one
    training step and one validation batch. RUN_DIR/config.yaml is the only file written (not where RUN_DIR holds a
    run, whose config.yaml stays the one it was trained with): no pretraining (word2vec,
    language model, linear probe), no linear view or calibration, no model folder, checkpoints or metrics."""
    if distributed.launched():
        raise TextclfError("--dry-run runs in one process: python train.py --dry-run ...")
    if cfg.resume:
        raise TextclfError("--dry-run starts no run, so there is none to resume: drop resume=...")
    with deterministic(cfg.train.deterministic):
        device = resolve_device(cfg.train.device)
        cfg, pretrained, data, _ = set_up(cfg)
        model = starting_model(cfg, data, None, probe=False).to(device)
        loaders = make_loaders(cfg, data, device)
        loop = Loop(model, cfg.train, device, loaders["train"], class_weights(cfg, data, device))  # as a run has it
        batch = next(iter(loaders["train"]))
        model.train()
        loss = train_step(model, batch, loop.setup)
        rows = next(iter(loaders["validation"].batch_sampler))  # the longest texts: the largest batch
        val = data.datasets["validation"]
        probs, val_loss = predict_seqs(model, [val.seqs[i] for i in rows], device, len(rows), val.labels[rows],
                                       dtype=loop.setup.dtype, desc="validate")
        # A folder that holds a run keeps its config.yaml: the one its model was trained with (and resumes with)
        config = "" if holds_run(Path(cfg.run_dir)) else str(write_config(Path(cfg.run_dir), cfg))
    skipped = [name for name, asked in (
        ("word2vec pretraining", cfg.pretrain.word2vec and pretrained is None),
        ("language-model pretraining", cfg.pretrain.lm_epochs and pretrained is None),
        ("the new head's linear probe", data.finetune is not None and not data.finetune.keep_head),
        ("the linear view", cfg.model.linear), ("calibration", True)) if asked]
    return DryRun({name: len(ds) for name, ds in data.datasets.items()}, len(data.vocab), data.labels.names,
                  cfg.model.type, str(device), sum(p.numel() for p in model.parameters()), len(batch.index),
                  float(loss), len(rows), val_loss, float((decide(probs) == val.labels[rows]).mean()), skipped,
                  config)
