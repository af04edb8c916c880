"""Login sessions: an access token (short-lived, signed) plus a rotating opaque refresh token.

Every way of logging in (password, code, QR, biometrics, VK) ends in :func:`start_session`.
Refreshing rotates the refresh token; presenting a spent one revokes the whole session (its family),
since it means the token was copied. Sessions have an absolute lifetime that refreshing never extends.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from dataclasses import dataclass

from redis.exceptions import RedisError
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.identity import AuthSession, ClientKind, RefreshToken, User
from models.plain import PlainQuery
from services.errors import DomainError
from services.events import emit, user_channel
from services.limits import Counters
from services.tokens import ACCESS_TOKEN_TTL, issue_access_token
from services.unit_of_work import touch

log = logging.getLogger("kabinet.sessions")

SESSION_LIFETIME = dt.timedelta(days=30)
"""Absolute lifetime of a login session (then the user logs in again)."""


class InvalidRefreshToken(DomainError):
    """The refresh token is unknown, spent, expired, or its session has ended."""

    code = "INVALID_REFRESH_TOKEN"
    message = "Сеанс завершен. Войдите снова."


@dataclass(frozen=True, slots=True)
class Tokens:
    """What a client stores after logging in or refreshing."""

    access_token: str
    access_token_expires_at: dt.datetime
    refresh_token: str
    refresh_token_expires_at: dt.datetime
    session_id: int


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def _issue(
    session: AsyncSession, secret: str, auth: AuthSession, user: User, now: dt.datetime
) -> Tokens:
    refresh = secrets.token_urlsafe(32)
    session.add(RefreshToken(session_id=auth.id, token_hash=_hash(refresh), expires_at=auth.expires_at))
    access, access_expires = issue_access_token(
        secret, user_id=user.id, role=user.role.value, session_id=auth.id, now=now, ttl=ACCESS_TOKEN_TTL
    )
    return Tokens(access, min(access_expires, auth.expires_at), refresh, auth.expires_at, auth.id)


async def start_session(
    session: AsyncSession,
    secret: str,
    user: User,
    *,
    now: dt.datetime,
    client_kind: ClientKind = ClientKind.WEB,
    device_name: str | None = None,
    client_ip: str | None = None,
    user_agent: str | None = None,
) -> Tokens:
    """Open a login session for ``user`` and issue its first tokens (the caller commits)."""
    auth = AuthSession(
        user_id=user.id,
        client_kind=client_kind,
        device_name=device_name,
        client_ip=client_ip,
        user_agent=user_agent,
        last_used_at=now,
        expires_at=now + SESSION_LIFETIME,
    )
    session.add(auth)
    touch(session, users=[user.id])  # a new login session (and the user's last login)
    await session.flush()
    user.last_login_at = now
    return await _issue(session, secret, auth, user, now)


async def refresh_session(
    session: AsyncSession, secret: str, refresh_token: str, *, now: dt.datetime
) -> Tokens:
    """Rotate a refresh token. A spent token revokes its session (theft); the caller commits either way."""
    row = (
        await session.execute(
            select(RefreshToken, AuthSession, User)
            .join(AuthSession, AuthSession.id == RefreshToken.session_id)
            .join(User, User.id == AuthSession.user_id)
            .where(RefreshToken.token_hash == _hash(refresh_token))
            .with_for_update(of=RefreshToken)
        )
    ).one_or_none()
    if row is None:
        raise InvalidRefreshToken()
    token, auth, user = row
    if token.used_at is not None:
        revoked = await revoke_sessions(session, auth.user_id, now=now, only=auth.id)
        raise InvalidRefreshToken(reused=True, revoked=revoked)
    if auth.revoked_at is not None or auth.expires_at <= now or user.deleted_at is not None:
        raise InvalidRefreshToken()
    token.used_at = now
    auth.last_used_at = now
    touch(session, users=[auth.user_id])  # the session's last use is in the user's session list
    return await _issue(session, secret, auth, user, now)


async def revoke_sessions(
    session: AsyncSession,
    user_id: int,
    *,
    now: dt.datetime,
    only: int | None = None,
    keep: int | None = None,
) -> list[int]:
    """End sessions of a user: one (``only``), or all but ``keep`` (password change), or all.

    Returns the ids of the sessions ended; pass them to :func:`flag_revoked` so their access tokens
    stop working at once (the caller commits first)."""
    stmt = update(AuthSession).where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
    if only is not None:
        stmt = stmt.where(AuthSession.id == only)
    if keep is not None:
        stmt = stmt.where(AuthSession.id != keep)
    result = await session.execute(stmt.values(revoked_at=now).returning(AuthSession.id))
    ended = list(result.scalars())
    touch(session, users=[user_id])
    if ended:  # as soon as this commits: live streams end, every process closes these sessions' sockets
        message = {"type": "session-ended", "sessionIds": ended}
        emit(session, user_channel(user_id), message)
        emit(session, SESSIONS_CHANNEL, message)
    return ended


SESSIONS_CHANNEL = "sessions-ended"
"""The event-bus channel every process listens on for ``{"type": "session-ended", "sessionIds": [...]}``
(published after the revoking transaction commits): it drops the sessions from each process's cache of
active sessions and closes their websockets with 4403 (``app.revocation``)."""


_SESSIONS_STATE = PlainQuery(
    select(AuthSession.id, AuthSession.revoked_at, AuthSession.expires_at).where(
        AuthSession.id.in_(bindparam("session_ids", expanding=True))
    )
)
"""Many sessions' end times in one plain read (an array parameter: one statement text for any count)."""


async def inactive_sessions(session: AsyncSession, session_ids: list[int], *, now: dt.datetime) -> set[int]:
    """Which of ``session_ids`` have ended (revoked, expired or gone): one plain read for many requests and
    sockets (:class:`app.revocation.SessionGuard` batches the checks of a loop pass), no transaction."""
    if not session_ids:
        return set()
    rows = await _SESSIONS_STATE.rows(session, {"session_ids": list(session_ids)})
    active = {row[0] for row in rows if row[1] is None and row[2] > now}
    return set(session_ids) - active


REVOCATION_FLAG_TTL = int(ACCESS_TOKEN_TTL.total_seconds()) + 60
"""Revocations are remembered as long as an access token issued before them can live."""


async def flag_revoked(counters: Counters, session_ids: list[int]) -> None:
    """Remember ended sessions in Redis so every process refuses their access tokens without SQL.

    Only a speed-up: ``auth_sessions.revoked_at`` (already committed) is the truth, and a missing flag
    (Redis restarted, flushed, unreachable) makes the caller read PostgreSQL, never trust the token. So a
    failure to set the flags is logged, not raised: the session has ended either way."""
    try:
        await counters.set_flags([f"revoked-session:{sid}" for sid in session_ids], REVOCATION_FLAG_TTL)
    except (RedisError, OSError) as error:
        log.warning("revocation flags of %d sessions not set in Redis: %s", len(session_ids), error)


async def is_revoked(counters: Counters, session_id: int) -> bool:
    """Whether a revocation flag of the session is in Redis (one EXISTS). True is final: revocations are
    never undone. False proves nothing (the flag may have been lost): ask :func:`inactive_sessions`."""
    return await counters.has_flag(f"revoked-session:{session_id}")


async def revoked_among(counters: Counters, session_ids: list[int]) -> set[int]:
    """:func:`is_revoked` for many sessions in one Redis round trip: those with a revocation flag."""
    found = await counters.flags_present([f"revoked-session:{session_id}" for session_id in session_ids])
    return {int(key.rsplit(":", 1)[1]) for key in found}


async def active_sessions(session: AsyncSession, user_id: int, *, now: dt.datetime) -> list[AuthSession]:
    """The user's sessions that have not ended, most recently used first."""
    rows = await session.execute(
        select(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None), AuthSession.expires_at > now)
        .order_by(AuthSession.last_used_at.desc(), AuthSession.id.desc())
    )
    return list(rows.scalars())
