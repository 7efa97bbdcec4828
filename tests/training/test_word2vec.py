import logging

import numpy as np
import pandas as pd

from textclf.config import load_config
from textclf.text.tokenizer import Tokenizer
from textclf.text.tokens import tokenize_cached
from textclf.text.vocab import Vocab
from textclf.training.pipeline import train
from textclf.training.word2vec import Settings, word2vec

from ..conftest import TINY, make_reviews


def _corpus(tmp_path):
    texts = make_reviews(200, seed=3).text.tolist()
    return tokenize_cached(texts, Tokenizer("regex"), tmp_path)


def test_word2vec_covers_the_vocab_is_seeded_and_cached(tmp_path):
    tok = _corpus(tmp_path)
    vocab = Vocab(["<pad>", "<unk>", "great", "awful", "film", "never-seen-token"])
    vectors, found = word2vec([tok], vocab, Settings(8, epochs=2, seed=1), tmp_path)
    assert vectors.shape == (6, 8) and vectors.dtype == np.float32
    assert found.tolist() == [False, False, True, True, True, False]
    assert not vectors[~found].any() and abs(vectors[found].std() - 1) < 1e-5
    assert len(list(tmp_path.glob("word2vec-*.npz"))) == 1
    again, _ = word2vec([tok], vocab, Settings(8, epochs=2, seed=1), tmp_path)  # from the cache
    np.testing.assert_array_equal(again, vectors)
    fresh, _ = word2vec([tok], vocab, Settings(8, epochs=2, seed=1), tmp_path / "other")  # recomputed
    np.testing.assert_array_equal(fresh, vectors)


def test_training_with_word2vec_uses_the_unlabelled_split(tmp_path, tiny_dir, caplog):
    pd.DataFrame({"text": make_reviews(300, seed=4).text}).to_csv(tiny_dir / "unsup.csv", index=False)
    caplog.set_level(logging.INFO)
    cfg = load_config(None, [f"data.path={tiny_dir}", f"run_dir={tmp_path / 'run'}", *TINY,
                             "pretrain.word2vec=true", "pretrain.epochs=2"])
    metrics = train(cfg)
    assert "pretraining word vectors on 280 texts + 300 texts" in caplog.text
    assert metrics["test"]["accuracy"] >= 0.9


def test_small_corpora_get_more_word2vec_passes():
    from textclf.training.pretrain import word2vec_epochs

    assert word2vec_epochs(5, 5_000_000, 19_600_000) == 5  # IMDB's train + unlabelled reviews: as written
    assert word2vec_epochs(5, 5_000_000, 240_000) == 21  # 11.7k airline tweets
    assert word2vec_epochs(5, 0, 10) == 5



def test_the_recipe_caps_the_passes_a_small_corpus_gets():
    """pretrain.max_epochs bounds the min_tokens rule: 2,000 tweets (41k tokens) get 30 passes, not 123; all 11.7k
    airline tweets keep their 21; 0 lifts the cap; a cap below pretrain.epochs never lowers it."""
    from textclf.config import Config
    from textclf.training.pretrain import word2vec_epochs

    p = Config().pretrain
    assert p.max_epochs == 30
    assert word2vec_epochs(p.epochs, p.min_tokens, 41_000, p.max_epochs) == 30
    assert word2vec_epochs(p.epochs, p.min_tokens, 240_000, p.max_epochs) == 21
    assert word2vec_epochs(p.epochs, p.min_tokens, 41_000, 0) == 122
    assert word2vec_epochs(5, p.min_tokens, 41_000, 3) == 5


def test_a_large_corpus_reads_three_passes_and_the_rule_keeps_smaller_ones_where_they_were():
    """pretrain.epochs=3 (IMDB's 19.6M tokens: 3 passes, not 5); every corpus under 1.25M tokens is raised by
    min_tokens to at least what it read when the recipe said 5: all 37,958 Chinese training reviews (1.19M
    tokens) still 5, all airline tweets still 21."""
    from textclf.config import Config
    from textclf.training.pretrain import word2vec_epochs

    p = Config().pretrain
    passes = lambda tokens: word2vec_epochs(p.epochs, p.min_tokens, tokens, p.max_epochs)  # noqa: E731
    assert p.epochs == 3 and passes(19_600_000) == 3
    assert passes(1_185_724) == 5 and passes(240_217) == 21
    for tokens in range(100_000, 1_250_000, 997):  # as under the 5-pass recipe, at every size below 5M / 4
        assert passes(tokens) == word2vec_epochs(5, p.min_tokens, tokens, p.max_epochs)


def test_word2vec_threads_auto_one_on_the_cpu_up_to_eight_on_a_gpu_machine_for_a_large_corpus(monkeypatch):
    import torch

    from textclf.training import pretrain

    cpu, gpu, large = torch.device("cpu"), torch.device("cuda"), pretrain.PARALLEL_TOKENS
    for cores, want in ((2, 1), (16, 8), (6, 5), (1, 1)):
        monkeypatch.setattr(pretrain, "cores", lambda cores=cores: cores)
        assert pretrain.word2vec_workers(0, cpu, large) == 1  # the seed's own vectors: CPU runs repeat
        assert pretrain.word2vec_workers(0, gpu, large) == want  # a core left for the linear view's process
        assert pretrain.word2vec_workers(0, gpu, large - 1) == 1  # read in seconds; threads' races cost accuracy
        assert pretrain.word2vec_workers(3, cpu, 10) == pretrain.word2vec_workers(3, gpu, 10) == 3  # asked for


def test_vectors_of_several_threads_are_cached_apart_and_one_thread_keeps_its_key(tmp_path, caplog):
    from textclf.training.word2vec import cache_path

    tok = _corpus(tmp_path)
    vocab = Vocab(["<pad>", "<unk>", "great", "awful", "film"])
    one, two = Settings(8, 2, 5, 1), Settings(8, 2, 5, 1, workers=2)
    import hashlib

    from textclf.training.word2vec import CACHE_VERSION

    before = hashlib.sha256(repr((CACHE_VERSION, [tok.key], vocab.itos, 8, 2, 5, 1)).encode()).hexdigest()[:32]
    assert cache_path([tok], vocab, one, tmp_path).name == f"word2vec-{before}.npz"  # the key it always had
    assert cache_path([tok], vocab, two, tmp_path) != cache_path([tok], vocab, one, tmp_path)
    caplog.set_level(logging.INFO)
    vectors, found = word2vec([tok], vocab, Settings(8, 2, 5, 1, workers=2), tmp_path)
    assert found[2:].all() and abs(vectors[found].std() - 1) < 1e-5
    assert "2 threads" in caplog.text
    assert cache_path([tok], vocab, two, tmp_path).is_file() and not cache_path([tok], vocab, one, tmp_path).is_file()
