"""End to end: the real commands users run (`python train.py`, `python evaluate.py`, `textclf predict`)."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from textclf.cli import evaluate_main, main, train_main

from .conftest import REPO, TINY


def run(*args, cwd=REPO, stdin=None):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}  # see conftest: one thread each
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, input=stdin,
                          timeout=300)


@pytest.mark.slow
def test_train_then_evaluate_then_predict_with_the_real_scripts(tmp_path, tiny_dir):
    run_dir = tmp_path / "run"
    out = run("train.py", f"data.path={tiny_dir}", f"run_dir={run_dir}", *TINY)
    assert out.returncode == 0, out.stderr
    assert "test accuracy" in out.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9
    assert {p.name for p in (run_dir / "model").iterdir()} == {"config.json", "model.safetensors", "vocab.json"}
    assert "tokenizer:" in (run_dir / "config.yaml").read_text()

    out = run("evaluate.py", str(run_dir), "--data", str(tiny_dir), "--output", str(tmp_path / "eval.json"))
    assert out.returncode == 0, out.stderr
    assert "accuracy" in out.stdout and "confusion matrix" in out.stdout
    assert json.loads((tmp_path / "eval.json").read_text())["accuracy"] == metrics["test"]["accuracy"]

    out = run("-m", "textclf", "predict", str(run_dir), "-", "--format", "json",
              stdin="superb brilliant film\nawful dull film\n")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["label"] for r in rows] == ["pos", "neg"]


def test_evaluate_a_single_file_with_other_columns(tmp_path, tiny_dir, capsys):
    assert train_main([f"data.path={tiny_dir}", f"run_dir={tmp_path / 'run'}", *TINY]) == 0
    df = pd.read_csv(tiny_dir / "test.csv").rename(columns={"text": "review", "label": "sentiment"})
    df["sentiment"] = df["sentiment"].map({"neg": 0, "pos": 1})
    df.to_csv(tmp_path / "mine.csv", index=False)
    assert evaluate_main([str(tmp_path / "run" / "model"), "--data", str(tmp_path / "mine.csv"),
                          "--text-column", "review", "--label-column", "sentiment"]) == 0
    assert "accuracy" in capsys.readouterr().out


def test_textclf_command_has_the_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    assert all(cmd in help_text for cmd in ("train", "evaluate", "predict"))
