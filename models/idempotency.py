"""Idempotency keys of mutations.

Choice: one generic table for every mutation that accepts an idempotency key (readings, appeals,
applications, documents, …): the first call stores a hash of its request and its response, a retry
with the same key gets the stored response back, a different request with the same key is an error.
Payments additionally keep their own ``(user_id, idempotency_key)`` unique pair on ``payments`` so that a
double charge is impossible even if the response was never stored.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedMixin, IdMixin


class IdempotencyKey(IdMixin, CreatedMixin, Base):
    """The first result of a mutation called with a client-chosen key."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(64))  # the mutation, e.g. "submitReadings"
    key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of the canonical input
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # null while the first call runs
    expires_at: Mapped[dt.datetime | None]  # purge after this

    __table_args__ = (
        UniqueConstraint("user_id", "scope", "key"),
        Index("ix_idempotency_keys_created_at", "created_at"),
    )
