"""A6 QR login over the websocket, A7 device keys, staff creation from the CLI, the outbox dispatcher."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import sys
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.demo import DEMO_PHONE, DEMO_PHONE_E164
from services.clock import CLOCK
from services.identity.qr import QR_TTL
from tests.client import graphql_ws
from tests.test_identity import ERR, ME, password_login, sql

START_QR = f"mutation {{ startQrLogin {{ qrLogin {{ webSecret qrPayload qrSvg expiresAt }} {ERR} }} }}"
QR_SUB = "subscription($s: String!) { qrLogin(webSecret: $s) { status expiresAt tokens { accessToken } } }"
DECIDE = f"""mutation($p: String!, $a: Boolean!) {{ decideQrLogin(input: {{qrPayload: $p, approve: $a}}) {{
  ok {ERR} }} }}"""
START_DEVICE = "mutation($c: String!) { startDeviceLogin(input: {credentialId: $c}) { challenge } }"
REQUEST = "query($p: String!) { qrLoginRequest(qrPayload: $p) { clientIp userAgent createdAt expiresAt } }"


async def test_A6_qr_login_delivers_tokens_once_over_the_subscription(api, live_server):
    mobile = (await password_login(api))["tokens"]["accessToken"]
    started = (await api.data(START_QR))["startQrLogin"]["qrLogin"]
    assert started["qrSvg"].startswith("data:image/svg+xml")
    async with graphql_ws(live_server) as ws:
        op = await ws.subscribe(QR_SUB, {"s": started["webSecret"]})
        events = ws.events(op, timeout=10)
        first = await events.__anext__()
        assert first["data"]["qrLogin"]["status"] == "PENDING"
        shown = (await api.data(REQUEST, token=mobile, p=started["qrPayload"]))["qrLoginRequest"]
        assert shown["clientIp"] == "203.0.113.10"
        approved = await api.data(DECIDE, token=mobile, p=started["qrPayload"], a=True)
        assert approved["decideQrLogin"] == {"ok": True, "userErrors": []}
        second = await events.__anext__()
        assert second["data"]["qrLogin"]["status"] == "APPROVED"
        web_token = second["data"]["qrLogin"]["tokens"]["accessToken"]
    assert (await api.data(ME, token=web_token))["me"]["phone"] == DEMO_PHONE_E164
    # exactly once: a second subscriber gets no tokens, the QR cannot be approved again
    async with graphql_ws(live_server) as ws:
        op = await ws.subscribe(QR_SUB, {"s": started["webSecret"]})
        again = [event async for event in ws.events(op, timeout=10)]
    assert again == [
        {
            "data": {
                "qrLogin": {
                    "status": "CONSUMED",
                    "expiresAt": again[0]["data"]["qrLogin"]["expiresAt"],
                    "tokens": None,
                }
            }
        }
    ]
    reuse = await api.data(DECIDE, token=mobile, p=started["qrPayload"], a=True)
    assert reuse["decideQrLogin"]["userErrors"][0]["code"] == "QR_CHALLENGE_INVALID"


@pytest.mark.calendar
async def test_A6_rejected_and_expired_qr_codes(api, db, live_server, clock):
    mobile = (await password_login(api))["tokens"]["accessToken"]
    started = (await api.data(START_QR))["startQrLogin"]["qrLogin"]
    await api.data(DECIDE, token=mobile, p=started["qrPayload"], a=False)
    async with graphql_ws(live_server) as ws:
        op = await ws.subscribe(QR_SUB, {"s": started["webSecret"]})
        events = [event["data"]["qrLogin"]["status"] async for event in ws.events(op, timeout=10)]
    assert events == ["REJECTED"]
    expired = (await api.data(START_QR))["startQrLogin"]["qrLogin"]
    clock.advance(QR_TTL + dt.timedelta(seconds=1))
    refused = await api.data(DECIDE, token=mobile, p=expired["qrPayload"], a=True)
    assert refused["decideQrLogin"]["userErrors"][0]["code"] == "QR_CHALLENGE_INVALID"
    async with graphql_ws(live_server) as ws:
        op = await ws.subscribe(QR_SUB, {"s": expired["webSecret"]})
        events = [event["data"]["qrLogin"]["status"] async for event in ws.events(op, timeout=10)]
    assert events == ["EXPIRED"]


async def test_A6_approval_needs_a_logged_in_app(api):
    started = (await api.data(START_QR))["startQrLogin"]["qrLogin"]
    body = await api.gql(DECIDE, p=started["qrPayload"], a=True)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# --- A7 -----------------------------------------------------------------------------------------------------


def b64(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).decode().rstrip("=")


async def device_login(api: Any, key: ec.EllipticCurvePrivateKey, credential_id: str) -> dict[str, Any]:
    challenge = (
        await api.data(
            f'mutation {{ startDeviceLogin(input: {{credentialId: "{credential_id}"}}) {{ '
            f"challenge {ERR} }} }}"
        )
    )["startDeviceLogin"]["challenge"]
    signature = key.sign(challenge.encode(), ec.ECDSA(hashes.SHA256()))
    login = f"""mutation($input: LoginWithDeviceKeyInput!) {{ loginWithDeviceKey(input: $input) {{
      tokens {{ accessToken }} user {{ phone }} {ERR} }} }}"""
    variables = {"credentialId": credential_id, "challenge": challenge, "signature": b64(signature)}
    first = (await api.data(login, input=variables))["loginWithDeviceKey"]
    replay = (await api.data(login, input=variables))["loginWithDeviceKey"]
    assert replay["userErrors"] and replay["userErrors"][0]["code"] == "DEVICE_SIGNATURE_INVALID"
    return first


async def test_A7_device_key_login_with_a_software_authenticator(api):
    token = (await password_login(api))["tokens"]["accessToken"]
    key = ec.generate_private_key(ec.SECP256R1())
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    registered = await api.data(
        f"""mutation($k: String!) {{ registerDeviceKey(input: {{publicKey: $k, name: "iPhone"}}) {{
          deviceKey {{ id name credentialId }} {ERR} }} }}""",
        token=token,
        k=public,
    )
    device = registered["registerDeviceKey"]["deviceKey"]
    assert device["name"] == "iPhone"
    result = await device_login(api, key, device["credentialId"])
    assert result["userErrors"] == [] and result["user"]["phone"] == DEMO_PHONE_E164
    # a different key's signature is refused
    other = ec.generate_private_key(ec.SECP256R1())
    forged = await api.data(START_DEVICE, c=device["credentialId"])
    challenge = forged["startDeviceLogin"]["challenge"]
    refused = await api.data(
        f"""mutation($input: LoginWithDeviceKeyInput!) {{ loginWithDeviceKey(input: $input) {{ {ERR} }} }}""",
        input={
            "credentialId": device["credentialId"],
            "challenge": challenge,
            "signature": b64(other.sign(challenge.encode(), ec.ECDSA(hashes.SHA256()))),
        },
    )
    assert refused["loginWithDeviceKey"]["userErrors"][0]["code"] == "DEVICE_SIGNATURE_INVALID"
    # listed and revocable
    listed = (await api.data("{ deviceKeys { id name } }", token=token))["deviceKeys"]
    assert [k["id"] for k in listed] == [device["id"]]
    revoked = await api.data(
        f'mutation {{ revokeDeviceKey(input: {{deviceKeyId: "{device["id"]}"}}) {{ ok {ERR} }} }}',
        token=token,
    )
    assert revoked["revokeDeviceKey"]["ok"] is True
    challenge = (await api.data(START_DEVICE, c=device["credentialId"]))["startDeviceLogin"]["challenge"]
    after = await api.data(
        f"""mutation($input: LoginWithDeviceKeyInput!) {{ loginWithDeviceKey(input: $input) {{ {ERR} }} }}""",
        input={
            "credentialId": device["credentialId"],
            "challenge": challenge,
            "signature": b64(key.sign(challenge.encode(), ec.ECDSA(hashes.SHA256()))),
        },
    )
    assert after["loginWithDeviceKey"]["userErrors"][0]["code"] == "DEVICE_KEY_INVALID"


# --- roles --------------------------------------------------------------------------------------------------


async def test_roles_staff_create_cli(api, database_url):
    env = {**os.environ, "DATABASE_URL": database_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "staff",
        "create",
        "--role",
        "OPERATOR",
        "--phone",
        "+7 (900) 555-00-11",
        "--email",
        "operator2@resk.demo",
        "--last-name",
        "Смирнова",
        "--first-name",
        "Ольга",
        "--password",
        "Operator#1",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    login = await password_login(api, "+79005550011", "Operator#1")
    me = await api.data("{ me { role } }", token=login["tokens"]["accessToken"])
    assert me["me"]["role"] == "OPERATOR"
    weak = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "staff",
        "create",
        "--role",
        "ADMIN",
        "--phone",
        "+7 900 555-00-12",
        "--last-name",
        "X1",
        "--first-name",
        "Y",
        "--password",
        "weak",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await weak.communicate()
    assert weak.returncode == 2 and "lastName" in err.decode() and "password" in err.decode()


# --- outbox -------------------------------------------------------------------------------------------------


async def test_outbox_dispatcher_retries_failures_and_sends_via_http_gateway(api, db):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from models.outbox import OutboxChannel
    from services.outbox import ConsoleProvider, HttpSmsProvider, dispatch_once

    received: list[dict[str, Any]] = []
    fail = {"left": 1}

    async def gateway(request):
        if fail["left"]:
            fail["left"] -= 1
            return JSONResponse({"error": "busy"}, status_code=503)
        assert request.headers["authorization"] == "Bearer gw-token"
        received.append(await request.json())
        return JSONResponse({"ok": True})

    gateway_app = Starlette(routes=[Route("/send", gateway, methods=["POST"])])
    await api.data(f'mutation {{ requestLoginCode(input: {{login: "{DEMO_PHONE}"}}) {{ {ERR} }} }}')

    class Provider(HttpSmsProvider):
        async def send(self, message):  # the same provider, over an in-process transport
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=gateway_app), base_url="http://gw"
            ) as c:
                response = await c.post(
                    "/send",
                    json={"to": message.destination, "text": message.body},
                    headers={"authorization": f"Bearer {self.token}"},
                )
                response.raise_for_status()

    providers = {
        OutboxChannel.SMS: Provider(url="http://gw/send", token="gw-token"),
        OutboxChannel.EMAIL: ConsoleProvider(),
    }
    now = CLOCK.now()
    async with db.unit_of_work() as uow:
        first = await dispatch_once(uow.session, providers, now=now)
    assert first.retried == 1 and first.sent == 0
    row = (
        await sql(db, "SELECT status, attempts, last_error FROM outbox_messages ORDER BY id DESC LIMIT 1")
    ).one()
    assert row.status == "PENDING" and row.attempts == 1 and "503" in row.last_error
    async with db.unit_of_work() as uow:
        assert (await dispatch_once(uow.session, providers, now=now)).sent == 0  # not due yet
    async with db.unit_of_work() as uow:
        second = await dispatch_once(uow.session, providers, now=now + dt.timedelta(minutes=1))
    assert second.sent == 1
    assert received[0]["to"] == DEMO_PHONE_E164 and "Код для входа" in received[0]["text"]
    row = (await sql(db, "SELECT status, sent_at FROM outbox_messages ORDER BY id DESC LIMIT 1")).one()
    assert row.status == "SENT" and row.sent_at is not None


async def test_A3_password_hash_is_upgraded_on_login_when_parameters_change(api, db):
    from argon2 import PasswordHasher

    from app.demo import DEMO_PASSWORD

    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(DEMO_PASSWORD)
    await sql(db, "UPDATE users SET password_hash = :h WHERE phone = :p", h=weak, p=DEMO_PHONE_E164)
    assert (await password_login(api))["userErrors"] == []
    stored = (await sql(db, "SELECT password_hash FROM users WHERE phone = :p", p=DEMO_PHONE_E164)).scalar()
    assert stored != weak and stored.startswith("$argon2id$")


async def test_rate_limits_live_in_redis_under_the_prefix(api, settings):
    import redis.asyncio as redis

    await api.data(f'mutation {{ requestLoginCode(input: {{login: "{DEMO_PHONE}"}}) {{ {ERR} }} }}')
    client = redis.from_url(settings.redis_url)
    try:
        keys = sorted([key.decode() async for key in client.scan_iter(f"{settings.redis_prefix}:codes:*")])
    finally:
        await client.aclose()
    # one fixed window of the one clock per key: <prefix>:<limit>:<who>:<window seconds>:<window number>
    assert [key.rsplit(":", 2)[0] for key in keys] == [
        f"{settings.redis_prefix}:codes:issue:dest:{DEMO_PHONE_E164}",
        f"{settings.redis_prefix}:codes:issue:ip:203.0.113.10",
    ]


async def test_A9_websocket_with_a_logged_out_token_is_refused(api, live_server):
    import websockets

    token = (await password_login(api))["tokens"]["accessToken"]
    async with graphql_ws(live_server, init={"token": token}):
        pass
    await api.data(f"mutation {{ logout {{ ok {ERR} }} }}", token=token)
    url = live_server.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as socket:  # type: ignore[list-item]
        await socket.send(json.dumps({"type": "connection_init", "payload": {"token": token}}))
        try:
            await socket.recv()
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 4403
        else:
            raise AssertionError("the connection was accepted")
