"""Running the service (serving/server.py): the address, the workers and their supervisor."""

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from textclf.errors import ServiceFailed, TextclfError
from textclf.serving import server

from ..conftest import REPO, wait_until_serving


def _exit_with(settings, family, address, log_level, ready, errors, parent):
    """A stand-in worker: says an input error, or exits with a code, as `settings` ask."""
    if settings.get("message"):
        errors.put(settings["message"])
        raise SystemExit(2)
    if settings.get("wait"):
        ready.wait()
        time.sleep(settings["wait"])
    raise SystemExit(settings["code"])


def _free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.create_server((host, 0), family=family) as s:
        return s.getsockname()[1]


def test_the_address_is_resolved_once_ipv6_too():
    """--host :: or ::1 was refused by an IPv4-only port check (issue 23)."""
    port = _free_port("::1")
    family, address = server.resolve("::1", port)
    assert family == socket.AF_INET6 and address[:2] == ("::1", port)
    server.check_port(family, address)
    assert server.resolve("127.0.0.1", port)[0] == socket.AF_INET
    with socket.create_server(("127.0.0.1", 0)) as busy, pytest.raises(TextclfError, match="pick another --port"):
        server.check_port(*server.resolve("127.0.0.1", busy.getsockname()[1]))
    with pytest.raises(TextclfError, match=r"pick a --host of this machine"):  # it said: pick another --port
        server.check_port(*server.resolve("192.0.2.1", port))  # TEST-NET-1: never this machine's


def test_a_port_that_may_not_be_used_names_the_port(monkeypatch):
    """Port 80 for a user who may not bind it (EACCES): the port is the fix, not the host."""
    import errno

    def refused(family, address, reuse_port=False):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(server, "listen", refused)
    with pytest.raises(TextclfError, match=r"\(Permission denied\); pick another --port"):
        server.check_port(*server.resolve("127.0.0.1", 80))


def test_workers_are_refused_where_the_kernel_would_not_spread_connections(monkeypatch, tiny_run):
    loaded = []
    monkeypatch.setattr(server, "_supervise", lambda *a, **k: loaded.append(1))
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(TextclfError, match="--workers 2 needs Linux"):
        server.serve(str(tiny_run), port=_free_port(), workers=2)
    assert not loaded  # refused before any model loads
    server.check_workers(1)  # one worker runs anywhere


@pytest.mark.parametrize(("settings", "error", "code"), [
    ({"code": 0, "wait": 0.5}, ServiceFailed, 1),  # a worker that ends on its own, even cleanly, is noticed
    ({"code": 7}, ServiceFailed, 1),  # a crash: exit 1, not 2 (bad input)
    ({"message": "model folder not found: x"}, TextclfError, 2),  # a worker's input error: its line, exit 2
])
def test_a_worker_that_exits_stops_the_others_and_fails_the_command(settings, error, code):
    family, address = server.resolve("127.0.0.1", _free_port())
    started = time.monotonic()
    with pytest.raises(error) as caught:
        server._supervise(2, settings, family, address, "warning", "serving", target=_exit_with)
    assert caught.value.exit_code == code and time.monotonic() - started < 60
    if code == 2:
        assert str(caught.value) == "model folder not found: x"


@pytest.mark.slow
def test_an_ipv6_host_serves(tiny_run):
    port = _free_port("::1")
    proc = subprocess.Popen([sys.executable, "-m", "textclf", "serve", str(tiny_run), "--host", "::1", "--port",
                             str(port)], cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else ""
            try:
                assert httpx.get(f"http://[::1]:{port}/health", timeout=2).json()["status"] == "ok"
                break
            except httpx.HTTPError:
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


@pytest.mark.slow
def test_workers_die_with_their_supervisor(tiny_run):
    """A SIGKILLed supervisor cannot stop its workers: they end by themselves (the parent-death signal)."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "textclf", "serve", str(tiny_run), "--port", str(port),
                             "--workers", "2"], cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        wait_until_serving(proc, port)
        pids = {httpx.get(f"http://127.0.0.1:{port}/health").json()["pid"] for _ in range(20)}
        assert proc.pid not in pids
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 20
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = {p for p in alive if _alive(p)}
    assert not alive


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie has ended; only its exit status waits to be read
        return f.read().split(")")[-1].split()[0] != "Z"
