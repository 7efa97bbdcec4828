"""The benchmark scripts run end to end on a tiny model (the lead runs them on the real one)."""

import importlib.util
import json
import logging

import pytest

from textclf.artifact import load_model

from .conftest import REPO, save_random_model


def _script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


def test_finetune_benchmark_compares_both_starts_on_the_same_rows(tmp_path, capsys, restore_logging):
    model = save_random_model(tmp_path / "model")
    bench = _script("finetune")
    out = tmp_path / "bench"
    assert bench.main([str(model), "--out", str(out), "--seeds", "3", "train.epochs=1"]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    (run,) = results["runs"]
    assert results["train_rows"] == 213 and run["test_rows"] == 142 and run["head"] == "kept"
    assert f"{run['scratch']:.4f}" in printed and f"{run['finetune']:.4f}" in printed
    assert results["zero_shot"] is not None and 0 <= results["zero_shot"] <= 1
    scratch, tuned = load_model(out / "scratch-seed3"), load_model(out / "finetune-seed3")
    assert scratch.model.arch["hidden_size"] == tuned.model.arch["hidden_size"] == 8
    assert scratch.tokenizer == tuned.tokenizer
    assert json.loads((out / "scratch-seed3" / "metrics.json").read_text())["validation"]["n"] == run["validation_rows"]


def test_finetune_benchmark_rejects_a_folder_that_is_not_a_model(tmp_path, capsys, restore_logging):
    assert _script("finetune").main([str(tmp_path), "--out", str(tmp_path / "bench")]) == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.slow
def test_imdb_benchmark_runs_every_stage_and_prints_the_table(tmp_path, tiny_dir, capsys):
    import subprocess
    import sys

    from .conftest import TINY

    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "imdb.py"), "--data", str(tiny_dir),
                           "--run-dir", str(tmp_path / "run"), "--tutorial-batches", "3", "--output", str(out),
                           *TINY, "train.epochs=1"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())
    assert 0.5 <= results["textclf"]["test_accuracy"] <= 1 and results["textclf"]["epochs"] == 1
    assert results["tutorial"]["max_abs_diff_padded_vs_packed"] <= 1e-5
    inference = results["inference"]
    assert results["prep"]["cold_seconds"] > 0 and inference["reviews_per_s"] > 0
    assert inference["float32_reviews_per_s"] > 0 and inference["default_precision"] in ("float32", "bfloat16")
    assert inference["model_reviews_per_s"] > 0 and inference["float32_model_reviews_per_s"] > 0
    # the API in float32 = train.py's test figure (computed in float32); the default within bf16's noise of it
    assert inference["float32_accuracy"] == pytest.approx(results["textclf"]["test_accuracy"], abs=1e-4)
    assert abs(inference["accuracy"] - inference["float32_accuracy"]) <= 0.05
    assert results["textclf"]["wall_seconds"] > results["textclf"]["train_seconds"]
    assert results["textclf"]["pass_tokens_per_s"] == results["textclf"]["tokens_per_s"] * (
        results["textclf"]["passes_per_batch"])
    assert "| textclf (`configs/imdb.yaml`) |" in proc.stdout and "training throughput:" in proc.stdout
    assert "textclf's recipe, cold: tokenising" in proc.stdout and "the LSTM alone on token ids" in proc.stdout


def test_gpu_check_refuses_without_a_gpu_in_one_line(tmp_path, tiny_dir, capsys, restore_logging):
    import torch

    check = _script("gpu_check")
    if not torch.cuda.is_available():
        assert check.main([str(tiny_dir), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: no CUDA device here") and err.count("\n") == 1 and "--dry-run" in err
    assert check.main([str(tmp_path / "nowhere"), "--dry-run"]) == 2
    assert "data folder not found" in capsys.readouterr().err


def test_gpu_check_counts_the_syncs_of_training_steps_only(monkeypatch):
    import warnings

    from textclf import trainer

    check = _script("gpu_check")

    def fake_epoch(*args, **kwargs):  # a training epoch of 4 steps with 2 host syncs
        for _ in range(2):
            warnings.warn(check.SYNC, stacklevel=1)
        args[8].batch += 4

    monkeypatch.setattr(trainer, "train_epoch", fake_epoch)
    progress = trainer.Progress()
    with check.SyncCounter().watching(cuda=False) as counter:
        trainer.train_epoch(*[None] * 8, progress)
        warnings.warn(check.SYNC, stacklevel=1)  # validation's: counted in the run, not per step
    assert (counter.steps, counter.in_training, counter.total) == (4, 2, 3)
    assert trainer.train_epoch is fake_epoch  # put back


def test_gpu_check_dry_run_runs_every_step_on_the_cpu(tmp_path, tiny_dir, capsys, restore_logging):
    from .conftest import TINY

    out = tmp_path / "check.json"
    assert _script("gpu_check").main([str(tiny_dir), "--dry-run", "--out", str(tmp_path / "out"), "--output",
                                      str(out), "--tests", "tests/test_gpu.py", *TINY]) == 0
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())
    assert "DRY RUN on the CPU" in printed and "| default recipe (`configs/imdb.yaml`) |" in printed
    assert results["default"]["epochs"] == results["fp16"]["epochs"] == 1 and results["default"]["steps"] > 0
    assert 0.5 <= results["default"]["test_accuracy"] <= 1 and results["default"]["tokens_per_s"] > 0
    assert results["inference"]["reviews"] == 200 and results["inference"]["reviews_per_s"] > 0
    assert results["cuda_tests"]["ok"] and "skipped" in results["cuda_tests"]["summary"]
