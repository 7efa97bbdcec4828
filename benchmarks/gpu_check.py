"""The GPU check: one command on a CUDA machine, under 8 minutes on one H200, reading nothing from the network.

    python benchmarks/gpu_check.py ../shared/data/imdb             # a local IMDB folder (train/test/unsup files)
    python benchmarks/gpu_check.py DATA --dry-run [key=value ...]   # every step on the CPU, one epoch: a smoke test

1. the `cuda` tests (pytest -m cuda), in a child process while this one tokenises and trains word2vec;
2. the default IMDB recipe (configs/imdb.yaml) on the GPU, cold, under torch.cuda.set_sync_debug_mode("warn"):
   every host sync counted, per training step and by the line of textclf that made it;
3. one epoch of the fp16 path, forced by config (train.amp_gpu=fp16: GradScaler and adversarial training);
4. inference on the test reviews: raw text to probabilities, and the model alone on token ids.
It prints tokens/s, seconds per epoch, test accuracy, peak GPU memory and reviews/s; --output writes them as JSON.
Without a GPU it refuses (exit code 2) unless --dry-run.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # runs from a clone without installing
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder only: never wait on the network
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

BUDGET_S = 480  # what the check must fit in on one H200
SYNC = "called a synchronizing CUDA operation"  # torch's warning in set_sync_debug_mode("warn")


class SyncCounter:
    """The host syncs that sync-debug mode reports while a run trains, and the training steps they fall in."""

    def __init__(self):
        self.total = self.in_training = self.steps = 0
        self.where: collections.Counter[str] = collections.Counter()
        self._training = False
        self._show = warnings.showwarning

    def _showwarning(self, message, category, filename, lineno, file=None, line=None):
        if SYNC not in str(message):
            return self._show(message, category, filename, lineno, file, line)
        self.total += 1
        if self._training:
            self.in_training += 1
            ours = [f for f in traceback.extract_stack() if f"{os.sep}textclf{os.sep}" in f.filename]
            self.where[f"{Path(ours[-1].filename).name}:{ours[-1].lineno} {ours[-1].name}" if ours else "torch"] += 1
        return None

    @contextlib.contextmanager
    def watching(self, cuda: bool):
        """Count inside the block; `trainer.train_epoch` is wrapped to know which syncs are training's."""
        import torch

        from textclf.training import trainer
        from textclf.training.checkpoint import Progress

        real = trainer.train_epoch

        def train_epoch(*args, **kwargs):
            progress = kwargs.get("progress") or next(a for a in args if isinstance(a, Progress))
            start = progress.batch
            self._training = True
            try:
                return real(*args, **kwargs)
            finally:
                self._training = False
                self.steps += progress.batch - start

        trainer.train_epoch = train_epoch  # Loop.train looks it up at each call
        with warnings.catch_warnings():
            warnings.filterwarnings("always", message=f".*{SYNC}")
            warnings.showwarning = self._showwarning
            if cuda:
                torch.cuda.set_sync_debug_mode("warn")
            try:
                yield self
            finally:
                if cuda:
                    torch.cuda.set_sync_debug_mode("default")
                trainer.train_epoch = real


def train_run(name: str, args: argparse.Namespace, device: str, overrides: list[str]) -> dict:
    """train.py's recipe in this process, with syncs counted; the figures from the run's own files."""
    import torch

    from textclf.config import load_config
    from textclf.training.pipeline import train

    out = Path(args.out)
    cfg = load_config(REPO / "configs" / "imdb.yaml",
                      [f"data.path={args.data}", f"run_dir={out / name}", "overwrite=true",
                       f"data.cache_dir={out / 'cache'}", f"train.device={device}", *overrides])
    cuda = device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    counter, start = SyncCounter(), time.perf_counter()
    with counter.watching(cuda):
        metrics = train(cfg)
    log = [json.loads(line) for line in (out / name / "log.jsonl").read_text().splitlines()]
    mean = lambda key: sum(r[key] for r in log) / len(log)  # noqa: E731
    return {
        "precision": metrics.get("precision"), "test_accuracy": metrics["test"]["accuracy"],
        "epochs": len(log), "tokens_per_s": round(mean("tokens_per_s")),
        "train_seconds_per_epoch": round(mean("train_seconds"), 2), "epoch_seconds": round(mean("seconds"), 2),
        "tokenize_seconds": metrics.get("tokenize_seconds"), "pretrain_seconds": metrics.get("pretrain_seconds", 0.0),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None,
        "steps": counter.steps, "training_syncs": counter.in_training if cuda else None,
        "syncs_per_step": round(counter.in_training / max(counter.steps, 1), 3) if cuda else None,
        "syncs_by_line": dict(counter.where.most_common(8)), "syncs_whole_run": counter.total if cuda else None,
        "wall_seconds": round(time.perf_counter() - start, 1),
    }


def inference(args: argparse.Namespace, device: str) -> dict:
    """The test reviews through `Classifier`: raw text (tokenising included), then token ids alone."""
    from textclf.config import load_config
    from textclf.inference.classifier import Classifier
    from textclf.training.prepare import load_data

    test = load_data(load_config(REPO / "configs" / "imdb.yaml", [f"data.path={args.data}", *args.overrides]))["test"]
    clf = Classifier.load(Path(args.out) / "default", device=device)
    texts, labels = list(test.texts), clf.artifact.labels.encode(test.labels)
    clf.predict_proba(texts[:512], batch_size=args.batch_size)  # warm-up: cuDNN's plans, the allocator's pools
    start = time.perf_counter()
    probs = clf.predict_proba(texts, batch_size=args.batch_size)  # numpy out: the GPU has finished
    seconds = time.perf_counter() - start
    seqs = clf.encode(texts)
    start = time.perf_counter()
    clf.predict_encoded(seqs, batch_size=args.batch_size)
    model_seconds = time.perf_counter() - start
    return {"reviews": len(texts), "batch_size": args.batch_size, "reviews_per_s": round(len(texts) / seconds),
            "model_reviews_per_s": round(len(texts) / model_seconds),
            "accuracy": round(float((clf.decide(probs) == labels).mean()), 5)}


def start_cuda_tests(args: argparse.Namespace) -> subprocess.Popen:
    log = open(Path(args.out) / "cuda_tests.log", "w")  # noqa: SIM115 (the child writes it while we train)
    return subprocess.Popen([sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-rs", "-p", "no:cacheprovider",
                             *args.tests.split(",")], cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True)


def finish_cuda_tests(proc: subprocess.Popen, args: argparse.Namespace) -> dict:
    code = proc.wait(timeout=BUDGET_S)
    lines = [line for line in (Path(args.out) / "cuda_tests.log").read_text().splitlines() if line.strip()]
    return {"ok": code == 0, "exit_code": code, "summary": lines[-1] if lines else "(no output)",
            "log": str(Path(args.out) / "cuda_tests.log")}


def report(r: dict) -> str:
    num = lambda v, fmt="{:,}": "–" if v is None else fmt.format(v)  # noqa: E731
    lines = [f"GPU check on {r['device']}, torch {r['torch']}: {r['wall_seconds']:.0f} s wall "
             f"(budget {BUDGET_S} s{'' if r['wall_seconds'] <= BUDGET_S else ': OVER'})"]
    if r["dry_run"]:
        lines.append("DRY RUN on the CPU, one epoch: no GPU figures, only a check that every step runs")
    if "cuda_tests" in r:
        lines.append(f"cuda tests: {r['cuda_tests']['summary']}{'' if r['cuda_tests']['ok'] else '  FAILED'}")
    lines += ["", "| run | precision | test accuracy | tokens/s | seconds per epoch (training / with validation) | "
                  "peak GPU MB | host syncs per training step |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for key, name in (("default", "default recipe (`configs/imdb.yaml`)"),
                      ("fp16", "fp16 forced (`train.amp_gpu=fp16`), 1 epoch")):
        t = r[key]
        lines.append(f"| {name} | {t['precision']} | {t['test_accuracy']:.4f} | {t['tokens_per_s']:,} | "
                     f"{t['train_seconds_per_epoch']} / {t['epoch_seconds']} | {num(t['peak_gpu_mb'])} | "
                     f"{num(t['syncs_per_step'], '{}')} |")
    d, inf = r["default"], r["inference"]
    where = ", ".join(f"{k} x{v}" for k, v in d["syncs_by_line"].items()) or "none"
    lines += ["", f"- default recipe, cold: tokenising {d['tokenize_seconds']} s + pretraining "
                  f"{d['pretrain_seconds']} s + {d['epochs']} epoch(s); {d['wall_seconds']} s in all",
              f"- host syncs while training: {num(d['training_syncs'])} in {d['steps']:,} steps ({where}); "
              f"{num(d['syncs_whole_run'])} in the whole run (validation and test included)",
              f"- inference on {inf['reviews']:,} test reviews (batches of {inf['batch_size']}): "
              f"{inf['reviews_per_s']:,} reviews/s from raw text, {inf['model_reviews_per_s']:,} on token ids; "
              f"accuracy {inf['accuracy']:.4f}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", help="a local dataset folder, e.g. ../shared/data/imdb (nothing is downloaded)")
    p.add_argument("--out", default="runs/gpu-check", help="run folders, the cache and cuda_tests.log go here")
    p.add_argument("--output", help="also write the figures as JSON here")
    p.add_argument("--batch-size", type=int, default=256, help="inference batch (default 256: GPUs like big ones)")
    p.add_argument("--tests", default="tests/test_gpu.py",  # all of tests/ needs every extra (fastapi...) to collect
                   help="where the cuda tests are, comma-separated (default: tests/test_gpu.py)")
    p.add_argument("--skip-tests", action="store_true", help="do not run the cuda tests")
    p.add_argument("--dry-run", action="store_true", help="run every step on the CPU, one epoch: no GPU needed")
    p.add_argument("--verbose", action="store_true", help="show the training logs")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for both runs")
    args = p.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s", force=True)
    import torch

    from textclf.errors import TextclfError

    if not args.dry_run and not torch.cuda.is_available():
        print("error: no CUDA device here: gpu_check measures the GPU path; run it on a CUDA machine "
              "(or pass --dry-run to smoke-test it on the CPU)", file=sys.stderr)
        return 2
    if not Path(args.data).is_dir():
        print(f"error: data folder not found: {args.data} (pass a local folder: the check reads nothing from the "
              "network)", file=sys.stderr)
        return 2
    start = time.perf_counter()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    device = "cpu" if args.dry_run else "cuda"
    name = "CPU" if args.dry_run else (f"{torch.cuda.get_device_name()} (compute capability "
                                       f"{'.'.join(map(str, torch.cuda.get_device_capability()))})")
    results: dict = {"device": name, "torch": torch.__version__, "dry_run": args.dry_run, "data": args.data,
                     "overrides": args.overrides}
    tests = None if args.skip_tests else start_cuda_tests(args)
    overrides = [*args.overrides, *(["train.epochs=1"] if args.dry_run else [])]
    try:
        results["default"] = train_run("default", args, device, overrides)
        results["fp16"] = train_run("fp16", args, device, [*overrides, "train.amp_gpu=fp16", "train.epochs=1"])
        results["inference"] = inference(args, device)
    except BaseException as e:
        if tests is not None:
            tests.kill()  # no test process left behind
        if not isinstance(e, TextclfError):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    if tests is not None:
        results["cuda_tests"] = finish_cuda_tests(tests, args)
    results["wall_seconds"] = round(time.perf_counter() - start, 1)
    print(report(results))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    return 0 if results.get("cuda_tests", {}).get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())
