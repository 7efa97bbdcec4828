"""The loopback load test in benchmarks/ runs end to end: a real server process, concurrent clients, no errors,
and the Python API timed on the same texts."""

import asyncio
import importlib.util
import json
import re

import pytest

from ..conftest import REPO, make_reviews

spec = importlib.util.spec_from_file_location("loadtest", REPO / "benchmarks" / "loadtest.py")
loadtest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(loadtest)


@pytest.mark.slow
def test_load_test_against_a_served_tiny_model(tiny_run, tmp_path, capsys):
    out = tmp_path / "report.json"
    code = loadtest.main([str(tiny_run), "--clients", "4", "--requests", "120", "--duration", "60", "--warmup", "10",
                          "--batch", "2", "--output", str(out)])
    report = json.loads(out.read_text())
    assert code == 0 and report["errors"] == 0 and report["requests"] == 120
    assert report["requests_per_s"] > 0 and 0 < report["latency_p50_ms"] <= report["latency_p99_ms"]
    assert 2 <= report["texts_per_batch"] <= 8  # 4 clients of 2 texts each: 1 to 4 requests a model call
    assert report["url"].startswith("http://127.0.0.1:")
    assert "requests/s" in capsys.readouterr().out


@pytest.mark.slow
def test_load_test_sends_sampled_reviews_and_times_the_python_api(tiny_run, tmp_path, capsys):
    reviews = tmp_path / "reviews.parquet"
    make_reviews(300, seed=3).to_parquet(reviews)
    out = tmp_path / "report.json"
    code = loadtest.main([str(tiny_run), "--clients", "8", "--requests", "100", "--warmup", "8", "--texts",
                          str(reviews), "--sample", "50", "--server-threads", "1", "--api-repeats", "1",
                          "--serve-args", "--batch-window-ms 2", "--output", str(out)])
    report = json.loads(out.read_text())
    assert code == 0 and report["errors"] == 0 and report["rejected_503"] == 0 and report["requests"] == 100
    assert report["texts"].endswith("50 sampled (seed 0)") and report["api_reviews_per_s"] > 0
    assert report["server_vs_api"] == pytest.approx(report["texts_per_s"] / report["api_reviews_per_s"], rel=1e-2)
    assert "Python API on the same 50 texts" in capsys.readouterr().out


def test_texts_are_a_seeded_sample_of_the_whole_file(tmp_path):
    table = tmp_path / "reviews.csv"
    make_reviews(200, seed=4).to_csv(table, index=False)
    sample = loadtest.read_texts(str(table), "text", 20, seed=1)
    assert len(set(sample)) == 20 and sample == loadtest.read_texts(str(table), "text", 20, seed=1)
    assert sample != loadtest.read_texts(str(table), "text", 20, seed=2)
    assert sample[:5] != make_reviews(200, seed=4).text.tolist()[:5]  # not the file's first rows
    with pytest.raises(SystemExit, match="no column 'review'"):
        loadtest.read_texts(str(table), "review", 20, seed=1)


def test_503s_are_counted_apart_from_errors_and_from_latency():
    """Against a canned HTTP/1.1 server: the clients' own keep-alive connections, one closed by the server."""
    statuses = iter([200, 503, 200, 500, 503, 200])
    bodies_seen = []

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                bodies_seen.append(await reader.readexactly(int(re.search(rb"Content-Length: (\d+)", head)[1])))
                status = next(statuses)
                close = len(bodies_seen) == 3  # the client must open a new connection for the rest
                body = b'{"error": "x"}'
                writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
                             % (status, len(body), b"Connection: close\r\n" if close else b"", body))
                await writer.drain()
                if close:
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    async def run():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        async with server:
            url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            return await loadtest.run_load(url, [{"text": "a review"}], 1, 6, 30)

    report = asyncio.run(run())
    assert (report["requests"], report["errors"], report["rejected_503"]) == (6, 1, 2)
    assert report["first_errors"] == ['500 {"error": "x"}'] and report["requests_per_s"] > 0
    assert bodies_seen == [b'{"text": "a review"}'] * 6


def test_load_test_refuses_addresses_off_this_machine():
    with pytest.raises(SystemExit, match="not a loopback address"):
        loadtest.main(["--url", "http://10.0.0.5:8000", "--requests", "1"])
    assert loadtest.check_loopback("http://localhost:8000/") == "http://localhost:8000"
