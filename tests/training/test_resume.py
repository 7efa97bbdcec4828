"""Crash-safe training: SIGKILL a real train.py mid-epoch, resume, and get the uninterrupted run bit for bit."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from textclf.cli import train_main
from textclf.config import load_config
from textclf.training import checkpoint
from textclf.training.pipeline import train

from ..conftest import REPO, TINY, make_reviews, write_tiny_data

BATCHES = 9  # 140 training rows (200 minus the validation carve-out: 30% on small data) in batches of 16
# a resume skips pretraining, so pretrain_seconds is absent from its metrics.json
TIMING = ("train_seconds", "tokenize_seconds", "pretrain_seconds", "tokens_per_s", "seconds")


def _args(data, run_dir, *extra):
    return [f"data.path={data}", f"run_dir={run_dir}", *TINY, "train.epochs=3", "train.checkpoint_steps=2", *extra]


def _env(cache):
    return {**os.environ, "PYTHONPATH": str(REPO), "TEXTCLF_CACHE": str(cache)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of the real script that keeps every checkpoint it writes."""
    root = tmp_path_factory.mktemp("resume")
    write_tiny_data(root / "data", train=200, test=100)
    # unlabelled texts: word2vec reads them, and a resume reads them again for the shortcut's check
    make_reviews(150, seed=5)[["text"]].to_csv(root / "data" / "unsup.csv", index=False)
    out = subprocess.run([sys.executable, "train.py", *_args(root / "data", root / "ref", "train.keep_last=1000")],
                         cwd=REPO, env=_env(root / "cache"), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return root


def _without_timing(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def assert_same_run(a, b):
    """Bit-identical weights, identical metrics and per-epoch log (apart from wall-clock times)."""
    wa, wb = load_file(a / "model" / "model.safetensors"), load_file(b / "model" / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert _without_timing([ma]) == _without_timing([mb])
    la, lb = ([json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()] for d in (a, b))
    assert _without_timing(la) == _without_timing(lb) and len(la) == 3


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_identical(reference, tmp_path):
    run_dir = tmp_path / "killed"
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "train.py", *_args(reference / "data", run_dir)], cwd=REPO,
                                env=_env(reference / "cache"), stdout=log, stderr=log)
    # kill as soon as a checkpoint inside epoch 2 exists: the run is mid-epoch, far from its end
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        steps = [int(p.stem.split("-")[1]) for p in checkpoint.existing(run_dir / checkpoint.FOLDER)]
        if steps and max(steps) >= BATCHES + 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    assert proc.wait(timeout=60) == -signal.SIGKILL, (tmp_path / "killed.log").read_text()
    assert not (run_dir / "metrics.json").exists()

    out = subprocess.run([sys.executable, "train.py", f"resume={run_dir}"], cwd=REPO, env=_env(reference / "cache"),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "resuming from" in out.stderr
    assert_same_run(reference / "ref", run_dir)
    assert len(checkpoint.existing(run_dir / checkpoint.FOLDER)) == 2  # train.keep_last


@pytest.mark.parametrize("step", [2 * ((BATCHES + 4) // 2), 2 * BATCHES], ids=["mid-epoch", "epoch-end"])
def test_resume_from_a_given_checkpoint_is_bit_identical(reference, tmp_path, step):
    """As if killed right after checkpoint `step`: later checkpoints and outputs never got written."""
    run_dir = tmp_path / "run"
    shutil.copytree(reference / "ref", run_dir)
    for path in checkpoint.existing(run_dir / checkpoint.FOLDER):
        if int(path.stem.split("-")[1]) > step:
            path.unlink()
    shutil.rmtree(run_dir / "model")
    (run_dir / "metrics.json").unlink()
    with open(run_dir / "log.jsonl", "a") as f:
        f.write('{"epoch": 3, "train_lo')  # a row torn by the kill
    assert checkpoint.load(checkpoint.existing(run_dir / checkpoint.FOLDER)[-1])["step"] == step
    train(load_config(run_dir / "config.yaml", [f"resume={run_dir}"]))
    assert_same_run(reference / "ref", run_dir)


def test_resume_true_uses_run_dir_and_a_finished_run_is_left_alone(reference, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(reference / "ref", run_dir)
    assert train_main(["--config", str(run_dir / "config.yaml"), "resume=true", f"run_dir={run_dir}"]) == 2
    assert "holds a finished run, there is nothing to resume" in capsys.readouterr().err
    (run_dir / "metrics.json").unlink()
    assert train_main(["--config", str(run_dir / "config.yaml"), "resume=true", f"run_dir={run_dir}"]) == 0
    assert "resuming from" in capsys.readouterr().err
    assert_same_run(reference / "ref", run_dir)


def test_resume_run_dir_continues_a_run_whose_config_yaml_says_overwrite(reference, tmp_path, capsys):
    """A run started with overwrite=true, then stopped: its config.yaml (as saved before `write_config` left the key
    out) says overwrite: true, and the printed `python train.py resume=RUN` was refused as a contradiction."""
    run_dir = tmp_path / "run"
    shutil.copytree(reference / "ref", run_dir)
    (run_dir / "metrics.json").unlink()
    config = run_dir / "config.yaml"
    config.write_text(config.read_text().replace("overwrite: false", "overwrite: true"))
    assert "overwrite: true" in config.read_text()
    assert train_main([f"resume={run_dir}"]) == 0
    assert "resuming from" in capsys.readouterr().err
    assert_same_run(reference / "ref", run_dir)


def test_a_resume_with_other_unlabelled_texts_is_refused(reference, tmp_path, capsys):
    """The shortcut is checked on a sample of the unlabelled texts the run read: a resume that read others would
    calibrate otherwise than the uninterrupted run, so it is refused in one line (the same texts moved are fine)."""
    run_dir, data = tmp_path / "run", tmp_path / "data"
    shutil.copytree(reference / "ref", run_dir)
    (run_dir / "metrics.json").unlink()
    shutil.copytree(reference / "data", data)
    make_reviews(150, seed=6)[["text"]].to_csv(data / "unsup.csv", index=False)
    assert train_main([f"resume={run_dir}", f"data.path={data}"]) == 2
    assert "the unlabelled texts are not those the run of" in capsys.readouterr().err
    shutil.copy(reference / "data" / "unsup.csv", data / "unsup.csv")  # the same texts, moved: resumed
    assert train_main([f"resume={run_dir}", f"data.path={data}"]) == 0
    assert_same_run(reference / "ref", run_dir)


def test_resume_true_with_another_runs_keys_says_so_before_reading_data(reference, tmp_path, capsys, monkeypatch):
    """`resume=true run_dir=X` alone: the recipe's keys, not the run's. Its data were read first, so the error was
    a failed download of IMDB (data.path's default), not the resume mix-up."""
    from textclf.training import pipeline

    run_dir = tmp_path / "run"
    shutil.copytree(reference / "ref", run_dir)
    (run_dir / "metrics.json").unlink()

    def no_data(cfg):
        raise AssertionError("the data were read before the checkpoint's config was checked")

    monkeypatch.setattr(pipeline, "load_data", no_data)
    assert train_main(["resume=true", f"run_dir={run_dir}", "data.text_column=review"]) == 2
    err = capsys.readouterr().err
    assert "was saved with another config" in err and f"python train.py resume={run_dir}" in err


@pytest.mark.parametrize("adversarial", [0.0, 0.02])
def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(reference, tmp_path, monkeypatch, capsys,
                                                                         adversarial):
    from textclf.training import steps

    calls, real_loss = [], steps.loss_fn
    per_step = 2 if adversarial else 1  # adversarial training: the clean pass, then the pushed one (made NaN here)

    def loss_fn(*args, **kwargs):
        loss = real_loss(*args, **kwargs)
        if torch.is_grad_enabled():  # training steps only, not validation
            calls.append(1)
            if len(calls) == per_step * (BATCHES + 5):
                loss = loss * float("nan")
        return loss

    monkeypatch.setattr(steps, "loss_fn", loss_fn)
    run_dir = tmp_path / "run"
    code = train_main(_args(reference / "data", run_dir, f"train.adversarial={adversarial}"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    step, last_good = BATCHES + 5, 2 * ((BATCHES + 4) // 2)  # a checkpoint every 2 steps: the last before the NaN
    expected = f"error: the training loss became nan at step {step} (epoch 2, batch 5/{BATCHES})"
    assert err[-1].startswith(expected), err[-1]
    kept = run_dir / checkpoint.FOLDER / f"ckpt-{last_good:09d}.pt"
    assert f"the last good checkpoint {kept} is kept" in err[-1]
    assert checkpoint.existing(run_dir / checkpoint.FOLDER)[-1] == kept
    assert all(torch.isfinite(v).all() for v in checkpoint.load(kept)["model"].values())
    assert not (run_dir / "metrics.json").exists()


@pytest.mark.parametrize("when", ["training", "validation"])
def test_sigterm_checkpoints_at_the_next_step_exits_0_and_resumes_bit_identical(reference, tmp_path, monkeypatch,
                                                                                capsys, when):
    from textclf import device
    from textclf.training import steps

    step = 5  # mid-epoch 1, in which the signal arrives inside a training step
    per_step = 2 if load_config(None, _args(reference / "data", tmp_path)).train.adversarial else 1
    calls, real_loss = [], steps.loss_fn

    def loss_fn(*args, **kwargs):  # a scheduler's SIGTERM, inside training step 5 or epoch 1's validation
        training = torch.is_grad_enabled()
        if training == (when == "training"):
            calls.append(1)
            if len(calls) == (per_step * step if training else 1):
                os.kill(os.getpid(), signal.SIGTERM)
        return real_loss(*args, **kwargs)

    for module in (steps, device):  # training steps, and validation
        monkeypatch.setattr(module, "loss_fn", loss_fn)
    before = signal.getsignal(signal.SIGTERM)
    run_dir = tmp_path / "run"
    assert train_main(_args(reference / "data", run_dir)) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].endswith(f"; resume with: python train.py resume={run_dir}"), out
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the caller's again
    saved = checkpoint.existing(run_dir / checkpoint.FOLDER)[-1]
    ckpt = checkpoint.load(saved)
    assert out[-1].startswith(f"stopped by SIGTERM at step {ckpt['step']}: checkpoint {saved}")
    if when == "training":
        assert ckpt["step"] == ckpt["batch"] == step  # the step the signal arrived in
    else:
        assert (ckpt["epoch"], ckpt["batch"]) == (2, 0)  # the end of epoch 1
    assert not (run_dir / "metrics.json").exists()
    for module in (steps, device):
        monkeypatch.setattr(module, "loss_fn", real_loss)
    assert train_main([f"resume={run_dir}"]) == 0
    assert_same_run(reference / "ref", run_dir)


def test_sigterm_handler_only_in_the_main_thread():
    import threading

    from textclf.training.preemption import Sigterm

    seen = []
    thread = threading.Thread(target=lambda: seen.append(Sigterm().installed))
    thread.start()
    thread.join()
    assert seen == [False]


@pytest.mark.slow
def test_sigterm_a_real_train_py_exits_0_with_the_resume_command(reference, tmp_path):
    run_dir = tmp_path / "preempted"
    proc = subprocess.Popen([sys.executable, "train.py", *_args(reference / "data", run_dir)], cwd=REPO,
                            env=_env(reference / "cache"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        steps = [int(p.stem.split("-")[1]) for p in checkpoint.existing(run_dir / checkpoint.FOLDER)]
        if steps and max(steps) >= BATCHES + 3:  # mid-epoch 2, far from the end
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.002)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert stdout.strip().splitlines()[-1].endswith(f"resume with: python train.py resume={run_dir}"), stdout
    assert "SIGTERM: wrote" in stderr and not (run_dir / "metrics.json").exists()
    assert checkpoint.load(checkpoint.existing(run_dir / checkpoint.FOLDER)[-1])["step"] >= BATCHES + 3

    out = subprocess.run([sys.executable, "train.py", f"resume={run_dir}"], cwd=REPO, env=_env(reference / "cache"),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert_same_run(reference / "ref", run_dir)
