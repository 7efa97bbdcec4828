"""Text in the language it is written in: the tokenizer picked from the training texts (Chinese words, the
characters of other scripts without spaces, words with their combining marks), saved with the model and used
by everything that reads it; and the warning when tokens do not fit the texts."""

import hashlib
import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from textclf.cli import main
from textclf.config import load_config
from textclf.inference.classifier import Classifier
from textclf.models.artifact import load_model
from textclf.text import tokenizer as tokenizer_module
from textclf.text.tokenizer import _REGEX_TOKEN, Tokenizer, _marked, detect, jieba_identity
from textclf.text.tokens import cache_key
from textclf.training.pipeline import train

from ..conftest import TINY, ZH_POSITIVE, make_reviews, make_zh_reviews

ZH = [f"{w}" for w in make_zh_reviews(30, seed=3).review]


@pytest.mark.parametrize(("texts", "kind"), [
    (ZH, "zh"),
    (["この映画はとても良かったです。", "最悪の映画でした、時間の無駄。", "また見たいと思います"] * 5, "char"),
    (["หนังเรื่องนี้ดีมาก", "ไม่ชอบเลย น่าเบื่อมาก"] * 5, "char"),
    (make_reviews(40).text.tolist() + ZH[:3], "regex"),  # a few Chinese texts among English ones
    (["😀😀😀", "👍", "🙂🙃"], "regex"),  # emoji only: no letters at all
    (["123", "4.5 / 10", "2024-11-30"], "regex"),  # numbers only
    (["यह फिल्म बहुत अच्छी है", "बेकार फिल्म"], "regex"),  # Hindi is written with spaces
    (["großartig, échte Freude", "muy buena película"], "regex"),
    ([], "regex"),
])
def test_detection_picks_the_tokens_that_fit_the_script(texts, kind):
    assert detect(texts)[0] == kind


def test_words_keep_their_combining_marks_and_char_splits_japanese():
    regex = Tokenizer("regex")
    assert regex("यह फिल्म बहुत अच्छी है") == ["यह", "फिल्म", "बहुत", "अच्छी", "है"]  # was यह फ ि ल ् म ...
    assert regex("مُمتاز جِداً") == ["مُمتاز", "جِداً"]
    assert regex("großartig, échte!") == ["großartig", ",", "échte", "!"]
    assert regex("I love it❤️ Tampa") == ["i", "love", "it", "❤", "\ufe0f", "tampa"]  # an emoji's selector apart
    char = Tokenizer("char")
    assert char("หนังดีมาก") == ["ห", "นั", "ง", "ดี", "ม", "า", "ก"]  # each character with its marks
    assert char("この映画はiPhone 12で見た。") == ["こ", "の", "映", "画", "は", "iphone", "12", "で", "見", "た", "。"]


def test_english_tokens_are_those_of_the_plain_pattern():
    """Where a text holds no combining mark, the mark-aware pattern gives exactly the old tokens (the fast
    path takes the old pattern there; on all 114,640 IMDB and airline texts one differs: a dotted capital İ)."""
    texts = [*make_reviews(50, seed=4).text, "I didn't like it... Costner's worst! DON'T—it’s dull!!!",
             "ÆON’s 90's café"]
    for text in texts:
        assert _marked("regex").findall(text.lower()) == _REGEX_TOKEN.findall(text.lower())
        assert Tokenizer("regex")(text) == _REGEX_TOKEN.findall(text.lower().replace("<br /><br />", "  "))


def test_chinese_words_come_from_jieba_with_nothing_fetched(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("tests never download")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    tokens = Tokenizer("zh")("商务大床房，房间很大，床有2M宽，整体感觉经济实惠不错! iPhone 很好用")
    assert tokens[:6] == ["商务", "大床", "房", "，", "房间", "很大"] and "iphone" in tokens and " " not in tokens


def test_jieba_words_added_in_the_users_process_do_not_change_textclf_tokens(monkeypatch, tmp_path):
    """Issue 30 item 6: jieba.add_word / load_userdict anywhere in the process changed the words textclf trained
    and predicted on, without trace."""
    import jieba

    text = "这家酒店的服务很好，房间干净"
    before = Tokenizer("zh")(text)
    jieba.dt.check_initialized()
    monkeypatch.setattr(jieba.dt, "FREQ", dict(jieba.dt.FREQ))  # jieba's global words, as they were after the test
    monkeypatch.setattr(jieba.dt, "total", jieba.dt.total)
    jieba.add_word("服务很好")
    (tmp_path / "user.txt").write_text("房间干净 100000\n", encoding="utf-8")
    jieba.load_userdict(str(tmp_path / "user.txt"))
    assert {"服务很好", "房间干净"} <= set(jieba.lcut(text))  # the user's jieba splits otherwise now
    assert Tokenizer("zh")(text) == before


def test_chinese_tokens_are_cached_by_jieba_and_its_dictionary(monkeypatch):
    import jieba

    shipped = hashlib.sha256((Path(jieba.__file__).parent / "dict.txt").read_bytes()).hexdigest()
    assert jieba_identity() == {"version": jieba.__version__, "dictionary": f"sha256:{shipped}"}
    key = cache_key(ZH[:5], Tokenizer("zh"))
    monkeypatch.setattr(tokenizer_module, "jieba_identity", lambda: {"version": "0.39", "dictionary": "sha256:0"})
    assert cache_key(ZH[:5], Tokenizer("zh")) != key


def _zh_run(tmp_path, *extra, rows=600):
    make_zh_reviews(rows, seed=1).to_csv(tmp_path / "train.csv", index=False)
    make_zh_reviews(200, seed=2).to_csv(tmp_path / "test.csv", index=False)
    args = [f"data.train={tmp_path / 'train.csv'}", f"data.test={tmp_path / 'test.csv'}", "data.text_column=review",
            f"run_dir={tmp_path / 'run'}", *[o for o in TINY if not o.startswith("tokenizer.kind")], *extra]
    return train(load_config(None, args)), tmp_path / "run"


@pytest.fixture(scope="module")
def zh_run(tmp_path_factory):
    return _zh_run(tmp_path_factory.mktemp("zh"))


def test_a_chinese_model_trains_on_words_and_reads_them_everywhere(zh_run, tmp_path, capsys):
    """The plain command on Chinese reviews: jieba's words, chosen from the texts and saved with the model;
    predict, evaluate, explain and export tokenise as training did."""
    metrics, run = zh_run
    art = load_model(run)
    assert art.tokenizer == Tokenizer("zh")
    assert len(set(ZH_POSITIVE) & set(art.vocab.itos)) >= 6 and metrics["test"]["accuracy"] >= 0.9  # words, not clauses
    clf = Classifier.load(run, "cpu")
    text = "这个手机很好，我很满意，推荐"
    assert clf.predict([text])[0].label == "1"
    assert main(["evaluate", str(run), "--data", str(run.parent / "test.csv"), "--output",
                 str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    capsys.readouterr()
    assert main(["explain", str(run), text, "--format", "json"]) == 0
    e = json.loads(capsys.readouterr().out)
    assert e["tokens"] == Tokenizer("zh")(text) and e["spaced"] is False
    weights = dict(zip(e["tokens"], e["weights"], strict=True))
    assert max(weights, key=weights.get) in ZH_POSITIVE
    out = tmp_path / "zh.onnx"
    assert main(["export", str(run), "--output", str(out)]) == 0
    from textclf.inference.export import OnnxModel

    texts = make_zh_reviews(20, seed=5).review.tolist()
    np.testing.assert_allclose(OnnxModel(out).predict_proba(texts), clf.predict_proba(texts), atol=1e-4)


def test_a_chinese_model_records_its_jieba_and_says_when_another_reads_it(zh_run, tmp_path, caplog):
    _, run = zh_run
    meta = json.loads((run / "model" / "config.json").read_text(encoding="utf-8"))
    assert meta["tokenizer"] == {"kind": "zh", "lowercase": True, "version": 2, "jieba": jieba_identity()}
    shutil.copytree(run / "model", tmp_path / "model")
    meta["tokenizer"]["jieba"]["version"] = "0.39"
    (tmp_path / "model" / "config.json").write_text(json.dumps(meta), encoding="utf-8")
    with caplog.at_level("WARNING"):
        assert load_model(tmp_path / "model").tokenizer == Tokenizer("zh")
    assert "words came from jieba 0.39" in caplog.text and "pip install jieba==0.39" in caplog.text


def test_a_chinese_model_is_served_with_its_text(zh_run):
    from fastapi.testclient import TestClient

    from textclf.serving.app import create_app

    _, run = zh_run
    with TestClient(create_app(Classifier.load(run, "cpu"), explain_steps=5)) as client:
        text = "收到了，质量很差，后悔，退货"
        r = client.post("/predict", json={"text": text}).json()["predictions"][0]
        assert r["label"] == "0"
        e = client.post("/explain", json={"text": text}).json()
        assert "".join(e["tokens"]) == text.replace(" ", "") and e["spaced"] is False
        assert "spaced" in client.get("/").text  # the page joins unspaced tokens without spaces


def test_the_baseline_uses_the_models_tokens(zh_run, tmp_path):
    _, run = zh_run
    out = tmp_path / "base.json"
    assert main(["baseline", f"data.train={run.parent / 'train.csv'}", f"data.test={run.parent / 'test.csv'}",
                 "data.text_column=review", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert "character" in result["model"] and result["test"]["accuracy"] >= 0.9


def test_a_vocabulary_that_does_not_fit_is_a_warning(tmp_path, caplog):
    """Chinese split at spaces and punctuation: clause-long words that never repeat, said in one line."""
    with caplog.at_level("WARNING"):
        _zh_run(tmp_path, "tokenizer.kind=regex", "model.linear=false", rows=200)
    line = next(r.getMessage() for r in caplog.records if "does not fit these texts" in r.getMessage())
    assert "tokenizer.kind=regex" in line and "zh" in line


def test_an_english_model_fine_tuned_on_chinese_says_its_vocabulary_does_not_cover_them(tiny_run, tmp_path, caplog):
    make_zh_reviews(200, seed=1).to_csv(tmp_path / "train.csv", index=False)
    with caplog.at_level("WARNING"):
        metrics = train(load_config(None, [f"init_from={tiny_run}", f"data.train={tmp_path / 'train.csv'}",
                                           "data.text_column=review", f"run_dir={tmp_path / 'run'}", *TINY]))
    assert "look like tokenizer.kind=zh" in caplog.text
    assert metrics["init_from"]["oov_rate"]["train"] > 0.5 and "unknown to the pretrained vocab" in caplog.text
    assert metrics["init_from"]["head"] == "new"  # its scores cannot tell the labels apart: no head kept on noise
