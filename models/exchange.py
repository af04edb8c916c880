"""Billing exchange (issue 18): payments billing received through other channels and the outbound feed."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedMixin, IdMixin, Money


class ExternalPayment(IdMixin, CreatedMixin, Base):
    """A payment billing received outside the cabinet (bank, post office, cashier), imported from billing."""

    __tablename__ = "external_payments"

    billing_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"))
    period: Mapped[dt.date]  # first day of the month it is credited in
    paid_on: Mapped[dt.date]
    amount: Mapped[Money]
    channel: Mapped[str] = mapped_column(String(16))  # BANK, POST, CASHIER, OTHER

    __table_args__ = (
        UniqueConstraint("billing_id"),
        Index("ix_external_payments_account_id_period", "account_id", "period"),
    )


class ExchangeChange(Base):
    """One action billing must learn of (a submitted reading, a payment status, ...), written by triggers in
    the acting transaction under a lock held until COMMIT, so ids follow commit order (migration 0005)."""

    __tablename__ = "exchange_changes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    account_id: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))

    __table_args__ = (Index("ix_exchange_changes_created_at", "created_at"),)


class ExchangeFeedState(Base):
    """The feed's one row (migration 0007): the highest cursor billing has read after (``acknowledged``) and
    the highest change id the retention job deleted (``pruned_through``); only read changes are pruned."""

    __tablename__ = "exchange_feed_state"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default=text("1"))
    acknowledged: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    pruned_through: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))

    __table_args__ = (CheckConstraint("id = 1", name="ck_exchange_feed_state_one_row"),)
