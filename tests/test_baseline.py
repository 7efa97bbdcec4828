import json

from textclf.cli import main

from .conftest import TINY


def test_baseline_reports_the_same_metrics_as_the_lstm(tmp_path, tiny_dir, capsys):
    out = tmp_path / "baseline.json"
    assert main(["baseline", f"data.path={tiny_dir}", *TINY, "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[validation]" in printed and "[test]" in printed and "confusion matrix" in printed
    result = json.loads(out.read_text())
    assert result["features"] > 20
    assert result["test"]["n"] == 200 and result["test"]["accuracy"] >= 0.9
    assert set(result["test"]) >= {"accuracy", "precision", "recall", "f1", "roc_auc", "confusion_matrix"}


def test_baseline_says_which_keys_it_does_not_use(tmp_path, tiny_dir, capsys):
    """A newcomer's review: `textclf baseline ... run_dir=X` took run_dir and wrote nothing there, without a word."""
    assert main(["baseline", f"data.path={tiny_dir}", "tokenizer.kind=regex", f"run_dir={tmp_path / 'b'}",
                 "train.epochs=3", "train.seed=3"]) == 0
    assert "writes no run folder: run_dir, train.epochs not used (--output FILE writes its figures)" in \
        capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_baseline_bad_input_is_one_line(tmp_path, tiny_dir, capsys):
    code = main(["baseline", f"data.path={tiny_dir}", "data.label_column=stars", "--output", str(tmp_path / "o.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and 'no column "stars"' in err[-1]
    assert not (tmp_path / "o.json").exists()
