"""Appeals (обращения, F1–F2), applications (заявления, C2, C3, G3), their timelines, attachments and
customer documents (G1, G2)."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedMixin, IdMixin, TimestampsMixin
from models.columns import enum_type


class RequestStatus(enum.StrEnum):
    """Processing state of an appeal or application."""

    NEW = "NEW"
    IN_PROGRESS = "IN_PROGRESS"
    ANSWERED = "ANSWERED"
    CLOSED = "CLOSED"
    REJECTED = "REJECTED"


class ApplicationKind(enum.StrEnum):
    """The 18 kinds of application (G3), plus C2/C3 which map to CHANGE_OF_ACCOUNT_DATA and METER_CHECK."""

    RECONCILIATION_ACT = "RECONCILIATION_ACT"
    NO_DEBT_CERTIFICATE = "NO_DEBT_CERTIFICATE"
    DEBT_RESTRUCTURING_AGREEMENT = "DEBT_RESTRUCTURING_AGREEMENT"
    OPEN_ACCOUNT = "OPEN_ACCOUNT"
    CLOSE_ACCOUNT = "CLOSE_ACCOUNT"
    CHANGE_OF_OWNER = "CHANGE_OF_OWNER"
    CHANGE_OF_ACCOUNT_DATA = "CHANGE_OF_ACCOUNT_DATA"
    FREE_FORM = "FREE_FORM"
    METER_SEALING = "METER_SEALING"
    CONTROL_READING = "CONTROL_READING"
    METER_CHECK = "METER_CHECK"
    CHARGES_CORRECTION_BY_READINGS = "CHARGES_CORRECTION_BY_READINGS"
    REFUND = "REFUND"
    PAYMENT_REDIRECT = "PAYMENT_REDIRECT"
    RECEIVABLES_RESTRUCTURING = "RECEIVABLES_RESTRUCTURING"
    RECALCULATION_TEMPORARY_ABSENCE = "RECALCULATION_TEMPORARY_ABSENCE"
    TARIFF_CHANGE_DAY_ZONES = "TARIFF_CHANGE_DAY_ZONES"
    TARIFF_CHANGE_REDUCTION_COEFFICIENT = "TARIFF_CHANGE_REDUCTION_COEFFICIENT"


class RequestEventKind(enum.StrEnum):
    """What happened on an appeal's or application's timeline."""

    CREATED = "CREATED"
    STATUS_CHANGED = "STATUS_CHANGED"
    COMMENT = "COMMENT"
    ANSWER = "ANSWER"


class AttachmentDirection(enum.StrEnum):
    """Who attached a file."""

    FROM_CUSTOMER = "FROM_CUSTOMER"
    FROM_OPERATOR = "FROM_OPERATOR"


class DocumentType(enum.StrEnum):
    """Type of a customer's document (G1, G2)."""

    ENERGY_SUPPLY_CONTRACT = "ENERGY_SUPPLY_CONTRACT"
    RESTRUCTURING_AGREEMENT = "RESTRUCTURING_AGREEMENT"
    COURT_DOCUMENT = "COURT_DOCUMENT"
    RECONCILIATION_ACT = "RECONCILIATION_ACT"
    NO_DEBT_CERTIFICATE = "NO_DEBT_CERTIFICATE"
    OWNERSHIP_DOCUMENT = "OWNERSHIP_DOCUMENT"
    IDENTITY_DOCUMENT = "IDENTITY_DOCUMENT"
    OTHER = "OTHER"


class Appeal(IdMixin, TimestampsMixin, Base):
    """A customer's appeal (обращение) with an operator's answer (F1, F2)."""

    __tablename__ = "appeals"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    supplier_id: Mapped[int | None] = mapped_column(ForeignKey("suppliers.id"), index=True)
    topic: Mapped[str] = mapped_column(String(128))  # code of a topic from the list
    text: Mapped[str] = mapped_column(Text)
    full_name: Mapped[str] = mapped_column(String(160))  # pre-filled from the owner, editable
    phone: Mapped[str | None] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(String(254))
    status: Mapped[RequestStatus] = mapped_column(
        enum_type(RequestStatus, length=16), default=RequestStatus.NEW, server_default=RequestStatus.NEW.value
    )
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)  # staff handling it
    answer: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]

    __table_args__ = (
        Index("ix_appeals_account_id_created_at", "account_id", "created_at"),
        Index("ix_appeals_user_id_created_at", "user_id", "created_at"),
        Index("ix_appeals_status_created_at", "status", "created_at"),  # operators' queue
    )


class Application(IdMixin, TimestampsMixin, Base):
    """A customer's application (заявление) of one of the G3 kinds; also C2 requisites changes and C3
    meter malfunctions."""

    __tablename__ = "applications"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[ApplicationKind] = mapped_column(enum_type(ApplicationKind, length=48))
    fields: Mapped[dict[str, Any]] = mapped_column(  # the kind's form fields as submitted
        JSONB, default=dict, server_default=sql_text("'{}'::jsonb")
    )
    text: Mapped[str | None] = mapped_column(Text)
    meter_id: Mapped[int | None] = mapped_column(ForeignKey("meters.id"), index=True)  # meter kinds, C3
    # the form's contact block (§2.11), pre-filled like an appeal's; NULL on rows older than revision 0004
    full_name: Mapped[str | None] = mapped_column(String(160))
    supplier_id: Mapped[int | None] = mapped_column(ForeignKey("suppliers.id"), index=True)
    phone: Mapped[str | None] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(String(254))
    status: Mapped[RequestStatus] = mapped_column(
        enum_type(RequestStatus, length=16), default=RequestStatus.NEW, server_default=RequestStatus.NEW.value
    )
    consent_id: Mapped[int | None] = mapped_column(ForeignKey("consents.id"))  # 152-FZ consent given with it
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    answer: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]

    __table_args__ = (
        Index("ix_applications_account_id_created_at", "account_id", "created_at"),
        Index("ix_applications_user_id_created_at", "user_id", "created_at"),
        Index("ix_applications_status_created_at", "status", "created_at"),
    )


class RequestEvent(IdMixin, CreatedMixin, Base):
    """A timeline row of exactly one appeal or application."""

    __tablename__ = "request_events"

    appeal_id: Mapped[int | None] = mapped_column(ForeignKey("appeals.id", ondelete="CASCADE"), index=True)
    application_id: Mapped[int | None] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[RequestEventKind] = mapped_column(enum_type(RequestEventKind, length=16))
    status: Mapped[RequestStatus | None] = mapped_column(enum_type(RequestStatus, length=16))  # new status
    text: Mapped[str | None] = mapped_column(Text)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    visible_to_customer: Mapped[bool] = mapped_column(  # false for internal operator notes
        Boolean, default=True, server_default=sql_text("true")
    )

    __table_args__ = (CheckConstraint("num_nonnulls(appeal_id, application_id) = 1", name="one_parent"),)


class Document(IdMixin, CreatedMixin, Base):
    """A document of an account: issued by the company or uploaded by the customer (G1, G2)."""

    __tablename__ = "documents"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    user_id: Mapped[int | None] = mapped_column(  # uploader; null for documents issued by the company
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    type: Mapped[DocumentType] = mapped_column(enum_type(DocumentType))
    title: Mapped[str] = mapped_column(String(255))
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id"), index=True)
    uploaded_by_customer: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=sql_text("false")
    )

    __table_args__ = (Index("ix_documents_account_id_created_at", "account_id", "created_at"),)


class Attachment(IdMixin, CreatedMixin, Base):
    """A file attached to an appeal, application, document or timeline event (each ≤ 7 MB, ≤ 100 MB total)."""

    __tablename__ = "attachments"

    file_id: Mapped[int] = mapped_column(ForeignKey("files.id"), index=True)
    appeal_id: Mapped[int | None] = mapped_column(ForeignKey("appeals.id", ondelete="CASCADE"), index=True)
    application_id: Mapped[int | None] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    document_id: Mapped[int | None] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    request_event_id: Mapped[int | None] = mapped_column(
        ForeignKey("request_events.id", ondelete="CASCADE"), index=True
    )
    direction: Mapped[AttachmentDirection] = mapped_column(enum_type(AttachmentDirection, length=16))

    __table_args__ = (
        CheckConstraint(
            "num_nonnulls(appeal_id, application_id, document_id, request_event_id) >= 1", name="has_parent"
        ),
    )
