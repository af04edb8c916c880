"""Registration, logins, password recovery and the profile (A1–A4, A8, J1–J4, J9, J10).

Every function takes the request's :class:`Caller` (clock, client address, secrets, counters) and a
session; it raises :class:`DomainError`s and never commits, except that the resolvers commit after
a failed code check so wrong tries count. Every change of personal data writes an audit row.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.accounts import UserAccount
from models.audit import AuditLogEntry
from models.identity import (
    CodeChannel,
    CodePurpose,
    Consent,
    ConsentKind,
    DeviceCredential,
    ExternalIdentity,
    IdentityProvider,
    QrLoginChallenge,
    QrLoginStatus,
    User,
    UserRole,
    VkLoginFlow,
)
from services import codes
from services.errors import DomainError, FieldRequired
from services.limits import Counters
from services.passwords import hash_password, needs_rehash, verify_password
from services.sessions import revoke_sessions

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
HELP_LINE = "8 (800) 775-62-62"


# --- errors ---------------------------------------------------------------------------------------------


class InvalidInput(DomainError):
    """Several fields are wrong at once; ``errors`` lists each (the resolver reports every one)."""

    code = "INVALID_INPUT"

    def __init__(self, errors: list[DomainError]) -> None:
        super().__init__(field=errors[0].field, message=errors[0].text)
        self.errors = errors


class InvalidPhone(DomainError):
    code = "PHONE_INVALID"
    message = "Введите корректный номер телефона"


class InvalidEmail(DomainError):
    code = "EMAIL_INVALID"
    message = "Введите корректный адрес электронной почты"


class InvalidName(DomainError):
    code = "NAME_INVALID"
    message = "Допускаются только русские или латинские буквы, дефис «-» и тире «—», не более 50 символов"


class WeakPassword(DomainError):
    code = "PASSWORD_WEAK"
    message = (
        "Пароль должен содержать не менее 6 символов: латинские заглавные и строчные буквы, цифры "
        "и специальный символ (например, !, $, #, %)"
    )


class PasswordMismatch(DomainError):
    code = "PASSWORD_MISMATCH"
    message = "Пароли не совпадают"


class ConsentRequired(DomainError):
    code = "CONSENT_REQUIRED"
    message = "Необходимо дать согласие на обработку персональных данных"


class PhoneTaken(DomainError):
    code = "PHONE_TAKEN"
    message = "На указанный номер уже зарегистрирован личный кабинет. Внесите другой номер телефона."


class EmailTaken(DomainError):
    code = "EMAIL_TAKEN"
    message = "Указанная электронная почта уже зарегистрирована в личном кабинете. Укажите другой адрес."


class InvalidCredentials(DomainError):
    code = "INVALID_CREDENTIALS"
    message = "Неверный логин или пароль"


class EmailNotConfirmed(DomainError):
    code = "EMAIL_NOT_CONFIRMED"
    message = (
        "Адрес электронной почты не подтвержден. Войдите по номеру телефона и подтвердите адрес в профиле."
    )


class UnknownPhone(DomainError):
    code = "PHONE_NOT_REGISTERED"
    message = (
        "Личный кабинет с указанным номером телефона не найден. Проверьте номер или зарегистрируйтесь. "
        f"Если ошибка повторяется, обратитесь по телефону {HELP_LINE}."
    )


class UnknownEmail(DomainError):
    code = "EMAIL_NOT_REGISTERED"
    message = (
        "Личный кабинет с указанным подтвержденным адресом электронной почты не найден. "
        f"Войдите по номеру телефона или обратитесь по телефону {HELP_LINE}."
    )


class EmailAlreadyConfirmed(DomainError):
    code = "EMAIL_ALREADY_CONFIRMED"
    message = "Адрес электронной почты уже подтвержден"


class NoEmail(DomainError):
    code = "EMAIL_MISSING"
    message = "Укажите адрес электронной почты в профиле"


class WrongCurrentPassword(DomainError):
    code = "CURRENT_PASSWORD_INVALID"
    message = "Текущий пароль указан неверно"


class SameValue(DomainError):
    code = "NOTHING_TO_CHANGE"
    message = "Новое значение совпадает с текущим"


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


# --- A3 / A4 logins ---------------------------------------------------------------------------------------


async def login_with_password(
    session: AsyncSession, caller: Caller, login: str | None, password: str | None
) -> User:
    """A3: phone (any form) or confirmed e-mail, and the password; rehash when parameters changed."""
    text = (login or "").strip()
    collect(
        lambda: _require(text, FieldRequired(field=["input", "login"])),
        lambda: _require(password, FieldRequired(field=["input", "password"])),
    )
    assert password is not None
    for name, value, limit in (
        ("login", login_key(text), LOGIN_LIMIT_PER_LOGIN),
        ("ip", caller.client_ip, LOGIN_LIMIT_PER_IP),
    ):
        if value:
            hit = await caller.counters.hit(f"login:{name}:{value}", limit[1])
            if hit.count > limit[0]:
                raise codes.RetryLater(retry_after_seconds=hit.retry_after_seconds)
    user = await _user_for_login(session, text, for_password=True)
    # One argon2 verification whoever asks: an unknown login (or a cabinet without a password) is checked
    # against the dummy hash, so the answer takes as long as for a real cabinet (issue 15, finding 10).
    verified = await _verify(user.password_hash if user is not None else None, password)
    if user is None or not verified:
        raise InvalidCredentials()
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = await _hash(password)
    audit(
        session, caller, "user.login", actor_user_id=user.id, user_id=user.id, changes={"method": "password"}
    )
    return user


async def _user_for_login(session: AsyncSession, login: str, *, for_password: bool) -> User | None:
    """The user a login names. Unconfirmed e-mails are refused; unknown ones and phones raise or give None."""
    field = ["input", "login"]
    if _is_email(login):
        email = normalize_email(login, field)
        user = await user_by_confirmed_email(session, email)
        if user is None:
            unconfirmed = (
                await session.execute(
                    select(User.id).where(User.email == email, User.deleted_at.is_(None)).limit(1)
                )
            ).scalar_one_or_none()
            if unconfirmed is not None:
                raise EmailNotConfirmed(field=field)
            if not for_password:
                raise UnknownEmail(field=field)
        return user
    try:
        phone = normalize_phone(login, field)
    except InvalidPhone:
        if for_password:
            return None
        raise
    user = await user_by_phone(session, phone)
    if user is None and not for_password:
        raise UnknownPhone(field=field)
    return user


def _destination(user: User, login: str) -> tuple[CodeChannel, str]:
    if _is_email(login):
        assert user.email is not None
        return CodeChannel.EMAIL, user.email
    return CodeChannel.SMS, user.phone


async def request_code(
    session: AsyncSession, caller: Caller, login: str | None, purpose: CodePurpose
) -> codes.SentCode:
    """A4 / A8: a code to the phone or the confirmed e-mail of an existing cabinet."""
    text = (login or "").strip()
    if not text:
        raise FieldRequired(field=["input", "login"])
    await _limit_lookups(caller, login_key(text), ["input", "login"])
    user = await _user_for_login(session, text, for_password=False)
    assert user is not None
    channel, destination = _destination(user, text)
    return await codes.issue(
        session,
        caller.counters,
        secret=caller.secret,
        purpose=purpose,
        channel=channel,
        destination=destination,
        now=caller.now,
        client_ip=caller.client_ip,
        user_id=user.id,
        field=["input", "login"],
    )


async def _check_login_code(
    session: AsyncSession, caller: Caller, login: str | None, code: str, purpose: CodePurpose
) -> User:
    text = (login or "").strip()
    if not text:
        raise FieldRequired(field=["input", "login"])
    if not (code or "").strip():
        raise FieldRequired(field=["input", "code"])
    user = await _user_for_login(session, text, for_password=False)
    assert user is not None
    _, destination = _destination(user, text)
    await codes.check(
        session,
        caller.counters,
        secret=caller.secret,
        purpose=purpose,
        destination=destination,
        code=code,
        now=caller.now,
        client_ip=caller.client_ip,
        user_id=user.id,
        field=["input", "code"],
    )
    return user


async def login_with_code(session: AsyncSession, caller: Caller, login: str | None, code: str) -> User:
    """A4: the one-time code logs in."""
    user = await _check_login_code(session, caller, login, code, CodePurpose.LOGIN)
    audit(session, caller, "user.login", actor_user_id=user.id, user_id=user.id, changes={"method": "code"})
    return user


# --- A8 recovery ------------------------------------------------------------------------------------------


async def reset_password(
    session: AsyncSession,
    caller: Caller,
    login: str | None,
    code: str,
    password: str | None,
    repeat: str | None,
) -> tuple[User, list[int]]:
    """A8: with the code, set a new password; every session ends. Returns the user and ended sessions."""
    check_password(password, repeat, ["input", "password"], ["input", "passwordRepeat"])
    assert password is not None
    user = await _check_login_code(session, caller, login, code, CodePurpose.PASSWORD_RESET)
    user.password_hash = await _hash(password)
    user.password_changed_at = caller.now
    ended = await revoke_sessions(session, user.id, now=caller.now)
    audit(
        session,
        caller,
        "user.password_reset",
        actor_user_id=user.id,
        user_id=user.id,
        changes={"password": "changed"},
    )
    return user, ended


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


async def request_phone_change(
    session: AsyncSession, caller: Caller, user_id: int, phone: str | None
) -> codes.SentCode:
    """J2: a code by SMS to the new number (a taken number is refused with A1's message)."""
    new = normalize_phone(phone, ["input", "phone"])
    user = await live_user(session, user_id)
    if new == user.phone:
        raise SameValue(field=["input", "phone"])
    await _ensure_free(session, new, None, except_user=user.id)
    return await codes.issue(
        session,
        caller.counters,
        secret=caller.secret,
        purpose=CodePurpose.PHONE_CHANGE,
        channel=CodeChannel.SMS,
        destination=new,
        now=caller.now,
        client_ip=caller.client_ip,
        user_id=user.id,
        payload={"phone": new},
        field=["input", "phone"],
    )


async def confirm_phone_change(
    session: AsyncSession, caller: Caller, user_id: int, phone: str | None, code: str
) -> User:
    """J2: the code sent to the new number switches the phone."""
    new = normalize_phone(phone, ["input", "phone"])
    user = await live_user(session, user_id)
    row = await codes.check(
        session,
        caller.counters,
        secret=caller.secret,
        purpose=CodePurpose.PHONE_CHANGE,
        destination=new,
        code=code,
        now=caller.now,
        client_ip=caller.client_ip,
        user_id=user.id,
        field=["input", "code"],
    )
    await _ensure_free(session, row.payload["phone"] if row.payload else new, None, except_user=user.id)
    old, user.phone = user.phone, new
    audit(
        session,
        caller,
        "user.change_phone",
        actor_user_id=user.id,
        user_id=user.id,
        changes={"phone": [old, new]},
    )
    return user


async def request_email_change(
    session: AsyncSession, caller: Caller, user_id: int, email: str | None
) -> codes.SentCode:
    """J3: a code to the new address (a confirmed taken one is refused with A1's message)."""
    new = normalize_email(email, ["input", "email"])
    user = await live_user(session, user_id)
    if new == user.email and user.email_confirmed_at is not None:
        raise SameValue(field=["input", "email"])
    await _ensure_free(session, None, new, except_user=user.id)
    return await codes.issue(
        session,
        caller.counters,
        secret=caller.secret,
        purpose=CodePurpose.EMAIL_CHANGE,
        channel=CodeChannel.EMAIL,
        destination=new,
        now=caller.now,
        client_ip=caller.client_ip,
        user_id=user.id,
        payload={"email": new},
        field=["input", "email"],
    )


async def confirm_email_change(
    session: AsyncSession, caller: Caller, user_id: int, email: str | None, code: str
) -> User:
    """J3: the code sent to the new address sets it, confirmed."""
    new = normalize_email(email, ["input", "email"])
    user = await live_user(session, user_id)
    await codes.check(
        session,
        caller.counters,
        secret=caller.secret,
        purpose=CodePurpose.EMAIL_CHANGE,
        destination=new,
        code=code,
        now=caller.now,
        client_ip=caller.client_ip,
        user_id=user.id,
        field=["input", "code"],
    )
    await _ensure_free(session, None, new, except_user=user.id)
    old, user.email, user.email_confirmed_at = user.email, new, caller.now
    audit(
        session,
        caller,
        "user.change_email",
        actor_user_id=user.id,
        user_id=user.id,
        changes={"email": [old, new]},
    )
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


# --- staff ------------------------------------------------------------------------------------------------


async def create_staff(
    session: AsyncSession,
    *,
    role: UserRole,
    phone: str,
    email: str | None,
    last_name: str,
    first_name: str,
    middle_name: str | None,
    password: str,
    now: dt.datetime,
) -> User:
    """Create an OPERATOR, ANALYST or ADMIN (``kabinet staff create``); same rules as A1, e-mail confirmed."""
    if role is UserRole.CUSTOMER:
        raise DomainError(message="Роль сотрудника: OPERATOR, ANALYST или ADMIN", field=["role"])
    e164, address, last, first, middle, secret = collect(
        lambda: normalize_phone(phone, ["phone"]),
        lambda: normalize_email(email, ["email"]) if email else None,
        lambda: check_name(last_name, ["lastName"]),
        lambda: check_name(first_name, ["firstName"]),
        lambda: check_name(middle_name, ["middleName"], required=False),
        lambda: check_password(password, password, ["password"], ["password"]),
    )
    await _ensure_free(session, e164, address)
    user = User(
        phone=e164,
        email=address,
        email_confirmed_at=now if address else None,
        last_name=last,
        first_name=first,
        middle_name=middle,
        password_hash=await _hash(secret),
        password_changed_at=now,
        role=role,
        show_hints=True,
    )
    session.add(user)
    await session.flush()
    session.add(
        AuditLogEntry(
            actor_user_id=None,
            action="user.create_staff",
            entity_type="user",
            entity_id=user.id,
            changes={"role": role.value, "phone": [None, e164], "email": [None, address]},
            created_at=now,
        )
    )
    return user


# --- A6 QR login ------------------------------------------------------------------------------------------

QR_TTL = dt.timedelta(minutes=2)
QR_PREFIX = "kabinet-qr:"


class QrChallengeInvalid(DomainError):
    code = "QR_CHALLENGE_INVALID"
    message = "QR-код недействителен или устарел. Обновите QR-код и повторите попытку."


def _qr_token(secret: str, web_secret: str) -> str:
    """What the QR shows: derived from the web client's secret, which it never reveals."""
    return hmac.new(secret.encode(), f"qr:{web_secret}".encode(), hashlib.sha256).hexdigest()


def _sha(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


@dataclass(frozen=True, slots=True)
class QrStarted:
    """The web client keeps ``web_secret`` (to subscribe) and shows ``qr_payload``."""

    web_secret: str
    qr_payload: str
    expires_at: dt.datetime


async def start_qr_login(session: AsyncSession, caller: Caller) -> QrStarted:
    """A6: a challenge for the web client (anonymous), valid :data:`QR_TTL`."""
    hit = await caller.counters.hit(f"qr:start:ip:{caller.client_ip}", 600)
    if hit.count > 60:
        raise codes.RetryLater(retry_after_seconds=hit.retry_after_seconds)
    web_secret = secrets.token_urlsafe(32)
    token = _qr_token(caller.secret, web_secret)
    row = QrLoginChallenge(
        token_hash=_sha(token),
        status=QrLoginStatus.PENDING,
        web_client_ip=caller.client_ip,
        web_user_agent=caller.user_agent,
        created_at=caller.now,
        expires_at=caller.now + QR_TTL,
    )
    session.add(row)
    await session.flush()
    return QrStarted(web_secret, QR_PREFIX + token, row.expires_at)


async def qr_challenge(
    session: AsyncSession, caller: Caller, qr_payload: str, *, lock: bool = False
) -> QrLoginChallenge:
    """The pending, unexpired challenge a scanned QR payload names."""
    token = qr_payload.strip().removeprefix(QR_PREFIX)
    query = select(QrLoginChallenge).where(QrLoginChallenge.token_hash == _sha(token))
    if lock:
        query = query.with_for_update()
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None or row.status is not QrLoginStatus.PENDING or row.expires_at <= caller.now:
        raise QrChallengeInvalid(field=["input", "qrPayload"])
    return row


async def decide_qr_login(
    session: AsyncSession, caller: Caller, user_id: int, qr_payload: str, approve: bool
) -> QrLoginChallenge:
    """A6: the logged-in mobile app approves or rejects what it was shown."""
    row = await qr_challenge(session, caller, qr_payload, lock=True)
    user = await live_user(session, user_id)
    row.status = QrLoginStatus.APPROVED if approve else QrLoginStatus.REJECTED
    row.approved_by_user_id = user.id
    row.decided_at = caller.now
    audit(
        session,
        caller,
        "user.qr_login_approve" if approve else "user.qr_login_reject",
        actor_user_id=user.id,
        user_id=user.id,
        changes={"web_client_ip": row.web_client_ip and str(row.web_client_ip), "challenge": row.id},
    )
    return row


async def qr_challenge_for_web(
    session: AsyncSession, caller: Caller, web_secret: str
) -> QrLoginChallenge | None:
    """The challenge of a web client's secret (any state)."""
    token = _qr_token(caller.secret, web_secret)
    return (
        await session.execute(select(QrLoginChallenge).where(QrLoginChallenge.token_hash == _sha(token)))
    ).scalar_one_or_none()


async def consume_qr_login(session: AsyncSession, caller: Caller, challenge_id: int) -> User | None:
    """Turn an approved challenge into a login exactly once; None when it is not (or no longer) approved."""
    row = (
        await session.execute(
            select(QrLoginChallenge).where(QrLoginChallenge.id == challenge_id).with_for_update()
        )
    ).scalar_one_or_none()
    if row is None or row.status is not QrLoginStatus.APPROVED or row.approved_by_user_id is None:
        return None
    if row.expires_at <= caller.now:
        row.status = QrLoginStatus.EXPIRED
        return None
    user = await session.get(User, row.approved_by_user_id)
    if user is None or user.deleted_at is not None:
        return None
    row.status = QrLoginStatus.CONSUMED
    audit(session, caller, "user.login", actor_user_id=user.id, user_id=user.id, changes={"method": "qr"})
    return user


# --- A7 device keys (biometric login) ---------------------------------------------------------------------

DEVICE_CHALLENGE_TTL = dt.timedelta(minutes=2)


class DeviceKeyInvalid(DomainError):
    code = "DEVICE_KEY_INVALID"
    message = (
        "Ключ устройства не распознан. Войдите по паролю или коду и подключите вход по биометрии заново."
    )


class DeviceSignatureInvalid(DomainError):
    code = "DEVICE_SIGNATURE_INVALID"
    message = "Не удалось подтвердить вход на устройстве. Повторите попытку."


def _b64d(value: str) -> bytes:
    import base64

    text = value.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64e(value: bytes) -> str:
    """Unpadded base64url."""
    import base64

    return base64.urlsafe_b64encode(value).decode().rstrip("=")


def _load_public_key(value: str) -> bytes:
    """DER SubjectPublicKeyInfo of an ECDSA P-256 key given as PEM or base64(url) DER."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    text = value.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(_b64d(text))
    except (ValueError, TypeError) as error:
        raise DomainError(
            message="Некорректный открытый ключ устройства", field=["input", "publicKey"]
        ) from error
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise DomainError(message="Нужен ключ ECDSA P-256", field=["input", "publicKey"])
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


async def register_device_key(
    session: AsyncSession, caller: Caller, user_id: int, public_key: str, name: str | None
) -> DeviceCredential:
    """A7: after a normal login the app registers the public half of a key its secure enclave holds."""
    der = _load_public_key(public_key)
    user = await live_user(session, user_id)
    row = DeviceCredential(
        user_id=user.id,
        credential_id=secrets.token_bytes(16),
        public_key=der,
        sign_count=0,
        name=(name or "").strip()[:128] or None,
        created_at=caller.now,
    )
    session.add(row)
    await session.flush()
    audit(
        session,
        caller,
        "user.device_key_add",
        actor_user_id=user.id,
        user_id=user.id,
        changes={"device_key": row.id},
    )
    return row


def device_challenge(caller: Caller, credential_id: str) -> tuple[str, dt.datetime]:
    """A7 step 1: a signed, single-use challenge for the device to sign (stateless until used)."""
    expires = caller.now + DEVICE_CHALLENGE_TTL
    body = f"{credential_id.strip()}.{secrets.token_urlsafe(16)}.{int(expires.timestamp())}"
    mac = hmac.new(caller.secret.encode(), f"device:{body}".encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}", expires


async def login_with_device_key(
    session: AsyncSession, caller: Caller, credential_id: str, challenge: str, signature: str
) -> User:
    """A7 step 2: verify the device's ECDSA-SHA256 signature of the challenge and log in."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    parts = challenge.strip().split(".")
    if len(parts) != 4 or parts[0] != credential_id.strip():
        raise DeviceSignatureInvalid(field=["input", "challenge"])
    body = ".".join(parts[:3])
    mac = hmac.new(caller.secret.encode(), f"device:{body}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac, parts[3]) or int(parts[2]) <= caller.now.timestamp():
        raise DeviceSignatureInvalid(field=["input", "challenge"])
    if (
        await caller.counters.hit(
            f"device-challenge:{parts[1]}", int(DEVICE_CHALLENGE_TTL.total_seconds()) + 60
        )
    ).count > 1:
        raise DeviceSignatureInvalid(field=["input", "challenge"])
    try:
        raw_id = _b64d(credential_id)
    except ValueError as error:
        raise DeviceKeyInvalid(field=["input", "credentialId"]) from error
    row = (
        await session.execute(
            select(DeviceCredential).where(DeviceCredential.credential_id == raw_id).with_for_update()
        )
    ).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        raise DeviceKeyInvalid(field=["input", "credentialId"])
    key = serialization.load_der_public_key(row.public_key)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    try:
        key.verify(_b64d(signature), challenge.strip().encode(), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError) as error:
        raise DeviceSignatureInvalid(field=["input", "signature"]) from error
    user = await session.get(User, row.user_id)
    if user is None or user.deleted_at is not None:
        raise DeviceKeyInvalid(field=["input", "credentialId"])
    row.sign_count += 1
    row.last_used_at = caller.now
    audit(
        session,
        caller,
        "user.login",
        actor_user_id=user.id,
        user_id=user.id,
        changes={"method": "device_key"},
    )
    return user


async def device_keys(session: AsyncSession, user_id: int) -> list[DeviceCredential]:
    """A7: the user's active device keys."""
    rows = await session.execute(
        select(DeviceCredential)
        .where(DeviceCredential.user_id == user_id, DeviceCredential.revoked_at.is_(None))
        .order_by(DeviceCredential.id)
    )
    return list(rows.scalars())


async def revoke_device_key(session: AsyncSession, caller: Caller, user_id: int, key_id: int) -> bool:
    """A7: stop a device key from logging in."""
    row = await session.get(DeviceCredential, key_id)
    if row is None or row.user_id != user_id or row.revoked_at is not None:
        return False
    row.revoked_at = caller.now
    audit(
        session,
        caller,
        "user.device_key_revoke",
        actor_user_id=user_id,
        user_id=user_id,
        changes={"device_key": key_id},
    )
    return True


# --- A5 VK login and J8 connected services ----------------------------------------------------------------

VK_STATE_TTL = dt.timedelta(minutes=10)
VK_START_LIMIT_PER_IP = (60, 600)
"""(flows, seconds): VK logins started from one client address per 10 minutes (each stores a row)."""


class VkUnavailable(DomainError):
    code = "VK_UNAVAILABLE"
    message = "Вход через VK сейчас недоступен. Войдите по номеру телефона или электронной почте."


class VkStateInvalid(DomainError):
    code = "VK_STATE_INVALID"
    message = "Сеанс входа через VK устарел. Повторите попытку."


class VkLinkRequiresProof(DomainError):
    """A5: the VK phone is that of a cabinet VK is not connected to; only its owner may connect VK."""

    code = "LOGIN_SERVICE_LINK_REQUIRES_PROOF"
    message = (
        "Номер телефона из профиля VK уже зарегистрирован в личном кабинете. Войдите по номеру телефона "
        "с паролем или кодом из SMS и подключите VK в профиле (раздел «Сервисы авторизации»)."
    )


class VkPhoneMissing(DomainError):
    code = "VK_PHONE_MISSING"
    message = (
        "В профиле ВКонтакте отсутствуют данные о номере телефона. Укажите номер телефона в VK "
        "или зарегистрируйтесь по номеру телефона."
    )


class VkAlreadyLinked(DomainError):
    code = "VK_ALREADY_LINKED"
    message = "Этот профиль VK уже подключен к другому личному кабинету."


@dataclass(frozen=True, slots=True)
class VkSettings:
    """Where VK ID lives and who we are there."""

    client_id: str | None
    client_secret: str | None
    authorize_url: str
    token_url: str
    userinfo_url: str


def _vk_client(vk: VkSettings, redirect_uri: str) -> Any:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    return AsyncOAuth2Client(
        client_id=vk.client_id,
        client_secret=vk.client_secret,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=15.0,
    )


async def start_vk_login(
    session: AsyncSession, caller: Caller, vk: VkSettings, redirect_uri: str, *, viewer_user_id: int | None
) -> tuple[str, str]:
    """A5 step 1 / J8: the URL to open (VK's consent page) and the ``state`` it will come back with.

    The flow is kept server-side (:class:`VkLoginFlow`): the state (stored hashed), who started it
    (``viewer_user_id``: a logged-in caller starts a J8 connect, an anonymous one an A5 login), the PKCE
    verifier and the nonce (neither is ever sent to the client), the redirect URI and the expiry."""
    if not vk.client_id:
        raise VkUnavailable()
    redirect = (redirect_uri or "").strip()
    if not redirect:
        raise FieldRequired(field=["input", "redirectUri"])
    if caller.client_ip:
        hit = await caller.counters.hit(f"vk:start:ip:{caller.client_ip}", VK_START_LIMIT_PER_IP[1])
        if hit.count > VK_START_LIMIT_PER_IP[0]:
            raise codes.RetryLater(retry_after_seconds=hit.retry_after_seconds)
    await session.execute(delete(VkLoginFlow).where(VkLoginFlow.expires_at <= caller.now))
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)  # 86 characters (RFC 7636: 43–128)
    nonce = secrets.token_urlsafe(24)
    session.add(
        VkLoginFlow(
            state_hash=_sha(state),
            user_id=viewer_user_id,
            code_verifier=verifier,
            nonce=nonce,
            redirect_uri=redirect,
            expires_at=caller.now + VK_STATE_TTL,
            created_at=caller.now,
        )
    )
    await session.flush()
    client = _vk_client(vk, redirect)
    try:
        url, _ = client.create_authorization_url(
            vk.authorize_url, state=state, code_verifier=verifier, nonce=nonce, scope="phone email"
        )
    finally:
        await client.aclose()
    return url, state


@dataclass(frozen=True, slots=True)
class _VkFlow:
    code_verifier: str
    nonce: str
    redirect_uri: str


async def _take_vk_flow(
    session: AsyncSession, caller: Caller, state: str, redirect_uri: str, viewer_user_id: int | None
) -> _VkFlow:
    """Consume the flow of ``state`` (deleted at once, whatever happens next: a state works once) and check
    it was started by this kind of caller: the same logged-in user for J8, an anonymous caller for A5."""
    row = (
        await session.execute(
            delete(VkLoginFlow)
            .where(VkLoginFlow.state_hash == _sha((state or "").strip()))
            .returning(
                VkLoginFlow.user_id,
                VkLoginFlow.code_verifier,
                VkLoginFlow.nonce,
                VkLoginFlow.redirect_uri,
                VkLoginFlow.expires_at,
            )
        )
    ).one_or_none()
    if (
        row is None
        or row.expires_at <= caller.now
        or row.user_id != viewer_user_id
        or row.redirect_uri != (redirect_uri or "").strip()
    ):
        raise VkStateInvalid(field=["input", "state"])
    return _VkFlow(row.code_verifier, row.nonce, row.redirect_uri)


def _id_token_nonce(id_token: str) -> str:
    """The ``nonce`` claim of an ID token received straight from VK's token endpoint over TLS (OpenID
    Connect Core 3.1.3.7: TLS authenticates the issuer there, so the signature is not checked)."""
    try:
        payload = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as error:
        raise VkUnavailable() from error
    return str(claims.get("nonce") or "") if isinstance(claims, dict) else ""


async def _vk_profile(caller: Caller, vk: VkSettings, code: str, state: str, flow: _VkFlow) -> dict[str, Any]:
    client = _vk_client(vk, flow.redirect_uri)
    try:
        token = await client.fetch_token(
            vk.token_url, code=code, code_verifier=flow.code_verifier, state=state
        )
        id_token = token.get("id_token") if isinstance(token, dict) else None
        if id_token and not hmac.compare_digest(_id_token_nonce(str(id_token)), flow.nonce):
            raise VkStateInvalid(field=["input", "state"])
        response = await client.get(vk.userinfo_url)
        response.raise_for_status()
        data = response.json()
    except DomainError:
        raise
    except Exception as error:  # network, OAuth error, bad JSON
        raise VkUnavailable() from error
    finally:
        await client.aclose()
    user = data.get("user", data) if isinstance(data, dict) else {}
    if not user.get("user_id") and not user.get("id"):
        raise VkUnavailable()
    return user  # type: ignore[no-any-return]


async def complete_vk_login(
    session: AsyncSession,
    caller: Caller,
    vk: VkSettings,
    *,
    code: str,
    state: str,
    redirect_uri: str,
    consent: bool,
    viewer_user_id: int | None,
) -> User:
    """A5 step 2 / J8: log in with VK, register with VK (phone required), or connect VK to the caller.

    The state must be one this caller started (:func:`_take_vk_flow`). A VK profile that is not connected
    yet never opens an existing cabinet: when its phone is a cabinet's, the owner has to log in with the
    password or an SMS code and connect VK in the profile (:class:`VkLinkRequiresProof`)."""
    if not vk.client_id:
        raise VkUnavailable()
    flow = await _take_vk_flow(session, caller, state, redirect_uri, viewer_user_id)
    profile = await _vk_profile(caller, vk, code, state, flow)
    subject = str(profile.get("user_id") or profile.get("id"))
    found = (
        await session.execute(
            select(ExternalIdentity).where(
                ExternalIdentity.provider == IdentityProvider.VK, ExternalIdentity.subject == subject
            )
        )
    ).scalar_one_or_none()
    if viewer_user_id is not None:  # J8: connect VK to the logged-in cabinet
        user = await live_user(session, viewer_user_id)
        if found is not None and found.user_id != user.id:
            raise VkAlreadyLinked()
        if found is None:
            session.add(
                ExternalIdentity(
                    provider=IdentityProvider.VK, subject=subject, user_id=user.id, profile=profile
                )
            )
            audit(
                session,
                caller,
                "user.vk_link",
                actor_user_id=user.id,
                user_id=user.id,
                changes={"vk": subject},
            )
        return user
    if found is not None:
        user = await session.get(User, found.user_id)
        if user is not None and user.deleted_at is None:
            found.profile = profile
            audit(
                session,
                caller,
                "user.login",
                actor_user_id=user.id,
                user_id=user.id,
                changes={"method": "vk"},
            )
            return user
    raw_phone = str(profile.get("phone") or "").strip()
    if not raw_phone:
        raise VkPhoneMissing()
    phone = normalize_phone(
        raw_phone if raw_phone.startswith("+") or len(raw_phone) <= 10 else "+" + raw_phone, ["vk", "phone"]
    )
    if await user_by_phone(session, phone) is not None:
        raise VkLinkRequiresProof()
    if not consent:
        raise ConsentRequired(field=["input", "consent"])
    email = None
    with contextlib.suppress(DomainError):
        email = normalize_email(profile.get("email"), ["vk", "email"])
    user = User(
        phone=phone,
        email=email,
        last_name=_vk_name(profile.get("last_name")),
        first_name=_vk_name(profile.get("first_name")),
        password_hash=None,
        role=UserRole.CUSTOMER,
        show_hints=True,
    )
    session.add(user)
    await session.flush()
    session.add(
        Consent(
            user_id=user.id,
            kind=ConsentKind.PERSONAL_DATA,
            policy_version=caller.policy_version,
            accepted_at=caller.now,
            client_ip=caller.client_ip,
            user_agent=caller.user_agent,
        )
    )
    audit(
        session,
        caller,
        "user.register",
        actor_user_id=user.id,
        user_id=user.id,
        changes={"phone": [None, phone], "email": [None, email], "method": "vk"},
    )
    session.add(
        ExternalIdentity(provider=IdentityProvider.VK, subject=subject, user_id=user.id, profile=profile)
    )
    audit(
        session,
        caller,
        "user.login",
        actor_user_id=user.id,
        user_id=user.id,
        changes={"method": "vk", "vk": subject},
    )
    return user


def _vk_name(value: Any) -> str:
    """A VK name if it passes A1's rules, else a placeholder the user edits in the profile (J1)."""
    try:
        return check_name(str(value or ""), ["vk"]) or "Пользователь"
    except DomainError:
        return "Пользователь"


async def login_services(session: AsyncSession, user_id: int) -> list[ExternalIdentity]:
    """J8: the user's connected login services."""
    rows = await session.execute(
        select(ExternalIdentity).where(ExternalIdentity.user_id == user_id).order_by(ExternalIdentity.id)
    )
    return list(rows.scalars())


async def unlink_login_service(session: AsyncSession, caller: Caller, user_id: int, identity_id: int) -> bool:
    """J8: disconnect a login service."""
    row = await session.get(ExternalIdentity, identity_id)
    if row is None or row.user_id != user_id:
        return False
    await session.delete(row)
    audit(
        session, caller, "user.vk_unlink", actor_user_id=user_id, user_id=user_id, changes={"vk": row.subject}
    )
    return True
