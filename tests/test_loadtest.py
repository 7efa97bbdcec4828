"""The loopback load test in benchmarks/ runs end to end: a real server process, concurrent clients, no errors."""

import importlib.util
import json

import pytest

from .conftest import REPO

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
    assert report["url"].startswith("http://127.0.0.1:")
    assert "requests/s" in capsys.readouterr().out


def test_load_test_refuses_addresses_off_this_machine():
    with pytest.raises(SystemExit, match="not a loopback address"):
        loadtest.main(["--url", "http://10.0.0.5:8000", "--requests", "1"])
    assert loadtest.check_loopback("http://localhost:8000/") == "http://localhost:8000"
