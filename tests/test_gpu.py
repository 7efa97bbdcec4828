"""The CUDA path: what a CPU can emulate (`gpu_mock`), and what needs a real GPU (`cuda`, skipped without one).

    pytest -m gpu_mock          # anywhere
    pytest -m cuda              # on a CUDA machine (benchmarks/gpu_check.py runs these first)
"""

import contextlib
import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils._python_dispatch import TorchDispatchMode

from textclf.device import predict_loader
from textclf.inference.classifier import Classifier
from textclf.models.artifact import Artifact
from textclf.models.lstm import LSTMClassifier
from textclf.text.batching import TextDataset, make_loader
from textclf.text.tokenizer import Tokenizer
from textclf.text.vocab import LabelVocab, Vocab
from textclf.training import distributed
from textclf.training.checkpoint import Progress
from textclf.training.lm import BiLM, LMSettings, pretrain_lm
from textclf.training.optim import amp_dtype, make_optimizer, make_scheduler
from textclf.training.steps import StepSetup, check_finite, train_epoch

from .conftest import lstm

gpu_mock = pytest.mark.gpu_mock
HAS_CUDA = torch.cuda.is_available()


def cuda(test):
    """A test that needs a real GPU: marked `cuda`, skipped with the reason where there is none."""
    return pytest.mark.cuda(pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")(test))


def _dataset(n: int = 48, seed: int = 0) -> TextDataset:
    rng = np.random.default_rng(seed)
    return TextDataset([rng.integers(2, 50, size=int(k)) for k in rng.integers(0, 25, size=n)], np.arange(n) % 2)


def _model(layers: int = 1, dropout: float = 0.3) -> LSTMClassifier:
    torch.manual_seed(0)
    return lstm(50, 2, num_layers=layers, dropout=dropout)


def _epoch(model, loader, scaler, device=None, dtype=None, adversarial=0.05, on_step=None):
    """One epoch of `train_epoch`, as `fit` runs it; returns its Progress."""
    device = device or torch.device("cpu")
    opt = make_optimizer(getattr(model, "module", model), 1e-2, 0.0)
    sched = make_scheduler(opt, "constant", len(loader), 0.0)
    loader.batch_sampler.set_epoch(1)
    progress = Progress(losses=torch.zeros(len(loader), device=device))
    setup = StepSetup(opt, sched, scaler, device, dtype, clip=1.0, adversarial=adversarial)
    train_epoch(model, loader, setup, progress, on_step=on_step)
    return progress


# --- precision ---------------------------------------------------------------------------------------------

@gpu_mock
def test_bf16_only_where_the_gpu_used_computes_it_natively(monkeypatch, caplog):
    """V100 (7.0) and T4 (7.5) emulate bf16 though torch.cuda.is_bf16_supported() says True: fp16 + scaler there."""
    capability = {0: (8, 0), 1: (7, 0), 2: (7, 5), 3: (9, 0)}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability[torch.device(device).index])
    want = {0: torch.bfloat16, 1: torch.float16, 2: torch.float16, 3: torch.bfloat16}
    for index, dtype in want.items():
        assert amp_dtype(torch.device("cuda", index), True) == dtype, capability[index]
    assert amp_dtype(torch.device("cuda", 3), False) is None  # train.amp=false: float32
    assert amp_dtype(torch.device("cuda", 3), True, gpu="fp16") == torch.float16  # train.amp_gpu=fp16 forces it
    assert not caplog.text
    with caplog.at_level("WARNING"):
        assert amp_dtype(torch.device("cuda", 1), True, gpu="bf16") == torch.bfloat16  # asked for: warned
    assert "compute capability 7.0" in caplog.text


@gpu_mock
def test_fp16_overflow_with_adversarial_training_skips_the_step_and_is_not_divergence():
    """An fp16 overflow puts inf in delta.grad; the scaler skips that step. The adversarial pass must not turn
    it into a NaN loss that `check_finite` calls divergence."""
    model = _model()
    overflowed = []

    def overflow(module, inputs, out):  # the first backward pass overflows, as fp16's do at a high loss scale
        if not overflowed:
            overflowed.append(True)
            out.register_hook(lambda g: torch.full_like(g, float("inf")))

    model.embedding_dropout.register_forward_hook(overflow)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    after = []
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)  # what fit makes for fp16
    progress = _epoch(model, make_loader(_dataset(), 8, shuffle=True), scaler,
                      on_step=lambda p: after.append({k: v.clone() for k, v in model.state_dict().items()}))
    assert torch.isfinite(check_finite(progress, progress.batch)).all()  # raised TrainingDiverged before
    assert all(torch.equal(start[k], after[0][k]) for k in start)  # step 1 skipped
    assert not torch.equal(after[0]["head.weight"], after[1]["head.weight"])  # step 2 trained
    assert scaler.get_scale() == 2.0**15  # and the scale backed off once


# --- batches for a GPU: sorted, packed without sorting ------------------------------------------------------

@gpu_mock
@pytest.mark.filterwarnings("ignore:.*pin_memory.*")  # no accelerator here to pin for
def test_gpu_loaders_sort_each_batch_longest_first_and_cpu_loaders_keep_their_order():
    ds = _dataset(100)
    for shuffle in (True, False):
        gpu, cpu = make_loader(ds, 8, shuffle, seed=3, pin_memory=True), make_loader(ds, 8, shuffle, seed=3)
        for loader in (gpu, cpu):
            loader.batch_sampler.set_epoch(2)
        for g, c in zip(gpu, cpu, strict=True):
            assert (g.lengths[:-1] >= g.lengths[1:]).all(), g.lengths  # training batches came shortest-first
            assert sorted(g.index.tolist()) == sorted(c.index.tolist())
            for row, i in enumerate(g.index.tolist()):  # tokens, lengths and labels moved together
                assert g.lengths[row] == len(ds.seqs[i]) and g.labels[row] == ds.labels[i]
                assert g.tokens[row, : g.lengths[row]].tolist() == ds.seqs[i].tolist()
    cpu = make_loader(ds, 8, True, seed=3)
    cpu.batch_sampler.set_epoch(2)
    for batch, indices in zip(cpu, cpu.batch_sampler.batches(), strict=True):
        assert batch.index.tolist() == indices  # CPU batches: exactly the rows and order they always had
    model = _model().eval()
    by_gpu_loader, _ = predict_loader(model, make_loader(ds, 8, False, pin_memory=True), torch.device("cpu"))
    by_cpu_loader, _ = predict_loader(model, make_loader(ds, 8, False), torch.device("cpu"))
    np.testing.assert_allclose(by_gpu_loader, by_cpu_loader, atol=1e-6)  # back in dataset order


@gpu_mock
def test_the_packed_path_packs_a_sorted_batch_as_it_is(monkeypatch):
    """On CUDA (`lstm_impl=auto` → packed), a longest-first batch packs with enforce_sorted=True: no index
    tensors go to the GPU and back. Other orders still work, through pack_padded_sequence's sorting."""
    import textclf.models.lstm as model_module

    model = _model().eval()
    assert model._impl(torch.device("cuda")) == "packed"
    model.lstm_impl = "packed"
    packs, sorted_indices = [], []
    real = model_module.pack_padded_sequence
    monkeypatch.setattr(model_module, "pack_padded_sequence",
                        lambda *a, **kw: packs.append(kw["enforce_sorted"]) or real(*a, **kw))
    model.lstm.register_forward_pre_hook(lambda m, args: sorted_indices.append(args[0].sorted_indices))
    tokens = torch.randint(2, 50, (5, 9), generator=torch.Generator().manual_seed(0))
    for lengths in ([9, 6, 6, 2, 0], [2, 9, 0, 6, 6]):
        lengths = torch.tensor(lengths)
        tokens[torch.arange(9) >= lengths.unsqueeze(1)] = 0
        packed = model(tokens, lengths)
        model.lstm_impl = "padded"
        torch.testing.assert_close(model(tokens, lengths), packed, atol=1e-5, rtol=0)
        model.lstm_impl = "packed"
    assert packs == [True, False]
    assert sorted_indices[0] is None and sorted_indices[1] is not None


# --- distributed ----------------------------------------------------------------------------------------------

@gpu_mock
def test_ddp_wraps_without_device_ids_so_it_never_moves_the_cpu_lengths(monkeypatch):
    seen = {}

    class Recorder:
        def __init__(self, module, *args, **kwargs):
            seen.update(args=args, kwargs=kwargs)

    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", Recorder)
    monkeypatch.setattr(distributed, "active", lambda: True)
    distributed.wrap(torch.nn.Linear(2, 1), torch.device("cuda", 1))
    assert seen == {"args": (), "kwargs": {}}  # device_ids=[1] made DDP copy every input to cuda:1


class _FakeDDP(torch.nn.Module):
    """DDP's `no_sync` contract, recorded: which passes ran with gradient all-reduce on."""

    def __init__(self, module):
        super().__init__()
        self.module, self.syncing, self.forwards, self.backwards = module, True, [], []
        module.head.register_full_backward_hook(lambda *a: self.backwards.append(self.syncing))

    @contextlib.contextmanager
    def no_sync(self):
        self.syncing = False
        try:
            yield
        finally:
            self.syncing = True

    def forward(self, *args):
        self.forwards.append(self.syncing)
        return self.module(*args)


@gpu_mock
def test_adversarial_training_under_ddp_all_reduces_once_a_step():
    wrapped = _FakeDDP(_model())
    progress = _epoch(wrapped, make_loader(_dataset(), 8, shuffle=True), torch.amp.GradScaler("cpu", enabled=False))
    assert wrapped.forwards == wrapped.backwards == [False, True] * progress.batch


@gpu_mock
def test_a_group_someone_else_started_reduces_on_its_gpu_under_nccl(monkeypatch):
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "nccl")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    assert distributed._comm_device() == torch.device("cuda", 3)  # all_sum reduced CPU tensors on NCCL
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "gloo")
    assert distributed._comm_device() == torch.device("cpu")


def _nccl_standin_worker(rank: int, world: int, tmp: Path) -> None:
    """One process of `train.py` under torchrun on "GPUs": NCCL's calls, answered by gloo on this CPU."""
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    real_init, real_barrier, waits = dist.init_process_group, dist.barrier, []
    torch.cuda.device_count = lambda: world
    torch.cuda.set_device = lambda device: None
    dist.init_process_group = lambda backend, **kw: real_init("gloo", init_method=f"file://{tmp / 'init'}",
                                                              rank=rank, world_size=world)
    dist.barrier = lambda group=None, **kw: waits.append(group) or real_barrier(group=group)
    with distributed.process_group(torch.device("cuda")) as device:
        assert device == torch.device("cuda", rank)
        with distributed.main_first():  # rank 0 tokenises and pretrains for minutes while the others wait
            time.sleep(0.3 if rank == 0 else 0)
        (group,) = waits
        assert group is not None and group != dist.group.WORLD, "waited on the default (NCCL) group"
        assert dist.get_backend(group) == "gloo"
        assert group._get_backend(torch.device("cpu")).options._timeout == distributed.PREPARE_TIMEOUT


@gpu_mock
def test_main_first_waits_on_a_gloo_group_with_the_long_timeout_under_nccl(tmp_path):
    """NCCL's barrier ignores the timeout it is given (its group's default is 10 minutes)."""
    mp.start_processes(_nccl_standin_worker, args=(2, tmp_path), nprocs=2, start_method="spawn")


# --- prediction, explanation, LM ----------------------------------------------------------------------------

@gpu_mock
def test_prediction_copies_to_the_host_once_not_per_batch(monkeypatch):
    ds, copies, real = _dataset(37), [], torch.Tensor.cpu
    model = _model().eval()
    want, _ = predict_loader(model, make_loader(ds, 4, shuffle=False), torch.device("cpu"))
    monkeypatch.setattr(torch.Tensor, "cpu", lambda t, *a, **k: (t.is_floating_point() and copies.append(t.shape))
                        or real(t, *a, **k))
    probs, _ = predict_loader(model, make_loader(ds, 4, shuffle=False), torch.device("cpu"))
    assert copies == [(37, 2)] and np.array_equal(probs, want)


def _classifier(layers: int = 2) -> Classifier:
    model = _model(layers, dropout=0.5).eval()
    vocab = Vocab(["<pad>", "<unk>"] + [f"w{i}" for i in range(48)])
    return Classifier(Artifact(model, vocab, LabelVocab(["neg", "pos"]), Tokenizer("regex"), None, "head", {}),
                      torch.device("cpu"))


@gpu_mock
def test_explain_leaves_cudnn_on_for_the_rest_of_the_process():
    """`textclf serve` predicts in other threads while one explains: cuDNN stays on for them."""
    pytest.importorskip("captum")
    from textclf.inference.explain import Explainer

    explainer, seen = Explainer(_classifier(), steps=8), []
    explainer.model.embedding.register_forward_hook(lambda *a: seen.append(torch.backends.cudnn.enabled))
    explainer.explain("w3 w7 w9 w1")
    assert len(seen) >= 2 and all(seen)


@gpu_mock
def test_explainer_on_a_gpu_runs_its_own_lstm_in_training_mode_without_dropout(monkeypatch):
    """cuDNN's LSTM has a backward pass in training mode only: the explainer's copy trains, without dropout,
    so it computes the eval numbers; the shared model is untouched."""
    pytest.importorskip("captum")
    from textclf.inference.explain import Explainer

    clf = _classifier()
    want = Explainer(clf, steps=8).explain("w3 w7 w9 w1 w20")
    monkeypatch.setattr(clf, "device", torch.device("cuda"))
    explainer = Explainer(clf, steps=8)
    monkeypatch.setattr(clf, "device", torch.device("cpu"))  # the numbers, on this CPU
    lstm = explainer.model.lstm
    assert lstm.training and lstm.dropout == 0 and not explainer.model.head.training
    assert not clf.artifact.model.lstm.training and clf.artifact.model.lstm.dropout == 0.5
    got = explainer.explain("w3 w7 w9 w1 w20")
    np.testing.assert_allclose(got.weights, want.weights, atol=1e-6)
    assert got.probabilities == pytest.approx(want.probabilities, abs=1e-6)


@gpu_mock
def test_lm_pretraining_learns_with_clipping_off():
    """train.clip_grad_norm=0 means "off"; clip_grad_norm_(..., 0) zeroed every gradient and the LM never moved."""
    seqs = [np.array([2 + (s + t) % 10 for t in range(20)]) for s in range(32)]
    models = []
    for clip in (0.0, 1e9):  # off, and a bound no gradient reaches: the same training, bit for bit
        torch.manual_seed(0)
        models.append(lstm(12, 2, 8, 16, embedding_dropout=0.0))
        before = {k: v.clone() for k, v in models[-1].lstm.state_dict().items()}
        pretrain_lm(models[-1], seqs, LMSettings(epochs=2, batch_size=8, lr=0.01, seed=0, clip=clip),
                    torch.device("cpu"))
        assert not any(torch.equal(v, models[-1].lstm.state_dict()[k]) for k, v in before.items())
    for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values(), strict=True):
        assert torch.equal(a, b)


class _DataDependent(TorchDispatchMode):
    """Counts ops whose output shape or value the host must wait for: each a sync on a GPU."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        masks = func is torch.ops.aten.index.Tensor and any(i is not None and i.dtype == torch.bool for i in args[1])
        if masks or func in (torch.ops.aten.nonzero.default, torch.ops.aten.masked_select.default,
                             torch.ops.aten._local_scalar_dense.default):
            self.ops.append(func)
        return func(*args, **(kwargs or {}))


@gpu_mock
@pytest.mark.parametrize("bidirectional", [True, False])
def test_an_lm_step_finds_its_positions_with_one_sync(bidirectional, monkeypatch):
    torch.manual_seed(0)
    lm = BiLM(lstm(12, 2, 8, 16, bidirectional=bidirectional), sample=0.5).train()
    monkeypatch.setattr(lm.softmax, "forward", lambda states, targets: type("Out", (), {"loss": states.sum()}))
    tokens, lengths = torch.randint(2, 12, (4, 9)), torch.tensor([9, 5, 1, 7])
    with _DataDependent() as mode:
        _, n = lm(tokens, lengths)
    assert len(mode.ops) == 1, mode.ops  # four boolean-mask selections before (two per direction)
    assert n > 0


# --- on a real GPU ------------------------------------------------------------------------------------------

@cuda
def test_cuda_precision_follows_the_gpu():
    device = torch.device("cuda", torch.cuda.current_device())
    native = torch.cuda.get_device_capability(device) >= (8, 0)
    assert amp_dtype(device, True) == (torch.bfloat16 if native else torch.float16)


@gpu_mock
def test_a_bf16_lstm_is_flattened_like_a_float32_one(monkeypatch):
    """torch's flatten_parameters skips bf16 weights (cuDNN's acceptable dtypes omit it): each call then copied them."""
    seen = []
    monkeypatch.setattr(torch.nn.LSTM, "flatten_parameters", lambda self: seen.append(
        (self.weight_ih_l0.dtype, torch.bfloat16 in torch.backends.cudnn.CUDNN_TENSOR_DTYPES)))
    model = _model(layers=2)
    seen.clear()
    model.to(torch.bfloat16)  # what load_model does for prediction on a GPU of compute capability 8.0+
    assert seen and all(s == (torch.bfloat16, True) for s in seen)  # on the weights as cast, bf16 accepted
    assert torch.bfloat16 not in torch.backends.cudnn.CUDNN_TENSOR_DTYPES  # for that call only


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_lstm_runs_from_one_block_of_weights_after_a_move_and_a_cast(dtype):
    import warnings

    ds = _dataset(32)
    want, _ = predict_loader(_model(layers=2).eval(), make_loader(ds, 16, shuffle=False), torch.device("cpu"))
    model = _model(layers=2).eval().cuda().to(dtype)
    assert len({w.untyped_storage().data_ptr() for w in model.lstm._flat_weights}) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "RNN module weights are not part of single contiguous chunk of memory"
        got, _ = predict_loader(model, make_loader(ds, 16, shuffle=False), torch.device("cuda"))
    np.testing.assert_allclose(got, want, atol=2e-2 if dtype == torch.bfloat16 else 1e-4)


@cuda
def test_cuda_packed_path_matches_the_cpu_padded_path():
    ds = _dataset(64)
    model = _model(layers=2).eval()
    want, _ = predict_loader(model, make_loader(ds, 16, shuffle=False), torch.device("cpu"))
    gpu = _model(layers=2).eval().cuda()
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        got, _ = predict_loader(gpu, make_loader(ds, 16, shuffle=False, pin_memory=True), torch.device("cuda"))
    np.testing.assert_allclose(got, want, atol=1e-5)


@cuda
@pytest.mark.parametrize("grad", [False, True])
def test_cuda_forward_makes_no_host_sync(grad):
    """Sorted pinned batches, pinned lengths copied without blocking: a forward never waits on the GPU."""
    device = torch.device("cuda")
    model = _model().to(device).train(grad)
    batch = next(iter(make_loader(_dataset(), 16, shuffle=True, pin_memory=True)))
    x = batch.tokens.to(device, non_blocking=True)
    delta = torch.zeros(*x.shape, 8, device=device, requires_grad=True) if grad else None
    model(x, batch.lengths, delta)  # warm-up: cuDNN's first call may set things up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.set_grad_enabled(grad):
            model(x, batch.lengths, delta)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@cuda
def test_cuda_fp16_overflow_skips_steps_and_trains_on():
    device = torch.device("cuda")
    model = _model().to(device)
    loader = make_loader(_dataset(96), 8, shuffle=True, pin_memory=True)
    scaler = torch.amp.GradScaler("cuda", init_scale=2.0**40)  # overflows fp16 for the first steps
    progress = _epoch(model, loader, scaler, device, torch.float16)
    assert torch.isfinite(check_finite(progress, progress.batch)).all()
    assert scaler.get_scale() < 2.0**40


@cuda
def test_cuda_explain_matches_the_cpu():
    pytest.importorskip("captum")
    from textclf.inference.explain import Explainer

    cpu = _classifier()
    gpu = Classifier(dataclasses.replace(cpu.artifact, model=_model(2, 0.5).eval().cuda()), torch.device("cuda"))
    want, got = (Explainer(c, steps=16).explain("w3 w7 w9 w1 w20") for c in (cpu, gpu))
    assert torch.backends.cudnn.enabled
    np.testing.assert_allclose(got.weights, want.weights, atol=1e-3)


@cuda
def test_cuda_training_end_to_end_in_bf16_or_fp16(tmp_path, tiny_dir):
    from textclf.config import load_config
    from textclf.training.pipeline import train

    from .conftest import TINY

    for precision in ("auto", "fp16"):
        cfg = load_config(None, [f"data.path={tiny_dir}", f"run_dir={tmp_path / precision}", *TINY,
                                 "train.device=cuda", f"train.amp_gpu={precision}", "train.adversarial=0.05"])
        metrics = train(cfg)
        assert metrics["test"]["accuracy"] >= 0.9 and metrics["device"].startswith("cuda")
        assert metrics["precision"] != "float32"
        if precision == "fp16":
            assert metrics["precision"] == "float16 autocast"
        clf = Classifier.load(tmp_path / precision, device="cuda")
        assert next(clf.artifact.model.parameters()).is_cuda
        assert clf.predict(["A wonderful and moving film."])[0].label == "pos"

