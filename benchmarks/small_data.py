"""The plain command on a few thousand rows, cold, timed: issue 29's "small data in seconds".

    python benchmarks/small_data.py [--data-root ../shared/data] [--datasets zh,airline] [--rows 2000]
        [--rounds 2] [--checkout LABEL=DIR ...] [key=value ...]

For each data set, the first N rows of its train.csv go to a CSV, and `python train.py data.train=THAT.csv
data.text_column=... data.label_column=...` (no test file: what a user with one file types) runs with an empty
TEXTCLF_CACHE, so word2vec and tokenising are cold. Each --checkout (another clone or worktree, e.g. of the commit
before a change) runs its own train.py with this interpreter, in turn with the others, round after round, so that
the machine's drift falls on all of them alike. Prints a Markdown table (the wall seconds of each round, word2vec's
seconds and passes, the epochs run, validation accuracy) and one JSON line. Run it alone: it is a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
DATASETS = {  # name: (folder, text column, label column)
    "zh": ("chinese_reviews", "review", "label"),
    "airline": ("airline_tweets", "text", "airline_sentiment"),
}


def first_rows(data_root: Path, name: str, rows: int, out: Path) -> Path:
    folder = data_root / DATASETS[name][0]
    if not (folder / "train.csv").is_file():
        sys.exit(f"error: no train.csv in {folder} (pass --data-root, the folder that holds {DATASETS[name][0]}/)")
    path = out / f"{name}-{rows}.csv"
    pd.read_csv(folder / "train.csv", dtype=str, keep_default_na=False).head(rows).to_csv(path, index=False)
    return path


def one_run(checkout: Path, name: str, train_csv: Path, work: Path, overrides: list[str]) -> dict:
    """The command in `checkout`, cold; its wall seconds and what its log says."""
    _, text, label = DATASETS[name]
    cache, run_dir = Path(tempfile.mkdtemp(dir=work)), Path(tempfile.mkdtemp(dir=work))
    cmd = [sys.executable, "train.py", f"data.train={train_csv}", f"data.text_column={text}",
           f"data.label_column={label}", f"run_dir={run_dir}", "overwrite=true", *overrides]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=checkout, capture_output=True, text=True,
                          env={**os.environ, "TEXTCLF_CACHE": str(cache)})
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} in {checkout} exited {done.returncode}: {done.stderr.strip()[-300:]}")
    log = done.stdout + done.stderr
    w2v = re.search(r"word2vec: .*?, (\d+) epochs, (\d+)s", log)
    acc = re.search(r"validation accuracy ([0-9.]+)", log)
    return {"seconds": round(seconds, 1), "word2vec_passes": int(w2v[1]) if w2v else 0,
            "word2vec_seconds": int(w2v[2]) if w2v else 0, "epochs": len(re.findall(r"^epoch \d+/", log, re.M)),
            "validation_accuracy": float(acc[1]) if acc else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--datasets", default="zh,airline")
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--checkout", action="append", default=[], metavar="LABEL=DIR",
                    help="another checkout to time in turn with this one (e.g. before=/tmp/before)")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="added to every run")
    args = ap.parse_args(argv)
    checkouts = {"this": REPO, **{c.split("=", 1)[0]: Path(c.split("=", 1)[1]) for c in args.checkout}}
    names = [n for n in args.datasets.split(",") if n]
    if unknown := [n for n in names if n not in DATASETS]:
        sys.exit(f"error: unknown data set {unknown[0]} (choose from {', '.join(DATASETS)})")
    results: dict[str, dict[str, list[dict]]] = {n: {c: [] for c in checkouts} for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        csvs = {n: first_rows(Path(args.data_root), n, args.rows, work) for n in names}
        for _ in range(args.rounds):
            for label, checkout in checkouts.items():
                for n in names:
                    results[n][label].append(one_run(checkout, n, csvs[n], work, args.overrides))
    print(f"| data, {args.rows:,} rows | checkout | whole command (each round) | word2vec | epochs | validation |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n in names:
        for label, runs in results[n].items():
            walls = ", ".join(f"{x['seconds']} s" for x in runs)
            w2v = "/".join(str(x["word2vec_seconds"]) for x in runs)
            r = runs[0]
            print(f"| {n} | {label} | {walls} | {r['word2vec_passes']} passes, {w2v} s | {r['epochs']} | "
                  f"{r['validation_accuracy']} |")
    print(json.dumps({"rows": args.rows, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
