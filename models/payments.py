"""Payments through a gateway, their allocation to accounts and suppliers, saved cards and autopay
(D4, D5, H1, J7). ``payments`` keeps its own idempotency key (unique per user) so a retried request can
never create a second payment."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, CreatedMixin, IdMixin, Money, TimestampsMixin
from models.columns import enum_type
from services.clock import now as clock_now


class PaymentStatus(enum.StrEnum):
    """State of a payment at the gateway."""

    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    REFUNDED = "REFUNDED"


class PaymentMethodKind(enum.StrEnum):
    """How the customer pays."""

    CARD = "CARD"  # redirect to the card page, or a saved card for autopay
    SBP = "SBP"  # fast payment system: QR code for a banking app


class Payment(IdMixin, TimestampsMixin, Base):
    """One payment by a user, possibly covering several accounts and suppliers (allocations)."""

    __tablename__ = "payments"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[PaymentStatus] = mapped_column(
        enum_type(PaymentStatus, length=16),
        default=PaymentStatus.PENDING,
        server_default=PaymentStatus.PENDING.value,
    )
    method: Mapped[PaymentMethodKind] = mapped_column(enum_type(PaymentMethodKind, length=16))
    amount: Mapped[Money]  # total of the allocations
    currency: Mapped[str] = mapped_column(String(3), default="RUB", server_default="RUB")
    gateway: Mapped[str] = mapped_column(String(32))  # adapter name, e.g. "sandbox"
    gateway_payment_id: Mapped[str | None] = mapped_column(String(128))  # set once the gateway answered
    confirmation_url: Mapped[str | None] = mapped_column(Text)  # card page to redirect to
    sbp_payload: Mapped[str | None] = mapped_column(Text)  # SBP QR-code contents
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_fingerprint: Mapped[str] = mapped_column(
        String(64)
    )  # SHA-256 of the request; a reused key must match
    receipt_email: Mapped[str | None] = mapped_column(String(254))  # «Получить квитанцию»
    rules_accepted_at: Mapped[dt.datetime | None]  # payment rules accepted (D5); null only for autopay
    is_autopay: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    payment_method_id: Mapped[int | None] = mapped_column(  # saved card used (autopay)
        ForeignKey("payment_methods.id", ondelete="SET NULL")
    )
    failure_reason: Mapped[str | None] = mapped_column(Text)
    paid_at: Mapped[dt.datetime | None]

    allocations: Mapped[list[PaymentAllocation]] = relationship(back_populates="payment", lazy="raise")

    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        UniqueConstraint("gateway", "gateway_payment_id"),
        Index("ix_payments_user_id_created_at", "user_id", "created_at"),
        Index("ix_payments_status_created_at", "status", "created_at"),  # reconciling stale PENDING ones
        CheckConstraint("amount > 0", name="amount_positive"),
    )


class PaymentAllocation(IdMixin, Base):
    """The part of a payment credited to one account and supplier (D5: per-supplier checkboxes)."""

    __tablename__ = "payment_allocations"

    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), index=True)
    period: Mapped[dt.date]  # first day of the month the payment is credited in
    amount: Mapped[Money]

    payment: Mapped[Payment] = relationship(back_populates="allocations", lazy="raise")

    __table_args__ = (
        Index("ix_payment_allocations_account_id_period", "account_id", "period"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )


class PaymentStatusChange(IdMixin, Base):
    """History of a payment's status (the subscription replays it)."""

    __tablename__ = "payment_status_changes"

    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"))
    status: Mapped[PaymentStatus] = mapped_column(enum_type(PaymentStatus, length=16))
    changed_at: Mapped[dt.datetime] = mapped_column(default=clock_now, server_default=func.now())
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_payment_status_changes_payment_id_changed_at", "payment_id", "changed_at"),)


class WebhookEvent(IdMixin, Base):
    """A gateway callback, stored once per event id so a redelivered callback is a no-op."""

    __tablename__ = "webhook_events"

    provider: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[dt.datetime] = mapped_column(default=clock_now, server_default=func.now())
    processed_at: Mapped[dt.datetime | None]
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)

    __table_args__ = (UniqueConstraint("provider", "event_id"),)


class PaymentMethod(IdMixin, CreatedMixin, Base):
    """A card saved at the gateway (only its token and mask are stored) for autopay (J7)."""

    __tablename__ = "payment_methods"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    gateway: Mapped[str] = mapped_column(String(32))
    token: Mapped[str] = mapped_column(String(255))  # the gateway's recurring-payment token
    card_brand: Mapped[str | None] = mapped_column(String(32))  # e.g. MIR, VISA
    card_last4: Mapped[str] = mapped_column(String(4))
    expiry_month: Mapped[int | None] = mapped_column(SmallInteger)
    expiry_year: Mapped[int | None] = mapped_column(SmallInteger)
    revoked_at: Mapped[dt.datetime | None]

    __table_args__ = (UniqueConstraint("gateway", "token"),)


class AutopaySetting(IdMixin, TimestampsMixin, Base):
    """Autopay of one linked account (J7). Tied to the link: unlinking the account deletes it (B2)."""

    __tablename__ = "autopay_settings"

    user_account_id: Mapped[int] = mapped_column(
        ForeignKey("user_accounts.id", ondelete="CASCADE"), unique=True
    )
    payment_method_id: Mapped[int] = mapped_column(
        ForeignKey("payment_methods.id", ondelete="CASCADE"), index=True
    )
    amount_limit: Mapped[Money | None]  # never charge more than this per period; null = no limit
    day_of_month: Mapped[int | None] = mapped_column(SmallInteger)  # null = when the receipt is issued
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))


class AutopayRun(IdMixin, CreatedMixin, Base):
    """One autopay attempt for an account and period; the unique pair makes the job run once."""

    __tablename__ = "autopay_runs"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    period: Mapped[dt.date]
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", ondelete="SET NULL"))
    skipped_reason: Mapped[str | None] = mapped_column(Text)  # e.g. over the limit, nothing due

    __table_args__ = (UniqueConstraint("account_id", "period"),)
