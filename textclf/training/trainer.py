"""The classifier's training loop: `Loop` runs epochs of steps (steps.py), validates each, keeps the best, stops
early, checkpoints and resumes (checkpoint.py), and stops cleanly on SIGTERM (preemption.py)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..config import TrainConfig
from ..device import predict_loader
from ..errors import TrainingDiverged
from ..models.ensemble import calibrated_log_loss
from ..reports.metrics import compute
from . import distributed
from .checkpoint import Checkpoints, Progress, pack, restore, rng_state, set_rng_state
from .optim import SYNC_EVERY, amp_dtype, grad_scaler, make_optimizer, make_scheduler
from .preemption import Preempted, Sigterm
from .steps import StepSetup, check_finite, train_epoch

log = logging.getLogger(__name__)


@dataclass
class Validation:
    """The validation figures that pick the epoch and fill its row: those of `predict_loader`'s probabilities,
    its loss, and the loss after temperature scaling (what the saved model will say)."""

    n: int
    accuracy: float
    f1: float
    roc_auc: float | None
    loss: float | None
    calibrated_loss: float | None = None

    def score(self, monitor: str) -> float:
        """Higher is better. `loss` is the validation log-loss after temperature scaling: the loss of the
        probabilities the model will give. Raw, it rises as soon as a few errors grow confident, often while
        accuracy still climbs (on small data, after the first epoch)."""
        return float(-self.calibrated_loss if monitor == "loss" else getattr(self, monitor))


def validate(model: nn.Module, loader: DataLoader, device: torch.device, label_names: list[str],
             dtype: torch.dtype | None = None, desc: str = "validate") -> Validation:
    """The model on a validation loader. One sharded over the processes (torchrun) is summed over them: every
    process gets the same numbers."""
    probs, loss = predict_loader(model, loader, device, dtype, desc, reduce=distributed.all_sum,
                                 quiet=distributed.tqdm_disable())
    m, y = compute(loader.dataset.labels, probs, label_names), loader.dataset.labels
    return Validation(m["n"], m["accuracy"], m["f1"], m["roc_auc"], loss,
                      None if loss is None else calibrated_log_loss(probs, y))


@dataclass
class EpochRow:
    """An epoch's row of log.jsonl, its keys in this order; the history and TensorBoard's scalars read it too."""

    epoch: int
    train_loss: float
    val_loss: float | None
    val_accuracy: float
    val_f1: float
    val_roc_auc: float | None
    lr: float
    train_seconds: float  # of the epoch's training steps
    tokens_per_s: int
    seconds: float  # of the epoch, its validation included
    # the validation loss after temperature scaling: what train.monitor=loss picks the epoch by (`Validation.score`)
    val_calibrated_loss: float | None = None

    def log(self, epochs: int, improved: bool, path: Path | None) -> None:
        """One line of the log; a line of log.jsonl at `path` (None: not written, as in DDP's other processes)."""
        calibrated = "" if self.val_calibrated_loss is None else f" (calibrated {self.val_calibrated_loss:.4f})"
        log.info("epoch %d/%d  train_loss %.4f  val_loss %.4f%s  val_acc %.4f  val_f1 %.4f  %.0fs  %s tok/s%s",
                 self.epoch, epochs, self.train_loss, self.val_loss, calibrated, self.val_accuracy, self.val_f1,
                 self.seconds, f"{self.tokens_per_s:,}", "  *best" if improved else "")
        if path is not None:
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(asdict(self)) + "\n")


@dataclass
class FitResult:
    best_epoch: int
    best_score: float
    history: list[dict] = field(default_factory=list)  # log.jsonl's rows
    seconds: float = 0.0
    precision: str = "float32"  # or "bfloat16 autocast" / "float16 autocast"
    adversarial: float = 0.0  # the adversarial pass's push as trained (`planned_adversarial`)


def planned_epochs(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """`cfg.epochs`, or more on data too small for `cfg.min_steps` optimizer steps in that many epochs: a model
    trained on a few thousand short texts was still learning when the recipe's epochs were up (benchmarks/README.md)."""
    return max(cfg.epochs, -(-cfg.min_steps // max(steps_per_epoch, 1)))


def planned_adversarial(cfg: TrainConfig, train_tokens: int) -> float:
    """`cfg.adversarial`, or 0 on data of fewer than `cfg.adversarial_min_tokens` train tokens: there the second,
    perturbed pass bought no accuracy measurable on tweets, Chinese reviews or IMDB subsets, and it is half of
    every step's time (benchmarks/README.md)."""
    return cfg.adversarial if train_tokens >= cfg.adversarial_min_tokens else 0.0


@dataclass
class Hooks:
    """What a caller of `Loop.fit` hears of, and does, as training goes."""

    log_path: Path | None = None  # log.jsonl: a row per epoch
    on_epoch: Callable[[dict], None] | None = None  # each epoch's row, as log.jsonl has it (TensorBoard)
    on_best: Callable[[nn.Module], None] | None = None  # the model, each time it is the best so far (saved)
    on_epoch_start: Callable[[int], None] | None = None  # before each epoch, a resumed one too (freezing)
    # The first epochs, which do not count toward the patience: fine-tuning's that hold the encoder (the linear
    # probe's phase), in which a new head may well fall behind the probe it started from before the LSTM can move
    warm_up: int = 0


class Loop:
    """The classifier's training: the model and how it steps (`StepSetup`: AdamW, its schedule, the precision),
    where training stands (`Progress`, restored from `resume`, a loaded checkpoint), and the checkpoints it
    writes. `fit` runs the epochs."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, device: torch.device, loader: DataLoader,
                 class_weights: torch.Tensor | None = None, checkpoints: Checkpoints | None = None,
                 resume: dict | None = None):
        model.to(device)
        self.model, self.cfg, self.loader, self.checkpoints = model, cfg, loader, checkpoints
        opt = make_optimizer(model, cfg.lr, cfg.weight_decay, cfg.layer_lr_decay)
        self.n, self.epochs = len(loader), planned_epochs(cfg, len(loader))
        if self.epochs > cfg.epochs:
            log.info("epochs: %d, not train.epochs=%d: %d optimizer steps an epoch reach train.min_steps=%d only then "
                     "(train.min_steps=0 keeps train.epochs)", self.epochs, cfg.epochs, self.n, cfg.min_steps)
        tokens = int(loader.dataset.lengths.sum())
        self.adversarial = planned_adversarial(cfg, tokens)
        if self.adversarial != cfg.adversarial:
            log.info("adversarial pass: off, not train.adversarial=%g: %s train tokens are fewer than "
                     "train.adversarial_min_tokens=%s (train.adversarial_min_tokens=0 keeps it)", cfg.adversarial,
                     f"{tokens:,}", f"{cfg.adversarial_min_tokens:,}")
        sched = make_scheduler(opt, cfg.scheduler, self.epochs * self.n, cfg.warmup_ratio)
        dtype = amp_dtype(device, cfg.amp, cfg.amp_cpu, cfg.amp_gpu)
        self.precision = f"{str(dtype).removeprefix('torch.')} autocast" if dtype else "float32"
        log.info("precision: %s", f"{self.precision}, float32 weights" if dtype else self.precision)
        self.setup = StepSetup(opt, sched, grad_scaler(device, dtype), device, dtype, cfg.clip_grad_norm,
                               class_weights, self.adversarial, cfg.adversarial_fraction)
        self.resumed = resume is not None
        self.p = self._resume(resume) if resume else self._start()
        self.ddp, self.trainable, self.sigterm = model, None, None

    def _start(self) -> Progress:
        distributed.seed_per_process(self.cfg.seed)
        return Progress()

    def _resume(self, ckpt: dict) -> Progress:
        p = restore(ckpt, self.states(), self.setup.device, self.n)
        log.info("resuming from %s: epoch %d, batch %d/%d (step %d)", ckpt["path"], p.epoch, p.batch, self.n, p.step)
        # Last, after everything that draws randomness, so dropout continues where it stopped. The
        # loaders have generators of their own: starting an epoch draws nothing from these RNGs.
        set_rng_state(ckpt.get("rng_by_rank", [ckpt["rng"]])[distributed.rank()])
        return p

    def states(self) -> dict:
        """What a checkpoint holds the state dicts of, by key."""
        s = self.setup
        return {"model": self.model, "optimizer": s.opt, "scheduler": s.sched, "scaler": s.scaler}

    def fit(self, val_loader: DataLoader, label_names: list[str], hooks: Hooks | None = None,
            start_as_best: bool = False) -> FitResult:
        """Train for up to `cfg.epochs`, or as many more as make `cfg.min_steps` optimizer steps; keep the weights
        of the best validation epoch (restored at the end).

        With checkpoints, the whole training state is saved at epoch ends (and every `every_steps` steps); a
        resumed loop continues from its checkpoint exactly: on CPU, bit for bit. `start_as_best`: the model as it
        starts is scored on validation as epoch 0, a candidate like the epochs (fine-tuning: the start's network,
        whose best epoch may be none; the start model in full is weighed against the result later,
        `Calibration.fit_start`).

        In a torchrun process group, every process runs its share of the training batches and of the validation
        texts (see `make_loader`); training runs through DistributedDataParallel, validation metrics are those of
        the whole split, and so every process makes the same early-stopping decisions.
        """
        hooks, p = hooks or Hooks(), self.p
        if start_as_best and not self.resumed:
            val = validate(self.model, val_loader, self.setup.device, label_names, self.setup.dtype)
            p.keep_best(0, val.score(self.cfg.monitor), self.model)
            log.info("epoch 0 (the model it starts from)  val_loss %.4f  val_acc %.4f  val_f1 %.4f", val.loss,
                     val.accuracy, val.f1)
            if hooks.on_best is not None:
                hooks.on_best(self.model)
        self.sigterm = Sigterm() if self.checkpoints else None  # without checkpoints there is nothing to resume from
        try:
            for epoch in range(p.epoch, self.epochs + 1):
                if p.stopped:
                    break
                self.epoch(epoch, val_loader, label_names, hooks)
        except TrainingDiverged as e:
            last = self.checkpoints.last if self.checkpoints else None
            kept = f"the last good checkpoint {last} is kept" if last else "no checkpoint was written"
            raise TrainingDiverged(f"{e}; {kept}; lower train.lr (or set train.clip_grad_norm) and train again") \
                from None
        finally:
            if self.sigterm is not None:
                self.sigterm.restore()
        if p.best_state is not None:
            self.model.load_state_dict(p.best_state)
        log.info("kept epoch %d of %d%s: the best validation %s", p.best_epoch, len(p.history),
                 " (the model it started from)" if p.best_epoch == 0 else "",
                 "loss after temperature scaling" if self.cfg.monitor == "loss" else self.cfg.monitor)
        return FitResult(p.best_epoch, p.best_score, p.history, p.train_seconds, self.precision, self.adversarial)

    def epoch(self, epoch: int, val_loader: DataLoader, label_names: list[str], hooks: Hooks) -> None:
        """One epoch (or the rest of a resumed one): train, validate, log, keep the best, checkpoint, stop or not."""
        if hooks.on_epoch_start is not None:
            hooks.on_epoch_start(epoch)
        self.train(epoch)
        clock, train_loss = time.perf_counter(), check_finite(self.p, self.n).sum().item() / self.n
        val = validate(self.model, val_loader, self.setup.device, label_names, self.setup.dtype)
        row = self.row(epoch, train_loss, val, clock)
        improved = self.judge(epoch, val, counts=epoch > hooks.warm_up)
        row.log(self.epochs, improved, hooks.log_path)
        if improved and hooks.on_best is not None:
            hooks.on_best(self.model)
        if hooks.on_epoch is not None:
            hooks.on_epoch(self.p.history[-1])
        self.end_epoch(epoch)

    def train(self, epoch: int) -> None:
        """One epoch's batches (or the rest of a resumed one), through DDP when the process group has several."""
        p = self.p
        if p.batch == 0:
            p.losses, p.tokens, p.seconds = torch.zeros(self.n, device=self.setup.device), 0, 0.0
        if self.trainable != (now := [q.requires_grad for q in self.model.parameters()]):
            self.ddp = None  # the old wrapper's gradient hooks go before the new one's come
            self.ddp, self.trainable = distributed.wrap(self.model, self.setup.device), now
        self.loader.batch_sampler.set_epoch(epoch, start=p.batch)
        train_epoch(self.ddp, self.loader, self.setup, p, f"epoch {epoch}/{self.epochs}",
                    self.on_step if self.checkpoints else None)

    def on_step(self, progress: Progress) -> None:
        every = self.checkpoints.every_steps
        if every and progress.step % every == 0 and progress.batch < self.n:
            self.save_checkpoint()
        self.stop_if_preempted(progress.batch % SYNC_EVERY == 0 or progress.batch == self.n)  # where it syncs anyway

    def row(self, epoch: int, train_loss: float, val: Validation, clock: float) -> EpochRow:
        """The epoch's row, kept in the history; `clock`: when the epoch's training ended."""
        p = self.p
        seconds = p.seconds + time.perf_counter() - clock
        p.train_seconds += seconds
        tokens = int(distributed.all_sum(torch.tensor(p.tokens)))  # of all processes
        row = EpochRow(epoch, round(train_loss, 6), val.loss, val.accuracy, val.f1, val.roc_auc,
                       self.setup.opt.param_groups[0]["lr"], round(p.seconds, 2),
                       round(tokens / max(p.seconds, 1e-9)), round(seconds, 2), val.calibrated_loss)
        p.history.append(asdict(row))
        return row

    def judge(self, epoch: int, val: Validation, counts: bool = True) -> bool:
        """Whether this epoch is the best so far (kept), else one more without progress (when it `counts`)."""
        score = val.score(self.cfg.monitor)
        if score > self.p.best_score:
            self.p.keep_best(epoch, score, self.model)
            return True
        if counts:
            self.p.stale += 1
        return False

    def end_epoch(self, epoch: int) -> None:
        """Whether to stop, the epoch-end checkpoint, and a SIGTERM that came during validation."""
        p, cfg, checkpoints = self.p, self.cfg, self.checkpoints
        p.stopped = p.stale >= cfg.patience or epoch == self.epochs
        p.epoch, p.batch = epoch + 1, 0
        if checkpoints and checkpoints.every_epochs and (epoch % checkpoints.every_epochs == 0 or p.stopped):
            self.save_checkpoint()
        if p.stale >= cfg.patience:
            log.info("early stop: no better validation %s for %d epochs", cfg.monitor, p.stale)
        self.stop_if_preempted(True)

    def save_checkpoint(self) -> None:
        losses = check_finite(self.p, self.n)  # diverged weights never replace the last good checkpoint
        rngs = distributed.all_gather(rng_state())  # under DDP each process resumes its own dropout stream
        self.checkpoints.write(self.p.step, pack(self.p, losses, self.states(), rngs))

    def stop_if_preempted(self, sync: bool) -> None:
        if self.sigterm is not None and self.sigterm.agreed(sync):
            self.save_checkpoint()
            log.warning("SIGTERM: wrote %s at step %d and stopped", self.checkpoints.last, self.p.step)
            raise Preempted(self.checkpoints.last, self.p.step)
