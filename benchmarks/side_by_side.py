"""Two training runs at once on one machine, against the same two one after the other.

    python benchmarks/side_by_side.py --init-from runs/imdb [--data ../shared/data/airline_tweets] [--rows 2000]
        [--runs 2] [--repeats 1] [--wait-policy default|passive|spin:N] [--split true|false] [--out runs/side-by-side]

Each run is a default fine-tuning run (`python train.py --config configs/finetune.yaml init_from=...`) on the
same `--rows` tweets (the airline sentiment labels, neutral dropped). The runs go once one after the other,
then all at once; the figure is the wall time of the simultaneous runs over the sum of the sequential ones
(1.0: sharing the cores costs nothing; 0.5: two runs side by side finish in half the time). `--wait-policy`
is how OpenMP's threads wait: passive (textclf's default for train.py) or the library's default, with
OMP_WAIT_POLICY empty (spinning a while after every parallel region); `--split` is train.split_directions (the
BiLSTM's two directions on two threads at once: textclf's default). For each lone run it also prints its CPU use
(CPU seconds over wall seconds, of the whole command) and its training tokens/s (log.jsonl). Run it alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent


def rows(data: Path, n: int, out: Path) -> tuple[Path, Path]:
    """`n` real tweets (negative/positive) to train on and 1,000 to test on, as CSV files."""
    out.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", n), ("test", 1000)):
        frame = pd.read_csv(data / f"{split}.csv", dtype=str, keep_default_na=False)
        frame = frame[frame.airline_sentiment != "neutral"].sample(count, random_state=0)
        frame[["text", "airline_sentiment"]].to_csv(out / f"{split}.csv", index=False)
    return out / "train.csv", out / "test.csv"


def command(init_from: str, train: Path, test: Path, run_dir: Path, split: str) -> list[str]:
    return [sys.executable, "train.py", "--config", "configs/finetune.yaml", f"init_from={init_from}",
            f"data.train={train}", f"data.test={test}", "data.label_column=airline_sentiment",
            f"run_dir={run_dir}", "overwrite=true", f"train.split_directions={split}"]


def launch(cmds: list[list[str]], env: dict, logs: list[Path]) -> list[subprocess.Popen]:
    return [subprocess.Popen(c, cwd=REPO, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)  # noqa: SIM115
            for c, log in zip(cmds, logs, strict=True)]


def wait(procs: list[subprocess.Popen]) -> float:
    """Wait for every process; the CPU seconds they used (user + system, from the kernel's accounting)."""
    cpu = 0.0
    for p in procs:
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode:
            raise SystemExit(f"error: a run exited {p.returncode}; see its log in --out")
        cpu += usage.ru_utime + usage.ru_stime
    return cpu


def tokens_per_second(run_dir: Path) -> float:
    """The run's training tokens/s over its epochs (log.jsonl)."""
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "tokens_per_s" in r]
    return sum(r["tokens_per_s"] for r in rows) / max(len(rows), 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init-from", required=True, help="the model to fine-tune (e.g. runs/imdb)")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "airline_tweets"))
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1, help="sequential-then-simultaneous rounds")
    ap.add_argument("--wait-policy", default="passive",
                    help="passive (default), default (the library's: OMP_WAIT_POLICY empty), or spin:N (libgomp "
                         "spins N times before it sleeps: GOMP_SPINCOUNT=N)")
    ap.add_argument("--split", default="true", choices=("true", "false"),
                    help="train.split_directions: the BiLSTM's directions on two threads at once (default: true)")
    ap.add_argument("--out", default="runs/side-by-side")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    train, test = rows(Path(args.data), args.rows, out / "data")
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE" if args.wait_policy == "passive" else ""}
    if args.wait_policy.startswith("spin:"):
        env["GOMP_SPINCOUNT"] = args.wait_policy.split(":", 1)[1]
    env.pop("OMP_NUM_THREADS", None)
    cmds = [command(args.init_from, train, test, out / f"run{i}", args.split) for i in range(args.runs)]
    logs = [out / f"run{i}.log" for i in range(args.runs)]
    rounds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        each, lone = [], []
        for i, (c, log) in enumerate(zip(cmds, logs, strict=True)):
            t = time.perf_counter()
            cpu = wait(launch([c], env, [log]))
            each.append(time.perf_counter() - t)
            lone.append({"wall_s": round(each[-1], 1), "cpu_s": round(cpu, 1), "cores_busy": round(cpu / each[-1], 2),
                         "train_tokens_per_s": round(tokens_per_second(out / f"run{i}"))})
        sequential = time.perf_counter() - start
        start = time.perf_counter()
        wait(launch(cmds, env, logs))
        together = time.perf_counter() - start
        accuracy = [json.loads((out / f"run{i}" / "metrics.json").read_text())["test"]["accuracy"]
                    for i in range(args.runs)]
        rounds.append({"sequential_s": round(sequential, 1), "each_s": [round(s, 1) for s in each],
                       "together_s": round(together, 1), "ratio": round(together / sequential, 3),
                       "test_accuracy": accuracy, "lone": lone})
        for i, r in enumerate(lone):
            print(f"run {i} alone: {r['wall_s']} s wall, {r['cpu_s']} CPU s ({r['cores_busy']} of the cores busy), "
                  f"training {r['train_tokens_per_s']:,} tokens/s", flush=True)
        print(f"{args.runs} runs, wait policy {args.wait_policy}, split {args.split}: one after the other "
              f"{sequential:.1f} s ({', '.join(f'{s:.1f}' for s in each)}), side by side {together:.1f} s: "
              f"{together / sequential:.2f}x", flush=True)
    print(json.dumps({"rows": args.rows, "runs": args.runs, "wait_policy": args.wait_policy, "split": args.split,
                      "rounds": rounds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
