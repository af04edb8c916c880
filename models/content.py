"""Information sections: online shop (I1), FAQ (I2), surveys (I3), promotions (I4), offices, appointments
and callback requests (I5)."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Computed,
    ForeignKey,
    Index,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, CreatedMixin, IdMixin, Money, TimestampsMixin
from models.columns import enum_type
from services.clock import now as clock_now


class SurveyAudience(enum.StrEnum):
    """Who a survey is offered to."""

    ALL = "ALL"
    SELECTED = "SELECTED"  # only the users in survey_recipients


class QuestionKind(enum.StrEnum):
    """How a survey question is answered."""

    SINGLE = "SINGLE"  # one option
    MULTIPLE = "MULTIPLE"  # several options
    TEXT = "TEXT"  # free text


class AppointmentStatus(enum.StrEnum):
    """State of an office appointment."""

    BOOKED = "BOOKED"
    CANCELED = "CANCELED"


class CallbackStatus(enum.StrEnum):
    """State of a callback request."""

    NEW = "NEW"
    DONE = "DONE"
    CANCELED = "CANCELED"


class ShopCategory(IdMixin, Base):
    """A category of the online shop (I1)."""

    __tablename__ = "shop_categories"

    name: Mapped[str] = mapped_column(String(255), unique=True)
    position: Mapped[int] = mapped_column(SmallInteger, default=0, server_default=sql_text("0"))


class ShopItem(IdMixin, TimestampsMixin, Base):
    """Goods or a service sold by the supplier (I1)."""

    __tablename__ = "shop_items"

    category_id: Mapped[int] = mapped_column(ForeignKey("shop_categories.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    price: Mapped[Money | None]  # null = price on request
    image_file_id: Mapped[int | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"))
    url: Mapped[str | None] = mapped_column(Text)  # product page to order from
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sql_text("true"))
    position: Mapped[int] = mapped_column(SmallInteger, default=0, server_default=sql_text("0"))


class FaqEntry(IdMixin, TimestampsMixin, Base):
    """A question and its answer (I2), searchable in Russian."""

    __tablename__ = "faq_entries"

    category: Mapped[str] = mapped_column(String(128))
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(SmallInteger, default=0, server_default=sql_text("0"))
    # full-text search document, maintained by PostgreSQL
    search_vector: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed("to_tsvector('russian'::regconfig, question || ' ' || answer)", persisted=True),
    )

    __table_args__ = (Index("ix_faq_entries_search_vector", "search_vector", postgresql_using="gin"),)


class Survey(IdMixin, CreatedMixin, Base):
    """A survey offered to users between two moments (I3)."""

    __tablename__ = "surveys"

    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    audience: Mapped[SurveyAudience] = mapped_column(
        enum_type(SurveyAudience, length=16),
        default=SurveyAudience.ALL,
        server_default=SurveyAudience.ALL.value,
    )
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime | None]

    questions: Mapped[list[SurveyQuestion]] = relationship(
        back_populates="survey", lazy="raise", order_by="SurveyQuestion.position"
    )

    __table_args__ = (Index("ix_surveys_starts_at_ends_at", "starts_at", "ends_at"),)


class SurveyQuestion(IdMixin, Base):
    """A question of a survey."""

    __tablename__ = "survey_questions"

    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"), index=True)
    kind: Mapped[QuestionKind] = mapped_column(enum_type(QuestionKind, length=16))
    text: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(SmallInteger)
    required: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sql_text("true"))

    survey: Mapped[Survey] = relationship(back_populates="questions", lazy="raise")
    options: Mapped[list[SurveyOption]] = relationship(
        back_populates="question", lazy="raise", order_by="SurveyOption.position"
    )


class SurveyOption(IdMixin, Base):
    """An answer option of a SINGLE or MULTIPLE question."""

    __tablename__ = "survey_options"

    question_id: Mapped[int] = mapped_column(
        ForeignKey("survey_questions.id", ondelete="CASCADE"), index=True
    )
    text: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(SmallInteger)

    question: Mapped[SurveyQuestion] = relationship(back_populates="options", lazy="raise")


class SurveyRecipient(IdMixin, CreatedMixin, Base):
    """A user a SELECTED-audience survey is sent to."""

    __tablename__ = "survey_recipients"

    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)

    __table_args__ = (UniqueConstraint("survey_id", "user_id"),)


class SurveyResponse(IdMixin, Base):
    """A user's submitted answers to a survey; one per user and survey."""

    __tablename__ = "survey_responses"

    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    submitted_at: Mapped[dt.datetime] = mapped_column(default=clock_now, server_default=sql_text("now()"))

    __table_args__ = (UniqueConstraint("survey_id", "user_id"),)


class SurveyAnswer(IdMixin, Base):
    """One answer: a chosen option (one row per option for MULTIPLE) or a free text."""

    __tablename__ = "survey_answers"

    response_id: Mapped[int] = mapped_column(
        ForeignKey("survey_responses.id", ondelete="CASCADE"), index=True
    )
    question_id: Mapped[int] = mapped_column(
        ForeignKey("survey_questions.id", ondelete="CASCADE"), index=True
    )
    option_id: Mapped[int | None] = mapped_column(ForeignKey("survey_options.id", ondelete="CASCADE"))
    text: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (CheckConstraint("num_nonnulls(option_id, text) = 1", name="option_or_text"),)


class Promotion(IdMixin, CreatedMixin, Base):
    """A promotion shown between two dates (I4); branch null = everywhere."""

    __tablename__ = "promotions"

    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    image_file_id: Mapped[int | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"))
    url: Mapped[str | None] = mapped_column(Text)  # "more" link
    starts_on: Mapped[dt.date]
    ends_on: Mapped[dt.date | None]  # inclusive

    __table_args__ = (Index("ix_promotions_starts_on_ends_on", "starts_on", "ends_on"),)


class Office(IdMixin, Base):
    """A customer service office shown on the map (I5)."""

    __tablename__ = "offices"

    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    address: Mapped[str] = mapped_column(Text)
    latitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    longitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    # weekly schedule, e.g. {"mon": [["08:00", "17:00"]], "sat": []}
    opening_hours: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    services: Mapped[list[str] | None] = mapped_column(JSONB)  # what can be done there, as display texts
    phone: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sql_text("true"))


class OfficeSlot(IdMixin, Base):
    """A bookable time slot of an office."""

    __tablename__ = "office_slots"

    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id", ondelete="CASCADE"))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]

    __table_args__ = (
        UniqueConstraint("office_id", "starts_at"),
        CheckConstraint("ends_at > starts_at", name="positive_duration"),
    )


class Appointment(IdMixin, CreatedMixin, Base):
    """A user's booking of an office slot; a slot has at most one BOOKED appointment."""

    __tablename__ = "appointments"

    slot_id: Mapped[int] = mapped_column(ForeignKey("office_slots.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    topic: Mapped[str] = mapped_column(String(255))
    status: Mapped[AppointmentStatus] = mapped_column(
        enum_type(AppointmentStatus, length=16),
        default=AppointmentStatus.BOOKED,
        server_default=AppointmentStatus.BOOKED.value,
    )
    canceled_at: Mapped[dt.datetime | None]

    __table_args__ = (
        Index(
            "uq_appointments_booked_slot",
            "slot_id",
            unique=True,
            postgresql_where=sql_text("status = 'BOOKED'"),
        ),
        Index("ix_appointments_slot_id", "slot_id"),
    )


class CallbackRequest(IdMixin, CreatedMixin, Base):
    """A request to be called back by the contact centre (I5)."""

    __tablename__ = "callback_requests"

    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    phone: Mapped[str] = mapped_column(String(16))
    preferred_from: Mapped[dt.datetime | None]
    preferred_to: Mapped[dt.datetime | None]
    topic: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[CallbackStatus] = mapped_column(
        enum_type(CallbackStatus, length=16),
        default=CallbackStatus.NEW,
        server_default=CallbackStatus.NEW.value,
    )

    __table_args__ = (Index("ix_callback_requests_status_created_at", "status", "created_at"),)
