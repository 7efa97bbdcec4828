"""Running the service (`textclf serve`): the address, the threads, and one server process or N worker processes
on one port, supervised. The HTTP app itself is app.py.

Imports nothing heavy at the top: OpenMP reads its wait policy when torch loads, so `serve` sets it before the
app (and torch) are imported, in this process and in the workers it starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading

from ..allocator import keep_freed_memory
from ..errors import ServiceFailed, TextclfError
from ..inference import LoadOptions
from ..options import gather, no_more
from ..threads import per_worker, wait_passively
from . import require_serve_extra
from .settings import AppOptions, ServeSettings

log = logging.getLogger(__name__)


def resolve(host: str, port: int) -> tuple[socket.AddressFamily, tuple]:
    """The one address every socket of the service binds: `host` resolved once (so `localhost` cannot mean ::1 to
    one worker and 127.0.0.1 to another), IPv6 included."""
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                      flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise TextclfError(f"cannot resolve --host {host} ({e.strerror}); pass an address such as 127.0.0.1 or ::1")\
            from None
    return family, address


def listen(family: socket.AddressFamily, address: tuple, reuse_port: bool = False) -> socket.socket:
    """A listening socket on `address` (SO_REUSEPORT: one of several on the port, the kernel spreading
    connections between them)."""
    return socket.create_server(address[:2], family=family, reuse_port=reuse_port, backlog=2048,
                                dualstack_ipv6=False)


def check_port(family: socket.AddressFamily, address: tuple) -> None:
    try:
        with listen(family, address):
            pass
    except OSError as e:
        fix = "pick a --host of this machine (127.0.0.1, or 0.0.0.0 for every address)" \
            if e.errno == errno.EADDRNOTAVAIL else "pick another --port"  # in use, or below 1024 unprivileged
        raise TextclfError(f"cannot listen on {_shown(address)} ({e.strerror}); {fix}") from None


def check_workers(workers: int) -> None:
    """Several workers need the kernel to spread one port's connections over several sockets: Linux's SO_REUSEPORT.
    Elsewhere (macOS, the BSDs, Windows) the option is missing or hands every connection to one socket."""
    if workers > 1 and not (sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")):
        raise TextclfError(f"--workers {workers} needs Linux (SO_REUSEPORT spreads connections there only); on "
                           f"{sys.platform} run --workers 1, or one server per port behind a proxy")


def _shown(address: tuple) -> str:
    host, port = address[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def serve(model_dir: str, host: str = "127.0.0.1", port: int = 8000, *, log_level: str = "info", workers: int = 1,
          threads: int | None = None, **options) -> None:
    """Load the model, then run the app with uvicorn until interrupted. `options`: `loading` (`LoadOptions`: how
    the model loads, its fields also loose: `device`, `bf16`, `shortcut`, `views`) and `app` (`AppOptions`: what
    `create_app` builds, its fields also loose: `max_texts`, ...).

    `threads`: PyTorch's intra-op threads per process (default: one per core, shared out among the workers).
    `workers` > 1: that many server processes, each with its own model and batcher, each listening on the port
    with SO_REUSEPORT, so the kernel spreads connections evenly (uvicorn's own workers share one socket, and one
    process took most of the clients). One process keeps about one core busy under load (tokenising and the
    linear view hold the GIL beside the event loop); figures: benchmarks/README.md. Memory grows with each
    copy. Linux only.
    """
    loading, app = gather(LoadOptions, options, "loading"), gather(AppOptions, options, "app")
    no_more(options, "serve")
    require_serve_extra()
    wait_passively()
    if not 0 < port < 65536:
        raise TextclfError(f"--port must be in 1..65535, got {port}")
    if workers < 1:
        raise TextclfError(f"--workers must be > 0, got {workers}")
    if threads is not None and threads < 1:
        raise TextclfError(f"--threads must be > 0, got {threads}")
    check_workers(workers)
    family, address = resolve(host, port)
    check_port(family, address)
    try:
        loopback = ipaddress.ip_address(address[0].split("%")[0]).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        log.warning("listening on %s: reachable from other machines, and the service has no authentication", host)
    settings = ServeSettings(str(model_dir), loading, app, per_worker(workers, threads))
    serving = f"serving {model_dir} on http://{_shown(address)} (page at /, API docs at /docs)"
    if workers == 1:
        _run(settings, family, address, log_level, serving)
    else:
        _supervise(workers, settings, family, address, log_level, f"{serving} with {workers} worker processes")


def _run(settings: ServeSettings, family: socket.AddressFamily, address: tuple, log_level: str, serving: str) -> None:
    """One server in this process."""
    import uvicorn

    from .app import app_from_settings

    app = app_from_settings(settings)
    log.info("%s", serving)
    with listen(family, address) as sock:
        uvicorn.Server(uvicorn.Config(app, log_level=log_level)).run(sockets=[sock])


def _die_with(parent: int) -> None:
    """End this worker when the supervisor dies, even by SIGKILL: Linux's parent-death signal, set here, and a
    check for a supervisor that died before it was set."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _worker(settings: ServeSettings, family: socket.AddressFamily, address: tuple, log_level: str, ready, errors,
            parent: int) -> None:
    """One of `serve`'s worker processes: builds the app, waits for the others to have theirs (`ready`, a
    barrier), then listens (SO_REUSEPORT). Keep-alive clients stay on the process that took their connection,
    so a worker that listened first would keep every client that came before the others were up."""
    _die_with(parent)
    keep_freed_memory()  # a fresh interpreter (spawn): before torch starts its threads
    import uvicorn

    from .app import app_from_settings

    try:
        app = app_from_settings(settings)
    except TextclfError as e:  # the supervisor says it, once, as the command's error
        errors.put(str(e))
        raise SystemExit(e.exit_code) from None
    ready.wait()
    with listen(family, address, reuse_port=True) as sock:
        uvicorn.Server(uvicorn.Config(app, log_level=log_level)).run(sockets=[sock])


def _supervise(workers: int, settings: ServeSettings, family: socket.AddressFamily, address: tuple, log_level: str,
               serving: str, target=_worker) -> None:
    """Start the worker processes and wait for them, saying `serving` once all have their app. SIGTERM or Ctrl-C
    stops them all. A worker that exits on its own, for whatever reason, stops the others and fails the command:
    exit 2 with its message when it refused its input, else exit 1 (ServiceFailed)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no forked OpenMP or torch state
    ready, errors = ctx.Barrier(workers + 1), ctx.SimpleQueue()  # + 1: this process, to say when they are up

    def announce() -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            ready.wait()
            log.info("%s", serving)

    procs = [ctx.Process(target=target, args=(settings, family, address, log_level, ready, errors, os.getpid()))
             for _ in range(workers)]
    stopping = False

    def stop(*_) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.pid is not None and p.exitcode is None:
                os.kill(p.pid, signal.SIGTERM)

    ended = None
    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for p in procs:
            p.start()
        threading.Thread(target=announce, daemon=True).start()  # never released if a worker fails: daemon
        while ended is None and not stopping:
            for p in procs:
                p.join(timeout=0.2)
                if p.exitcode is not None and not stopping:  # any exit, 0 included: the service is down a worker
                    ended = p
                    break
    finally:
        stop()  # a no-op once every worker has exited
        ready.abort()
        for p in procs:
            p.join()
        for s, handler in previous.items():
            signal.signal(s, handler)
    if ended is not None:
        if not errors.empty():
            raise TextclfError(errors.get())
        raise ServiceFailed(f"worker process {ended.pid} exited with code {ended.exitcode}, so the others were "
                            "stopped; see its log above")
