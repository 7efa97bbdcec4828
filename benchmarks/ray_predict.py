"""Labelling 100k reviews on Ray Data against `textclf predict --input`, on the same machine and rows.

    python benchmarks/ray_predict.py MODEL [--data ../shared/data/imdb] [--rows 100000] [--shards 10]
        [--concurrency N] [--out runs/ray-predict]

The rows are IMDB's real reviews (train, test and unsup: 100,000 of them), with an id column. The local path
reads one Parquet file and writes a CSV (`textclf predict MODEL --input FILE --output out.csv`); the Ray path
reads the same rows as `--shards` Parquet files and writes Parquet (`--engine ray`), starting its own local
Ray: each time is the whole command, end to end, imports and Ray's start included. Peak memory is the largest
sum of the resident memory of the command and every process under it (Ray's raylet, object store and
workers), sampled every 0.2 s. The labels of the two are compared row by row, by id. Run it alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent


def reviews(data: Path, rows: int) -> pd.DataFrame:
    parts = [pd.read_parquet(data / f"{split}.parquet", columns=["text"]) for split in ("train", "test", "unsup")]
    frame = pd.concat(parts, ignore_index=True).head(rows)
    return frame.assign(review_id=[f"r{i:06d}" for i in range(len(frame))])[["review_id", "text"]]


def _tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        with contextlib.suppress(OSError):  # a process that ended meanwhile
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return total


def timed(cmd: list[str], log: Path) -> tuple[float, int]:
    """Seconds and peak tree RSS (bytes) of a command run to its end."""
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        peak = [0]

        def sample() -> None:
            while proc.poll() is None:
                peak[0] = max(peak[0], _tree_rss(proc.pid))
                time.sleep(0.2)

        watcher = threading.Thread(target=sample, daemon=True)
        watcher.start()
        code = proc.wait()
        watcher.join()
    if code:
        raise SystemExit(f"error: {' '.join(cmd)} exited {code}; see {log}")
    return time.perf_counter() - start, peak[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "imdb"))
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--shards", type=int, default=10)
    ap.add_argument("--concurrency", type=int, help="Ray actors (default: one a CPU)")
    ap.add_argument("--out", default="runs/ray-predict")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    frame = reviews(Path(args.data), args.rows)
    frame.to_parquet(out / "reviews.parquet", index=False)
    shards = out / "shards"
    shards.mkdir(exist_ok=True)
    for old in shards.glob("*.parquet"):
        old.unlink()
    size = -(-len(frame) // args.shards)
    for i in range(args.shards):
        frame.iloc[i * size:(i + 1) * size].to_parquet(shards / f"part-{i:03d}.parquet", index=False)
    textclf = [sys.executable, "-m", "textclf", "predict", args.model, "--text-column", "text"]
    (out / "local.csv").unlink(missing_ok=True)
    local_s, local_rss = timed([*textclf, "--input", str(out / "reviews.parquet"), "--output", str(out / "local.csv")],
                               out / "local.log")
    subprocess.run(["rm", "-rf", str(out / "ray")], check=True)
    ray_cmd = [*textclf, "--input", str(shards), "--output", str(out / "ray"), "--engine", "ray"]
    if args.concurrency:
        ray_cmd += ["--concurrency", str(args.concurrency)]
    ray_s, ray_rss = timed(ray_cmd, out / "ray.log")
    local = pd.read_csv(out / "local.csv", dtype={"review_id": str}).set_index("review_id")
    ray_rows = pd.concat([pd.read_parquet(p) for p in sorted((out / "ray").glob("*.parquet"))]).set_index("review_id")
    ray_rows = ray_rows.loc[local.index]
    probs = [c for c in local.columns if c.startswith("prob_")]
    same = local.predicted_label.to_numpy() == ray_rows.predicted_label.astype(str).to_numpy()
    result = {
        "rows": len(frame), "local_s": round(local_s, 1), "ray_s": round(ray_s, 1),
        "local_reviews_per_s": round(len(frame) / local_s, 1), "ray_reviews_per_s": round(len(frame) / ray_s, 1),
        "ratio": round(local_s / ray_s, 3), "local_peak_mb": round(local_rss / 2**20),
        "ray_peak_mb": round(ray_rss / 2**20), "labels_equal": float(same.mean()),
        "max_prob_diff": float(abs(local[probs].to_numpy(float) - ray_rows[probs].to_numpy(float)).max()),
    }
    print(f"{len(frame):,} reviews: textclf predict --input {local_s:.1f} s ({result['local_reviews_per_s']:,.0f}/s, "
          f"peak {result['local_peak_mb']:,} MB); --engine ray {ray_s:.1f} s ({result['ray_reviews_per_s']:,.0f}/s, "
          f"peak {result['ray_peak_mb']:,} MB): {result['ratio']:.2f}x; labels equal on {result['labels_equal']:.2%}, "
          f"probabilities within {result['max_prob_diff']:.1e}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
