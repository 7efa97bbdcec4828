"""Running a network (device.py): devices, and probabilities in the dataset's order."""

import numpy as np
import pytest
import torch

from textclf.device import predict_loader, resolve_device
from textclf.errors import TextclfError
from textclf.text.batching import TextDataset, make_loader

from .conftest import lstm


def test_unknown_or_missing_devices_are_one_line():
    for name in ("tpu", "cuda:7" if not torch.cuda.is_available() else "cuda:99"):
        with pytest.raises(TextclfError, match="device"):
            resolve_device(name)


def test_probabilities_come_back_in_dataset_order_whatever_the_batches():
    torch.manual_seed(0)
    model = lstm(30, 3).eval()
    rng = np.random.default_rng(0)
    seqs = [rng.integers(2, 30, size=rng.integers(1, 20)) for _ in range(37)]
    alone = []
    for s in seqs:
        with torch.no_grad():
            alone.append(model.probabilities(model(torch.from_numpy(s)[None], torch.tensor([len(s)])))[0].numpy())
    probs, loss = predict_loader(model, make_loader(TextDataset(seqs), 8, shuffle=False), torch.device("cpu"))
    np.testing.assert_allclose(probs, np.stack(alone), atol=1e-5)
    assert loss is None  # unlabelled


def test_a_sharded_loader_is_summed_by_the_reduction_its_caller_passes():
    """device.py knows no process group: the shares of a loader sharded over processes are added up by the `reduce`
    its caller passes in (training: distributed.all_sum). Here rank 1 runs first, alone (its share is not the whole
    split: refused), and rank 0's `reduce` adds in the tensors rank 1 reduced, in the same order."""
    torch.manual_seed(0)
    model = lstm(30, 2).eval()
    rng = np.random.default_rng(0)
    ds = TextDataset([rng.integers(2, 30, size=rng.integers(1, 20)) for _ in range(37)], np.arange(37) % 2)
    cpu = torch.device("cpu")
    alone, alone_loss = predict_loader(model, make_loader(ds, 4, shuffle=False), cpu)
    shard = {rank: make_loader(ds, 4, shuffle=False, num_replicas=2, rank=rank) for rank in (0, 1)}
    with pytest.raises(ValueError, match="reduce"):
        predict_loader(model, shard[0], cpu)
    other = []
    with pytest.raises(RuntimeError, match="predicted 0 or several times"):
        predict_loader(model, shard[1], cpu, reduce=lambda t: other.append(t.clone()) or t)
    probs, loss = predict_loader(model, shard[0], cpu, reduce=lambda t: t + other.pop(0))
    assert not other and np.allclose(probs, alone, atol=1e-6) and loss == pytest.approx(alone_loss)
