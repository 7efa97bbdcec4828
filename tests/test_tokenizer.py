import pytest

from textclf.text.tokenizer import Tokenizer, clean


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


def test_regex_splits_clitics_like_spacy():
    toks = Tokenizer("regex")("I didn't like it... Costner's worst! They're OK; we'll see. Don't—it’s dull!!!")
    assert toks[:4] == ["i", "did", "n't", "like"] and "..." in toks and "!!!" in toks
    assert toks[toks.index("costner") : toks.index("costner") + 2] == ["costner", "'s"]
    assert {"'re", "'ll", "do", "n't", "’s"} <= set(toks)


def test_regex_tokens_mostly_agree_with_spacy():
    """The fast tokenizer stands in for spaCy: on review-like text nearly every token is the same."""
    import difflib

    text = ("This is the worst film I've ever seen, and I've seen 'Plan 9'. The acting (if you can call it that) "
            "was wooden; the plot didn't make sense. Mr. Smith's score: 2/10. Avoid it!<br /><br />Still, "
            "the cinematographer's work was lovely - truly beautiful shots of the U.S. coast.")
    a, b = Tokenizer("spacy")(text), Tokenizer("regex")(text)
    assert difflib.SequenceMatcher(None, a, b).ratio() >= 0.9, (a, b)


def test_regex_fast_path_gives_the_reference_tokens():
    """The possessive first alternative is only a shortcut: the tokens equal the plain pattern's."""
    import re

    from textclf.text.tokenizer import _REGEX_TOKEN

    reference = re.compile(r"\w+(?=n['’]t\b)|n['’]t\b|['’](?:s|re|ve|ll|m|d)\b|\w+|\.{2,}|!{2,}|\?{2,}|[^\w\s]",
                           re.IGNORECASE)
    texts = ["I didn't like it... Costner's worst! They're OK; we'll see. Don't—it’s dull!!!", "n't", "N'T x",
             "don't'", "a'b'c", "won't've", "xn'tx", "ab' 's x's's", "über'S", "IT'ſ DON’T", "can't't", "rock'n'roll",
             "o'neill's", "45's 90'S", "aren’t?!", "''s", "'t n''t"]
    for text in texts:
        for t in (text, text.lower()):
            assert _REGEX_TOKEN.findall(t) == reference.findall(t), t
