import pytest

from textclf.tokenize import Tokenizer, clean


def test_clean_strips_html_breaks():
    assert clean("Good.<br /><br />Bad.<BR>x<br/>") == "Good.  Bad. x "


@pytest.mark.parametrize("kind", ["spacy", "regex"])
def test_tokenizers_lowercase_and_split_punctuation(kind):
    toks = Tokenizer(kind)("This movie was GREAT!<br /><br />Don't miss it.")
    assert "<" not in "".join(toks) and "br" not in toks
    assert toks[:4] == ["this", "movie", "was", "great"] and "!" in toks
    assert toks[-1] == "."


@pytest.mark.parametrize("kind", ["spacy", "regex"])
def test_case_kept_when_asked_and_empty_text(kind):
    assert Tokenizer(kind, lowercase=False)("Hi there")[0] == "Hi"
    assert Tokenizer(kind)("") == [] and Tokenizer(kind)("   \n ") == []


def test_pipe_keeps_order_and_count():
    texts = [f"review number {i}" for i in range(50)]
    out = Tokenizer("spacy").tokenize_all(texts)
    assert len(out) == 50 and out[7] == ["review", "number", "7"]


def test_settings_round_trip():
    t = Tokenizer("regex", False)
    assert Tokenizer(**t.settings()) == t
