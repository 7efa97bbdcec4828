"""The classifier's training loop: steps (adversarial training too), validation, early stopping, checkpoints,
resume, and stopping cleanly on SIGTERM."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..config import TrainConfig
from ..device import autocast, loss_fn, predict_loader, to_device
from ..errors import TextclfError, TrainingDiverged, first_line
from ..models.ensemble import calibrated_log_loss
from ..reports.metrics import compute
from . import distributed
from .checkpoint import Checkpoints, rng_state, set_rng_state
from .optim import SYNC_EVERY, amp_dtype, grad_scaler, make_optimizer, make_scheduler, optimizer_step, sync_due

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse class frequency (`train.class_weights=balanced`), 1.0 everywhere for balanced data."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return torch.tensor(len(labels) / (num_classes * np.maximum(counts, 1)), dtype=torch.float32)


@dataclass
class Progress:
    """Where training stands: with the model, optimizer, schedule and RNG states, all a resume needs."""

    epoch: int = 1  # the epoch in progress (1-based)
    batch: int = 0  # batches of it already trained
    step: int = 0  # optimizer steps since the start of the run
    losses: torch.Tensor | None = None  # this epoch's per-batch losses, kept on the device
    tokens: int = 0  # seen this epoch
    seconds: float = 0.0  # training time of this epoch so far
    best_epoch: int = 0
    best_score: float = -math.inf
    best_state: dict | None = None
    stale: int = 0  # epochs since the best one
    stopped: bool = False  # early-stopped, or all epochs done
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0  # over the whole run, restarts included

    def keep_best(self, epoch: int, score: float, model: nn.Module) -> None:
        """`model`'s weights (a copy) as the best so far: epoch `epoch`, validation score `score`."""
        self.best_epoch, self.best_score, self.stale = epoch, score, 0
        self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}


def check_finite(progress: Progress, n_batches: int) -> torch.Tensor:
    """This epoch's losses so far (averaged over DDP processes); TrainingDiverged names the first NaN/inf step.

    One device sync per call, and a collective under DDP: every process sees the same losses, so all stop together.
    """
    seen = distributed.mean(progress.losses[: progress.batch])
    if bool(torch.isfinite(seen).all()):
        return seen
    i = int((~torch.isfinite(seen)).nonzero()[0])
    step = progress.step - progress.batch + i + 1
    raise TrainingDiverged(f"the training loss became {seen[i].item()} at step {step} "
                           f"(epoch {progress.epoch}, batch {i + 1}/{n_batches})")


def adversarial_delta(grad: torch.Tensor, embedded: torch.Tensor, size: float) -> torch.Tensor:
    """The perturbation of each text's embedded tokens [B, T, E] that raises its loss fastest to first order.

    Miyato et al. (2017), "Adversarial training methods for semi-supervised text classification": the loss
    gradient, L2-normalised over the whole text. Its norm is `size` times the norm of the text's embedded
    tokens, so `size` is relative and means the same whatever the embedding's scale.
    """
    per_text = lambda t: t.float().flatten(1).norm(dim=1).clamp(min=1e-12)[:, None, None]  # noqa: E731
    return (size * per_text(embedded) / per_text(grad) * grad.float()).detach()


def adversarial_rows(lengths: torch.Tensor, fraction: float) -> torch.Tensor | None:
    """Which rows of a batch take the adversarial pass: a random `fraction` of them (at least one), in batch
    order (a longest-first batch stays so); None for all. Drawn from torch's CPU generator, which checkpoints
    save, so a resumed run draws the same rows."""
    n = len(lengths)
    k = max(1, round(fraction * n))
    return None if k >= n else torch.randperm(n)[:k].sort().values


def train_step(model: nn.Module, batch, opt, sched, scaler: torch.amp.GradScaler, device: torch.device, clip: float,
               dtype: torch.dtype | None, class_weights: torch.Tensor | None = None,
               adversarial: float = 0.0, adversarial_fraction: float = 1.0) -> torch.Tensor:
    """One optimizer step on one batch; its loss, left on the device (no sync).

    `adversarial` > 0 adds adversarial training: the batch also trains on its embedded tokens pushed by
    `adversarial_delta` (a second forward and backward pass). `adversarial_fraction` < 1 makes that pass on a
    random share of the rows only (`adversarial_rows`): the mean of their pushed losses is an unbiased
    estimate of the whole batch's, at a fraction of the pass's cost.
    `model` is the classifier, or its DistributedDataParallel wrapper under torchrun.
    """
    embedding = getattr(model, "module", model).embedding  # under DDP, model is the wrapper
    # Under DDP the first of the two adversarial passes only accumulates gradients: one all-reduce a step, not two
    first_pass = model.no_sync if adversarial and hasattr(model, "no_sync") else contextlib.nullcontext
    x, y = to_device(batch, device)
    delta = torch.zeros(*x.shape, embedding.embedding_dim, device=device, requires_grad=True) if adversarial else None
    with first_pass():
        with autocast(device, dtype):
            loss = loss_fn(model(x, batch.lengths, delta), y, class_weights)
        opt.zero_grad(set_to_none=True)
        if adversarial:
            scaler.scale(loss).backward()
    if not adversarial:
        optimizer_step(loss, opt, sched, scaler, model, clip)
        return loss.detach()
    with torch.no_grad():  # delta.grad: the loss gradient at the embedded tokens (fp16's scale is normalised away)
        push = adversarial_delta(delta.grad, embedding(x), adversarial)
        if scaler.is_enabled():  # fp16: an overflow (inf in delta.grad) is routine, and the scaler skips
            push.nan_to_num_(0.0, 0.0, 0.0)  # the step; a NaN push would make it look like divergence
    lengths, rows = batch.lengths, adversarial_rows(batch.lengths, adversarial_fraction)
    if rows is not None:  # the chosen rows, cut to their longest text (lengths stay on the CPU: no sync)
        lengths, on_device = lengths[rows], rows.to(device, non_blocking=True)
        t = max(1, int(lengths.max()))
        x, y, push = x[on_device, :t], y[on_device], push[on_device, :t]
    with autocast(device, dtype):
        pushed = loss_fn(model(x, lengths, push), y, class_weights)
    optimizer_step(pushed, opt, sched, scaler, model, clip)
    return loss.detach() + 0.0 * pushed.detach()  # the clean loss is logged; a NaN/inf of either pass shows


def train_epoch(model: nn.Module, loader: DataLoader, opt, sched, device: torch.device, clip: float,
                dtype: torch.dtype | None, scaler: torch.amp.GradScaler, progress: Progress, desc: str = "train",
                class_weights: torch.Tensor | None = None,
                on_step: Callable[[Progress], None] | None = None, adversarial: float = 0.0,
                adversarial_fraction: float = 1.0) -> None:
    """Train on the loader's batches (its sampler may start mid-epoch) with `train_step`, advancing `progress`.

    Losses stay on the device and are checked for NaN/inf every SYNC_EVERY steps (and by `on_step` before a
    checkpoint), never per batch: an `.item()` per step would stall the CUDA queue.
    """
    model.train()
    bar = tqdm(loader, desc=desc, unit=" batch", leave=False, disable=distributed.tqdm_disable(),
               initial=progress.batch, total=len(loader))
    clock = time.perf_counter()
    for batch in bar:
        progress.losses[progress.batch] = train_step(model, batch, opt, sched, scaler, device, clip, dtype,
                                                     class_weights, adversarial, adversarial_fraction)
        progress.batch += 1
        progress.step += 1
        progress.tokens += int(batch.lengths.sum())  # lengths live on the CPU: no sync
        now = time.perf_counter()
        progress.seconds, clock = progress.seconds + now - clock, now
        if sync_due(progress.batch, device):
            seen = check_finite(progress, len(loader))
            if not bar.disable:
                bar.set_postfix(loss=f"{seen.mean().item():.4f}")
        if on_step is not None:
            on_step(progress)


def validate(model: nn.Module, loader: DataLoader, device: torch.device, label_names: list[str],
             dtype: torch.dtype | None = None, desc: str = "validate") -> dict:
    """The metrics that pick the epoch: those of `predict_loader`'s probabilities, its loss, and the loss after
    temperature scaling. A loader sharded over the processes (torchrun) is summed over them: every process gets the
    same numbers."""
    probs, loss = predict_loader(model, loader, device, dtype, desc, reduce=distributed.all_sum,
                                 quiet=distributed.tqdm_disable())
    metrics = compute(loader.dataset.labels, probs, label_names)
    metrics["loss"] = loss
    if loss is not None:  # what the saved model will say: its probabilities are temperature-scaled
        metrics["calibrated_loss"] = calibrated_log_loss(probs, loader.dataset.labels)
    return metrics


@dataclass
class FitResult:
    best_epoch: int
    best_score: float
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    precision: str = "float32"  # or "bfloat16 autocast" / "float16 autocast"


def _score(metrics: dict, monitor: str) -> float:
    """Higher is better. `loss` is the validation log-loss after temperature scaling: the loss of the
    probabilities the model will give. Raw, it rises as soon as a few errors grow confident, often while
    accuracy still climbs (on small data, after the first epoch)."""
    return float(-metrics["calibrated_loss"] if monitor == "loss" else metrics[monitor])


def _checkpoint_payload(model, opt, sched, scaler, p: Progress, losses: torch.Tensor, rngs: list[dict]) -> dict:
    """Tensors and primitives only (history as JSON text), so torch.load(weights_only=True) reads it.

    `losses`: the epoch's so far, averaged over processes; `rngs`: every process's RNG states, by rank.
    """
    return {"epoch": p.epoch, "batch": p.batch, "step": p.step,
            "epoch_losses": losses.detach().cpu(),
            "epoch_tokens": p.tokens, "epoch_seconds": p.seconds, "train_seconds": p.train_seconds,
            "best_epoch": p.best_epoch, "best_score": p.best_score, "best_state": p.best_state or {},
            "stale": p.stale, "stopped": p.stopped, "history": json.dumps(p.history),
            "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict(), "rng": rngs[0], **({"rng_by_rank": rngs} if len(rngs) > 1 else {})}


def _restore(ckpt: dict, model, opt, sched, scaler, device: torch.device, n_batches: int) -> Progress:
    """Load a checkpoint's states; the RNG comes last (see `fit`). Tensors were read on the CPU."""
    try:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])  # moves the moments to the parameters' device
        sched.load_state_dict(ckpt["scheduler"])
        if ckpt["scaler"]:  # empty when saved without fp16 loss scaling (CPU, bf16)
            scaler.load_state_dict(ckpt["scaler"])
        losses = torch.zeros(n_batches, device=device)
        losses[: ckpt["batch"]] = ckpt["epoch_losses"].to(device)
        best = {k: v.to(device) for k, v in ckpt["best_state"].items()} or None
        return Progress(ckpt["epoch"], ckpt["batch"], ckpt["step"], losses, ckpt["epoch_tokens"],
                        ckpt["epoch_seconds"], ckpt["best_epoch"], ckpt["best_score"], best, ckpt["stale"],
                        ckpt["stopped"], json.loads(ckpt["history"]), ckpt["train_seconds"])
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise TextclfError(f"{ckpt.get('path', 'the checkpoint')} does not fit this model ({first_line(e)[:200]}); "
                           "resume with the run's own config, or start a new run_dir") from None


class Preempted(Exception):
    """Training stopped on SIGTERM (a scheduler preempting the job) after writing `checkpoint`: resume from it."""

    def __init__(self, checkpoint: Path, step: int):
        super().__init__(f"stopped by SIGTERM at step {step}: checkpoint {checkpoint}")
        self.checkpoint, self.step = checkpoint, step


class _Sigterm:
    """While installed, SIGTERM only sets a flag that the loop reads between steps: a checkpoint written from
    inside the handler could catch the optimizer half-way through a step."""

    def __init__(self) -> None:
        self.received, self.installed, self.previous = False, False, None
        # signal.signal works in the main thread only; a SIGTERM someone chose to ignore stays ignored
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) != signal.SIG_IGN:
            self.previous = signal.signal(signal.SIGTERM, self._handle)
            self.installed = True

    def _handle(self, signum, frame) -> None:
        self.received = True

    def restore(self) -> None:
        if self.installed:  # None: the previous handler was not set from Python; the default is the best guess
            signal.signal(signal.SIGTERM, signal.SIG_DFL if self.previous is None else self.previous)

    def agreed(self, sync: bool) -> bool:
        """Whether to stop now. Under torchrun every process must stop at the same step (the checkpoint is a
        collective), so the flags are summed over processes, only where `sync` is true: a collective every
        step would stall the GPUs."""
        if not distributed.active():
            return self.received
        return sync and bool(distributed.all_sum(torch.tensor(int(self.received))).item())


@contextlib.contextmanager
def deterministic(enabled: bool):
    """train.deterministic: only deterministic kernels (an op without one raises), no cuDNN autotuning."""
    if not enabled:
        yield
        return
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
              torch.backends.cudnn.benchmark)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when the first cuBLAS handle is made
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[1:]


def planned_epochs(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """`cfg.epochs`, or more on data too small for `cfg.min_steps` optimizer steps in that many epochs: a model
    trained on a few thousand short texts was still learning when the recipe's epochs were up (benchmarks/README.md)."""
    return max(cfg.epochs, -(-cfg.min_steps // max(steps_per_epoch, 1)))


@dataclass
class Hooks:
    """What a caller of `fit` hears of, and does, as training goes."""

    log_path: Path | None = None  # log.jsonl: a row per epoch
    on_epoch: Callable[[dict], None] | None = None  # each epoch's row (TensorBoard)
    on_best: Callable[[nn.Module], None] | None = None  # the model, each time it is the best so far (saved)
    on_epoch_start: Callable[[int], None] | None = None  # before each epoch, a resumed one too (freezing)


class _Loop:
    """One `fit`: the model with its optimizer, schedule and precision, where training stands (`Progress`), and
    the checkpoints it writes; `fit` runs its steps in order."""

    def __init__(self, model: nn.Module, train_loader: DataLoader, cfg: TrainConfig, device: torch.device,
                 checkpoints: Checkpoints | None, resume: dict | None):
        model.to(device)
        self.model, self.loader, self.cfg, self.device, self.checkpoints = model, train_loader, cfg, device, checkpoints
        self.opt = make_optimizer(model, cfg.lr, cfg.weight_decay, cfg.layer_lr_decay)
        self.n = len(train_loader)
        self.epochs = planned_epochs(cfg, self.n)
        if self.epochs > cfg.epochs:
            log.info("epochs: %d, not train.epochs=%d: %d optimizer steps an epoch reach train.min_steps=%d only then "
                     "(train.min_steps=0 keeps train.epochs)", self.epochs, cfg.epochs, self.n, cfg.min_steps)
        self.sched = make_scheduler(self.opt, cfg.scheduler, self.epochs * self.n, cfg.warmup_ratio)
        self.dtype = amp_dtype(device, cfg.amp, cfg.amp_cpu, cfg.amp_gpu)
        self.precision = f"{str(self.dtype).removeprefix('torch.')} autocast" if self.dtype else "float32"
        log.info("precision: %s", f"{self.precision}, float32 weights" if self.dtype else self.precision)
        self.scaler = grad_scaler(device, self.dtype)
        self.p = _restore(resume, model, self.opt, self.sched, self.scaler, device, self.n) if resume else Progress()
        if resume:
            log.info("resuming from %s: epoch %d, batch %d/%d (step %d)", resume["path"], self.p.epoch, self.p.batch,
                     self.n, self.p.step)
            # Last, after everything that draws randomness, so dropout continues where it stopped. The
            # loaders have generators of their own: starting an epoch draws nothing from these RNGs.
            set_rng_state(resume.get("rng_by_rank", [resume["rng"]])[distributed.rank()])
        else:
            distributed.seed_per_process(cfg.seed)
        self.ddp, self.trainable = model, None
        self.sigterm = None

    def save_checkpoint(self) -> None:
        p = self.p
        losses = check_finite(p, self.n)  # diverged weights never replace the last good checkpoint
        rngs = distributed.all_gather(rng_state())  # under DDP each process resumes its own dropout stream
        self.checkpoints.write(p.step, _checkpoint_payload(self.model, self.opt, self.sched, self.scaler, p, losses,
                                                           rngs))

    def stop_if_preempted(self, sync: bool) -> None:
        if self.sigterm is not None and self.sigterm.agreed(sync):
            self.save_checkpoint()
            log.warning("SIGTERM: wrote %s at step %d and stopped", self.checkpoints.last, self.p.step)
            raise Preempted(self.checkpoints.last, self.p.step)

    def on_step(self, progress: Progress) -> None:
        every = self.checkpoints.every_steps
        if every and progress.step % every == 0 and progress.batch < self.n:
            self.save_checkpoint()
        self.stop_if_preempted(progress.batch % SYNC_EVERY == 0 or progress.batch == self.n)  # where it syncs anyway

    def train(self, epoch: int, class_weights: torch.Tensor | None) -> None:
        """One epoch's batches (or the rest of a resumed one), through DDP when the process group has several."""
        p, cfg = self.p, self.cfg
        if p.batch == 0:
            p.losses, p.tokens, p.seconds = torch.zeros(self.n, device=self.device), 0, 0.0
        if self.trainable != (now := [q.requires_grad for q in self.model.parameters()]):
            self.ddp = None  # the old wrapper's gradient hooks go before the new one's come
            self.ddp, self.trainable = distributed.wrap(self.model, self.device), now
        self.loader.batch_sampler.set_epoch(epoch, start=p.batch)
        train_epoch(self.ddp, self.loader, self.opt, self.sched, self.device, cfg.clip_grad_norm, self.dtype,
                    self.scaler, p, desc=f"epoch {epoch}/{self.epochs}", class_weights=class_weights,
                    on_step=self.on_step if self.checkpoints else None, adversarial=cfg.adversarial,
                    adversarial_fraction=cfg.adversarial_fraction)

    def train_loss(self) -> float:
        """The epoch's mean training loss; TrainingDiverged if a step's was NaN or infinite."""
        return check_finite(self.p, self.n).sum().item() / self.n

    def report(self, epoch: int, train_loss: float, val: dict, clock: float) -> dict:
        """The epoch's row (log.jsonl), after its validation; `clock`: when the epoch's training ended."""
        p = self.p
        seconds = p.seconds + time.perf_counter() - clock
        p.train_seconds += seconds
        tokens = int(distributed.all_sum(torch.tensor(p.tokens)))  # of all processes
        row = {"epoch": epoch, "train_loss": round(train_loss, 6), "val_loss": val["loss"],
               "val_accuracy": val["accuracy"], "val_f1": val["f1"], "val_roc_auc": val["roc_auc"],
               "lr": self.opt.param_groups[0]["lr"], "train_seconds": round(p.seconds, 2),
               "tokens_per_s": round(tokens / max(p.seconds, 1e-9)), "seconds": round(seconds, 2)}
        p.history.append(row)
        return row

    def judge(self, epoch: int, val: dict) -> bool:
        """Whether this epoch is the best so far (kept), else one more without progress."""
        score = _score(val, self.cfg.monitor)
        if score > self.p.best_score:
            self.p.keep_best(epoch, score, self.model)
            return True
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


def _log_epoch(row: dict, epochs: int, improved: bool, hooks: Hooks) -> None:
    log.info("epoch %d/%d  train_loss %.4f  val_loss %.4f  val_acc %.4f  val_f1 %.4f  %.0fs  %s tok/s%s",
             row["epoch"], epochs, row["train_loss"], row["val_loss"], row["val_accuracy"], row["val_f1"],
             row["seconds"], f"{row['tokens_per_s']:,}", "  *best" if improved else "")
    if hooks.log_path is not None:
        with open(hooks.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


def fit(model: nn.Module, train_loader: DataLoader, val_loader: DataLoader, cfg: TrainConfig,
        device: torch.device, label_names: list[str], hooks: Hooks | None = None,
        class_weights: torch.Tensor | None = None, checkpoints: Checkpoints | None = None,
        resume: dict | None = None, start_as_best: bool = False) -> FitResult:
    """Train for up to `cfg.epochs`, or as many more as make `cfg.min_steps` optimizer steps; keep the weights
    of the best validation epoch (restored at the end).

    With `checkpoints`, the whole training state is saved at epoch ends (and every `every_steps`
    steps); `resume`, a loaded checkpoint, continues from it exactly: on CPU, bit for bit.
    `start_as_best`: the model as it starts is scored on validation as epoch 0, a candidate like the epochs
    (fine-tuning: the start's network, whose best epoch may be none; the start model in full is weighed against
    the result later, `Calibration.fit_start`).

    In a torchrun process group, every process calls `fit` with its share of the training batches and of the
    validation texts (see `make_loader`); training runs through DistributedDataParallel, validation metrics
    are those of the whole split, and so every process makes the same early-stopping decisions.
    """
    hooks = hooks or Hooks()
    run = _Loop(model, train_loader, cfg, device, checkpoints, resume)
    p = run.p
    if start_as_best and resume is None:
        val = validate(model, val_loader, device, label_names, run.dtype)
        p.keep_best(0, _score(val, cfg.monitor), model)
        log.info("epoch 0 (the model it starts from)  val_loss %.4f  val_acc %.4f  val_f1 %.4f", val["loss"],
                 val["accuracy"], val["f1"])
        if hooks.on_best is not None:
            hooks.on_best(model)
    run.sigterm = _Sigterm() if checkpoints else None  # without checkpoints there is nothing to resume from
    try:
        for epoch in range(p.epoch, run.epochs + 1):
            if p.stopped:
                break
            if hooks.on_epoch_start is not None:
                hooks.on_epoch_start(epoch)
            run.train(epoch, class_weights)
            clock, train_loss = time.perf_counter(), run.train_loss()
            val = validate(model, val_loader, device, label_names, run.dtype)
            row = run.report(epoch, train_loss, val, clock)
            improved = run.judge(epoch, val)
            _log_epoch(row, run.epochs, improved, hooks)
            if improved and hooks.on_best is not None:
                hooks.on_best(model)
            if hooks.on_epoch is not None:
                hooks.on_epoch(row)
            run.end_epoch(epoch)
    except TrainingDiverged as e:
        kept = f"the last good checkpoint {checkpoints.last} is kept" if checkpoints and checkpoints.last else (
            "no checkpoint was written")
        raise TrainingDiverged(f"{e}; {kept}; lower train.lr (or set train.clip_grad_norm) and train again") from None
    finally:
        if run.sigterm is not None:
            run.sigterm.restore()
    if p.best_state is not None:
        model.load_state_dict(p.best_state)
    return FitResult(p.best_epoch, p.best_score, p.history, p.train_seconds, run.precision)
