"""Meters installed on accounts (C1, C3, E1)."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import CheckConstraint, ForeignKey, Index, SmallInteger, String, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, IdMixin, TimestampsMixin
from models.columns import enum_type


class ZoneScheme(enum.StrEnum):
    """Which zones a meter (or an account's tariff) has."""

    SINGLE = "SINGLE"  # one register: Zone.SINGLE
    DAY_NIGHT = "DAY_NIGHT"  # Zone.DAY, Zone.NIGHT
    THREE_ZONE = "THREE_ZONE"  # Zone.PEAK, Zone.HALF_PEAK, Zone.NIGHT


class Meter(IdMixin, TimestampsMixin, Base):
    """A meter of one service on one account; readings are taken per zone of its scheme."""

    __tablename__ = "meters"
    billing_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # the key in exchange files

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    serial: Mapped[str] = mapped_column(String(64))  # factory number
    model: Mapped[str | None] = mapped_column(String(128))  # type, e.g. «Меркурий 201.8»
    zone_scheme: Mapped[ZoneScheme] = mapped_column(
        enum_type(ZoneScheme, length=16), default=ZoneScheme.SINGLE, server_default=ZoneScheme.SINGLE.value
    )
    digits: Mapped[int] = mapped_column(
        SmallInteger
    )  # integer digits of the display; wrap-around at 10**digits
    decimals: Mapped[int] = mapped_column(SmallInteger, default=0, server_default=text("0"))
    location: Mapped[str | None] = mapped_column(String(255))  # where installed, e.g. «лестничная площадка»
    installed_at: Mapped[dt.date | None]
    verified_at: Mapped[dt.date | None]  # last metrological verification (поверка)
    verification_due: Mapped[dt.date | None]  # next verification date (межповерочный интервал ends)
    seal_number: Mapped[str | None] = mapped_column(String(64))
    sealed_at: Mapped[dt.date | None]
    removed_at: Mapped[dt.date | None]  # null while installed

    __table_args__ = (
        Index("ix_meters_account_id", "account_id"),
        CheckConstraint("digits BETWEEN 1 AND 12 AND decimals BETWEEN 0 AND 3", name="digits_range"),
    )
