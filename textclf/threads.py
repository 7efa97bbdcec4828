"""How many threads a process computes with, and how its OpenMP threads wait: one policy for training and
serving. Imports nothing heavy: OpenMP reads its wait policy when torch loads, so callers set it first."""

from __future__ import annotations

import os


def cores() -> int:
    """The cores this process may run on (its affinity, where the OS tells; else all of them)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def wait_passively() -> None:
    """Let OpenMP's threads sleep when they wait instead of spinning (a value the user set wins).

    By default they spin for a while after each parallel region, waiting for the next. Alone on a machine that
    costs nothing; beside another busy process (a server's event loop, a second training run) they spin on the
    cores the other needs: two fine-tuning runs side by side took far longer than the two in a row, and a
    server's throughput halved at random (figures: benchmarks/README.md). Read when torch loads OpenMP: call
    this before."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def intra_op(requested: int | None = None) -> int:
    """PyTorch's intra-op threads for this process: `requested`, else OMP_NUM_THREADS where set (torchrun sets 1
    per process), else the cores it may use."""
    if requested:
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else cores()


def per_worker(workers: int, requested: int | None = None) -> int | None:
    """Intra-op threads for each of `workers` server processes on this machine: `requested`, else the cores shared
    out among them (None for one process: PyTorch's default)."""
    return requested or (max(1, cores() // workers) if workers > 1 else None)
