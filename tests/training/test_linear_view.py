"""The linear view fitted in a second process beside word2vec (`linear_view.Beside`) is the one fitted here."""

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from textclf.config import load_config
from textclf.text.tokens import Tokenized, group_ids
from textclf.training import linear_view
from textclf.training.pipeline import train

from ..conftest import TINY, make_reviews


def _data(kinds=("tfidf", "nb")) -> linear_view.ViewData:
    train, validation = make_reviews(200, seed=1), make_reviews(60, seed=2)
    tokens = [Tokenized.from_token_lists([t.lower().split() for t in df.text]) for df in (train, validation)]
    labels = [(df.label == "pos").to_numpy().astype(np.int64) for df in (train, validation)]
    return linear_view.ViewData(tokens[0], labels[0], tokens[1], labels[1], 2, list(kinds))


def test_start_fits_beside_a_long_word2vec_only():
    d = _data()
    assert isinstance(linear_view.start(d, 0, linear_view.BESIDE_READS - 1), linear_view.Here)
    assert isinstance(linear_view.start(d, 0, 0), linear_view.Here)  # word2vec's vectors cached, or none
    beside = linear_view.start(d, 0, linear_view.BESIDE_READS)
    try:
        assert isinstance(beside, linear_view.Beside) and beside.process.poll() is None
    finally:
        beside.close()  # a run stopped before its report: the process ended, its file gone
    assert beside.process.poll() is not None and not beside.folder.exists()


def test_the_second_process_answers_what_this_one_would_and_says_its_log_lines_here(caplog):
    d = _data()
    here_view, here_out = linear_view.Here(d, 3).result()
    with caplog.at_level(logging.INFO, logger="textclf"):
        caplog.clear()  # Here's own lines, where an earlier test left textclf's logger at INFO
        beside = linear_view.Beside(d, 3)
        view, out = beside.result()
    assert view.ngrams == here_view.ngrams and (view.kind, view.c) == (here_view.kind, here_view.c)
    np.testing.assert_array_equal(view.coef, here_view.coef)
    np.testing.assert_array_equal(view.scale, here_view.scale)
    np.testing.assert_array_equal(out, here_out)
    said = [r.getMessage() for r in caplog.records if r.name == "textclf.models.ensemble"]
    assert len(said) == 2 and all(line.startswith("linear view ") for line in said)  # one line per kind fitted
    assert not beside.folder.exists()


def test_a_failure_in_the_second_process_is_raised_with_its_traceback():
    beside = linear_view.Beside(_data(kinds=("no_such_kind",)), 0)
    with pytest.raises(RuntimeError, match="failed in its process(.|\n)*KeyError: 'no_such_kind'"):
        beside.result()
    assert not beside.folder.exists()


def _files(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((run / "model").iterdir())
            if p.name not in ("README.md", "config.json")}


def test_a_run_whose_linear_view_is_fitted_beside_word2vec_saves_the_same_model(tmp_path, monkeypatch, caplog):
    from ..conftest import write_tiny_data

    folder = write_tiny_data(tmp_path / "data")
    runs = {}
    for how, reads in (("here", linear_view.BESIDE_READS), ("beside", 0)):
        monkeypatch.setattr(linear_view, "BESIDE_READS", reads)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="textclf"):
            metrics = train(load_config(None, [f"data.path={folder}", f"run_dir={tmp_path / how}",
                                               f"data.cache_dir={tmp_path / how / 'cache'}", *TINY]))
        assert ("fitted in a second process while word2vec reads" in caplog.text) == (how == "beside")
        assert "linear view " in caplog.text  # the second process's lines, said by the run
        runs[how] = metrics
    assert _files(tmp_path / "here") == _files(tmp_path / "beside")
    for split in ("validation", "test", "calibration"):
        assert json.dumps(runs["here"][split], sort_keys=True) == json.dumps(runs["beside"][split], sort_keys=True)


def test_a_script_without_a_main_guard_is_not_run_again_by_the_second_process(tmp_path):
    """multiprocessing's spawn runs the caller's script again in its child: an unguarded script that trains would
    train there too (it hung, writing the job to a child that had died). The second process runs this module only."""
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "mine.py"
    script.write_text(textwrap.dedent("""
        import numpy as np
        from textclf.text.tokens import Tokenized, group_ids
        from textclf.training import linear_view
        print("the script ran", flush=True)
        texts = [["good", "film"], ["bad", "film"], ["good", "plot"], ["bad", "plot"]] * 10
        tok, y = Tokenized.from_token_lists(texts), np.array([1, 0] * 20)
        view, out = linear_view.Beside(linear_view.ViewData(tok, y, tok, y, 2, ["tfidf"]), 0).result()
        print("answered", view.kind, out.shape, flush=True)
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("the script ran") == 1 and "answered tfidf (40, 2)" in done.stdout


@pytest.mark.parametrize(("threads", "env", "beside"), [(None, "", True), (1, "", False), (None, "1", False)])
def test_a_run_held_to_one_thread_starts_no_second_process(monkeypatch, threads, env, beside):
    """Two runs side by side with OMP_NUM_THREADS=1 (or train.threads=1) each keep to their one core."""
    from types import SimpleNamespace

    from textclf.training import pipeline

    monkeypatch.setattr("textclf.threads.cores", lambda: 2)
    monkeypatch.setenv("OMP_NUM_THREADS", env)
    monkeypatch.setattr(pipeline, "word2vec_reads", lambda *_: 10 * linear_view.BESIDE_READS)
    monkeypatch.setattr(pipeline, "ViewData", SimpleNamespace(of=lambda data: None))
    monkeypatch.setattr(linear_view, "start", lambda d, seed, reads: reads)
    cfg = load_config(None, [f"train.threads={threads}" if threads else "train.threads=null"])
    assert (pipeline.start_views(cfg, None, [], from_scratch=True) >= linear_view.BESIDE_READS) == beside


def test_copies_of_one_text_share_a_fold():
    """The out-of-fold probabilities the calibration reads: a validation text repeated in two folds was scored by a
    view fitted on its own copy (a file of three copies of each text: validation accuracy 0.985, test 0.733)."""
    y = np.array([0, 1, 2] * 40)
    groups = np.arange(120) % 30  # 30 texts, 4 copies each, each text with one label
    folds = linear_view.stratified_folds(y, 5, 0, groups)
    for g in range(30):
        assert len(set(folds[groups == g])) == 1
    assert sorted(np.bincount(folds)) == [24, 24, 24, 24, 24]
    assert (linear_view.stratified_folds(y, 5, 0, np.arange(120)) == linear_view.stratified_folds(y, 5, 0)).all()
    assert list(group_ids(map(tuple, [["a", "b"], ["c"], ["a", "b"]]))) == [0, 1, 0]
