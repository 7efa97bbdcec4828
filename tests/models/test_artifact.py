import json
import pickle
from collections import Counter

import pytest
import torch

from textclf.errors import TextclfError
from textclf.models.artifact import FORMAT_VERSION, Artifact, load_model, save_model
from textclf.text.tokenizer import Tokenizer
from textclf.text.vocab import LabelVocab, Vocab

from ..conftest import lstm


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    vocab = Vocab.build(Counter({"good": 3, "bad": 3, "film": 2}))
    model = lstm(len(vocab), 2, 8, 6, pooling="max_mean").eval()
    path = save_model(tmp_path / "run" / "model",
                      Artifact(model, vocab, LabelVocab(["neg", "pos"]), Tokenizer("regex"), 50, "both", {}))
    return path, model


def test_round_trip_gives_identical_outputs_and_accepts_the_run_dir(saved):
    path, model = saved
    art = load_model(path.parent)  # the run folder works too
    tokens, lengths = torch.tensor([[2, 3, 4], [3, 0, 0]]), torch.tensor([3, 1])
    assert torch.equal(art.model(tokens, lengths), model(tokens, lengths))
    assert art.labels.names == ["neg", "pos"] and art.tokenizer == Tokenizer("regex")
    assert art.max_length == 50 and art.truncate == "both" and art.model.pooling == "max_mean"
    meta = json.loads((path / "config.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION and meta["torch_version"] == torch.__version__
    assert sorted(p.name for p in path.iterdir()) == ["README.md", "config.json", "model.safetensors", "vocab.json"]
    assert not list(path.parent.glob(".model*")), "no temporary folders left behind"


def test_saving_again_replaces_the_folder(saved, tmp_path):
    path, model = saved
    save_model(path, Artifact(model, load_model(path).vocab, LabelVocab(["neg", "pos"]), Tokenizer("spacy"), None,
                              "head", {}))
    assert load_model(path).tokenizer.kind == "spacy"


@pytest.mark.parametrize(("damage", "message"), [
    (lambda p: (p / "config.json").unlink(), "config.json is missing"),
    (lambda p: (p / "config.json").write_text("{not json"), "config.json is corrupt"),
    (lambda p: (p / "vocab.json").write_text("[]"), "vocab.json is corrupt"),
    (lambda p: (p / "model.safetensors").write_bytes(b"\x00" * 10), "model.safetensors is corrupt"),
    (lambda p: (p / "model.safetensors").unlink(), "model.safetensors is missing"),
])
def test_damaged_model_folders_give_one_clear_error(saved, damage, message):
    path, _ = saved
    damage(path)
    with pytest.raises(TextclfError, match=message):
        load_model(path)


def test_newer_format_asks_for_an_upgrade(saved):
    path, _ = saved
    meta = json.loads((path / "config.json").read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(TextclfError, match="upgrade textclf"):
        load_model(path)


def test_not_a_model_folder(tmp_path):
    with pytest.raises(TextclfError, match="model folder not found"):
        load_model(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TextclfError, match="not a textclf model folder"):
        load_model(tmp_path / "empty")


def test_weights_never_go_through_pickle(saved, monkeypatch):
    path, _ = saved
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load used"))
    load_model(path, device="cpu")


class _Killed(BaseException):
    """kill -9, as a test can have it: raised at one operation, after which nothing of save_model runs."""


class _Killer:
    """Counts the operations it wraps and kills the process at the `at`-th: later ones (cleanup) do nothing."""

    def __init__(self, at: int):
        self.at, self.calls, self.dead = at, 0, False

    def wrap(self, real):
        def wrapped(*args, **kwargs):
            if self.dead:
                return None
            self.calls += 1
            if self.calls == self.at:
                self.dead = True
                raise _Killed
            return real(*args, **kwargs)
        return wrapped


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "two-renames-fallback"])
def test_a_kill_at_any_instant_of_save_model_leaves_a_loadable_model(saved, monkeypatch, exchange):
    import os
    import shutil

    from textclf import files
    from textclf.models import artifact

    path, model = saved
    art = load_model(path)
    if not exchange:  # macOS, Windows, file systems without RENAME_EXCHANGE
        monkeypatch.setattr(files, "_exchange", lambda a, b: False)
    ops = [(os, "rename"), (os, "replace"), (os, "fsync"), (os, "chmod"), (shutil, "rmtree"),
           (artifact, "save_file"), (files, "_exchange")]

    def save(max_length: int) -> None:
        save_model(path, Artifact(model, art.vocab, art.labels, art.tokenizer, max_length, "both", {}))

    at = 0
    while True:
        at += 1
        killer = _Killer(at)
        with pytest.MonkeyPatch.context() as mp:
            for module, name in ops:
                mp.setattr(module, name, killer.wrap(getattr(module, name)))
            try:
                save(60)
            except _Killed:
                pass
            else:
                break
        # old (50) before the one step that swaps, new (60) after it; never no model, never half of one
        assert load_model(path).max_length == load_model(path.parent).max_length in (50, 60), at
        save(50)  # and the next save recovers whatever was left
        assert load_model(path).max_length == 50
    assert at > 8 and load_model(path).max_length == 60
    assert sorted(p.name for p in path.parent.iterdir()) == ["model"], "no temporary folders left behind"


def test_config_json_names_the_model_type_and_old_folders_without_it_still_load(saved):
    path, model = saved
    meta = json.loads((path / "config.json").read_text())
    assert meta["type"] == "lstm" and meta["model"] == model.arch
    del meta["type"]  # as folders saved before there was a second place for it
    (path / "config.json").write_text(json.dumps(meta))
    tokens, lengths = torch.tensor([[2, 3, 4]]), torch.tensor([3])
    assert torch.equal(load_model(path).model(tokens, lengths), model(tokens, lengths))
    meta["type"] = "transformer"
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(TextclfError, match=r'unknown model type "transformer".*a newer textclf may know it'):
        load_model(path)


def test_a_model_that_averages_a_linear_view_refuses_to_load_without_it(saved):
    """Issue 30 item 8: a partial copy without linear.json answered with the LSTM alone, whatever its weight."""
    from textclf.models.linear import LinearModel

    path, model = saved
    tokens = [["good", "film"], ["bad"], ["good"], ["bad", "film"]] * 5
    linear = LinearModel.fit(tokens, [1, 0, 1, 0] * 5, 2)
    art = load_model(path)
    save_model(path, Artifact(model, art.vocab, art.labels, art.tokenizer, 50, "both", {"calibration": {"weight": 0.5}},
                              linear))
    assert load_model(path).linear is not None
    (path / "linear.json").unlink()
    for views in ("both", "lstm"):
        with pytest.raises(TextclfError, match=r"linear\.json is missing.*re-copy the whole model folder"):
            load_model(path, views=views)
    meta = json.loads((path / "config.json").read_text())
    meta["calibration"]["weight"] = 1.0  # the LSTM alone, as trained: no linear view is needed
    (path / "config.json").write_text(json.dumps(meta))
    assert load_model(path).linear is None
