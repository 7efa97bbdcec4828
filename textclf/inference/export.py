"""ONNX export of a saved model: padded token ids + lengths in, logits + probabilities out.

The graph holds the network only. Tokenising and the vocabulary stay on the Python side
(`Classifier.encode`), as they do for the PyTorch model::

    inputs   tokens         int64 [batch, seq]  vocab ids, right-padded with <pad>=0
             lengths        int64 [batch]       real tokens per row (0 is allowed: an empty text)
    outputs  logits         float [batch]       binary: the log-odds of labels[1]
                            float [batch, C]    C > 2 classes
             probabilities  float [batch, C]    rows sum to 1, columns in `labels` order

The model's metadata (`labels`, `max_length`, `truncate`, `tokenizer`) is stored in the ONNX file, with
`calibration` (JSON): the probabilities out of the graph are the LSTM's. A textclf model temperature-scales
them and, when `calibration["weight"]` < 1, averages them with its linear view, as
`Calibration.from_dict(calibration).apply(probs, LinearModel.load(MODEL_DIR).predict_proba(token_lists))`
does (textclf.models.ensemble, textclf.models.linear); `Classifier.predict_proba` is that whole path.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..errors import TextclfError
from ..files import atomic_open
from ..models.artifact import Artifact, load_model

INPUTS, OUTPUTS = ("tokens", "lengths"), ("logits", "probabilities")
OPSET = 17
TOLERANCE = 1e-4


class _WithProbabilities(nn.Module):
    """The classifier plus its probability head, so ONNX users need no sigmoid/softmax of their own."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(tokens, lengths)
        return logits, self.model.probabilities(logits)


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise TextclfError(f"ONNX export needs the {module} package: pip install 'textclf[onnx]'") from None


def random_batch(vocab_size: int, batch: int, max_len: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded random ids and lengths in [0, max_len] (0 = an empty text, as `collate` makes it)."""
    lengths = torch.randint(0, max_len + 1, (batch,), generator=gen)
    tokens = torch.randint(2, vocab_size, (batch, max(int(lengths.max()), 1)), generator=gen)
    tokens[torch.arange(tokens.size(1)) >= lengths.unsqueeze(1)] = 0
    return tokens, lengths


def to_onnx(model: nn.Module, opset: int = OPSET) -> bytes:
    """Serialise `model` (eval mode, CPU) with dynamic batch and sequence axes.

    The TorchScript exporter is used on purpose: it turns each direction of `lstm_padded` into one
    ONNX `LSTM` node. torch 2.13's dynamo exporter unrolls the LSTM over time or specialises the
    sequence length (it quietly falls back to static shapes), which `check_parity` would catch.
    """
    model = model.cpu().eval()
    model.lstm_impl = "padded"  # the exact padded path: no PackedSequence in the graph
    tokens, lengths = random_batch(model.arch["vocab_size"], 3, 6, torch.Generator().manual_seed(0))
    lengths[0] = tokens.size(1)
    axes = {"tokens": {0: "batch", 1: "seq"}, "lengths": {0: "batch"}, "logits": {0: "batch"},
            "probabilities": {0: "batch"}}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # Known and checked by check_parity: the legacy-exporter notice, the LSTM batch-size caveat
        # (h0 is built from the input's shape, so it follows the batch), and negative indices (none).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*(LSTM|advanced indexing).*", category=UserWarning)
        # .eval() on the wrapper too: the exporter restores the module's own mode afterwards, and a new
        # module is in training mode, which would leave dropout switched on in `model`
        torch.onnx.export(_WithProbabilities(model).eval(), (tokens, lengths), buf, dynamo=False, opset_version=opset,
                          input_names=list(INPUTS), output_names=list(OUTPUTS), dynamic_axes=axes)
    return buf.getvalue()


def check_parity(onnx_bytes: bytes, model: nn.Module, trials: int = 20, max_batch: int = 8,
                 max_len: int = 40, seed: int = 0) -> float:
    """Largest |onnxruntime - eager PyTorch| over random batch sizes and lengths (both outputs)."""
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a correctness check: one thread never spins against a busy machine
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    for spec in session.get_inputs():
        if any(not isinstance(d, str) for d in spec.shape):
            raise TextclfError(f"the ONNX export fixed the shape of {spec.name!r} to {spec.shape}; "
                               "report this with your torch and onnx versions")
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    model = model.cpu().eval()
    for trial in range(trials):
        batch = 1 if trial < 2 else int(torch.randint(1, max_batch + 1, (1,), generator=gen))
        tokens, lengths = random_batch(model.arch["vocab_size"], batch, max_len, gen)
        with torch.no_grad():
            logits = model(tokens, lengths)
            expected = (logits.numpy(), model.probabilities(logits).numpy())
        got = session.run(list(OUTPUTS), {"tokens": tokens.numpy(), "lengths": lengths.numpy()})
        worst = max(worst, *(float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True)))
    return worst


def export_onnx(model_dir: str | Path, output: str | Path | None = None, opset: int = OPSET,
                check_trials: int = 20) -> tuple[Path, float, Artifact]:
    """Write MODEL_DIR's network as ONNX (default MODEL_DIR/model.onnx) after checking it against PyTorch.

    Returns the path, the largest difference measured and the model; nothing is written if they disagree.
    """
    onnx = _require("onnx")
    _require("onnxruntime")
    art = load_model(model_dir, "cpu")
    model_dir = art.folder
    output = Path(output) if output else model_dir / "model.onnx"
    if output.is_dir():
        raise TextclfError(f"--output {output} is a folder; pass a file name such as {output / 'model.onnx'}")
    proto = onnx.load_from_string(to_onnx(art.model, opset))
    meta = {"labels": json.dumps(art.labels.names), "max_length": json.dumps(art.max_length),
            "truncate": art.truncate, "tokenizer": json.dumps(art.tokenizer.settings()),
            "textclf_version": __version__, "source": str(model_dir),
            "calibration": json.dumps(art.calibration.to_dict())}
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    data = proto.SerializeToString()
    diff = check_parity(data, art.model, trials=check_trials)
    if diff > TOLERANCE:
        raise TextclfError(f"the ONNX model differs from PyTorch by {diff:.2e} (> {TOLERANCE}); not written")
    with atomic_open(output) as f:
        f.write(data)
    return output, diff, art
