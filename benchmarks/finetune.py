"""Benchmark: fine-tune a pretrained model on a few hundred out-of-domain reviews vs. train from scratch on them.

    python benchmarks/finetune.py MODEL_DIR [--data benchmarks/data/shop_reviews] [--out runs/bench-finetune]
                                            [--seeds 1,2,3] [key=value ...]

For each seed, two runs read the same train rows (the validation split carved from them alike) and
are scored on the same held-out test rows:
  fine-tuned    configs/finetune.yaml with init_from=MODEL_DIR
  from scratch  configs/imdb.yaml with MODEL_DIR's architecture and tokenizer, its vocab built on the
                train rows (min_freq 1), up to 30 epochs with patience 5 and batches of 16
MODEL_DIR as it is (no training on the new rows) is scored too, when its labels are negative/positive.
Star ratings become labels through data.label_map (1-2 negative, 4-5 positive, 3 dropped).
key=value overrides go to both runs (e.g. train.epochs=1 for a quick check). Results: OUT/results.json.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # runs from a clone without installing

from textclf.artifact import load_model, resolve_model_dir  # noqa: E402
from textclf.config import load_config  # noqa: E402
from textclf.data import apply_label_map, load_splits  # noqa: E402
from textclf.errors import TextclfError  # noqa: E402
from textclf.files import write_json  # noqa: E402
from textclf.metrics import compute  # noqa: E402
from textclf.pipeline import train  # noqa: E402
from textclf.predict import Classifier  # noqa: E402

LABEL_MAP = {1: "negative", 2: "negative", 3: None, 4: "positive", 5: "positive"}
TEXT, LABEL = "title,review", "rating"
COMMON = [f"data.text_column={TEXT}", f"data.label_column={LABEL}",
          "data.label_map={1: negative, 2: negative, 3: null, 4: positive, 5: positive}", "overwrite=true"]
SCRATCH = ["vocab.min_freq=1", "train.epochs=30", "train.patience=5", "train.batch_size=16",
           "data.validation_fraction=0.2"]  # the same carve-out as configs/finetune.yaml


def scratch_overrides(model_dir: str) -> list[str]:
    """The pretrained model's architecture and tokenizer, so the two runs differ only in their start."""
    meta = load_model(model_dir).meta
    arch = [f"model.{k}={meta['model'][k]}" for k in ("embedding_dim", "hidden_size", "num_layers", "bidirectional",
                                                      "dropout", "embedding_dropout", "pooling")]
    tokenizer = [f"tokenizer.{k}={v}" for k, v in meta["tokenizer"].items()]
    return [*arch, *tokenizer, *SCRATCH]


def labelled(data: str, split: str):
    return apply_label_map(load_splits(data, None, TEXT, LABEL, splits=(split,))[split], LABEL_MAP)


def zero_shot(model_dir: str, data: str) -> float | None:
    """Test accuracy of the pretrained model as it is, or None when its labels are not negative/positive."""
    clf = Classifier.load(model_dir)
    test = labelled(data, "test")
    try:
        y = clf.artifact.labels.encode(test.labels)
    except TextclfError:
        return None
    return compute(y, clf.predict_proba(test.texts), clf.labels)["accuracy"]


def run(model_dir: str, data: str, out: Path, seed: int, overrides: list[str]) -> dict:
    common = [f"data.path={data}", f"train.seed={seed}", *COMMON]
    tuned = train(load_config(REPO / "configs" / "finetune.yaml",
                              [f"init_from={model_dir}", *common, f"run_dir={out / f'finetune-seed{seed}'}",
                               *overrides]))
    scratch = train(load_config(REPO / "configs" / "imdb.yaml",
                                [*common, *scratch_overrides(model_dir), f"run_dir={out / f'scratch-seed{seed}'}",
                                 *overrides]))
    return {"seed": seed, "finetune": tuned["test"]["accuracy"], "scratch": scratch["test"]["accuracy"],
            "finetune_best_epoch": tuned["best_epoch"], "scratch_best_epoch": scratch["best_epoch"],
            "validation_rows": tuned["validation"]["n"], "test_rows": tuned["test"]["n"],
            "head": tuned["init_from"]["head"], "train_oov_rate": tuned["init_from"]["oov_rate"]["train"]}


def _mean(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", help="the pretrained model (a run folder or its model/)")
    p.add_argument("--data", default=str(REPO / "benchmarks" / "data" / "shop_reviews"),
                   help="a folder with train.csv and test.csv: title, review, rating (1-5)")
    p.add_argument("--out", default="runs/bench-finetune", help="run folders and results.json go here")
    p.add_argument("--seeds", default=[1, 2, 3], type=lambda s: [int(x) for x in s.split(",")],
                   help="comma-separated training seeds (default 1,2,3)")
    p.add_argument("--verbose", action="store_true", help="show the training logs")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="applied to both runs, e.g. train.epochs=1")
    args = p.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(message)s", force=True)
    out = Path(args.out)
    try:
        model_dir = str(resolve_model_dir(args.model_dir))
        n_train = len(labelled(args.data, "train"))
        base = zero_shot(model_dir, args.data)
        rows = [run(model_dir, args.data, out, seed, args.overrides) for seed in args.seeds]
    except TextclfError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results = {"model": model_dir, "data": args.data, "overrides": args.overrides, "train_rows": n_train,
               "zero_shot": base, "runs": rows,
               "finetune_mean": statistics.mean(r["finetune"] for r in rows),
               "scratch_mean": statistics.mean(r["scratch"] for r in rows)}
    write_json(out / "results.json", results)
    first = rows[0]
    print(f"{n_train} labelled train rows ({first['validation_rows']} of them carved out for validation), "
          f"{first['test_rows']} test rows; fine-tuning: {first['head']} head, "
          f"train OOV {100 * first['train_oov_rate']:.1f}%")
    print(f"{'seed':>6}  {'from scratch':>12}  {'fine-tuned':>10}")
    for r in rows:
        print(f"{r['seed']:>6}  {r['scratch']:>12.4f}  {r['finetune']:>10.4f}")
    print(f"{'mean':>6}  {_mean([r['scratch'] for r in rows]):>12}  {_mean([r['finetune'] for r in rows]):>10}")
    if base is not None:
        print(f"{args.model_dir} as it is (no training on these rows): {base:.4f}")
    print(f"test accuracy; details in {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
