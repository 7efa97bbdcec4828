"""Running a model forward (inference/runtime.py): devices, and probabilities in the dataset's order."""

import numpy as np
import pytest
import torch

from textclf.errors import TextclfError
from textclf.inference.runtime import predict_loader, resolve_device
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
