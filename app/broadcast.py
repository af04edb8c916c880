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

from broadcaster import Event
from broadcaster._backends.base import BroadcastBackend
from broadcaster._backends.memory import MemoryBackend
from redis import asyncio as redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from app import metrics
from services import redis_client

log = logging.getLogger(__name__)


class RedisPubSubBackend(BroadcastBackend):
    """broadcaster backend over Redis pub/sub: one pattern subscription per process, survives Redis restarts.

    The process PSUBSCRIBEs ``<prefix>:*`` once, at startup, and fans messages out to its local listeners
    itself (:class:`EventBus`): a new local listener costs no Redis command, so it listens from the moment
    it is registered (no race with a SUBSCRIBE in flight, and 10,000 sockets do not send 10,000 commands);
    the price is that every process receives every event of the deployment and drops those nobody in it
    listens to — cheap at a few processes and hundreds of events per second.

    broadcaster's own Redis backend loses messages to a race (its listener can stop before the first
    SUBSCRIBE completes) and never reconnects. This one reads with a timeout, and when the connection is
    lost — a Redis restart, the network, or Redis closing a subscriber over its ``client-output-buffer-limit
    pubsub`` — reconnects with backoff and hands every local channel a :data:`RESYNC`: messages published
    while the connection was down are lost by the nature of pub/sub, and clients catch up through their
    cursors. Reading is never slowed by consumers (the hand-over queue is unbounded; consumers have
    bounded queues of their own), so Redis has no reason to cut the connection for a slow reader.
    """

    def __init__(self, url: str, *, pattern: str = "kabinet:*", name: str = "kabinet-bus") -> None:
        self._url = url
        self._pattern = pattern
        self._name = name  # CLIENT LIST shows the connection under this name
        self._channels: set[str] = set()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._conn: redis.Redis | None = None
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self.reconnects = 0

    async def connect(self) -> None:
        self._conn = redis_client.connect(self._url, name=self._name)
        await self._open()
        self._listener = asyncio.create_task(self._listen(), name="kabinet-redis-listener")

    async def _open(self) -> None:
        assert self._conn is not None
        pubsub = self._conn.pubsub(ignore_subscribe_messages=True)
        await pubsub.psubscribe(self._pattern)
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
        self._channels.add(channel)  # already covered by the pattern; remembered for resyncs

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    async def publish(self, channel: str, message: Any) -> None:
        assert self._conn is not None
        try:
            await self._conn.publish(channel, message)
        except (RedisError, OSError):
            # a pooled connection that died with a Redis restart fails once; the retry reconnects
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
                if message is not None and message["type"] in ("pmessage", "message"):
                    channel = message["channel"].decode()
                    self._queue.put_nowait(Event(channel=channel, message=message["data"].decode()))
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
                    for channel in self._channels:  # events published while away are gone: resync
                        self._queue.put_nowait(Event(channel=channel, message=json.dumps(RESYNC)))
                    log.info("redis pub/sub reconnected; %d channels told to resync", len(self._channels))
                except (RedisError, OSError) as again:
                    log.warning("redis still unavailable: %s", again)


RESYNC: dict[str, Any] = {"type": "resync"}
"""What a subscriber receives instead of events it may have missed (overflow, broker reconnect)."""
PUBLISHED_AT = "_kabinet_published_at"
"""Key of the publish time (wall clock, seconds) in an event on the wire; subscribers never see it."""


def glob_escape(text: str) -> str:
    """``text`` matched literally in a Redis glob pattern (PSUBSCRIBE)."""
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


class Subscriber:
    """One local listener of a channel, with a bounded queue.

    A slow consumer never makes the process hoard memory: when its queue is full, further events are
    dropped and the consumer gets a single :data:`RESYNC` instead, after which it re-reads what it
    missed from the database (events are doorbells; the rows are the record).
    """

    __slots__ = ("_overflowed", "_published_at", "_queue", "_size", "_waiter", "channel", "first_prev")

    def __init__(self, channel: str, size: int) -> None:
        self.channel = channel
        # one list and a future while the consumer waits, not an asyncio.Queue (four deques and an event,
        # ~3.3 kB) nor a deque (~620 bytes even when empty; the queue is empty nearly always and a few
        # events long at most): one per subscription, 5,000 per process at K2 scale (issue 21, session 6);
        # ``size`` ≤ 0: unbounded
        self._queue: list[dict[str, Any]] = []
        self._size = size
        self._waiter: asyncio.Future[None] | None = None
        self._overflowed = False
        self._published_at: dict[int, float] = {}  # id(message) → publish time (metrics: event lag)
        self.first_prev: int | None = None
        """``prev`` of the first message offered that carries one, kept even if the queue overflowed: a
        stream whose events chain by ``prev`` (notifications) knows from it exactly where its live part
        began, however late it gets round to reading its queue."""

    def offer(self, message: dict[str, Any], published_at: float | None = None) -> None:
        """Enqueue without waiting; on overflow remember to tell the consumer to resync."""
        if self.first_prev is None and isinstance(prev := message.get("prev"), int):
            self.first_prev = prev
        if 0 < self._size <= len(self._queue):
            self._overflowed = True
            return
        self._queue.append(message)
        if published_at is not None:
            self._published_at[id(message)] = published_at
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> dict[str, Any]:
        """The next event, or RESYNC when some were dropped."""
        while not self._queue and not self._overflowed:
            waiter = self._waiter
            if waiter is None or waiter.done():
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                if self._waiter is waiter and waiter.done():
                    self._waiter = None
        if self._overflowed:
            self._overflowed = False
            self._queue.clear()
            self._published_at.clear()
            return RESYNC
        message = self._queue.pop(0)
        # the task that consumes the event sends what it causes: app.metrics measures commit → send
        metrics.event_taken(self._published_at.pop(id(message), None))
        return message

    def drain(self) -> list[dict[str, Any]]:
        """Every event already waiting, without blocking (lets a consumer coalesce doorbells)."""
        waiting, self._queue = self._queue, []
        for message in waiting:
            self._published_at.pop(id(message), None)
        if self._overflowed:
            self._overflowed = False
            waiting.append(RESYNC)
        return waiting

    def __aiter__(self) -> Subscriber:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self.get()


class EventBus:
    """Channels of JSON messages; ``user:<id>`` carries everything one user's clients should hear.

    Transport is a broadcaster backend: Redis pub/sub between processes when ``redis_url`` is set
    (:class:`RedisPubSubBackend`), in-process memory otherwise. Fan-out to local subscribers is ours, with
    bounded queues (broadcaster's own are unbounded).
    """

    def __init__(self, redis_url: str | None, *, prefix: str = "kabinet", queue_size: int = 100) -> None:
        self.prefix = prefix
        self.queue_size = queue_size
        self._backend: BroadcastBackend = (
            RedisPubSubBackend(redis_url, pattern=f"{glob_escape(prefix)}:*", name=f"{prefix}-bus")
            if redis_url
            else MemoryBackend("memory://")
        )
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._fanout: asyncio.Task[None] | None = None

    def channel(self, name: str) -> str:
        """The broker's channel name for a logical channel (prefixed, so deployments can share Redis)."""
        return f"{self.prefix}:{name}"

    async def connect(self) -> None:
        """Open the broker connection (application startup)."""
        await self._backend.connect()
        self._fanout = asyncio.create_task(self._deliver(), name="kabinet-event-fanout")

    async def disconnect(self) -> None:
        """Close the broker connection (application shutdown)."""
        if self._fanout is not None:
            self._fanout.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fanout
        await self._backend.disconnect()

    async def _deliver(self) -> None:
        while True:
            event = await self._backend.next_published()
            listeners = self._subscribers.get(event.channel)
            if not listeners:
                continue
            try:
                message = json.loads(event.message)
            except ValueError:
                log.warning("dropping a malformed event on %s", event.channel)
                continue
            published_at = message.pop(PUBLISHED_AT, None) if isinstance(message, dict) else None
            if isinstance(published_at, float | int):
                metrics.EVENT_BUS_LAG.observe(max(0.0, metrics.wall_time() - published_at))
            else:
                published_at = None
            metrics.EVENTS_DELIVERED.inc(len(listeners))
            for subscriber in list(listeners):
                subscriber.offer(message, published_at)

    async def publish(self, name: str, message: dict[str, Any]) -> None:
        """Send one event to everybody listening on ``name``; call after the commit.

        The event carries the time it was published (:data:`PUBLISHED_AT`, removed before subscribers see
        it), from which ``app.metrics`` measures delivery lag."""
        stamped = {**message, PUBLISHED_AT: metrics.wall_time()}
        await self._backend.publish(self.channel(name), json.dumps(stamped, default=str))

    @contextlib.asynccontextmanager
    async def subscribe(self, name: str) -> AsyncIterator[Subscriber]:
        """Listen on ``name``: events published after this returns are delivered to the subscriber."""
        channel = self.channel(name)
        subscriber = Subscriber(channel, self.queue_size)
        listeners = self._subscribers.setdefault(channel, set())
        first = not listeners
        listeners.add(subscriber)
        try:
            if first:
                await self._backend.subscribe(channel)
            yield subscriber
        finally:
            listeners.discard(subscriber)
            if not listeners:
                del self._subscribers[channel]
                with contextlib.suppress(Exception):
                    await self._backend.unsubscribe(channel)

    async def listen(self, name: str) -> AsyncIterator[dict[str, Any]]:
        """Events of channel ``name`` as they arrive, until the consumer stops iterating."""
        async with self.subscribe(name) as subscriber:
            async for message in subscriber:
                yield message

    @property
    def reconnects(self) -> int:
        """How many times the broker connection was re-established (tests, metrics)."""
        return int(getattr(self._backend, "reconnects", 0))

    @property
    def listening_channels(self) -> int:
        """How many channels have local subscribers (metrics)."""
        return len(self._subscribers)
