"""Identity: users, consents, sessions and refresh tokens, one-time codes, alternative logins (A1–A9, J1–J4).

Phone and confirmed e-mail are unique only among users that are not deleted (J10): a deleted cabinet
keeps its row for the audit trail and frees its phone and e-mail for a new registration.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, CreatedMixin, IdMixin, TimestampsMixin
from models.columns import enum_type
from services.clock import now as clock_now


class UserRole(enum.StrEnum):
    """What a user may do: customers see their linked accounts, staff roles see more."""

    CUSTOMER = "CUSTOMER"
    OPERATOR = "OPERATOR"
    ANALYST = "ANALYST"
    ADMIN = "ADMIN"


class ConsentKind(enum.StrEnum):
    """Which document or permission a consent accepts."""

    PERSONAL_DATA = "PERSONAL_DATA"  # personal-data policy under 152-FZ (A1, G3)
    E_RECEIPT = "E_RECEIPT"  # electronic receipts instead of paper (B1, J5)
    MARKETING = "MARKETING"  # advertising subscriptions (J6)
    PAYMENT_RULES = "PAYMENT_RULES"  # payment rules (D5)


class ClientKind(enum.StrEnum):
    """The front end a session belongs to."""

    WEB = "WEB"
    MOBILE = "MOBILE"


class CodePurpose(enum.StrEnum):
    """What a one-time code confirms."""

    REGISTRATION = "REGISTRATION"
    EMAIL_CONFIRMATION = "EMAIL_CONFIRMATION"
    LOGIN = "LOGIN"
    PASSWORD_RESET = "PASSWORD_RESET"
    PHONE_CHANGE = "PHONE_CHANGE"
    EMAIL_CHANGE = "EMAIL_CHANGE"


class CodeChannel(enum.StrEnum):
    """How a one-time code is delivered."""

    SMS = "SMS"
    EMAIL = "EMAIL"


class IdentityProvider(enum.StrEnum):
    """External login providers (A5, J8)."""

    VK = "VK"


class QrLoginStatus(enum.StrEnum):
    """Life cycle of a QR-code login challenge (A6)."""

    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    CONSUMED = "CONSUMED"
    EXPIRED = "EXPIRED"


class PushPlatform(enum.StrEnum):
    """Push notification service a device token belongs to."""

    IOS = "IOS"
    ANDROID = "ANDROID"
    HUAWEI = "HUAWEI"
    WEB = "WEB"


class User(IdMixin, TimestampsMixin, Base):
    """A cabinet user: a customer or a member of staff."""

    __tablename__ = "users"

    phone: Mapped[str] = mapped_column(String(16))  # E.164, e.g. +79101234567
    email: Mapped[str | None] = mapped_column(String(254))  # stored lower-cased by the service
    email_confirmed_at: Mapped[dt.datetime | None]  # unconfirmed e-mail cannot log in or receive codes (A2)
    last_name: Mapped[str] = mapped_column(String(50))
    first_name: Mapped[str] = mapped_column(String(50))
    middle_name: Mapped[str | None] = mapped_column(String(50))
    password_hash: Mapped[str | None] = mapped_column(String(255))  # argon2id; null for VK-only users
    password_changed_at: Mapped[dt.datetime | None]
    role: Mapped[UserRole] = mapped_column(
        enum_type(UserRole, length=16), default=UserRole.CUSTOMER, server_default=UserRole.CUSTOMER.value
    )
    show_hints: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))  # J9
    last_login_at: Mapped[dt.datetime | None]
    deleted_at: Mapped[dt.datetime | None]  # J10: soft delete, row kept for the audit trail

    __table_args__ = (
        Index("uq_users_phone", "phone", unique=True, postgresql_where=text("deleted_at IS NULL")),
        Index(
            "uq_users_confirmed_email",
            "email",
            unique=True,
            postgresql_where=text("email_confirmed_at IS NOT NULL AND deleted_at IS NULL"),
        ),
        Index("ix_users_email", "email"),
    )


class Consent(IdMixin, Base):
    """One accepted consent: what, which version, when and from where (A1, G3, D5)."""

    __tablename__ = "consents"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[ConsentKind] = mapped_column(enum_type(ConsentKind))
    policy_version: Mapped[str] = mapped_column(String(32))  # version of the accepted document
    accepted_at: Mapped[dt.datetime] = mapped_column(default=clock_now, server_default=func.now())
    client_ip: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(Text)
    revoked_at: Mapped[dt.datetime | None]

    __table_args__ = (Index("ix_consents_user_id_kind", "user_id", "kind"),)


class AuthSession(IdMixin, CreatedMixin, Base):
    """A login on one device; its refresh tokens form one rotation family (A9 revokes it)."""

    __tablename__ = "auth_sessions"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    device_name: Mapped[str | None] = mapped_column(String(128))
    client_kind: Mapped[ClientKind] = mapped_column(enum_type(ClientKind, length=16))
    client_ip: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(Text)
    last_used_at: Mapped[dt.datetime] = mapped_column(default=clock_now, server_default=func.now())
    expires_at: Mapped[dt.datetime]  # absolute lifetime; refreshing does not extend it
    revoked_at: Mapped[dt.datetime | None]  # logout, token reuse detected, password change

    user: Mapped[User] = relationship(lazy="raise")


class RefreshToken(IdMixin, CreatedMixin, Base):
    """A refresh token of a session; only its hash is stored. A reused token revokes its session."""

    __tablename__ = "refresh_tokens"

    session_id: Mapped[int] = mapped_column(ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)  # SHA-256 of the token
    used_at: Mapped[dt.datetime | None]  # set when rotated; a second use is a theft signal
    expires_at: Mapped[dt.datetime]


class VerificationCode(IdMixin, CreatedMixin, Base):
    """A one-time code sent by SMS or e-mail, valid 5 minutes (A1, A2, A4, A8, J2, J3)."""

    __tablename__ = "verification_codes"

    purpose: Mapped[CodePurpose] = mapped_column(enum_type(CodePurpose))
    channel: Mapped[CodeChannel] = mapped_column(enum_type(CodeChannel, length=16))
    destination: Mapped[str] = mapped_column(String(254))  # normalized phone or e-mail
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # pending registration or change
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0, server_default=text("0"))
    expires_at: Mapped[dt.datetime]
    consumed_at: Mapped[dt.datetime | None]
    client_ip: Mapped[str | None] = mapped_column(INET)

    __table_args__ = (
        # lookup of the live code and resend rate limits by destination
        Index("ix_verification_codes_destination_purpose", "destination", "purpose", "created_at"),
    )


class ExternalIdentity(IdMixin, CreatedMixin, Base):
    """A user's account at an external login provider (A5, J8)."""

    __tablename__ = "external_identities"

    provider: Mapped[IdentityProvider] = mapped_column(enum_type(IdentityProvider, length=16))
    subject: Mapped[str] = mapped_column(String(255))  # the provider's user id
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    profile: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # what the provider returned last

    __table_args__ = (UniqueConstraint("provider", "subject"),)


class VkLoginFlow(IdMixin, CreatedMixin, Base):
    """A VK login (A5) or connect (J8) that was started and not finished yet: the server's half of OAuth.

    ``state`` is only stored hashed; the PKCE verifier and the OpenID nonce never leave the server. The flow
    belongs to whoever started it (``user_id`` for a connect flow, NULL for an anonymous login) and is
    deleted when it is used, so it is finished at most once and only by its own kind of caller."""

    __tablename__ = "vk_login_flows"

    state_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)  # SHA-256 of the state
    user_id: Mapped[int | None] = mapped_column(  # the cabinet a connect flow links to; NULL: a login
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_verifier: Mapped[str] = mapped_column(String(128))  # PKCE, sent to VK's token endpoint only
    nonce: Mapped[str] = mapped_column(String(64))  # must come back in VK's ID token
    redirect_uri: Mapped[str] = mapped_column(Text)  # the completion must name the same one
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class DeviceCredential(IdMixin, CreatedMixin, Base):
    """A passkey / device key unlocked by biometrics on a phone (A7)."""

    __tablename__ = "device_credentials"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary, unique=True)  # WebAuthn credential id
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE public key
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    name: Mapped[str | None] = mapped_column(String(128))
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class QrLoginChallenge(IdMixin, CreatedMixin, Base):
    """A QR code shown by the web client and approved from the logged-in mobile app (A6)."""

    __tablename__ = "qr_login_challenges"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)  # SHA-256 of the token in the QR
    status: Mapped[QrLoginStatus] = mapped_column(
        enum_type(QrLoginStatus, length=16),
        default=QrLoginStatus.PENDING,
        server_default=QrLoginStatus.PENDING.value,
    )
    web_client_ip: Mapped[str | None] = mapped_column(INET)
    web_user_agent: Mapped[str | None] = mapped_column(Text)  # shown to the approving user
    approved_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    decided_at: Mapped[dt.datetime | None]
    session_id: Mapped[int | None] = mapped_column(  # the web session created on consumption
        ForeignKey("auth_sessions.id", ondelete="SET NULL")
    )
    expires_at: Mapped[dt.datetime]


class PushDevice(IdMixin, CreatedMixin, Base):
    """A mobile device registered for push notifications."""

    __tablename__ = "push_devices"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    platform: Mapped[PushPlatform] = mapped_column(enum_type(PushPlatform, length=16))
    token: Mapped[str] = mapped_column(String(512), unique=True)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("auth_sessions.id", ondelete="SET NULL"))
    last_seen_at: Mapped[dt.datetime | None]
