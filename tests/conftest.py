"""Shared fixtures: tiny synthetic review data the tests write themselves (never a download)."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import torch

# Tiny models gain nothing from intra-op threads, and on a busy machine OpenMP's spinning threads make
# them ~7x slower. Subprocesses inherit the setting, so they sum floats in the same order as pytest.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)
# Tests never download: with these, datasets and huggingface_hub fail at once instead of trying the network
# (read when they are imported, so set before any test imports them).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HOME"] = os.path.join(tempfile.gettempdir(), "textclf-tests-hf")  # their caches; no user token
os.environ.pop("HF_TOKEN", None)

REPO = Path(__file__).resolve().parent.parent
POSITIVE = ["great", "wonderful", "excellent", "loved", "superb", "moving", "brilliant", "delightful"]
NEGATIVE = ["awful", "boring", "terrible", "hated", "worst", "dull", "painful", "bland"]
FILLER = ["the", "film", "movie", "plot", "actor", "was", "a", "and", "story", "scene", "it", "of", "this",
          "director", "music", "ending", "cast", "really", "quite", "very"]


def _words(rng: random.Random, y: int, filler: list[str], most: int, positive: list[str],
           negative: list[str]) -> list[str]:
    """4 to `most` filler words with 2-4 words of class `y` among them."""
    words = [rng.choice(filler) for _ in range(rng.randint(4, most))]
    for _ in range(rng.randint(2, 4)):
        words.insert(rng.randrange(len(words) + 1), rng.choice(positive if y else negative))
    return words


def make_reviews(n: int, seed: int = 0, labels: tuple[str, str] = ("neg", "pos")) -> pd.DataFrame:
    """n short reviews, half per class; the class shows in 2-4 sentiment words among filler."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        y = i % 2
        words = _words(rng, y, FILLER, 30, POSITIVE, NEGATIVE)
        rows.append({"text": " ".join(words).capitalize() + ".<br /><br />", "label": labels[y]})
    rng.shuffle(rows)
    return pd.DataFrame(rows)


ZH_POSITIVE = ["很好", "喜欢", "满意", "不错", "推荐", "划算", "漂亮", "舒服"]
ZH_NEGATIVE = ["很差", "失望", "退货", "难用", "垃圾", "后悔", "破损", "太慢"]
ZH_FILLER = ["这个", "东西", "质量", "物流", "包装", "价格", "手机", "衣服", "收到", "了", "的", "我", "买", "给",
             "朋友", "客服", "颜色", "尺码", "真的", "还是"]


def make_zh_reviews(n: int, seed: int = 0, labels: tuple[str, str] = ("0", "1")) -> pd.DataFrame:
    """n short Chinese shop reviews, written without spaces as Chinese is, half per class; the class shows in
    2-4 sentiment words among filler, clauses split by Chinese commas."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        y = i % 2
        words = _words(rng, y, ZH_FILLER, 20, ZH_POSITIVE, ZH_NEGATIVE)
        for cut in sorted(rng.sample(range(1, len(words)), k=min(2, len(words) - 1)), reverse=True):
            words.insert(cut, "，")
        rows.append({"review": "".join(words) + "。", "label": labels[y]})
    rng.shuffle(rows)
    return pd.DataFrame(rows)


def write_tiny_data(folder: Path, train: int = 400, test: int = 200) -> Path:
    """A dataset folder: train.csv and test.csv of `make_reviews` rows (columns text,label; neg/pos)."""
    folder.mkdir(parents=True, exist_ok=True)
    make_reviews(train, seed=1).to_csv(folder / "train.csv", index=False)
    make_reviews(test, seed=2).to_csv(folder / "test.csv", index=False)
    return folder


def lstm(vocab_size: int, num_classes: int = 2, embedding_dim: int = 8, hidden_size: int = 8, **arch):
    """An LSTMClassifier at test sizes; the rest of its architecture is the recipe's (model.* defaults)."""
    from dataclasses import asdict

    from textclf.config import ModelConfig
    from textclf.models.lstm import build_model

    return build_model("lstm", {**asdict(ModelConfig()), "vocab_size": vocab_size, "num_classes": num_classes,
                                "embedding_dim": embedding_dim, "hidden_size": hidden_size, **arch})


def save_random_model(path: Path, labels: tuple[str, ...] = ("neg", "pos")) -> Path:
    """An untrained model folder: enough to start from, or to predict with, when the numbers do not matter."""
    from collections import Counter

    from textclf.models.artifact import Artifact, save_model
    from textclf.text.tokenizer import Tokenizer
    from textclf.text.vocab import LabelVocab, Vocab

    vocab = Vocab.build(Counter({"good": 2, "bad": 2, "film": 2}))
    model = lstm(len(vocab), len(labels))
    return save_model(path, Artifact(model, vocab, LabelVocab(list(labels)), Tokenizer("regex"), 50, "head",
                                     {"data": {"text_column": "review", "label_column": "stars"}}))


def with_shortcut(clf, shortcut: float = 0.9, kind: str = "tfidf"):
    """`clf` (a Classifier of the tiny run) made into a model with a shortcut: a linear view of `kind` fitted on
    other tiny reviews, averaged half and half, that answers alone where it is `shortcut` sure (at temperature
    0.5)."""
    import dataclasses

    from textclf.inference.classifier import Classifier
    from textclf.models.linear import LinearModel

    train = make_reviews(300, seed=7)
    linear = LinearModel.fit([clf.artifact.tokenizer(t) for t in train.text], (train.label == "pos").to_numpy(int), 2,
                             kind)
    meta = {**clf.artifact.meta, "calibration": {"weight": 0.5, "shortcut": shortcut, "linear_temperature": 0.5}}
    return Classifier(dataclasses.replace(clf.artifact, linear=linear, meta=meta), clf.device)


def save_classifier(clf, path: Path) -> Path:
    """A model folder holding `clf`'s model, linear view and calibration (e.g. one made by `with_shortcut`)."""
    from textclf.models.artifact import Artifact, save_model

    a = clf.artifact
    extra = {k: v for k, v in a.meta.items() if k in ("data", "calibration", "train_config")}
    return save_model(path, Artifact(a.model, a.vocab, a.labels, a.tokenizer, a.max_length, a.truncate, extra,
                                     a.linear))


TINY = [  # a model that trains on the tiny data in a few seconds on CPU
    "tokenizer.kind=regex", "model.embedding_dim=16", "model.hidden_size=16", "vocab.min_freq=1",
    "train.epochs=4", "train.batch_size=16", "train.lr=0.01", "train.patience=10", "train.warmup_ratio=0.0",
    "train.amp_cpu=false",  # float32 whatever the CPU (the default, auto, is bf16 where native): same models everywhere
    "train.min_steps=0", "train.min_epoch_steps=0", "pretrain.min_tokens=0",  # as written, not lengthened
    "train.adversarial_min_tokens=0",  # nor shortened: the recipe's adversarial pass, as the tiny models had it
    "pretrain.epochs=5",  # word2vec's passes as the tiny models were made with: the recipe's 3 are for large corpora
]


def wait_until_serving(proc, port: int, host: str = "127.0.0.1", timeout: float = 120) -> None:
    """Until the server `proc` started answers /health on `port` (a failed assertion if it exits or times out)."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
        try:
            httpx.get(f"http://{host}:{port}/health", timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.1)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep the token cache (and any ./data lookups) out of the developer's home and cwd."""
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("TEXTCLF_DATA", raising=False)


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    """A dataset folder: train.csv (400 rows), test.csv (200 rows), columns text,label (neg/pos)."""
    return write_tiny_data(tmp_path / "tiny")


@pytest.fixture
def tiny_overrides(tmp_path: Path, tiny_dir: Path) -> list[str]:
    return [f"data.path={tiny_dir}", f"run_dir={tmp_path / 'run'}", *TINY]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """One tiny trained run shared by the tests that only read it (export, explain, serve): trained once. Its
    model is the LSTM alone (`model.linear=false`): on data this easy both views are perfect on validation, and
    which share the calibration then picks is chance; the tests that need a linear view add one (`with_shortcut`)."""
    from textclf.config import load_config
    from textclf.training.pipeline import train

    folder = write_tiny_data(tmp_path_factory.mktemp("tiny_run"))
    train(load_config(None, [f"data.path={folder}", f"run_dir={folder / 'run'}",
                             f"data.cache_dir={folder / 'cache'}", "model.linear=false", *TINY]))
    return folder / "run"
