import json
from collections import Counter

import numpy as np
import pytest
import torch

from textclf.config import load_config
from textclf.errors import TextclfError
from textclf.models.artifact import Artifact, load_model, save_model
from textclf.reports.evaluation import evaluate
from textclf.text.tokenizer import Tokenizer
from textclf.text.tokens import Tokenized
from textclf.text.vocab import LabelVocab, Vocab
from textclf.training.finetune import (
    extend_vocab,
    freezer,
    load_pretrained,
    match_labels,
    oov_rate,
)
from textclf.training.finetune import transfer_weights as init_model
from textclf.training.pipeline import balanced_class_weights, train

from ..conftest import REPO, TINY, lstm, make_reviews


@pytest.fixture(scope="module")
def base(tiny_run):
    """A tiny neg/pos model to start from (the session's shared tiny run: read, never written)."""
    return tiny_run


@pytest.fixture
def random_artifact(tmp_path):
    torch.manual_seed(0)
    vocab = Vocab.build(Counter({"good": 3, "bad": 3, "film": 2}))
    model = lstm(len(vocab), 2, 8, 6)
    save_model(tmp_path / "m", Artifact(model, vocab, LabelVocab(["neg", "pos"]), Tokenizer("regex"), 50, "head", {}))
    return load_model(tmp_path / "m")


def _finetune(tmp_path, base, df, *extra, name="ft"):
    df.to_csv(tmp_path / f"{name}.csv", index=False)
    cfg = load_config(None, [f"init_from={base}", f"data.train={tmp_path / f'{name}.csv'}",
                             f"run_dir={tmp_path / name}", *TINY, *extra])
    return train(cfg), tmp_path / name


def test_match_labels_forgives_spellings_and_keeps_the_pretrained_order():
    imdb = LabelVocab(["neg", "pos"])
    assert match_labels(imdb, LabelVocab.from_values(["Positive", "negative"])).names == ["negative", "Positive"]
    assert match_labels(imdb, LabelVocab.from_values([1, 0])).names == ["0", "1"]
    assert match_labels(LabelVocab(["0", "1"]), LabelVocab.from_values(["pos", "neg"])).names == ["neg", "pos"]
    for other in (["1", "2"], ["neg", "mixed", "pos"], ["ham", "spam"]):
        assert match_labels(imdb, LabelVocab.from_values(other)) is None, other


def test_extend_vocab_appends_frequent_new_tokens_and_keeps_every_old_id():
    old = Vocab.build(Counter({"good": 3, "bad": 3}))
    new = extend_vocab(old, Counter({"good": 9, "app": 5, "crash": 5, "rare": 1, "<unk>": 7}), max_new=5, min_freq=2)
    assert new.itos == old.itos + ["app", "crash"]
    assert extend_vocab(old, Counter({"app": 5}), max_new=0, min_freq=1) is old


def test_oov_rate_counts_tokens_not_types():
    vocab = Vocab.build(Counter({"good": 1}))
    tok = Tokenized.from_token_lists([["good", "good", "good", "meh"], []])
    assert oov_rate(tok, vocab) == 0.25
    assert oov_rate(Tokenized.from_token_lists([[]]), vocab) == 0.0


def test_init_model_copies_pretrained_weights_and_leaves_old_rows_untouched(random_artifact):
    art = random_artifact
    bigger = Vocab(art.vocab.itos + ["app", "crash"])
    old = art.model.state_dict()
    kept = init_model(art, bigger, 2, keep_head=True).state_dict()
    assert torch.equal(kept["embedding.weight"][: len(art.vocab)], old["embedding.weight"])
    assert kept["embedding.weight"][len(art.vocab):].abs().sum() > 0, "new rows get their own vectors"
    assert all(torch.equal(kept[k], v) for k, v in old.items() if k != "embedding.weight")
    fresh = init_model(art, art.vocab, 3, keep_head=False).state_dict()
    assert fresh["head.weight"].shape[0] == 3
    assert all(torch.equal(fresh[k], v) for k, v in old.items() if not k.startswith("head."))


def test_freezer_holds_the_pretrained_parts_for_the_first_epochs(random_artifact):
    model = init_model(random_artifact, random_artifact.vocab, 2, keep_head=True)
    start = freezer(model, len(random_artifact.vocab), embedding_epochs=1, encoder_epochs=2)
    start(1)
    assert not model.embedding.weight.requires_grad and not any(p.requires_grad for p in model.lstm.parameters())
    start(2)
    assert model.embedding.weight.requires_grad and not any(p.requires_grad for p in model.lstm.parameters())
    start(3)
    assert all(p.requires_grad for p in model.parameters())


def test_freezing_with_new_rows_lets_only_the_new_rows_learn(random_artifact):
    n_old = len(random_artifact.vocab)
    model = init_model(random_artifact, Vocab(random_artifact.vocab.itos + ["app"]), 2, keep_head=True)
    start = freezer(model, n_old, embedding_epochs=1, encoder_epochs=0)
    start(1)
    model(torch.tensor([[2, n_old, 3]]), torch.tensor([3])).sum().backward()
    grad = model.embedding.weight.grad
    assert grad[:n_old].abs().sum() == 0 and grad[n_old].abs().sum() > 0
    start(2)
    model.zero_grad()
    model(torch.tensor([[2, n_old, 3]]), torch.tensor([3])).sum().backward()
    assert model.embedding.weight.grad[2].abs().sum() > 0


def test_balanced_class_weights():
    w = balanced_class_weights(np.array([0, 0, 0, 1]), 2)
    assert w.tolist() == pytest.approx([4 / 6, 2.0])
    assert balanced_class_weights(np.array([0, 1]), 2).tolist() == [1.0, 1.0]


def test_same_label_set_keeps_the_head_and_names_labels_as_the_new_data_does(tmp_path, base):
    df = make_reviews(200, seed=7, labels=("negative", "positive")).rename(columns={"text": "review",
                                                                                    "label": "sentiment"})
    df["shop"] = "acme"
    metrics, run = _finetune(tmp_path, base, df, "data.text_column=review", "data.label_column=sentiment",
                             "train.epochs=1", "train.freeze_encoder_epochs=1", "train.freeze_embedding_epochs=1",
                             "train.class_weights=balanced")
    assert metrics["init_from"]["head"] == "kept" and metrics["init_from"]["oov_rate"]["train"] == 0.0
    before, after = load_model(base), load_model(run)
    assert after.labels.names == ["negative", "positive"] and after.vocab == before.vocab
    assert after.tokenizer == before.tokenizer
    old, new = before.model.state_dict(), after.model.state_dict()
    assert all(torch.equal(new[k], old[k]) for k in old if not k.startswith("head.")), "frozen for its only epoch"
    # the head trained for an epoch, unless the model it started from stayed better on validation (epoch 0)
    assert torch.equal(new["head.weight"], old["head.weight"]) == (metrics["best_epoch"] == 0)
    meta = json.loads((run / "model" / "config.json").read_text())
    assert meta["init_from"]["pretrained_labels"] == ["neg", "pos"]
    assert meta["train_config"]["init_from"] == str(base)


def test_star_ratings_through_a_label_map_get_a_new_head_and_evaluate_as_is(tmp_path, base, caplog):
    df = make_reviews(300, seed=8, labels=("1", "5"))
    df.loc[df.index[::5], "label"] = "3"
    df.loc[df.index[1::10], "label"] = "6"  # a value the map does not list
    label_map = "data.label_map={1: bad, 3: meh, 5: good}"
    metrics, run = _finetune(tmp_path, base, df, label_map, "vocab.new_tokens=50", "train.epochs=3")
    assert metrics["init_from"]["head"] == "new"
    art = load_model(run)
    assert art.labels.names == ["bad", "good", "meh"] and art.model.num_classes == 3
    assert "dropped 30 row(s): 6 (30, not in the map)" in caplog.text
    m = evaluate(str(run), str(tmp_path / "ft.csv"))  # raw ratings: the model's own label map applies
    assert m["n"] == 270 and m["labels"] == ["bad", "good", "meh"]


def test_fine_tuning_on_the_start_models_own_training_data_is_warned_of(base, caplog):
    """The start graded on validation rows it had trained on scored 1.000 and kept all the weight, silently."""
    from textclf.training.pipeline import start_from

    data = base.parent  # the folder the tiny run was trained on (data.path)
    with caplog.at_level("WARNING"):
        start_from(load_config(None, [f"init_from={base}", f"data.path={data}", *TINY]))
    assert f"init_from was trained on data.path={data}, as this run is" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        start_from(load_config(None, [f"init_from={base}", f"data.train={data / 'test.csv'}", *TINY]))
    assert "as this run is" not in caplog.text


def test_init_from_something_that_is_not_a_model(tmp_path, base):
    df = make_reviews(40)
    df.to_csv(tmp_path / "my.csv", index=False)
    (tmp_path / "empty").mkdir()
    for bad, why in [(tmp_path / "my.csv", "model folder not found"), (tmp_path / "empty", "config.json is missing"),
                     (tmp_path / "nowhere", "model folder not found")]:
        with pytest.raises(TextclfError, match=rf"init_from=.* is not a usable textclf model: .*{why}"):
            load_pretrained(str(bad))


def test_fine_tuning_keys_need_init_from(tmp_path):
    with pytest.raises(TextclfError, match=r'"train.freeze_encoder_epochs" is for fine-tuning: set init_from'):
        train(load_config(None, ["train.freeze_encoder_epochs=1", f"run_dir={tmp_path / 'run'}"]))
    new_head = r'"init_head" is for fine-tuning: set init_from=MODEL_DIR \(or init_head=auto'
    with pytest.raises(TextclfError, match=new_head):  # it trained from scratch, silently
        train(load_config(None, ["init_head=new", f"run_dir={tmp_path / 'run'}"]))
    # the shipped fine-tuning config without init_from: every key it sets, in one line (was one key per attempt)
    both = (r'config keys "train.freeze_embedding_epochs", "train.freeze_encoder_epochs" are for fine-tuning: '
            r"set init_from=MODEL_DIR \(or train.freeze_embedding")
    with pytest.raises(TextclfError, match=both):
        train(load_config(str(REPO / "configs" / "finetune.yaml"), [f"run_dir={tmp_path / 'run'}"]))
    assert not (tmp_path / "run").exists()


def test_binary_labels_named_otherwise_are_aligned_by_the_pretrained_scores(tmp_path, base):
    """`happy`/`unhappy` sort the wrong way round for a neg/pos model: its scores on the train rows say which is
    which, the head is kept the right way round, and the run starts no worse than the model it came from."""
    df = make_reviews(200, seed=7, labels=("unhappy", "happy"))
    metrics, run = _finetune(tmp_path, base, df, "train.epochs=1")
    info = metrics["init_from"]
    assert info["head"] == "kept" and info["labels_matched_by"] == "scores" and info["alignment_auc"] < 0.2
    assert load_model(run).labels.names == ["happy", "unhappy"]  # sorted as the data's, the head turned to it
    assert info["started_as"] == {"happy": "pos", "unhappy": "neg"}
    assert metrics["validation"]["accuracy"] > 0.9


def test_an_architecture_key_given_to_a_fine_tuning_run_is_said_to_be_unused(base, caplog):
    """Fine-tuning takes init_from's architecture: a model.* the user set otherwise was dropped without a word."""
    from textclf.training.pipeline import start_from

    with caplog.at_level("WARNING"):
        cfg, _ = start_from(load_config(None, [f"init_from={base}", *TINY, "model.hidden_size=64"]))
    assert cfg.model.hidden_size == 16 and cfg.model.embedding_dim == 16
    assert "model.hidden_size=64 is not used: fine-tuning keeps init_from's architecture (model.hidden_size=16)" \
        in caplog.text
    assert "embedding_dim" not in caplog.text  # TINY's 16 is the start's own


def test_init_head_new_always_starts_a_fresh_head_from_a_linear_probe(tmp_path, base):
    df = make_reviews(200, seed=7, labels=("unhappy", "happy"))
    metrics, run = _finetune(tmp_path, base, df, "train.epochs=1", "init_head=new")
    assert metrics["init_from"]["head"] == "new"
    assert load_model(run).labels.names == ["happy", "unhappy"]
    assert metrics["validation"]["accuracy"] > 0.9  # the probe alone separates what the encoder already knows


def test_unrelated_binary_labels_get_a_new_head(tmp_path, base):
    df = make_reviews(200, seed=7)
    df["label"] = ["spam" if i % 2 else "ham" for i in range(len(df))]  # unrelated to the words' sentiment
    metrics, _ = _finetune(tmp_path, base, df, "train.epochs=1")
    assert metrics["init_from"]["head"] == "new" and 0.4 < metrics["init_from"]["alignment_auc"] < 0.6


@pytest.mark.parametrize(("setting", "labels", "weighed"), [
    ("auto", [0] * 6 + [1] * 3, True),  # 2:1 or more: imbalanced
    ("auto", [0] * 5 + [1] * 3, False),
    ("balanced", [0] * 5 + [1] * 5, True),
    ("none", [0] * 9 + [1], False),
])
def test_class_weights_auto_weighs_imbalanced_labels_only(setting, labels, weighed):
    from types import SimpleNamespace

    from textclf.training.pipeline import class_weights

    cfg = load_config(None, [f"train.class_weights={setting}"])
    data = SimpleNamespace(datasets={"train": SimpleNamespace(labels=np.array(labels))},
                           labels=LabelVocab(["a", "b"]))
    weights = class_weights(cfg, data, torch.device("cpu"))
    assert (weights is not None) == weighed
    if weighed:
        assert weights.tolist() == pytest.approx(balanced_class_weights(np.array(labels), 2).tolist())


def test_new_vocabulary_rows_start_from_unk_so_the_start_is_the_given_model(random_artifact):
    """Fine-tuning's 'epoch 0' must be exactly the model the user gave: the words it adds were <unk> to that
    model, so their rows start as its <unk> row (issue 23: they were random)."""
    from textclf.text.vocab import UNK_ID

    art = random_artifact
    bigger = Vocab(art.vocab.itos + ["app", "crash"])
    model = init_model(art, bigger, 2, keep_head=True).eval()
    texts = [["good", "app", "crash"], ["crash", "bad", "film", "app"]]
    with torch.no_grad():
        for tokens in texts:
            new = model(torch.from_numpy(bigger.lookup(tokens))[None], torch.tensor([len(tokens)]))
            old = art.model(torch.from_numpy(art.vocab.lookup(tokens))[None], torch.tensor([len(tokens)]))
            assert torch.equal(new, old)
    rows = model.embedding.weight[len(art.vocab):]
    assert torch.equal(rows, art.model.embedding.weight[UNK_ID].expand_as(rows))


def test_zero_one_labels_are_checked_by_the_models_scores_not_trusted_by_alias(tmp_path, base):
    """0/1 matched negative/positive by alias alone, so a file where 1 means a complaint kept the head the wrong
    way round (issue 23: 0.852 on test where the turned head scored about 0.93). The scores decide now."""
    df = make_reviews(200, seed=7, labels=("1", "0"))  # 1: the negative reviews
    metrics, run = _finetune(tmp_path, base, df, "train.epochs=1")
    info = metrics["init_from"]
    assert info["head"] == "kept" and info["labels_matched_by"] == "scores"
    assert info["alignment_auc"] < 0.2 and info["alignment_z"] < -3
    assert metrics["validation"]["accuracy"] > 0.9


def test_a_turned_head_keeps_the_users_label_order_so_the_threshold_means_the_same(tmp_path, base):
    """Where the pretrained scores run the other way (1 = a complaint), the model saved labels ["1", "0"]:
    --threshold then thresholded P("0") and binary precision/recall/F1 were for "0" (issue 30). The labels keep
    the data's sorted order, the head is turned instead, and predictions and probabilities name the right class."""
    from textclf.inference.classifier import Classifier

    df = make_reviews(200, seed=7, labels=("1", "0"))  # 1: the negative reviews
    metrics, run = _finetune(tmp_path, base, df, "train.epochs=1")
    assert load_model(run).labels.names == ["0", "1"]
    assert metrics["init_from"]["started_as"] == {"0": "pos", "1": "neg"}
    held_out = make_reviews(60, seed=11, labels=("1", "0"))
    clf = Classifier.load(run, bf16=False)
    probs = clf.predict_proba(held_out["text"].tolist())
    is_one = (held_out["label"] == "1").to_numpy()
    assert (probs[:, 1][is_one] > 0.5).mean() > 0.9 and (probs[:, 1][~is_one] < 0.5).mean() > 0.9  # P("1")
    labels = [p.label for p in clf.predict(held_out["text"].tolist(), threshold=0.6)]
    assert np.mean(np.array(labels) == held_out["label"].to_numpy()) > 0.9
    recall_of_one = metrics["validation"]["report"]["1"]["recall"]
    assert metrics["validation"]["recall"] == pytest.approx(recall_of_one)  # binary figures are for "1"
    # a file of the same reviews labelled neg/pos is read as the start model's classes, not as 0 = negative: the
    # convention inverted it, and evaluate.py scored such a model 0.08 where 0/1 labels scored 0.92
    labels = load_model(run).labels
    assert [labels.get(v) for v in ("neg", "negative", "pos", "positive", "0", "1")] == [1, 1, 0, 0, 0, 1]


@pytest.mark.parametrize("rows", [[1, 0], [2, 0, 1]])
def test_turning_a_kept_head_keeps_every_probability_by_name(random_artifact, rows):
    """Epoch 0 of a turned head is the given model: P(run label j) = P(pretrained class rows[j]), exactly."""
    from textclf.training.finetune import turn_head

    torch.manual_seed(1)
    classes = len(rows)
    model = lstm(len(random_artifact.vocab), classes, 8, 6).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    turn_head(state, rows)
    turned = lstm(len(random_artifact.vocab), classes, 8, 6).eval()
    turned.load_state_dict(state)
    tokens, lengths = torch.tensor([[2, 3, 4], [4, 2, 0]]), torch.tensor([3, 2])
    with torch.no_grad():
        before, after = model.probabilities(model(tokens, lengths)), turned.probabilities(turned(tokens, lengths))
    assert torch.allclose(after, before[:, rows], atol=1e-6)


def test_an_alignment_must_be_significant_for_the_rows_it_was_measured_on():
    """|AUC - 0.5| >= 0.1 alone kept an arbitrary head 8-28% of the time on 40-100 rows with no signal."""
    from textclf.training.finetune import Alignment, auc_z

    assert not Alignment(0.65, auc_z(0.65, 20, 20), 40).separates()  # z ~ 1.6: chance does this often
    assert Alignment(0.65, auc_z(0.65, 500, 500), 1000).separates()
    assert not Alignment(0.53, auc_z(0.53, 5000, 5000), 10_000).separates()  # significant, but barely informative
    assert Alignment(0.05, auc_z(0.05, 30, 30), 60).separates()  # clear, the other way round
    rng = np.random.default_rng(0)
    kept = 0
    from sklearn.metrics import roc_auc_score

    for _ in range(400):  # no signal at all, 40 rows: how often would a head be kept?
        y, scores = rng.integers(0, 2, 40), rng.random(40)
        if y.min() == y.max():
            continue
        auc = roc_auc_score(y, scores)
        kept += Alignment(auc, auc_z(auc, int(y.sum()), int(40 - y.sum())), 40).separates()
    assert kept / 400 < 0.01


def test_fit_start_gives_the_start_model_the_share_validation_says():
    """Issue 31: the model it started from, in full, is a candidate; its share is fitted on validation like the
    views' weight (1: the start unchanged, 0: the fine-tuned model alone), not kept unless significantly beaten."""
    from textclf.models.ensemble import Calibration, log_loss

    rng = np.random.default_rng(1)
    n = 2000
    y = rng.integers(0, 2, n)
    two = lambda p: np.stack([1 - p, p], 1)  # noqa: E731
    sharp = two(np.where(y == 1, 0.9, 0.1))  # right on every row
    noise = two(rng.uniform(0.2, 0.8, n))  # knows nothing
    cal = Calibration(shortcut=0.9, shortcut_rows=150)
    assert cal.fit_start(noise, sharp, y).start_weight == 1.0  # the start knows, the fine-tuned model not
    alone = cal.fit_start(sharp, noise, y)
    assert alone.start_weight == 0.0 and alone.shortcut == 0.9  # the other way round: the model as fine-tuned
    a, b = (two(np.where(y == 1, rng.uniform(0.3, 1.0, n), rng.uniform(0.0, 0.7, n))) for _ in range(2))
    both = cal.fit_start(a, b, y)  # two noisy, independent opinions: their average beats either
    assert 0 < both.start_weight < 1 and both.shortcut == 0.0  # checked on the model's own decisions: dropped
    probs = both.apply(a, None, b)
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    assert log_loss(probs, y) < min(log_loss(a, y), log_loss(b, y))


def test_on_a_few_rows_the_start_keeps_its_say_unless_the_fine_tuned_model_is_clearly_better():
    """Issue 31, measured: on 30 validation rows the share with the lowest loss was often chance (IMDB rows the
    start never saw: 0.928 on test against its 0.933). Within one standard error of the best, the start's largest
    share is taken; a clear gain still moves it."""
    from textclf.models.ensemble import WEIGHTS, Calibration, combine, log_loss

    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 30)
    two = lambda p: np.stack([1 - p, p], 1)  # noqa: E731
    p1 = np.where(y == 1, rng.uniform(0.5, 0.95, 30), rng.uniform(0.05, 0.5, 30))
    start, lucky = two(p1), two(np.clip(p1 + rng.normal(0, 0.05, 30), 0.01, 0.99))  # the same model, jittered
    losses = [log_loss(combine(start, lucky, w), y) for w in WEIGHTS]
    assert WEIGHTS[int(np.argmin(losses))] == 0.0  # the lowest loss alone would drop the start: chance
    assert Calibration().fit_start(lucky, start, y).start_weight == 1.0
    clear = two(np.where(y == 1, 0.97, 0.03))
    assert Calibration().fit_start(clear, start, y).start_weight == 0.0


@pytest.mark.parametrize("copies", [1, 10])
def test_surer_on_the_easy_rows_is_not_enough_to_drop_the_start_on_a_few_rows(copies):
    """Issue 31, measured (IMDB reviews the start never saw, 100 train rows, 30 validation rows): the fine-tuned
    model was surer of the 27 rows both had right and as wrong on the same 3, a paired gain of 1.9 standard errors,
    and the start was dropped: 0.9216 on test against the start's 0.9326. Its validation log-loss is within one
    standard error of the fine-tuned one's, so the start keeps its share; on ten times the rows the same gain
    shows, and the fine-tuned model takes the share."""
    from textclf.models.ensemble import Calibration

    y = np.tile(np.r_[np.ones(15, int), np.zeros(15, int)], copies)
    two = lambda right: np.stack([np.where(y == 1, 1 - right, right), np.where(y == 1, right, 1 - right)], 1)  # noqa: E731
    wrong = np.tile(np.arange(30) % 10 == 0, copies)  # 3 rows of 30
    start = two(np.where(wrong, 0.35, 0.95))
    surer = two(np.where(wrong, 0.30, 0.999))
    share = Calibration().fit_start(surer, start, y).start_weight
    assert share == (1.0 if copies == 1 else 0.0)


def test_a_fine_tuned_model_averages_in_the_model_it_started_from_in_full(base, tmp_path, monkeypatch, caplog):
    """Issue 31: "kept the model it started from" kept only its LSTM. Where the start has a share, the saved model
    holds that model whole (START/: its LSTM, linear view and calibration) and predict, evaluate and the report
    give its weighted average with the fine-tuned model; with share 1, the start's answers exactly."""
    from dataclasses import replace

    from textclf.inference.classifier import Classifier
    from textclf.models.ensemble import Calibration

    def share(weight):
        return lambda self, own, p_start, y: replace(self, start_weight=weight, shortcut=0.0)

    df = make_reviews(200, seed=9, labels=("neg", "Pos"))  # sorted, "Pos" comes first: the start's other way round
    texts = list(make_reviews(40, seed=3)["text"])
    start = Classifier.load(base, bf16=False).predict_proba(texts)[:, ::-1]  # its neg, pos as this run's Pos, neg
    monkeypatch.setattr(Calibration, "fit_start", share(1.0))
    with caplog.at_level("INFO"):
        metrics, run = _finetune(tmp_path, base, df, "train.epochs=1", name="whole")
    assert "validation, the start model in full: accuracy" in caplog.text
    assert "the model: the start model unchanged" in caplog.text
    assert (run / "model" / "start" / "linear.json").is_file() == (base / "model" / "linear.json").is_file()
    assert np.allclose(Classifier.load(run, bf16=False).predict_proba(texts), start, atol=1e-6)
    assert metrics["validation"]["accuracy"] == metrics["validation"]["start_accuracy"]
    assert metrics["init_from"]["the_model"].startswith("the start model unchanged")
    clf = Classifier.load(run, bf16=False)
    predicted = [p.label for p in clf.predict(list(df["text"]))]
    evaluated = evaluate(str(run), str(tmp_path / "whole.csv"), split="test", bf16=False)
    assert evaluated["accuracy"] == np.mean(np.array(predicted) == df["label"])
    pytest.importorskip("captum")
    from textclf.inference.explain import Explainer

    # explained as it answers: the start's words, not those of the fine-tuned LSTM that has no say
    for views in ("lstm", "linear"):  # its own views have no say: not shown as if they were the model's
        with pytest.raises(TextclfError, match=f"fine-tuned from alone .*pass .*start with views={views}"):
            Classifier.load(run, views=views)
    e = Explainer(clf, steps=8).explain(texts[0])
    of_start = Explainer(Classifier.load(base, bf16=False), steps=8).explain(texts[0])
    assert e.start_weight == 1 and e.label.lower() == of_start.label.lower() and e.tokens == of_start.tokens
    assert np.allclose(e.weights, of_start.weights, atol=1e-5) and e.answered_by == of_start.answered_by

    monkeypatch.setattr(Calibration, "fit_start", share(0.5))
    metrics, run = _finetune(tmp_path, base, df, "train.epochs=1", name="half")
    own = Classifier.load(run, bf16=False, views="lstm")  # the fine-tuned model alone, as its calibration has it
    own.artifact.meta["calibration"]["start_weight"] = 0.0
    own.artifact.views = "both"
    alone = own.predict_proba(texts)
    assert np.allclose(Classifier.load(run, bf16=False).predict_proba(texts), 0.5 * start + 0.5 * alone, atol=1e-5)
    assert {"start_accuracy", "fine_tuned_accuracy", "start_loss", "fine_tuned_loss"} <= set(metrics["validation"])
    explainer = Explainer(Classifier.load(run, bf16=False), steps=8)
    e = explainer.explain(texts[0])
    k, tokens = explainer.clf.labels.index(e.label), explainer.clf.artifact.tokenizer(texts[0])
    halves = [x._part(tokens, row, 0.5).full(len(tokens))
              for x, row in ((explainer, k), (explainer._start(), explainer.clf.artifact.start_rows[k]))]
    assert e.start_weight == 0.5 and e.tokens == tokens and np.allclose(e.weights, 0.5 * halves[0] + 0.5 * halves[1])

    pytest.importorskip("onnxruntime")
    from textclf.inference.export import export_onnx

    with pytest.raises(TextclfError, match="start/"):  # one graph holds one model: said, not half exported
        export_onnx(run)

    monkeypatch.setattr(Calibration, "fit_start", share(0.0))
    _, run = _finetune(tmp_path, base, df, "train.epochs=1", name="alone")
    assert not (run / "model" / "start").exists()  # no share: a plain model
