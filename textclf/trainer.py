"""The training loop: AdamW, warmup + decay, clipping, AMP on CUDA, early stopping on validation."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from .config import TrainConfig
from .metrics import compute
from .model import LSTMClassifier

log = logging.getLogger(__name__)


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" → cuda, then mps, then cpu."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """bf16 where the GPU has it, else fp16 (with a GradScaler); None means full precision."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def loss_fn(logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """One logit → BCEWithLogits on the positive class; k logits → cross-entropy."""
    if logits.dim() == 1:
        pos_weight = None if class_weights is None else class_weights[1] / class_weights[0]
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float(), pos_weight=pos_weight)
    return F.cross_entropy(logits.float(), labels, weight=class_weights)


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse class frequency (`train.class_weights=balanced`), 1.0 everywhere for balanced data."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return torch.tensor(len(labels) / (num_classes * np.maximum(counts, 1)), dtype=torch.float32)


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """Weight decay on matrices only; biases and the embedding table are left alone."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 and not name.startswith("embedding") else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


def make_scheduler(opt: torch.optim.Optimizer, kind: str, total_steps: int, warmup_ratio: float):
    warmup = max(1, int(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if kind == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        if kind == "linear":
            return 1 - progress
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _to(batch, device: torch.device):
    non_blocking = device.type == "cuda"  # pinned host memory → async copy
    return batch.tokens.to(device, non_blocking=non_blocking), batch.labels.to(device, non_blocking=non_blocking)


def train_epoch(model: LSTMClassifier, loader: DataLoader, opt, sched, device: torch.device, clip: float,
                dtype: torch.dtype | None, scaler: torch.amp.GradScaler, desc: str = "train",
                class_weights: torch.Tensor | None = None) -> tuple[float, int]:
    """One pass over `loader`; returns (mean loss, tokens seen). Syncs with the device only every 50 steps."""
    model.train()
    total, tokens = torch.zeros((), device=device), 0
    bar = tqdm(loader, desc=desc, unit=" batch", leave=False, disable=None)
    for step, batch in enumerate(bar):
        x, y = _to(batch, device)
        with autocast(device, dtype):
            loss = loss_fn(model(x, batch.lengths), y, class_weights)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if clip > 0:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        scaler.step(opt)
        scaler.update()
        sched.step()
        total += loss.detach()
        tokens += int(batch.lengths.sum())
        if step % 50 == 49 and not bar.disable:
            bar.set_postfix(loss=f"{total.item() / (step + 1):.4f}")
    return total.item() / max(1, len(loader)), tokens


@torch.no_grad()
def predict_loader(model: LSTMClassifier, loader: DataLoader, device: torch.device,
                   dtype: torch.dtype | None = None, desc: str = "predict") -> tuple[np.ndarray, float | None]:
    """Class probabilities [N, C] in dataset order, and the mean loss when the data has labels."""
    model.eval()
    n = len(loader.dataset)
    probs = torch.empty(n, model.num_classes)
    loss_sum, labelled = torch.zeros((), device=device), True
    for batch in tqdm(loader, desc=desc, unit=" batch", leave=False, disable=None):
        x, y = _to(batch, device)
        with autocast(device, dtype):
            logits = model(x, batch.lengths)
        probs[batch.index] = model.probabilities(logits).cpu()
        labelled = labelled and bool((batch.labels >= 0).all())
        if labelled:
            loss_sum += loss_fn(logits, y) * len(batch.index)
    return probs.numpy(), (loss_sum.item() / n if labelled and n else None)


def evaluate(model: LSTMClassifier, loader: DataLoader, device: torch.device, label_names: list[str],
             dtype: torch.dtype | None = None, desc: str = "evaluate") -> dict:
    probs, loss = predict_loader(model, loader, device, dtype, desc)
    metrics = compute(loader.dataset.labels, probs, label_names)
    metrics["loss"] = loss
    return metrics


@dataclass
class FitResult:
    best_epoch: int
    best_score: float
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def _score(metrics: dict, monitor: str) -> float:
    return -metrics["loss"] if monitor == "loss" else metrics[monitor]


def fit(model: LSTMClassifier, train_loader: DataLoader, val_loader: DataLoader, cfg: TrainConfig,
        device: torch.device, label_names: list[str], log_path: Path | None = None,
        class_weights: torch.Tensor | None = None, on_epoch: Callable[[dict], None] | None = None,
        on_epoch_start: Callable[[int], None] | None = None) -> FitResult:
    """Train for up to `cfg.epochs`; keep the weights of the best validation epoch (restored at the end).

    `on_epoch_start(epoch)` runs before each epoch (fine-tuning freezes and unfreezes layers there).
    """
    model.to(device)
    opt = make_optimizer(model, cfg.lr, cfg.weight_decay)
    sched = make_scheduler(opt, cfg.scheduler, cfg.epochs * len(train_loader), cfg.warmup_ratio)
    dtype = amp_dtype(device, cfg.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    result, best_state, stale, start = FitResult(0, -math.inf), None, 0, time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        train_loader.batch_sampler.set_epoch(epoch)
        train_loss, tokens = train_epoch(model, train_loader, opt, sched, device, cfg.clip_grad_norm, dtype,
                                         scaler, desc=f"epoch {epoch}/{cfg.epochs}", class_weights=class_weights)
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"training loss became {train_loss} in epoch {epoch}; lower train.lr")
        train_seconds = time.perf_counter() - t0
        val = evaluate(model, val_loader, device, label_names, dtype, desc="validate")
        row = {"epoch": epoch, "train_loss": round(train_loss, 6), "val_loss": val["loss"],
               "val_accuracy": val["accuracy"], "val_f1": val["f1"], "val_roc_auc": val["roc_auc"],
               "lr": opt.param_groups[0]["lr"], "train_seconds": round(train_seconds, 2),
               "tokens_per_s": round(tokens / train_seconds), "seconds": round(time.perf_counter() - t0, 2)}
        result.history.append(row)
        score = _score(val, cfg.monitor)
        improved = score > result.best_score
        if improved:
            result.best_epoch, result.best_score, stale = epoch, score, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        log.info("epoch %d/%d  train_loss %.4f  val_loss %.4f  val_acc %.4f  val_f1 %.4f  %.0fs  %s tok/s%s",
                 epoch, cfg.epochs, train_loss, val["loss"], val["accuracy"], val["f1"], row["seconds"],
                 f"{row['tokens_per_s']:,}", "  *best" if improved else "")
        if log_path is not None:
            with open(log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        if on_epoch is not None:
            on_epoch(row)
        if stale >= cfg.patience:
            log.info("early stop: no better validation %s for %d epochs", cfg.monitor, stale)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - start
    return result
