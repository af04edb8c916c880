"""Signed, short-lived access tokens (JWT, HS256). Refresh tokens are opaque and live in the database."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import jwt

ISSUER = "kabinet"
ACCESS_TOKEN_TTL = dt.timedelta(minutes=15)
VERIFIED_SIZE = 20_000
"""Verified tokens remembered per process (:func:`verify_access_token`)."""


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


VERIFIED: dict[tuple[str, str], AccessClaims] = {}
"""(secret, token) → claims of tokens whose signature and claims were verified (issue 21: a client sends
the same token with every request for its 15 minutes, and decoding and checking the HMAC was ~1.5 % of an
uncached dashboard's server CPU). Only *valid* tokens are kept, so garbage cannot fill it; the secret is
part of the key, so a token signed with a rotated-out secret is verified again (and refused); expiry is
still judged against ``now`` on every call. Bounded: cleared when full."""


def verify_access_token(secret: str, token: str, *, now: dt.datetime) -> AccessClaims | None:
    """The claims of a valid token signed with ``secret`` that has not expired at ``now``; None for
    anything else. Expiry is judged by our clock (``now``), not PyJWT's wall clock, so a server whose clock
    was started elsewhere (``KABINET_CLOCK_START``) accepts the tokens it issues for their whole lifetime.
    A token verified before is not decoded again (:data:`VERIFIED`); its expiry is checked every time."""
    known = VERIFIED.get((secret, token))
    if known is not None:
        return known if known.expires_at > now else None
    claims = _verify(secret, token, now=now)
    if claims is not None:
        if len(VERIFIED) >= VERIFIED_SIZE:
            VERIFIED.clear()
        VERIFIED[(secret, token)] = claims
    return claims


def _verify(secret: str, token: str, *, now: dt.datetime) -> AccessClaims | None:
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
