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
def ray_cache(tmp_path_factory):
    """The Ray workers' cache folder (not the developer's ~/.cache): where they keep the CPU's bf16 answer."""
    return tmp_path_factory.mktemp("ray-cache")


@pytest.fixture(scope="module")
def local_ray(ray_cache):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=200 * 1024 * 1024,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path),
                                       "TEXTCLF_CACHE": str(ray_cache)}})
    yield ray
    ray.shutdown()


@pytest.fixture
def same_cache(ray_cache, monkeypatch):
    """This process reads the workers' cache folder, and asks it afresh: the precision both choose by default
    (`device.cpu_bf16_faster`, kept per machine) is one answer, even on a busy machine."""
    from textclf import device

    monkeypatch.setenv("TEXTCLF_CACHE", str(ray_cache))
    device.cpu_bf16_faster.cache_clear()
    yield
    device.cpu_bf16_faster.cache_clear()


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
                                                                          capsys, same_cache):
    from textclf.ray import Predictor, read_output

    folder, frame = reviews
    clf = Classifier.load(tiny_run, "cpu")  # measures bf16's speed first (the workers then read the answer)
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


# --- the command's checks and what reaches the actors, on a stand-in for Ray (no Ray started) -------------------

class _FakeData:
    """Ray Data as label_files uses it, run in this process: a read, map_batches (each call recorded), a write."""

    def __init__(self, calls, frame=None):
        self.calls, self.frame = calls, frame

    def read_parquet(self, files):
        return _FakeData(self.calls, pd.concat([pd.read_parquet(f) for f in files], ignore_index=True))

    read_csv = read_json = None  # label_files names every reader; these files are Parquet

    def map_batches(self, fn, fn_constructor_kwargs, batch_size, **_):
        self.calls.append(fn_constructor_kwargs)
        actor = fn(**fn_constructor_kwargs)
        return _FakeData(self.calls, pd.concat([actor(self.frame.iloc[i:i + batch_size])
                                                for i in range(0, len(self.frame), batch_size)]))

    def write_parquet(self, folder):
        self.frame.to_parquet(os.path.join(folder, "part-0.parquet"), index=False)


@pytest.fixture
def fake_ray(monkeypatch):
    """A stand-in for an already started Ray; returns the list of map_batches calls (the actors' arguments)."""
    import contextlib
    import types

    import textclf.ray

    calls = []
    fake = types.SimpleNamespace(is_initialized=lambda: True, cluster_resources=lambda: {"CPU": 1},
                                 init=lambda **_: pytest.fail("Ray started"), data=_FakeData(calls))
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(textclf.ray, "blocks_for_every_actor", lambda *a: contextlib.nullcontext())
    return calls


@pytest.fixture
def two_columns(tmp_path):
    """A Parquet file with a "text" column and a "review" column (what save_random_model's model was trained on)."""
    folder = tmp_path / "in"
    folder.mkdir()
    frame = pd.DataFrame({"text": ["zzq qqz"] * 6, "review": ["good film", "bad", "film film good", "bad bad",
                                                               "good", "film"]})
    frame.to_parquet(folder / "part.parquet", index=False)
    return folder, frame


def test_hub_and_cluster_models_label_their_own_text_column(fake_ray, two_columns, tmp_path, monkeypatch):
    """Issue 30 item 7: for hf: models and with --address the column defaulted to "text", passed to the actors
    explicitly: a model trained on "review" labelled the "text" column."""
    import textclf.hub.download
    from textclf.ray import label_files, read_output

    from .conftest import save_random_model

    model = save_random_model(tmp_path / "model")
    monkeypatch.setattr(textclf.hub.download, "download_model", lambda name: model)
    folder, frame = two_columns
    want = Classifier.load(model, "cpu").predict_proba(frame.review.tolist())
    for i, (name, address) in enumerate([("hf:user/reviews", None), (str(model), "ray://head:10001"),
                                         ("hf:user/reviews", "ray://head:10001")]):
        label_files(name, str(folder), str(tmp_path / f"out{i}"), address=address)
        out = read_output(str(tmp_path / f"out{i}"))
        np.testing.assert_allclose(out[["prob_neg", "prob_pos"]].to_numpy(dtype=float), want, atol=1e-6)
    assert [c["text_column"] for c in fake_ray] == [None, None, None]  # each actor reads its model's own


def test_the_output_is_checked_before_the_first_row_is_labelled(fake_ray, two_columns, tmp_path, capsys):
    """Issue 30 item 12: an output whose folder did not exist was staged in /tmp, and the final rename failed after
    every row was labelled. Its folder is made first, as `predict --output` makes it; one that cannot be made is
    one line before any row is labelled."""
    from textclf.ray import read_output

    from .conftest import save_random_model

    model = save_random_model(tmp_path / "model")
    folder, frame = two_columns
    out = tmp_path / "new" / "deeper" / "labelled"
    assert main(["predict", str(model), "--input", str(folder), "--output", str(out), "--engine", "ray"]) == 0
    assert len(read_output(str(out))) == len(frame) and len(fake_ray) == 1
    (tmp_path / "a-file").write_text("")
    assert main(["predict", str(model), "--input", str(folder), "--output", str(tmp_path / "a-file" / "out"),
                 "--engine", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --output") and "cannot write in" in err[-1], err
    assert len(fake_ray) == 1  # nothing more labelled


@pytest.mark.parametrize("flags", [["--encoding", "cp1252"], ["--delimiter", "semicolon"], ["--sheet", "S1"],
                                   ["--encoding-errors", "replace"], ["--format", "json"], ["--chunk-size", "100"]])
def test_reading_and_writing_flags_of_the_local_engine_are_refused_by_ray(fake_ray, tmp_path, capsys, flags):
    """Issue 30 item 13: --engine ray ignored these without a word."""
    assert main(["predict", str(tmp_path / "model"), "--input", str(tmp_path), "--output", str(tmp_path / "o"),
                 "--engine", "ray", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {flags[0]}") and "not for --engine ray" in err[0], err
    assert not fake_ray


def test_batch_size_reaches_the_actors_and_a_threshold_is_for_binary_models(fake_ray, two_columns, tmp_path,
                                                                           capsys, monkeypatch):
    """Issue 30 item 13: --batch-size is honoured (texts per forward pass in every actor); --threshold for a
    multi-class model is refused, as the local command refuses it: up front where the model is here, by each
    actor where it is not (an hf: model)."""
    import textclf.hub.download

    from .conftest import save_random_model

    folder, _ = two_columns
    binary = save_random_model(tmp_path / "binary")
    assert main(["predict", str(binary), "--input", str(folder), "--output", str(tmp_path / "o1"), "--engine", "ray",
                 "--batch-size", "3", "--threshold", "0.7"]) == 0
    assert fake_ray[-1]["batch_size"] == 3 and fake_ray[-1]["threshold"] == 0.7
    capsys.readouterr()
    three = save_random_model(tmp_path / "three", labels=("a", "b", "c"))
    monkeypatch.setattr(textclf.hub.download, "download_model", lambda name: three)
    for name in (str(three), "hf:user/three"):
        assert main(["predict", name, "--input", str(folder), "--output", str(tmp_path / "o2"), "--engine", "ray",
                     "--threshold", "0.3"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1] == ("error: --threshold is for binary models; this one has 3 classes and picks the most "
                           "probable (drop it)"), err
    assert len(fake_ray) == 2 and not (tmp_path / "o2").exists()  # the hf: model's actor refused it
