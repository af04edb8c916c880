"""Personal accounts (лицевые счета), their services and their links to users (B1–B4, C1, J5)."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import INET
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, CreatedMixin, IdMixin, TimestampsMixin
from models.columns import enum_type
from models.meters import ZoneScheme
from services.clock import now as clock_now


class StoveType(enum.StrEnum):
    """Kitchen stove of the dwelling; it selects the tariff group."""

    GAS = "GAS"
    ELECTRIC = "ELECTRIC"
    NONE = "NONE"


class Account(IdMixin, TimestampsMixin, Base):
    """A personal account of a dwelling in a branch with its requisites (C1), as billing has them."""

    __tablename__ = "accounts"
    billing_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # the key in exchange files

    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id"))
    number: Mapped[str] = mapped_column(String(20))  # as printed on the receipt, e.g. "11111111"
    owner_last_name: Mapped[str] = mapped_column(String(50))
    owner_first_name: Mapped[str] = mapped_column(String(50))
    owner_middle_name: Mapped[str | None] = mapped_column(String(50))
    address: Mapped[str] = mapped_column(Text)
    total_area: Mapped[Decimal | None] = mapped_column(Numeric(8, 2))  # m²
    living_area: Mapped[Decimal | None] = mapped_column(Numeric(8, 2))  # m²
    owners_count: Mapped[int | None] = mapped_column(SmallInteger)
    registered_count: Mapped[int | None] = mapped_column(SmallInteger)  # persons registered (прописаны)
    residing_count: Mapped[int | None] = mapped_column(SmallInteger)  # persons actually living there
    rooms: Mapped[int | None] = mapped_column(SmallInteger)
    stove_type: Mapped[StoveType] = mapped_column(
        enum_type(StoveType, length=16), default=StoveType.NONE, server_default=StoveType.NONE.value
    )
    electric_heating: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    e_receipt_allowed: Mapped[bool] = mapped_column(  # J5: only such accounts may switch to e-receipts
        Boolean, default=True, server_default=text("true")
    )
    # B1 proof of ownership: hash of the secret printed on the receipt (null: not linkable online)
    link_secret_hash: Mapped[str | None] = mapped_column(String(255))
    closed_at: Mapped[dt.datetime | None]

    __table_args__ = (UniqueConstraint("branch_id", "number"),)


class AccountService(IdMixin, Base):
    """A service delivered to an account (C1)."""

    __tablename__ = "account_services"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    zone_scheme: Mapped[ZoneScheme | None] = mapped_column(enum_type(ZoneScheme, length=16))  # tariff zones
    started_on: Mapped[dt.date | None]
    ended_on: Mapped[dt.date | None]

    __table_args__ = (UniqueConstraint("account_id", "service_id"),)


class UserAccount(IdMixin, Base):
    """The link of a user to an account (B1); deleting it unlinks (B2) and cascades to autopay settings."""

    __tablename__ = "user_accounts"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    display_name: Mapped[str | None] = mapped_column(String(100))  # B3; null shows the number
    e_receipt_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    receipt_email: Mapped[str | None] = mapped_column(String(254))  # J5; null = the confirmed profile e-mail
    linked_at: Mapped[dt.datetime] = mapped_column(default=clock_now, server_default=func.now())

    account: Mapped[Account] = relationship(lazy="raise")

    __table_args__ = (UniqueConstraint("user_id", "account_id"),)


class LinkAttempt(IdMixin, CreatedMixin, Base):
    """One attempt to link an account, kept to rate-limit guessing of account numbers."""

    __tablename__ = "link_attempts"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id", ondelete="SET NULL"))
    number: Mapped[str | None] = mapped_column(String(20))
    succeeded: Mapped[bool] = mapped_column(Boolean)
    client_ip: Mapped[str | None] = mapped_column(INET)

    __table_args__ = (Index("ix_link_attempts_user_id_created_at", "user_id", "created_at"),)
