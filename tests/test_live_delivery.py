"""Issue 21 (K2 at scale): a subscriber ends up with every committed notification exactly once — by live
delivery or by a resync from its cursor — when events come in bursts, when its queue overflows, and when
Redis drops the process's pub/sub connection. Real PostgreSQL, Redis, uvicorn and websockets."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from typing import Any

import pytest
from redis import asyncio as redis
from sqlalchemy import select

from app.db import Database
from app.demo import DEMO_PHONE_E164
from app.settings import Settings
from models.identity import User
from models.notifications import NotificationCategory
from services.notifications import notify
from tests.client import graphql_ws

STREAM = "subscription($after: String) { notifications(after: $after) { cursor notification { id title } } }"


async def _user_id(db: Database) -> int:
    async with db.session() as session:
        return (await session.execute(select(User.id).where(User.phone == DEMO_PHONE_E164))).scalar_one()


async def _burst(db: Database, user_id: int, titles: list[str]) -> list[int]:
    """Commit one notification per title in ONE transaction: their doorbells arrive back to back."""
    async with db.session() as session:
        rows = [
            await notify(session, user_id=user_id, category=NotificationCategory.BILLING, title=t, body=t)
            for t in titles
        ]
        await session.commit()
    await db.drain()
    return [row.id for row in rows if row is not None]


def _burst_while_stalled(
    settings: Settings, user_id: int, titles: list[str], *, drop_bus_first: bool = False
) -> list[int]:
    """The same burst committed by another "process" (a thread with its own loop, database pool and bus)
    while this process's event loop is blocked — as a server busy with thousands of sockets is: when it
    wakes, every doorbell of the burst is already waiting in its Redis connection."""

    async def elsewhere() -> list[int]:
        assert settings.database_url and settings.redis_url
        db = Database(settings.database_url, pool_size=1)
        broker = redis.Redis.from_url(settings.redis_url)

        async def publish(channel: str, message: dict[str, Any]) -> None:  # what EventBus.publish sends
            await broker.publish(f"{settings.redis_prefix}:{channel}", json.dumps(message, default=str))

        db.publish_after_commit(publish)
        try:
            if drop_bus_first:
                await _kill_bus_connection(settings.redis_url, settings.redis_prefix)
            return await _burst(db, user_id, titles)
        finally:
            await broker.aclose()
            await db.dispose()

    found: list[list[int]] = []
    worker = threading.Thread(target=lambda: found.append(asyncio.run(elsewhere())))
    worker.start()
    worker.join()  # blocks this loop, and with it the server under test
    time.sleep(0.2)  # the last doorbells reach this process's socket buffer
    return found[0]


def _pk(event: dict[str, Any]) -> int:
    return int(base64.b64decode(event["notification"]["id"]).decode().split(":")[1])


async def _collect(ws: Any, op: str, count: int, timeout: float = 15.0) -> list[int]:
    """The ids of the next ``count`` events, then checks that nothing more (no duplicate) follows."""
    seen: list[int] = []
    async with asyncio.timeout(timeout):
        while len(seen) < count:
            message = await ws.receive(timeout)
            assert message.get("id") == op and message["type"] == "next", message
            assert not message["payload"].get("errors"), message
            seen.append(_pk(message["payload"]["data"]["notifications"]))
    with pytest.raises(TimeoutError):
        extra = await ws.receive(0.7)
        seen.append(_pk(extra["payload"]["data"]["notifications"]))
    return seen


async def test_issue21_a_burst_before_the_first_event_is_delivered_whole(
    live_server: str, db: Database, settings: Settings, customer_token: str
) -> None:
    """Live-only subscriber (no cursor): several doorbells waiting at its first wake-up were coalesced into
    a resync that started from the *newest* row, and the whole burst was lost (the loss seen at 10,000)."""
    user_id = await _user_id(db)
    async with graphql_ws(live_server, init={"token": customer_token}) as ws:
        op = await ws.subscribe(STREAM)
        await asyncio.sleep(0.3)
        ids = _burst_while_stalled(settings, user_id, [f"Пачка {n}" for n in range(5)])
        assert await _collect(ws, op, len(ids)) == ids


async def test_issue21_queue_overflow_ends_in_a_resync_that_loses_nothing(
    app: Any, live_server: str, db: Database, settings: Settings, customer_token: str
) -> None:
    """A consumer slower than its events: its bounded queue overflows, it gets a resync and re-reads from
    its cursor — every notification arrives once, before and after its first delivered event."""
    app.state.kabinet.bus.queue_size = 2
    user_id = await _user_id(db)
    async with graphql_ws(live_server, init={"token": customer_token}) as ws:
        op = await ws.subscribe(STREAM)
        await asyncio.sleep(0.3)
        first = _burst_while_stalled(settings, user_id, [f"Первая {n}" for n in range(8)])
        assert await _collect(ws, op, len(first)) == first
        second = _burst_while_stalled(settings, user_id, [f"Вторая {n}" for n in range(8)])
        assert await _collect(ws, op, len(second)) == second


async def _kill_bus_connection(redis_url: str, prefix: str) -> None:
    """Close the process's pub/sub connection from the Redis side, as Redis does to a subscriber over its
    ``client-output-buffer-limit pubsub`` (only this test's connection: it is named after the prefix)."""
    client = redis.Redis.from_url(redis_url)
    try:
        for entry in await client.client_list(_type="pubsub"):
            if entry.get("name") == f"{prefix}-bus":
                await client.client_kill_filter(_id=entry["id"])
                return
        raise AssertionError("the event bus's pub/sub connection is not named")
    finally:
        await client.aclose()


async def test_issue21_broker_dropping_the_subscriber_connection_loses_nothing(
    app: Any, live_server: str, db: Database, settings: Settings, customer_token: str
) -> None:
    """Redis closes the pub/sub connection (output buffer limit, restart, network): notifications committed
    meanwhile lose their doorbells; the reconnect's resync delivers them from the cursor — also for a
    subscriber that had not received anything yet."""
    assert settings.redis_url
    user_id = await _user_id(db)
    bus = app.state.kabinet.bus
    async with graphql_ws(live_server, init={"token": customer_token}) as ws:
        op = await ws.subscribe(STREAM)
        await asyncio.sleep(0.3)
        reconnects = bus.reconnects
        # committed before the server notices the drop: their doorbells are gone for good
        during = _burst_while_stalled(
            settings, user_id, ["Во время обрыва 1", "Во время обрыва 2"], drop_bus_first=True
        )
        async with asyncio.timeout(15):
            while bus.reconnects == reconnects:
                await asyncio.sleep(0.05)
        after = await _burst(db, user_id, ["После обрыва"])
        assert await _collect(ws, op, len(during) + len(after)) == during + after
