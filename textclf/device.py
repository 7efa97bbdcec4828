"""Running a network: the device to run on, its precision (bf16 probing, autocast), the loss of its logits, and
probabilities in dataset order.

The ground floor of everything that runs a network: models (bf16 at load), inference (predict, evaluate, serve,
explain, export) and training (the steps, validation, optimizers) stand on it, and of textclf it imports only
leaf modules (errors.py, files.py), nothing of theirs. Training's processes are training's business: a loader sharded
over them comes with the reduction that adds their shares up (`predict_loader(reduce=...)`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .errors import TextclfError
from .files import default_cache_dir, write_json

log = logging.getLogger(__name__)


def native_cpu_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX-512 BF16 or AMX); torch.cpu's checks are private."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


@functools.cache
def cpu_bf16_lstm_runs() -> bool:
    """Whether oneDNN can run an LSTM in bf16 autocast on this CPU at all: on CPUs without AVX-512 it has no
    bf16 LSTM kernel and the first forward fails ("could not create a primitive descriptor"). Tried once per
    process on a tiny LSTM."""
    with torch.random.fork_rng(devices=[]):  # the LSTM's random init leaves torch's global RNG as it was
        lstm = nn.LSTM(4, 4, batch_first=True)
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.zeros(1, 2, 4))
    except RuntimeError:
        return False
    return True


BF16_MIN_SPEEDUP = 1.15  # bf16 by default only where it is clearly faster: float32 is exact, and the safe choice


BF16_TIMINGS = 7  # timed forwards of each precision, taken in turn: float32, bf16, float32, ...


def _forward_seconds(lstm: nn.LSTM, x: torch.Tensor, bf16: bool) -> float:
    """One forward of `lstm` on `x`, in bf16 autocast or float32, timed."""
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        start = time.perf_counter()
        lstm(x)
        return time.perf_counter() - start


def bf16_speedup() -> float:
    """float32's time over bf16's for the recipe's BiLSTM-128 on a batch of 64 (~0.2 s): the best of
    BF16_TIMINGS forwards of each, after one of each that builds oneDNN's kernels. The two precisions take turns,
    so that a burst of load from another process falls on both: timed one after the other, two runs of one
    command side by side chose different precisions and trained different models (benchmarks/README.md).
    torch's global RNG is left as it was: a run that measured here and one that read the kept answer trained
    different models (their dropout masks drawn from different states; benchmarks/README.md)."""
    with torch.random.fork_rng(devices=[]):
        lstm = nn.LSTM(128, 128, batch_first=True, bidirectional=True)
        x = torch.randn(64, 48, 128)
    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(BF16_TIMINGS + 1):
        for bf16 in (False, True):
            seconds = _forward_seconds(lstm, x, bf16)
            if i:
                times[bf16].append(seconds)
    return min(times[False]) / min(times[True])


BF16_ANSWERS = "cpu-bf16.json"  # in the cache folder: the measured speedup by `_machine`


def _machine() -> str:
    """What the answer depends on: the CPU's model and torch's version (its oneDNN). Not the threads: training
    (one a direction) and prediction (all cores, or one in each Ray worker) choose alike, and so agree."""
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
        name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    return f"{name}; torch {torch.__version__}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on the file `path` (created) for the block, between processes: a second waits. Where no
    lock can be taken (no fcntl, an unwritable folder), the block runs unlocked."""
    try:
        import fcntl

        f = open(path, "a")  # noqa: SIM115 (held for the block)
    except (ImportError, OSError):
        yield
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _kept_answers(path: Path) -> dict:
    """BF16_ANSWERS' entries by machine; {} where the file is missing, unreadable or not a JSON object."""
    try:
        answers = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return answers if isinstance(answers, dict) else {}


def _kept_speedup() -> tuple[float, str]:
    """This machine's kept `bf16_speedup` (BF16_ANSWERS), measured and kept first where there is none; and how it
    was had, for the log. Under a lock: processes that start at once (`textclf serve --workers 2` on a new
    machine) measure once, side by side they would each time the other's load and could disagree."""
    path, machine = default_cache_dir() / BF16_ANSWERS, _machine()
    with contextlib.suppress(OSError):  # where it cannot be made, nothing is kept (said below)
        path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.with_name(BF16_ANSWERS + ".lock")):
        answers = _kept_answers(path)
        known = answers.get(machine)
        if isinstance(known, dict) and isinstance(known.get("speedup"), (int, float)):
            return float(known["speedup"]), f"as measured on this machine before ({path})"
        speedup = bf16_speedup()
        try:  # the other machines' entries kept
            entry = {"speedup": round(speedup, 3), "measured": time.strftime("%Y-%m-%d")}
            write_json(path, {**answers, machine: entry})
        except OSError:  # a cache folder that cannot be written: measured again next time
            return speedup, f"measured now; {path} cannot be written, so each process measures again"
    return speedup, f"measured now, kept in {path}"


@functools.cache
def cpu_bf16_faster() -> bool:
    """Whether bf16 runs an LSTM faster than float32 on this CPU (`bf16_speedup` >= BF16_MIN_SPEEDUP). Having
    the instructions is not enough: a CPU with AVX-512 BF16 but no AMX runs oneDNN's bf16 LSTM slower than
    float32 (its bf16 matrix multiplies are slower), where one with AMX runs it clearly faster (figures, with
    their dates: benchmarks/README.md).

    Measured once per machine (CPU model, torch version) and kept in the cache folder
    ($TEXTCLF_CACHE/cpu-bf16.json), so that every later run on the machine makes the same choice and one command
    trains the same model each time, busy machine or not, and every process predicts in the same precision (the
    Ray workers of `textclf predict --engine ray` as the Python API); delete the file to measure again. The log
    says which."""
    if not native_cpu_bf16():
        return False
    speedup, how = _kept_speedup()
    faster = speedup >= BF16_MIN_SPEEDUP
    log.info("bf16 on this CPU: %.2fx float32's LSTM speed, so %s by default (%s)", speedup,
             "bf16" if faster else "float32", how)
    return faster


def native_gpu_bf16(device: torch.device) -> bool:
    """Whether this GPU computes bf16 natively: compute capability 8.0 (Ampere) or later. Not
    `torch.cuda.is_bf16_supported()`, which also counts the emulation that a V100 or T4 runs, slower than fp16."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def inference_bf16(device: torch.device, bf16: bool | str = "auto") -> bool:
    """Whether a model for prediction runs in bfloat16: `bf16` True or False, or "auto": on a CPU where bf16
    is measured faster than float32 (`cpu_bf16_faster`), on a GPU of compute capability 8.0 or later; nearly
    the same accuracy there. Elsewhere bf16 is emulated, or not faster, and float32 is both exact and quicker."""
    if bf16 != "auto":
        return bool(bf16)
    if device.type == "cpu":
        return cpu_bf16_faster()
    return device.type == "cuda" and native_gpu_bf16(device)


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" → cuda, then mps, then cpu. A device name this machine cannot use is a TextclfError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise TextclfError(f'unknown device "{name}": use auto, cpu, cuda, cuda:N or mps')
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device.type == "cuda" and (device.index or 0) >= gpus:
        raise TextclfError(f'device "{name}" is not available: this machine has {gpus} CUDA device(s); use auto or cpu')
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise TextclfError(f'device "{name}" is not available on this machine; use auto or cpu')
    return device


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Mixed precision in `dtype` on `device`; None: full precision."""
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def to_device(batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch's tokens and labels on `device`; its lengths stay on the CPU, where packing wants them."""
    non_blocking = device.type == "cuda"  # pinned host memory → async copy
    return batch.tokens.to(device, non_blocking=non_blocking), batch.labels.to(device, non_blocking=non_blocking)


def loss_fn(logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """The loss of a classifier's logits: one logit (binary) → BCEWithLogits on the positive class; k logits →
    cross-entropy. A model's `probabilities` is its other half."""
    if logits.dim() == 1:
        pos_weight = None if class_weights is None else class_weights[1] / class_weights[0]
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float(), pos_weight=pos_weight)
    return F.cross_entropy(logits.float(), labels, weight=class_weights)


@torch.no_grad()
def predict_loader(model: nn.Module, loader: DataLoader, device: torch.device, dtype: torch.dtype | None = None,
                   desc: str = "predict", *, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   quiet: bool | None = None) -> tuple[np.ndarray, float | None]:
    """Class probabilities [N, C] in dataset order, and the mean loss when the data has labels.

    A loader sharded over DDP processes (`make_loader(num_replicas=...)`, training's validation) predicts
    this process's share; `reduce`, the element-wise sum over the processes that training passes in
    (`distributed.all_sum`), then adds the shares up, so each process returns the whole split with every text
    counted once (checked), and the same numbers: early-stopping decisions agree. An unsharded loader needs no
    `reduce` (it is not called). `quiet`: tqdm's `disable` (None: tqdm decides; training's other processes pass
    True and draw no bar).
    """
    sharded = getattr(loader.batch_sampler, "num_replicas", 1) > 1
    if sharded and reduce is None:
        raise ValueError("a loader sharded over processes needs `reduce`, the sum of a tensor over them")
    model.eval()
    n = len(loader.dataset)
    # gathered on the device and copied to the host once: a copy per batch would stall the GPU's queue
    probs, counts = torch.zeros(n, model.num_classes, device=device), torch.zeros(n, device=device)
    loss_sum, labelled = torch.zeros((), device=device), True
    for batch in tqdm(loader, desc=desc, unit=" batch", leave=False, disable=quiet):
        x, y = to_device(batch, device)
        index = batch.index.to(device, non_blocking=True)
        with autocast(device, dtype):
            logits = model(x, batch.lengths)
        probs.index_copy_(0, index, model.probabilities(logits))
        counts.index_add_(0, index, torch.ones(len(index), device=device))
        labelled = labelled and bool((batch.labels >= 0).all())
        if labelled:
            loss_sum += loss_fn(logits, y) * len(batch.index)
    if sharded:
        probs, counts, loss_sum = (reduce(t) for t in (probs, counts, loss_sum))
        labelled = int(reduce(torch.tensor(int(not labelled)))) == 0  # no process has an unlabelled text
    if not bool((counts == 1).all()):
        raise RuntimeError(f"{int((counts != 1).sum())} of {n} texts were predicted 0 or several times, not once: "
                           "is the loader sharded over another number of processes than the group has?")
    return probs.cpu().numpy(), (loss_sum.item() / n if labelled and n else None)
