"""Signed, short-lived access tokens (JWT, HS256). Refresh tokens are opaque and live in the database."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import jwt

ISSUER = "kabinet"
ACCESS_TOKEN_TTL = dt.timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says about its bearer."""

    user_id: int
    role: str
    session_id: int
    expires_at: dt.datetime


def issue_access_token(
    secret: str,
    *,
    user_id: int,
    role: str,
    session_id: int,
    now: dt.datetime,
    ttl: dt.timedelta = ACCESS_TOKEN_TTL,
) -> tuple[str, dt.datetime]:
    """Sign an access token for a user's session; returns the token and when it expires."""
    expires_at = now + ttl
    payload = {
        "iss": ISSUER,
        "sub": str(user_id),
        "role": role,
        "sid": session_id,
        "iat": now,
        "exp": expires_at,
    }
    return jwt.encode(payload, secret, algorithm="HS256"), expires_at


def verify_access_token(secret: str, token: str, *, now: dt.datetime) -> AccessClaims | None:
    """The claims of a valid token signed with ``secret`` that has not expired at ``now``; None for
    anything else. Expiry is judged by our clock (``now``), not PyJWT's wall clock, so a server whose clock
    was started elsewhere (``KABINET_CLOCK_START``) accepts the tokens it issues for their whole lifetime."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            issuer=ISSUER,
            options={"require": ["exp", "sub", "sid"], "verify_exp": False, "verify_iat": False},
        )
        expires_at = dt.datetime.fromtimestamp(payload["exp"], dt.UTC)
        if expires_at <= now:
            return None
        return AccessClaims(
            user_id=int(payload["sub"]),
            role=str(payload["role"]),
            session_id=int(payload["sid"]),
            expires_at=expires_at,
        )
    except (jwt.PyJWTError, KeyError, ValueError, TypeError, OverflowError, OSError):
        return None
