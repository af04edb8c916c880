"""Security review, issue 15: sessions and sockets (findings 5, 6 and 11).

- SEC5: an open websocket must not outlive its login session or its access token: every end of a session
  closes the session's sockets with 4403 within a second, in every process, and a new subscribe on a
  socket whose session has ended is refused.
- SEC6: PostgreSQL (``auth_sessions.revoked_at``) is the truth about logouts; losing Redis's revocation
  flags never brings a logged-out access token back.
- SEC11: a cached query result is never served to another session of the same user, and a malformed
  ``operationName`` is a clean 400.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
import websockets
from sqlalchemy import text

from app.db import Database
from app.demo import DEMO_PASSWORD, DEMO_PHONE
from app.main import create_app
from app.settings import Settings
from services.clock import Clock
from tests import test_notifications
from tests.client import Api, Subscription, graphql_ws
from tests.conftest import production, running_server

LOGIN = """mutation($input: LoginWithPasswordInput!) { loginWithPassword(input: $input) {
  tokens { accessToken refreshToken } userErrors { code message } } }"""
ME = "{ me { id } }"
SESSIONS = "{ sessions { id current } }"
LOGOUT = "mutation { logout { ok } }"
END_SESSION = (
    """mutation($id: ID!) { endSession(input: {sessionId: $id}) { endedCount userErrors { code } } }"""
)
END_OTHERS = "mutation { endOtherSessions { endedCount } }"
CHANGE_PASSWORD = """mutation($input: ChangePasswordInput!) { changePassword(input: $input) {
  user { id } userErrors { code message } } }"""
NOTIFICATIONS = "subscription { notifications { cursor notification { id title } } }"
PAYMENT_STATUS = "subscription($id: ID!) { paymentStatus(paymentId: $id) { status } }"

restartable_redis = test_notifications.restartable_redis
"""A Redis of the test's own that it can stop and start (the fixture of tests/test_notifications.py)."""

CLOSED_WITHIN = 1.0
"""Seconds within which an ended session's sockets must be closed."""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Every finding here is tested against an app in production configuration (issue 15)."""
    return production(settings)


async def _login(api: Api) -> str:
    """A fresh login session of the demo customer (its own session id); returns the access token."""
    found = (await api.data(LOGIN, input={"login": DEMO_PHONE, "password": DEMO_PASSWORD, "client": "WEB"}))[
        "loginWithPassword"
    ]
    assert found["userErrors"] == [], found
    return str(found["tokens"]["accessToken"])


async def _current_session_id(api: Api, token: str) -> str:
    listed = (await api.data(SESSIONS, token=token))["sessions"]
    return str(next(s["id"] for s in listed if s["current"]))


async def _closed_with(ws: Subscription, within: float = CLOSED_WITHIN) -> int | None:
    """Wait (at most ``within`` seconds) until the server closes the socket; its close code."""
    try:
        async with asyncio.timeout(within):
            while True:  # messages already in flight (a first event) may arrive before the close
                await ws.socket.recv()
    except TimeoutError:
        raise AssertionError(f"the socket was still open after {within} s") from None
    except websockets.ConnectionClosed:
        pass
    return ws.socket.close_code  # type: ignore[no-any-return]


async def _subscribed(ws: Subscription, query: str = NOTIFICATIONS, **variables: Any) -> str:
    """Start a subscription and give the server a moment to start it."""
    op = await ws.subscribe(query, variables or None)
    await asyncio.sleep(0.3)
    return op


# --- SEC5: open websockets end with their session -------------------------------------------------------


async def test_SEC5_logout_closes_the_open_socket_with_4403_and_refuses_a_new_subscribe(
    api: Api, live_server: str
) -> None:
    token = await _login(api)
    async with graphql_ws(live_server, init={"token": token}) as ws:
        await _subscribed(ws)
        assert (await api.data(LOGOUT, token=token))["logout"]["ok"] is True
        assert await _closed_with(ws) == 4403
    with pytest.raises(websockets.ConnectionClosed) as refused:  # the handshake itself is refused now
        async with graphql_ws(live_server, init={"token": token}):
            pass
    assert refused.value.rcvd is not None and refused.value.rcvd.code == 4403


async def test_SEC5_subscribe_on_an_open_socket_checks_the_session_in_postgresql(
    api: Api, db: Database, live_server: str
) -> None:
    """The session ends behind the event bus's back (a plain UPDATE, no event, no Redis flag): the next
    subscribe on the already-open socket must still be refused, since it reads the session row."""
    token = await _login(api)
    sid = int((await _session_ids(db))[-1])
    async with graphql_ws(live_server, init={"token": token}) as ws:
        async with db.session() as session:
            await session.execute(
                text("UPDATE auth_sessions SET revoked_at = created_at WHERE id = :id"), {"id": sid}
            )
            await session.commit()
        await ws.subscribe(NOTIFICATIONS)
        assert await _closed_with(ws) == 4403


async def test_SEC5_payment_status_subscribe_is_refused_after_the_session_ended(
    api: Api, db: Database, live_server: str
) -> None:
    token = await _login(api)
    sid = int((await _session_ids(db))[-1])
    async with graphql_ws(live_server, init={"token": token}) as ws:
        async with db.session() as session:
            await session.execute(
                text("UPDATE auth_sessions SET revoked_at = created_at WHERE id = :id"), {"id": sid}
            )
            await session.commit()
        await ws.subscribe(PAYMENT_STATUS, {"id": "UGF5bWVudDox"})
        assert await _closed_with(ws) == 4403


async def test_SEC5_password_change_from_another_device_closes_the_socket(api: Api, live_server: str) -> None:
    phone = await _login(api)
    laptop = await _login(api)
    async with graphql_ws(live_server, init={"token": phone}) as ws:
        await _subscribed(ws)
        changed = (
            await api.data(
                CHANGE_PASSWORD,
                token=laptop,
                input={
                    "currentPassword": DEMO_PASSWORD,
                    "password": "New#pass1",
                    "passwordRepeat": "New#pass1",
                },
            )
        )["changePassword"]
        assert changed["userErrors"] == []
        assert await _closed_with(ws) == 4403
    assert (await api.post(ME, token=laptop)).status_code == 200  # the changing session goes on


async def test_SEC5_end_session_and_end_other_sessions_close_the_sockets(api: Api, live_server: str) -> None:
    first, second, third = await _login(api), await _login(api), await _login(api)
    async with (
        graphql_ws(live_server, init={"token": first}) as one,
        graphql_ws(live_server, init={"token": second}) as two,
    ):
        await _subscribed(one)
        await _subscribed(two)
        ended = (await api.data(END_SESSION, token=third, id=await _current_session_id(api, first)))[
            "endSession"
        ]
        assert ended == {"endedCount": 1, "userErrors": []}
        assert await _closed_with(one) == 4403
        assert (await api.data(END_OTHERS, token=third))["endOtherSessions"]["endedCount"] >= 1
        assert await _closed_with(two) == 4403


async def test_SEC5_socket_is_closed_when_its_access_token_expires(
    api: Api, live_server: str, clock: Clock
) -> None:
    token = await _login(api)
    async with graphql_ws(live_server, init={"token": token}) as ws:
        await _subscribed(ws)
        clock.advance(dt.timedelta(minutes=14))
        await asyncio.sleep(1.5)
        assert ws.socket.close_code is None  # still within the token's 15 minutes
        clock.advance(dt.timedelta(minutes=2))
        assert await _closed_with(ws, within=2.5) == 4403  # the expiry check re-reads the clock each second


async def test_SEC5_session_ended_through_one_process_closes_the_socket_on_another(
    api: Api, settings: Settings
) -> None:
    token = await _login(api)  # through process A (the test's app)
    other = create_app(settings)  # process B: its own database pool, event bus and Redis connections
    async with other.router.lifespan_context(other), running_server(other) as server_b:
        async with graphql_ws(server_b, init={"token": token}) as ws:
            await _subscribed(ws)
            assert (await api.data(LOGOUT, token=token))["logout"]["ok"] is True  # through A
            assert await _closed_with(ws) == 4403
        async with httpx.AsyncClient(base_url=server_b) as http:
            refused = await http.post(
                "/graphql", json={"query": ME}, headers={"authorization": f"Bearer {token}"}
            )
        assert refused.status_code == 401


async def _session_ids(db: Database) -> list[int]:
    async with db.session() as session:
        return list((await session.execute(text("SELECT id FROM auth_sessions ORDER BY id"))).scalars())


# --- SEC6: PostgreSQL is the truth about logouts --------------------------------------------------------


@pytest.fixture
async def own_redis(settings: Settings) -> AsyncIterator[Any]:
    client = redis.Redis.from_url(settings.redis_url or "")
    yield client
    await client.aclose()


async def _forget_redis(client: Any, prefix: str) -> int:
    """Delete every key under the test's prefix (what a Redis restart or FLUSHALL does to it)."""
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    return len(keys)


async def test_SEC6_logout_survives_losing_redis(api: Api, settings: Settings, own_redis: Any) -> None:
    token = await _login(api)
    assert (await api.post(ME, token=token)).status_code == 200
    assert (await api.data(LOGOUT, token=token))["logout"]["ok"] is True
    assert (await api.post(ME, token=token)).status_code == 401
    assert await _forget_redis(own_redis, settings.redis_prefix) > 0
    refused = await api.post(ME, token=token)
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_SEC6_a_fresh_process_after_losing_redis_refuses_a_logged_out_token(
    api: Api, settings: Settings, own_redis: Any
) -> None:
    token = await _login(api)
    assert (await api.data(LOGOUT, token=token))["logout"]["ok"] is True
    await _forget_redis(own_redis, settings.redis_prefix)
    restarted = create_app(settings)
    async with restarted.router.lifespan_context(restarted):
        transport = httpx.ASGITransport(app=restarted)
        async with httpx.AsyncClient(transport=transport, base_url="http://kabinet.test") as http:
            refused = await http.post(
                "/graphql", json={"query": ME}, headers={"authorization": f"Bearer {token}"}
            )
    assert refused.status_code == 401


async def test_SEC6_a_socket_cannot_connect_with_a_logged_out_token_after_losing_redis(
    api: Api, settings: Settings, live_server: str, own_redis: Any
) -> None:
    token = await _login(api)
    assert (await api.data(LOGOUT, token=token))["logout"]["ok"] is True
    await _forget_redis(own_redis, settings.redis_prefix)
    with pytest.raises(websockets.ConnectionClosed) as refused:
        async with graphql_ws(live_server, init={"token": token}):
            pass
    assert refused.value.rcvd is not None and refused.value.rcvd.code == 4403


# --- SEC11: the result cache answers per session ----------------------------------------------------------


async def test_SEC11_cached_sessions_current_is_per_session(api: Api) -> None:
    a = await _login(api)
    b = await _login(api)
    seen_by_a = (await api.data(SESSIONS, token=a))["sessions"]
    seen_by_b = (await api.data(SESSIONS, token=b))["sessions"]
    assert seen_by_a != seen_by_b
    assert next(s["id"] for s in seen_by_b if s["current"]) == await _current_session_id_uncached(api, b)
    assert next(s["id"] for s in seen_by_a if s["current"]) != next(
        s["id"] for s in seen_by_b if s["current"]
    )


async def _current_session_id_uncached(api: Api, token: str) -> str:
    """The caller's session id by another query text (so it cannot be the cached entry)."""
    listed = (await api.data("query Mine { sessions { current id } }", token=token))["sessions"]
    return str(next(s["id"] for s in listed if s["current"]))


@pytest.mark.parametrize("name", [{"a": 1}, ["x"], 7, True])
async def test_SEC11_operation_name_must_be_a_string_or_null(api: Api, name: Any) -> None:
    token = await _login(api)
    response = await api.client.post(
        "/graphql",
        json={"query": ME, "operationName": name},
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_SEC11_operation_name_over_websocket_must_be_a_string_or_null(
    api: Api, live_server: str
) -> None:
    token = await _login(api)
    async with graphql_ws(live_server, init={"token": token}) as ws:
        await ws.socket.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": NOTIFICATIONS, "operationName": {"a": 1}},
                }
            )
        )
        assert await _closed_with(ws) == 4400


async def test_SEC5_the_legacy_graphql_ws_protocol_is_not_served(
    live_server: str, customer_token: str
) -> None:
    """Only graphql-transport-ws is spoken: its handler is the one that enforces the session rules."""
    url = live_server.replace("http://", "ws://") + "/graphql"
    with pytest.raises((websockets.InvalidHandshake, websockets.ConnectionClosed)):
        async with websockets.connect(url, subprotocols=["graphql-ws"]) as socket:  # type: ignore[list-item]
            await socket.send(json.dumps({"type": "connection_init", "payload": {"token": customer_token}}))
            await asyncio.wait_for(socket.recv(), 5)
            await asyncio.wait_for(socket.recv(), 5)


async def test_SEC5_SEC6_a_session_ended_while_redis_was_away_is_caught_up_after_it_returns(
    api: Api, settings: Settings, restartable_redis: tuple[str, Any], clock: Clock
) -> None:
    """No event and no flag (Redis is down, the row is changed by another process): sockets of the session
    are closed once the bus reconnects (every registered session is re-read), and HTTP reads the row."""
    url, (start, stop) = restartable_redis
    token = await _login(api)
    application = create_app(settings.model_copy(update={"redis_url": url}))
    async with application.router.lifespan_context(application), running_server(application) as server:
        own_db: Database = application.state.kabinet.db
        async with graphql_ws(server, init={"token": token}) as ws:
            await _subscribed(ws)
            stop()
            sid = (await _session_ids(own_db))[-1]
            async with own_db.session() as session:
                await session.execute(
                    text("UPDATE auth_sessions SET revoked_at = created_at WHERE id = :id"), {"id": sid}
                )
                await session.commit()
            clock.advance(dt.timedelta(seconds=3))  # past the per-process positive cache
            async with httpx.AsyncClient(base_url=server) as http:
                refused = await http.post(
                    "/graphql", json={"query": ME}, headers={"authorization": f"Bearer {token}"}
                )
            assert refused.status_code == 401  # Redis unreachable: the row decides
            assert ws.socket.close_code is None
            start()
            assert await _closed_with(ws, within=20) == 4403


def test_issue21_a_verified_access_token_is_remembered_but_its_expiry_is_judged_every_time() -> None:
    """The signature of a token a client repeats is checked once per process; expiry, the secret and
    tampering are still judged on every call (services.tokens.VERIFIED)."""
    from services import tokens

    now = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    secret, other = "s" * 32, "o" * 32
    token, expires_at = tokens.issue_access_token(secret, user_id=7, role="CUSTOMER", session_id=9, now=now)
    tokens.VERIFIED.clear()
    first = tokens.verify_access_token(secret, token, now=now)
    assert first is not None and (first.user_id, first.role, first.session_id) == (7, "CUSTOMER", 9)
    assert tokens.verify_access_token(secret, token, now=now + dt.timedelta(minutes=1)) is first  # remembered
    assert tokens.verify_access_token(secret, token, now=expires_at) is None  # expired, though remembered
    assert tokens.verify_access_token(other, token, now=now) is None  # another secret: checked again, refused
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert tokens.verify_access_token(secret, tampered, now=now) is None
    assert set(tokens.VERIFIED) == {(secret, token)}  # only valid tokens are kept
    for n in range(tokens.VERIFIED_SIZE + 5):  # bounded
        tokens.VERIFIED[(secret, str(n))] = first
        if len(tokens.VERIFIED) >= tokens.VERIFIED_SIZE:
            break
    tokens.verify_access_token(secret, token + "x", now=now)  # invalid: not added
    fresh, _ = tokens.issue_access_token(secret, user_id=8, role="CUSTOMER", session_id=10, now=now)
    assert tokens.verify_access_token(secret, fresh, now=now) is not None
    assert len(tokens.VERIFIED) <= tokens.VERIFIED_SIZE
    tokens.VERIFIED.clear()
