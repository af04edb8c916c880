"""K1: `kabinet serve --workers N` (app/workers.py) spreads connections over its workers and keeps N up."""

from __future__ import annotations

import time

import httpx
import psutil

from app.settings import Settings
from tests.test_notifications import _free_port, _kabinet_process


def _workers(supervisor: psutil.Process) -> list[psutil.Process]:
    """Live worker processes (a killed one stays a zombie until the supervisor reaps it)."""
    found = []
    for child in supervisor.children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:  # gone or zombie between the two calls
            continue
    return found


def _wait_for_workers(
    supervisor: psutil.Process, count: int, not_pids: set[int] = frozenset()
) -> list[psutil.Process]:  # type: ignore[assignment]
    for _ in range(300):
        found = [worker for worker in _workers(supervisor) if worker.pid not in not_pids]
        if len(found) == count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"expected {count} workers, found {_workers(supervisor)}")


def _established(worker: psutil.Process, port: int) -> int:
    return sum(
        1
        for connection in worker.net_connections("tcp")
        if connection.status == psutil.CONN_ESTABLISHED and connection.laddr.port == port
    )


def test_K1_every_worker_takes_connections_and_a_dead_worker_is_replaced(settings: Settings) -> None:
    port = _free_port()
    with _kabinet_process(settings, port, workers=2) as url:
        supervisor = psutil.Process(_kabinet_process.last.pid)  # type: ignore[attr-defined]
        workers = _wait_for_workers(supervisor, 2)
        clients = [httpx.Client(base_url=url) for _ in range(16)]
        try:
            for client in clients:  # one keep-alive connection each, opened one after another
                assert client.get("/healthz").status_code == 200
            counts = {worker.pid: _established(worker, port) for worker in workers}
            assert sum(counts.values()) == 16, counts
            assert all(count > 0 for count in counts.values()), counts  # uvicorn's shared socket: 16/0
        finally:
            for client in clients:
                client.close()

        workers[0].kill()
        replaced = _wait_for_workers(supervisor, 1, not_pids={worker.pid for worker in workers})
        assert replaced[0].pid != workers[0].pid
        for _ in range(100):
            if httpx.get(url + "/healthz").status_code == 200 and len(_workers(supervisor)) == 2:
                break
            time.sleep(0.1)
        assert len(_workers(supervisor)) == 2
    assert not supervisor.is_running() or supervisor.status() == psutil.STATUS_ZOMBIE
