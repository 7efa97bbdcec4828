"""Load test of `textclf serve` on loopback: concurrent clients, bounded in requests and seconds.

    python benchmarks/loadtest.py MODEL_DIR [--clients 8] [--requests 2000] [--duration 60]

starts `textclf serve MODEL_DIR` on 127.0.0.1 (a free port), waits for /health, sends `--warmup`
uncounted requests, then POSTs /predict from `--clients` concurrent clients until `--requests` are
done or `--duration` seconds pass, stops the server, and reports requests/s and p50/p99 latency.
`--url http://127.0.0.1:PORT` targets a server that is already running instead (loopback only).
Exits 1 if any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
WORDS = {  # synthetic reviews: the tiny test vocabulary plus filler, so any model sees known and unknown words
    "pos": ["great", "wonderful", "excellent", "loved", "superb", "moving", "brilliant", "delightful"],
    "neg": ["awful", "boring", "terrible", "hated", "worst", "dull", "painful", "bland"],
    "filler": ["the", "film", "movie", "plot", "actor", "was", "a", "and", "story", "scene", "it", "of", "this",
               "director", "music", "ending", "cast", "really", "quite", "very", "but", "not", "with", "however",
               "watched", "acting"],
}


def synthetic_texts(n: int, seed: int, min_words: int, max_words: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        words = [rng.choice(WORDS["filler"]) for _ in range(rng.randint(min_words, max_words))]
        for _ in range(max(1, len(words) // 10)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(WORDS["pos" if i % 2 else "neg"]))
        texts.append(" ".join(words).capitalize() + ".")
    return texts


def read_texts(path: str, column: str, limit: int) -> list[str]:
    """A .txt file (one text a line) or any table textclf reads (csv/tsv/jsonl/parquet)."""
    if path.endswith(".txt"):
        texts = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        sys.path.insert(0, str(REPO))
        from textclf.data import read_table

        texts = [t for t in read_table(path)[column].astype(str) if t.strip()]
    return texts[:limit]


def check_loopback(url: str) -> str:
    host = urlsplit(url).hostname or ""
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = host == "localhost"
    if not ok:
        raise SystemExit(f"error: {url} is not a loopback address; this load test only targets 127.0.0.1/localhost")
    return url.rstrip("/")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: str, port: int, extra: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "textclf", "serve", model_dir, "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_healthy(url: str, server: subprocess.Popen | None, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise SystemExit(f"error: the server exited with code {server.returncode}:\n{server.stderr.read()}")
        try:
            return httpx.get(f"{url}/health", timeout=2).json()
        except httpx.HTTPError:
            time.sleep(0.25)
    raise SystemExit(f"error: {url}/health did not answer within {timeout:.0f} s")


async def run_load(url: str, bodies: list[dict], clients: int, requests: int, duration: float) -> dict:
    """`clients` workers share one request counter; each request's latency is measured on its own."""
    latencies: list[float] = []
    errors: list[str] = []
    issued = 0
    deadline = time.perf_counter() + duration

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < requests and time.perf_counter() < deadline:
            body = bodies[issued % len(bodies)]
            issued += 1
            t0 = time.perf_counter()
            try:
                r = await client.post(f"{url}/predict", json=body)
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                    continue
            except httpx.HTTPError as e:
                errors.append(f"{type(e).__name__}: {e}")
                continue
            latencies.append(time.perf_counter() - t0)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        seconds = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {
        "requests": len(latencies) + len(errors), "errors": len(errors), "first_errors": errors[:3],
        "seconds": round(seconds, 2), "requests_per_s": round(len(latencies) / seconds, 1),
        "texts_per_s": round(len(latencies) * len(bodies[0].get("texts", [None])) / seconds, 1),
        **{f"latency_{name}_ms": round(float(np.percentile(ms, q)), 1) if len(ms) else None
           for name, q in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", nargs="?", help="the model to serve (not needed with --url)")
    p.add_argument("--url", help="an already running server on loopback, e.g. http://127.0.0.1:8000")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    p.add_argument("--requests", type=int, default=2000, help="stop after this many requests (default 2000)")
    p.add_argument("--duration", type=float, default=60, help="or after this many seconds (default 60)")
    p.add_argument("--warmup", type=int, default=50, help="uncounted requests first (default 50)")
    p.add_argument("--batch", type=int, default=1, help="texts per request: 1 sends {text}, more {texts} (default 1)")
    p.add_argument("--texts", help="texts to send: a .txt file (one a line) or a csv/tsv/jsonl/parquet table")
    p.add_argument("--text-column", default="text")
    p.add_argument("--words", default="20,250", help="synthetic texts: min,max words (default 20,250)")
    p.add_argument("--server-threads", type=int, help="the started server's --threads (PyTorch intra-op threads)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", help="write the report as JSON here")
    args = p.parse_args(argv)
    if args.clients <= 0 or args.requests <= 0 or args.duration <= 0 or args.batch <= 0:
        p.error("--clients, --requests, --duration and --batch must be > 0")
    if bool(args.url) == bool(args.model_dir):
        p.error("give MODEL_DIR (the test starts a server) or --url of a running one, not both")

    if args.texts:
        texts = read_texts(args.texts, args.text_column, 5000)
    else:
        lo, hi = (int(v) for v in args.words.split(","))
        texts = synthetic_texts(1000, args.seed, lo, hi)
    random.Random(args.seed).shuffle(texts)
    bodies = ([{"text": t} for t in texts] if args.batch == 1 else
              [{"texts": [texts[(i + j) % len(texts)] for j in range(args.batch)]} for i in range(len(texts))])

    server = None
    if args.url:
        url = check_loopback(args.url)
    else:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        extra = ["--max-texts", str(max(64, args.batch))]
        server = start_server(args.model_dir, port, extra + (["--threads", str(args.server_threads)]
                                                             if args.server_threads else []))
    try:
        health = wait_healthy(url, server, timeout=180)
        if args.warmup:
            asyncio.run(run_load(url, bodies, args.clients, args.warmup, args.duration))
        report = asyncio.run(run_load(url, bodies, args.clients, args.requests, args.duration))
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
    report = {"url": url, "model": health.get("model"), "clients": args.clients, "batch": args.batch,
              "server_threads": args.server_threads,
              "texts": "file " + args.texts if args.texts else f"synthetic, {args.words} words", **report}
    print(f"{report['requests']} requests from {args.clients} clients in {report['seconds']} s: "
          f"{report['requests_per_s']} requests/s ({report['texts_per_s']} texts/s), "
          f"latency p50 {report['latency_p50_ms']} ms, p99 {report['latency_p99_ms']} ms, "
          f"errors {report['errors']}")
    print(json.dumps(report))
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
