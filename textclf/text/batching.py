"""Length-bucketed batches: similar lengths together, padded with <pad>=0, lengths kept on the CPU."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..device import predict_loader
from ..options import gather, no_more
from .vocab import PAD_ID


class Batch(NamedTuple):
    """One padded batch (B texts, T = longest length in the batch)::

        tokens  [B, T] int64   t0 t1 t2 t3 <pad> <pad>      (row b holds lengths[b] real ids)
        lengths [B]    int64   always on the CPU: pack_padded_sequence wants them there
        labels  [B]    int64   class ids (or -1 when unlabelled)
        index   [B]    int64   position in the dataset, to put predictions back in order

    In loaders for a GPU (pinned) the rows are sorted longest-first: lengths[0] >= lengths[1] >= ...
    """

    tokens: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor


class TextDataset(Dataset):
    def __init__(self, seqs: Sequence[np.ndarray], labels: np.ndarray | None = None):
        self.seqs = seqs
        self.labels = labels if labels is not None else np.full(len(seqs), -1, dtype=np.int64)
        self.lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int, int]:
        return self.seqs[i], int(self.labels[i]), i


def collate(items: list[tuple[np.ndarray, int, int]], longest_first: bool = False) -> Batch:
    """Pad the items into one Batch; `longest_first` reorders its rows by length, longest first (stable)."""
    lengths = np.fromiter((len(s) for s, _, _ in items), dtype=np.int64, count=len(items))
    if longest_first:
        order = np.argsort(-lengths, kind="stable")
        items, lengths = [items[i] for i in order], lengths[order]
    tokens = np.full((len(items), max(int(lengths.max()), 1)), PAD_ID, dtype=np.int64)
    for row, (seq, _, _) in enumerate(items):
        tokens[row, : len(seq)] = seq
    return Batch(torch.from_numpy(tokens), torch.from_numpy(lengths),
                 torch.tensor([y for _, y, _ in items]), torch.tensor([i for _, _, i in items]))


@dataclass(frozen=True)
class Shard:
    """This process's share of the data under DDP: of `num_replicas` processes, the one at `rank` (one process:
    all of it)."""

    num_replicas: int = 1
    rank: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"rank {self.rank} is not in [0, {self.num_replicas})")


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length, in a random order that is a pure function of (seed, epoch).

    Shuffled: permute, cut into pools of `pool_batches` batches, sort each pool by length, cut into
    batches, shuffle the batches. Not shuffled (evaluation): longest first, for the least padding.
    `set_epoch(epoch, start=k)` skips the first k batches: how a resumed run re-enters an epoch.

    With `num_replicas` processes (DDP), every process builds the same *global* batches of
    `batch_size * num_replicas` texts and takes every num_replicas-th text of each, from offset `rank`:
    all get one batch per global batch, so the same number of batches, of near-equal lengths and sizes
    (±1 text). Only a final global batch with fewer texts than processes repeats some (at most
    num_replicas - 1 per epoch). Not shuffled, rank r evaluates texts r, r + num_replicas, ... of the
    longest-first order: each text exactly once, counts may differ by one batch.

    `shard`: a `Shard`, or its fields (`num_replicas=2, rank=1`).
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, shuffle: bool = True, seed: int = 0,
                 pool_batches: int = 50, passes: int = 1, **shard: int | Shard):
        mine = gather(Shard, shard, "shard")
        no_more(shard, "BucketBatchSampler")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.pool_batches = pool_batches
        self.num_replicas = mine.num_replicas
        self.rank = mine.rank
        self.passes = passes if shuffle else 1  # shuffled passes over the data per epoch (small data: several)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def batches(self) -> list[list[int]]:
        """This process's batches of the epoch (all of them with one process)."""
        share = slice(self.rank, None, self.num_replicas)
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable")[share]
            return [order[i : i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        out = []
        for p in range(self.passes):
            rng = np.random.default_rng([self.seed, self.epoch] + ([p] if p else []))
            perm = rng.permutation(len(self.lengths))
            size = self.batch_size * self.num_replicas
            pool = size * self.pool_batches
            batches = []
            for start in range(0, len(perm), pool):
                chunk = perm[start : start + pool]
                chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
                batches += [chunk[i : i + size] for i in range(0, len(chunk), size)]
            batches = [np.resize(b, self.num_replicas) if len(b) < self.num_replicas else b for b in batches]
            out += [batches[i][share].tolist() for i in rng.permutation(len(batches))]
        return out

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches()[self.start :])

    def __len__(self) -> int:  # the whole epoch, even when starting mid-way: schedules count on it
        if not self.shuffle:
            mine = len(range(self.rank, len(self.lengths), self.num_replicas))
            return -(-mine // self.batch_size)
        size = self.batch_size * self.num_replicas
        pool = size * self.pool_batches
        full, rest = divmod(len(self.lengths), pool)
        return (full * self.pool_batches + -(-rest // size)) * self.passes


def make_loader(dataset: TextDataset, batch_size: int, shuffle: bool, seed: int = 0,
                pin_memory: bool = False, min_steps: int = 0, **shard: int | Shard) -> DataLoader:
    """A DataLoader over length buckets. Workers are not worth it: collate is a cheap numpy copy.

    The loader gets a generator of its own: otherwise every `iter(loader)` draws a seed from torch's
    global RNG, which dropout uses, and a resumed run could not continue that RNG exactly.
    `shard` (a `Shard`, or `num_replicas=N, rank=R`): with N > 1, this process's share (see BucketBatchSampler),
    for DDP training and sharded evaluation.

    Pinned batches are bound for a GPU: their rows come longest-first, so cuDNN packs them as they are, without
    the sorting whose index copies block the host. CPU batches keep the sampler's order (shortest first when
    shuffled): the same floating-point sums as ever, so CPU runs repeat earlier ones bit for bit.
    """
    sampler = BucketBatchSampler(dataset.lengths, batch_size, shuffle=shuffle, seed=seed, **shard)
    if shuffle and min_steps > len(sampler):
        sampler.passes = -(-min_steps // len(sampler))
    collate_fn = functools.partial(collate, longest_first=True) if pin_memory else collate
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_fn, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(seed))


def predict_seqs(model: torch.nn.Module, seqs: Sequence[np.ndarray], device: torch.device, batch_size: int,
                 labels: np.ndarray | None = None, shard: Shard = Shard(), **how) -> tuple[np.ndarray, float | None]:
    """`predict_loader` (its `dtype`, `desc`, `reduce` in `how`) over token-id sequences, in their order: the
    probabilities, and the mean loss where `labels` are given. The one path from ids to a model's answers outside
    a split's loader. `shard`: this process's share under torchrun (with `reduce`, every process's summed)."""
    loader = make_loader(TextDataset(seqs, labels), batch_size, shuffle=False, pin_memory=device.type == "cuda",
                         shard=shard)
    return predict_loader(model, loader, device, **how)
