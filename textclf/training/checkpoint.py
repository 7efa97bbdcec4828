"""Resumable training checkpoints: tensors and primitives only, written atomically, read with weights_only=True."""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._version import __version__
from ..errors import TextclfError
from ..files import atomic_open

log = logging.getLogger(__name__)

FORMAT = "textclf-checkpoint"
FORMAT_VERSION = 1
FOLDER = "checkpoints"  # inside the run folder
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")
REQUIRED = ("epoch", "batch", "step", "model", "optimizer", "scheduler", "scaler", "rng", "config", "fingerprint")
# torch < 2.6 could run code from a crafted file even with weights_only=True (CVE-2025-32434)
SAFE_TORCH = (2, 6)


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
