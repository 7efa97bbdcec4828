from collections import Counter

import numpy as np
import pytest

from textclf.errors import TextclfError
from textclf.text.vocab import PAD_ID, UNK_ID, LabelVocab, Vocab


def test_build_orders_by_frequency_then_alphabet_and_respects_limits():
    counts = Counter({"b": 5, "a": 5, "c": 3, "d": 1})
    v = Vocab.build(counts, min_freq=2)
    assert v.itos == ["<pad>", "<unk>", "a", "b", "c"]
    assert Vocab.build(counts, max_size=1).itos == ["<pad>", "<unk>", "a"]


def test_encode_maps_unknown_to_unk():
    v = Vocab.build(Counter({"good": 2}))
    assert v.lookup(["good", "never-seen"]).tolist() == [2, UNK_ID]
    assert list(v.lookup(["<pad>", "good", "zzz"])) == [PAD_ID, 2, UNK_ID]


def test_json_round_trip(tmp_path):
    v = Vocab.build(Counter({"é": 3, "naïve": 2, '"quote"': 2}))
    v.save(tmp_path / "vocab.json")
    assert Vocab.load(tmp_path / "vocab.json") == v


def test_vocab_rejects_missing_specials():
    with pytest.raises(ValueError):
        Vocab(["a", "b"])


def test_label_vocab_orders_numbers_numerically():
    assert LabelVocab.from_values([10, 2, 1, 2]).names == ["1", "2", "10"]
    assert LabelVocab.from_values(["pos", "neg", "pos"]).names == ["neg", "pos"]
    assert LabelVocab.from_values([1.0, 0.0]).names == ["0", "1"]


def test_numbers_written_as_floats_are_the_same_labels():
    """pandas writes an int label column with a gap as 0.0 / 1.0 / 2.0: read back as text, they are 0 / 1 / 2."""
    lv = LabelVocab.from_values(["2.0", "0.0", "1.0", "1.0"])
    assert lv.names == ["0", "1", "2"]
    assert list(lv.encode(["0", "1", "2", 2, 2.0, " 1.00 "])) == [0, 1, 2, 2, 2, 1]
    assert list(LabelVocab(["0", "1", "2"]).encode(["2.0", "0.0"])) == [2, 0]
    assert LabelVocab.from_values(["1.5", "2.0"]).names == ["1.5", "2"]  # only whole numbers
    assert list(LabelVocab(["neg", "pos"]).encode(["0.0", "1.0"])) == [0, 1]  # the 0/1 aliases too


def test_label_vocab_forgives_spelling():
    lv = LabelVocab(["neg", "pos"])
    assert list(lv.encode(["NEG", " pos ", "positive", 0, 1, "1"])) == [0, 1, 1, 0, 1, 1]
    numeric = LabelVocab(["0", "1"])
    assert list(numeric.encode(["neg", "Positive", 1.0])) == [0, 1, 1]


def test_unknown_label_is_a_clear_error():
    lv = LabelVocab(["neg", "pos"])
    with pytest.raises(TextclfError, match=r"labels the model does not know: meh \(known labels: neg, pos"):
        lv.encode(["pos", "meh"])


def test_zero_one_labels_read_neg_pos_as_the_model_records_their_meaning():
    """0/1 against neg/pos is 0 = negative by convention, unless the model says otherwise (a fine-tuned model's
    "started_as": 1 = a complaint, which started as the negative class)."""
    plain, complaint = LabelVocab(["0", "1"]), LabelVocab(["0", "1"], {"0": "pos", "1": "neg"})
    assert [plain.get(v) for v in ("negative", "pos", "0", "1")] == [0, 1, 0, 1]
    assert [complaint.get(v) for v in ("negative", "pos", "0", "1")] == [1, 0, 0, 1]
    for other in ({"0": "0", "1": "1"}, {"0": "spam", "1": "ham"}):  # a start of other names: the convention
        assert [LabelVocab(["0", "1"], other).get(v) for v in ("negative", "pos", "0", "1")] == [0, 1, 0, 1]


def test_multiclass_labels_get_no_sentiment_aliases():
    lv = LabelVocab(["0", "1", "2"])
    assert lv.get("pos") is None and isinstance(lv.encode([2]), np.ndarray)


def test_only_ascii_whole_numbers_are_read_as_numbers():
    assert LabelVocab.from_values(["٢.0", "1.0"]).names == ["1", "٢.0"]
    assert LabelVocab.from_values(["-1.0", "0.0", "1.0"]).names == ["-1", "0", "1"]
