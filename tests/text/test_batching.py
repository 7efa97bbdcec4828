import numpy as np
import torch

from textclf.text.batching import BucketBatchSampler, TextDataset, collate, make_loader


def test_sampler_yields_every_index_once_deterministically():
    lengths = np.random.default_rng(0).integers(1, 500, size=1000)
    s = BucketBatchSampler(lengths, batch_size=32, seed=7, pool_batches=5)
    s.set_epoch(1)
    batches = list(s)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert len(batches) == len(s)
    assert batches == list(s)  # same (seed, epoch) → same order
    s.set_epoch(2)
    assert list(s) != batches


def test_buckets_reduce_padding():
    lengths = np.random.default_rng(0).integers(1, 500, size=2000)
    batches = BucketBatchSampler(lengths, 32, seed=0).batches()
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert padded < 1.1 * lengths.sum()


def test_eval_order_is_longest_first_and_complete():
    lengths = np.array([3, 9, 1, 9, 4])
    batches = list(BucketBatchSampler(lengths, 2, shuffle=False))
    assert batches == [[1, 3], [4, 0], [2]] and len(BucketBatchSampler(lengths, 2, shuffle=False)) == 3


def test_collate_pads_and_keeps_lengths_on_cpu():
    ds = TextDataset([np.array([5, 6, 7]), np.array([], dtype=np.int64), np.array([8])], np.array([1, 0, 1]))
    b = collate([ds[0], ds[1], ds[2]])
    assert b.tokens.tolist() == [[5, 6, 7], [0, 0, 0], [8, 0, 0]]
    assert b.lengths.tolist() == [3, 0, 1] and b.lengths.device.type == "cpu"
    assert b.labels.tolist() == [1, 0, 1] and b.index.tolist() == [0, 1, 2]


def test_loader_batches_cover_dataset():
    seqs = [np.arange(1, n + 2) for n in range(50)]
    loader = make_loader(TextDataset(seqs), batch_size=8, shuffle=False)
    seen = torch.cat([b.index for b in loader])
    assert sorted(seen.tolist()) == list(range(50))
