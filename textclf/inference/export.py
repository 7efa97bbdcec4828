"""ONNX export of a saved model: the whole model in one graph, its LSTM, its linear view and how they combine,
so the probabilities out of it are `Classifier.predict_proba`'s (checked before the file is written).

    inputs   tokens          int64 [batch, seq]   LSTM vocabulary ids, right-padded with <pad>=0, cut to max_length
             lengths         int64 [batch]        real tokens per row (0 is allowed: an empty text)
             linear_tokens   int64 [batch, units] the linear view's unit ids (words, or characters for a character
                                                  view), every unit of the text, 0 for padding and for units
                                                  in none of its n-grams (models with a linear view only)
    outputs  probabilities   float [batch, C]     the model's: rows sum to 1, columns in `labels` order
             logits          float [batch]        the LSTM's (binary: the log-odds of labels[1]) ...
                             float [batch, C]     ... or its C logits
             lstm_probabilities, linear_probabilities   each view's own, before calibration

Tokenising stays outside the graph, as for the PyTorch model: `OnnxModel` (this module) reads the metadata the
file carries (labels, tokenizer settings, both vocabularies, max_length, truncate) and turns texts into these
inputs. The linear view's n-grams are counted in the graph by ONNX's TfIdfVectorizer; its TF-IDF or
naive-Bayes weighting, the logistic regression, the temperatures, the average and the shortcut (both views are
computed, and the rows the shortcut answers take the linear view's mapped probabilities) follow as plain ops.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..errors import TextclfError
from ..files import atomic_open, check_writable
from ..models.artifact import Artifact, load_model
from ..models.ensemble import _EPS, Calibration
from ..models.linear import LinearModel, units
from ..text.batching import collate
from ..text.tokenizer import from_settings, without_spaces
from ..text.tokens import truncate_ids
from ..text.vocab import Vocab
from . import check_texts

INPUTS, OUTPUTS = ("tokens", "lengths"), ("logits", "probabilities")  # the network's graph (`to_onnx`)
OPSET = 17
# The opsets the graph exports at: below 12 onnxruntime refuses it (a type error in the LSTM's ops, measured with
# torch 2.13), above 20 the TorchScript exporter (dynamo=False) cannot write it
OPSETS = range(12, 21)
TOLERANCE = 1e-4
FORMAT = "textclf-onnx"


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
    """The network alone (eval mode, CPU), with dynamic batch and sequence axes: tokens, lengths → logits and its
    probabilities.

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
    """Largest |onnxruntime - eager PyTorch| of the network's graph (`to_onnx`) over random batch sizes and
    lengths (both outputs)."""
    session = _session(onnx_bytes)
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


def _session(onnx_bytes: bytes | str, threads: int = 1):
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # 1 for a correctness check: one thread never spins on a busy machine
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    for spec in session.get_inputs():
        if any(not isinstance(d, str) for d in spec.shape):
            raise TextclfError(f"the ONNX export fixed the shape of {spec.name!r} to {spec.shape}; "
                               "report this with your torch and onnx versions")
    return session


# --- the linear view and the calibration as ONNX ops ---------------------------------------------------------

def linear_words(linear: LinearModel) -> list[str]:
    """The linear view's units in id order (id = position + 1; 0 stands for padding and for any other unit)."""
    words: dict[str, None] = {}
    for gram in linear.ngrams:
        words.update(dict.fromkeys(gram.split(" ")))
    return list(words)


class _Graph:
    """Nodes and constants appended to the network's graph, with fresh names."""

    def __init__(self):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.constants, self._n = [], [], 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"textclf_{hint}_{self._n}"

    def const(self, value, hint: str = "c", dtype=np.float32) -> str:
        name = self.name(hint)
        self.constants.append(self.numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op: str, *inputs: str, out: str | None = None, **attrs) -> str:
        out = out or self.name(op.lower())
        self.nodes.append(self.helper.make_node(op, list(inputs), [out], **attrs))
        return out

    def temperature(self, p: str, t: float) -> str:
        """`ensemble.combine(p, None, 1, t)`: softmax(log(clip(p)) / t); nothing at t = 1."""
        if t == 1.0:
            return p
        logits = self.op("Log", self.op("Clip", p, self.const(_EPS), self.const(1.0)))
        return self.op("Softmax", self.op("Div", logits, self.const(t)), axis=1)

    def linear_view(self, linear: LinearModel, ids: str) -> str:
        """[batch, C] probabilities of `linear` from its unit ids (`linear_tokens`)."""
        word_id = {w: i + 1 for i, w in enumerate(linear_words(linear))}
        by_n: list[list[tuple[int, list[int]]]] = [[] for _ in range(linear.ngram_max)]
        for col, gram in enumerate(linear.ngrams):
            parts = gram.split(" ")
            by_n[len(parts) - 1].append((col, [word_id[w] for w in parts]))
        pool, counts, indexes, start = [], [], [], 0
        for grams in by_n:
            counts.append(start)
            for col, key in grams:
                pool += key
                indexes.append(col)
            start = len(pool)
        tf = self.op("TfIdfVectorizer", ids, mode="TF", min_gram_length=1, max_gram_length=linear.ngram_max,
                     max_skip_count=0, ngram_counts=counts, ngram_indexes=indexes, pool_int64s=pool)
        present = self.op("Greater", tf, self.const(0.0))
        scale = self.const(linear.scale)
        if linear.weighting == "nb":  # which n-grams a text holds, each times its log-count ratio
            x = self.op("Mul", self.op("Cast", present, to=1), scale)
        else:  # sublinear tf x idf, L2-normalised
            sub = self.op("Add", self.op("Log", self.op("Max", tf, self.const(1.0))), self.const(1.0))
            x = self.op("Mul", self.op("Where", present, sub, self.const(0.0)), scale)
            norm = self.op("Sqrt", self.op("ReduceSumSquare", x, keepdims=1, axes=[1]))
            x = self.op("Div", x, self.op("Where", self.op("Greater", norm, self.const(0.0)), norm, self.const(1.0)))
        scores = self.op("Add", self.op("MatMul", x, self.const(linear.coef.T)), self.const(linear.intercept))
        if linear.num_classes > 2:
            return self.op("Softmax", scores, axis=1)
        p1 = self.op("Sigmoid", scores)
        return self.op("Concat", self.op("Sub", self.const(1.0), p1), p1, axis=1)

    def shortcut_map(self, p: str, cal: Calibration, num_classes: int) -> str:
        """`ensemble.map_top`: the top probability through the fitted sigmoid, the other classes rescaled."""
        if cal.shortcut_scale == 1.0 and cal.shortcut_bias == 0.0:
            return p
        top2 = self.name("top2")
        indices = self.name("top2_at")
        self.nodes.append(self.helper.make_node("TopK", [p, self.const([2], dtype=np.int64)], [top2, indices], axis=1))
        top = self.op("Slice", top2, self.const([0], dtype=np.int64), self.const([1], dtype=np.int64),
                      self.const([1], dtype=np.int64))
        second = self.op("Slice", top2, self.const([1], dtype=np.int64), self.const([2], dtype=np.int64),
                         self.const([1], dtype=np.int64))
        at = self.op("Slice", indices, self.const([0], dtype=np.int64), self.const([1], dtype=np.int64),
                     self.const([1], dtype=np.int64))
        clipped = self.op("Clip", top, self.const(_EPS), self.const(1 - _EPS))
        logit = self.op("Sub", self.op("Log", clipped), self.op("Log", self.op("Sub", self.const(1.0), clipped)))
        z = self.op("Add", self.op("Mul", logit, self.const(cal.shortcut_scale)), self.const(cal.shortcut_bias))
        mapped = self.op("Sigmoid", self.op("Clip", z, self.const(-50.0), self.const(50.0)))
        rest = self.op("Max", self.op("Sub", self.const(1.0), top), self.const(_EPS))
        floor = self.op("Add", self.op("Div", second, self.op("Add", rest, second)), self.const(1e-4))
        mapped = self.op("Max", mapped, floor)
        onehot = self.op("Cast", self.op("Equal", at, self.const(np.arange(num_classes), dtype=np.int64)), to=1)
        others = self.op("Mul", p, self.op("Div", self.op("Sub", self.const(1.0), mapped), rest))
        return self.op("Add", self.op("Mul", others, self.op("Sub", self.const(1.0), onehot)),
                       self.op("Mul", mapped, onehot))

    def calibrated(self, cal: Calibration, p_lstm: str | None, p_linear: str | None, num_classes: int) -> str:
        """`Calibration.apply`: each view at its temperature, averaged, the final temperature, the shortcut."""
        lin = self.temperature(p_linear, cal.linear_temperature) if p_linear is not None else None
        if not cal.uses_lstm():
            average = lin
        else:
            average = self.temperature(p_lstm, cal.lstm_temperature)
            if lin is not None and cal.uses_linear():
                average = self.op("Add", self.op("Mul", average, self.const(cal.weight)),
                                  self.op("Mul", lin, self.const(1.0 - cal.weight)))
        p = self.temperature(average, cal.temperature)
        if lin is None or not cal.shortcut or not cal.uses_linear():
            return p
        sure = self.op("GreaterOrEqual", self.op("ReduceMax", lin, keepdims=1, axes=[1]), self.const(cal.shortcut))
        return self.op("Where", sure, self.shortcut_map(lin, cal, num_classes), p)


def model_to_onnx(art: Artifact, cal: Calibration, opset: int = OPSET) -> bytes:
    """The whole model as one graph (see the module docstring), answering as `cal` says."""
    onnx = _require("onnx")
    from onnx import TensorProto, helper

    proto = onnx.load_from_string(to_onnx(art.model, opset))
    graph = proto.graph
    for node in graph.node:  # the network's probabilities are the LSTM's own from here on
        node.output[:] = ["lstm_probabilities" if o == "probabilities" else o for o in node.output]
    for out in graph.output:
        if out.name == "probabilities":
            out.name = "lstm_probabilities"
    g = _Graph()
    linear = art.linear if cal.uses_linear() else None
    p_linear = None
    if linear is not None:
        graph.input.append(helper.make_tensor_value_info("linear_tokens", TensorProto.INT64, ["batch", "units"]))
        p_linear = g.linear_view(linear, "linear_tokens")
    # an Identity, not a rename of the last node's output: at temperature 1 the answer is a tensor made earlier
    # (the linear view's), which other nodes still read by its name
    g.op("Identity", g.calibrated(cal, "lstm_probabilities", p_linear, len(art.labels)), out="probabilities")
    graph.node.extend(g.nodes)
    graph.initializer.extend(g.constants)
    graph.output.insert(0, helper.make_tensor_value_info("probabilities", TensorProto.FLOAT,
                                                         ["batch", len(art.labels)]))
    if p_linear is not None:
        g2 = _Graph()
        g2.op("Identity", p_linear, out="linear_probabilities")
        graph.node.extend(g2.nodes)
        graph.output.append(helper.make_tensor_value_info("linear_probabilities", TensorProto.FLOAT,
                                                          ["batch", len(art.labels)]))
    meta = {"format": FORMAT, "format_version": "1", "labels": json.dumps(art.labels.names),
            "max_length": json.dumps(art.max_length), "truncate": art.truncate,
            "tokenizer": json.dumps(art.tokenizer.settings()), "vocab": art.vocab.to_json(),
            "calibration": json.dumps(cal.to_dict()), "textclf_version": __version__, "source": str(art.folder)}
    if linear is not None:
        meta["linear_unit"] = linear.unit
        meta["linear_words"] = json.dumps(linear_words(linear), ensure_ascii=False)
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    return proto.SerializeToString()


class OnnxModel:
    """An exported model with what runs it: texts in, the model's probabilities out (onnxruntime only, no torch
    model)::

        model = OnnxModel("runs/imdb/model/model.onnx")
        model.predict_proba(["A quiet, beautiful film."])  # [N, C], columns in model.labels order
    """

    def __init__(self, path: str | Path | bytes, threads: int = 1):
        onnx = _require("onnx")
        data = path if isinstance(path, bytes) else Path(path).read_bytes()
        meta = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
        if meta.get("format") != FORMAT:
            raise TextclfError(f"{path if not isinstance(path, bytes) else 'the file'} is not a textclf ONNX model "
                               f'(no "format": "{FORMAT}" in its metadata); export it with textclf export')
        self.session = _session(data, threads)
        self.labels = json.loads(meta["labels"])
        self.tokenizer = from_settings(json.loads(meta["tokenizer"]))
        self.vocab = Vocab.from_json(meta["vocab"])
        self.max_length, self.truncate = json.loads(meta["max_length"]), meta["truncate"]
        self.linear_unit = meta.get("linear_unit")
        self.linear_ids = {w: i + 1 for i, w in enumerate(json.loads(meta.get("linear_words", "[]")))}

    def inputs(self, token_lists: Sequence[Sequence[str]]) -> dict[str, np.ndarray]:
        seqs = [truncate_ids(self.vocab.lookup(t), self.max_length, self.truncate) for t in token_lists]
        batch = collate([(s, -1, i) for i, s in enumerate(seqs)])
        feed = {"tokens": batch.tokens.numpy(), "lengths": batch.lengths.numpy()}
        if self.linear_unit is not None:
            rows = [[self.linear_ids.get(u, 0) for u in units(t, self.linear_unit)] for t in token_lists]
            ids = np.zeros((len(rows), max(1, max(map(len, rows), default=1))), dtype=np.int64)
            for i, r in enumerate(rows):
                ids[i, : len(r)] = r
            feed["linear_tokens"] = ids
        return feed

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """[N, C] probabilities, in input order: `Classifier.predict_proba`'s at the default decision (argmax, or
        0.5 for binary), the shortcut included where the graph has one; for another threshold, export with
        --no-shortcut (the full model's, as `textclf predict --threshold` decides)."""
        return self.probabilities(check_texts(texts), batch_size)

    def probabilities(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """`predict_proba` without its checks of the texts (an empty one: the probabilities of no words)."""
        tokens = list(self.tokenizer.pipe(texts))
        out = [self.session.run(["probabilities"], self.inputs(tokens[i : i + batch_size]))[0]
               for i in range(0, len(tokens), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), dtype=np.float32)


def sample_texts(art: Artifact, n: int = 64, seed: int = 0) -> list[str]:
    """Texts made of the model's own words and n-grams (and a few unknown ones), of many lengths: enough to
    touch the LSTM, the linear view and, where it is sure, the shortcut."""
    rng = np.random.default_rng(seed)
    words = art.vocab.itos[2:] or ["word"]
    grams = art.linear.ngrams if art.linear is not None else words
    join = "" if without_spaces(art.tokenizer.kind) else " "
    texts = []
    for i in range(n):
        size = int(rng.integers(0, 60)) if i else 0  # the first: an empty text
        parts = [str(grams[j]).replace(" ", join) if rng.random() < 0.6 else str(words[j % len(words)])
                 for j in rng.integers(0, len(grams), size)]
        texts.append(join.join(parts + (["zzqx"] if i % 7 == 3 else [])))
    return texts


def check_model_parity(data: bytes, art: Artifact, texts: Sequence[str]) -> float:
    """Largest |onnxruntime - Classifier| over `texts`' probabilities (`art` loaded in float32 on the CPU, with
    the views and shortcut the graph was made for)."""
    from .classifier import Classifier

    if not len(texts):
        return 0.0
    want = Classifier(art, torch.device("cpu")).probabilities(list(texts))  # empty texts too: the graph takes them
    return float(np.abs(OnnxModel(data).probabilities(list(texts)) - want).max())


def export_onnx(model_dir: str | Path, output: str | Path | None = None, opset: int = OPSET,
                views: str = "both", shortcut: bool = True, check_texts: Sequence[str] | None = None
                ) -> tuple[Path, float, Artifact]:
    """Write MODEL_DIR's model as ONNX (default MODEL_DIR/model.onnx) after checking that onnxruntime gives what
    `Classifier` gives (on `check_texts`, default: texts made of the model's own words and n-grams).

    Returns the path, the largest difference measured and the model; nothing is written if they disagree.
    """
    if opset not in OPSETS:
        raise TextclfError(f"--opset must be in {OPSETS.start}..{OPSETS.stop - 1} (default {OPSET}), got {opset}")
    _require("onnx")
    _require("onnxruntime")
    art = load_model(model_dir, "cpu", bf16=False, shortcut=shortcut, views=views)
    if art.start is not None:
        raise TextclfError(f"{art.folder} averages in the model it was fine-tuned from (start/, share "
                           f"{art.calibration.start_weight:g}), which one ONNX graph does not hold: export its own "
                           "views with --views lstm or linear, or the start model from its own folder")
    if art.linear is not None and art.linear.chars and art.calibration.uses_linear():
        raise TextclfError(f"{art.folder}'s linear view reads the characters inside words too ({art.linear.kind}), "
                           "which this ONNX graph does not hold: export the LSTM alone with --views lstm")
    output = Path(output) if output else art.folder / "model.onnx"
    check_writable(output, "--output", example="model.onnx")
    data = model_to_onnx(art, art.calibration, opset)
    diff = check_model_parity(data, art, check_texts if check_texts is not None else sample_texts(art))
    if diff > TOLERANCE:
        raise TextclfError(f"the ONNX model differs from textclf's by {diff:.2e} (> {TOLERANCE}); not written")
    with atomic_open(output) as f:
        f.write(data)
    return output, diff, art
