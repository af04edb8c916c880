"""One way to open Redis clients: a pool that waits for a free connection instead of failing.

redis-py's default asyncio pool holds at most 100 connections and raises ``MaxConnectionsError`` ("Too
many connections") for the 101st concurrent command: 1,000 websockets connecting at once failed their
revocation-flag checks that way (issue 21). A blocking pool bounds the connections a process opens to
Redis *and* queues the excess commands for up to ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis import asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64
"""Connections one process's client opens to Redis at most (commands beyond wait their turn)."""

WAIT_SECONDS = 5.0
"""How long a command waits for a free connection before it fails."""


def connect(url: str, *, name: str | None = None, max_connections: int = MAX_CONNECTIONS) -> redis.Redis:
    """A client of ``url`` over a blocking pool; ``name`` is what ``CLIENT LIST`` shows."""
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=WAIT_SECONDS, client_name=name
    )
    return redis.Redis(connection_pool=pool)


class Coalescer:
    """A process's small Redis reads and counter increments, sent together: one pipeline in flight at a
    time, and everything asked meanwhile (by any request) goes in the next one.

    An uncached request asked Redis four times one after the other (its session's revocation flag, its cost
    budget, the reference data's version, then the budget's spend): four round trips through the pool, each
    a connection check, a packed command, a ``write`` and a parsed reply — ~10 % of the server's CPU for a
    small query (issue 21). Coalesced, 16 concurrent requests share a few pipelines per loop pass instead.

    Order is kept: a batch sends its increments before its reads, and batches go one after the other on
    this one channel, so a read asked after an increment (in this process) sees it. Nothing waits for a
    timer: the first call of an idle coalescer starts the sender, which sends in the next loop pass. An
    error (Redis down) is raised to every caller of that batch, as the single commands raised it."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._reads: list[tuple[list[str], bool, asyncio.Future[Any]]] = []
        """What to read: keys, whether the caller wants a list (:meth:`get_many`), the caller's future."""
        self._increments: list[tuple[str, int, int, asyncio.Future[int] | None]] = []
        """What to add: key, amount, expiry, the caller's future (None: nobody waits, see :meth:`adjust`)."""
        self._sender: asyncio.Task[None] | None = None
        self._held: tuple[asyncio.AbstractEventLoop, Any] | None = None
        """The connection the batches go on, with the loop it belongs to (see :meth:`_exchange`)."""
        self.batches = 0
        """Pipelines sent so far (for tests and benchmarks)."""

    def get(self, key: str) -> asyncio.Future[bytes | None]:
        """The value of ``key`` (None when missing), read in the next batch (an MGET of all its reads)."""
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._reads.append(([key], False, future))
        self._wake()
        return future

    def get_many(self, keys: list[str]) -> asyncio.Future[list[bytes | None]]:
        """The values of ``keys`` in their order, read in the next batch like :meth:`get`."""
        future: asyncio.Future[list[bytes | None]] = asyncio.get_running_loop().create_future()
        self._reads.append((list(keys), True, future))
        self._wake()
        return future

    def increment(self, key: str, amount: int, ttl_seconds: int) -> asyncio.Future[int]:
        """INCRBY ``amount`` (atomic; the new total) and EXPIRE ``ttl_seconds``, in the next batch."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._increments.append((key, amount, ttl_seconds, future))
        self._wake()
        return future

    def adjust(self, key: str, amount: int, ttl_seconds: int) -> None:
        """INCRBY ``amount`` and EXPIRE ``ttl_seconds`` in the next batch, without a reply to wait for (a
        query cost's unused reservation given back): it goes ahead of every read asked after it here. A
        failure is logged at WARNING (there is no caller left to raise it to)."""
        self._increments.append((key, amount, ttl_seconds, None))
        self._wake()

    def _wake(self) -> None:
        sender = self._sender
        if sender is None or sender.done() or sender.get_loop() is not asyncio.get_running_loop():
            self._sender = asyncio.create_task(self._send(), name="kabinet-redis-coalescer")

    async def _send(self) -> None:
        while self._reads or self._increments:
            reads, self._reads = self._reads, []
            increments, self._increments = self._increments, []
            waiting: list[asyncio.Future[Any]] = [item[3] for item in increments if item[3] is not None]
            waiting += [item[2] for item in reads]
            commands: list[tuple[Any, ...]] = []
            for key, amount, ttl, _ in increments:
                commands.append(("INCRBY", key, amount))
                commands.append(("EXPIRE", key, ttl))
            if reads:
                commands.append(("MGET", *(key for keys, _, _ in reads for key in keys)))
            try:
                results = await self._exchange(commands)
            except BaseException as error:  # every caller of the batch learns, then the next batch goes
                if len(waiting) < len(increments) + len(reads):
                    log.warning("a Redis counter adjustment was lost: %s", type(error).__name__)
                for future in waiting:
                    if not future.done():
                        future.set_exception(error)
                if isinstance(error, asyncio.CancelledError):
                    raise
                continue
            self.batches += 1
            for index, (_, _, _, waiter) in enumerate(increments):
                if waiter is not None and not waiter.done():
                    waiter.set_result(int(results[2 * index]))
            if reads:
                values, start = results[-1], 0
                for keys, many, future in reads:
                    if not future.done():
                        found = values[start : start + len(keys)]
                        future.set_result(found if many else found[0])
                    start += len(keys)

    async def _exchange(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """The replies to ``commands``, sent as one write on the coalescer's own connection.

        The connection is taken from the client's pool once and kept: a pipeline takes one from the pool
        and gives it back per batch (a condition, a timeout and pool metrics each time) — half of a batch's
        CPU, ~7 % of a small query's (issue 21). Any error drops the connection (its replies may be half
        read) back to the pool disconnected; a connection that broke while idle (Redis restarted) is
        reconnected and the batch sent once more, as redis-py's own retry would."""
        for attempt in (1, 2):
            reused = self._held is not None and self._held[0] is asyncio.get_running_loop()
            connection = await self._connection()
            try:
                await connection.send_packed_command(connection.pack_commands(commands), check_health=False)
                return [await connection.read_response() for _ in commands]
            except BaseException as error:
                await self._drop(connection)
                if attempt == 2 or not reused or not isinstance(error, (RedisConnectionError, OSError)):
                    raise
        raise AssertionError("unreachable")

    async def _connection(self) -> Any:
        """The kept connection, or one taken from the pool. (A coalescer used from a new event loop — tests
        only — takes a new one; the old loop's connection is closed with the client's pool.)"""
        held = self._held
        loop = asyncio.get_running_loop()
        if held is not None and held[0] is loop:
            return held[1]
        connection = await self._client.connection_pool.get_connection()
        self._held = (loop, connection)
        return connection

    async def _drop(self, connection: Any) -> None:
        self._held = None
        with contextlib.suppress(Exception):
            await connection.disconnect(nowait=True)
        with contextlib.suppress(Exception):
            await self._client.connection_pool.release(connection)
