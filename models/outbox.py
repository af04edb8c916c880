"""Outbox of SMS, e-mail and push messages, written in the business transaction and sent by a dispatcher."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import Index, SmallInteger, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedMixin, IdMixin
from models.columns import enum_type
from services.clock import now as clock_now


class OutboxChannel(enum.StrEnum):
    """Transport of an outgoing message."""

    EMAIL = "EMAIL"
    SMS = "SMS"
    PUSH = "PUSH"


class OutboxStatus(enum.StrEnum):
    """Delivery state of an outgoing message."""

    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"  # gave up after the last attempt


class OutboxMessage(IdMixin, CreatedMixin, Base):
    """One message to deliver; the dispatcher retries with back-off until sent or failed."""

    __tablename__ = "outbox_messages"

    channel: Mapped[OutboxChannel] = mapped_column(enum_type(OutboxChannel, length=16))
    destination: Mapped[str] = mapped_column(String(512))  # phone, e-mail or push token
    subject: Mapped[str | None] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # push payload, template variables
    status: Mapped[OutboxStatus] = mapped_column(
        enum_type(OutboxStatus, length=16),
        default=OutboxStatus.PENDING,
        server_default=OutboxStatus.PENDING.value,
    )
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0, server_default=text("0"))
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=clock_now, server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[dt.datetime | None]

    __table_args__ = (
        Index("ix_outbox_messages_status_next_attempt_at", "status", "next_attempt_at"),
        Index(
            "ix_outbox_messages_destination_id", "destination", "id"
        ),  # tests and support look up by recipient
    )
