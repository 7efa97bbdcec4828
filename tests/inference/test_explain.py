"""Token attributions: integrated gradients that add up, point at the sentiment words, and survive truncation."""

import json

import numpy as np
import pytest
import torch

from textclf.cli import main
from textclf.errors import TextclfError
from textclf.inference.classifier import Classifier
from textclf.inference.explain import Explainer
from textclf.models.artifact import Artifact
from textclf.text.tokenizer import Tokenizer
from textclf.text.vocab import LabelVocab, Vocab

from ..conftest import NEGATIVE, POSITIVE, lstm


@pytest.fixture(scope="module")
def explainer(tiny_run):
    return Explainer(Classifier.load(tiny_run, "cpu"))


def _score(clf, tokens, sign):
    ids = torch.from_numpy(clf.artifact.vocab.lookup(tokens))[None]
    with torch.no_grad():
        return float(clf.artifact.model(ids, torch.tensor([ids.size(1)]))) * sign


def test_weights_add_up_to_the_score_difference(explainer):
    e = explainer.explain("The cast was superb and the music was brilliant, but the ending was dull.")
    clf = explainer.clf
    sign = 1.0 if e.label == "pos" else -1.0
    gap = _score(clf, e.tokens, sign) - _score(clf, ["<pad>"] * len(e.tokens), sign)
    assert abs(sum(e.weights) - gap) <= 0.05 * abs(gap) + 0.02  # completeness, up to the integral's error
    assert abs(e.delta) <= 0.05 * abs(gap) + 0.02


def test_sentiment_words_push_hardest_and_the_right_way(explainer):
    e = explainer.explain("the film was superb and brilliant")
    assert e.label == "pos" and e.probability == pytest.approx(explainer.clf.predict_proba(["the film was superb "
                                                                                         "and brilliant"])[0, 1])
    top_two = {tok for tok, _ in e.top(2)}
    assert top_two <= set(POSITIVE)
    assert all(w > 0 for tok, w in zip(e.tokens, e.weights, strict=True) if tok in POSITIVE)

    e = explainer.explain("a story with superb acting and awful boring dull writing")
    if e.label == "neg":  # against the label: the positive word pulls the other way
        assert e.weights[e.tokens.index("superb")] < 0
        assert max(e.weights) == max(e.weights[e.tokens.index(w)] for w in NEGATIVE if w in e.tokens)


def test_unknown_words_empty_text_and_truncation(explainer):
    e = explainer.explain("zzyzx superb")
    assert e.tokens == ["zzyzx", "superb"] and e.unknown == [True, False]
    with pytest.raises(TextclfError, match="is empty: there is nothing to classify"):
        explainer.explain("")  # as predict and `textclf explain ""`: no label for no text

    art = explainer.clf.artifact
    (art_max, art_truncate), art.max_length, art.truncate = (art.max_length, art.truncate), 6, "head"
    try:
        e = explainer.explain("one two three four five six seven eight nine ten")
        assert e.tokens == ["one", "two", "three", "four", "five", "six"] and e.dropped == 4 and e.cut_at == 6
        art.truncate = "both"
        e = explainer.explain("one two three four five six seven eight nine ten")
        assert e.tokens == ["one", "two", "three", "eight", "nine", "ten"] and e.cut_at == 3
        art.truncate = "tail"
        assert explainer.explain("one two three four five six seven eight").cut_at == 0
    finally:
        art.max_length, art.truncate = art_max, art_truncate


def test_multiclass_explains_the_predicted_class():
    torch.manual_seed(0)
    model = lstm(6, 3).eval()
    vocab = Vocab(["<pad>", "<unk>", "good", "bad", "meh", "film"])
    art = Artifact(model, vocab, LabelVocab(["a", "b", "c"]), Tokenizer("regex"), None, "head", {})
    e = Explainer(Classifier(art, torch.device("cpu")), steps=20).explain("good bad meh film")
    with torch.no_grad():
        logits = model(torch.tensor([[2, 3, 4, 5]]), torch.tensor([4]))[0]
    assert e.label == "abc"[int(logits.argmax())]
    assert len(e.weights) == 4 and np.isfinite(e.weights).all()


def test_explain_command(tiny_run, capsys):
    assert main(["explain", str(tiny_run), "the plot was awful and dull", "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("neg\t") and len(lines) == 4
    assert lines[1].split()[-1] in NEGATIVE and float(lines[1].split()[0]) > 0  # the hardest push: toward neg
    assert main(["explain", str(tiny_run), "superb", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["label"] == "pos" and data["tokens"] == ["superb"]
    assert main(["explain", str(tiny_run), "superb", "--steps", "1"]) == 2
    assert "--steps" in capsys.readouterr().err


def test_explanations_explain_what_answered(tiny_run):
    """Where the shortcut answers, the LSTM never ran: the weights are the linear view's exact n-gram shares;
    elsewhere both views, each weighted by its share; --no-shortcut and views=lstm as asked (issue 23)."""
    import dataclasses

    from ..conftest import with_shortcut

    fast = with_shortcut(Classifier.load(tiny_run, "cpu"))
    art = fast.artifact
    text = "superb brilliant wonderful film"
    assert art.calibration.sure(art.linear.predict_proba([art.tokenizer(text)]))[0]  # a text the shortcut answers
    e = Explainer(fast, steps=20).explain(text)
    assert e.answered_by == "linear" and e.lstm_weight == 0 and e.delta == 0 and e.label == "pos"
    tokens = art.tokenizer(text)
    scores = art.linear.features([tokens]) @ art.linear.coef.T
    assert e.tokens == tokens and sum(e.weights) == pytest.approx(float(scores[0, 0]), abs=1e-5)  # exact
    assert all(w > 0 for tok, w in zip(e.tokens, e.weights, strict=True) if tok in POSITIVE)

    unsure = "the film was a story"
    assert not art.calibration.sure(art.linear.predict_proba([art.tokenizer(unsure)]))[0]
    both = Explainer(fast, steps=20).explain(unsure)
    assert both.answered_by == "both" and both.lstm_weight == 0.5
    exact = Classifier(dataclasses.replace(art, shortcut=False), fast.device)
    assert Explainer(exact, steps=20).explain(text).answered_by == "both"
    lstm_only = Classifier(dataclasses.replace(art, views="lstm"), fast.device)
    e = Explainer(lstm_only, steps=20).explain(text)
    assert e.answered_by == "lstm" and e.lstm_weight == 1.0
    assert e.probability == pytest.approx(float(lstm_only.predict_proba([text])[0, 1]))


def test_linear_token_weights_add_up_for_every_class():
    from textclf.models.linear import LinearModel

    docs = [["good", "film"], ["bad", "film"], ["meh", "film", "film"], ["good", "good"], ["bad"], ["meh"]] * 3
    y = np.array([0, 1, 2, 0, 1, 2] * 3)
    model = LinearModel.fit(docs, y, 3)
    tokens = ["good", "film", "good", "unseen"]
    logits = (model.features([tokens]) @ model.coef.T)[0] + model.intercept
    for k in range(3):
        weights, intercept = model.token_weights(tokens, k)
        assert weights.sum() + intercept == pytest.approx(float(logits[k]), abs=1e-5)
        assert weights[3] == 0  # a word in no n-gram of the view
    chars = LinearModel.fit(docs, y, 3, kind="tfidf_wordchar")
    tokens = ["goood", "film", "unseen"]
    logits = (chars.features([tokens]) @ chars.coef.T)[0] + chars.intercept
    for k in range(3):
        weights, intercept = chars.token_weights(tokens, k)
        assert weights.sum() + intercept == pytest.approx(float(logits[k]), abs=1e-5)
    assert chars.token_weights(tokens, 0)[0][0] > 0  # a misspelt word shares its characters' n-grams with "good"
