"""End to end: the real commands users run (`python train.py`, `python evaluate.py`, `textclf predict`)."""

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from textclf.cli import evaluate_main, main, train_main

from .conftest import REPO, TINY, save_random_model


def run(*args, cwd=REPO, stdin=None):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}  # see conftest: one thread each
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, input=stdin,
                          timeout=300)


def _one_line_error(capsys, code, pattern):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err and err[-1].startswith("error: ") and pattern in err[-1], err


@pytest.mark.slow
def test_train_then_evaluate_then_predict_with_the_real_scripts(tmp_path, tiny_dir):
    run_dir = tmp_path / "run"
    out = run("train.py", f"data.path={tiny_dir}", f"run_dir={run_dir}", *TINY)
    assert out.returncode == 0, out.stderr
    assert "test accuracy" in out.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9
    linear = {"linear.json", "linear.safetensors"} if metrics["calibration"]["weight"] < 1 else set()
    assert {p.name for p in (run_dir / "model").iterdir()} == {"README.md", "config.json", "model.safetensors",
                                                               "vocab.json", *linear}
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


def test_train_dry_run_outside_the_repo_writes_the_recipe_config_and_nothing_else(tmp_path, tiny_dir):
    """As from an installed wheel in an empty folder: no configs/ to find, the built-in recipe all the same."""
    import yaml

    from textclf.config import load_config, to_dict

    empty = tmp_path / "empty"
    empty.mkdir()
    out = run("-m", "textclf", "train", "--dry-run", f"data.path={tiny_dir}", "run_dir=R", cwd=empty)
    assert out.returncode == 0, out.stderr
    assert "one training step" in out.stdout and "one validation batch" in out.stdout, out.stdout
    assert out.stdout.strip().splitlines()[-1] == "wrote R/config.yaml"
    assert [p.relative_to(empty).as_posix() for p in sorted(empty.rglob("*"))] == ["R", "R/config.yaml"]
    written = yaml.safe_load((empty / "R" / "config.yaml").read_text())
    recipe = to_dict(load_config(REPO / "configs" / "imdb.yaml"))
    for section in ("tokenizer", "vocab", "model", "pretrain", "train"):
        assert written[section] == recipe[section], section


def test_dry_run_refuses_what_a_run_would_and_resume(tmp_path, tiny_dir, capsys):
    args = [f"data.path={tiny_dir}", f"run_dir={tmp_path / 'run'}", *TINY]
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text("{}")  # a finished run
    _one_line_error(capsys, train_main(["--dry-run", *args]), "already holds a finished run")
    _one_line_error(capsys, train_main(["--dry-run", *args, "resume=true"]), "--dry-run starts no run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["metrics.json"]


def test_a_dry_run_with_overwrite_keeps_the_config_a_run_was_trained_with(tmp_path, tiny_dir, capsys):
    """`--dry-run overwrite=true` on a finished run checks the new keys but leaves the run's config.yaml: rewritten,
    `--config RUN/config.yaml` would no longer train the model beside it."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text("{}")
    (run_dir / "config.yaml").write_text("train:\n  epochs: 2\n")
    assert train_main(["--dry-run", f"data.path={tiny_dir}", f"run_dir={run_dir}", *TINY, "overwrite=true"]) == 0
    assert capsys.readouterr().out.strip().endswith("holds a run: its config.yaml is kept as it was")
    assert (run_dir / "config.yaml").read_text() == "train:\n  epochs: 2\n"


def test_a_run_dir_that_is_a_file_is_refused_before_the_data_are_read(tmp_path, capsys):
    (tmp_path / "notes.csv").write_text("text,label\n")
    for run_dir in ("notes.csv", "notes.csv/sub"):
        code = train_main(["data.path=/nowhere", f"run_dir={tmp_path / run_dir}"])  # the data would fail later
        _one_line_error(capsys, code, f"{tmp_path / 'notes.csv'} is a file, not a folder")


def test_overrides_may_come_after_flags_and_anything_else_is_still_refused(tmp_path, tiny_dir, capsys):
    first = [f"data.path={tiny_dir}", *TINY]
    assert train_main([*first, "--dry-run", f"run_dir={tmp_path / 'a'}"]) == 0  # argparse alone: "unrecognized"
    assert main(["train", *first, "--dry-run", f"run_dir={tmp_path / 'b'}"]) == 0
    assert all((tmp_path / d / "config.yaml").is_file() for d in "ab")
    capsys.readouterr()
    for stray in ("--bogus", "nokey"):
        with pytest.raises(SystemExit) as e:
            train_main([*first, "--dry-run", stray])
        assert e.value.code == 2
        assert capsys.readouterr().err.strip() == f"error: unrecognized arguments: {stray} (see train.py --help)"


def test_evaluate_a_single_file_with_other_columns(tmp_path, tiny_dir, capsys):
    assert train_main([f"data.path={tiny_dir}", f"run_dir={tmp_path / 'run'}", *TINY]) == 0
    df = pd.read_csv(tiny_dir / "test.csv").rename(columns={"text": "review", "label": "sentiment"})
    df["sentiment"] = df["sentiment"].map({"neg": 0, "pos": 1})
    df.to_csv(tmp_path / "mine.csv", index=False)
    args = [str(tmp_path / "run" / "model"), "--data", str(tmp_path / "mine.csv"), "--text-column", "review",
            "--label-column", "sentiment", "--output"]
    assert evaluate_main([*args, str(tmp_path / "full.json")]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert evaluate_main([*args, str(tmp_path / "bf16.json"), "--bf16"]) == 0
    full, half = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("full", "bf16"))
    assert abs(full["accuracy"] - half["accuracy"]) <= 0.02 and full["roc_auc"] > 0.9 and half["roc_auc"] > 0.9


def test_textclf_command_has_the_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    assert all(cmd in help_text for cmd in ("train", "evaluate", "predict"))


# --- fine-tuning and prediction on files ---------------------------------------------------------


BAD_FILES = {  # name → (bytes, the part of the one-line error that says what and where)
    "malformed.csv": (b"review,stars\ngood,5\nbad, sadly,1\n", "malformed: Expected 2 fields in line 3, saw 3"),
    "latin1.csv": (b"review,stars\ngood,5\ncaf\xe9 bad,1\n",
                   'row 2 (not counting the header) is not UTF-8 in column "review"'),
    "empty.csv": (b"review,stars\n ,5\n,1\n", "has no rows with both text and a label"),
    "oneclass.csv": (b"review,stars\ngood,5\nfine,5\n", "has one class only (5)"),
    "columns.csv": (b"reviw,stars\ngood,5\nbad,1\n",
                    'no column "review" (did you mean "reviw"?); columns: reviw, stars'),
}


@pytest.mark.parametrize("name", [*BAD_FILES, "missing.csv", "folder", "not-a-model", "label-map-drops-all"])
def test_fine_tuning_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, name):
    model = save_random_model(tmp_path / "model")
    for file, (content, _) in BAD_FILES.items():
        (tmp_path / file).write_bytes(content)
    (tmp_path / "ok.csv").write_bytes(b"review,stars\ngood,5\nbad,1\nfine,4\n")
    args = [f"init_from={model}", f"data.train={tmp_path / name}", "data.text_column=review",
            "data.label_column=stars", f"run_dir={tmp_path / 'run'}", "data.validation_fraction=0.5"]
    expected = BAD_FILES.get(name, (None, None))[1]
    if name == "missing.csv":
        expected = "data file not found"
    elif name == "folder":
        args[1], expected = f"data.train={tmp_path}", "it is a folder; pass a file"
    elif name == "not-a-model":
        args[0], args[1] = f"init_from={tmp_path / 'ok.csv'}", f"data.train={tmp_path / 'ok.csv'}"
        expected = "is not a usable textclf model"
    elif name == "label-map-drops-all":
        args += [f"data.train={tmp_path / 'ok.csv'}", "data.label_map={2: negative}"]
        expected = "data.label_map leaves no rows"
    _one_line_error(capsys, train_main(["--config", str(REPO / "configs" / "finetune.yaml"), *args]), expected)
    assert not (tmp_path / "run").exists()


def test_non_utf8_training_data_can_be_read_with_replacement(tmp_path, capsys):
    model = save_random_model(tmp_path / "model")
    (tmp_path / "latin1.csv").write_bytes(b"review,stars\n" + b"good film,5\ncaf\xe9 bad,1\n" * 4)
    assert train_main([f"init_from={model}", f"data.train={tmp_path / 'latin1.csv'}", "data.text_column=review",
                       "data.label_column=stars", "data.encoding_errors=replace", f"run_dir={tmp_path / 'run'}",
                       "train.epochs=1", "data.validation_fraction=0.5"]) == 0
    assert "4 row(s) were not UTF-8" in capsys.readouterr().err


def test_evaluate_bad_labels_and_bytes_exit_2_and_write_nothing(tmp_path, capsys):
    model = save_random_model(tmp_path / "model")
    (tmp_path / "odd.csv").write_bytes(b"review,stars\ngood,pos\nbad,meh\n")
    (tmp_path / "latin1.csv").write_bytes(b"review,stars\ngood,pos\ncaf\xe9,neg\n")
    out = tmp_path / "m.json"
    _one_line_error(capsys, evaluate_main([str(model), "--data", str(tmp_path / "odd.csv"), "--output", str(out)]),
                    "labels the model does not know: meh (known labels: neg, pos")
    _one_line_error(capsys, evaluate_main([str(model), "--data", str(tmp_path / "latin1.csv"), "--output", str(out)]),
                    "row 2 (not counting the header) is not UTF-8")
    assert not out.exists()
    assert evaluate_main([str(model), "--data", str(tmp_path / "latin1.csv"), "--encoding-errors", "replace"]) == 0


def test_evaluate_names_its_own_flags_as_the_fix(tmp_path, capsys):
    """evaluate.py's column errors said "(set data.text_column)", a key it refuses; and --split on one file was
    reported as the split scored while the whole file was."""
    model = save_random_model(tmp_path / "model")
    (tmp_path / "mine.csv").write_text("text,label\ngood film,pos\nbad film,neg\n")
    data, out = ["--data", str(tmp_path / "mine.csv")], ["--output", str(tmp_path / "m.json")]
    _one_line_error(capsys, evaluate_main([str(model), *data, "--text-column", "review", *out]),
                    'has no column "review"; columns: text, label (set --text-column)')
    _one_line_error(capsys, evaluate_main([str(model), *data, "--text-column", "text", *out]),
                    'has no column "stars"; columns: text, label (set --label-column)')  # the model's label column
    _one_line_error(capsys, evaluate_main([str(model), *data, "--split", "train", *out]),
                    "is one file, scored whole (drop --split)")
    assert not (tmp_path / "m.json").exists()
    assert evaluate_main([str(model), *data, "--text-column", "text", "--label-column", "label", *out]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["split"] == "test"


@pytest.mark.parametrize(("args", "message"), [
    (["--input", "{tmp}/missing.csv", "--output", "{tmp}/out.csv"], "data file not found"),
    (["--input", "{tmp}/in.csv", "--output", "{tmp}/out.csv", "--text-column", "body"],
     'no column "body"'),
    (["--input", "{tmp}/latin1.csv", "--output", "{tmp}/out.csv"], "row 1 (not counting the header) is not UTF-8"),
    (["--input", "{tmp}/in.csv", "--output", "{tmp}/out.csv", "--format", "text"], "with --input use csv or json"),
    (["--input", "{tmp}/in.csv", "--output", "{tmp}"], "is a folder"),
    (["great film", "--input", "{tmp}/in.csv"], "not both"),
    (["great film", "--output", "{tmp}/out.csv"], "go with --input"),
    ([], 'give texts to label, "-" to read lines from stdin, or --input FILE'),
])
def test_predict_bad_arguments_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, args, message):
    model = save_random_model(tmp_path / "model")
    (tmp_path / "in.csv").write_text("review\ngood film\n")
    (tmp_path / "latin1.csv").write_bytes(b"review\ncaf\xe9\n")
    argv = ["predict", str(model), *(a.replace("{tmp}", str(tmp_path)) for a in args)]
    _one_line_error(capsys, main(argv), message)
    assert not (tmp_path / "out.csv").exists()


def test_threshold_is_for_binary_models_only(tmp_path, capsys):
    model = save_random_model(tmp_path / "model", labels=("a", "b", "c"))
    _one_line_error(capsys, main(["predict", str(model), "good film", "--threshold", "0.3"]),
                    "--threshold is for binary models; this one has 3 classes")
    # issue 30 item 13: one rule for every command (explain ignored it; Ray and serve: test_ray, test_app)
    _one_line_error(capsys, main(["explain", str(model), "good film", "--threshold", "0.3"]),
                    "--threshold is for binary models; this one has 3 classes")
    assert main(["explain", str(model), "good film", "--steps", "4"]) == 0


def test_texts_to_label_may_come_after_flags(tmp_path, capsys):
    """`textclf predict MODEL --threshold 0.7 "a text"`: the usage line puts flags before the texts, yet argparse
    took the texts after a flag for unrecognised arguments; an unknown flag is still refused, pointing to the
    command's own help."""
    model = save_random_model(tmp_path / "model")
    assert main(["predict", str(model), "good film", "--format", "json"]) == 0
    want = capsys.readouterr().out
    assert main(["predict", str(model), "--format", "json", "good film"]) == 0
    assert capsys.readouterr().out == want
    with pytest.raises(SystemExit) as e:
        main(["predict", str(model), "good", "--format", "json", "bad film", "-x"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == "error: unrecognized arguments: -x (see textclf predict --help)"
    assert main(["predict", str(model), "good film", "--threshold", "0.9", "awful film", "--format", "json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_predict_reads_csv_and_lines_from_stdin(tmp_path, capsys, monkeypatch):
    import io

    model = save_random_model(tmp_path / "model")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'id,review\n7,"good\nfilm"\n')))
    assert main(["predict", str(model), "--input", "-", "--format", "json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["id"] == "7" and row["review"] == "good\nfilm" and set(row) >= {"predicted_label", "prob_neg"}
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"good film\n\nbad film\n")))
    assert main(["predict", str(model), "-"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 2 and "skipped 1 blank line(s)" in captured.err
    assert main(["predict", str(model), "good film", "", "  "]) == 0  # given as arguments: the same rule
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1 and "skipped 2 blank text(s)" in captured.err
    _one_line_error(capsys, main(["predict", str(model), ""]), "every text given is blank")
    _one_line_error(capsys, main(["explain", str(model), " "]), "the text is blank: nothing to explain")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"good\ncaf\xe9\n")))
    _one_line_error(capsys, main(["predict", str(model), "-"]), "stdin line 2 is not UTF-8")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xef\xbb\xbfgood\n\xffbad\n")))
    _one_line_error(capsys, main(["predict", str(model), "-"]), "stdin line 2 is not UTF-8")  # the mark not counted
    for data in (b"\xef\xbb\xbfgood film\n", b"good film\n"):  # a byte-order mark changed the first text
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        assert main(["predict", str(model), "-", "--format", "json"]) == 0
        assert json.loads(capsys.readouterr().out)["text"] == "good film"


def test_ctrl_c_in_training_says_how_to_resume(tmp_path, tiny_dir, capsys, monkeypatch):
    """Ctrl-C after a checkpoint: the next plain run is refused as an interrupted one, so say how to go on, as
    SIGTERM's stop does."""
    from textclf.training import pipeline

    run_dir = tmp_path / "run"

    def stopped(cfg):
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "checkpoints" / "ckpt-000000004.pt").write_bytes(b"")
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "train", stopped)
    assert train_main([f"data.path={tiny_dir}", f"run_dir={run_dir}", *TINY]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2:] == [f"stopped; its last checkpoint resumes with: python train.py resume={run_dir}", "interrupted"]
    shutil.rmtree(run_dir)
    monkeypatch.setenv("WORLD_SIZE", "2")  # rank 0 of torchrun's two: a resume must start two again
    monkeypatch.setenv("RANK", "0")
    assert train_main([f"data.path={tiny_dir}", f"run_dir={run_dir}", *TINY]) == 130
    assert f"resumes with: torchrun --nproc_per_node=2 train.py resume={run_dir}" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_sigterm_during_predict_output_leaves_no_temporary_file(tmp_path, suffix):
    """`kill` (or a scheduler) during `textclf predict --output` left its hidden temporary file (13 MB of IMDB
    predictions) or chunk folder beside the output, one more each time; Ctrl-C cleaned up. SIGTERM now does too."""
    import signal
    import time

    model = save_random_model(tmp_path / "model")
    pd.DataFrame({"review": ["good film " * 40, "bad film " * 40] * 100_000}).to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "out" / f"labelled{suffix}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = ["-m", "textclf", "predict", str(model), "--input", str(tmp_path / "in.csv"), "--output", str(out),
               "--chunk-size", "2000"]
    proc = subprocess.Popen([sys.executable, *command], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and not any(out.parent.glob(".*")):
        time.sleep(0.01)  # until its temporary file (or folder) is there: writing has begun
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and err.strip().splitlines()[-1] == "terminated", err
    assert not out.parent.exists()  # nor the folder it made for the output


def test_predict_names_a_parquet_or_json_stream_as_not_csv(tmp_path, capsys, monkeypatch):
    """stdin is read as CSV: Parquet on it was diagnosed as UTF-16 text (naming a training key), JSON lines as a
    malformed CSV."""
    import io

    import pandas as pd

    model = save_random_model(tmp_path / "model")
    frame = pd.DataFrame({"text": ["good film", "bad film"]})
    frame.to_parquet(tmp_path / "in.parquet")
    frame.to_json(tmp_path / "in.jsonl", orient="records", lines=True)
    for name, what in (("in.parquet", "a Parquet file"), ("in.jsonl", "JSON lines")):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO((tmp_path / name).read_bytes())))
        _one_line_error(capsys, main(["predict", str(model), "--input", "-"]),
                        f"is read as CSV, and this looks like {what}: pass the file's path instead")


def test_a_csv_stream_whose_header_starts_with_a_bracket_and_a_json_lines_stream_still_read():
    import io

    from textclf.data.tables import iter_table

    frame = next(iter_table(io.BytesIO(b"[id],text\n1,good film\n")))
    assert list(frame.columns) == ["[id]", "text"]
    frame = next(iter_table(io.BytesIO(b'{"text": "a", "label": 1}\n'), suffix=".jsonl"))
    assert frame.iloc[0]["text"] == "a"


def _shop_reviews(n, seed):
    """Reviews as a shop exports them: title + body (with quoted newlines), string labels, extra columns."""
    from .conftest import make_reviews

    df = make_reviews(n, seed=seed, labels=("Negative", "Positive"))
    title = df.text.str.split().str[:2].str.join(" ")
    body = df.text.str.replace(" ", "\n", n=1, regex=False)  # every body holds a quoted newline
    return pd.DataFrame({"order_id": [f"A-{i}" for i in range(n)], "title": title, "body": body,
                         "sentiment": df.label, "shop": "acme, inc."})


@pytest.mark.slow
def test_fine_tune_then_evaluate_then_predict_a_file_with_the_real_scripts(tmp_path, tiny_dir):
    assert train_main([f"data.path={tiny_dir}", f"run_dir={tmp_path / 'base'}", *TINY]) == 0
    train = _shop_reviews(200, seed=11)
    train.loc[3, ["title", "body"]], train.loc[4, "sentiment"] = "", None
    train.to_csv(tmp_path / "shop.csv", index=False)
    _shop_reviews(100, seed=12).to_csv(tmp_path / "shop_test.csv", index=False)
    new = _shop_reviews(30, seed=13).drop(columns="sentiment")
    new.to_csv(tmp_path / "new.csv", index=False)

    out = run("train.py", "--config", "configs/finetune.yaml", f"init_from={tmp_path / 'base'}",
              f"data.train={tmp_path / 'shop.csv'}", f"data.test={tmp_path / 'shop_test.csv'}",
              "data.text_column=title,body", "data.label_column=sentiment", f"run_dir={tmp_path / 'shop_run'}",
              "train.epochs=3", "vocab.min_freq=1")
    assert out.returncode == 0, out.stderr
    assert "dropped 1 row(s) with no label" in out.stderr and "dropped 1 row(s) with empty text" in out.stderr
    assert "kept head" in out.stderr and "train OOV" in out.stderr
    metrics = json.loads((tmp_path / "shop_run" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9 and metrics["init_from"]["head"] == "kept"

    out = run("evaluate.py", str(tmp_path / "shop_run"), "--data", str(tmp_path / "shop_test.csv"),
              "--output", str(tmp_path / "eval.json"))
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "eval.json").read_text())["accuracy"] == metrics["test"]["accuracy"]

    out = run("-m", "textclf", "predict", str(tmp_path / "shop_run"), "--input", str(tmp_path / "new.csv"),
              "--output", str(tmp_path / "predicted.csv"), "--chunk-size", "8")
    assert out.returncode == 0, out.stderr
    predicted = pd.read_csv(tmp_path / "predicted.csv", dtype=str, keep_default_na=False)
    assert list(predicted.columns) == [*new.columns, "predicted_label", "prob_Negative", "prob_Positive"]
    assert predicted[list(new.columns)].equals(pd.read_csv(tmp_path / "new.csv", dtype=str, keep_default_na=False))
    truth = _shop_reviews(30, seed=13).sentiment
    assert (predicted.predicted_label == truth).mean() >= 0.9


@pytest.mark.parametrize("command", ["predict", "evaluate", "serve"])
def test_no_shortcut_reaches_the_model_for_every_command_that_loads_one(command, monkeypatch):
    from textclf import cli

    seen = []
    build, _, help_text = cli.COMMANDS[command]
    monkeypatch.setitem(cli.COMMANDS, command, (build, lambda args: seen.append(args.shortcut) or 0, help_text))
    extra = {"predict": ["some text"], "evaluate": ["--data", "d"], "serve": []}[command]
    assert main([command, "runs/x", *extra]) == 0 and main([command, "runs/x", *extra, "--no-shortcut"]) == 0
    assert seen == [True, False]


def test_a_command_that_is_the_whole_process_leaves_its_objects_to_the_exit():
    """The real scripts (argv read from the command line) freeze what is left, so the interpreter's shutdown does
    not walk it; a call with argv (tests, a caller's own program) leaves the garbage collector as it was."""
    import gc

    from textclf.cli import _leaving

    assert gc.get_freeze_count() == 0
    try:
        assert _leaving(3, ["train"]) == 3 and gc.get_freeze_count() == 0
        assert _leaving(2, None) == 2 and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
