"""Events leave the process only after their transaction commits (K2)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from sqlalchemy import text

from app.db import Database
from services.events import emit


async def _listen(app: Any, channel: str, into: list[dict[str, Any]], ready: asyncio.Event) -> None:
    listening = app.state.kabinet.bus.listen(channel)
    first = asyncio.ensure_future(anext(listening))
    await asyncio.sleep(0.2)  # the subscription reaches the broker
    ready.set()
    into.append(await first)
    async for message in listening:
        into.append(message)


async def test_K2_an_event_is_published_after_commit_and_dropped_on_rollback(app: Any, db: Database) -> None:
    received: list[dict[str, Any]] = []
    ready = asyncio.Event()
    task = asyncio.create_task(_listen(app, "user:1", received, ready))
    try:
        await ready.wait()
        async with db.session() as session:
            await session.execute(text("SELECT 1"))
            emit(session, "user:1", {"n": "rolled back"})
            await session.rollback()
            emit(session, "user:1", {"n": "committed"})
            assert received == []  # not before the commit
            await session.commit()
        await db.drain()
        async with asyncio.timeout(5):
            while not received:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert received == [{"n": "committed"}]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
