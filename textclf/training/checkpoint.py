"""Resumable training checkpoints: tensors and primitives only, written atomically, read with weights_only=True."""

from __future__ import annotations

import json
import logging
import math
import random
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..errors import TextclfError, first_line
from ..files import atomic_open

log = logging.getLogger(__name__)

FORMAT = "textclf-checkpoint"
FORMAT_VERSION = 1
FOLDER = "checkpoints"  # inside the run folder
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")
REQUIRED = ("epoch", "batch", "step", "model", "optimizer", "scheduler", "scaler", "rng", "config", "fingerprint")
# torch < 2.6 could run code from a crafted file even with weights_only=True (CVE-2025-32434)
SAFE_TORCH = (2, 6)


# The checkpoint key of each `Progress` field saved under another name; the others keep their own
_SAVED_AS = {"losses": "epoch_losses", "tokens": "epoch_tokens", "seconds": "epoch_seconds"}


@dataclass
class Progress:
    """Where training stands: with the model, optimizer, schedule and RNG states, all a resume needs. It saves
    (`to_dict`) and restores (`from_dict`) itself, in tensors and primitives only."""

    epoch: int = 1  # the epoch in progress (1-based)
    batch: int = 0  # batches of it already trained
    step: int = 0  # optimizer steps since the start of the run
    losses: torch.Tensor | None = None  # this epoch's per-batch losses, kept on the device
    tokens: int = 0  # seen this epoch
    seconds: float = 0.0  # training time of this epoch so far
    train_seconds: float = 0.0  # over the whole run, restarts included
    best_epoch: int = 0
    best_score: float = -math.inf
    best_state: dict | None = None
    stale: int = 0  # epochs since the best one
    stopped: bool = False  # early-stopped, or all epochs done
    history: list[dict] = field(default_factory=list)  # log.jsonl's rows

    def keep_best(self, epoch: int, score: float, model: nn.Module) -> None:
        """`model`'s weights (a copy) as the best so far: epoch `epoch`, validation score `score`."""
        self.best_epoch, self.best_score, self.stale = epoch, score, 0
        self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def to_dict(self, losses: torch.Tensor) -> dict:
        """What a checkpoint holds of it, so that torch.load(weights_only=True) reads it: the history as JSON text,
        no best state as {}. `losses`: the epoch's so far, averaged over the processes (`steps.check_finite`)."""
        saved = {"losses": losses.detach().cpu(), "best_state": self.best_state or {},
                 "history": json.dumps(self.history)}
        return {_SAVED_AS.get(f.name, f.name): saved.get(f.name, getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, state: dict, n_batches: int, device: torch.device) -> Progress:
        """Undo `to_dict`, on `device`, for an epoch of `n_batches` batches."""
        losses = torch.zeros(n_batches, device=device)
        losses[: state["batch"]] = state["epoch_losses"].to(device)
        loaded = {"losses": losses, "best_state": {k: v.to(device) for k, v in state["best_state"].items()} or None,
                  "history": json.loads(state["history"])}
        return cls(**{f.name: loaded.get(f.name, state[_SAVED_AS.get(f.name, f.name)]) for f in fields(cls)})


def pack(progress: Progress, losses: torch.Tensor, states: dict, rngs: list[dict]) -> dict:
    """A checkpoint's training state: `progress` (see `Progress.to_dict`), the state dicts of `states` (model,
    optimizer, scheduler, scaler, by checkpoint key) and `rngs`, every process's RNG states by rank."""
    return {**progress.to_dict(losses), **{key: obj.state_dict() for key, obj in states.items()},
            "rng": rngs[0], **({"rng_by_rank": rngs} if len(rngs) > 1 else {})}


def restore(ckpt: dict, states: dict, device: torch.device, n_batches: int) -> Progress:
    """Undo `pack` into the objects of `states`, and say where training stood. Not the RNG: it comes last (see
    `trainer.Loop`). Tensors were read on the CPU."""
    try:
        for key, obj in states.items():
            if key != "scaler" or ckpt[key]:  # a scaler's is empty when saved without fp16 loss scaling (CPU, bf16)
                obj.load_state_dict(ckpt[key])  # an optimizer's moments move to its parameters' device
        return Progress.from_dict(ckpt, n_batches, device)
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise TextclfError(f"{ckpt.get('path', 'the checkpoint')} does not fit this model ({first_line(e)[:200]}); "
                           "resume with the run's own config, or start a new run_dir") from None


def rng_state() -> dict:
    """Every RNG that training draws from, as tensors and primitives: no numpy objects in the file."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        # only a CUDA that training touched: asking an idle one would create a context on the GPU
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    """Undo `rng_state()`. CUDA states go back only to GPUs in use (a GPU run may resume on the CPU)."""
    py, npy = state["python"], state["numpy"]
    random.setstate((py["version"], tuple(py["internal"].tolist()), py["gauss"]))
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached"]))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    gpus = torch.cuda.device_count() if torch.cuda.is_initialized() else 0
    for i, s in enumerate(cuda[:gpus]):
        torch.cuda.set_rng_state(s, i)
    if len(cuda) != gpus:
        log.warning("the checkpoint holds the RNG states of %d GPU(s), this run uses %d: "
                    "dropout will not repeat the original run exactly", len(cuda), gpus)
    if "mps" in state and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])


def save(path: Path, payload: dict) -> None:
    """torch.save under a temporary name beside `path`, fsync, rename: a kill leaves the old file or the new."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "textclf_version": __version__,
               "torch_version": str(torch.__version__), **payload}  # TorchVersion would need a pickle global
    with atomic_open(path) as f:
        torch.save(payload, f)


def _torch_version() -> tuple[int, int]:
    major, minor = (int(re.match(r"\d+", part).group()) for part in torch.__version__.split(".")[:2])
    return major, minor


def _reason(text: str) -> str:
    """The useful bit of torch's error: never its advice to retry with weights_only=False."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "WeightsUnpickler error:" in text:
        after = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()
        return after[0].strip() if after else "not a readable checkpoint"
    return lines[0].split(". ")[0][:200] if lines else ""


def load(path: Path) -> dict:
    """Read a checkpoint on the CPU without running any code it may carry; every failure names the file."""
    if _torch_version() < SAFE_TORCH:
        raise TextclfError(f"resuming needs torch>={'.'.join(map(str, SAFE_TORCH))} to read {path} safely "
                           f"(this is {torch.__version__}); upgrade torch")
    if not path.is_file():
        raise TextclfError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds (UnpicklingError, RuntimeError, EOFError, ...) for bad files
        text = str(e)
        code = re.search(r"GLOBAL ([\w.]+)", text)
        if code:
            raise TextclfError(f"{path} was refused: loading it would import and run {code.group(1)}; a textclf "
                               "checkpoint holds only tensors and numbers, so delete this file") from None
        raise TextclfError(f"{path} is corrupt ({_reason(text) or type(e).__name__}); "
                           "delete it to resume from the one before") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise TextclfError(f"{path} is not a textclf checkpoint (no \"format\": \"{FORMAT}\")")
    version = ckpt.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise TextclfError(f"{path} has checkpoint format {version!r}; this textclf reads up to {FORMAT_VERSION}: "
                           "upgrade textclf (pip install -U textclf)")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise TextclfError(f"{path} is incomplete (no {', '.join(missing)}); delete it to resume from the one before")
    ckpt["path"] = str(path)
    return ckpt


def existing(folder: Path) -> list[Path]:
    """The checkpoints in `folder`, oldest first (by optimizer step)."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


@dataclass
class Checkpoints:
    """Where and how often to write checkpoints, and what each one carries beside the training state."""

    folder: Path
    every_epochs: int = 1  # 0: never at epoch ends
    every_steps: int = 0  # 0: never mid-epoch
    keep_last: int = 2
    meta: dict = field(default_factory=dict)  # e.g. the config and a data fingerprint, checked on resume
    last: Path | None = None
    writer: bool = True  # False in DDP processes other than rank 0: they know the paths, rank 0 writes the files

    def write(self, step: int, payload: dict) -> Path:
        path = self.folder / f"ckpt-{step:09d}.pt"
        if self.writer:
            save(path, {**payload, **self.meta})
            for old in existing(self.folder)[: -self.keep_last]:
                old.unlink(missing_ok=True)
            for tmp in self.folder.glob(".ckpt-*.tmp"):  # left by a kill during an earlier write
                tmp.unlink(missing_ok=True)
            log.debug("checkpoint %s", path)
        self.last = path
        return path
