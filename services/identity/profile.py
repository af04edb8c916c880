"""The profile (J1–J4, J9, J10): names, phone, e-mail, password, hints, deleting the cabinet."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.accounts import UserAccount
from models.identity import (
    CodeChannel,
    CodePurpose,
    DeviceCredential,
    ExternalIdentity,
    User,
)
from services import codes
from services.errors import DomainError, FieldRequired
from services.identity.common import (
    Caller,
    _hash,
    _verify,
    audit,
    check_name,
    check_password,
    collect,
    live_user,
    normalize_email,
    normalize_phone,
)
from services.identity.errors import SameValue, WrongCurrentPassword
from services.identity.registration import _ensure_free
from services.sessions import revoke_sessions

# --- profile ----------------------------------------------------------------------------------------------


async def update_names(
    session: AsyncSession,
    caller: Caller,
    user_id: int,
    last: str | None,
    first: str | None,
    middle: str | None,
) -> User:
    """J1: names by A1's rules; the middle name may be cleared."""
    last_name, first_name, middle_name = collect(
        lambda: check_name(last, ["input", "lastName"]),
        lambda: check_name(first, ["input", "firstName"]),
        lambda: check_name(middle, ["input", "middleName"], required=False),
    )
    user = await live_user(session, user_id)
    changes = {
        name: [old, new]
        for name, old, new in (
            ("last_name", user.last_name, last_name),
            ("first_name", user.first_name, first_name),
            ("middle_name", user.middle_name, middle_name),
        )
        if old != new
    }
    user.last_name, user.first_name, user.middle_name = last_name, first_name, middle_name
    if changes:
        audit(session, caller, "user.update_names", actor_user_id=user.id, user_id=user.id, changes=changes)
    return user


@dataclass(frozen=True)
class _Contact:
    """A contact changed by a code sent to its new value (J2 the phone, J3 the e-mail)."""

    field: str  # the input field, the code's payload key and the audited change's name
    purpose: CodePurpose
    channel: CodeChannel


_PHONE = _Contact("phone", CodePurpose.PHONE_CHANGE, CodeChannel.SMS)
_EMAIL = _Contact("email", CodePurpose.EMAIL_CHANGE, CodeChannel.EMAIL)


async def _ensure_contact_free(session: AsyncSession, contact: _Contact, value: str, user_id: int) -> None:
    phone, email = (value, None) if contact is _PHONE else (None, value)
    await _ensure_free(session, phone, email, except_user=user_id)


async def _send_change_code(
    session: AsyncSession, caller: Caller, user: User, contact: _Contact, new: str
) -> codes.SentCode:
    """A code to ``new`` once nobody else holds it (A1's message otherwise)."""
    await _ensure_contact_free(session, contact, new, user.id)
    return await codes.issue(
        session,
        caller.counters,
        secret=caller.secret,
        purpose=contact.purpose,
        channel=contact.channel,
        destination=new,
        now=caller.now,
        client_ip=caller.client_ip,
        user_id=user.id,
        payload={contact.field: new},
        field=["input", contact.field],
    )


async def _check_change_code(
    session: AsyncSession, caller: Caller, user: User, contact: _Contact, new: str, code: str
) -> None:
    """The code sent to ``new`` is right, and ``new`` is still free (someone may have taken it since)."""
    await codes.check(
        session,
        caller.counters,
        secret=caller.secret,
        purpose=contact.purpose,
        destination=new,
        code=code,
        now=caller.now,
        client_ip=caller.client_ip,
        user_id=user.id,
        field=["input", "code"],
    )
    await _ensure_contact_free(session, contact, new, user.id)


def _audit_change(
    session: AsyncSession, caller: Caller, user: User, contact: _Contact, old: str | None, new: str
) -> None:
    audit(
        session,
        caller,
        f"user.change_{contact.field}",
        actor_user_id=user.id,
        user_id=user.id,
        changes={contact.field: [old, new]},
    )


async def request_phone_change(
    session: AsyncSession, caller: Caller, user_id: int, phone: str | None
) -> codes.SentCode:
    """J2: a code by SMS to the new number (a taken number is refused with A1's message)."""
    new = normalize_phone(phone, ["input", "phone"])
    user = await live_user(session, user_id)
    if new == user.phone:
        raise SameValue(field=["input", "phone"])
    return await _send_change_code(session, caller, user, _PHONE, new)


async def confirm_phone_change(
    session: AsyncSession, caller: Caller, user_id: int, phone: str | None, code: str
) -> User:
    """J2: the code sent to the new number switches the phone."""
    new = normalize_phone(phone, ["input", "phone"])
    user = await live_user(session, user_id)
    await _check_change_code(session, caller, user, _PHONE, new, code)
    old, user.phone = user.phone, new
    _audit_change(session, caller, user, _PHONE, old, new)
    return user


async def request_email_change(
    session: AsyncSession, caller: Caller, user_id: int, email: str | None
) -> codes.SentCode:
    """J3: a code to the new address (a confirmed taken one is refused with A1's message)."""
    new = normalize_email(email, ["input", "email"])
    user = await live_user(session, user_id)
    if new == user.email and user.email_confirmed_at is not None:
        raise SameValue(field=["input", "email"])
    return await _send_change_code(session, caller, user, _EMAIL, new)


async def confirm_email_change(
    session: AsyncSession, caller: Caller, user_id: int, email: str | None, code: str
) -> User:
    """J3: the code sent to the new address sets it, confirmed."""
    new = normalize_email(email, ["input", "email"])
    user = await live_user(session, user_id)
    await _check_change_code(session, caller, user, _EMAIL, new, code)
    old, user.email, user.email_confirmed_at = user.email, new, caller.now
    _audit_change(session, caller, user, _EMAIL, old, new)
    return user


async def change_password(
    session: AsyncSession,
    caller: Caller,
    user_id: int,
    current_session_id: int,
    current: str | None,
    password: str | None,
    repeat: str | None,
) -> tuple[User, list[int]]:
    """J4: current + new + repeat; the other sessions end. Returns the user and the ended sessions."""
    if not current:
        raise FieldRequired(field=["input", "currentPassword"])
    check_password(password, repeat, ["input", "password"], ["input", "passwordRepeat"])
    assert password is not None
    user = await live_user(session, user_id)
    if not await _verify(user.password_hash, current):
        raise WrongCurrentPassword(field=["input", "currentPassword"])
    user.password_hash = await _hash(password)
    user.password_changed_at = caller.now
    ended = await revoke_sessions(session, user.id, now=caller.now, keep=current_session_id)
    audit(
        session,
        caller,
        "user.change_password",
        actor_user_id=user.id,
        user_id=user.id,
        changes={"password": "changed"},
    )
    return user, ended


async def set_show_hints(session: AsyncSession, caller: Caller, user_id: int, show: bool) -> User:
    """J9."""
    user = await live_user(session, user_id)
    if user.show_hints != show:
        audit(
            session,
            caller,
            "user.show_hints",
            actor_user_id=user.id,
            user_id=user.id,
            changes={"show_hints": [user.show_hints, show]},
        )
    user.show_hints = show
    return user


@dataclass(frozen=True, slots=True)
class ReceiptChoice:
    """J10: how receipts of one linked account go on after the cabinet is deleted."""

    account_id: int
    electronic: bool
    email: str | None
    postal_address: str | None


async def delete_cabinet(
    session: AsyncSession, caller: Caller, user_id: int, password: str | None, choices: list[ReceiptChoice]
) -> list[int]:
    """J10: with the password, end every session, unlink accounts, erase personal data, keep an audit row.

    Returns the ended sessions' ids.
    """
    user = await live_user(session, user_id)
    if user.password_hash is not None and not await _verify(user.password_hash, password or ""):
        raise WrongCurrentPassword(field=["input", "password"])
    links = list((await session.execute(select(UserAccount).where(UserAccount.user_id == user.id))).scalars())
    chosen = {choice.account_id: choice for choice in choices}
    receipts = []
    for link in links:
        choice = chosen.get(link.account_id)
        if choice is None:
            raise DomainError(
                message="Выберите способ получения квитанций для каждого лицевого счета",
                field=["input", "receipts"],
            )
        if choice.electronic:
            email = normalize_email(choice.email, ["input", "receipts", "email"])
            receipts.append({"account_id": link.account_id, "electronic": True, "email": email})
        else:
            address = (choice.postal_address or "").strip()
            if not address:
                raise FieldRequired(field=["input", "receipts", "postalAddress"])
            receipts.append({"account_id": link.account_id, "electronic": False, "postal_address": address})
    ended = await revoke_sessions(session, user.id, now=caller.now)
    await session.execute(delete(UserAccount).where(UserAccount.user_id == user.id))
    await session.execute(delete(ExternalIdentity).where(ExternalIdentity.user_id == user.id))
    await session.execute(delete(DeviceCredential).where(DeviceCredential.user_id == user.id))
    audit(
        session,
        caller,
        "user.delete",
        actor_user_id=user.id,
        user_id=user.id,
        changes={
            "receipts": receipts,
            "erased": ["phone", "email", "last_name", "first_name", "middle_name"],
        },
    )
    user.deleted_at = caller.now
    user.phone = f"+0{user.id}"[:16]
    user.email = None
    user.email_confirmed_at = None
    user.last_name = "Удален"
    user.first_name = "Удален"
    user.middle_name = None
    user.password_hash = None
    return ended
