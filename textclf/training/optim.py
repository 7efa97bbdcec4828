"""The optimizer side of a training step, one copy for the classifier (trainer) and the language model (lm):
the precision, AdamW and its schedule, the mixed-precision step, and how often a step may wait for the device."""

from __future__ import annotations

import logging
import math

import torch
from torch import nn

from ..allocator import release_memory
from ..device import cpu_bf16_faster, cpu_bf16_lstm_runs, native_gpu_bf16
from ..errors import TextclfError

log = logging.getLogger(__name__)

# Steps between the loops' host syncs: the NaN/inf check of the losses (kept on the device until then), the
# progress bar's figure, and handing freed heap pages back on the CPU. Each sync drains CUDA's queue, so
# not every step; a run that diverges stops at most this many steps later.
SYNC_EVERY = 50


def sync_due(step: int, device: torch.device) -> bool:
    """Whether step `step` (1-based) is one at which the loop may sync with the device; on the CPU it then
    also trims the heap."""
    if step % SYNC_EVERY:
        return False
    if device.type == "cpu":
        release_memory()
    return True


def amp_dtype(device: torch.device, enabled: bool, cpu: str = "false", gpu: str = "auto") -> torch.dtype | None:
    """Without `enabled` (train.amp=false): None, full precision, on every device. On CUDA: bf16 where `device`
    computes it natively (`gpu` "auto"), else fp16 (with a GradScaler); `gpu` "bf16" or "fp16" forces one. On the
    CPU, bf16 when `cpu` is "true", or "auto" and bf16 is measured faster than float32 there
    (`inference.cpu_bf16_faster`). On the CPU, autocast runs the LSTM (oneDNN) and the head in bf16, the rest in
    float32."""
    if not enabled:
        return None
    if device.type == "cpu":
        if cpu == "auto":
            return torch.bfloat16 if cpu_bf16_faster() else None
        if cpu == "true" and not cpu_bf16_lstm_runs():
            raise TextclfError("train.amp_cpu=true: this CPU cannot run the LSTM in bf16 (no AVX-512); "
                               "set train.amp_cpu=auto or false")
        if cpu == "true" and not cpu_bf16_faster():
            log.warning("train.amp_cpu=true: this CPU runs bf16 no faster than float32 (it emulates bf16, or has "
                        "no AMX), or has no bf16 LSTM at all (an error); set train.amp_cpu=auto or false")
        return torch.bfloat16 if cpu == "true" else None
    if device.type != "cuda":
        return None
    if gpu == "auto":
        return torch.bfloat16 if native_gpu_bf16(device) else torch.float16
    if gpu == "bf16" and not native_gpu_bf16(device):
        log.warning("train.amp_gpu=bf16: this GPU (compute capability %d.%d) emulates bf16, slower than fp16; "
                    "set train.amp_gpu=auto", *torch.cuda.get_device_capability(device))
    return torch.bfloat16 if gpu == "bf16" else torch.float16


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """fp16 needs its loss scaled so small gradients survive; with bf16 or float32 the scaler does nothing."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def make_optimizer(model: nn.Module, lr: float, weight_decay: float, layer_decay: float = 1.0) -> torch.optim.AdamW:
    """Weight decay on matrices only; biases and the embedding table are left alone.

    `layer_decay` > 1 gives each layer below the head a smaller rate (ULMFiT's discriminative fine-tuning,
    Howard & Ruder 2018): the LSTM lr / layer_decay, the embedding lr / layer_decay**2, so the layers that
    carry the most pretrained knowledge move least. The fused kernel where there is one (CPU, CUDA): one
    pass over every parameter instead of a dozen.
    """
    depth = {"embedding": 2, "lstm": 1} if layer_decay != 1 else {}
    groups: dict[tuple[int, bool], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            decays = p.dim() >= 2 and not name.startswith("embedding")
            groups.setdefault((depth.get(name.split(".")[0], 0), not decays), []).append(p)
    params = [q for ps in groups.values() for q in ps]
    fused = all(q.device.type in ("cpu", "cuda") for q in params)
    return torch.optim.AdamW([{"params": ps, "lr": lr / layer_decay**d, "weight_decay": 0 if no_decay else weight_decay}
                              for (d, no_decay), ps in sorted(groups.items())], lr=lr, fused=fused)


def make_scheduler(opt: torch.optim.Optimizer, kind: str, total_steps: int, warmup_ratio: float):
    """A linear warmup over `warmup_ratio` of the steps, then cosine or linear decay to 0, or constant."""
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


def optimizer_step(loss: torch.Tensor, opt: torch.optim.Optimizer, sched, scaler: torch.amp.GradScaler,
                   model: nn.Module, clip: float) -> None:
    """The end of a training step: `loss`'s backward pass (scaled for fp16), then unscale and clip the
    gradients' norm to `clip` (0: no clipping; clip_grad_norm_(..., 0) would zero every gradient), step (the
    scaler skips a step whose fp16 gradients overflowed), adjust the loss scale, advance the schedule.

    The caller zeroes the gradients first; a step with two passes (adversarial training)
    runs the first one's backward itself, `scaler.scale(loss).backward()`, and hands the second one here.
    """
    scaler.scale(loss).backward()
    if clip > 0:
        scaler.unscale_(opt)
        nn.utils.clip_grad_norm_(model.parameters(), clip)
    scaler.step(opt)
    scaler.update()
    sched.step()
