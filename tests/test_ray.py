"""Labelling on Ray Data (textclf/ray.py): the map_batches predictor and `textclf predict --engine ray`, on a
local Ray of 2 CPUs started once for the module, and their one-line errors."""

import os
import sys

import numpy as np
import pandas as pd
import pytest

from textclf.cli import main
from textclf.inference.classifier import Classifier

from .conftest import make_reviews

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=200 * 1024 * 1024,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    """3,000 rows in three Parquet files, with columns beside the text the output must keep."""
    folder = tmp_path_factory.mktemp("reviews")
    frame = make_reviews(3000, seed=21).reset_index(drop=True)
    frame["review_id"] = [f"r{i:05d}" for i in range(len(frame))]
    frame["stars"] = np.arange(len(frame)) % 5 + 1
    for i in range(3):
        frame.iloc[i * 1000:(i + 1) * 1000].to_parquet(folder / f"part-{i}.parquet", index=False)
    return folder, frame


def _check(out: pd.DataFrame, frame: pd.DataFrame, clf: Classifier) -> None:
    out = out.set_index("review_id").loc[frame.review_id]  # Ray keeps no order: compare by id
    assert len(out) == len(frame) and list(out.columns[:3]) == ["text", "label", "stars"]
    assert out.text.tolist() == frame.text.tolist() and out.stars.astype(int).tolist() == frame.stars.tolist()
    probs = clf.predict_proba(frame.text.tolist())
    np.testing.assert_allclose(out[[f"prob_{n}" for n in clf.labels]].to_numpy(dtype=float), probs, atol=1e-6)
    assert out.predicted_label.tolist() == list(np.asarray(clf.labels)[probs.argmax(1)])


def test_map_batches_and_the_command_label_every_row_as_the_classifier_does(local_ray, reviews, tiny_run, tmp_path,
                                                                          capsys):
    from textclf.ray import Predictor, read_output

    folder, frame = reviews
    clf = Classifier.load(tiny_run, "cpu")
    ds = local_ray.data.read_parquet(str(folder))
    labelled = ds.map_batches(Predictor, fn_constructor_kwargs={"model": str(tiny_run), "text_column": "text",
                                                                 "device": "cpu"},
                              concurrency=2, num_cpus=0.5, batch_size=500, batch_format="pandas").to_pandas()
    _check(labelled, frame, clf)
    numpy_batches = ds.limit(300).map_batches(Predictor, fn_constructor_kwargs={"model": str(tiny_run), "device": "cpu",
                                                                                "text_column": "text"},
                                              concurrency=1, num_cpus=0.5, batch_size=100,
                                              batch_format="numpy").to_pandas()
    _check(numpy_batches, frame[frame.review_id.isin(numpy_batches.review_id)], clf)

    out = tmp_path / "labelled"
    assert main(["predict", str(tiny_run), "--input", str(folder), "--output", str(out), "--engine", "ray",
                 "--text-column", "text", "--device", "cpu"]) == 0
    assert "wrote 3,000 rows" in capsys.readouterr().out
    _check(read_output(str(out)), frame, clf)


def test_the_input_is_read_in_blocks_for_every_actor(local_ray, reviews):
    """Ray Data read these 3 files as 1 block (and 10 files of 100k reviews as 1): one actor did all the work."""
    from textclf.ray import blocks_for_every_actor, input_files

    folder, _ = reviews
    files, _ = input_files(str(folder))
    before = local_ray.data.DataContext.get_current().target_max_block_size
    with blocks_for_every_actor(files, workers=2):
        assert local_ray.data.read_parquet(files).materialize().num_blocks() >= 2
    assert local_ray.data.DataContext.get_current().target_max_block_size == before


def test_ray_errors_are_one_line_and_leave_nothing(local_ray, reviews, tiny_run, tmp_path, capsys):
    folder, _ = reviews
    out = tmp_path / "out"
    cases = [
        (["--input", str(folder), "--output", str(out), "--text-column", "body"], 'has no column "body"'),
        (["--input", str(tmp_path / "none-*.parquet"), "--output", str(out)], "names no files"),
        (["--input", str(folder), "--output", str(folder)], "is not an empty folder"),
        (["--input", str(folder)], "give --input DIR_OR_GLOB and --output DIR"),
    ]
    for args, message in cases:
        assert main(["predict", str(tiny_run), *args, "--engine", "ray", "--device", "cpu"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("error: ") and message in err[-1], err
    assert main(["predict", str(tmp_path / "no-model"), "--input", str(folder), "--output", str(out),
                 "--engine", "ray"]) == 2
    assert "model folder not found" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))


def test_without_ray_the_engine_says_how_to_install_it(monkeypatch, tiny_run, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra looks like
    assert main(["predict", str(tiny_run), "--input", str(tmp_path), "--output", str(tmp_path / "o"),
                 "--engine", "ray"]) == 2
    assert "pip install 'textclf[ray]'" in capsys.readouterr().err


def test_nothing_else_imports_ray():
    import subprocess

    code = ("import sys, textclf.cli, textclf.inference.classifier, textclf.serving.app, textclf.training.pipeline\n"
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
