"""Publish/subscribe for subscription events: broadcaster over Redis between processes, else in-process.

Events are published only after the database transaction that produced them has committed; a client
that missed some asks for them again with a cursor, so the broker is a doorbell, not the record.
The Redis backend reconnects by itself after Redis drops (see :class:`RedisPubSubBackend`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from broadcaster import Broadcast, Event
from broadcaster._backends.base import BroadcastBackend
from redis import asyncio as redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class RedisPubSubBackend(BroadcastBackend):
    """broadcaster backend over Redis pub/sub that survives Redis restarts.

    broadcaster's own Redis backend loses messages to a race (its listener can stop before the first
    SUBSCRIBE completes) and never reconnects. This one keeps its pub/sub connection alive from the
    start (it subscribes a control channel first), reads with a timeout, and on a connection error
    reconnects with backoff and re-subscribes every channel. Messages published while Redis was away
    are lost, by the nature of pub/sub: clients catch up through their cursors.
    """

    def __init__(self, url: str, *, control_channel: str = "kabinet:control") -> None:
        self._url = url
        self._control = control_channel
        self._channels: set[str] = set()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._conn: redis.Redis | None = None
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self.reconnects = 0

    async def connect(self) -> None:
        self._conn = redis.Redis.from_url(self._url)
        await self._open()
        self._listener = asyncio.create_task(self._listen(), name="kabinet-redis-listener")

    async def _open(self) -> None:
        assert self._conn is not None
        pubsub = self._conn.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self._control, *self._channels)
        self._pubsub = pubsub

    async def disconnect(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        if self._conn is not None:
            await self._conn.aclose()

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.subscribe(channel)  # after a failure, _reconnect subscribes it

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, message: Any) -> None:
        assert self._conn is not None
        await self._conn.publish(channel, message)

    async def next_published(self) -> Event:
        return await self._queue.get()

    async def _listen(self) -> None:
        backoff = 0.05
        while True:
            try:
                assert self._pubsub is not None
                message = await self._pubsub.get_message(timeout=1.0)
                backoff = 0.05
                if message is not None and message["type"] == "message":
                    channel = message["channel"].decode()
                    if channel != self._control:
                        await self._queue.put(Event(channel=channel, message=message["data"].decode()))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, RuntimeError) as error:
                log.warning("redis pub/sub connection lost (%s); reconnecting in %.2fs", error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                with contextlib.suppress(Exception):
                    if self._pubsub is not None:
                        await self._pubsub.aclose()
                try:
                    await self._open()
                    self.reconnects += 1
                    log.info("redis pub/sub reconnected; %d channels re-subscribed", len(self._channels))
                except (RedisError, OSError) as again:
                    log.warning("redis still unavailable: %s", again)


def _backend_for(redis_url: str | None, prefix: str) -> Broadcast:
    if redis_url:
        return Broadcast(backend=RedisPubSubBackend(redis_url, control_channel=f"{prefix}:control"))
    return Broadcast("memory://")


class EventBus:
    """Channels of JSON messages; ``user:<id>`` carries everything one user's clients should hear."""

    def __init__(self, redis_url: str | None, *, prefix: str = "kabinet") -> None:
        self._broadcast = _backend_for(redis_url, prefix)
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
