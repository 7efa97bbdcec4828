"""Training in several processes under torchrun: the process group, each process's device, the few collectives.

Without torchrun (no WORLD_SIZE > 1) nothing here starts a group and every helper is the identity or a no-op, so
`python train.py` runs exactly as it did before this module existed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..errors import TextclfError

log = logging.getLogger(__name__)

_device: torch.device | None = None  # where this process's collectives run: its GPU under nccl, else the CPU
# How long the others wait for rank 0 to tokenise and pretrain (main_first): hours, not the group's default
# (10 minutes with nccl, 30 with gloo). NCCL's barrier ignores a timeout passed to it, so these waits run on a
# gloo group of their own, created with this timeout: waiting costs the GPUs nothing.
# Every other collective keeps the group's timeout, and a failed process makes torchrun stop the rest anyway.
PREPARE_TIMEOUT = timedelta(hours=12)
_waits: dist.ProcessGroup | None = None  # that gloo group, while process_group() holds one


def launched() -> bool:
    """True in a process that torchrun started as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """True once this process has joined a process group."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank: from the group, else as torchrun set it (0 without torchrun)."""
    return dist.get_rank() if active() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Processes in the group; 1 without one."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0: the one process that writes files and logs progress."""
    return rank() == 0


def tqdm_disable() -> bool | None:
    """tqdm's `disable`: tqdm decides (on a TTY only) in the main process; the others draw no bars."""
    return None if is_main() else True


def _collective_device(device: torch.device) -> torch.device:
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise TextclfError(f'training with torchrun runs on cuda or cpu, not "{device.type}"; pass train.device=cpu')
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.index not in (None, local):
        raise TextclfError(f'under torchrun each process uses the GPU of its LOCAL_RANK (cuda:{local}), not '
                           f'"{device}"; pass train.device=cuda or auto (and CUDA_VISIBLE_DEVICES to pick GPUs)')
    if local >= torch.cuda.device_count():
        raise TextclfError(f"LOCAL_RANK {local} has no GPU: this machine has {torch.cuda.device_count()}; "
                           "start at most that many processes per node")
    return torch.device("cuda", local)


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[torch.device]:
    """Under torchrun, join the group (nccl on CUDA, gloo on CPU) and yield this process's device.

    The group is left on the way out, errors included. Processes other than rank 0 log errors only (their
    warnings would repeat rank 0's). Without torchrun, or inside a group someone else started, `device`
    comes back unchanged.
    """
    global _device, _waits
    if not launched() or active():
        yield device
        return
    device = _collective_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    _device = device
    _waits = dist.new_group(backend="gloo", timeout=PREPARE_TIMEOUT)  # now, while every process is here
    textclf_log = logging.getLogger("textclf")
    level = textclf_log.level
    if not is_main():
        textclf_log.setLevel(logging.ERROR)
    try:
        yield device
        barrier()  # nobody leaves while another process may still need it
    finally:
        textclf_log.setLevel(level)
        _device, _waits = None, None
        dist.destroy_process_group()  # every group, the gloo one for waits too


def barrier() -> None:
    """Wait for every process: on the gloo group for waits (hours) when process_group() made one, else on the
    default group, with its timeout (a group someone else started)."""
    if not active():
        return
    if _waits is not None:
        dist.barrier(group=_waits)
    else:
        device = _comm_device()
        dist.barrier(device_ids=[device.index] if device.type == "cuda" else None)


def _comm_device() -> torch.device:
    """Where the default group's collectives run: this process's GPU under nccl, else the CPU. In a group
    someone else started, read from its backend (nccl reduces GPU tensors only)."""
    if _device is not None:
        return _device
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block (filling caches), then the others do (reading them): no two write one file.

    Also a decorator. A failure on rank 0 never reaches the barrier: torchrun then stops the waiting processes.
    """
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """The element-wise sum over processes, as a new tensor on `t`'s device; `t` itself without a group."""
    if not active():
        return t
    out = t.to(_comm_device(), copy=True)
    dist.all_reduce(out)
    return out.to(t.device)


def mean(t: torch.Tensor) -> torch.Tensor:
    """The element-wise mean over processes; `t` itself without a group."""
    return all_sum(t) / world_size() if active() else t


def all_gather(obj: object) -> list:
    """Every process's `obj` (picklable), in rank order; `[obj]` without a group."""
    if not active():
        return [obj]
    every: list = [None] * world_size()
    dist.all_gather_object(every, obj)
    return every


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `model` for training; `model` itself without a group.

    DDP averages the gradients of the parameters that require them *now*: wrap again after freezing or
    unfreezing. Save `model`, never the wrapper (whose state_dict keys start with "module.").
    No `device_ids`, on a GPU too: with them DDP copies every input to that GPU, the CPU lengths included,
    which the model then copies back for packing (a host sync per forward). The trainer places inputs itself.
    """
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model)


def seed_per_process(seed: int) -> None:
    """In a group, reseed torch from (seed, rank): each process draws its own dropout masks.

    Without a group nothing changes, so single-process runs keep repeating bit for bit.
    """
    if active():
        torch.manual_seed(int(np.random.SeedSequence([seed, rank()]).generate_state(1)[0]))


def digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of a state dict: names, dtypes, shapes and bytes, in name order (a safetensors file's dict too)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_same_weights(model: nn.Module) -> str:
    """The digest of `model`'s weights, after checking every process holds exactly the same ones."""
    mine = digest(model.state_dict())
    every = all_gather(mine)
    if len(set(every)) > 1:
        raise RuntimeError("the processes ended with different weights (sha256 by rank: "
                           + ", ".join(f"{r}: {d[:12]}" for r, d in enumerate(every)) + ")")
    if len(every) > 1:
        log.info("weights identical in all %d processes (sha256 %s)", len(every), mine[:16])
    return mine
