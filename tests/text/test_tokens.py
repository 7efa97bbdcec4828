import numpy as np
import pytest

from textclf.text.tokenizer import Tokenizer
from textclf.text.tokens import Tokenized, tokenize_cached, truncate_ids
from textclf.text.vocab import UNK_ID, Vocab


def test_interning_round_trip():
    lists = [["a", "b", "a"], [], ["c"]]
    tok = Tokenized.from_token_lists(lists)
    back = [[tok.table[i] for i in tok.ids[s:e]] for s, e in zip(tok.offsets[:-1], tok.offsets[1:], strict=True)]
    assert back == lists and tok.counts() == {"a": 2, "b": 1, "c": 1}


def test_numericalize_with_vocab_and_max_length():
    tok = Tokenized.from_token_lists([["good", "film", "zzz"], []])
    vocab = Vocab(["<pad>", "<unk>", "film", "good"])
    seqs = tok.numericalize(vocab)
    assert [s.tolist() for s in seqs] == [[3, 2, UNK_ID], []]
    assert [s.tolist() for s in tok.numericalize(vocab, max_length=2)] == [[3, 2], []]


@pytest.mark.parametrize(("how", "want"), [("head", [0, 1, 2, 3]), ("tail", [6, 7, 8, 9]), ("both", [0, 1, 8, 9])])
def test_truncation_modes(how, want):
    assert truncate_ids(np.arange(10), 4, how).tolist() == want
    assert truncate_ids(np.arange(3), 4, how).tolist() == [0, 1, 2]


def test_second_run_reads_the_cache_instead_of_tokenising(tmp_path, monkeypatch):
    texts = ["A fine film.", "", "Awful<br />acting!"]
    first = tokenize_cached(texts, Tokenizer("spacy"), tmp_path)
    assert len(list(tmp_path.glob("tokens-*.npz"))) == 1

    def boom(*a, **k):
        raise AssertionError("tokenised again")

    monkeypatch.setattr(Tokenizer, "tokenize_all", boom)
    second = tokenize_cached(texts, Tokenizer("spacy"), tmp_path)
    assert second.table == first.table and np.array_equal(second.ids, first.ids)
    with pytest.raises(AssertionError):  # other settings → another key → tokenised again
        tokenize_cached(texts, Tokenizer("spacy", lowercase=False), tmp_path)


def test_corrupt_cache_file_is_rebuilt(tmp_path):
    texts = ["one two", "three"]
    tokenize_cached(texts, Tokenizer("regex"), tmp_path)
    (cache,) = tmp_path.glob("tokens-*.npz")
    cache.write_bytes(b"not a zip")
    again = tokenize_cached(texts, Tokenizer("regex"), tmp_path)
    assert again.table == ["one", "two", "three"]
