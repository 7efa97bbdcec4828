"""The linear view: TF-IDF 1-2-grams + logistic regression on token lists; saved and loaded without pickle."""

import numpy as np
import pytest
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from textclf.models import linear
from textclf.models.linear import KINDS, LinearModel, NgramIndex, ViewSettings, units

from ..conftest import make_reviews


def _tokens(df):
    return [t.lower().replace(".", " .").split() for t in df["text"]]


# empty, no known n-gram, one word, unknown words among known ones, n-grams repeated in one text
ODD_TEXTS = [[], ["unseen", "words", "only"], ["great"], ["zzz", "great", "qqq"],
             ["a", "great", "great", "film", ".", "a", "great", "great", "film", ".", "awful", ",", "awful"]]


def test_same_probabilities_as_scikit_learn_on_joined_tokens(tmp_path):
    train, test = make_reviews(300, seed=1), make_reviews(100, seed=2)
    y = (train["label"] == "pos").to_numpy().astype(int)
    model = LinearModel.fit(_tokens(train), y, 2)
    ref_vec = TfidfVectorizer(tokenizer=str.split, token_pattern=None, lowercase=False, ngram_range=(1, 2), min_df=2,
                              sublinear_tf=True)
    ref = LogisticRegression(C=4.0, max_iter=1000).fit(ref_vec.fit_transform([" ".join(t) for t in _tokens(train)]), y)
    expected = ref.predict_proba(ref_vec.transform([" ".join(t) for t in _tokens(test)]))
    assert np.allclose(model.predict_proba(_tokens(test)), expected, atol=1e-4)
    model.save(tmp_path)
    again = LinearModel.load(tmp_path)
    assert np.allclose(again.predict_proba(_tokens(test)), expected, atol=1e-4)


def test_the_word_and_character_view_is_scikit_learns_words_and_char_wb_grams(tmp_path):
    """tfidf_wordchar: scikit-learn's TF-IDF of word 1-2-grams beside its TF-IDF of the character 2-5-grams
    analyzer="char_wb" makes of each word (padded with a space each side; a short word once), each normalised on
    its own, then logistic regression at C=4: scikit-learn's probabilities on the same rows, before and after
    saving."""
    train, test = make_reviews(300, seed=1), make_reviews(100, seed=2)
    y = (train["label"] == "pos").to_numpy().astype(int)
    words = TfidfVectorizer(tokenizer=str.split, token_pattern=None, lowercase=False, ngram_range=(1, 2), min_df=2,
                            sublinear_tf=True)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=False, min_df=2, sublinear_tf=True)
    joined = [" ".join(t) for t in _tokens(train)]
    x = sparse.hstack([words.fit_transform(joined), chars.fit_transform(joined)], format="csr")
    ref = LogisticRegression(C=4.0, max_iter=1000).fit(x, y)
    docs = _tokens(test) + ODD_TEXTS + [["a"], ["soooo", "goooood", "!!!"]]
    joined = [" ".join(t) for t in docs]
    expected = ref.predict_proba(sparse.hstack([words.transform(joined), chars.transform(joined)], format="csr"))
    model = LinearModel.fit(_tokens(train), y, 2, kind="tfidf_wordchar")
    assert model.ngrams == [*words.get_feature_names_out(), *("\x1f" + g for g in chars.get_feature_names_out())]
    np.testing.assert_allclose(model.predict_proba(docs), expected, atol=1e-4)
    model.save(tmp_path)
    again = LinearModel.load(tmp_path)
    np.testing.assert_allclose(again.predict_proba(docs), expected, atol=1e-4)
    assert again.describe() == ("tfidf(1-2-grams and character 2-5-grams inside words) + logistic regression "
                                "(C=4)")


def test_words_and_characters_are_a_candidate_on_small_corpora_written_with_spaces():
    """The word-and-character view is weighed against the others up to `WORDCHAR_MAX_TOKENS` train tokens (tweets
    and short reviews by the thousand), not on large corpora (IMDB: ~6M), where it would take minutes and
    gigabytes, nor where the size is not known or the script has no spaces (its views are characters already)."""
    assert linear.kinds_for("regex", 3, 240_000) == ["tfidf", "tfidf_wordchar"]
    assert linear.kinds_for("spacy", 2, linear.WORDCHAR_MAX_TOKENS) == ["tfidf", "nb", "tfidf_wordchar"]
    assert linear.kinds_for("regex", 2, linear.WORDCHAR_MAX_TOKENS + 1) == ["tfidf", "nb"]
    assert linear.kinds_for("regex", 2) == ["tfidf", "nb"]
    assert linear.kinds_for("zh", 2, 1000) == ["tfidf", "nb", "char_tfidf", "char_nb"]


def test_multiclass_and_tiny_data(tmp_path):
    docs = [["good"], ["bad"], ["meh"], ["good", "day"], ["bad", "day"], ["meh", "day"]]
    y = np.array([0, 1, 2, 0, 1, 2])
    model = LinearModel.fit(docs, y, 3)
    probs = model.predict_proba([["good"], ["bad"], ["meh"]])
    assert probs.shape == (3, 3) and np.allclose(probs.sum(1), 1)
    assert (probs.argmax(1) == [0, 1, 2]).all()
    assert LinearModel.load(tmp_path) is None  # a folder without one
    once = LinearModel.fit([["a"], ["b"]], np.array([0, 1]), 2)  # no n-gram in two texts: each counts once then
    assert once.predict_proba([["a"], ["b"]]).argmax(1).tolist() == [0, 1]


def test_naive_bayes_view_is_nbsvm_features_and_saves(tmp_path):
    train, test = make_reviews(300, seed=1), make_reviews(100, seed=2)
    y = (train["label"] == "pos").to_numpy().astype(int)
    model = LinearModel.fit(_tokens(train), y, 2, kind="nb")
    assert model.kind == "nb" and model.ngram_max == 3 and any(g.count(" ") == 2 for g in model.ngrams)
    great, awful = model.ngrams.index("great"), model.ngrams.index("awful")
    assert model.scale[great] > 0 > model.scale[awful]  # log-count ratios point at their class
    yt = (test["label"] == "pos").to_numpy().astype(int)
    probs = model.predict_proba(_tokens(test))
    assert (probs.argmax(1) == yt).mean() > 0.9
    model.save(tmp_path)
    assert np.allclose(LinearModel.load(tmp_path).predict_proba(_tokens(test)), probs, atol=1e-6)
    with pytest.raises(ValueError, match="two classes"):
        LinearModel.fit([["a"], ["b"], ["c"]], np.array([0, 1, 2]), 3, kind="nb")


@pytest.mark.parametrize("kind", list(KINDS))
def test_fast_features_equal_scikit_learns(kind):
    train, test = make_reviews(300, seed=1), make_reviews(100, seed=2)
    y = (train["label"] == "pos").to_numpy().astype(int)
    model = LinearModel.fit(_tokens(train), y, 2, kind=kind)
    docs = _tokens(test) + ODD_TEXTS
    fast = model.features(docs)
    slow = model.vectorizer.transform([units(d, model.unit) for d in docs])
    slow = slow.multiply(model.scale).tocsr() if model.weighting == "nb" else slow
    assert fast.shape == slow.shape
    np.testing.assert_allclose(fast.toarray(), slow.toarray(), rtol=1e-5, atol=1e-6)


def _csr_proba(model, docs):
    """The probabilities from the sparse features: what `predict_proba` computed before it summed without them."""
    scores = np.asarray(model.features(docs) @ model.coef.T, dtype=np.float64) + model.intercept
    if model.num_classes == 2:
        p = 1.0 / (1.0 + np.exp(-scores[:, 0]))
        return np.stack([1 - p, p], axis=1)
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("kind, classes", [("tfidf", 2), ("tfidf", 3), ("char_tfidf", 3), ("nb", 2),
                                           ("tfidf_wordchar", 3)])
def test_a_saved_view_gives_the_probabilities_it_gave_before_saving(kind, classes, tmp_path):
    """scikit-learn's multinomial coef_ comes in Fortran order, and safetensors writes an array's memory as it
    lies: a 3-class view saved so scored its texts with scrambled weights (the majority class on airline tweets)."""
    model, texts = _fitted_and_odd_texts(kind, classes)
    model.coef = np.asfortranarray(model.coef)  # as LogisticRegression hands it over, whatever the version
    model.save(tmp_path)
    assert np.allclose(LinearModel.load(tmp_path).predict_proba(texts), model.predict_proba(texts), atol=1e-6)


def _fitted_and_odd_texts(kind: str, classes: int) -> tuple[LinearModel, list[list[str]]]:
    """A view of `kind` fitted on 300 reviews (a third class: every fifth row), and 60 others + `ODD_TEXTS`."""
    train, test = make_reviews(300, seed=1), make_reviews(60, seed=2)
    y = (train["label"] == "pos").to_numpy().astype(int)
    if classes == 3:
        y = np.where(np.arange(len(y)) % 5 == 0, 2, y)
    return LinearModel.fit(_tokens(train), y, classes, kind=kind), _tokens(test) + ODD_TEXTS


@pytest.mark.parametrize("kind, classes", [("tfidf", 2), ("tfidf", 3), ("nb", 2), ("char_tfidf", 2),
                                           ("char_tfidf", 3), ("char_nb", 2), ("tfidf_wordchar", 2),
                                           ("tfidf_wordchar", 3)])
def test_summed_scores_equal_the_sparse_features(kind, classes, monkeypatch):
    """`predict_proba` sums each text's n-grams without building `features`' sparse matrix: the same
    probabilities, also for empty texts, texts with no known n-gram and n-grams repeated in a text (counted
    for tf-idf, once for naive Bayes); and the same through scikit-learn's vectorizer when the index can't hold
    the n-grams."""
    model, docs = _fitted_and_odd_texts(kind, classes)
    fast = model.predict_proba(docs)
    assert model._index is not None and fast.shape == (len(docs), classes)
    np.testing.assert_allclose(fast, _csr_proba(model, docs), rtol=0, atol=1e-6)
    assert model.predict_proba([]).shape == (0, classes)
    monkeypatch.setattr(NgramIndex, "fits", staticmethod(lambda ngrams: False))
    fallback = LinearModel(model.ngrams, model.scale, model.coef, model.intercept, classes,
                           ViewSettings(kind, model.ngram_max))
    np.testing.assert_allclose(fallback.predict_proba(docs), fast, rtol=0, atol=1e-6)
    assert fallback._index is None


@pytest.mark.parametrize("kind, classes", [("tfidf", 2), ("tfidf", 3), ("nb", 2), ("char_tfidf", 2),
                                           ("tfidf_wordchar", 3)])
def test_many_texts_are_scored_a_bounded_batch_at_a_time_with_the_same_numbers(kind, classes, monkeypatch):
    """A long list's n-grams are never all in memory at once (`SCORE_CHUNK` texts a tally), and each text
    scores as it does alone: what a bigger batch would hold only costs memory and, on a first call, time."""
    model, docs = _fitted_and_odd_texts(kind, classes)
    whole = model.scores(docs)
    sizes = []
    index = type(model._index)  # NgramIndex, or WordCharIndex
    tally = index.tally
    monkeypatch.setattr(index, "tally", lambda self, token_lists: sizes.append(len(token_lists))
                        or tally(self, token_lists))
    monkeypatch.setattr(linear, "SCORE_CHUNK", 7)
    np.testing.assert_array_equal(model.scores(docs), whole)
    assert max(sizes) == 7 and sum(sizes) == len(docs)
    np.testing.assert_array_equal(model.scores(iter(docs)), whole)  # any iterable, as before


@pytest.mark.parametrize("kind, classes", [("tfidf", 2), ("nb", 2), ("tfidf", 3), ("char_tfidf", 2),
                                           ("tfidf_wordchar", 3)])
def test_cross_fitted_views_are_those_fit_makes_of_their_rows(kind, classes):
    """`cross_fit` counts the n-grams once, yet each view is the one `fit` makes of its own rows: its own n-grams
    (in 2+ of them), idf or log-count ratios and logistic regression; a row is scored only by a view that did not
    see it."""
    df = make_reviews(240, seed=3)
    docs = _tokens(df)
    y = (df["label"] == "pos").to_numpy().astype(int)
    if classes == 3:
        y = np.where(np.arange(len(y)) % 5 == 0, 2, y)
    folds = np.where(np.arange(len(y)) < 160, -1, np.arange(len(y)) % 4)  # 160 rows always in, 80 in 4 folds
    view, out = LinearModel.cross_fit(docs, y, folds, classes, kind, 2.0)
    assert np.isnan(out[folds < 0]).all() and not np.isnan(out[folds >= 0]).any()
    for k in range(4):
        rows, held = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        alone = LinearModel.fit([docs[i] for i in rows], y[rows], classes, kind, 2.0)
        np.testing.assert_allclose(out[held], alone.predict_proba([docs[i] for i in held]), atol=1e-5)
    every = LinearModel.fit(docs, y, classes, kind, 2.0)
    assert view.ngrams == every.ngrams and (view.kind, view.c) == (kind, 2.0)
    np.testing.assert_allclose(view.predict_proba(docs), every.predict_proba(docs), atol=1e-5)
    tiny, tiny_out = LinearModel.cross_fit([["a"], ["b"], ["c"]], np.array([0, 1, 0]), np.array([-1, -1, 0]), 2,
                                           kind if classes == 2 else "tfidf", 1.0)  # no n-gram in 2+ texts
    assert tiny_out[2].sum() == pytest.approx(1.0) and len(tiny.ngrams) == 3
