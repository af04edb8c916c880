"""A1 registration and A2 e-mail confirmation."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from models.identity import (
    CodeChannel,
    CodePurpose,
    Consent,
    ConsentKind,
    User,
    UserRole,
)
from services import codes
from services.errors import DomainError
from services.identity.common import (
    Caller,
    _hash,
    _limit_lookups,
    _require,
    audit,
    check_name,
    check_password,
    collect,
    live_user,
    normalize_email,
    normalize_phone,
    user_by_confirmed_email,
    user_by_phone,
)
from services.identity.errors import (
    ConsentRequired,
    EmailAlreadyConfirmed,
    EmailTaken,
    InvalidInput,
    NoEmail,
    PhoneTaken,
)
from services.unit_of_work import touch

# --- A1 registration --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registration:
    """The A1 form without the code."""

    phone: str | None
    email: str | None
    last_name: str | None
    first_name: str | None
    middle_name: str | None
    password: str | None
    password_repeat: str | None
    consent: bool


async def start_registration(session: AsyncSession, caller: Caller, form: Registration) -> codes.SentCode:
    """A1 step 1: check every field, then send a code by SMS bound to the pending registration."""
    f = ["input"]
    phone, email, last, first, middle, password, _ = collect(
        lambda: normalize_phone(form.phone, [*f, "phone"]),
        lambda: normalize_email(form.email, [*f, "email"]),
        lambda: check_name(form.last_name, [*f, "lastName"]),
        lambda: check_name(form.first_name, [*f, "firstName"]),
        lambda: check_name(form.middle_name, [*f, "middleName"], required=False),
        lambda: check_password(form.password, form.password_repeat, [*f, "password"], [*f, "passwordRepeat"]),
        lambda: _require(form.consent, ConsentRequired(field=[*f, "consent"])),
    )
    await _limit_lookups(caller, f"phone:{phone}", [*f, "phone"])
    await _ensure_free(session, phone, email)
    payload = {
        "phone": phone,
        "email": email,
        "last_name": last,
        "first_name": first,
        "middle_name": middle,
        "password_hash": await _hash(password),
        "consent": {
            "policy_version": caller.policy_version,
            "accepted_at": caller.now.isoformat(),
            "client_ip": caller.client_ip,
            "user_agent": caller.user_agent,
        },
    }
    return await codes.issue(
        session,
        caller.counters,
        secret=caller.secret,
        purpose=CodePurpose.REGISTRATION,
        channel=CodeChannel.SMS,
        destination=phone,
        now=caller.now,
        client_ip=caller.client_ip,
        payload=payload,
        field=[*f, "phone"],
    )


async def _ensure_free(
    session: AsyncSession, phone: str | None, email: str | None, *, except_user: int | None = None
) -> None:
    errors: list[DomainError] = []
    if phone is not None:
        found = await user_by_phone(session, phone)
        if found is not None and found.id != except_user:
            errors.append(PhoneTaken(field=["input", "phone"]))
    if email is not None:
        found = await user_by_confirmed_email(session, email)
        if found is not None and found.id != except_user:
            errors.append(EmailTaken(field=["input", "email"]))
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise InvalidInput(errors)


async def complete_registration(session: AsyncSession, caller: Caller, phone: str | None, code: str) -> User:
    """A1 step 2: the SMS code creates the cabinet, records the consent and sends an A2 code by e-mail."""
    destination = normalize_phone(phone, ["input", "phone"])
    row = await codes.check(
        session,
        caller.counters,
        secret=caller.secret,
        purpose=CodePurpose.REGISTRATION,
        destination=destination,
        code=code,
        now=caller.now,
        client_ip=caller.client_ip,
        field=["input", "code"],
    )
    data = row.payload or {}
    await _ensure_free(session, data["phone"], data["email"])
    user = User(
        phone=data["phone"],
        email=data["email"],
        last_name=data["last_name"],
        first_name=data["first_name"],
        middle_name=data.get("middle_name"),
        password_hash=data["password_hash"],
        password_changed_at=caller.now,
        role=UserRole.CUSTOMER,
        show_hints=True,
    )
    session.add(user)
    await session.flush()
    touch(session, users=[user.id])
    consent = data["consent"]
    session.add(
        Consent(
            user_id=user.id,
            kind=ConsentKind.PERSONAL_DATA,
            policy_version=consent["policy_version"],
            accepted_at=dt.datetime.fromisoformat(consent["accepted_at"]),
            client_ip=consent["client_ip"],
            user_agent=consent["user_agent"],
        )
    )
    audit(
        session,
        caller,
        "user.register",
        actor_user_id=user.id,
        user_id=user.id,
        changes={
            "phone": [None, user.phone],
            "email": [None, user.email],
            "last_name": [None, user.last_name],
            "first_name": [None, user.first_name],
            "middle_name": [None, user.middle_name],
            "consent": consent["policy_version"],
        },
    )
    try:
        await send_email_confirmation(session, caller, user)
    except codes.RetryLater:
        pass  # the user can ask again from the profile
    return user


# --- A2 e-mail confirmation -------------------------------------------------------------------------------


async def send_email_confirmation(session: AsyncSession, caller: Caller, user: User) -> codes.SentCode:
    """A2: a code to the user's unconfirmed e-mail."""
    if not user.email:
        raise NoEmail()
    if user.email_confirmed_at is not None:
        raise EmailAlreadyConfirmed()
    return await codes.issue(
        session,
        caller.counters,
        secret=caller.secret,
        purpose=CodePurpose.EMAIL_CONFIRMATION,
        channel=CodeChannel.EMAIL,
        destination=user.email,
        now=caller.now,
        client_ip=caller.client_ip,
        user_id=user.id,
    )


async def confirm_email(session: AsyncSession, caller: Caller, user_id: int, code: str) -> User:
    """A2: the code confirms the address (unless another cabinet confirmed it meanwhile)."""
    user = await live_user(session, user_id)
    if not user.email:
        raise NoEmail()
    if user.email_confirmed_at is not None:
        raise EmailAlreadyConfirmed()
    await codes.check(
        session,
        caller.counters,
        secret=caller.secret,
        purpose=CodePurpose.EMAIL_CONFIRMATION,
        destination=user.email,
        code=code,
        now=caller.now,
        client_ip=caller.client_ip,
        user_id=user.id,
        field=["input", "code"],
    )
    await _ensure_free(session, None, user.email, except_user=user.id)
    user.email_confirmed_at = caller.now
    audit(
        session,
        caller,
        "user.email_confirm",
        actor_user_id=user.id,
        user_id=user.id,
        changes={"email": [user.email, user.email]},
    )
    return user
