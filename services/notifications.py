"""Notifications (I6): stored per user, announced to the user's live clients after commit.

Every producer (payments, readings, appeals, receipts, reminders, promotions) calls :func:`notify` in
its own transaction. The row is the record; the event on ``user:<id>`` only rings the bell, and a
client that missed it catches up through its cursor.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from models.notifications import Notification, NotificationCategory
from services.events import emit, user_channel


async def notify(
    session: AsyncSession,
    *,
    user_id: int,
    category: NotificationCategory,
    title: str,
    body: str,
    account_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> Notification:
    """Store a notification for ``user_id`` and queue its live event (sent after the caller commits)."""
    notification = Notification(
        user_id=user_id, category=category, account_id=account_id, title=title, body=body, data=data
    )
    session.add(notification)
    await session.flush()
    emit(session, user_channel(user_id), {"type": "notification", "id": notification.id})
    return notification
