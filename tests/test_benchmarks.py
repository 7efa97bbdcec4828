"""The benchmark scripts run end to end on a tiny model (the lead runs them on the real one)."""

import importlib.util
import json
import logging

import pandas as pd
import pytest

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


@pytest.mark.slow
def test_learning_curve_scores_every_method_on_the_same_rows(tmp_path, capsys, restore_logging):
    from .conftest import TINY, make_reviews

    folder = tmp_path / "data" / "airline_tweets"  # the layout of ../shared/data, with made-up tweets
    folder.mkdir(parents=True)
    for split, n, seed in (("train", 300, 0), ("test", 120, 1)):
        rows = make_reviews(n, seed=seed, labels=("negative", "positive"))
        rows.rename(columns={"label": "airline_sentiment"}).to_csv(folder / f"{split}.csv", index=False)
    model = save_random_model(tmp_path / "model", labels=("negative", "positive"))
    out = tmp_path / "lc"
    argv = ["--data-root", str(tmp_path / "data"), "--datasets", "airline2", "--sizes", "100,all",
            "--methods", "scratch,finetune,baseline,vader,untouched", "--init-from", str(model),
            "--out", str(out), *TINY, "train.epochs=2"]
    assert _script("learning_curve").main(argv) == 0
    results = json.loads((out / "results.json").read_text())["airline2"]
    assert list(results) == ["100", "all"]
    for size, train_rows in (("100", 100), ("all", 300)):
        (row,) = results[size]
        assert set(row) == {"scratch", "finetune", "baseline", "vader", "untouched"}
        assert len(pd.read_csv(out / "airline2" / f"{size}-s1" / "train.csv")) == train_rows
        for method in row.values():
            assert 0 <= method["accuracy"] <= 1 and 0 <= method["macro_f1"] <= 1
        assert 0 <= row["scratch"]["lstm_weight"] <= 1  # the calibration's weight on the LSTM
    # every textclf run was scored on the one test file, all 120 rows
    for run in ("scratch", "finetune"):
        metrics = json.loads((out / "airline2" / "all-s1" / run / "metrics.json").read_text())
        assert metrics["test"]["n"] == 120
        # the model stays, the finished run's checkpoints go (gigabytes over a curve of many runs)
        assert (out / "airline2" / "all-s1" / run / "model").is_dir()
        assert not (out / "airline2" / "all-s1" / run / "checkpoints").exists()
    printed = capsys.readouterr().out
    assert "| train rows | scratch | finetune | baseline | vader | untouched |" in printed
    assert f"| all | {results['all'][0]['scratch']['accuracy']:.3f} / " in printed


def test_learning_curve_refuses_a_data_root_without_the_data(tmp_path, restore_logging):
    with pytest.raises(SystemExit, match="error: no train.parquet or train.csv"):
        _script("learning_curve").main(["--data-root", str(tmp_path), "--datasets", "airline", "--out",
                                        str(tmp_path / "lc")])


@pytest.mark.slow
def test_imdb_benchmark_runs_every_stage_and_prints_the_table(tmp_path, tiny_dir, capsys):
    import subprocess
    import sys

    from .conftest import TINY

    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "imdb.py"), "--data", str(tiny_dir),
                           "--run-dir", str(tmp_path / "run"), "--tutorial-batches", "3", "--output", str(out),
                           *TINY, "train.epochs=1", "tokenizer.kind=auto"],  # every stage resolves auto
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())
    assert 0.5 <= results["textclf"]["test_accuracy"] <= 1 and results["textclf"]["epochs"] == 1
    assert results["tutorial"]["max_abs_diff_padded_vs_packed"] <= 1e-5
    inference = results["inference"]
    assert results["prep"]["cold_seconds"] > 0 and inference["reviews_per_s"] > 0
    assert inference["exact_reviews_per_s"] > 0 and inference["default_precision"] in ("float32", "bfloat16")
    assert inference["model_reviews_per_s"] > 0 and inference["exact_model_reviews_per_s"] > 0
    # the exact API (float32, no shortcut) = train.py's exact test figure (float32); the default within noise of it
    assert inference["exact_accuracy"] == pytest.approx(results["textclf"]["exact_test_accuracy"], abs=1e-4)
    assert abs(inference["accuracy"] - inference["exact_accuracy"]) <= 0.05
    assert results["textclf"]["wall_seconds"] > results["textclf"]["train_seconds"]
    assert results["textclf"]["pass_tokens_per_s"] == round(results["textclf"]["tokens_per_s"] * (
        results["textclf"]["passes_per_batch"]))
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

    from textclf.training import trainer

    check = _script("gpu_check")

    def fake_epoch(*args, **kwargs):  # a training epoch of 4 steps with 2 host syncs
        for _ in range(2):
            warnings.warn(check.SYNC, stacklevel=1)
        args[3].batch += 4

    monkeypatch.setattr(trainer, "train_epoch", fake_epoch)
    progress = trainer.Progress()
    with check.SyncCounter().watching(cuda=False) as counter:
        trainer.train_epoch(*[None] * 3, progress)
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


@pytest.mark.slow
def test_small_data_times_the_plain_command_in_each_checkout_in_turn(tmp_path, capsys, restore_logging):
    from .conftest import TINY, make_reviews

    folder = tmp_path / "data" / "airline_tweets"  # the layout of ../shared/data, with made-up tweets
    folder.mkdir(parents=True)
    make_reviews(150, seed=0, labels=("negative", "positive")).rename(
        columns={"label": "airline_sentiment"}).to_csv(folder / "train.csv", index=False)
    argv = ["--data-root", str(tmp_path / "data"), "--datasets", "airline", "--rows", "120", "--rounds", "1",
            "--checkout", f"again={REPO}", *TINY, "train.epochs=2", "pretrain.min_tokens=50000"]
    assert _script("small_data").main(argv) == 0
    printed = capsys.readouterr().out
    result = json.loads(printed.strip().splitlines()[-1])
    assert result["rows"] == 120 and set(result["results"]["airline"]) == {"this", "again"}
    for (run,) in result["results"]["airline"].values():
        assert run["seconds"] > 0 and run["epochs"] == 2 and 0 <= run["validation_accuracy"] <= 1
        assert run["word2vec_passes"] > 5  # the corpus is small for min_tokens: more passes, read off the log
    assert "| airline | again | " in printed


def test_small_data_refuses_a_data_root_without_the_data(tmp_path):
    with pytest.raises(SystemExit, match="error: no train.csv in"):
        _script("small_data").main(["--data-root", str(tmp_path), "--datasets", "airline"])


def test_linear_beside_times_word2vec_alone_and_beside_the_linear_views_process(tmp_path, capsys, restore_logging):
    from .conftest import write_tiny_data

    folder = write_tiny_data(tmp_path / "tiny")
    assert _script("linear_beside").main(["--data", str(folder), "--passes", "2", "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    result = json.loads(printed.strip().splitlines()[-1])
    assert result["passes"] == 2 and result["workers"] == 2 and len(result) == 7
    assert all(v >= 0 for v in result.values())
    assert result["the linear view's process, done after"] > 0  # a process started: a second at least
    assert "| word2vec beside the linear view's process | " in printed
