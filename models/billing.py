"""Billing results imported from the billing system: charges, period balances and receipts (D1–D3, D7).

Sign convention: positive = the customer owes, negative = overpayment.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Numeric, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedMixin, IdMixin, Money, Volume
from models.columns import enum_type
from models.tariffs import Zone


class Charge(IdMixin, CreatedMixin, Base):
    """A charge of one service (and zone) to an account for one period (D2)."""

    __tablename__ = "charges"
    billing_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # the key in exchange files

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    period: Mapped[dt.date]  # first day of the month
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), index=True)
    zone: Mapped[Zone | None] = mapped_column(enum_type(Zone, length=16))  # null for services without zones
    volume: Mapped[Volume | None]  # consumed units
    rate: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))  # tariff rate applied
    amount: Mapped[Money]  # volume × rate for the period
    recalculation: Mapped[Money] = mapped_column(
        default=Decimal("0"), server_default=text("0")
    )  # ± corrections

    __table_args__ = (Index("ix_charges_account_id_period", "account_id", "period"),)


class PeriodBalance(IdMixin, CreatedMixin, Base):
    """Balance of an account with one supplier for one period, filled by the billing import (D7)."""

    __tablename__ = "period_balances"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), index=True)
    period: Mapped[dt.date]  # first day of the month
    opening: Mapped[Money]  # balance at the start of the period
    charged: Mapped[Money]  # charges incl. recalculations
    paid: Mapped[Money]  # payments credited in the period
    closing: Mapped[Money]  # opening + charged - paid

    __table_args__ = (UniqueConstraint("account_id", "period", "supplier_id"),)


class Receipt(IdMixin, CreatedMixin, Base):
    """The receipt (квитанция) of an account for a period; its PDF is generated on demand and cached (D3)."""

    __tablename__ = "receipts"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    period: Mapped[dt.date]  # first day of the month
    total_due: Mapped[Money]
    due_date: Mapped[dt.date | None]  # pay by
    file_id: Mapped[int | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"))  # the PDF
    generated_at: Mapped[dt.datetime | None]

    __table_args__ = (UniqueConstraint("account_id", "period"),)
