"""Audit trail of security-relevant and staff actions (logins, profile changes, operator answers)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedMixin, IdMixin


class AuditLogEntry(IdMixin, CreatedMixin, Base):
    """One action: who did what to which entity, with the changed fields. Rows are never updated."""

    __tablename__ = "audit_log"

    actor_user_id: Mapped[int | None] = mapped_column(  # null for the system and anonymous callers
        ForeignKey("users.id", ondelete="SET NULL")
    )
    action: Mapped[str] = mapped_column(String(64))  # e.g. "user.login", "appeal.answer"
    entity_type: Mapped[str | None] = mapped_column(String(64))
    entity_id: Mapped[int | None] = mapped_column(BigInteger)
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # {"field": [old, new]}, no secrets
    client_ip: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_audit_log_entity_type_entity_id", "entity_type", "entity_id"),
        Index("ix_audit_log_actor_user_id_created_at", "actor_user_id", "created_at"),
        Index("ix_audit_log_created_at", "created_at"),
    )
