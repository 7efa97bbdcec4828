import logging

import numpy as np
import pandas as pd
import pytest
import torch

from textclf.config import load_config
from textclf.models.artifact import load_model
from textclf.models.lstm import LSTMClassifier
from textclf.training.lm import BiLM, LMSettings, pretrain_lm
from textclf.training.pipeline import train

from ..conftest import TINY, lstm, make_reviews


def _model(vocab_size: int = 12, bidirectional: bool = True) -> LSTMClassifier:
    torch.manual_seed(0)
    return lstm(vocab_size, 2, 8, 16, bidirectional=bidirectional, embedding_dropout=0.0)


def test_counts_every_next_and_previous_token_and_no_padding():
    model = _model()
    lm = BiLM(model)
    tokens = torch.tensor([[2, 3, 4, 5], [6, 7, 0, 0]])
    _, n = lm(tokens, torch.tensor([4, 2]))
    assert n == 2 * (3 + 1)  # (length - 1) targets per text, in each direction
    _, n = BiLM(_model(bidirectional=False))(tokens, torch.tensor([4, 2]))
    assert n == 3 + 1


@pytest.mark.parametrize(("impl", "dtype"), [("padded", None), ("packed", None), ("padded", torch.bfloat16)])
def test_learns_a_pattern_but_cannot_see_the_token_it_predicts(impl, dtype):
    """Cyclic text is predictable in both directions; i.i.d. random text is not, unless a state leaks its target."""
    from textclf.device import cpu_bf16_lstm_runs

    if dtype is not None and not cpu_bf16_lstm_runs():
        pytest.skip("this CPU cannot run an LSTM in bf16 autocast (no AVX-512)")
    rng = np.random.default_rng(0)
    cyclic = [np.array([2 + (s + t) % 10 for t in range(30)]) for s in range(64)]
    noise = [rng.integers(2, 12, size=30) for _ in range(64)]
    chance = np.log(10)
    for seqs, check in ((cyclic, lambda loss: loss < 0.2 * chance), (noise, lambda loss: loss > 0.9 * chance)):
        model = _model()
        model.lstm_impl = impl
        stats = pretrain_lm(model, seqs, LMSettings(epochs=40, batch_size=16, lr=0.01, seed=0), torch.device("cpu"),
                            dtype=dtype)
        assert check(stats["loss"]), stats
        assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_a_diverging_language_model_stops_at_the_classifiers_sync_cadence(monkeypatch):
    """The LM checks its loss every SYNC_EVERY steps, as the classifier does, not once an epoch."""
    from textclf.errors import TrainingDiverged
    from textclf.training import optim

    steps, real = [], BiLM.forward

    def forward(self, tokens, lengths):  # the loss turns NaN at step 3
        loss, n = real(self, tokens, lengths)
        steps.append(1)
        return (loss * float("nan") if len(steps) >= 3 else loss), n

    monkeypatch.setattr(BiLM, "forward", forward)
    monkeypatch.setattr(optim, "SYNC_EVERY", 4)
    seqs = [np.arange(2, 12) for _ in range(40)]  # 40 steps of one text
    with pytest.raises(TrainingDiverged, match=r"language-model loss became nan by step 4 of epoch 1"):
        pretrain_lm(_model(), seqs, LMSettings(epochs=1, batch_size=1, lr=0.01, seed=0), torch.device("cpu"))
    assert len(steps) == 4


def test_changes_the_encoder_only_and_is_cached(tmp_path):
    seqs = [np.array([2 + (s + t) % 10 for t in range(20)]) for s in range(32)]
    model = _model()
    head = {k: v.clone() for k, v in model.head.state_dict().items()}
    lstm = {k: v.clone() for k, v in model.lstm.state_dict().items()}
    cache = tmp_path / "lm.pt"
    stats = pretrain_lm(model, seqs, LMSettings(epochs=2, batch_size=8, lr=0.01, seed=0, sample=0.5),
                        torch.device("cpu"), cache=cache)
    assert stats["tokens"] == 2 * 32 * 20 and stats["perplexity"] > 1
    assert all(torch.equal(v, model.head.state_dict()[k]) for k, v in head.items())
    assert not any(torch.equal(v, model.lstm.state_dict()[k]) for k, v in lstm.items())
    again = _model()
    assert pretrain_lm(again, seqs, LMSettings(epochs=2, batch_size=8, lr=0.01, seed=0, sample=0.5),
                       torch.device("cpu"), cache=cache) == stats
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_training_with_lm_pretraining_reports_its_cost(tmp_path, tiny_dir, caplog):
    pd.DataFrame({"text": make_reviews(300, seed=4).text}).to_csv(tiny_dir / "unsup.csv", index=False)
    caplog.set_level(logging.INFO)
    cfg = load_config(None, [f"data.path={tiny_dir}", f"run_dir={tmp_path / 'run'}", *TINY,
                             "pretrain.word2vec=true", "pretrain.epochs=2", "pretrain.lm_epochs=4"])
    metrics = train(cfg)
    assert "language model on 280 texts + 300 texts (4 epochs)" in caplog.text
    vocab_size = len(load_model(tmp_path / "run").vocab)
    assert 1 < metrics["language_model"]["perplexity"] < vocab_size - 2  # better than guessing uniformly
    assert metrics["pretrain_seconds"] > 0
    assert metrics["test"]["accuracy"] >= 0.9
