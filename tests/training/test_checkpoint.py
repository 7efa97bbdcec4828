import pickle
import random

import numpy as np
import pytest
import torch

from textclf.errors import TextclfError
from textclf.training import checkpoint


def _payload(**extra):
    return {k: 0 for k in checkpoint.REQUIRED} | {"model": {"w": torch.arange(3.0)}, "rng": checkpoint.rng_state(),
                                                   **extra}


def _draws():
    return random.random(), float(np.random.rand()), float(torch.rand(1)), float(torch.randn(1))


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    np.random.randn()  # leaves a cached Gaussian in numpy's legacy state
    checkpoint.save(tmp_path / "c.pt", _payload())
    expected = _draws()
    checkpoint.set_rng_state(checkpoint.load(tmp_path / "c.pt")["rng"])
    assert _draws() == expected


def test_save_is_atomic_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt-000000001.pt"
    checkpoint.save(path, _payload(step=1))

    def crash(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt  # what a kill looks like from inside the process

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, _payload(step=2))
    assert checkpoint.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_keep_last_prunes_the_oldest(tmp_path):
    ckpts = checkpoint.Checkpoints(tmp_path, keep_last=2, meta={"fingerprint": "x"})
    for step in (5, 10, 100, 20):
        ckpts.write(step, _payload())
    assert [p.name for p in checkpoint.existing(tmp_path)] == ["ckpt-000000020.pt", "ckpt-000000100.pt"]
    assert ckpts.last.name == "ckpt-000000020.pt"


class _RunsCode:
    """What a malicious checkpoint holds: unpickling it calls exec() on attacker code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def test_a_pickle_that_would_run_code_is_refused_and_does_not_run(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "ckpt-000000001.pt"
    torch.save(_payload(model=_RunsCode(marker)), path)
    torch.load(path, weights_only=False)  # the payload is live: a plain load runs it
    assert marker.read_text() == "ran"
    marker.unlink()
    with pytest.raises(TextclfError, match=r"ckpt-000000001.pt was refused: loading it would import and run"):
        checkpoint.load(path)
    assert not marker.exists()


@pytest.mark.parametrize(("write", "message"), [
    (lambda p: p.write_bytes(b"\x00" * 64), "is corrupt"),
    (lambda p: p.write_bytes(p.read_bytes()[:300]), "is corrupt"),
    (lambda p: torch.save([1, 2], p), "is not a textclf checkpoint"),
    (lambda p: torch.save({"format": checkpoint.FORMAT, "format_version": 1}, p), "is incomplete"),
    (lambda p: torch.save(_payload(format=checkpoint.FORMAT, format_version=checkpoint.FORMAT_VERSION + 1), p),
     "upgrade textclf"),
    (lambda p: p.unlink(), "checkpoint not found"),
])
def test_bad_checkpoint_files_name_the_file(tmp_path, write, message):
    path = tmp_path / "ckpt-000000001.pt"
    checkpoint.save(path, _payload())
    write(path)
    with pytest.raises(TextclfError, match=message) as err:
        checkpoint.load(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_old_torch_is_refused_because_its_weights_only_loader_is_unsafe(tmp_path, monkeypatch):
    checkpoint.save(tmp_path / "c.pt", _payload())
    monkeypatch.setattr(torch, "__version__", "2.5.1+cpu")
    with pytest.raises(TextclfError, match=r"needs torch>=2.6"):
        checkpoint.load(tmp_path / "c.pt")


def test_nothing_in_a_checkpoint_needs_pickle_globals(tmp_path, monkeypatch):
    """weights_only=True already enforces it; this shows the loader never falls back to full pickle."""
    checkpoint.save(tmp_path / "c.pt", _payload())
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: real(*a, **k) if k.get("weights_only") else pytest.fail())
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("pickle.loads"))
    assert checkpoint.load(tmp_path / "c.pt")["model"]["w"].tolist() == [0.0, 1.0, 2.0]
