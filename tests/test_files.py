"""Atomic writes leave what a plain open() / mkdir() would: the umask's permissions, not mkstemp's 0600."""

import os
import stat
from pathlib import Path

import pytest

from textclf.cli import main
from textclf.files import atomic_open, umask, write_text

from .conftest import TINY


@pytest.fixture
def mask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _modes(*roots: Path) -> dict[str, str]:
    found = {}
    for root in roots:
        for p in [root, *root.rglob("*")] if root.is_dir() else [root]:
            found[str(p)] = oct(stat.S_IMODE(p.stat().st_mode))
    return found


@pytest.mark.parametrize("mask", [0o022, 0o077], indirect=True)
def test_umask_is_read_without_changing_it(mask):
    assert umask() == mask
    assert os.umask(mask) == mask


@pytest.mark.parametrize("mask", [0o022, 0o077], indirect=True)
def test_a_new_file_gets_the_umask_and_a_rewritten_one_keeps_its_mode(tmp_path, mask):
    write_text(tmp_path / "new.txt", "x")
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o666 & ~mask
    (tmp_path / "new.txt").chmod(0o640)
    with atomic_open(tmp_path / "new.txt") as f:
        f.write(b"y")
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o640


@pytest.mark.parametrize("mask", [0o022, 0o077], indirect=True)
def test_what_a_run_writes_is_readable_as_the_umask_allows(tmp_path, tiny_dir, mask):
    """Another account on the box (the one serving the model) reads a run under umask 022, and not under 077."""
    run = tmp_path / "run"
    assert main(["train", f"data.path={tiny_dir}", f"run_dir={run}", *TINY, "train.epochs=1"]) == 0
    (tmp_path / "in.csv").write_text("text\ngood film\n")
    assert main(["predict", str(run), "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.csv")]) == 0
    assert main(["export", str(run), "--output", str(tmp_path / "model.onnx")]) == 0
    outputs = [run / "model" / "model.safetensors", run / "metrics.json", run / "config.yaml",
               tmp_path / "out.csv", tmp_path / "model.onnx"]
    modes = _modes(run, *outputs[3:])
    assert all(str(p) in modes for p in outputs)
    files, folders = oct(0o666 & ~mask), oct(0o777 & ~mask)
    assert {p: m for p, m in modes.items() if m != (folders if Path(p).is_dir() else files)} == {}


def test_check_writable_may_let_a_read_only_folder_pass(tmp_path, monkeypatch):
    """A shared, filled, read-only cache is read and not written (the token cache warns and goes on): data.cache_dir
    refuses a file there, not a folder it may not write."""
    import os

    from textclf.errors import TextclfError
    from textclf.files import check_writable

    monkeypatch.setattr(os, "access", lambda path, mode: False)  # a user without write permission (tests: root)
    with pytest.raises(TextclfError, match="may not be written"):
        check_writable(tmp_path, "--plots", folder=True)
    check_writable(tmp_path, "data.cache_dir", folder=True, permission=False)
    (tmp_path / "f").write_text("")
    with pytest.raises(TextclfError, match="is a file; give a folder"):
        check_writable(tmp_path / "f", "data.cache_dir", folder=True, permission=False)
