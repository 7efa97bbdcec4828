"""IMDB side by side: textclf, the tutorial's straightforward loop, and the TF-IDF baseline, in one table.

    python benchmarks/imdb.py --data ../shared/data/imdb            # ~40 min on 2 CPU cores
    python benchmarks/imdb.py --data ../shared/data/imdb --run-dir runs/imdb --skip-train   # reuse a trained run

Each stage runs in its own process, so its peak RSS is its own (read with os.wait4). The textclf stage is
the real `train.py` with the given config; data preparation is timed cold (an empty token cache) and warm.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def _emit(result: dict) -> None:
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print("RESULT " + json.dumps(result), flush=True)


def _splits(args: argparse.Namespace):
    from textclf.config import load_config
    from textclf.training.prepare import load_data

    cfg = load_config(args.config, [f"data.path={args.data}", *args.overrides])
    return cfg, load_data(cfg)


def stage_prep(args: argparse.Namespace) -> None:
    """Tokenise + numericalise train/validation/test: once into an empty cache, then again from it."""
    from textclf.training.prepare import prepare

    cfg, splits = _splits(args)
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        cfg.data.cache_dir = cache
        for run in ("cold", "warm"):
            start = time.perf_counter()
            data = prepare(cfg, splits)
            out[f"{run}_seconds"] = round(time.perf_counter() - start, 2)
    out["texts"] = sum(len(ds) for ds in data.datasets.values())
    _emit(out)


def stage_textclf(args: argparse.Namespace) -> None:
    """The real command users run; the figures come from the run's own metrics.json and log.jsonl."""
    run_dir = Path(args.run_dir)
    wall = None
    if not args.skip_train:
        with tempfile.TemporaryDirectory() as cache:  # cold: tokenising and pretraining are part of the cost
            cmd = [sys.executable, str(REPO / "train.py"), "--config", args.config, f"data.path={args.data}",
                   f"run_dir={run_dir}", "overwrite=true", f"data.cache_dir={cache}", *args.overrides]
            start = time.perf_counter()
            subprocess.run(cmd, check=True)
            wall = round(time.perf_counter() - start, 1)  # everything: reading, pretraining, the linear view, test
    metrics = json.loads((run_dir / "metrics.json").read_text())
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    train = yaml.safe_load((run_dir / "config.yaml").read_text())["train"]
    # adversarial training: a second pass over a share of each batch's rows (about that share of its tokens)
    passes = 1 + train.get("adversarial_fraction", 1.0) if train["adversarial"] > 0 else 1
    tokens_per_s = round(sum(r["tokens_per_s"] for r in log) / len(log))
    _emit({"test_accuracy": metrics["test"]["accuracy"], "train_seconds": metrics["train_seconds"],
           "pretrain_seconds": metrics.get("pretrain_seconds", 0.0), "tokenize_seconds": metrics["tokenize_seconds"],
           "epochs": metrics["epochs_run"], "best_epoch": metrics["best_epoch"], "tokens_per_s": tokens_per_s,
           "passes_per_batch": passes, "pass_tokens_per_s": round(passes * tokens_per_s),
           "precision": metrics.get("precision", "float32"), "wall_seconds": wall,
           "lstm_test_accuracy": metrics["test"].get("lstm_accuracy"),
           "linear_test_accuracy": metrics["test"].get("linear_accuracy"), "calibration": metrics.get("calibration"),
           # the linear view's shortcut: the share of test reviews it answered alone, and the full average's accuracy
           "shortcut_share": metrics["test"].get("shortcut_share", 0.0),
           "exact_test_accuracy": metrics["test"].get("exact_accuracy", metrics["test"]["accuracy"])})


def stage_inference(args: argparse.Namespace) -> None:
    """Raw test reviews → probabilities through the Python API (tokenising included) as `Classifier.load` gives
    them by default (bfloat16 where it is measured faster than float32; the linear view's shortcut where the model
    has one) and exactly (float32, the LSTM on every review); where a review's time goes (tokenising, the linear
    view, the LSTM); then one-review latency. The process keeps the memory torch frees, as `textclf predict`
    and `textclf serve` do (`textclf.allocator`; a Python program calls `keep_freed_memory()` first)."""
    from textclf.allocator import keep_freed_memory

    keep_freed_memory()
    import numpy as np
    import torch

    from textclf import Classifier

    _, splits = _splits(args)
    texts, out = splits["test"].texts, {}
    full = Classifier.load(args.run_dir, device="cpu")
    labels = full.artifact.labels.encode(splits["test"].labels)
    seqs = full.encode(texts)
    out["default_precision"] = str(next(full.artifact.model.parameters()).dtype).removeprefix("torch.")
    exact = Classifier.load(args.run_dir, device="cpu", bf16=False, shortcut=False)
    for name, clf in (("", full), ("exact_", exact)):
        clf.predict_proba(texts[:256])  # warm up: oneDNN kernels
        start = time.perf_counter()
        probs = clf.predict_proba(texts)
        out[f"{name}reviews_per_s"] = round(len(texts) / (time.perf_counter() - start))
        out[f"{name}accuracy"] = round(float((clf.decide(probs) == labels).mean()), 5)
        start = time.perf_counter()  # the model alone, on token ids: how the Keras example's 412/s is measured
        clf.predict_encoded(seqs)
        out[f"{name}model_reviews_per_s"] = round(len(texts) / (time.perf_counter() - start))
    clf = full
    start = time.perf_counter()  # where a review's time goes: its tokens, the linear view's n-grams, the LSTM
    tokens = list(clf.artifact.tokenizer.pipe(texts))
    out["tokenize_ms"] = round(1000 * (time.perf_counter() - start) / len(texts), 3)
    if clf.artifact.weight < 1:
        start = time.perf_counter()
        p_linear = clf.artifact.linear.predict_proba(tokens)
        out["linear_view_ms"] = round(1000 * (time.perf_counter() - start) / len(texts), 3)
        out["shortcut_share"] = round(float(clf.artifact.calibration.sure(p_linear).mean()), 4)
    times = []
    for text in texts[:300]:
        t0 = time.perf_counter()
        clf.predict_proba([text])
        times.append(time.perf_counter() - t0)
    _emit({**out, "p50_ms": round(1000 * float(np.median(times[50:])), 2),
           "p99_ms": round(1000 * float(np.percentile(times[50:], 99)), 2), "threads": torch.get_num_threads()})


def stage_tutorial(args: argparse.Namespace) -> None:
    """The tutorial's loop on the same architecture, in float32: tokenising (the config's tokenizer) and padding per
    batch, packed LSTM, `.item()` every step."""
    import numpy as np
    import torch

    from textclf.models.lstm import LSTMClassifier
    from textclf.training.pipeline import new_model
    from textclf.training.prepare import prepare

    cfg, splits = _splits(args)
    data = prepare(cfg, splits)  # only for the vocab the model is built with
    torch.manual_seed(0)
    model: LSTMClassifier = new_model(cfg.model, data.vocab, data.labels)
    model.lstm_impl = "packed"
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    tokenizer = data.tokenizer  # tokenizer.kind=auto resolved on the training texts, as train.py does
    train = splits["train"]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(train))
    labels = data.labels.encode(train.labels)
    bs, tokens_seen, step_seconds = cfg.train.batch_size, 0, 0.0
    start = time.perf_counter()
    for b in range(args.tutorial_batches):
        idx = order[b * bs : (b + 1) * bs]
        ids = [[data.vocab.stoi[t] for t in tokenizer(train.texts[i])][: cfg.data.max_length] or [0] for i in idx]
        lengths = torch.tensor([len(s) for s in ids])
        x = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in ids], batch_first=True)
        y = torch.tensor(labels[idx], dtype=torch.float)
        t0 = time.perf_counter()
        model.train()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x, lengths), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()  # the tutorial's per-batch host sync
        step_seconds += time.perf_counter() - t0
        tokens_seen += int(lengths.sum())
    loop_seconds = time.perf_counter() - start

    model.eval()  # textclf's CPU path must compute what the packed LSTM computes
    with torch.no_grad():
        packed = model(x, lengths)
        model.lstm_impl = "padded"
        padded = model(x, lengths)
    _emit({"tokens_per_s": round(tokens_seen / loop_seconds), "step_tokens_per_s": round(tokens_seen / step_seconds),
           "batches": args.tutorial_batches, "max_abs_diff_padded_vs_packed": float((packed - padded).abs().max())})


def stage_baseline(args: argparse.Namespace) -> None:
    from textclf.baseline import linear_baseline
    from textclf.text.tokenizer import for_run

    cfg, splits = _splits(args)
    start = time.perf_counter()
    tokenizer = for_run(cfg.tokenizer.kind, cfg.tokenizer.lowercase, splits["train"].texts)
    result = linear_baseline(splits, tokenizer, cfg.data.cache_dir)
    _emit({"test_accuracy": result["test"]["accuracy"], "train_seconds": round(time.perf_counter() - start, 1)})


STAGES = {"prep": stage_prep, "textclf": stage_textclf, "inference": stage_inference,
          "tutorial": stage_tutorial, "baseline": stage_baseline}


def run_stage(name: str, argv: list[str]) -> dict:
    """Run one stage in a child process; its peak RSS is the child's own (os.wait4's rusage)."""
    proc = subprocess.Popen([sys.executable, __file__, "--stage", name, *argv], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"stage {name} failed")
    result = json.loads(next(line for line in out.splitlines()[::-1] if line.startswith("RESULT "))[7:])
    result["peak_rss_mb"] = max(result["peak_rss_mb"], round(usage.ru_maxrss / 1024))
    print(f"{name}: {json.dumps(result)}", file=sys.stderr, flush=True)
    return result


def table(r: dict) -> str:
    t, tut, base, inf, prep = (r.get(k, {}) for k in ("textclf", "tutorial", "baseline", "inference", "prep"))
    f = lambda d, k, fmt="{:,}": fmt.format(d[k]) if k in d else "–"  # noqa: E731
    rows = [
        "| system | IMDB test accuracy | train seconds | train tokens/s | inference reviews/s | peak RSS MB |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| textclf (`{r['config']}`) | {f(t, 'test_accuracy', '{:.4f}')} | {f(t, 'train_seconds')} | "
        f"{f(t, 'tokens_per_s')} | {f(inf, 'reviews_per_s')} (exact: {f(inf, 'exact_reviews_per_s')}) | "
        f"{f(t, 'peak_rss_mb')} |",
        f"| tutorial loop, same architecture ({f(tut, 'batches')} batches) | – | – | {f(tut, 'tokens_per_s')} "
        f"(step only: {f(tut, 'step_tokens_per_s')}) | – | {f(tut, 'peak_rss_mb')} |",
        f"| TF-IDF 1-2-grams + logistic regression (`textclf baseline`) | {f(base, 'test_accuracy', '{:.4f}')} | "
        f"{f(base, 'train_seconds')} | – | – | {f(base, 'peak_rss_mb')} |",
    ]
    notes = []
    if t:
        total = t["tokenize_seconds"] + t.get("pretrain_seconds", 0) + t["train_seconds"]
        notes.append(f"textclf's recipe, cold: tokenising {t['tokenize_seconds']} s + pretraining "
                     f"{t.get('pretrain_seconds', 0)} s + training {t['train_seconds']} s = {total / 60:.1f} min "
                     f"({t['epochs']} epochs, best {t['best_epoch']}; {t.get('precision', 'float32')})"
                     + (f"; the whole command {t['wall_seconds'] / 60:.1f} min" if t.get("wall_seconds") else ""))
        if t.get("calibration"):
            notes.append(f"test accuracy of the LSTM alone {t['lstm_test_accuracy']:.4f}, of the linear view alone "
                         f"{t['linear_test_accuracy']:.4f}; calibration {json.dumps(t['calibration'])}")
        if t.get("shortcut_share"):
            notes.append(f"the linear view's shortcut answered {t['shortcut_share']:.1%} of the test reviews alone; "
                         f"the full average on every review: test accuracy {t['exact_test_accuracy']:.4f}")
    if t and tut:
        per_pass = t.get("pass_tokens_per_s", t["tokens_per_s"])
        notes.append(f"training throughput: {per_pass / tut['tokens_per_s']:.1f}x the tutorial loop "
                     f"({per_pass / tut['step_tokens_per_s']:.1f}x its step alone) per forward+backward pass; "
                     f"padded vs packed outputs differ by at most {tut['max_abs_diff_padded_vs_packed']:.1e} "
                     f"(textclf in {t.get('precision', 'float32')}, the tutorial loop in float32)")
        if t.get("passes_per_batch", 1) > 1:
            notes.append(f"the recipe makes {t['passes_per_batch']:g} passes per batch (adversarial training): "
                         f"{t['tokens_per_s'] / tut['tokens_per_s']:.1f}x the tutorial loop per training token")
    if inf:
        notes.append(f"inference reviews/s from raw text, tokenising included, default Classifier.load "
                     f"({inf['default_precision']}): {inf['reviews_per_s']:,}; "
                     f"exact (float32, the LSTM on every review): {inf['exact_reviews_per_s']:,}; "
                     f"the LSTM alone on token ids (as the peers' figures are taken): {f(inf, 'model_reviews_per_s')}, "
                     f"float32 {f(inf, 'exact_model_reviews_per_s')}"
                     + (f"; the linear view answered {inf['shortcut_share']:.1%} of the reviews alone"
                        if inf.get("shortcut_share") else ""))
        if "tokenize_ms" in inf:
            lstm_ms = 1000 / inf["exact_model_reviews_per_s"]
            notes.append(f"a review's time in float32, each part timed alone: tokenising {inf['tokenize_ms']} ms, "
                         f"the linear view {inf.get('linear_view_ms', 0)} ms, the LSTM on token ids {lstm_ms:.3f} ms; "
                         f"the exact model end to end {1000 / inf['exact_reviews_per_s']:.3f} ms, the default "
                         f"{1000 / inf['reviews_per_s']:.3f} ms")
        notes.append(f"test accuracy through the Python API: default {inf['accuracy']:.4f}, exact "
                     f"{inf['exact_accuracy']:.4f}; one review: p50 {inf['p50_ms']} ms, p99 {inf['p99_ms']} ms")
    if prep:
        notes.append(f"data prep ({prep['texts']:,} texts): {prep['cold_seconds']} s cold, "
                     f"{prep['warm_seconds']} s from cache, peak RSS {prep['peak_rss_mb']:,} MB")
    return "\n".join(rows + [""] + [f"- {n}" for n in notes])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="imdb", help="data.path for every stage (default: imdb)")
    p.add_argument("--config", default=str(REPO / "configs" / "imdb.yaml"))
    p.add_argument("--run-dir", default="runs/bench-imdb")
    p.add_argument("--skip-train", action="store_true", help="reuse the trained model in --run-dir")
    p.add_argument("--tutorial-batches", type=int, default=40)
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    p.add_argument("--output", help="also write the figures as JSON here")
    p.add_argument("--stage", help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="extra config overrides for the textclf run")
    args = p.parse_args()
    if args.stage:
        STAGES[args.stage](args)
        return
    argv = ["--data", args.data, "--config", args.config, "--run-dir", args.run_dir,
            "--tutorial-batches", str(args.tutorial_batches), *(["--skip-train"] if args.skip_train else []),
            *args.overrides]
    results = {"config": os.path.relpath(args.config, REPO), "overrides": args.overrides,
               "machine": f"{os.cpu_count()} CPU cores"}
    for name in args.stages.split(","):
        results[name] = run_stage(name, argv)
    print(table(results))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
