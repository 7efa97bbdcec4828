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
from textclf.inference.export import TOLERANCE, check_parity, random_batch, to_onnx
from textclf.models.ensemble import Calibration
from textclf.models.lstm import LSTMClassifier, ModelArgs
from textclf.text.batching import collate

from .conftest import lstm
from .test_model import ARCHS


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
    assert [o.name for o in session.get_outputs()] == ["logits", "probabilities"]

    # the documented recipe: tokenise and pad on the Python side, run the graph
    clf = Classifier.load(tiny_run, "cpu", bf16=False)  # the graph is float32
    texts = ["a superb and brilliant film", "awful", "", "the plot was dull, the music bland and the cast awful"]
    batch = collate([(ids, -1, i) for i, ids in enumerate(clf.encode(texts))])
    (probs,) = session.run(["probabilities"], {"tokens": batch.tokens.numpy(), "lengths": batch.lengths.numpy()})
    np.testing.assert_allclose(probs, clf.predict_encoded(clf.encode(texts)), atol=1e-5)  # the LSTM's
    # ... and what the model says, once averaged with its linear view and temperature-scaled
    art = clf.artifact
    cal = Calibration.from_dict(json.loads(meta["calibration"]))
    assert cal == art.calibration
    tokens = [art.tokenizer(t) for t in texts]
    linear = art.linear.predict_proba(tokens) if art.linear is not None else None
    np.testing.assert_allclose(cal.apply(probs, linear), clf.predict_proba(texts), atol=1e-5)


def test_export_defaults_to_the_model_folder(tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    assert main(["export", str(run)]) == 0
    assert (run / "model" / "model.onnx").is_file()


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
