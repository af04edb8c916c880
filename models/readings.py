"""Meter readings (E2, E3, H2). Append-only: a resubmission inserts new rows that supersede the old ones."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, CreatedMixin, IdMixin, Volume
from models.columns import enum_type
from models.tariffs import Zone
from services.clock import now as clock_now


class ReadingSource(enum.StrEnum):
    """Where a reading came from."""

    CABINET = "CABINET"  # web cabinet
    MOBILE = "MOBILE"  # mobile app
    OPERATOR = "OPERATOR"  # entered by staff (phone call, control reading)
    AMI = "AMI"  # automatic meter reading system (АСКУЭ)


class ReadingSubmission(IdMixin, CreatedMixin, Base):
    """One submission of all zones of all meters of an account (E3); groups the reading rows it inserted."""

    __tablename__ = "reading_submissions"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    source: Mapped[ReadingSource] = mapped_column(enum_type(ReadingSource, length=16))
    period: Mapped[dt.date]  # first day of the month of the window
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # client info, computed consumption

    readings: Mapped[list[Reading]] = relationship(back_populates="submission", lazy="raise")

    __table_args__ = (Index("ix_reading_submissions_account_id_period", "account_id", "period"),)


class Reading(IdMixin, Base):
    """One value of one meter zone, as submitted or as accepted for billing. Never updated except
    ``superseded_by_id``/``accepted_at``/``flagged_for_review``, which record what happened to it later."""

    __tablename__ = "readings"
    billing_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # the key in exchange files

    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))  # denormalized from the meter
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("reading_submissions.id"), index=True)
    zone: Mapped[Zone] = mapped_column(enum_type(Zone, length=16))
    period: Mapped[dt.date]  # first day of the month the reading belongs to
    value: Mapped[Volume]
    source: Mapped[ReadingSource] = mapped_column(enum_type(ReadingSource, length=16))
    submitted_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    submitted_at: Mapped[dt.datetime] = mapped_column(default=clock_now, server_default=func.now())
    accepted: Mapped[bool] = mapped_column(  # accepted for billing (the values E2 shows as «принятые»)
        Boolean, default=False, server_default=text("false")
    )
    accepted_at: Mapped[dt.datetime | None]
    flagged_for_review: Mapped[bool] = mapped_column(  # implausible jump, wrap-around: an operator checks it
        Boolean, default=False, server_default=text("false")
    )
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("readings.id"))  # the replacing row (E3)

    submission: Mapped[ReadingSubmission | None] = relationship(back_populates="readings", lazy="raise")

    __table_args__ = (
        Index("ix_readings_meter_id_period", "meter_id", "period"),
        Index("ix_readings_account_id_period", "account_id", "period"),
        # the current value of each meter zone: the last row that nothing superseded
        Index(
            "ix_readings_current",
            "meter_id",
            "zone",
            "period",
            postgresql_where=text("superseded_by_id IS NULL"),
        ),
        CheckConstraint("value >= 0", name="value_not_negative"),
    )
