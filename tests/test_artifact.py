import json
import pickle
from collections import Counter

import pytest
import torch

from textclf.artifact import FORMAT_VERSION, load_model, save_model
from textclf.errors import TextclfError
from textclf.model import LSTMClassifier
from textclf.tokenize import Tokenizer
from textclf.vocab import LabelVocab, Vocab


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    vocab = Vocab.build(Counter({"good": 3, "bad": 3, "film": 2}))
    model = LSTMClassifier(len(vocab), 2, 8, 6, pooling="max_mean").eval()
    path = save_model(tmp_path / "run" / "model", model, vocab, LabelVocab(["neg", "pos"]), Tokenizer("regex"),
                      50, "both")
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
    save_model(path, model, load_model(path).vocab, LabelVocab(["neg", "pos"]), Tokenizer("spacy"), None, "head")
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
