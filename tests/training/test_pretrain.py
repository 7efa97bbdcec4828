"""Pretraining's corpora (training/pretrain.py): which texts word2vec and the language model may read."""

from textclf.config import load_config
from textclf.training.prepare import load_data, prepare
from textclf.training.pretrain import pretrain_corpora

from ..conftest import TINY, make_reviews


def test_corpora_are_train_plus_the_users_unlabelled_texts_never_test(tmp_path):
    make_reviews(200, seed=1).to_csv(tmp_path / "train.csv", index=False)
    make_reviews(60, seed=2).to_csv(tmp_path / "test.csv", index=False)
    make_reviews(80, seed=3)[["text"]].to_csv(tmp_path / "unsup.csv", index=False)
    base = [f"data.train={tmp_path / 'train.csv'}", f"data.test={tmp_path / 'test.csv'}", *TINY]
    cfg = load_config(None, [*base, f"data.unlabelled={tmp_path / 'unsup.csv'}"])
    data = prepare(cfg, load_data(cfg))
    corpora = pretrain_corpora(cfg, data)
    assert [len(c) for c in corpora] == [len(data.datasets["train"]), 80]
    cfg = load_config(None, [*base, f"data.unlabelled={tmp_path / 'unsup.csv'}", "pretrain.unlabelled=false"])
    assert [len(c) for c in pretrain_corpora(cfg, data)] == [len(data.datasets["train"])]
