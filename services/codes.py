"""One-time verification codes (A1, A2, A4, A8, J2, J3): one service for every flow.

- 6 digits from ``secrets`` (a CSPRNG), stored only as an HMAC keyed with the server secret;
- bound to a purpose and a destination (normalized phone or e-mail), and to the pending registration
  or change it confirms (``payload``), so a code confirms exactly what was asked for;
- valid :data:`CODE_TTL`, single use, :data:`MAX_WRONG_ATTEMPTS` wrong tries and it is void;
- a new code replaces the previous one; a new one can be asked for after :data:`RESEND_COOLDOWN`;
- rate limits per destination and per client address (:mod:`services.limits`: Redis when configured).
  Every call counts, so ten aliases in one GraphQL request are ten attempts.
- the message goes to the outbox in the caller's transaction.

Callers commit after a failed check too: wrong tries must count.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.identity import CodeChannel, CodePurpose, VerificationCode
from models.outbox import OutboxChannel
from services import outbox
from services.errors import DomainError
from services.limits import Counters
from services.unit_of_work import touch

CODE_TTL = dt.timedelta(minutes=5)
MAX_WRONG_ATTEMPTS = 5
RESEND_COOLDOWN = dt.timedelta(seconds=60)
ISSUE_LIMIT_PER_DESTINATION = (10, 3600)
"""(codes, seconds): codes sent to one phone or address per hour."""
ISSUE_LIMIT_PER_IP = (30, 3600)
"""(codes, seconds): codes requested from one client address per hour."""
CHECK_LIMIT_PER_DESTINATION = (20, 900)
"""(checks, seconds): code checks for one destination per 15 minutes (across reissued codes)."""
CHECK_LIMIT_PER_IP = (60, 900)
"""(checks, seconds): code checks from one client address per 15 minutes."""

MESSAGES: dict[CodePurpose, tuple[str, str]] = {
    CodePurpose.REGISTRATION: (
        "Регистрация в личном кабинете",
        "Код для регистрации в личном кабинете: {code}",
    ),
    CodePurpose.EMAIL_CONFIRMATION: (
        "Подтверждение адреса электронной почты",
        "Код подтверждения адреса электронной почты: {code}",
    ),
    CodePurpose.LOGIN: ("Вход в личный кабинет", "Код для входа в личный кабинет: {code}"),
    CodePurpose.PASSWORD_RESET: ("Восстановление пароля", "Код для восстановления пароля: {code}"),
    CodePurpose.PHONE_CHANGE: ("Смена номера телефона", "Код для смены номера телефона: {code}"),
    CodePurpose.EMAIL_CHANGE: (
        "Смена адреса электронной почты",
        "Код подтверждения нового адреса электронной почты: {code}",
    ),
}
SUFFIX = ". Код действует 5 минут. Никому не сообщайте его."


class CodeExpired(DomainError):
    """The code's 5 minutes are over (A1)."""

    code = "CODE_EXPIRED"
    message = "Срок действия кода истек. Повторите попытку!"


class WrongCode(DomainError):
    """The code does not match; ``attempts_left`` more tries before the code is void."""

    code = "CODE_INVALID"
    message = "Неверный код подтверждения. Проверьте код и повторите попытку."


class CodeAttemptsExhausted(DomainError):
    """Too many wrong tries: the code is void, a new one must be requested."""

    code = "CODE_ATTEMPTS_EXCEEDED"
    message = "Превышено количество попыток ввода кода. Запросите новый код."


class RetryLater(DomainError):
    """A resend cooldown or a rate limit: ``retry_after_seconds`` says when to try again."""

    code = "RATE_LIMITED"
    message = "Слишком много попыток. Повторите попытку позже."


class ResendTooSoon(RetryLater):
    """A new code was asked for before :data:`RESEND_COOLDOWN` passed."""

    code = "CODE_RESEND_TOO_SOON"
    message = "Новый код можно запросить через минуту."


def code_hash(secret: str, purpose: CodePurpose, destination: str, code: str) -> str:
    """HMAC-SHA256 of a code bound to its purpose and destination."""
    message = f"{purpose.value}:{destination}:{code}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def new_code() -> str:
    """Six random digits."""
    return f"{secrets.randbelow(1_000_000):06d}"


@dataclass(frozen=True, slots=True)
class SentCode:
    """Where a code went and its timing (the code itself only travels in the outbox message)."""

    channel: CodeChannel
    destination: str
    expires_at: dt.datetime
    resend_after: dt.datetime


async def _limit(counters: Counters, key: str, limit: tuple[int, int], field: list[str] | None) -> None:
    hit = await counters.hit(key, limit[1])
    if hit.count > limit[0]:
        raise RetryLater(field=field, retry_after_seconds=hit.retry_after_seconds)


async def issue(
    session: AsyncSession,
    counters: Counters,
    *,
    secret: str,
    purpose: CodePurpose,
    channel: CodeChannel,
    destination: str,
    now: dt.datetime,
    client_ip: str | None,
    user_id: int | None = None,
    payload: dict[str, Any] | None = None,
    field: list[str] | None = None,
) -> SentCode:
    """Create a code, void the previous one of the same purpose and destination, queue the message."""
    last = (
        await session.execute(
            select(VerificationCode.created_at)
            .where(VerificationCode.destination == destination, VerificationCode.purpose == purpose)
            .order_by(VerificationCode.created_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if last is not None and last + RESEND_COOLDOWN > now:
        raise ResendTooSoon(
            field=field, retry_after_seconds=max(int((last + RESEND_COOLDOWN - now).total_seconds()), 1)
        )
    await _limit(counters, f"codes:issue:dest:{destination}", ISSUE_LIMIT_PER_DESTINATION, field)
    if client_ip:
        await _limit(counters, f"codes:issue:ip:{client_ip}", ISSUE_LIMIT_PER_IP, field)
    # the code is never shown; its user may see a pending change
    touch(session, users=[user_id], private=VerificationCode)
    await session.execute(
        update(VerificationCode)
        .where(
            VerificationCode.destination == destination,
            VerificationCode.purpose == purpose,
            VerificationCode.consumed_at.is_(None),
        )
        .values(consumed_at=now)
    )
    code = new_code()
    row = VerificationCode(
        purpose=purpose,
        channel=channel,
        destination=destination,
        user_id=user_id,
        code_hash=code_hash(secret, purpose, destination, code),
        payload=payload,
        attempts=0,
        created_at=now,
        expires_at=now + CODE_TTL,
        client_ip=client_ip,
    )
    session.add(row)
    subject, text = MESSAGES[purpose]
    outbox.enqueue(
        session,
        OutboxChannel.SMS if channel is CodeChannel.SMS else OutboxChannel.EMAIL,
        destination,
        text.format(code=code) + SUFFIX,
        subject=subject if channel is CodeChannel.EMAIL else None,
        data={"purpose": purpose.value},
    )
    await session.flush()
    return SentCode(channel, destination, row.expires_at, now + RESEND_COOLDOWN)


async def check(
    session: AsyncSession,
    counters: Counters,
    *,
    secret: str,
    purpose: CodePurpose,
    destination: str,
    code: str,
    now: dt.datetime,
    client_ip: str | None,
    user_id: int | None = None,
    field: list[str] | None = None,
) -> VerificationCode:
    """Consume the live code of ``purpose`` sent to ``destination`` if ``code`` matches it.

    Raises :class:`WrongCode`, :class:`CodeExpired`, :class:`CodeAttemptsExhausted` or
    :class:`RetryLater`; the caller commits either way so wrong tries count.
    """
    await _limit(counters, f"codes:check:dest:{destination}", CHECK_LIMIT_PER_DESTINATION, field)
    if client_ip:
        await _limit(counters, f"codes:check:ip:{client_ip}", CHECK_LIMIT_PER_IP, field)
    query = (
        select(VerificationCode)
        .where(
            VerificationCode.destination == destination,
            VerificationCode.purpose == purpose,
            VerificationCode.consumed_at.is_(None),
        )
        .order_by(VerificationCode.created_at.desc())
        .limit(1)
        .with_for_update()
    )
    if user_id is not None:
        query = query.where(VerificationCode.user_id == user_id)
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:
        raise WrongCode(field=field, attempts_left=0)
    if row.attempts >= MAX_WRONG_ATTEMPTS:
        raise CodeAttemptsExhausted(field=field)
    if row.expires_at <= now:
        raise CodeExpired(field=field)
    touch(session, users=[row.user_id], private=VerificationCode)
    given = code.strip()
    if not hmac.compare_digest(row.code_hash, code_hash(secret, purpose, destination, given)):
        row.attempts += 1
        await session.flush()
        if row.attempts >= MAX_WRONG_ATTEMPTS:
            raise CodeAttemptsExhausted(field=field)
        raise WrongCode(field=field, attempts_left=MAX_WRONG_ATTEMPTS - row.attempts)
    row.consumed_at = now
    await session.flush()
    return row
