import numpy as np
import pytest

from textclf.config import load_config
from textclf.pipeline import train
from textclf.predict import Classifier

from .conftest import TINY


@pytest.fixture(scope="module")
def clf(tmp_path_factory):
    from .conftest import make_reviews

    folder = tmp_path_factory.mktemp("predict")
    make_reviews(400, seed=1).to_csv(folder / "train.csv", index=False)
    train(load_config(None, [f"data.path={folder}", f"run_dir={folder / 'run'}", *TINY]))
    return Classifier.load(folder / "run")


def test_results_come_back_in_input_order(clf):
    texts = ["superb " * n + "film" for n in (1, 9, 3)] + ["awful " * n + "film" for n in (7, 1)]
    batched = clf.predict_proba(texts, batch_size=2)
    one_by_one = np.concatenate([clf.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    assert [p.label for p in clf.predict(texts)] == ["pos"] * 3 + ["neg"] * 2


def test_predictions_carry_probabilities(clf):
    (p,) = clf.predict(["A brilliant, delightful story."])
    assert set(p.probabilities) == {"neg", "pos"} and abs(sum(p.probabilities.values()) - 1) < 1e-6
    assert p.probability == p.probabilities[p.label]


def test_threshold_moves_the_decision(clf):
    probs = clf.predict_proba(["the film"])
    p_pos = float(probs[0, 1])
    assert clf.predict(["the film"], threshold=p_pos - 1e-6)[0].label == "pos"
    assert clf.predict(["the film"], threshold=min(1.0, p_pos + 1e-6))[0].label == "neg"


def test_edge_inputs(clf):
    assert clf.predict_proba([]).shape == (0, 2)
    assert clf.predict_proba([""]).shape == (1, 2)
    with pytest.raises(TypeError):
        clf.predict_proba("one string")


def test_classifier_is_importable_from_the_package():
    from textclf import Classifier as Exported

    assert Exported is Classifier
