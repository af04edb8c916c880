"""Several uvicorn workers that share the load evenly: one ``SO_REUSEPORT`` listening socket each.

``uvicorn --workers N`` binds one socket in a supervisor and lets every worker ``accept()`` on it, so a
worker that happens to be idle when clients connect takes their keep-alive connections for good. The
benchmark saw 32 client connections split 32/0 and 26/6 between two workers: one worker saturated
while the other idled, and latency at half the load was that of a single overloaded process.

Here every worker binds its own socket to the same address with ``SO_REUSEPORT``; the kernel then
spreads new connections across the sockets by a hash of the client's address and port (Linux), so each
worker gets its share whatever it is doing at the moment. The supervisor restarts a worker that dies
and stops them all on SIGINT/SIGTERM. Where ``SO_REUSEPORT`` is missing, it is uvicorn's own
``--workers``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time
from typing import Any

log = logging.getLogger(__name__)

RESTART_PAUSE = 1.0
"""Seconds between restarts of a crashing worker (so a broken deploy does not spin)."""

WEBSOCKET_OPTIONS: dict[str, Any] = {
    # permessage-deflate: uvicorn negotiates it by default with every client that offers it (browsers do,
    # as does the `websockets` client). It keeps a zlib compressor and decompressor per connection and
    # runs one compression per frame, for frames of ~150 bytes that barely shrink: ~40 kB of memory per
    # socket and CPU on every event (bench/README.md, "Subscriptions at scale"). A proxy may compress.
    "ws_per_message_deflate": False,
    # uvicorn's sans-I/O protocol (its `auto`) without the handshake's request/response kept for the life
    # of the socket, and with a list-based receive queue and write event instead of asyncio's (deques):
    # ~5 kB less per socket (app/ws_protocol.py; bench/README.md, "Subscriptions at scale", session 6).
    "ws": "app.ws_protocol:LeanWebSocketProtocol",
}
"""How every Kabinet server speaks websocket: ``kabinet serve``, ``python -m app.workers`` and the
benchmarks all start uvicorn through :func:`run`, which applies these (an explicit option wins)."""


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` that other processes may bind too (``SO_REUSEPORT``)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _worker(target: str, host: str, port: int, options: dict[str, Any]) -> None:
    import uvicorn

    sock = reuse_port_socket(host, port)
    config = uvicorn.Config(target, host=host, port=port, **options)
    uvicorn.Server(config).run(sockets=[sock])


def run(
    target: str,
    *,
    host: str,
    port: int,
    workers: int,
    metrics_address: tuple[str, int] | None = None,
    database_url: str | None = None,
    **options: Any,
) -> None:
    """Serve ``target`` (an ASGI app import string) with ``workers`` processes on ``host:port``.

    ``options`` are :class:`uvicorn.Config` keyword arguments (``factory``, ``log_level``, …); one worker
    (or ``reload``) is plain ``uvicorn.run``. With several workers and ``metrics_address``, the workers
    write their metrics to a fresh ``PROMETHEUS_MULTIPROC_DIR`` and this supervisor serves ``/metrics`` for
    all of them (``app/metrics.py``; ``database_url`` for the outbox figures); one process serves its own.
    """
    import uvicorn

    options = {**WEBSOCKET_OPTIONS, **options}
    metrics_server = None
    metrics_done = None
    if workers > 1 and metrics_address is not None and not options.get("reload"):
        from app import metrics

        metrics_done = metrics.prepare_multiprocess()
        metrics_server = metrics.serve_supervisor(*metrics_address, database_url)
    try:
        if workers <= 1 or options.get("reload") or not hasattr(socket, "SO_REUSEPORT"):
            uvicorn.run(target, host=host, port=port, workers=workers if workers > 1 else None, **options)
            return
        _supervise(target, host=host, port=port, workers=workers, **options)
    finally:
        if metrics_server is not None:
            metrics_server.stop()
        if metrics_done is not None:
            metrics_done()


def _supervise(target: str, *, host: str, port: int, workers: int, **options: Any) -> None:
    """Start ``workers`` SO_REUSEPORT workers, restart the ones that die, stop them all on a signal."""
    probe = reuse_port_socket(host, port)  # fail here, once, when the address is taken
    probe.close()
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> Any:
        process = context.Process(target=_worker, args=(target, host, port, options), daemon=False)
        process.start()
        return process

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    processes = [start() for _ in range(workers)]
    log.info(
        "started %d workers on %s:%d (SO_REUSEPORT), supervisor pid %d", workers, host, port, os.getpid()
    )
    try:
        while not stopping:
            for index, process in enumerate(processes):
                if not process.is_alive() and not stopping:
                    log.warning("worker %d exited with %s; restarting", process.pid, process.exitcode)
                    _forget_metrics(process.pid)
                    time.sleep(RESTART_PAUSE)
                    processes[index] = start()
            time.sleep(0.2)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _forget_metrics(pid: int | None) -> None:
    """Drop a dead worker's live gauges from the merged metrics (multiprocess mode only)."""
    import os as _os

    if _os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from app import metrics

        metrics.worker_died(pid)


def main(argv: list[str] | None = None) -> None:
    """``python -m app.workers module:app --port 8000 --workers 2 [--factory]`` (benchmarks use it)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("target", help="ASGI app, module:attribute")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--factory", action="store_true", help="the target is an app factory")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument(
        "--ws", default=None, help="uvicorn's websocket implementation (default: WEBSOCKET_OPTIONS's)"
    )
    parser.add_argument(
        "--ws-per-message-deflate", action="store_true", help="compress frames (off by default: measurements)"
    )
    args = parser.parse_args(argv)
    from app.settings import Settings

    settings = Settings()  # KABINET_METRICS_PORT: the supervisor serves the workers' merged metrics
    run(
        args.target,
        host=args.host,
        port=args.port,
        workers=args.workers,
        factory=args.factory,
        log_level=args.log_level,
        access_log=False,
        **({"ws": args.ws} if args.ws else {}),  # else WEBSOCKET_OPTIONS
        **({"ws_per_message_deflate": True} if args.ws_per_message_deflate else {}),  # else WEBSOCKET_OPTIONS
        metrics_address=(settings.metrics_host, settings.metrics_port) if settings.metrics_port else None,
        database_url=settings.database_url,
    )


if __name__ == "__main__":
    main()
