"""Every data source trains: datasets folders (Hub-style, save_to_disk), spreadsheet exports in any encoding,
the user's own files without any other dataset, and IMDB under its new label names for old models too."""

import json
import logging
import re

import pandas as pd
import pytest

from textclf import data
from textclf.cli import main
from textclf.config import load_config
from textclf.errors import TextclfError
from textclf.reports.evaluation import evaluate
from textclf.training.pipeline import train

from ..conftest import REPO, TINY, make_reviews, save_random_model
from .test_data import write_datasets_folders

FAST = [*TINY, "train.epochs=2"]


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory):
    return write_datasets_folders(tmp_path_factory.mktemp("hf"), n_train=200, n_test=60)


@pytest.mark.parametrize("form", ["saved", "hub"])
def test_trains_on_a_datasets_folder_and_names_labels_as_it_does(hf_folders, tmp_path, form):
    saved, hub = hf_folders
    path = saved if form == "saved" else hub
    metrics = train(load_config(None, [f"data.path={path}", "data.text_column=review", "data.label_column=sentiment",
                                       f"run_dir={tmp_path / 'run'}", *FAST]))
    assert metrics["test"]["labels"] == ["bad", "good"] and metrics["test"]["n"] == 60
    assert json.loads((tmp_path / "run" / "model" / "config.json").read_text())["labels"] == ["bad", "good"]
    again = evaluate(str(tmp_path / "run"), f"hf:{hub}", "test", output=str(tmp_path / "eval.json"))
    assert again["accuracy"] == pytest.approx(metrics["test"]["accuracy"]) and again["n"] == 60


@pytest.mark.parametrize(("extra", "message"), [
    (["data.path={saved}", "data.test_split=holdout"], 'has no split "holdout"; its splits: train, test, hidden'),
    (["data.path=hf:{hub}:tiny"], 'has no config "tiny"; configs: default, small'),
    (["data.path={hub}", "data.text_column=body"], 'no column "body"; columns: review, sentiment'),
])
def test_a_missing_split_config_or_column_is_one_line_exit_2(hf_folders, tmp_path, capsys, extra, message):
    saved, hub = hf_folders
    argv = ["train", *FAST, f"run_dir={tmp_path / 'run'}", "data.text_column=review", "data.label_column=sentiment",
            *(e.format(saved=saved, hub=hub) for e in extra)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1], err
    assert sum(line.startswith("error:") for line in err) == 1 and "Traceback" not in "\n".join(err)
    assert not (tmp_path / "run").exists()


def _reviews_with_accents(n: int, seed: int) -> pd.DataFrame:
    df = make_reviews(n, seed=seed)
    df["text"] = [t.replace("movie", "movie, très").replace("plot", "plot; naïve").replace("the", "the café")
                  for t in df.text]
    return df


def _export(df: pd.DataFrame, path, fmt: str) -> None:
    if fmt == "xlsx":
        df.to_excel(path, index=False)
    else:
        sep, encoding = {"utf8": (",", "utf-8"), "semicolon": (";", "utf-8-sig"), "utf16": ("\t", "utf-16"),
                         "cp1252": (",", "cp1252")}[fmt]
        df.to_csv(path, index=False, sep=sep, encoding=encoding, lineterminator="\r\n")


def test_the_same_reviews_in_every_export_train_to_the_same_test_figures(tmp_path):
    train_df, test_df = _reviews_with_accents(400, 1), _reviews_with_accents(100, 2)
    suffix = {"utf8": "csv", "semicolon": "csv", "utf16": "txt", "cp1252": "csv", "xlsx": "xlsx"}
    results = {}
    for fmt, ext in suffix.items():
        for name, df in (("train", train_df), ("test", test_df)):
            _export(df, tmp_path / f"{name}_{fmt}.{ext}", fmt)
        files = [f"data.train={tmp_path / f'train_{fmt}.{ext}'}", f"data.test={tmp_path / f'test_{fmt}.{ext}'}"]
        extra = ["data.encoding=cp1252"] if fmt == "cp1252" else []  # the one format a file does not say
        m = train(load_config(None, [*files, *extra, f"run_dir={tmp_path / fmt}", *TINY, "train.epochs=1"]))
        results[fmt] = (m["test"]["accuracy"], m["test"]["loss"], m["test"]["n"])
    assert len(set(results.values())) == 1, results
    with pytest.raises(TextclfError, match="looks like Windows-1252 .*; pass data.encoding=cp1252"):
        train(load_config(None, [f"data.train={tmp_path / 'train_cp1252.csv'}", f"run_dir={tmp_path / 'no'}",
                                 *FAST]))


def _no_downloads(monkeypatch):
    import datasets

    def refuse(*a, **k):
        raise AssertionError("read a dataset the user did not name")

    monkeypatch.setattr(data.sources, "read_imdb_hub", refuse)  # where the loaders look it up
    monkeypatch.setattr(datasets, "load_dataset", refuse)


def test_a_data_train_run_reads_the_users_data_only(tmp_path, monkeypatch, caplog):
    _no_downloads(monkeypatch)
    monkeypatch.chdir(tmp_path)  # no ./data/imdb here either
    make_reviews(200, seed=1).to_csv(tmp_path / "my.csv", index=False)
    make_reviews(40, seed=2).to_csv(tmp_path / "t.csv", index=False)
    make_reviews(30, seed=3)[["text"]].to_csv(tmp_path / "more.csv", index=False)
    config = str(REPO / "configs" / "imdb.yaml")  # data.path: imdb, pretrain.word2vec and .unlabelled: true
    files = [f"data.train={tmp_path / 'my.csv'}", f"data.test={tmp_path / 't.csv'}", *FAST, "pretrain.epochs=1"]
    with caplog.at_level(logging.INFO):
        train(load_config(config, [*files, f"run_dir={tmp_path / 'a'}"]))
        assert "data.path (imdb) is not read" in caplog.text
        assert re.search(r"pretraining word vectors on [\d,]+ texts \(\d+ passes\)", caplog.text)  # train only
        caplog.clear()
        train(load_config(config, [*files, f"run_dir={tmp_path / 'b'}", f"data.unlabelled={tmp_path / 'more.csv'}"]))
        assert re.search(r"pretraining word vectors on [\d,]+ texts \+ 30 texts \(\d+ passes\)", caplog.text)


def test_old_imdb_models_read_the_new_label_names(tmp_path, tiny_run):
    """Models saved when IMDB was neg/pos (or 0/1) evaluate on negative/positive data and keep their head: by
    name for neg/pos; for 0/1, which may mean anything, once the model's own scores confirm it (issue 23)."""
    import json
    import shutil

    make_reviews(60, seed=4, labels=("negative", "positive")).to_csv(tmp_path / "imdb_new.csv", index=False)
    zero_one = shutil.copytree(tiny_run / "model", tmp_path / "m0")  # a trained model, its classes named 0/1
    meta = json.loads((zero_one / "config.json").read_text())
    (zero_one / "config.json").write_text(json.dumps({**meta, "labels": ["0", "1"]}))
    for old, model in ((("neg", "pos"), save_random_model(tmp_path / "mneg", labels=("neg", "pos"))),
                       (("0", "1"), zero_one)):
        m = evaluate(str(model), str(tmp_path / "imdb_new.csv"), text_column="text", label_column="label")
        assert m["n"] == 60
        metrics = train(load_config(None, [f"init_from={model}", f"data.train={tmp_path / 'imdb_new.csv'}",
                                           f"run_dir={tmp_path / f'ft{old[0]}'}", *TINY, "train.epochs=1"]))
        assert metrics["init_from"]["head"] == "kept", old
        assert metrics["init_from"]["labels_matched_by"] == ("names" if old[0] == "neg" else "scores")


def test_predict_and_evaluate_read_exports_with_the_same_options(tmp_path, capsys):
    model = save_random_model(tmp_path / "m")  # trained on columns review / stars
    df = _reviews_with_accents(12, 5).rename(columns={"text": "review", "label": "stars"})
    df.to_csv(tmp_path / "in.csv", index=False, sep=";", encoding="cp1252")
    out = ["--output", str(tmp_path / "out.csv")]
    assert main(["predict", str(model), "--input", str(tmp_path / "in.csv"), *out]) == 2
    assert "pass data.encoding=cp1252 (--encoding cp1252 for evaluate/predict)" in capsys.readouterr().err
    assert main(["predict", str(model), "--input", str(tmp_path / "in.csv"), "--encoding", "cp1252", *out]) == 0
    assert pd.read_csv(tmp_path / "out.csv").review.tolist() == df.review.tolist()
    assert main(["evaluate", str(model), "--data", str(tmp_path / "in.csv"), "--encoding", "windows-1252",
                 "--delimiter", "semicolon", "--output", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["n"] == 12
    assert main(["predict", str(model), "some text", "--encoding", "cp1252"]) == 2
