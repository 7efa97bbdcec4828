"""Where `predict --input` writes (textclf/inference/output.py): the format its --output names, or one line before
any row is read (issue 30 item 10: out.parquet held CSV text, and the next tool failed on its magic bytes)."""

import json

import numpy as np
import pandas as pd
import pytest

from textclf.cli import main
from textclf.errors import TextclfError
from textclf.inference.classifier import Classifier

from ..conftest import save_random_model


@pytest.fixture
def source(tmp_path):
    """25 rows as Parquet; `score` is an integer column with one missing value in rows 10-19 only, so a chunk of
    10 rows reads it as int64, the next as float64; `note` is empty throughout the first chunk."""
    frame = pd.DataFrame({"id": range(25), "review": [f"good film {i}" if i % 6 else "bad film" for i in range(25)],
                          "score": pd.array([i if i != 13 else None for i in range(25)], dtype="Int64"),
                          "note": [None] * 10 + ["seen"] * 15})
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    return tmp_path / "in.parquet", frame


def test_parquet_jsonl_and_tsv_outputs_are_those_formats(tmp_path, source, capsys):
    model = save_random_model(tmp_path / "model")
    path, frame = source
    for name in ("out.parquet", "out.jsonl", "out.tsv", "out.csv"):
        assert main(["predict", str(model), "--input", str(path), "--output", str(tmp_path / name),
                     "--chunk-size", "10"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    parquet = pd.read_parquet(tmp_path / "out.parquet")  # a Parquet file: no "magic bytes not found"
    jsonl = pd.DataFrame([json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()])
    tsv = pd.read_csv(tmp_path / "out.tsv", sep="\t")
    csv = pd.read_csv(tmp_path / "out.csv")
    columns = ["id", "review", "score", "note", "predicted_label", "prob_neg", "prob_pos"]
    for out in (parquet, jsonl, tsv, csv):
        assert list(out.columns) == columns and out.id.tolist() == list(range(25))
        assert out.review.tolist() == frame.review.tolist()
        assert out.predicted_label.tolist() == csv.predicted_label.tolist()
        np.testing.assert_allclose(out.prob_pos.astype(float), csv.prob_pos, atol=1e-6)
    assert parquet.score.isna().tolist() == [i == 13 for i in range(25)]
    assert parquet.score.dropna().tolist() == [i for i in range(25) if i != 13]
    assert parquet.note.isna().sum() == 10 and parquet.note.iloc[10:].tolist() == ["seen"] * 15
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "model", "out.csv", "out.jsonl",
                                                          "out.parquet", "out.tsv"]  # no chunk files left


@pytest.mark.parametrize(("output", "flags", "message"), [
    ("out.txt", [], "textclf writes .csv, .tsv, .jsonl, .json, .parquet files"),
    ("labelled", [], "textclf writes"),
    ("out.parquet", ["--format", "json"], "--format json does not match --output"),
    ("out.jsonl", ["--format", "csv"], "--format csv does not match --output"),
])
def test_an_output_it_cannot_write_is_one_line_before_any_row_is_read(tmp_path, capsys, monkeypatch, output, flags,
                                                                       message):
    import textclf.inference.classifier as classifier

    model = save_random_model(tmp_path / "model")
    pd.DataFrame({"review": ["good film"]}).to_csv(tmp_path / "in.csv", index=False)
    monkeypatch.setattr(classifier, "iter_table", lambda *a, **k: pytest.fail("a row was read"))
    assert main(["predict", str(model), "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / output),
                 *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / output).exists()
    with pytest.raises(TextclfError, match=message.split(" ")[0]):  # the library says the same
        Classifier.load(model, "cpu").predict_file(tmp_path / "in.csv", tmp_path / output, fmt=(flags or [0, None])[1])


def test_an_explicit_format_names_what_an_unknown_suffix_gets(tmp_path, capsys):
    model = save_random_model(tmp_path / "model")
    pd.DataFrame({"review": ["good film", "bad film"]}).to_csv(tmp_path / "in.csv", index=False)
    assert main(["predict", str(model), "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.txt"),
                 "--format", "json"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "out.txt").read_text().splitlines()]
    assert [r["review"] for r in rows] == ["good film", "bad film"]
    capsys.readouterr()
