"""Load test of `textclf serve` on loopback: concurrent clients, bounded in requests and seconds.

    python benchmarks/loadtest.py MODEL_DIR [--clients 8] [--requests 2000] [--duration 60]
    python benchmarks/loadtest.py MODEL_DIR --clients 32 --texts ../shared/data/imdb/test.parquet

starts `textclf serve MODEL_DIR` on 127.0.0.1 (a free port), waits for /health, sends `--warmup`
uncounted requests, then POSTs /predict from `--clients` concurrent clients until `--requests` are
done or `--duration` seconds pass, stops the server, and reports requests/s, p50/p99 latency, errors
and 503s (a full queue). Then, in this process, it times the Python API on the same texts
(`Classifier.predict_proba` over all of them at once, the same threads) and prints the server's
texts/s as a fraction of that. `--url http://127.0.0.1:PORT` targets a server that is already running
instead (loopback only; no Python API figure). Exits 1 if any request failed other than with a 503.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import random
import shlex
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


def read_texts(path: str, column: str, sample: int, seed: int) -> list[str]:
    """A seeded sample of `sample` texts from a .txt file (one text a line) or any table textclf reads
    (csv/tsv/jsonl/parquet): the whole file's lengths, not its first rows'."""
    if path.endswith(".txt"):
        texts = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        sys.path.insert(0, str(REPO))
        from textclf.data import read_table

        table = read_table(path)
        if column not in table.columns:
            raise SystemExit(f"error: {path} has no column {column!r} (columns: {', '.join(map(str, table.columns))}); "
                             "set --text-column")
        texts = [t for t in table[column].astype(str) if t.strip()]
    if not texts:
        raise SystemExit(f"error: {path} has no texts")
    return random.Random(seed).sample(texts, min(sample, len(texts)))


def api_rate(model_dir: str, texts: list[str], threads: int | None, device: str, bf16: bool | str,
             repeats: int) -> float:
    """The Python API's reviews/s on `texts`: one `predict_proba` over all of them, the median of `repeats`."""
    import torch

    sys.path.insert(0, str(REPO))
    from textclf.inference.classifier import Classifier

    if threads:
        torch.set_num_threads(threads)
    clf = Classifier.load(model_dir, device, bf16)
    clf.predict_proba(texts[:64])  # warm up: first calls allocate and pick kernels
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        clf.predict_proba(texts)
        seconds.append(time.perf_counter() - start)
    return len(texts) / float(np.median(seconds))


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


class Connection:
    """One client's keep-alive HTTP/1.1 connection, written by hand: httpx's AsyncClient spent ~4 ms of CPU per
    request, on the cores the server runs on, so it measured the load generator more than the server."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        writer.write(b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                     % (path.encode(), self.host.encode(), len(body)) + body)
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        length, close = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
            elif name == b"transfer-encoding":
                raise ConnectionError(f"a {value.strip().decode()} response; this client reads Content-Length only")
        data = await reader.readexactly(length)
        if close:
            self.close()
        return int(status_line.split()[1]), data

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def run_load(url: str, bodies: list[dict], clients: int, requests: int, duration: float) -> dict:
    """`clients` workers, one connection each, share one request counter; each request's latency is measured
    on its own. Only answered requests (200) count toward requests/s and latency; 503s and failures are counted."""
    parts = urlsplit(url)
    payloads = [json.dumps(b).encode() for b in bodies]  # encoded once: the clients' CPU is the server's too
    path = (parts.path.rstrip("/") or "") + "/predict"
    latencies: list[float] = []
    errors: list[str] = []
    rejected = 0
    issued = 0
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal issued, rejected
        conn = Connection(parts.hostname, parts.port or 80)
        try:
            while issued < requests and time.perf_counter() < deadline:
                body = payloads[issued % len(payloads)]
                issued += 1
                t0 = time.perf_counter()
                try:
                    async with asyncio.timeout(60):
                        status, data = await conn.post(path, body)
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, IndexError) as e:
                    errors.append(f"{type(e).__name__}: {e}")
                    conn.close()
                    continue
                if status == 503:
                    rejected += 1
                elif status != 200:
                    errors.append(f"{status} {data[:200].decode(errors='replace')}")
                else:
                    latencies.append(time.perf_counter() - t0)
        finally:
            conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    seconds = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {
        "requests": len(latencies) + len(errors) + rejected, "errors": len(errors), "rejected_503": rejected,
        "first_errors": errors[:3],
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
    p.add_argument("--texts", help="texts to send: a .txt file (one a line) or a csv/tsv/jsonl/parquet table, "
                                    "e.g. ../shared/data/imdb/test.parquet")
    p.add_argument("--text-column", default="text")
    p.add_argument("--sample", type=int, default=2000, help="--texts: how many, drawn with --seed (default 2000)")
    p.add_argument("--words", default="20,250", help="synthetic texts: min,max words (default 20,250)")
    p.add_argument("--server-threads", type=int,
                   help="PyTorch threads: the started server's --threads and the Python API's (default: PyTorch's)")
    p.add_argument("--device", default="auto", help="the server's and the Python API's --device (default auto)")
    precision = p.add_mutually_exclusive_group()  # neither: both as textclf serve and Classifier.load default
    precision.add_argument("--bf16", dest="bf16", action="store_const", const=True, default="auto",
                           help="serve and time the Python API in bfloat16 (default: where the CPU has it natively)")
    precision.add_argument("--float32", dest="bf16", action="store_const", const=False,
                           help="serve and time the Python API in exact float32")
    p.add_argument("--serve-args", default="",
                   help='more `textclf serve` options, e.g. "--batch-window-ms 2 --max-batch 32"')
    p.add_argument("--api-repeats", type=int, default=3,
                   help="times the Python API labels the texts, the median counts (default 3; 0: skip)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", help="write the report as JSON here")
    args = p.parse_args(argv)
    if min(args.clients, args.requests, args.batch, args.sample) <= 0 or args.duration <= 0 or args.api_repeats < 0:
        p.error("--clients, --requests, --duration, --batch and --sample must be > 0, --api-repeats >= 0")
    if bool(args.url) == bool(args.model_dir):
        p.error("give MODEL_DIR (the test starts a server) or --url of a running one, not both")

    if args.texts:
        texts = read_texts(args.texts, args.text_column, args.sample, args.seed)
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
        extra = ["--max-texts", str(max(64, args.batch)), "--device", args.device, *shlex.split(args.serve_args)]
        extra += ["--max-queue", str(max(256, args.batch))] if "--max-queue" not in extra else []
        extra += ["--threads", str(args.server_threads)] if args.server_threads else []
        extra += {True: ["--bf16"], False: ["--float32"]}.get(args.bf16, [])
        server = start_server(args.model_dir, port, extra)
    try:
        health = before = wait_healthy(url, server, timeout=180)
        if args.warmup:
            asyncio.run(run_load(url, bodies, args.clients, args.warmup, args.duration))
            before = httpx.get(f"{url}/health", timeout=10).json()
        report = asyncio.run(run_load(url, bodies, args.clients, args.requests, args.duration))
        if "batches" in before:  # the server's own count: how many texts its batcher gathered per model call
            after = httpx.get(f"{url}/health", timeout=10).json()
            batches = after["batches"] - before["batches"]
            # with --workers N each process counts its own: the figure is one worker's, when one answered both
            same = before.get("pid") == after.get("pid")
            report["texts_per_batch"] = round((after["texts"] - before["texts"]) / batches, 1) if batches and same \
                else None
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
    api = None
    if args.model_dir and args.api_repeats:  # after the server has stopped: the two never share the CPU
        api = api_rate(args.model_dir, texts, args.server_threads, args.device, args.bf16, args.api_repeats)
    report = {"url": url, "model": health.get("model"), "clients": args.clients, "batch": args.batch,
              "server_threads": args.server_threads, "serve_args": args.serve_args, "bf16": args.bf16,
              "texts": (f"file {args.texts}, {len(texts)} sampled (seed {args.seed})" if args.texts
                        else f"synthetic, {args.words} words"), **report,
              "api_reviews_per_s": round(api, 1) if api else None,
              "server_vs_api": round(report["texts_per_s"] / api, 3) if api else None}
    print(f"{report['requests']} requests from {args.clients} clients in {report['seconds']} s: "
          f"{report['requests_per_s']} requests/s ({report['texts_per_s']} texts/s), "
          f"latency p50 {report['latency_p50_ms']} ms, p99 {report['latency_p99_ms']} ms, "
          f"errors {report['errors']}, 503s {report['rejected_503']}"
          + (f", {report['texts_per_batch']} texts per model call" if report.get("texts_per_batch") else ""))
    if api:
        print(f"Python API on the same {len(texts)} texts: {report['api_reviews_per_s']} reviews/s; "
              f"the server's texts/s are {report['server_vs_api']}x that")
    print(json.dumps(report))
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
