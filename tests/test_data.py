import io
import tarfile

import pandas as pd
import pytest

from textclf import data
from textclf.data import load_splits, read_aclimdb, stratified_split
from textclf.errors import TextclfError

from .conftest import make_reviews


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_folder_of_split_files_in_every_format(tmp_path, fmt):
    df = make_reviews(20)
    for split in ("train", "test"):
        path = tmp_path / f"{split}.{fmt}"
        if fmt == "csv":
            df.to_csv(path, index=False)
        elif fmt == "tsv":
            df.to_csv(path, index=False, sep="\t")
        elif fmt == "jsonl":
            df.to_json(path, orient="records", lines=True)
        else:
            df.to_parquet(path)
    splits = load_splits(str(tmp_path))
    assert set(splits) == {"train", "test"}
    assert splits["train"].texts == df.text.tolist() and splits["train"].labels == df.label.tolist()


def test_separate_files_and_joined_text_columns(tmp_path):
    pd.DataFrame({"title": ["Great", "Bad"], "body": ["fun film", "dull, \"long\"\nfilm"], "y": [1, 0]}).to_csv(
        tmp_path / "my.csv", index=False)
    splits = load_splits(None, {"train": str(tmp_path / "my.csv")}, "title,body", "y")
    assert splits["train"].texts == ["Great fun film", 'Bad dull, "long"\nfilm']
    assert [str(v) for v in splits["train"].labels] == ["1", "0"]


def test_missing_column_lists_the_columns_and_suggests(tmp_path):
    pd.DataFrame({"review": ["x"], "label": [1]}).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(TextclfError, match=r'no column "reviews" \(did you mean "review"\?\); columns: review, label'):
        load_splits(str(tmp_path), text_column="reviews")


def test_rows_without_text_or_label_are_dropped_and_counted(tmp_path, caplog):
    pd.DataFrame({"text": ["good", "", "bad", "meh"], "label": ["pos", "neg", None, "neg"]}).to_csv(
        tmp_path / "train.csv", index=False)
    split = load_splits(str(tmp_path))["train"]
    assert split.texts == ["good", "meh"]
    assert "1 row(s) with no label" in caplog.text and "1 row(s) with empty text" in caplog.text


def test_all_empty_file_is_an_error(tmp_path):
    pd.DataFrame({"text": ["", ""], "label": ["pos", "neg"]}).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(TextclfError, match="no rows with both text and a label"):
        load_splits(str(tmp_path))


def test_missing_path_and_unknown_format(tmp_path):
    with pytest.raises(TextclfError, match="data path not found"):
        load_splits(str(tmp_path / "nowhere"))
    with pytest.raises(TextclfError, match="data file not found"):
        load_splits(None, {"train": str(tmp_path / "x.csv")})
    (tmp_path / "train.xlsx").write_text("x")
    with pytest.raises(TextclfError, match="unsupported data file type"):
        load_splits(None, {"train": str(tmp_path / "train.xlsx")})


def test_non_utf8_file_is_a_clear_error(tmp_path):
    (tmp_path / "train.csv").write_bytes("text,label\ncaf\xe9,pos\n".encode("latin-1"))
    with pytest.raises(TextclfError, match="not UTF-8"):
        load_splits(str(tmp_path))


def _acl_files():
    return {"train/pos/1_9.txt": "Loved it.<br />", "train/neg/2_1.txt": "Hated it.",
            "test/pos/3_8.txt": "Fine film.", "test/neg/4_2.txt": "Dull.", "train/unsup/5_0.txt": "?"}


def test_aclimdb_folder_and_tarball_read_the_same(tmp_path):
    root = tmp_path / "aclImdb"
    for name, text in _acl_files().items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    tar_path = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for name, text in _acl_files().items():
            info = tarfile.TarInfo(f"aclImdb/{name}")
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    from_dir = read_aclimdb(tmp_path, ("train", "test"))
    from_tar = load_splits(str(tar_path))
    assert from_dir["train"].texts == from_tar["train"].texts == ["Hated it.", "Loved it.<br />"]
    assert from_dir["train"].labels == ["neg", "pos"] and from_tar["test"].labels == ["neg", "pos"]
    assert load_splits(str(root))["test"].texts == ["Dull.", "Fine film."]


def test_imdb_prefers_a_local_copy(tmp_path, monkeypatch):
    local = tmp_path / "data" / "imdb"
    local.mkdir(parents=True)
    pd.DataFrame({"text": ["a", "b"], "label": [0, 1]}).to_parquet(local / "train.parquet")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "read_imdb_hub", lambda splits: pytest.fail("went to the Hub"))
    assert load_splits("imdb")["train"].labels == ["neg", "pos"]


def test_imdb_offline_without_local_copy_says_where_to_put_data(tmp_path, monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(TextclfError, match=r"could not download stanfordnlp/imdb.*\./data/imdb"):
        load_splits("imdb")


def test_stratified_split_is_seeded_and_stratified():
    labels = ["a"] * 80 + ["b"] * 20
    tr, va = stratified_split(labels, 0.1, seed=3)
    assert len(va) == 10 and sorted([*tr, *va]) == list(range(100))
    assert sum(labels[i] == "b" for i in va) == 2
    assert (stratified_split(labels, 0.1, seed=3)[1] == va).all()


def test_unlabelled_split_from_a_folder_and_from_aclimdb(tmp_path):
    from textclf.data import load_unlabelled

    make_reviews(10).to_csv(tmp_path / "train.csv", index=False)
    assert load_unlabelled(str(tmp_path)) is None
    pd.DataFrame({"text": ["no label here", "nor here"], "label": [-1, -1]}).to_parquet(tmp_path / "unsup.parquet")
    assert load_unlabelled(str(tmp_path)).texts == ["no label here", "nor here"]
    acl = tmp_path / "acl"
    for name, text in _acl_files().items():
        (acl / "aclImdb" / name).parent.mkdir(parents=True, exist_ok=True)
        (acl / "aclImdb" / name).write_text(text)
    assert load_unlabelled(str(acl)).texts == ["?"]
    assert load_unlabelled(str(acl)).labels == [None]
    assert "unsup" not in read_aclimdb(acl, ("train", "test"))


def test_non_utf8_names_the_row_and_column_even_after_quoted_newlines(tmp_path):
    (tmp_path / "train.csv").write_bytes(b'text,label\ngood,pos\n"two\nlines",neg\ncaf\xe9 bad,pos\n')
    with pytest.raises(TextclfError, match=r'row 3 \(not counting the header\) is not UTF-8 in column "text"; '
                                           r".*data.encoding_errors=replace"):
        load_splits(str(tmp_path))


def test_non_utf8_replaced_when_asked(tmp_path, caplog):
    (tmp_path / "train.csv").write_bytes(b"text,label\ncaf\xe9 good,pos\nfine,neg\n")
    split = load_splits(str(tmp_path), encoding_errors="replace")["train"]
    assert split.texts == ["caf\ufffd good", "fine"]
    assert "1 row(s) were not UTF-8" in caplog.text


def test_non_utf8_jsonl_names_the_line(tmp_path):
    (tmp_path / "train.jsonl").write_bytes(b'{"text": "ok", "label": 1}\n{"text": "caf\xe9", "label": 0}\n')
    with pytest.raises(TextclfError, match="not UTF-8 at line 2"):
        load_splits(str(tmp_path))


@pytest.mark.parametrize(("content", "message"), [
    ("text,label\ngood,pos\nbad, really,neg\n", r"malformed: Expected 2 fields in line 3, saw 3 \(quote fields"),
    ('text,label\ngood,pos\n"never closed,neg\nx,y\n', r"malformed: EOF inside string starting at row 2"),
    ("text,label\ngood,pos,x\nbad,neg,y\n", r"malformed: its rows have more fields than the header \(2 names\)"),
    ("", r"is empty \(no header line\)"),
])
def test_malformed_csv_is_one_line_that_says_where(tmp_path, content, message):
    (tmp_path / "train.csv").write_text(content)
    with pytest.raises(TextclfError, match=message):
        load_splits(str(tmp_path))


def test_iter_table_streams_chunks_in_order(tmp_path):
    make_reviews(25).to_csv(tmp_path / "r.csv", index=False)
    chunks = list(data.iter_table(tmp_path / "r.csv", chunk_size=10))
    assert [len(c) for c in chunks] == [10, 10, 5]
    assert pd.concat(chunks).text.tolist() == make_reviews(25).text.tolist()
    with pytest.raises(TextclfError, match="data file not found"):
        list(data.iter_table(tmp_path / "nope.csv", chunk_size=10))


def test_label_map_renames_drops_and_counts(caplog):
    split = data.Split(["a", "b", "c", "d", "e", "f"], ["1", 2.0, " 5 ", "3", "7", "good"], "my.csv")
    mapped = data.apply_label_map(split, {1: "bad", 2: "bad", 3: None, 5: "good"})
    assert mapped.texts == ["a", "b", "c", "f"] and mapped.labels == ["bad", "bad", "good", "good"]
    assert "dropped 2 row(s): 3 (1, mapped to null), 7 (1, not in the map)" in caplog.text
    assert data.apply_label_map(split, None) is split
    with pytest.raises(TextclfError, match=r"data.label_map leaves no rows in my.csv \(its keys: 9; labels there"):
        data.apply_label_map(split, {9: "x"})
