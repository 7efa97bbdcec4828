"""Training in several processes: the sharded sampler, sharded evaluation in a real gloo group, and torchrun itself."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from textclf.config import load_config
from textclf.device import predict_loader
from textclf.errors import TextclfError, TrainingDiverged
from textclf.inference.classifier import Classifier
from textclf.text.batching import BucketBatchSampler, Shard, TextDataset, make_loader, predict_seqs
from textclf.training import checkpoint, distributed
from textclf.training.checkpoint import Progress
from textclf.training.pipeline import train
from textclf.training.steps import check_finite
from textclf.training.trainer import validate

from ..conftest import REPO, TINY, lstm, write_tiny_data
from .test_resume import assert_same_run

LENGTHS = np.random.default_rng(0).integers(1, 300, size=1000)


def _shares(lengths, batch_size, world, shuffle=True, epoch=1, pool_batches=5):
    samplers = [BucketBatchSampler(lengths, batch_size, shuffle=shuffle, seed=3, pool_batches=pool_batches,
                                   num_replicas=world, rank=r) for r in range(world)]
    for s in samplers:
        s.set_epoch(epoch)
    return samplers, [list(s) for s in samplers]


@pytest.mark.parametrize("n", [1, 5, 33, 1000])
@pytest.mark.parametrize("world", [2, 3])
def test_every_rank_gets_as_many_batches_and_together_they_cover_the_data(n, world):
    samplers, shares = _shares(LENGTHS[:n], 16, world)
    assert {len(s) for s in shares} == {len(samplers[0])}  # equal, and what __len__ (the schedule) counts
    for step in zip(*shares, strict=True):  # one global batch per step: sizes within one text, never empty
        assert max(map(len, step)) - min(map(len, step)) <= 1 and min(map(len, step)) >= 1
        assert max(map(len, step)) <= 16
    seen = [i for share in shares for batch in share for i in batch]
    assert set(seen) == set(range(n))
    tail = n % (16 * world * 5) % (16 * world)  # the last global batch: repeats texts only when it has < world
    assert len(seen) - n == (world - tail if 0 < tail < world else 0)


def test_shares_are_a_pure_function_of_seed_and_epoch_and_resume_mid_epoch():
    _, first = _shares(LENGTHS, 16, 2, epoch=4)
    _, again = _shares(LENGTHS, 16, 2, epoch=4)
    _, other = _shares(LENGTHS, 16, 2, epoch=5)
    assert first == again and first != other
    resumed = BucketBatchSampler(LENGTHS, 16, seed=3, pool_batches=5, num_replicas=2, rank=1)
    resumed.set_epoch(4, start=7)
    assert list(resumed) == first[1][7:] and len(resumed) == len(first[1])


def test_ranks_draw_similar_lengths_at_each_step():
    """Each step's batches are cut from one length-sorted global batch: no rank waits on a much longer one."""
    _, (a, b) = _shares(LENGTHS, 16, 2, pool_batches=50)
    for x, y in zip(a, b, strict=True):
        assert abs(int(LENGTHS[x].max()) - int(LENGTHS[y].max())) <= 0.05 * max(LENGTHS[x].max(), LENGTHS[y].max()) + 2


def test_one_process_is_the_sampler_it_always_was():
    one = BucketBatchSampler(LENGTHS, 16, seed=3, num_replicas=1, rank=0)
    plain = BucketBatchSampler(LENGTHS, 16, seed=3)
    one.set_epoch(2)
    plain.set_epoch(2)
    assert list(one) == list(plain) and len(one) == len(plain)


@pytest.mark.parametrize("n", [0, 1, 7, 100])
def test_sharded_evaluation_sees_each_text_exactly_once(n):
    samplers, shares = _shares(LENGTHS[:n], 8, 3, shuffle=False)
    seen = sorted(i for share in shares for batch in share for i in batch)
    assert seen == list(range(n))
    assert [len(s) for s in shares] == [len(s) for s in samplers]
    with pytest.raises(ValueError, match="rank 2 is not in"):
        BucketBatchSampler(LENGTHS, 8, num_replicas=2, rank=2)


def _group_worker(rank: int, world: int, tmp: Path) -> None:
    """One process of a real gloo group: sharded prediction, collective NaN check, main_first, weight check."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp / 'init'}", rank=rank, world_size=world)
    try:
        rng = np.random.default_rng(0)
        seqs = [rng.integers(2, 50, size=int(k)) for k in rng.integers(0, 30, size=37)]
        ds = TextDataset(seqs, np.arange(37) % 2)
        torch.manual_seed(0)
        model = lstm(50, 2)
        shared = make_loader(ds, 4, shuffle=False, num_replicas=world, rank=rank)
        assert len(shared.batch_sampler.batches()[0]) == 4 and sum(map(len, shared.batch_sampler.batches())) < 37
        probs, loss = predict_loader(model, shared, torch.device("cpu"), reduce=distributed.all_sum)
        alone, alone_loss = predict_loader(model, make_loader(ds, 4, shuffle=False), torch.device("cpu"))
        assert probs.shape == (37, 2) and np.allclose(probs, alone, atol=1e-6) and loss == pytest.approx(alone_loss)
        sharded, _ = predict_seqs(model, seqs, torch.device("cpu"), 4, shard=Shard(world, rank),
                                  reduce=distributed.all_sum)
        assert np.allclose(sharded, alone, atol=1e-6)  # the path the unlabelled texts take (`unlabelled_outputs`)
        every = distributed.all_gather(probs.tobytes())
        assert all(b == every[0] for b in every)  # bit for bit the same on every rank: decisions agree
        metrics = validate(model, shared, torch.device("cpu"), ["a", "b"])
        assert metrics.n == 37 and distributed.all_gather(metrics.accuracy) == [metrics.accuracy] * world
        with pytest.raises(RuntimeError, match="predicted 0 or several times"):  # a loader sharded for 3
            predict_loader(model, make_loader(ds, 4, shuffle=False, num_replicas=3, rank=rank), torch.device("cpu"),
                           reduce=distributed.all_sum)

        # one process's loss turns NaN at its 3rd batch: every process stops, naming the same step
        progress = Progress(epoch=2, batch=4, step=14, losses=torch.ones(6))
        if rank == 1:
            progress.losses[2] = float("nan")
        with pytest.raises(TrainingDiverged, match=r"became nan at step 13 \(epoch 2, batch 3/6\)"):
            check_finite(progress, 6)

        with distributed.main_first():  # rank 0's block ends before any other's starts, slow as it may be
            time.sleep(0.5 if rank == 0 else 0)
            with open(tmp / "order", "a") as f:
                f.write(f"{rank} ")
        distributed.barrier()
        assert (tmp / "order").read_text() == "0 1 "

        assert distributed.check_same_weights(model) == distributed.digest(model.state_dict())
        if rank == 1:
            with torch.no_grad():
                model.head.bias += 1
        with pytest.raises(RuntimeError, match="different weights"):
            distributed.check_same_weights(model)
    finally:
        dist.destroy_process_group()


def test_sharded_prediction_in_a_gloo_group_counts_each_text_once_and_agrees(tmp_path):
    mp.start_processes(_group_worker, args=(2, tmp_path), nprocs=2, start_method="spawn")


def test_without_a_group_nothing_is_distributed():
    t = torch.tensor([1.0, 2.0])
    assert not distributed.active() and distributed.world_size() == 1 and distributed.is_main()
    assert distributed.all_sum(t) is t and distributed.mean(t) is t and distributed.all_gather(3) == [3]
    model = torch.nn.Linear(2, 1)
    assert distributed.wrap(model, torch.device("cpu")) is model
    with distributed.process_group(torch.device("cpu")) as device, distributed.main_first():
        assert device == torch.device("cpu") and not distributed.active()


# --- torchrun itself: two CPU processes on tiny data ---------------------------------------------------------

def _torchrun(data, run_dir, cache, *extra, wait: bool = True):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TEXTCLF_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py",
           f"data.path={data}", f"run_dir={run_dir}", *TINY, "train.epochs=3", "train.checkpoint_steps=5", *extra]
    if not wait:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """One uninterrupted 2-process run that keeps every checkpoint."""
    root = tmp_path_factory.mktemp("ddp")
    out = _torchrun(write_tiny_data(root / "data"), root / "run", root / "cache", "train.keep_last=1000")
    assert out.returncode == 0, out.stderr[-3000:]
    return root, out


@pytest.mark.slow
def test_torchrun_trains_in_two_processes_that_agree_and_rank_0_writes_a_loadable_model(ddp_run):
    root, out = ddp_run
    run = root / "run"
    assert "DistributedDataParallel: 2 processes (gloo); global batch 32 = train.batch_size 16 x 2" in out.stderr
    agreed = [line for line in out.stderr.splitlines() if line.startswith("weights identical in all 2 processes")]
    assert len(agreed) == 1  # logged by rank 0 only, like every other line
    assert distributed.digest(load_file(run / "model" / "model.safetensors")).startswith(agreed[0].split()[-1][:-1])
    assert out.stderr.count("epoch 1/3 ") == 1 and out.stdout.count("saved ") == 1
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.yaml", "log.jsonl", "metrics.json",
                                                     "model", "plots"]
    metrics = json.loads((run / "metrics.json").read_text())
    # validation: 30% of the 400 train rows (prepare.carve_fraction gives small data 200 rows, up to 30%)
    assert metrics["processes"] == 2 and metrics["validation"]["n"] == 120 and metrics["test"]["n"] == 200
    assert metrics["test"]["accuracy"] >= 0.9
    assert len((run / "log.jsonl").read_text().splitlines()) == 3
    ckpt = checkpoint.load(checkpoint.existing(run / checkpoint.FOLDER)[-1])
    assert ckpt["world_size"] == 2 and len(ckpt["rng_by_rank"]) == 2
    assert not any(k.startswith("module.") for k in ckpt["model"])
    clf = Classifier.load(run)
    assert [p.label for p in clf.predict(["A wonderful and moving film.", "Boring, dull and awful."])] == ["pos", "neg"]


@pytest.mark.slow
def test_torchrun_resumes_mid_epoch_bit_for_bit_and_only_with_as_many_processes(ddp_run, tmp_path):
    root, _ = ddp_run
    run_dir = tmp_path / "run"
    shutil.copytree(root / "run", run_dir)
    for path in checkpoint.existing(run_dir / checkpoint.FOLDER):
        if int(path.stem.split("-")[1]) > 15:  # step 15: epoch 2, batch 3 of 12
            path.unlink()
    shutil.rmtree(run_dir / "model")
    (run_dir / "metrics.json").unlink()
    with pytest.raises(TextclfError, match=r"written by a run in 2 process\(es\), this one has 1"):
        train(load_config(run_dir / "config.yaml", [f"resume={run_dir}"]))
    out = _torchrun(root / "data", run_dir, root / "cache", f"resume={run_dir}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resuming from" in out.stderr and "step 15" in out.stderr
    assert_same_run(root / "run", run_dir)


def _worker(agent: int, rank: int) -> int | None:
    """The pid of torchrun's worker of `rank` (a child of the agent process), if it has started."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            env = (stat.parent / "environ").read_bytes().split(b"\0") if ppid == agent else []
        except (OSError, IndexError, ValueError):
            continue
        if f"RANK={rank}".encode() in env:
            return int(stat.parent.name)
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the worker through /proc")
def test_sigterm_to_one_torchrun_process_stops_both_at_one_checkpoint_and_resume_is_bit_identical(ddp_run, tmp_path):
    import signal

    root, _ = ddp_run
    run_dir = tmp_path / "run"
    proc = _torchrun(root / "data", run_dir, root / "cache", wait=False)
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:  # rank 1 alone gets it: they must agree
        if checkpoint.existing(run_dir / checkpoint.FOLDER) and (pid := _worker(proc.pid, 1)):
            os.kill(pid, signal.SIGTERM)
            break
        time.sleep(0.01)
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr[-3000:]
    assert f"; resume with: torchrun --nproc_per_node=2 train.py resume={run_dir}" in stdout, stdout
    ckpt = checkpoint.load(checkpoint.existing(run_dir / checkpoint.FOLDER)[-1])
    epoch_ends = [c["step"] for c in map(checkpoint.load, checkpoint.existing(root / "run" / checkpoint.FOLDER))
                  if c["batch"] == 0]
    assert ckpt["step"] in epoch_ends[:2]  # an epoch's last batch: the first place they could agree (no 50th)
    assert not (run_dir / "metrics.json").exists()
    out = _torchrun(root / "data", run_dir, root / "cache", f"resume={run_dir}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert_same_run(root / "run", run_dir)
