"""Monthly analytics rollups (issue 17): de-personalised aggregates the ``analytics`` query reads.

One table holds every fact family. A row is one month of one family at one *grouping set*: the dimension
columns the family has are either a value (the set groups by it) or rolled up ("all"), and ``grouping``
says which (PostgreSQL's ``GROUPING()`` bits over the family's dimensions, 1 = rolled up). Distinct counts
(accounts, customers, cabinets) are therefore exact for every combination of dimensions within a month.
Rows hold no account, user or free text: only counts, sums and answer-time samples (seconds).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import BigInteger, Index, Integer, Numeric, SmallInteger, String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, IdMixin


class AnalyticsRollup(IdMixin, Base):
    """One month of one fact family at one grouping set (see the module docstring)."""

    __tablename__ = "analytics_rollups"

    family: Mapped[str] = mapped_column(String(16))  # charges, balances, sessions, registrations, …
    period: Mapped[dt.date]  # first day of the month
    grouping: Mapped[int] = mapped_column(SmallInteger)  # GROUPING() bits over the family's dimensions
    branch_id: Mapped[int | None] = mapped_column(BigInteger)
    supplier_id: Mapped[int | None] = mapped_column(BigInteger)
    service_id: Mapped[int | None] = mapped_column(BigInteger)
    zone: Mapped[str | None] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(16))
    payment_method: Mapped[str | None] = mapped_column(String(16))
    topic: Mapped[str | None] = mapped_column(String(128))
    application_kind: Mapped[str | None] = mapped_column(String(48))
    status: Mapped[str | None] = mapped_column(String(16))
    subjects: Mapped[int] = mapped_column(Integer)  # distinct accounts (or customers) the row describes
    consumption: Mapped[Decimal | None] = mapped_column(Numeric(18, 3))  # kWh
    charged: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    paid: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    debt: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    accounts: Mapped[int | None] = mapped_column(Integer)
    debtors: Mapped[int | None] = mapped_column(Integer)
    e_receipts: Mapped[int | None] = mapped_column(Integer)
    autopay: Mapped[int | None] = mapped_column(Integer)
    active_cabinets: Mapped[int | None] = mapped_column(Integer)
    registrations: Mapped[int | None] = mapped_column(Integer)
    readings: Mapped[int | None] = mapped_column(Integer)
    readings_on_time: Mapped[int | None] = mapped_column(Integer)
    payments: Mapped[int | None] = mapped_column(Integer)
    payments_sum: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    appeals: Mapped[int | None] = mapped_column(Integer)
    applications: Mapped[int | None] = mapped_column(Integer)
    answer_seconds: Mapped[list[int] | None] = mapped_column(ARRAY(Integer))  # first-answer times

    __table_args__ = (Index("ix_analytics_rollups_family_grouping_period", "family", "grouping", "period"),)
