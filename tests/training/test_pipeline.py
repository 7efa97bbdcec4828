"""The steps of one training run (training/pipeline.py), on tiny data: what reaches metrics.json, and what the
run leaves behind when it stops early."""

import json

import numpy as np
import pandas as pd
import pytest

from textclf.config import load_config
from textclf.text.tokens import Tokenized
from textclf.training import linear_view, pipeline
from textclf.training.pipeline import train

from ..conftest import TINY, make_reviews


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
    from textclf.training import preemption

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
        raise preemption.Preempted(tmp_path / "ckpt.pt", 3)

    monkeypatch.setattr(pipeline, "writer_class", lambda: Writer)
    monkeypatch.setattr(pipeline, "fit_model", preempted)
    with pytest.raises(preemption.Preempted):
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

    from textclf.models.lstm import directions_split, split_directions

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    seen = []
    real = pipeline.fit_model
    monkeypatch.setattr(pipeline, "fit_model",
                        lambda *a, **k: seen.append((torch.get_num_threads(), directions_split())) or real(*a, **k))
    base = [f"data.path={tiny_dir}", *TINY, "model.bidirectional=true"]
    try:
        with caplog.at_level("INFO"):
            train(load_config(None, [*base, f"run_dir={tmp_path / 'run'}", "train.threads=2"]))
        # two cores: the BiLSTM's directions side by side, one intra-op thread each
        assert seen == [(1, True)] and "threads: 2 of" in caplog.text and "(train.threads=N to set)" in caplog.text
        assert "two directions side by side, 1 each" in caplog.text
        train(load_config(None, [*base, f"run_dir={tmp_path / 'run1'}", "train.threads=2",
                                 "train.split_directions=false"]))
        assert seen[-1] == (2, False)  # one direction after the other, over both threads
        train(load_config(None, [*base, f"run_dir={tmp_path / 'run2'}"]))
        assert seen[-1] == (1, False)  # OMP_NUM_THREADS where set (torchrun sets 1 a process), else the cores
    finally:
        split_directions(1, split=False)


def _words_only_validation_knows():
    """Prepared-like data: train says good/bad, validation superb/awful (no train text holds them)."""
    from types import SimpleNamespace

    from textclf.text.tokens import Tokenized
    from textclf.text.vocab import LabelVocab

    train = [["good", "film"], ["bad", "film"]] * 10
    validation = [[word, "film", f"take{i}"] for i in range(10) for word in ("superb", "awful")]  # 20 texts
    return SimpleNamespace(tokens={"train": Tokenized.from_token_lists(train),
                                   "validation": Tokenized.from_token_lists(validation),
                                   "test": Tokenized.from_token_lists([["superb"], ["awful"]])},
                           datasets={"train": SimpleNamespace(labels=np.array([1, 0] * 10)),
                                     "validation": SimpleNamespace(labels=np.array([1, 0] * 10)),
                                     "test": SimpleNamespace(labels=np.array([1, 0]))},
                           labels=LabelVocab(["neg", "pos"]), finetune=None), train, validation


def _view_data(data) -> linear_view.ViewData:
    return linear_view.ViewData(data.tokens["train"], data.datasets["train"].labels, data.tokens["validation"],
                                data.datasets["validation"].labels, 2, ["tfidf"])


def test_the_linear_view_learns_from_validation_too_once_validation_has_chosen():
    """Validation picks the linear view's kind; then its rows are data: the saved view is fitted again on train
    and validation (on 500 Chinese reviews, 30% of the rows: the model went from 0.860 to 0.878 on test)."""
    from textclf.models.linear import LinearModel

    data, train, validation = _words_only_validation_knows()
    first = LinearModel.fit(train, data.datasets["train"].labels, 2, "tfidf")
    assert "superb" not in first.ngrams
    again, _ = linear_view.refit(first, _view_data(data), seed=0)
    assert {"superb", "awful"} <= set(again.ngrams) and (again.kind, again.c) == (first.kind, first.c)
    assert again.predict_proba([["superb"]])[0, 1] > 0.5 > again.predict_proba([["awful"]])[0, 1]


def test_the_calibration_is_fitted_to_views_like_the_saved_one_on_rows_they_did_not_see(monkeypatch):
    """Issue 30: the temperatures, the weight and the shortcut were fitted to the linear view trained on train,
    and a view refitted on train and validation was saved. Now each validation row's linear probability comes
    from a view fitted as the saved one is, on train and the other folds of validation, never on that row."""
    from textclf.models.ensemble import Calibration
    from textclf.models.linear import LinearModel

    data, train, validation = _words_only_validation_knows()
    y = data.datasets["validation"].labels
    lstm = {"validation": np.full((len(y), 2), 0.5), "test": np.full((2, 2), 0.5)}
    monkeypatch.setattr(pipeline, "predict_loader", lambda model, loader, device, desc, **_: (lstm[desc], 0.0))
    seen, fit = {}, Calibration.fit.__func__

    def spy(cls, p_lstm, p_linear, labels, *rest):  # what the calibration is fitted to
        seen["p_linear"] = p_linear
        return fit(cls, p_lstm, p_linear, labels, *rest)

    monkeypatch.setattr(Calibration, "fit", classmethod(spy))
    first = LinearModel.fit(train, data.datasets["train"].labels, 2, "tfidf")
    views = linear_view.refit(first, _view_data(data), 0)
    cal, parts, saved = pipeline.calibrate(None, views, {"validation": None, "test": None}, data, "cpu", 0)
    folds = linear_view.stratified_folds(y, linear_view.LINEAR_FOLDS, 0)
    for k in range(linear_view.LINEAR_FOLDS):
        rows = [*train, *(validation[i] for i in np.flatnonzero(folds != k))]
        labels = np.concatenate([data.datasets["train"].labels, y[folds != k]])
        view = LinearModel.fit(rows, labels, 2, "tfidf", first.c)  # as the saved one, without fold k
        held = np.flatnonzero(folds == k)
        np.testing.assert_allclose(seen["p_linear"][held], view.predict_proba([validation[i] for i in held]),
                                   atol=1e-5)
    assert (seen["p_linear"].argmax(1) == y).all()  # the views learnt superb / awful from the other folds
    np.testing.assert_allclose(parts["validation"].linear, seen["p_linear"])
    every = LinearModel.fit([*train, *validation], np.concatenate([data.datasets["train"].labels, y]), 2, "tfidf")
    np.testing.assert_allclose(saved.predict_proba(validation), every.predict_proba(validation), atol=1e-5)
    np.testing.assert_allclose(parts["test"].linear, every.predict_proba([["superb"], ["awful"]]), atol=1e-5)
    assert sorted(np.bincount(folds).tolist()) == [4] * 5 and all(np.bincount(y[folds == k]).tolist() == [2, 2]
                                                                  for k in range(5))


def test_the_shortcut_is_checked_on_a_sample_of_the_unlabelled_texts_too(tmp_path, tiny_dir, monkeypatch):
    """The shortcut's check needs no labels, and validation alone (2,500 IMDB reviews) allows only what it can show
    on that many rows. The unlabelled texts a run reads go into the check: a seeded sample, never a text that train
    holds (the LSTM learnt those), scored by the LSTM as trained and the linear view as saved."""
    from textclf.models.ensemble import Calibration

    train_texts = pd.read_csv(tiny_dir / "train.csv").text.tolist()
    pd.DataFrame({"text": [*make_reviews(300, seed=4).text, *train_texts[:50]]}).to_csv(tiny_dir / "unsup.csv",
                                                                                      index=False)
    seen, fit = [], Calibration.fit.__func__

    def spy(cls, p_lstm, p_linear, labels, unlabelled=None):
        seen.append(unlabelled)
        return fit(cls, p_lstm, p_linear, labels, unlabelled)

    monkeypatch.setattr(Calibration, "fit", classmethod(spy))
    cfg = load_config(None, [f"data.path={tiny_dir}", f"run_dir={tmp_path / 'run'}", *TINY,
                             "pretrain.word2vec=true", "pretrain.epochs=1"])
    train(cfg)
    p_lstm, p_linear = seen[-1]
    assert p_lstm.shape == p_linear.shape == (300, 2)  # the 50 texts train and validation hold left out
    assert np.allclose(p_lstm.sum(1), 1) and np.allclose(p_linear.sum(1), 1)

    data = pipeline.prepare(cfg, pipeline.load_data(cfg))
    pool, labelled = pipeline.pretrain_corpora(cfg, data)[1], list(data.tokens.values())
    sample = pipeline.unlabelled_sample(pool, labelled, 42, rows=100)
    assert len(sample) == 100 and np.array_equal(sample.ids, pipeline.unlabelled_sample(pool, labelled, 42, 100).ids)
    every = pipeline.unlabelled_sample(pool, labelled, 1, rows=10_000)
    labelled_texts = {tuple(t) for split in labelled for t in split.token_lists()}
    assert len(every) == 300 and not labelled_texts & {tuple(t) for t in every.token_lists()}
    assert pipeline.unlabelled_sample(labelled[0], labelled, 1) is None  # data.unlabelled = the train file
    assert pipeline.unlabelled_sample(pool, labelled, 1, rows=0) is None
    compact = sample.compacted()  # what the run keeps: a table of its own, of the tokens it uses
    assert list(compact.token_lists()) == list(sample.token_lists())
    assert len(compact.table) == len(np.unique(sample.ids))
    new = {id(t) for t in compact.table if len(t) > 1}  # CPython shares one object per single character
    assert new and not new & {id(t) for t in pool.table}  # new strings, none of the corpus's
    repeats = Tokenized.from_token_lists([["a", "b"], ["c"], ["a", "b"], [], []])
    assert sorted(map(tuple, pipeline.unlabelled_sample(repeats, [], 0).token_lists())) == [(), ("a", "b"), ("c",)]
