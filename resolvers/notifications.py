"""Notifications: thin resolvers, the live subscription loop."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
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


class StartingPoints:
    """The newest notification id of users whose streams start now, read for many streams in one query:
    thousands of sockets subscribing together cost a few statements, not one each."""

    def __init__(self, state: Any) -> None:
        self._state = state
        self._waiting: dict[int, list[asyncio.Future[int]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def newest(self, user_id: int) -> int:
        """``services.notifications.latest_id`` of ``user_id``, batched with the other streams waiting."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(user_id, []).append(future)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read())
        return await future

    async def _read(self) -> None:
        while self._waiting:
            await asyncio.sleep(0)  # let the streams subscribing in this loop pass join the batch
            batch, self._waiting = self._waiting, {}
            try:
                async with db_gate(self._state), self._state.db.sessionmaker() as session:
                    found = await notifications.latest_ids(session, list(batch))  # read only: closing ends it
            except Exception as error:
                for futures in batch.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(error)
                continue
            for user_id, futures in batch.items():
                for future in futures:
                    if not future.done():
                        future.set_result(found[user_id])


def starting_points(state: Any) -> StartingPoints:
    """The process's :class:`StartingPoints`."""
    found = state.extras.get("notification_starting_points")
    if found is None:
        found = state.extras["notification_starting_points"] = StartingPoints(state)
    return found


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

    The bus subscription opens *before* anything is read, and the stream keeps ``last``, the id of the
    last notification delivered — without ``after``, the one before its first doorbell (see below). Each
    doorbell that carries the very next notification (its ``prev`` is
    ``last``) is delivered from the event itself; anything else — a gap, a ``resync`` after a queue
    overflow or a broker reconnect, a ``session-ended`` — re-reads the rows after ``last`` in a fresh
    scope (session + loaders), which also re-checks that the login is still valid. So a notification
    committed at any moment is delivered exactly once, live or by the re-read.
    """
    viewer = require_viewer(info)
    context = info.context
    gate = db_gate(context.state)
    async with context.state.bus.subscribe(user_channel(viewer.user_id)) as bell:
        # the login was verified when the websocket connected; re-checked every RIGHTS_CHECK_INTERVAL
        checked_at = time.monotonic() - random.uniform(0, RIGHTS_CHECK_INTERVAL / 2)
        after_id = _after_id(after)
        if after_id is None:
            # Live only: everything whose doorbell rings from now on. Its start is the ``prev`` of the first
            # doorbell (exact, however long this read waits for the database); the newest row read here
            # covers a resync that comes first (a broker reconnect before any doorbell).
            last = await starting_points(context.state).newest(viewer.user_id)
            waiting = await _next_bells(bell)
            if bell.first_prev is not None:
                last = min(last, bell.first_prev)
        else:
            last, waiting = after_id, [RESYNC_EVENT]
        while True:
            reread = check = False
            for message in waiting:
                kind = message.get("type")
                if kind in ("session-ended", "resync"):
                    reread = check = True
                elif kind == "notification":
                    event_id = message.get("id")
                    if isinstance(event_id, int) and event_id <= last:
                        continue  # delivered already (by a re-read)
                    if (
                        reread
                        or message.get("prev") != last
                        or "title" not in message
                        or time.monotonic() - checked_at > RIGHTS_CHECK_INTERVAL
                    ):
                        reread = True  # a gap, or rights to re-check: the rows decide
                        continue
                    # the common case: the event is the very next notification, and it carries it whole
                    row = EVENT_ROWS.get(message, viewer.user_id, notifications.from_event)
                    last = row.id
                    yield row
            while reread:
                await context.new_event_scope()
                async with gate, context.reading() as session:
                    now = time.monotonic()
                    if check or now - checked_at > RIGHTS_CHECK_INTERVAL:
                        if not await notifications.may_listen(
                            session, viewer.user_id, viewer.session_id, now=context.now
                        ):
                            log.info("ending notifications stream of user %s: session ended", viewer.user_id)
                            return
                        checked_at, check = now, False
                    rows = await notifications.since(session, viewer.user_id, last)
                for row in rows:
                    last = row.id
                    yield row
                reread = len(rows) == REPLAY_PAGE  # more to replay
            waiting = await _next_bells(bell)


class ByIdentity:
    """Values built once per (object, user) and shared, for the last ``size`` objects.

    The event bus hands the same message to every stream of a channel in the process, so every socket
    of a user gets the *same* notification object for one event, and the executor can run the
    subscription's selection once for all of them (``app.event_results``). Each entry keeps its object
    alive, so its ``id()`` cannot be reused while the entry exists."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[int, int], tuple[Any, Any]] = OrderedDict()

    def get(self, source: Any, user_id: int, build: Callable[[int, Any], Any]) -> Any:
        """``build(user_id, source)``, or the value built for this very ``source`` and user before."""
        key = (id(source), user_id)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is source:
            return entry[1]
        value = build(user_id, source)
        self._entries[key] = (source, value)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value


EVENT_ROWS = ByIdentity()
"""Notification rows rebuilt from live events, one per event and user (read-only once built)."""

REPLAY_PAGE = 100
"""Rows one re-read returns (``services.notifications.since``'s limit); a full page reads on."""

RESYNC_EVENT: dict[str, Any] = {"type": "resync"}


async def _next_bells(bell: Any) -> list[dict[str, Any]]:
    """The events waiting for this stream, in order (at least one that is not a mere read mark)."""
    while True:
        waiting: list[dict[str, Any]] = [await bell.get(), *bell.drain()]
        if any(message.get("type") != "read" for message in waiting):  # read marks deliver nothing
            return waiting
