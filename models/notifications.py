"""In-app notifications (I6), notification preferences (J6) and send-once markers of scheduled jobs."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedMixin, IdMixin
from models.columns import enum_type
from services.clock import now as clock_now


class NotificationCategory(enum.StrEnum):
    """Topic of a notification; users subscribe per category and channel (J6)."""

    PAYMENTS = "PAYMENTS"
    READINGS = "READINGS"
    REQUESTS = "REQUESTS"
    BILLING = "BILLING"
    SERVICE_NEWS = "SERVICE_NEWS"
    MARKETING = "MARKETING"


class NotificationChannel(enum.StrEnum):
    """Where a notification is delivered."""

    IN_APP = "IN_APP"
    EMAIL = "EMAIL"
    SMS = "SMS"
    PUSH = "PUSH"


class Notification(IdMixin, CreatedMixin, Base):
    """A notification shown to a user; its id is the cursor a reconnecting subscriber resumes from."""

    __tablename__ = "notifications"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    category: Mapped[NotificationCategory] = mapped_column(enum_type(NotificationCategory, length=16))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), index=True)
    title: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # ids for deep links, e.g. {"paymentId": …}
    read_at: Mapped[dt.datetime | None]

    __table_args__ = (
        Index("ix_notifications_unread", "user_id", postgresql_where=text("read_at IS NULL")),  # badge count
    )


# a user's feed, newest first, and "everything after cursor id" for reconnecting subscribers
Index("ix_notifications_user_id_id", Notification.user_id, Notification.id.desc())


class NotificationSetting(IdMixin, Base):
    """Whether a user receives one category through one channel (J6); a missing row means the default."""

    __tablename__ = "notification_settings"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    category: Mapped[NotificationCategory] = mapped_column(enum_type(NotificationCategory, length=16))
    channel: Mapped[NotificationChannel] = mapped_column(enum_type(NotificationChannel, length=16))
    enabled: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (UniqueConstraint("user_id", "category", "channel"),)


class ScheduledJobRun(IdMixin, Base):
    """Marks that a scheduled job ran for a key (e.g. "reading-window-opens" for branch 3, 2026-10), so
    reminders go out once even with several processes."""

    __tablename__ = "scheduled_job_runs"

    job: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(128))
    ran_at: Mapped[dt.datetime] = mapped_column(default=clock_now, server_default=func.now())

    __table_args__ = (UniqueConstraint("job", "key"),)
