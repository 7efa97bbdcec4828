"""How the process's C allocator (glibc's malloc) treats memory that torch frees: kept for the next step, not
handed back to the kernel (`keep_freed_memory`), except every so often in the training loops, which trim the
heap's free pages so that its fragmentation cannot grow (`release_memory`). Imports nothing heavy: call
`keep_freed_memory` first thing, before torch starts its threads (a thread that has allocated keeps the arena
it has).

By default glibc serves every allocation over 32 MB with a fresh `mmap` and unmaps it when freed, trims the top
of its heap, and gives each thread an arena of its own whose heaps it shrinks. A training step on the CPU
allocates and frees the same large buffers every time (oneDNN's LSTM workspace, the embedding's dense
gradient, the BiLSTM's second direction on its own thread), so each step faulted in hundreds of MB of fresh,
zeroed pages: ~60,000 page faults and a third of the step spent in the kernel (benchmarks/README.md). With the
memory kept, later steps reuse the pages they have. The peak is unchanged; what the process held at its peak
stays held until it exits.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

# mallopt's parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
KEEP = {
    M_ARENA_MAX: 1,  # one heap for every thread: memory one thread frees serves the next thread's request
    M_MMAP_MAX: 0,  # large blocks from the heap too, not mmap (which unmaps them when freed)
    M_TRIM_THRESHOLD: 1 << 30,  # hand the heap's free top back only past 1 GiB (the default, fixed once set: 128 KiB)
}
USER_SETTINGS = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_",
                 "MALLOC_TOP_PAD_", "LD_PRELOAD")
_done: bool | None = None


def user_chose() -> bool:
    """Whether the environment sets the allocator already: glibc's own variables or tunables, or another
    allocator preloaded (jemalloc, tcmalloc). Theirs wins."""
    return any(os.environ.get(name) for name in USER_SETTINGS) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "")


def _libc() -> ctypes.CDLL | None:
    """The C library's symbols, as this process has them (glibc's `mallopt`, `malloc_trim`); None where there is
    no such library to open (Windows)."""
    try:
        return ctypes.CDLL(None)
    except (OSError, TypeError):
        return None


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse (`KEEP`); True where it now does. A no-op, False, where the C
    library is not glibc (macOS, Windows, musl), where the user set the allocator (`user_chose`), or where
    glibc refuses a setting. Once per process."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if user_chose():
        return False
    mallopt = getattr(_libc(), "mallopt", None)  # not in macOS's C library
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = all(mallopt(param, value) == 1 for param, value in KEEP.items())
    if not _done:
        log.debug("glibc refused a mallopt setting: freed memory may go back to the kernel")
    return _done


def release_memory() -> None:
    """Hand the C heap's free pages back to the OS (glibc's malloc_trim; a no-op elsewhere). Cheap enough
    for the step loop: it collects no Python garbage (tensors are freed by reference counting).

    Batches of ever-changing shapes fragment glibc's heap, whose resident size then only grows; trimmed,
    it stays flat, and epochs are no slower (figures: benchmarks/README.md, "Memory while training").
    """
    trim = getattr(_libc(), "malloc_trim", None)  # not glibc (macOS, Windows, musl)
    if trim is not None:
        trim(0)
