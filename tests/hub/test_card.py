import json

import numpy as np
import pytest
import yaml

from textclf.hub import card as modelcard

from ..conftest import save_random_model


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_every_run_has_a_card_whose_metrics_equal_metrics_json(tiny_run):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    config = json.loads((tiny_run / "model" / "config.json").read_text())
    card = (tiny_run / "model" / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["library_name"] == "textclf" and meta["pipeline_tag"] == "text-classification"
    assert meta["labels"] == config["labels"] == ["neg", "pos"]
    results = {r["dataset"]["split"]: r for r in meta["model-index"][0]["results"]}
    assert set(results) == {"validation", "test"}
    for split, result in results.items():
        shown = {m["type"]: m["value"] for m in result["metrics"]}
        assert shown == {k: metrics[split][k] for k, _ in modelcard.METRICS if metrics[split].get(k) is not None}
    # the Hub's own parser reads the same figures
    from huggingface_hub import ModelCard

    parsed = ModelCard.load(tiny_run / "model" / "README.md").data
    assert len(parsed.eval_results) == sum(len(r["metrics"]) for r in results.values())
    for r in parsed.eval_results:
        assert r.metric_value == metrics[r.dataset_split][r.metric_type]
    assert f"| test | {metrics['test']['n']} | {metrics['test']['accuracy']:.4f} |" in card
    assert "hf:USER/NAME" in card and "data:\n  path:" in card  # how to load it; the resolved config


def test_a_model_saved_mid_training_has_a_card_without_figures(tmp_path):
    folder = save_random_model(tmp_path / "m")
    card = (folder / "README.md").read_text()
    assert "model-index" not in _front_matter(card) and "Not evaluated yet" in card


@pytest.mark.parametrize(("data", "hub"), [
    ({"path": "hf:rotten_tomatoes"}, "rotten_tomatoes"),
    ({"path": "hf:SetFit/sst2:default"}, "SetFit/sst2"),
    ({"path": "imdb"}, "stanfordnlp/imdb"),
    ({"path": "imdb", "train": "my.csv"}, None),  # data.train wins: the Hub dataset was not read
    ({"path": "hf:./local_folder"}, None),
    ({"path": "data/reviews"}, None),
])
def test_the_card_names_the_hub_dataset_it_trained_on(data, hub):
    assert modelcard.hub_dataset({"data": data}) == hub
    meta = _front_matter(modelcard.render({"labels": ["a", "b"], "train_config": {"data": data}}))
    assert meta.get("datasets") == ([hub] if hub else None)


def test_for_repo_names_the_repository():
    card = modelcard.render({"labels": ["a", "b"], "train_config": {"init_from": "hf:alice/base"}})
    assert _front_matter(card)["base_model"] == "alice/base"
    assert 'Classifier.load("hf:bob/mine")' in modelcard.for_repo(card, "bob/mine")


def test_the_card_says_how_the_probabilities_are_made():
    averaged = {"weight": 0.5, "temperature": 0.84, "lstm_temperature": 1.09, "linear_temperature": 1.31}
    card = modelcard.render({"labels": ["a", "b"], "calibration": averaged})
    assert "average the LSTM's (weight 0.5) with those of a linear view" in card
    assert "(LSTM 1.09, linear view 1.31) and the average too (0.84)" in card and "linear.safetensors" in card
    card = modelcard.render({"labels": ["a", "b"], "calibration": {**averaged, "weight": 1.0}})
    assert "temperature-scaled on validation (0.84)" in card and "linear view" not in card
    assert "temperature-scaled" not in modelcard.render({"labels": ["a", "b"]})  # older folders: no calibration


def test_the_card_says_which_model_and_rows_its_figures_come_from():
    """Issue 30: the validation figures were the pre-refit model's, and the card did not say; now validation's
    come from out-of-fold linear views, and the card and metrics.json say so (`pipeline.sources`)."""
    from textclf.models.ensemble import Calibration
    from textclf.models.linear import LinearModel
    from textclf.training.linear_view import LINEAR_FOLDS
    from textclf.training.pipeline import sources

    view = LinearModel.fit([["good"], ["bad"]] * 2, np.array([1, 0, 1, 0]), 2)
    said = sources(Calibration(weight=0.5), view)
    assert said["validation"]["linear_folds"] == LINEAR_FOLDS and "out-of-fold linear views" in said["validation"][
        "source"] and said["test"] == {"source": "the saved model"}
    assert "linear_folds" not in sources(Calibration(weight=1.0), view)["validation"]  # the LSTM alone
    figures = {"accuracy": 0.9, "n": 120}
    card = modelcard.render({"labels": ["a", "b"]}, {"validation": {**figures, **said["validation"]},
                                                     "test": {**figures, **said["test"]}})
    assert "| validation (out-of-fold linear view) | 120 | 0.9000 |" in card and "| test | 120 | 0.9000 |" in card
    assert f"Figures of validation (out-of-fold linear view): {said['validation']['source']}; test: the saved model." \
        in card


def test_the_card_says_on_how_many_validation_texts_the_shortcut_was_checked():
    cal = {"weight": 0.5, "temperature": 0.84, "lstm_temperature": 1.09, "linear_temperature": 1.31,
           "shortcut": 0.9, "shortcut_rows": 1234}
    card = modelcard.render({"labels": ["a", "b"], "calibration": cal})
    assert "at least 0.9 sure" in card and "checked on the 1,234 validation texts it answered" in card
    both = modelcard.render({"labels": ["a", "b"], "calibration": {**cal, "shortcut_unlabelled": 1000}})
    assert "checked on the 234 validation texts and 1,000 unlabelled texts it answered" in both
    assert "95% confidence it changes at most 0.2%" in card
    before = {k: v for k, v in cal.items() if k != "shortcut_rows"}  # saved before textclf recorded it
    older = modelcard.render({"labels": ["a", "b"], "calibration": before})
    assert "at least 0.9 sure" in older and "does not say" in older and "checked on the" not in older


def test_the_card_says_where_the_model_it_was_fine_tuned_from_answers_too():
    """Issue 31: a fine-tuned model that averages in its start holds it whole in start/; the card says both."""
    cal = {"weight": 1.0, "temperature": 1.0, "start_weight": 0.6, "start_temperature": 0.9}
    card = modelcard.render({"labels": ["a", "b"], "calibration": cal})
    assert "0.6 of that model's" in card and "`start/` holds the model it was fine-tuned from" in card
    assert "start/" not in modelcard.render({"labels": ["a", "b"], "calibration": {**cal, "start_weight": 0.0}})
