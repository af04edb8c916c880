"""What every identity feature shares: the caller, audit rows, validation of names, phones, e-mails and
passwords, user lookups and their rate limits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.audit import AuditLogEntry
from models.identity import (
    User,
)
from services import codes
from services.errors import DomainError, FieldRequired
from services.identity.errors import (
    InvalidEmail,
    InvalidInput,
    InvalidName,
    InvalidPhone,
    PasswordMismatch,
    WeakPassword,
)
from services.limits import Counters
from services.passwords import hash_password, verify_password
from services.unit_of_work import touch

NAME_MAX = 50
NAME_RE = re.compile(r"^[A-Za-zА-Яа-яЁё\-—]+$")
SPECIALS = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
LOGIN_LIMIT_PER_LOGIN = (10, 900)
"""(tries, seconds): password logins for one phone or e-mail per 15 minutes."""
LOGIN_LIMIT_PER_IP = (50, 900)
"""(tries, seconds): password logins from one client address per 15 minutes."""
LOOKUP_LIMIT_PER_LOGIN = (20, 3600)
"""(tries, seconds): code requests and registrations naming one phone or e-mail per hour, counted before
the answer can tell whether a cabinet exists (A1's «уже зарегистрирован», A4's unknown phone)."""
LOOKUP_LIMIT_PER_IP = (60, 3600)
"""(tries, seconds): the same from one client address per hour (bounds enumerating phones)."""

# --- the caller -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Caller:
    """What a service needs to know about the request."""

    now: dt.datetime
    client_ip: str | None
    user_agent: str | None
    secret: str
    counters: Counters
    policy_version: str = "1"


def audit(
    session: AsyncSession,
    caller: Caller,
    action: str,
    *,
    actor_user_id: int | None,
    user_id: int | None,
    changes: dict[str, Any] | None = None,
) -> None:
    """Write an audit row (who, what, when, from where); never put secrets in ``changes``."""
    touch(session, private=AuditLogEntry)  # staff read the audit log; their answers are never cached
    session.add(
        AuditLogEntry(
            actor_user_id=actor_user_id,
            action=action,
            entity_type="user",
            entity_id=user_id,
            changes=changes,
            client_ip=caller.client_ip,
            user_agent=caller.user_agent,
            created_at=caller.now,
        )
    )


# --- validation -----------------------------------------------------------------------------------------


def normalize_phone(value: str | None, field: list[str]) -> str:
    """E.164 of a phone in any common form (``+7 (111) 111-11-11``, ``8 111 111 11 11``, ``9111111111``)."""
    text = (value or "").strip()
    if not text:
        raise FieldRequired(field=field)
    digits = re.sub(r"\D", "", text)
    if not text.startswith("+") and len(digits) == 10:
        text = "+7" + digits
    try:
        number = phonenumbers.parse(text, "RU")
    except phonenumbers.NumberParseException as error:
        raise InvalidPhone(field=field) from error
    if not phonenumbers.is_possible_number(number):
        raise InvalidPhone(field=field)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(value: str | None, field: list[str]) -> str:
    """A syntactically valid address, lower-cased (no DNS lookups)."""
    text = (value or "").strip()
    if not text:
        raise FieldRequired(field=field)
    try:
        return validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        raise InvalidEmail(field=field) from error


def check_name(value: str | None, field: list[str], *, required: bool = True) -> str | None:
    """A1 name rules: at most 50 Russian or Latin letters, hyphens and em dashes."""
    text = (value or "").strip()
    if not text:
        if required:
            raise FieldRequired(field=field)
        return None
    if len(text) > NAME_MAX or not NAME_RE.match(text):
        raise InvalidName(field=field)
    return text


def check_password(
    password: str | None, repeat: str | None, field: list[str], repeat_field: list[str]
) -> str:
    """A1 password rules: 6+ characters, Latin upper and lower case, a digit and a special character."""
    if not password:
        raise FieldRequired(field=field)
    ok = (
        len(password) >= 6
        and all(33 <= ord(ch) <= 126 for ch in password)
        and any("a" <= ch <= "z" for ch in password)
        and any("A" <= ch <= "Z" for ch in password)
        and any(ch.isdigit() for ch in password)
        and any(ch in SPECIALS for ch in password)
    )
    if not ok:
        raise WeakPassword(field=field)
    if not repeat:
        raise FieldRequired(field=repeat_field)
    if password != repeat:
        raise PasswordMismatch(field=repeat_field)
    return password


def collect(*checks: Any) -> list[Any]:
    """Run validation thunks, returning values; raise :class:`InvalidInput` with every failure."""
    values: list[Any] = []
    errors: list[DomainError] = []
    for thunk in checks:
        try:
            values.append(thunk())
        except DomainError as error:
            errors.append(error)
            values.append(None)
    if errors:
        raise InvalidInput(errors)
    return values


def _require(value: Any, error: DomainError) -> Any:
    if not value:
        raise error
    return value


async def _hash(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def _verify(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(verify_password, password_hash, password)


# --- lookups ----------------------------------------------------------------------------------------------


async def user_by_phone(session: AsyncSession, phone: str) -> User | None:
    """The live user with this E.164 phone."""
    return (
        await session.execute(select(User).where(User.phone == phone, User.deleted_at.is_(None)))
    ).scalar_one_or_none()


async def user_by_confirmed_email(session: AsyncSession, email: str) -> User | None:
    """The live user whose confirmed e-mail this is."""
    return (
        await session.execute(
            select(User).where(
                User.email == email, User.email_confirmed_at.is_not(None), User.deleted_at.is_(None)
            )
        )
    ).scalar_one_or_none()


async def live_user(session: AsyncSession, user_id: int) -> User:
    """The caller's user row (locked); a deleted cabinet is not found."""
    user = (
        await session.execute(select(User).where(User.id == user_id).with_for_update())
    ).scalar_one_or_none()
    if user is None or user.deleted_at is not None:
        raise DomainError(message="Личный кабинет не найден")
    touch(session, users=[user_id])  # locked to be changed: the user's answers show it
    return user


def _is_email(login: str) -> bool:
    return "@" in login


async def _limit_lookups(caller: Caller, key: str, field: list[str]) -> None:
    """Count a request whose answer tells whether a cabinet exists, before looking (issue 15, finding 10)."""
    for name, value, limit in (
        ("login", key, LOOKUP_LIMIT_PER_LOGIN),
        ("ip", caller.client_ip, LOOKUP_LIMIT_PER_IP),
    ):
        if value:
            hit = await caller.counters.hit(f"lookup:{name}:{value}", limit[1])
            if hit.count > limit[0]:
                raise codes.RetryLater(field=field, retry_after_seconds=hit.retry_after_seconds)


def login_key(login: str) -> str:
    """The identity a login names, for rate limits: ``phone:<E.164>`` or ``email:<lower-cased address>``.

    Every spelling of one phone (``+7 (984) 417-37-94``, ``89844173794``, …) gets the same key, so one
    allowance (issue 15, finding 9); text that is neither is keyed on itself without spaces, lower-cased."""
    text = login.strip()
    try:
        if _is_email(text):
            return "email:" + normalize_email(text, ["input", "login"])
        return "phone:" + normalize_phone(text, ["input", "login"])
    except DomainError:
        return "text:" + "".join(text.split()).lower()
