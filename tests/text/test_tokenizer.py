import unicodedata
from pathlib import Path

import numpy as np
import pytest

from textclf.errors import TextclfError
from textclf.text.tokenizer import KINDS, VERSION, Tokenizer, clean, from_settings, without_spaces


def test_clean_strips_html_breaks():
    assert clean("Good.<br /><br />Bad.<BR>x<br/>") == "Good.  Bad. x "


def test_one_answer_to_which_kinds_split_scripts_written_without_spaces():
    """The tokenizer, the linear view (character n-grams) and ONNX export's sample texts (joined with nothing)
    all ask `without_spaces`."""
    from textclf.models.linear import kinds_for, tfidf_kind

    assert [k for k in KINDS if without_spaces(k)] == ["zh", "char"]
    assert tfidf_kind("zh") == "char_tfidf" and tfidf_kind("regex") == "tfidf"
    assert kinds_for("char", 2) == ["tfidf", "nb", "char_tfidf", "char_nb"] and kinds_for("spacy", 3) == ["tfidf"]


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


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
# What textclf at 98f540d (before tokenizers had a version) made of these texts and what its Classifier answered
# (P(pos), bf16=False), with the model folder it saved: tests/fixtures/README.md says how they were made.
OLD_TEXTS = ["यह फिल्म अच्छी है", "बहुत खराब कहानी थी", "café très bien", "घटिया फिल्म", "शानदार", "mal, ennuyeux"]
OLD_TOKENS = [["यह", "फ", "ि", "ल", "्", "म", "अच", "्", "छ", "ी", "ह", "ै"],
              ["बह", "ु", "त", "खर", "ा", "ब", "कह", "ा", "न", "ी", "थ", "ी"],
              ["cafe", "\u0301", "tre", "\u0300", "s", "bien"], ["घट", "ि", "य", "ा", "फ", "ि", "ल", "्", "म"],
              ["श", "ा", "नद", "ा", "र"], ["mal", ",", "ennuyeux"]]
OLD_P_POS = [0.67265, 0.157913, 0.903911, 0.275829, 0.834741, 0.24971]


def test_a_model_saved_before_tokenizer_versions_reads_text_as_it_was_trained():
    """Issue 30 item 5: a model saved by 98f540d records {kind, lowercase} only; read with today's splits, its
    Hindi words and accents meet tokens its vocabulary and n-grams do not hold, and its answers change."""
    from textclf.inference.classifier import Classifier

    texts = [unicodedata.normalize("NFD", t) for t in OLD_TEXTS]  # as the model's training texts were written
    clf = Classifier.load(FIXTURES / "model_98f540d", "cpu", bf16=False)
    assert [clf.artifact.tokenizer(t) for t in texts] == OLD_TOKENS
    np.testing.assert_allclose(clf.predict_proba(texts)[:, 1], OLD_P_POS, atol=1e-5)
    assert clf.artifact.tokenizer.settings()["version"] == 1  # and a model fine-tuned from it records so


def test_versions_split_as_they_did_and_new_models_record_theirs():
    hindi, cafe = "यह फिल्म अच्छी है", unicodedata.normalize("NFD", "café")
    assert len(Tokenizer("regex", version=1)(hindi)) == 12 and len(Tokenizer("regex")(hindi)) == 4
    assert len(Tokenizer("regex", version=1)(cafe)) == 2 and Tokenizer("regex")(cafe) == [cafe]
    assert Tokenizer("regex").settings() == {"kind": "regex", "lowercase": True, "version": VERSION}
    assert from_settings(Tokenizer("char").settings()) == Tokenizer("char")


@pytest.mark.parametrize(("settings", "train_config", "version"), [
    ({"kind": "regex", "lowercase": True}, None, 1),  # 98f540d and before
    ({"kind": "spacy", "lowercase": True}, {"tokenizer": {"kind": "spacy"}, "train": {}}, 1),
    ({"kind": "regex", "lowercase": True}, {"tokenizer": {"kind": "auto"}}, 2),  # saved since issue 24, unversioned
    ({"kind": "regex", "lowercase": True}, {"tokenizer": {"kind": "regex"}, "train": {"threads": None}}, 2),
    ({"kind": "char", "lowercase": True}, None, 2),
])
def test_a_model_without_a_version_is_dated_by_what_it_holds(settings, train_config, version):
    assert from_settings(settings, train_config).version == version


def test_a_tokenizer_newer_than_this_textclf_is_refused_in_one_line():
    with pytest.raises(TextclfError, match=r"tokenizer is version 3; .* upgrade textclf \(pip install -U textclf\)"):
        from_settings({"kind": "regex", "lowercase": True, "version": 3})
