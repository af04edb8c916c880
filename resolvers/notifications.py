"""Notifications: thin resolvers, the live subscription loop."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from models.notifications import Notification, NotificationCategory
from resolvers.context import Info
from resolvers.loaders import ById
from resolvers.pagination import decode_cursor
from resolvers.permissions import require_viewer
from services import notifications
from services.errors import DomainError
from services.events import user_channel
from services.pagination import InvalidCursor, Page

log = logging.getLogger("kabinet.notifications")

SUBSCRIPTION_DB_CONCURRENCY = 8
"""At most this many subscription rounds of one process use the database at once; the rest wait their
turn, so thousands of streams woken together never starve requests of pooled connections."""

RIGHTS_CHECK_INTERVAL = 300.0
"""Seconds between re-checks that a subscriber's login is still valid. A logout, password change or
deletion ends the stream at once through its ``session-ended`` event, and the whole websocket is closed
with 4403 by the process's session guard (``app.revocation``), which also closes it when the access token
expires; this periodic check (spread with jitter, so thousands of streams do not check together) is a
second line for events lost with a broker outage, after which a ``resync`` also triggers a check."""


class NotificationById(ById):
    """Notifications by id."""

    model = Notification


async def notifications_by_ids(info: Info, ids: list[int]) -> list[Notification | None]:
    """Notifications by id; None where missing or someone else's."""
    viewer = info.context.viewer
    rows = await info.context.loader(NotificationById).load_many(ids)
    return [
        row if row is not None and viewer is not None and row.user_id == viewer.user_id else None
        for row in rows
    ]


def _after_id(cursor: str | None) -> int | None:
    key = decode_cursor(cursor)
    if key is None:
        return None
    if len(key) != 1 or isinstance(key[0], bool) or not isinstance(key[0], int) or not 0 <= key[0] < 2**63:
        raise InvalidCursor()  # decodes, but is not a notification's cursor (issue 16)
    return key[0]


def db_gate(state: Any) -> asyncio.Semaphore:
    """The process's limit on concurrent database rounds of subscriptions."""
    gate = state.extras.get("subscription_db_gate")
    if gate is None:
        gate = state.extras["subscription_db_gate"] = asyncio.Semaphore(SUBSCRIPTION_DB_CONCURRENCY)
    return gate


async def page(
    info: Info, *, first: int, after: str | None, unread_only: bool, category: NotificationCategory | None
) -> Page[Notification]:
    """The caller's notifications, newest first."""
    viewer = require_viewer(info)
    async with info.context.session() as session:
        return await notifications.page(
            session,
            viewer.user_id,
            first=first,
            after=_after_id(after),
            unread_only=unread_only,
            category=category,
        )


async def unread_count(info: Info) -> int:
    """How many of the caller's notifications are unread."""
    viewer = require_viewer(info)
    async with info.context.session() as session:
        return (await notifications.unread_counts(session, [viewer.user_id]))[viewer.user_id]


async def mark_read(info: Info, notification_id: int) -> tuple[Notification | None, list[DomainError]]:
    """Mark one notification read."""
    viewer = require_viewer(info)
    try:
        async with info.context.unit_of_work() as uow:
            row = await notifications.mark_read(
                uow.session, viewer.user_id, notification_id, now=info.context.now
            )
    except DomainError as error:
        return None, [error]
    return row, []


async def mark_all_read(info: Info) -> int:
    """Mark every notification of the caller read."""
    viewer = require_viewer(info)
    async with info.context.unit_of_work() as uow:
        return await notifications.mark_all_read(uow.session, viewer.user_id, now=info.context.now)


async def settings(info: Info) -> list[notifications.Preference]:
    """The caller's J6 matrix."""
    viewer = require_viewer(info)
    async with info.context.session() as session:
        return await notifications.settings_matrix(session, viewer.user_id)


async def update_settings(
    info: Info, changes: list[notifications.Preference]
) -> list[notifications.Preference]:
    """Apply the caller's J6 choices."""
    viewer = require_viewer(info)
    context = info.context
    async with context.unit_of_work() as uow:
        return await notifications.update_settings(
            uow.session,
            viewer.user_id,
            changes,
            now=context.now,
            client_ip=context.client_ip,
            user_agent=context.user_agent,
        )


async def register_push_device(info: Info, platform: Any, token: str) -> list[DomainError]:
    """Register the caller's device for push messages."""
    viewer = require_viewer(info)
    try:
        async with info.context.unit_of_work() as uow:
            await notifications.register_push_device(
                uow.session,
                viewer.user_id,
                platform=platform,
                token=token,
                session_id=viewer.session_id,
                now=info.context.now,
            )
    except DomainError as error:
        return [error]
    return []


async def unregister_push_device(info: Info, token: str) -> bool:
    """Forget one of the caller's push tokens."""
    viewer = require_viewer(info)
    async with info.context.unit_of_work() as uow:
        return await notifications.unregister_push_device(uow.session, viewer.user_id, token)


async def live(info: Info, after: str | None) -> AsyncIterator[Notification]:
    """Replay what the caller missed after ``after``, then stream new notifications: no gap, no duplicate.

    The bus subscription opens *before* the replay query, and every doorbell (or resync) re-reads the
    rows after the last one delivered, so a notification committed at any moment is delivered once.
    Each round runs in a fresh scope (session + loaders) and re-checks that the login is still valid.
    """
    viewer = require_viewer(info)
    context = info.context
    gate = db_gate(context.state)
    async with context.state.bus.subscribe(user_channel(viewer.user_id)) as bell:
        last = _after_id(after)  # None: live only, from the first event on
        # the login was verified when the websocket connected; re-checked every RIGHTS_CHECK_INTERVAL
        checked_at = time.monotonic() - random.uniform(0, RIGHTS_CHECK_INTERVAL / 2)
        message: dict[str, Any] = {"type": "resync"} if last is not None else await _next_bell(bell)
        while True:
            in_order = (
                message.get("type") == "notification"
                and "title" in message
                and (last is None or message.get("prev") == last)
            )
            if in_order and time.monotonic() - checked_at <= RIGHTS_CHECK_INTERVAL:
                # the common case: the event is the very next notification, and it carries it whole
                row = notifications.from_event(viewer.user_id, message)
                last = row.id
                yield row
                message = await _next_bell(bell)
                continue
            if last is None:  # a first event without data (e.g. a read mark): start from the newest row
                last = int(message.get("prev") or 0) if message.get("type") == "notification" else None
            await context.new_event_scope()
            async with gate, context.reading() as session:
                now = time.monotonic()
                if (
                    message.get("type") in ("session-ended", "resync")
                    or now - checked_at > RIGHTS_CHECK_INTERVAL
                ):
                    if not await notifications.may_listen(
                        session, viewer.user_id, viewer.session_id, now=context.now
                    ):
                        log.info("ending notifications stream of user %s: session ended", viewer.user_id)
                        return
                    checked_at = now
                if last is None:
                    last = await notifications.latest_id(session, viewer.user_id)
                rows = await notifications.since(session, viewer.user_id, last)
            for row in rows:
                last = row.id
                yield row
            if len(rows) == 100:
                continue  # more to replay
            message = await _next_bell(bell)


async def _next_bell(bell: Any) -> dict[str, Any]:
    """The next event worth acting on; several already waiting become one re-read (or a session end)."""
    message: dict[str, Any] = await bell.get()
    while message.get("type") == "read":  # read marks change nothing to deliver
        message = await bell.get()
    waiting = bell.drain()
    if not waiting:
        return message
    for extra in [message, *waiting]:
        if extra.get("type") in ("session-ended", "resync"):
            return extra
    return (
        {"type": "resync"}
        if len(waiting) > 0 and any(e.get("type") == "notification" for e in waiting)
        else message
    )
