"""One training step (adversarial training too) and an epoch of them: the inner loop that `trainer.Loop` runs."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..device import autocast, loss_fn, to_device
from ..errors import TrainingDiverged
from . import distributed
from .adversarial import adversarial_delta, adversarial_rows
from .checkpoint import Progress
from .optim import optimizer_step, sync_due


@dataclass
class StepSetup:
    """What a training step uses beside the model and the batch: the optimizer, its schedule and fp16 loss scaler,
    the device and autocast precision, and the loss's settings (the `train.*` of the same names)."""

    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    device: torch.device
    dtype: torch.dtype | None = None  # None: float32
    clip: float = 0.0  # the gradients' norm, 0: not clipped
    class_weights: torch.Tensor | None = None
    adversarial: float = 0.0
    adversarial_fraction: float = 1.0


def train_step(model: nn.Module, batch, s: StepSetup) -> torch.Tensor:
    """One optimizer step on one batch; its loss, left on the device (no sync).

    `s.adversarial` > 0 adds adversarial training: the batch also trains on its embedded tokens pushed by
    `adversarial_delta` (a second forward and backward pass). `s.adversarial_fraction` < 1 makes that pass on a
    random share of the rows only (`adversarial_rows`): the mean of their pushed losses is an unbiased
    estimate of the whole batch's, at a fraction of the pass's cost.
    `model` is the classifier, or its DistributedDataParallel wrapper under torchrun.
    """
    embedding = getattr(model, "module", model).embedding  # under DDP, model is the wrapper
    # Under DDP the first of the two adversarial passes only accumulates gradients: one all-reduce a step, not two
    first_pass = model.no_sync if s.adversarial and hasattr(model, "no_sync") else contextlib.nullcontext
    x, y = to_device(batch, s.device)
    delta = torch.zeros(*x.shape, embedding.embedding_dim, device=s.device, requires_grad=True) \
        if s.adversarial else None
    with first_pass():
        with autocast(s.device, s.dtype):
            loss = loss_fn(model(x, batch.lengths, delta), y, s.class_weights)
        s.opt.zero_grad(set_to_none=True)
        if s.adversarial:
            s.scaler.scale(loss).backward()
    if not s.adversarial:
        optimizer_step(loss, s.opt, s.sched, s.scaler, model, s.clip)
        return loss.detach()
    with torch.no_grad():  # delta.grad: the loss gradient at the embedded tokens (fp16's scale is normalised away)
        push = adversarial_delta(delta.grad, embedding(x), s.adversarial)
        if s.scaler.is_enabled():  # fp16: an overflow (inf in delta.grad) is routine, and the scaler skips
            push.nan_to_num_(0.0, 0.0, 0.0)  # the step; a NaN push would make it look like divergence
    lengths, rows = batch.lengths, adversarial_rows(batch.lengths, s.adversarial_fraction)
    if rows is not None:  # the chosen rows, cut to their longest text (lengths stay on the CPU: no sync)
        lengths, on_device = lengths[rows], rows.to(s.device, non_blocking=True)
        t = max(1, int(lengths.max()))
        x, y, push = x[on_device, :t], y[on_device], push[on_device, :t]
    with autocast(s.device, s.dtype):
        pushed = loss_fn(model(x, lengths, push), y, s.class_weights)
    optimizer_step(pushed, s.opt, s.sched, s.scaler, model, s.clip)
    return loss.detach() + 0.0 * pushed.detach()  # the clean loss is logged; a NaN/inf of either pass shows


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


def train_epoch(model: nn.Module, loader: DataLoader, s: StepSetup, progress: Progress, desc: str = "train",
                on_step: Callable[[Progress], None] | None = None) -> None:
    """Train on the loader's batches (its sampler may start mid-epoch) with `train_step`, advancing `progress`.

    Losses stay on the device and are checked for NaN/inf every SYNC_EVERY steps (and by `on_step` before a
    checkpoint), never per batch: an `.item()` per step would stall the CUDA queue.
    """
    model.train()
    bar = tqdm(loader, desc=desc, unit=" batch", leave=False, disable=distributed.tqdm_disable(),
               initial=progress.batch, total=len(loader))
    clock = time.perf_counter()
    for batch in bar:
        progress.losses[progress.batch] = train_step(model, batch, s)
        progress.batch += 1
        progress.step += 1
        progress.tokens += int(batch.lengths.sum())  # lengths live on the CPU: no sync
        now = time.perf_counter()
        progress.seconds, clock = progress.seconds + now - clock, now
        if sync_due(progress.batch, s.device):
            seen = check_finite(progress, len(loader))
            if not bar.disable:
                bar.set_postfix(loss=f"{seen.mean().item():.4f}")
        if on_step is not None:
            on_step(progress)
