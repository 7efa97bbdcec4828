import pytest
import torch
import torch.nn.functional as F

from textclf.models.lstm import (
    Dropout,
    LSTMClassifier,
    ModelArgs,
    _flip_time,
    dropout,
    flip_index,
    flip_rows,
    split_directions,
)

from ..conftest import lstm

ARCHS = [  # (num_layers, bidirectional, pooling, num_classes)
    (1, True, "max", 2), (2, True, "last", 3), (2, False, "max_mean", 2), (1, False, "mean", 4), (3, True, "mean", 2),
]


def _batch(vocab=50, lengths=(9, 3, 0, 6, 1, 9)):
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor(lengths)
    tokens = torch.randint(2, vocab, (len(lengths), int(lengths.max())), generator=g)
    tokens[torch.arange(tokens.size(1)) >= lengths.unsqueeze(1)] = 0
    return tokens, lengths


def _model(layers, bi, pooling, classes, dropout=0.2):
    torch.manual_seed(0)
    return LSTMClassifier(ModelArgs(50, classes, 12, 10, layers, bi, dropout, 0.1, pooling))


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_cpu_dropout_drops_at_its_rate_and_keeps_the_expectation(p):
    """The mask from 16-bit draws: each element dropped with probability p (to 1/65536), independently of its
    neighbours (four share a 64-bit draw), the kept ones scaled so the mean is unchanged; the gradient is the mask."""
    torch.manual_seed(0)
    x = torch.ones(400_001, requires_grad=True)  # not a multiple of 4: the last draw is cut
    y = dropout(x, p)
    dropped = (y == 0).float()
    sd = (p * (1 - p) / x.numel()) ** 0.5
    assert abs(dropped.mean().item() - p) < 5 * sd
    assert abs(y.mean().item() - 1) < 5 * sd / (1 - p)
    pairs = dropped[:400_000].view(-1, 4)  # neighbours within one draw: no more often dropped together than apart
    assert abs((pairs[:, 0] * pairs[:, 1]).mean().item() - p * p) < 5 * (p * p / 100_000) ** 0.5
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())


def test_cpu_dropout_follows_the_seed_and_is_off_outside_training():
    x = torch.randn(3, 7, 5)
    torch.manual_seed(1)
    a = dropout(x, 0.2)
    torch.manual_seed(1)
    assert torch.equal(a, dropout(x, 0.2)) and not torch.equal(a, dropout(x, 0.2))
    assert dropout(x, 0.2, training=False) is x and dropout(x, 0.0) is x
    module = Dropout(0.2).eval()
    assert module(x) is x and torch.equal(dropout(x, 1.0), torch.zeros_like(x))


def test_dropout_elsewhere_than_the_cpu_is_pytorchs(monkeypatch):
    """On CUDA (here: a tensor on the meta device) the mask is F.dropout's fused kernel, not the CPU's draws."""
    calls = []
    monkeypatch.setattr(F, "dropout", lambda x, p, training: calls.append((x.device.type, p)) or x)
    dropout(torch.empty(4, 3, device="meta"), 0.3)
    assert calls == [("meta", 0.3)]


def test_the_classifier_uses_the_cpu_dropout():
    model = _model(2, True, "max", 2)
    assert type(model.embedding_dropout) is Dropout and type(model.dropout) is Dropout


def test_flip_index_reverses_within_length():
    assert flip_index(torch.tensor([3, 1]), 4).tolist() == [[2, 1, 0, 3], [0, 1, 2, 3]]


def test_the_flip_and_its_gradient_are_what_a_gather_along_time_gives():
    """`_flip_time` (row gathers both ways) replaced `x.gather(1, ...)`, whose backward is a scatter-add: the same
    values, forward and backward, bit for bit."""
    lengths = torch.tensor([5, 2, 0, 4])
    index = flip_index(lengths, 5)
    x = torch.randn(4, 5, 3, requires_grad=True)
    grad = torch.randn(4, 5, 3)
    gathered = x.gather(1, index.unsqueeze(2).expand(-1, -1, 3))
    flipped = _flip_time(x, flip_rows(index))
    assert torch.equal(flipped, gathered)
    assert torch.equal(torch.autograd.grad(flipped, x, grad)[0], torch.autograd.grad(gathered, x, grad)[0])
    with torch.no_grad():
        assert torch.equal(_flip_time(x, flip_rows(index)), gathered)


@pytest.mark.parametrize("arch", ARCHS)
def test_padded_path_equals_packed_path(arch):
    """The CPU fast path must compute exactly what the packed LSTM computes: outputs and gradients."""
    model = _model(*arch).eval()
    tokens, lengths = _batch()
    model.lstm_impl = "packed"
    packed = model(tokens, lengths)
    model.lstm_impl = "padded"
    padded = model(tokens, lengths)
    torch.testing.assert_close(padded, packed, atol=1e-5, rtol=0)
    with torch.inference_mode():  # the pooled path masks in place when no gradient is kept
        torch.testing.assert_close(model(tokens, lengths), packed, atol=1e-5, rtol=0)

    model = _model(*arch, dropout=0.0).train()  # dropout off so both passes see the same masks
    model.embedding_dropout.p = 0.0
    grads = {}
    for impl in ("packed", "padded"):
        model.zero_grad()
        model.lstm_impl = impl
        model(tokens, lengths).float().pow(2).sum().backward()
        grads[impl] = [p.grad.clone() for p in model.parameters()]
    for a, b in zip(grads["packed"], grads["padded"], strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_padded_path_equals_packed_path_with_delta(arch):
    """An embedding perturbation (adversarial training) reaches both paths alike, and so does its gradient."""
    model = _model(*arch, dropout=0.0).train()
    model.embedding_dropout.p = 0.0
    tokens, lengths = _batch()
    delta = torch.randn(*tokens.shape, 12, generator=torch.Generator().manual_seed(1))
    out, grads = {}, {}
    for impl in ("packed", "padded"):
        model.lstm_impl = impl
        d = delta.clone().requires_grad_()
        out[impl] = model(tokens, lengths, d)
        grads[impl] = torch.autograd.grad(out[impl].float().pow(2).sum(), d)[0]
    torch.testing.assert_close(out["padded"], out["packed"], atol=1e-5, rtol=0)
    torch.testing.assert_close(grads["padded"], grads["packed"], atol=1e-5, rtol=0)
    assert not torch.equal(out["padded"], model(tokens, lengths))  # the delta did something


@pytest.mark.parametrize("impl", ["packed", "padded"])
@pytest.mark.parametrize("arch", ARCHS[:3])
def test_batch_consistency(arch, impl):
    """A review's output alone equals its output inside a padded batch (the bug packing invites)."""
    model = _model(*arch).eval()
    model.lstm_impl = impl
    tokens, lengths = _batch()
    together = model(tokens, lengths)
    for i in range(len(lengths)):
        n = max(int(lengths[i]), 1)
        alone = model(tokens[i : i + 1, :n], lengths[i : i + 1])
        torch.testing.assert_close(alone[0], together[i], atol=1e-5, rtol=0)


def test_output_shapes_and_probabilities():
    tokens, lengths = _batch()
    binary, multi = _model(1, True, "max", 2).eval(), _model(1, True, "max", 3).eval()
    assert binary(tokens, lengths).shape == (6,) and multi(tokens, lengths).shape == (6, 3)
    for m in (binary, multi):
        p = m.probabilities(m(tokens, lengths))
        assert p.shape[1] == m.num_classes and torch.allclose(p.sum(1), torch.ones(6))


def test_empty_batch_rows_do_not_crash_either_path():
    tokens, lengths = torch.zeros(3, 1, dtype=torch.long), torch.zeros(3, dtype=torch.long)
    model = _model(2, True, "max", 2).eval()
    for impl in ("packed", "padded"):
        model.lstm_impl = impl
        assert torch.isfinite(model(tokens, lengths)).all()


def test_pad_embedding_gets_no_gradient():
    model = _model(1, True, "max", 2).train()
    tokens, lengths = _batch()
    model(tokens, lengths).sum().backward()
    assert model.embedding.weight.grad[0].abs().sum() == 0


def test_bad_arguments():
    with pytest.raises(ValueError):
        lstm(10, 2, pooling="sum")
    with pytest.raises(ValueError):
        lstm(10, 1)


def test_build_model_makes_the_type_from_its_args_and_arch_records_them():
    from dataclasses import asdict

    from textclf.models.lstm import build_model

    args = ModelArgs(30, 3, 8, 6, 2, True, 0.3, 0.1, "mean")
    model = build_model("lstm", {**asdict(args), "linear": True, "type": "lstm"})  # config keys it does not take
    assert isinstance(model, LSTMClassifier) and model.kind == "lstm" and model.args == args
    assert model.arch == asdict(args) and model.num_classes == 3
    with pytest.raises(ValueError, match='unknown model type "cnn"'):
        build_model("cnn", asdict(args))


@pytest.fixture
def split():
    """The BiLSTM's directions on two threads (as training on a multi-core CPU runs it), undone after."""
    threads = torch.get_num_threads()
    split_directions(2)
    yield
    split_directions(threads, split=False)


@pytest.mark.parametrize("arch", [(1, True, "max", 2), (2, True, "last", 3), (2, True, "max_mean", 2)])
def test_directions_side_by_side_compute_the_same(arch, split):
    """Training on a multi-core CPU runs the two directions on two threads: the same outputs and gradients
    (delta's too) as one after the other, in float32 and in bf16 autocast (per thread: the helper must see it)."""
    tokens, lengths = _batch()

    def run(model, bf16):
        model.zero_grad()
        delta = torch.zeros(*tokens.shape, 12, requires_grad=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(tokens, lengths, delta)
        out.float().pow(2).sum().backward()
        return [out.detach(), delta.grad, *(p.grad for p in model.parameters())]

    model = _model(*arch, dropout=0.0).train()
    model.embedding_dropout.p = 0.0
    for bf16 in (False, True):
        both = run(model, bf16)
        with torch.no_grad():
            inference = model(tokens, lengths)
        split_directions(1, split=False)
        one = run(model, bf16)
        split_directions(2)
        for a, b in zip(both, one, strict=True):
            torch.testing.assert_close(a, b, atol=0, rtol=0)
        if not bf16:
            torch.testing.assert_close(inference, one[0], atol=1e-6, rtol=0)


def test_directions_side_by_side_run_on_two_threads(split, monkeypatch):
    """Not a no-op: the reverse direction runs on the helper thread, forward and backward, and PyTorch's
    intra-op threads are halved (one per direction on two cores)."""
    import threading

    from textclf.models import lstm as lstm_module

    seen, original = [], lstm_module._direction
    monkeypatch.setattr(lstm_module, "_direction",
                        lambda *a: seen.append(threading.current_thread().name) or original(*a))
    tokens, lengths = _batch()
    _model(1, True, "max", 2)(tokens, lengths).sum().backward()
    assert torch.get_num_threads() == 1
    assert len(seen) == 2 and seen[0] != seen[1] and any(name.startswith("textclf-lstm") for name in seen)
