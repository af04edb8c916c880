"""A6 logging in on the web by scanning a QR code with the mobile app."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.identity import (
    QrLoginChallenge,
    QrLoginStatus,
    User,
)
from services import codes
from services.errors import DomainError
from services.identity.common import Caller, audit, live_user
from services.unit_of_work import touch

# --- A6 QR login ------------------------------------------------------------------------------------------

QR_TTL = dt.timedelta(minutes=2)
QR_PREFIX = "kabinet-qr:"


class QrChallengeInvalid(DomainError):
    """The QR login challenge is unknown, used or expired."""

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
    touch(session, private=QrLoginChallenge)
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
    touch(session, private=QrLoginChallenge)
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
