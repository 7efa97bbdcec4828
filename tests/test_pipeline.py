"""The steps of one training run (training/pipeline.py), on tiny data: what reaches metrics.json, and what the
run leaves behind when it stops early."""

import json

import numpy as np
import pandas as pd
import pytest

from textclf.config import load_config
from textclf.training import pipeline
from textclf.training.pipeline import train

from .conftest import TINY, make_reviews


def test_a_lone_data_file_is_the_train_split_never_its_own_test(tmp_path, caplog):
    """data.path=FILE trained, validated and tested on the same rows: test accuracy was training accuracy
    (issue 23). The file is train; validation is carved from it; there is no test split, said in one line."""
    make_reviews(300, seed=1).to_csv(tmp_path / "reviews.csv", index=False)
    with caplog.at_level("INFO"):
        metrics = train(load_config(None, [f"data.path={tmp_path / 'reviews.csv'}", f"run_dir={tmp_path / 'run'}",
                                           *TINY]))
    assert "test" not in metrics and "test" not in json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["validation"]["n"] == 90  # carved: 30% of 300 (at least 200 rows' worth, at most 30%)
    assert "no test split" in caplog.text and "it is the train split" in caplog.text


def test_duplicates_across_splits_are_counted_and_reported(tmp_path, caplog):
    train_rows = make_reviews(300, seed=1)
    test_rows = pd.concat([make_reviews(50, seed=2), train_rows.head(7)])
    train_rows.to_csv(tmp_path / "train.csv", index=False)
    test_rows.to_csv(tmp_path / "test.csv", index=False)
    with caplog.at_level("WARNING"):
        metrics = train(load_config(None, [f"data.train={tmp_path / 'train.csv'}", f"data.test={tmp_path / 'test.csv'}",
                                           f"run_dir={tmp_path / 'run'}", *TINY]))
    # the 7 repeated rows are in train, or in the validation carved from it
    assert metrics["duplicates"]["test_in_validation"] + metrics["duplicates"]["test_in_train"] >= 7
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("duplicates:"))
    assert "test text(s) of 57 in train" in line


def test_the_tensorboard_writer_closes_when_training_stops_on_sigterm(tmp_path, tiny_dir, monkeypatch):
    """The writer was closed only at a run's normal end (issue 23): a SIGTERM (Preempted) or an error left it
    open, its last events unflushed."""
    from textclf.training import trainer

    closed = []

    class Writer:
        def __init__(self, **kwargs):
            pass

        def add_scalar(self, *args):
            pass

        def flush(self):
            pass

        def close(self):
            closed.append(True)

    def preempted(*args, **kwargs):
        raise trainer.Preempted(tmp_path / "ckpt.pt", 3)

    monkeypatch.setattr(pipeline, "writer_class", lambda: Writer)
    monkeypatch.setattr(pipeline, "fit_model", preempted)
    with pytest.raises(trainer.Preempted):
        train(load_config(None, [f"data.path={tiny_dir}", f"run_dir={tmp_path / 'run'}", *TINY,
                                 "train.tensorboard=true"]))
    assert closed == [True]


@pytest.mark.parametrize(("preset", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_train_py_makes_openmp_threads_wait_passively_unless_the_user_chose(monkeypatch, preset, expected):
    """Two runs side by side on 2 cores spun OpenMP threads against each other (issue 23: an epoch of 2 s took
    1-105 s): train.py sets the passive wait policy before torch loads; a value the user set wins."""
    from textclf.cli import train_main

    if preset is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", preset)
    seen = {}
    monkeypatch.setattr(pipeline, "train", lambda cfg: seen.setdefault("policy", __import__("os").environ.get(
        "OMP_WAIT_POLICY")) and {})
    assert train_main(["data.path=x"]) == 0
    assert seen["policy"] == expected


def test_train_threads_sets_and_logs_the_threads(tmp_path, tiny_dir, caplog, monkeypatch):
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    seen = []
    real = pipeline.fit_model
    monkeypatch.setattr(pipeline, "fit_model", lambda *a, **k: seen.append(torch.get_num_threads()) or real(*a, **k))
    try:
        with caplog.at_level("INFO"):
            train(load_config(None, [f"data.path={tiny_dir}", f"run_dir={tmp_path / 'run'}", *TINY, "train.threads=2"]))
        assert seen == [2] and "threads: 2 of" in caplog.text and "(train.threads=N to set)" in caplog.text
        train(load_config(None, [f"data.path={tiny_dir}", f"run_dir={tmp_path / 'run2'}", *TINY]))
        assert seen[-1] == 1  # OMP_NUM_THREADS where set (torchrun sets 1 a process), else the cores
    finally:
        torch.set_num_threads(1)


def test_the_linear_view_learns_from_validation_too_once_validation_has_chosen(monkeypatch):
    """Validation picks the linear view's kind, the temperatures and the weight; then its rows are data: the
    saved view is fitted again on train and validation (on 500 Chinese reviews, 30% of the rows: the model went
    from 0.860 to 0.878 on test)."""
    from types import SimpleNamespace

    from textclf.models.linear import LinearModel
    from textclf.text.tokens import Tokenized
    from textclf.text.vocab import LabelVocab

    train = [["good", "film"], ["bad", "film"]] * 10
    validation = [["superb", "film"], ["awful", "film"]] * 5
    data = SimpleNamespace(tokens={"train": Tokenized.from_token_lists(train),
                                   "validation": Tokenized.from_token_lists(validation)},
                           datasets={"train": SimpleNamespace(labels=np.array([1, 0] * 10)),
                                     "validation": SimpleNamespace(labels=np.array([1, 0] * 5))},
                           labels=LabelVocab(["neg", "pos"]))
    first = LinearModel.fit(train, data.datasets["train"].labels, 2, "tfidf")
    assert "superb" not in first.ngrams
    again = pipeline.refit(first, data)
    assert {"superb", "awful"} <= set(again.ngrams) and (again.kind, again.c) == (first.kind, first.c)
    assert again.predict_proba([["superb"]])[0, 1] > 0.5 > again.predict_proba([["awful"]])[0, 1]
