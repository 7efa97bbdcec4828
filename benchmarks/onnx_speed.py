"""CPU speed of the exported ONNX model (onnxruntime) against eager PyTorch, on the same token ids; and, with
--texts, the whole exported model (LSTM, linear view, calibration, shortcut) against `Classifier` on real texts.

    python benchmarks/onnx_speed.py [MODEL_DIR] [--batches 1,64] [--length 230] [--repeats 30] [--threads 2]
    python benchmarks/onnx_speed.py MODEL_DIR --texts ../shared/data/imdb/test.parquet --rows 2000

Without MODEL_DIR it times the default IMDB architecture (configs/imdb.yaml: 30,002-word vocabulary,
128-d embeddings, one BiLSTM layer of 128, max pooling) with random weights: speed depends on the
shapes, not on what the weights learned. Every row of a batch has `--length` tokens (230 is about
an average IMDB review). The two runtimes alternate within each repeat so that load from other
processes hits both alike; each shape is warmed up first (oneDNN builds its kernels per shape).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from textclf.inference.export import to_onnx  # noqa: E402
from textclf.models.artifact import load_model  # noqa: E402
from textclf.models.lstm import LSTMClassifier, ModelArgs  # noqa: E402


def imdb_shaped_model() -> LSTMClassifier:
    torch.manual_seed(0)
    return LSTMClassifier(ModelArgs(30_002, 2, embedding_dim=128, hidden_size=128, num_layers=1, bidirectional=True,
                                    dropout=0.3, embedding_dropout=0.1, pooling="max")).eval()


def time_once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", nargs="?", help="a saved model (default: the IMDB architecture, random weights)")
    p.add_argument("--batches", default="1,64", help="batch sizes (default 1,64)")
    p.add_argument("--length", type=int, default=230, help="tokens per text (default 230)")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2, help="intra-op threads for both runtimes (default 2)")
    p.add_argument("--texts", help="a data file: compare the whole exported model with Classifier on its texts")
    p.add_argument("--rows", type=int, default=2000, help="with --texts: how many (a seeded sample; default 2000)")
    p.add_argument("--text-column", default="text")
    args = p.parse_args(argv)
    if args.texts:
        return whole_model(args)

    model = load_model(args.model_dir, "cpu").model if args.model_dir else imdb_shaped_model()
    model.lstm_impl = "padded"  # what eager PyTorch runs on CPU (lstm_impl=auto)
    torch.set_num_threads(args.threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(to_onnx(model), options, providers=["CPUExecutionProvider"])
    vocab = model.arch["vocab_size"]
    print(f"model: {model.arch}; torch {torch.__version__}, onnxruntime {ort.__version__}, {args.threads} threads")
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        gen = torch.Generator().manual_seed(batch)
        tokens = torch.randint(2, vocab, (batch, args.length), generator=gen)
        lengths = torch.full((batch,), args.length)
        feeds = {"tokens": tokens.numpy(), "lengths": lengths.numpy()}

        def eager(tokens=tokens, lengths=lengths):
            with torch.inference_mode():
                return model(tokens, lengths)

        def onnx(feeds=feeds):
            return session.run(["logits"], feeds)

        diff = float(np.abs(eager().numpy() - onnx()[0]).max())
        for _ in range(args.warmup):
            eager(), onnx()
        times = {"pytorch": [], "onnxruntime": []}
        for _ in range(args.repeats):
            times["pytorch"].append(time_once(eager))
            times["onnxruntime"].append(time_once(onnx))
        for runtime, ts in times.items():
            ms = 1000 * statistics.median(ts)
            rows.append({"runtime": runtime, "batch": batch, "length": args.length, "median_ms": round(ms, 2),
                         "p90_ms": round(1000 * float(np.percentile(ts, 90)), 2),
                         "texts_per_s": round(batch / (ms / 1000), 1), "max_abs_diff": diff})
    print("| runtime | batch × tokens | median ms / batch | p90 ms | texts/s |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['runtime']} | {r['batch']} × {r['length']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} "
              f"| {r['texts_per_s']:,.0f} |")
    print(json.dumps(rows))
    return 0


def whole_model(args) -> int:
    """The exported model (OnnxModel) against Classifier on the same real texts: largest difference, agreement
    of the labels, and texts/s of each (float32, `--threads` threads)."""
    import pandas as pd

    from textclf.inference.classifier import Classifier
    from textclf.inference.export import OnnxModel, model_to_onnx

    frame = pd.read_parquet(args.texts) if args.texts.endswith(".parquet") else pd.read_csv(args.texts)
    texts = frame[args.text_column].astype(str).sample(min(args.rows, len(frame)), random_state=0).tolist()
    torch.set_num_threads(args.threads)
    clf = Classifier.load(args.model_dir, "cpu", bf16=False)
    data = model_to_onnx(clf.artifact, clf.artifact.calibration)
    onnx_model = OnnxModel(data, threads=args.threads)
    clf.predict_proba(texts[:64]), onnx_model.predict_proba(texts[:64])  # warm-up: kernels per shape
    start = time.perf_counter()
    want = clf.predict_proba(texts)
    torch_s = time.perf_counter() - start
    start = time.perf_counter()
    got = onnx_model.predict_proba(texts)
    onnx_s = time.perf_counter() - start
    row = {"rows": len(texts), "max_abs_diff": float(np.abs(got - want).max()),
           "labels_equal": float((got.argmax(1) == want.argmax(1)).mean()), "onnx_mb": round(len(data) / 1e6, 1),
           "classifier_texts_per_s": round(len(texts) / torch_s, 1), "onnx_texts_per_s": round(len(texts) / onnx_s, 1),
           "calibration": clf.artifact.calibration.to_dict()}
    print(f"{len(texts)} texts: max |onnxruntime - Classifier| = {row['max_abs_diff']:.2e}, labels equal on "
          f"{row['labels_equal']:.2%}; Classifier {row['classifier_texts_per_s']:,.0f} texts/s, exported model "
          f"{row['onnx_texts_per_s']:,.0f} texts/s ({row['onnx_mb']} MB)")
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
