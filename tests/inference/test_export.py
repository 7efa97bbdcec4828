"""ONNX export: onnxruntime agrees with eager PyTorch on random batch sizes and lengths (≤ 1e-4)."""

import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from textclf.cli import main
from textclf.inference.classifier import Classifier
from textclf.inference.export import TOLERANCE, OnnxModel, check_parity, random_batch, to_onnx
from textclf.models.ensemble import Calibration
from textclf.models.lstm import LSTMClassifier, ModelArgs
from textclf.text.batching import collate

from ..conftest import lstm
from ..models.test_lstm import ARCHS


@pytest.mark.parametrize("arch", ARCHS)
def test_onnx_matches_pytorch_on_random_batches(arch):
    layers, bi, pooling, classes = arch
    torch.manual_seed(0)
    model = LSTMClassifier(ModelArgs(300, classes, 24, 20, layers, bi, 0.2, 0.1, pooling)).eval()
    data = to_onnx(model)
    assert check_parity(data, model, trials=15, max_batch=9, max_len=50, seed=1) <= TOLERANCE

    # and against the packed (cuDNN-style) path, the reference semantics
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    model.lstm_impl = "packed"
    tokens, lengths = random_batch(300, 7, 50, torch.Generator().manual_seed(2))
    with torch.no_grad():
        packed = model(tokens, lengths).numpy()
    logits = session.run(["logits"], {"tokens": tokens.numpy(), "lengths": lengths.numpy()})[0]
    assert np.abs(logits - packed).max() <= TOLERANCE


def test_onnx_matches_pytorch_at_imdb_width_and_length():
    """The default recipe's widths (128/128, bidirectional) at up to 400 tokens: long recurrences agree too."""
    torch.manual_seed(0)
    model = LSTMClassifier(ModelArgs(2_000, 2, 128, 128, 1, True, 0.3, 0.1, "max")).eval()
    assert check_parity(to_onnx(model), model, trials=4, max_batch=3, max_len=400, seed=3) <= TOLERANCE


def test_export_command_writes_a_checked_model_with_metadata(tiny_run, tmp_path, capsys):
    out = tmp_path / "clf.onnx"
    assert main(["export", str(tiny_run), "--format", "onnx", "--output", str(out)]) == 0
    assert "max abs difference" in capsys.readouterr().out
    proto = onnx.load(str(out))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["labels"]) == ["neg", "pos"]
    assert json.loads(meta["tokenizer"])["kind"] == "regex"

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("tokens", ["batch", "seq"]), ("lengths", ["batch"])]
    assert [o.name for o in session.get_outputs()] == ["probabilities", "logits", "lstm_probabilities"]

    # tokenise and pad on the Python side, run the graph: the model's probabilities, and the LSTM's own
    clf = Classifier.load(tiny_run, "cpu", bf16=False)  # the graph is float32
    texts = ["a superb and brilliant film", "awful", "", "the plot was dull, the music bland and the cast awful"]
    batch = collate([(ids, -1, i) for i, ids in enumerate(clf.encode(texts))])
    probs, lstm_probs = session.run(["probabilities", "lstm_probabilities"],
                                    {"tokens": batch.tokens.numpy(), "lengths": batch.lengths.numpy()})
    np.testing.assert_allclose(lstm_probs, clf.predict_encoded(clf.encode(texts)), atol=1e-5)  # the LSTM's
    said = [i for i, t in enumerate(texts) if t]  # the Python API refuses an empty text; the graph takes it
    np.testing.assert_allclose(probs[said], clf.predict_proba([texts[i] for i in said]), atol=1e-5)  # calibrated
    assert np.isfinite(probs).all()
    assert Calibration.from_dict(json.loads(meta["calibration"])) == clf.artifact.calibration
    said = [texts[i] for i in said]
    np.testing.assert_allclose(OnnxModel(out).predict_proba(said), clf.predict_proba(said), atol=1e-5)
    with pytest.raises(TypeError, match="not one string"):
        OnnxModel(out).predict_proba("awful")  # as Classifier: not three rows, one a character


def test_the_exported_graph_is_the_whole_model_with_its_linear_view_and_shortcut(tiny_run, tmp_path, capsys):
    """Issue 23: the export was the LSTM alone (an IMDB model scored like its BiLSTM, 0.9267 against 0.9312).
    The graph holds the linear view (TfIdfVectorizer over its unit ids), the calibration and the shortcut, and
    gives Classifier's probabilities; --views and --no-shortcut export the model as they would answer."""
    from ..conftest import make_reviews, save_classifier, with_shortcut

    for shortcut in (0.9, 0.0):
        path = save_classifier(with_shortcut(Classifier.load(tiny_run, "cpu"), shortcut), tmp_path / f"m{shortcut}")
        out = tmp_path / f"m{shortcut}.onnx"
        assert main(["export", str(path), "--output", str(out)]) == 0
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["tokens", "lengths", "linear_tokens"]
        texts = make_reviews(40, seed=12).text.tolist() + ["superb brilliant wonderful", "", "zzqx"]  # "": unchecked
        clf = Classifier.load(path, "cpu", bf16=False)
        want = clf.probabilities(texts)
        got = OnnxModel(out).probabilities(texts)
        np.testing.assert_allclose(got, want, atol=TOLERANCE)
        lstm_alone = Classifier.load(path, "cpu", bf16=False, views="lstm").probabilities(texts)
        assert np.abs(got - lstm_alone).max() > 0.01  # not the LSTM alone
    path = tmp_path / "m0.9"  # the model with a shortcut, exported as asked
    for flags, kwargs in (([], {}), (["--no-shortcut"], {"shortcut": False}), (["--views", "linear"],
                                                                                 {"views": "linear"})):
        out = tmp_path / f"x{len(flags)}{flags[-1] if flags else ''}.onnx"
        assert main(["export", str(path), "--output", str(out), *flags]) == 0
        want = Classifier.load(path, "cpu", bf16=False, **kwargs).probabilities(texts)
        np.testing.assert_allclose(OnnxModel(out).probabilities(texts), want, atol=TOLERANCE)
    capsys.readouterr()


def test_export_of_the_linear_view_at_temperature_1(tiny_run, tmp_path, capsys):
    """Issue 30 item 11: at a linear temperature of 1 (saved values are rounded: near 1 too), --views linear
    renamed the linear view's own output, which linear_probabilities still read: onnxruntime refused the graph."""
    import dataclasses

    from ..conftest import make_reviews, save_classifier, with_shortcut

    clf = with_shortcut(Classifier.load(tiny_run, "cpu"))
    meta = {**clf.artifact.meta, "calibration": {"weight": 0.5, "shortcut": 0.9, "linear_temperature": 1.0}}
    path = save_classifier(Classifier(dataclasses.replace(clf.artifact, meta=meta), clf.device), tmp_path / "m")
    texts = make_reviews(20, seed=3).text.tolist() + ["", "zzqx"]
    for views in ("linear", "both"):
        out = tmp_path / f"{views}.onnx"
        assert main(["export", str(path), "--output", str(out), "--views", views]) == 0, capsys.readouterr().err
        want = Classifier.load(path, "cpu", bf16=False, views=views).probabilities(texts)
        np.testing.assert_allclose(OnnxModel(out).probabilities(texts), want, atol=TOLERANCE)
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        assert [o.name for o in session.get_outputs()][0] == "probabilities"
        assert "linear_probabilities" in [o.name for o in session.get_outputs()]
    capsys.readouterr()


def test_sample_texts_reach_the_shortcut_and_the_lstm(tiny_run):
    from textclf.inference.export import sample_texts

    from ..conftest import with_shortcut

    clf = with_shortcut(Classifier.load(tiny_run, "cpu"))
    tokens = [clf.artifact.tokenizer(t) for t in sample_texts(clf.artifact)]
    sure = clf.artifact.calibration.sure(clf.artifact.linear.predict_proba(tokens))
    assert 0 < sure.sum() < len(tokens) and tokens[0] == []


def test_export_defaults_to_the_model_folder(tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    assert main(["export", str(run)]) == 0
    assert (run / "model" / "model.onnx").is_file()


def test_a_linear_view_of_the_characters_inside_words_is_refused_with_the_fix(tiny_run, tmp_path, capsys):
    """The graph's linear view counts n-grams of the view's word ids (TfIdfVectorizer); a view that reads the
    characters inside words too (tfidf_wordchar, chosen on small corpora) is refused in one line naming the way
    out, nothing written; the LSTM alone exports."""
    from ..conftest import save_classifier, with_shortcut

    path = save_classifier(with_shortcut(Classifier.load(tiny_run, "cpu"), kind="tfidf_wordchar"), tmp_path / "m")
    out = tmp_path / "m.onnx"
    assert main(["export", str(path), "--output", str(out)]) == 2
    assert "--views lstm" in capsys.readouterr().err and not out.exists()
    assert main(["export", str(path), "--output", str(out), "--views", "lstm"]) == 0 and out.exists()
    capsys.readouterr()


def test_export_errors(tmp_path, tiny_run, capsys):
    assert main(["export", str(tmp_path / "nothing")]) == 2
    assert "model folder not found" in capsys.readouterr().err
    assert main(["export", str(tiny_run), "--output", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", str(tiny_run), "--format", "tflite"])


def test_export_leaves_the_model_in_eval_mode():
    model = lstm(50, 2).eval()
    to_onnx(model)
    assert not any(m.training for m in model.modules())
