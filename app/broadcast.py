"""Publish/subscribe for subscription events: broadcaster over Redis between processes, else in-process.

Events are published only after the database transaction that produced them has committed; a client
that missed some asks for them again with a cursor, so the broker is a doorbell, not the record.
Issue 8 hardens this (reconnecting listener, bounded queues); the interface stays the same.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from broadcaster import Broadcast


def _backend_for(redis_url: str | None) -> Broadcast:
    if redis_url:
        from broadcaster._backends.redis import RedisBackend

        return Broadcast(backend=RedisBackend(redis_url))
    return Broadcast("memory://")


class EventBus:
    """Channels of JSON messages; ``user:<id>`` carries everything one user's clients should hear."""

    def __init__(self, redis_url: str | None, *, prefix: str = "kabinet") -> None:
        self._broadcast = _backend_for(redis_url)
        self.prefix = prefix

    def channel(self, name: str) -> str:
        """The broker's channel name for a logical channel (prefixed, so deployments can share Redis)."""
        return f"{self.prefix}:{name}"

    async def connect(self) -> None:
        """Open the broker connection (application startup)."""
        await self._broadcast.connect()

    async def disconnect(self) -> None:
        """Close the broker connection (application shutdown)."""
        await self._broadcast.disconnect()

    async def publish(self, name: str, message: dict[str, Any]) -> None:
        """Send one event to everybody listening on ``name``; call after the commit."""
        await self._broadcast.publish(self.channel(name), json.dumps(message, default=str))

    async def listen(self, name: str) -> AsyncIterator[dict[str, Any]]:
        """Events of channel ``name`` as they arrive, until the consumer stops iterating."""
        async with self._broadcast.subscribe(self.channel(name)) as subscriber:
            async for event in subscriber:  # type: ignore[union-attr]
                yield json.loads(event.message)
