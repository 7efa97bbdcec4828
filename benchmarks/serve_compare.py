"""`textclf serve --workers N` against gunicorn with uvicorn workers, the usual way to run N ASGI processes.

    pip install gunicorn uvicorn-worker          # for this comparison only: textclf does not depend on them
    python benchmarks/serve_compare.py MODEL_DIR [--workers 2] [--clients 32] [--requests 2000] [--rounds 3]
        [--texts ../shared/data/imdb/test.parquet]

Each round load-tests (benchmarks/loadtest.py, same clients, texts and requests) first gunicorn
(`gunicorn -k uvicorn_worker.UvicornWorker -w N 'textclf.serving.app:from_env()'`, each worker building the
same app with the same threads as textclf's workers), then `textclf serve --workers N`, and prints requests/s,
median and p99 latency, errors and 503s of each. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def load(args, url: str | None, serve_args: str, out: Path) -> dict:
    cmd = [sys.executable, "benchmarks/loadtest.py", "--clients", str(args.clients), "--requests",
           str(args.requests), "--output", str(out)]
    if args.texts:
        cmd += ["--texts", args.texts]
    cmd += ["--url", url] if url else [args.model_dir, "--serve-args", serve_args]
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads(out.read_text())


def gunicorn_round(args, out: Path) -> dict:
    port = free_port()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "TEXTCLF_MODEL": args.model_dir, "TEXTCLF_DEVICE": "cpu",
           "WEB_CONCURRENCY": str(args.workers)}  # each worker takes its share of the cores, as serve's do
    gunicorn = Path(sys.executable).with_name("gunicorn")  # this environment's, activated or not
    gunicorn = str(gunicorn) if gunicorn.exists() else "gunicorn"
    server = subprocess.Popen([gunicorn, "-k", "uvicorn_worker.UvicornWorker", "-w", str(args.workers),
                               "--bind", f"127.0.0.1:{port}", "--timeout", "120", "textclf.serving.app:from_env()"],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, pids = time.monotonic() + 180, set()
        while len(pids) < args.workers and time.monotonic() < deadline:  # every worker up: each answers /health
            try:
                pids.add(httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()["pid"])
            except httpx.HTTPError:
                time.sleep(0.2)
        return load(args, f"http://127.0.0.1:{port}", "", out)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--texts", default=str(REPO.parent / "shared" / "data" / "imdb" / "test.parquet"))
    ap.add_argument("--out", default="runs/serve-compare")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in range(args.rounds):
        for name in ("gunicorn", "textclf"):
            report = gunicorn_round(args, out / f"{name}-{r}.json") if name == "gunicorn" else \
                load(args, None, f"--workers {args.workers}", out / f"{name}-{r}.json")
            keys = ("requests_per_s", "latency_p50_ms", "latency_p99_ms", "errors", "rejected_503")
            row = {"server": name, "round": r, **{k: report.get(k) for k in keys}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
