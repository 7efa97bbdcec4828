"""Crash-safe file writes: write a temporary file beside the target, fsync, then rename over it; a whole folder
swapped in the same way (`swap_in`)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import io
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

from .errors import TextclfError


def default_cache_dir() -> Path:
    """Where textclf keeps what it can compute again (tokens, word vectors, the CPU's bf16 answer):
    $TEXTCLF_CACHE, else ~/.cache/textclf."""
    return Path(os.environ.get("TEXTCLF_CACHE") or Path.home() / ".cache" / "textclf")


def _proc_umask() -> int | None:
    """The umask as Linux (4.7+) shows it, read without setting it; None where /proc does not say."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            return next((int(line.split()[1], 8) for line in f if line.startswith("Umask:")), None)
    except (OSError, ValueError, IndexError):
        return None


def _umask_by_setting() -> int:
    old = os.umask(0o022)  # the only portable way to read it sets it: another thread creating a file
    os.umask(old)  # in between would get 022, so this runs once, at import, not per write
    return old


_UMASK_AT_IMPORT = None if _proc_umask() is not None else _umask_by_setting()


def umask() -> int:
    """The process's umask now (where /proc shows it; elsewhere as it was when textclf was imported)."""
    mask = _proc_umask()
    return mask if mask is not None else _UMASK_AT_IMPORT


def plain_mode(path: Path, folder: bool = False) -> int:
    """The permissions a plain open(path, "w") (or mkdir) would leave: an existing file keeps its own,
    a new one gets 0666 (0777) minus the umask. mkstemp/mkdtemp make 0600/0700, which would hide a
    model from the account that serves it."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return (0o777 if folder else 0o666) & ~umask()


def check_writable(path: str | Path, flag: str, folder: bool = False, example: str = "out",
                   permission: bool = True) -> None:
    """Before any work: a TextclfError (one line, naming `flag`) where `path` cannot be written as a file (a
    `folder` of files): it is a folder (a file), a file stands where a folder of its path must be, or the nearest
    folder that exists may not be written. A command that would fail only once it had scored or fitted everything
    says so first. `example`: a file name to suggest inside a folder given for a file. `permission` False: a folder
    that may not be written passes (a cache, filled by someone else, read and not written)."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        raise TextclfError(f"{flag} {path} is a file; give a folder" if folder else
                           f"{flag} {path} is a folder; give a file name such as {path / example}")
    here = next((p for p in (path, *path.parents) if p.exists()), None) if folder else \
        next((p for p in path.parents if p.exists()), None)
    if here is None:
        return
    if not here.is_dir():
        raise TextclfError(f"{flag} {path}: {here} is a file, not a folder; choose another path")
    if permission and not os.access(here, os.W_OK | os.X_OK):
        raise TextclfError(f"{flag} {path}: {here} may not be written; choose another path")


@contextlib.contextmanager
def new_folders(folder: Path) -> Iterator[None]:
    """`folder`, made with its missing parents; those it made are removed again (when empty) if the block fails, so
    a command that fails leaves no empty folder tree behind (`--output new/deep/out.csv` on a bad input)."""
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for p in made:  # deepest first
            with contextlib.suppress(OSError):
                p.rmdir()
        raise


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[BinaryIO]:
    """`with atomic_open(p) as f: f.write(...)` — readers see the old file or the whole new one, never half."""
    path = Path(path)
    with new_folders(path.parent), _atomic(path) as f:
        yield f


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[BinaryIO]:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, plain_mode(path))
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_text(path: str | Path) -> Iterator[TextIO]:
    """`atomic_open` as a UTF-8 text stream (newline="" so csv/pandas writers control line endings)."""
    with atomic_open(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        try:
            yield text
            text.flush()
        finally:
            text.detach()  # atomic_open still owns (fsyncs, closes) the file


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text.encode("utf-8"))


def write_json(path: str | Path, data: object) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def displaced(folder: Path) -> Path:
    """Where `swap_in`'s fallback parks the folder it replaces (.NAME.old), between its two renames: a reader that
    finds no `folder` but this finds the old one whole, and the next swap puts it back first."""
    return folder.with_name(f".{folder.name}.old")


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux renameat2 with RENAME_EXCHANGE); False where the libc, kernel
    or file system cannot, and the caller falls back to two renames."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2  # glibc 2.28+, musl
    except (OSError, AttributeError, TypeError):
        return False
    renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    at_fdcwd, rename_exchange = -100, 2  # from <fcntl.h> and <linux/fs.h>
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def swap_in(tmp: Path, target: Path) -> None:
    """Put folder `tmp` at `target` in one rename: a kill at any instant leaves a whole folder under the name,
    the old one or the new. A non-empty folder cannot be renamed over, so an existing one is exchanged with
    `tmp` (which then holds the old folder). Without exchange, two renames, with a window (the old folder at
    `displaced(target)`, none at `target`) that readers and the next save recover from."""
    if not target.exists():
        os.rename(tmp, target)
    elif not _exchange(tmp, target):
        old = displaced(target)
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
