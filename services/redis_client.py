"""One way to open Redis clients: a pool that waits for a free connection instead of failing.

redis-py's default asyncio pool holds at most 100 connections and raises ``MaxConnectionsError`` ("Too
many connections") for the 101st concurrent command: 1,000 websockets connecting at once failed their
revocation-flag checks that way (issue 21). A blocking pool bounds the connections a process opens to
Redis *and* queues the excess commands for up to ``timeout`` seconds.
"""

from __future__ import annotations

from redis import asyncio as redis

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
