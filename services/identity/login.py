"""A3/A4 logins with a password or a one-time code, and A8 password recovery."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.identity import (
    CodeChannel,
    CodePurpose,
    User,
)
from services import codes
from services.errors import FieldRequired
from services.identity.common import (
    LOGIN_LIMIT_PER_IP,
    LOGIN_LIMIT_PER_LOGIN,
    Caller,
    _hash,
    _is_email,
    _limit_lookups,
    _require,
    _verify,
    audit,
    check_password,
    collect,
    login_key,
    normalize_email,
    normalize_phone,
    user_by_confirmed_email,
    user_by_phone,
)
from services.identity.errors import (
    EmailNotConfirmed,
    InvalidCredentials,
    InvalidPhone,
    UnknownEmail,
    UnknownPhone,
)
from services.passwords import needs_rehash
from services.sessions import revoke_sessions

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
