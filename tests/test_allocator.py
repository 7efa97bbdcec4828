"""The allocator keeps the memory torch frees (textclf.allocator), in the commands' own processes only."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from textclf import allocator

glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
                           reason="glibc's mallopt")

# A training step's shape: large buffers allocated, written and freed again and again, on the main thread and
# on the BiLSTM's second thread. Prints the minor page faults of 10 steps after the first 10.
STEPS = textwrap.dedent("""
    import resource, sys
    from concurrent.futures import ThreadPoolExecutor
    from textclf.allocator import keep_freed_memory
    print(keep_freed_memory() if sys.argv[1] == "keep" else None)
    import torch
    pool = ThreadPoolExecutor(1)
    def step():
        a = torch.empty(12_000_000).fill_(1.0)  # 48 MB, over glibc's mmap threshold
        b = pool.submit(lambda: torch.empty(3_000_000).fill_(2.0)).result()  # 12 MB, in the thread's own arena
        return float(a[0] + b[0])
    for _ in range(10):  # the heap settles: an aligned block needs a little more than the one freed before it
        step()  # (it grew in up to 5 of the first 6 steps here, in none after: 5 warm-up steps were flaky)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        step()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _run(*args: str) -> str:
    """A Python process's output, with none of the user's allocator settings in its environment."""
    env = {k: v for k, v in os.environ.items() if k not in allocator.USER_SETTINGS and k != "GLIBC_TUNABLES"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, check=True).stdout


def _faults(how: str) -> tuple[str, int]:
    kept, faults = _run("-c", STEPS, how).split()
    return kept, int(faults)


@glibc
def test_freed_memory_is_reused_not_faulted_in_again():
    """Before: every step faulted in its 60 MB afresh (~15,000 pages a step); kept, the later steps reuse them."""
    kept, with_keep = _faults("keep")
    _, default = _faults("default")
    assert kept == "True"
    if default < 10 * 10_000:  # glibc's default faults fresh pages in every step: the test's premise
        pytest.skip(f"the default allocator faulted only {default} pages in 10 steps here (huge pages?)")
    assert with_keep < 10 * 1_000, (with_keep, default)


def test_the_users_allocator_settings_win(monkeypatch):
    """MALLOC_* variables, glibc's tunables or a preloaded allocator: textclf changes nothing."""
    for name, value in [("MALLOC_ARENA_MAX", "4"), ("LD_PRELOAD", "libjemalloc.so.2"),
                        ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")]:
        monkeypatch.setattr(allocator, "_done", None)
        with monkeypatch.context() as m:
            m.setenv(name, value)
            m.setattr(allocator.ctypes, "CDLL", lambda *a: pytest.fail("mallopt called"))
            assert allocator.keep_freed_memory() is False


def test_no_mallopt_no_change(monkeypatch):
    """Not glibc (macOS, Windows, musl without mallopt): nothing to set, nothing fails."""
    for name in allocator.USER_SETTINGS + ("GLIBC_TUNABLES",):
        monkeypatch.delenv(name, raising=False)

    def no_libc(*args):
        raise OSError("no C library here")

    monkeypatch.setattr(allocator, "_done", None)
    monkeypatch.setattr(allocator.ctypes, "CDLL", no_libc)
    assert allocator.keep_freed_memory() is False


@glibc
@pytest.mark.parametrize(("call", "expected"), [("train_main()", "True"), ("train_main(['--help'])", "None"),
                                                ("main()", "True")])
def test_the_commands_keep_freed_memory_in_their_own_process_only(call, expected):
    """train.py, evaluate.py and `textclf ...` run as programs keep freed memory; called from a user's Python
    (`train_main([...])`) they leave that process's allocator alone."""
    script = textwrap.dedent(f"""
        import sys
        sys.argv = ["train.py", "--help"] if "main()" != {call!r} else ["textclf", "--help"]
        from textclf import allocator
        from textclf.cli import main, train_main
        try:
            {call}
        except SystemExit:
            pass
        print(allocator._done)
    """)
    assert _run("-c", script).split()[-1] == expected
