"""The run's data ready for the model (training/prepare.py): splits, validation carved, tokens, vocabulary."""

import logging

import numpy as np
import pytest

from textclf.config import load_config
from textclf.data import Split
from textclf.errors import TextclfError
from textclf.training.prepare import (
    carve_fraction,
    carve_validation,
    duplicates,
    load_data,
    prepare,
    stratified_split,
)

from ..conftest import TINY, make_reviews


def test_small_data_carves_enough_validation_but_at_most_30_percent():
    assert carve_fraction(25_000, 0.1) == 0.1
    assert carve_fraction(1000, 0.1) == pytest.approx(0.2)  # 200 rows
    assert carve_fraction(300, 0.1) == 0.3  # 200 would be 67%: capped
    train = Split([f"text {i}" for i in range(100)], ["a", "b"] * 50, "x.csv")
    tr, va = carve_validation(train, 0.1, 0)
    assert len(va) == 30 and len(tr) == 70 and sorted(va.labels).count("a") == 15  # stratified
    assert not set(tr.texts) & set(va.texts)
    with pytest.raises(TextclfError, match="too few rows"):
        carve_validation(Split(["one"], ["a"], "tiny.csv"), 0.1, 0)


def test_carving_keeps_a_texts_copies_on_one_side():
    """A train file with repeated texts: no validation text is in train (it was: 194 of 200 on a file of
    three copies), and data without repeats is carved as `stratified_split` carves its rows."""
    texts = [f"review number {i}" for i in range(300)]
    labels = ["a", "b", "c"] * 100
    train = Split(texts * 3, labels * 3, "dup.csv")
    tr, va = carve_validation(train, 0.1, 0)
    assert not {t.strip() for t in tr.texts} & {t.strip() for t in va.texts}
    assert len(tr) + len(va) == 900 and len(va) == 3 * round(300 * carve_fraction(300, 0.1))  # a share of texts
    assert sorted(set(va.labels)) == ["a", "b", "c"]  # still stratified
    once = Split(texts, labels, "once.csv")
    tr1, va1 = carve_validation(once, 0.1, 0)
    rows = stratified_split(labels, carve_fraction(300, 0.1), 0)[1]
    assert va1.texts == [texts[i] for i in rows]


def test_a_class_with_one_text_stays_in_train(caplog):
    """Seven rows, one of them the only "neutral": carved into validation it was a label the model never saw."""
    train = Split(["bad", "meh", "awful", "great", "poor", "terrible", "fine"],
                  ["negative", "neutral", "negative", "positive", "negative", "negative", "positive"], "five.csv")
    for seed in range(10):
        with caplog.at_level(logging.WARNING):
            tr, va = carve_validation(train, 0.1, seed)
        assert "neutral" in tr.labels and "neutral" not in va.labels
    assert "one text only, kept in train and none in validation: neutral" in caplog.text


def test_duplicates_count_texts_found_in_an_earlier_split():
    splits = {"train": Split(["a", "b ", "c"], [0, 1, 0], "t"), "validation": Split(["b", "d"], [1, 0], "v"),
              "test": Split(["a", "d", "e"], [0, 0, 1], "s")}
    assert duplicates(splits) == {"validation_in_train": 1, "test_in_train": 1, "test_in_validation": 1}


def test_prepare_builds_the_vocabulary_from_train_only(tmp_path):
    make_reviews(200, seed=1).to_csv(tmp_path / "train.csv", index=False)
    test = make_reviews(50, seed=2)
    test.loc[0, "text"] = "zzunseen wordzz"
    test.to_csv(tmp_path / "test.csv", index=False)
    cfg = load_config(None, [f"data.train={tmp_path / 'train.csv'}", f"data.test={tmp_path / 'test.csv'}", *TINY])
    data = prepare(cfg, load_data(cfg))
    assert "zzunseen" not in data.vocab.stoi and set(data.datasets) == {"train", "validation", "test"}
    assert data.labels.names == ["neg", "pos"] and data.tokenizer.kind == "regex"
    assert all(np.all(s < len(data.vocab)) for s in data.datasets["test"].seqs)


def test_a_vocabulary_too_small_for_english_asks_for_rows_not_another_tokenizer(caplog):
    """Seven English tweets: every word once, so the vocabulary "does not fit"; the line told them to try
    tokenizer.kind=auto (already theirs), zh or char."""
    from textclf.text.tokenizer import Tokenizer
    from textclf.text.tokens import Tokenized
    from textclf.text.vocab import Vocab
    from textclf.training.prepare import check_vocabulary

    train = Tokenized.from_token_lists([["bad", "flight"], ["meh", "seat"], ["awful", "crew"], ["great", "trip"]])
    test = Tokenized.from_token_lists([["late", "again"]])
    with caplog.at_level(logging.WARNING):
        check_vocabulary({"train": train, "test": test}, Vocab.build(train.counts(), 1, None), Tokenizer("regex"))
    assert "4 training texts are too few to learn words from: add rows" in caplog.text
    assert "tokenizer.kind=zh" not in caplog.text


def test_a_class_only_on_copies_of_other_texts_and_a_text_of_many_copies_stay_in_train():
    """Copies of a text may carry another label (crowd labels): a class only there could go wholly to validation.
    A text with a thousand copies, carved off, filled validation with itself."""
    texts = [f"a{i}" for i in range(50)] + [f"b{i}" for i in range(50)] + ["a0", "a1"]
    labels = ["a"] * 50 + ["b"] * 50 + ["c", "c"]
    for seed in range(20):
        tr, va = carve_validation(Split(texts, labels, "t.csv"), 0.1, seed)
        assert set(va.labels) <= set(tr.labels)
    texts = ["good"] * 1000 + [f"review {i}" for i in range(300)]
    tr, va = carve_validation(Split(texts, ["pos"] * 1000 + ["neg", "pos", "neg"] * 100, "t.csv"), 0.1, 0)
    assert "good" not in va.texts and len(va) == round(301 * carve_fraction(301, 0.1))


def test_a_label_column_of_ids_is_refused_and_a_long_tail_warned_of(caplog):
    """data.label_column=tweet_id trained a 1,997-class model on 2,000 rows without a word; a long tail of
    categories (151 in 300 rows) may be meant: a warning, not an error."""
    from textclf.data.split import Split
    from textclf.errors import TextclfError
    from textclf.training.prepare import check_label_count

    with pytest.raises(TextclfError, match='"tweet_id" has 1,997 distinct values in 2,000 train rows'):
        check_label_count(Split(["t"] * 2000, [*range(1997), 1, 2, 3], "tweets.csv"), "tweet_id")
    check_label_count(Split(["t"] * 300, [i // 2 for i in range(300)], "cats.csv"), "cat")  # 150 classes
    assert 'data.label_column "cat" has 150 classes in 300 train rows' not in caplog.text  # two rows a class: fine
    check_label_count(Split(["t"] * 300, [min(i, 150) for i in range(300)], "tail.csv"), "cat")  # 151 classes
    assert 'data.label_column "cat" has 151 classes in 300 train rows, under two rows a class' in caplog.text
