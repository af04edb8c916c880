"""Tariffs by branch, service and day zone, with the document that approved them (C4)."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedMixin, IdMixin
from models.columns import enum_type


class Zone(enum.StrEnum):
    """A time-of-day zone of a tariff, a meter register, a reading or a charge."""

    SINGLE = "SINGLE"  # single-rate (круглосуточно)
    DAY = "DAY"
    NIGHT = "NIGHT"
    PEAK = "PEAK"
    HALF_PEAK = "HALF_PEAK"


class Tariff(IdMixin, CreatedMixin, Base):
    """The rate of one zone of one service in one branch over a date range."""

    __tablename__ = "tariffs"
    billing_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # the key in exchange files

    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id"))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    zone: Mapped[Zone] = mapped_column(enum_type(Zone, length=16))
    # consumer group the rate applies to, e.g. "urban, electric stove"; null = everybody
    consumer_group: Mapped[str | None] = mapped_column(String(128))
    rate: Mapped[Decimal] = mapped_column(Numeric(12, 4))  # roubles per unit, VAT included
    valid_from: Mapped[dt.date]
    valid_to: Mapped[dt.date | None]  # inclusive; null = still in force
    document_file_id: Mapped[int | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"))
    document_title: Mapped[str | None] = mapped_column(String(500))  # e.g. «Постановление ГУ РЭК …»
    document_number: Mapped[str | None] = mapped_column(String(64))
    document_date: Mapped[dt.date | None]

    __table_args__ = (
        Index("ix_tariffs_branch_id_service_id_valid_from", "branch_id", "service_id", "valid_from"),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="valid_range"),
        CheckConstraint("rate >= 0", name="rate_not_negative"),
    )
