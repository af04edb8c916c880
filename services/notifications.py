"""Notifications (I6) and their delivery settings (J6).

Every producer (payments, readings, appeals and applications, receipts, reading-window reminders,
promotions and surveys) calls :func:`notify` inside its own transaction. The row is the record; the
event on ``user:<id>`` (sent after COMMIT, see ``services.events``) only rings the bell, and a client that
missed it catches up through its cursor. Copies by e-mail, SMS and push go through the outbox, as the
user's settings say.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from models.identity import AuthSession, Consent, ConsentKind, PushDevice, PushPlatform, User
from models.notifications import (
    Notification,
    NotificationCategory,
    NotificationChannel,
    NotificationSetting,
)
from models.outbox import OutboxChannel
from services import outbox
from services.errors import DomainError, NotFound
from services.events import emit, user_channel
from services.pagination import Page, keyset_page
from services.unit_of_work import touch

C, N = NotificationCategory, NotificationChannel

DEFAULTS: dict[NotificationCategory, frozenset[NotificationChannel]] = {
    C.PAYMENTS: frozenset({N.IN_APP, N.EMAIL, N.PUSH}),
    C.READINGS: frozenset({N.IN_APP, N.PUSH}),
    C.REQUESTS: frozenset({N.IN_APP, N.EMAIL, N.PUSH}),
    C.BILLING: frozenset({N.IN_APP, N.EMAIL, N.PUSH}),
    C.SERVICE_NEWS: frozenset({N.IN_APP, N.PUSH}),
    C.MARKETING: frozenset(),  # opt-in only, recorded as a consent
}
"""Channels each category goes to until the user changes it."""

MARKETING_POLICY_VERSION = "2024-01"

ORDER_LOCK_BASE = 0x4E << 56
"""Namespace of the per-user advisory locks that keep notification ids in commit order."""


class NotificationNotFound(NotFound):
    """The notification does not exist or belongs to somebody else."""

    code = "NOTIFICATION_NOT_FOUND"
    message = "Уведомление не найдено"


class PushTokenInvalid(DomainError):
    """An empty or absurd push token."""

    code = "PUSH_TOKEN_INVALID"
    message = "Некорректный токен push-уведомлений"


@dataclass(frozen=True, slots=True)
class Preference:
    """One cell of the settings matrix."""

    category: NotificationCategory
    channel: NotificationChannel
    enabled: bool


async def preferences(
    session: AsyncSession, user_id: int
) -> dict[NotificationCategory, set[NotificationChannel]]:
    """The channels each category goes to for ``user_id`` (defaults overlaid with the user's choices)."""
    chosen = {category: set(channels) for category, channels in DEFAULTS.items()}
    rows = await session.execute(select(NotificationSetting).where(NotificationSetting.user_id == user_id))
    for row in rows.scalars():
        (chosen[row.category].add if row.enabled else chosen[row.category].discard)(row.channel)
    return chosen


async def notify(
    session: AsyncSession,
    *,
    user_id: int,
    category: NotificationCategory,
    title: str,
    body: str,
    account_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> Notification | None:
    """Notify ``user_id`` as their settings say; returns the stored row (None if they opted out of it).

    The in-cabinet row and its live event, and e-mail / SMS / push copies through the outbox, all in the
    caller's transaction: nothing is announced or sent unless the caller commits.
    """
    channels = (await preferences(session, user_id))[category]
    touch(session, users=[user_id])  # the notification list and unread count
    notification = None
    if N.IN_APP in channels:
        # One user's notifications get their ids in commit order (a transaction-level lock per user, taken
        # before the id), so "everything after id X" never skips a row that commits late.
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ORDER_LOCK_BASE + user_id})
        previous = await latest_id(session, user_id)
        inserted = await session.execute(
            insert(Notification)
            .values(
                user_id=user_id, category=category, account_id=account_id, title=title, body=body, data=data
            )
            .returning(Notification.id, Notification.created_at)
        )
        notification_id, created_at = inserted.one()
        notification = Notification(
            id=notification_id,
            user_id=user_id,
            category=category,
            account_id=account_id,
            title=title,
            body=body,
            data=data,
            created_at=created_at,
            read_at=None,
        )
        emit(
            session,
            user_channel(user_id),
            {"type": "notification", "prev": previous, **as_event(notification)},
        )
    copies = channels & {N.EMAIL, N.SMS, N.PUSH}
    if copies:
        await _send_copies(session, user_id, copies, title, body, data)
    return notification


def as_event(notification: Notification) -> dict[str, Any]:
    """The notification as carried in its live event (so subscribers need not read it back)."""
    return {
        "id": notification.id,
        "category": notification.category.value,
        "accountId": notification.account_id,
        "title": notification.title,
        "body": notification.body,
        "data": notification.data,
        "createdAt": notification.created_at.isoformat(),
    }


def from_event(user_id: int, event: dict[str, Any]) -> Notification:
    """A detached notification rebuilt from its live event."""
    return Notification(
        id=int(event["id"]),
        user_id=user_id,
        category=NotificationCategory(event["category"]),
        account_id=event.get("accountId"),
        title=event["title"],
        body=event["body"],
        data=event.get("data"),
        created_at=dt.datetime.fromisoformat(event["createdAt"]),
        read_at=None,
    )


async def _send_copies(
    session: AsyncSession,
    user_id: int,
    channels: set[NotificationChannel],
    title: str,
    body: str,
    data: dict[str, Any] | None,
) -> None:
    user = await session.get(User, user_id)
    if user is None or user.deleted_at is not None:
        return
    if N.EMAIL in channels and user.email and user.email_confirmed_at is not None:
        outbox.enqueue(session, OutboxChannel.EMAIL, user.email, body, subject=title)
    if N.SMS in channels and user.phone:
        outbox.enqueue(session, OutboxChannel.SMS, user.phone, f"{title}. {body}")
    if N.PUSH in channels:
        devices = await session.execute(select(PushDevice).where(PushDevice.user_id == user_id))
        for device in devices.scalars():
            payload = {"platform": device.platform.value, "title": title, "data": data or {}}
            outbox.enqueue(session, OutboxChannel.PUSH, device.token, body, subject=title, data=payload)


async def notify_many(
    session: AsyncSession,
    user_ids: Iterable[int],
    *,
    category: NotificationCategory,
    title: str,
    body: str,
    data: dict[str, Any] | None = None,
) -> int:
    """Notify several users the same way (reminders, promotions); returns how many were notified."""
    count = 0
    for user_id in user_ids:
        if await notify(session, user_id=user_id, category=category, title=title, body=body, data=data):
            count += 1
    return count


async def page(
    session: AsyncSession,
    user_id: int,
    *,
    first: int,
    after: int | None,
    unread_only: bool = False,
    category: NotificationCategory | None = None,
) -> Page[Notification]:
    """The user's notifications, newest first, after the notification id ``after``."""
    stmt = select(Notification).where(Notification.user_id == user_id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    if category is not None:
        stmt = stmt.where(Notification.category == category)
    return await keyset_page(
        session,
        stmt,
        order_by=[Notification.id],
        key=lambda row: (row.id,),
        first=first,
        after=(after,) if after is not None else None,
        descending=True,
    )


async def since(
    session: AsyncSession, user_id: int, after_id: int, *, limit: int = 100
) -> list[Notification]:
    """The user's notifications with id greater than ``after_id``, oldest first (subscription replay)."""
    rows = await session.execute(
        select(Notification)
        .where(Notification.user_id == user_id, Notification.id > after_id)
        .order_by(Notification.id)
        .limit(limit)
    )
    return list(rows.scalars())


async def latest_id(session: AsyncSession, user_id: int) -> int:
    """The id of the user's newest notification (0 when none)."""
    found = await session.execute(select(func.max(Notification.id)).where(Notification.user_id == user_id))
    return int(found.scalar_one() or 0)


async def latest_ids(session: AsyncSession, user_ids: Sequence[int]) -> dict[int, int]:
    """The id of each user's newest notification (0 when none), in one statement."""
    rows = await session.execute(
        select(Notification.user_id, func.max(Notification.id))
        .where(Notification.user_id.in_(user_ids))
        .group_by(Notification.user_id)
    )
    found = {user_id: 0 for user_id in user_ids}
    found.update({user_id: int(newest) for user_id, newest in rows.all()})
    return found


async def unread_counts(session: AsyncSession, user_ids: Sequence[int]) -> dict[int, int]:
    """Unread notifications per user, in one statement."""
    rows = await session.execute(
        select(Notification.user_id, func.count())
        .where(Notification.user_id.in_(user_ids), Notification.read_at.is_(None))
        .group_by(Notification.user_id)
    )
    counts = {user_id: 0 for user_id in user_ids}
    counts.update({user_id: int(count) for user_id, count in rows.all()})
    return counts


async def mark_read(
    session: AsyncSession, user_id: int, notification_id: int, *, now: dt.datetime
) -> Notification:
    """Mark one of the user's notifications read (idempotent)."""
    row = await session.get(Notification, notification_id)
    if row is None or row.user_id != user_id:
        raise NotificationNotFound(field=["input", "id"])
    if row.read_at is None:
        touch(session, users=[user_id])
        row.read_at = now
        emit(session, user_channel(user_id), {"type": "read", "id": row.id})
    return row


async def mark_all_read(session: AsyncSession, user_id: int, *, now: dt.datetime) -> int:
    """Mark every unread notification of the user read; returns how many changed."""
    result = await session.execute(
        update(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .values(read_at=now)
    )
    changed = int(result.rowcount or 0)  # type: ignore[attr-defined]
    touch(session, users=[user_id])
    if changed:
        emit(session, user_channel(user_id), {"type": "read", "all": True})
    return changed


async def settings_matrix(session: AsyncSession, user_id: int) -> list[Preference]:
    """Every category × channel with its state (J6)."""
    chosen = await preferences(session, user_id)
    return [
        Preference(category, channel, channel in chosen[category])
        for category in NotificationCategory
        for channel in NotificationChannel
    ]


async def update_settings(
    session: AsyncSession,
    user_id: int,
    changes: Sequence[Preference],
    *,
    now: dt.datetime,
    client_ip: str | None = None,
    user_agent: str | None = None,
) -> list[Preference]:
    """Apply choices (J6). Turning marketing on records a consent; turning all of it off revokes it."""
    before = await preferences(session, user_id)
    touch(session, users=[user_id])  # the settings matrix (and the marketing consent)
    for change in changes:
        await session.execute(
            insert(NotificationSetting)
            .values(user_id=user_id, category=change.category, channel=change.channel, enabled=change.enabled)
            .on_conflict_do_update(
                index_elements=["user_id", "category", "channel"], set_={"enabled": change.enabled}
            )
        )
    after = await preferences(session, user_id)
    had, has = bool(before[C.MARKETING]), bool(after[C.MARKETING])
    if has and not had:
        session.add(
            Consent(
                user_id=user_id,
                kind=ConsentKind.MARKETING,
                policy_version=MARKETING_POLICY_VERSION,
                accepted_at=now,
                client_ip=client_ip,
                user_agent=user_agent,
            )
        )
    elif had and not has:
        await session.execute(
            update(Consent)
            .where(
                Consent.user_id == user_id,
                Consent.kind == ConsentKind.MARKETING,
                Consent.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
    return await settings_matrix(session, user_id)


async def register_push_device(
    session: AsyncSession,
    user_id: int,
    *,
    platform: PushPlatform,
    token: str,
    session_id: int | None,
    now: dt.datetime,
) -> PushDevice:
    """Register (or move to this user) a device's push token."""
    token = token.strip()
    if not 8 <= len(token) <= 512:
        raise PushTokenInvalid(field=["input", "token"])
    previous_owner = select(PushDevice.user_id).where(PushDevice.token == token).scalar_subquery()
    moved_from = (
        await session.execute(
            insert(PushDevice)
            .values(user_id=user_id, platform=platform, token=token, session_id=session_id, last_seen_at=now)
            .on_conflict_do_update(
                index_elements=["token"],
                set_={
                    "user_id": user_id,
                    "platform": platform,
                    "session_id": session_id,
                    "last_seen_at": now,
                },
            )
            .returning(previous_owner)  # the statement's snapshot: who had the token before
        )
    ).scalar_one_or_none()
    touch(session, users=[user_id, moved_from])
    device = (await session.execute(select(PushDevice).where(PushDevice.token == token))).scalar_one()
    return device


async def unregister_push_device(session: AsyncSession, user_id: int, token: str) -> bool:
    """Forget a device's token (logout on the device); True if it was registered to the user."""
    device = (
        await session.execute(
            select(PushDevice).where(PushDevice.token == token.strip(), PushDevice.user_id == user_id)
        )
    ).scalar_one_or_none()
    if device is None:
        return False
    touch(session, users=[user_id])
    await session.delete(device)
    return True


async def may_listen(session: AsyncSession, user_id: int, session_id: int, *, now: dt.datetime) -> bool:
    """A subscriber keeps listening only while its user exists and its login session is active."""
    found = await session.execute(
        select(AuthSession.id)
        .join(User, User.id == AuthSession.user_id)
        .where(
            AuthSession.id == session_id,
            AuthSession.user_id == user_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > now,
            User.deleted_at.is_(None),
        )
    )
    return found.scalar_one_or_none() is not None
