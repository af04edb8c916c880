"""A5 VK login / registration and J8 against a tiny local OAuth 2 server (real HTTP, authlib client)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.settings import Settings
from services.demo import DEMO_PHONE_E164
from tests.conftest import running_server
from tests.test_identity import ERR, password_login

REDIRECT = "https://lk.example.ru/vk/callback"


class FakeVk:
    """Issues codes for whichever VK profile the test picks; checks PKCE and the client secret."""

    def __init__(self) -> None:
        self.profile: dict[str, Any] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, dict[str, Any]] = {}

    def authorize(self, authorization_url: str) -> tuple[str, str]:
        """What VK's consent page does: returns (code, state) for the redirect."""
        query = parse_qs(urlparse(authorization_url).query)
        assert query["client_id"] == ["vk-app"] and query["redirect_uri"] == [REDIRECT]
        assert query["code_challenge_method"] == ["S256"]
        code = secrets.token_hex(8)
        self.codes[code] = {"profile": dict(self.profile), "challenge": query["code_challenge"][0]}
        return code, query["state"][0]

    async def token(self, request: Request) -> JSONResponse:
        import base64
        import hashlib

        form = {key: values[0] for key, values in parse_qs((await request.body()).decode()).items()}
        grant = self.codes.pop(str(form["code"]), None)
        auth = request.headers.get("authorization", "")
        secret_ok = form.get("client_secret") == "vk-secret" or auth.startswith("Basic ")
        verifier = str(form.get("code_verifier", ""))
        expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        if grant is None or not secret_ok or expected != grant["challenge"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        access = secrets.token_hex(8)
        self.tokens[access] = grant["profile"]
        return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": 3600})

    async def user_info(self, request: Request) -> JSONResponse:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        profile = self.tokens.get(token)
        if profile is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse({"user": profile})


@pytest.fixture
async def vk() -> AsyncIterator[tuple[FakeVk, str]]:
    fake = FakeVk()
    app = Starlette(
        routes=[
            Route("/oauth2/auth", fake.token, methods=["POST"]),
            Route("/oauth2/user_info", fake.user_info, methods=["GET", "POST"]),
        ]
    )
    async with running_server(app) as url:
        yield fake, url


@pytest.fixture
def settings(settings: Settings, vk: tuple[FakeVk, str]) -> Settings:
    _, url = vk
    return settings.model_copy(
        update={
            "vk_client_id": "vk-app",
            "vk_client_secret": "vk-secret",
            "vk_authorize_url": f"{url}/authorize",
            "vk_token_url": f"{url}/oauth2/auth",
            "vk_userinfo_url": f"{url}/oauth2/user_info",
        }
    )


START = f"""mutation {{ startVkLogin(input: {{redirectUri: "{REDIRECT}"}}) {{
  authorizationUrl state {ERR} }} }}"""
COMPLETE = f"""mutation($input: CompleteVkLoginInput!) {{ completeVkLogin(input: $input) {{
  tokens {{ accessToken }} user {{ phone lastName firstName }} {ERR} }} }}"""


async def vk_login(api: Any, fake: FakeVk, consent: bool = True) -> dict[str, Any]:
    started = (await api.data(START))["startVkLogin"]
    code, state = fake.authorize(started["authorizationUrl"])
    variables = {"code": code, "state": state, "redirectUri": REDIRECT, "consent": consent}
    return (await api.data(COMPLETE, input=variables))["completeVkLogin"]


async def test_A5_vk_registration_then_login(api, vk):
    fake, _ = vk
    fake.profile = {
        "user_id": "1001",
        "first_name": "Мария",
        "last_name": "Кузнецова",
        "phone": "79205550101",
    }
    without_consent = await vk_login(api, fake, consent=False)
    assert without_consent["userErrors"][0]["code"] == "CONSENT_REQUIRED"
    created = await vk_login(api, fake)
    assert created["userErrors"] == []
    assert created["user"] == {"phone": "+79205550101", "lastName": "Кузнецова", "firstName": "Мария"}
    again = await vk_login(api, fake, consent=False)  # known VK identity: plain login
    assert again["userErrors"] == [] and again["user"]["phone"] == "+79205550101"


async def test_A5_vk_account_without_phone_is_refused(api, vk):
    fake, _ = vk
    fake.profile = {"user_id": "1002", "first_name": "Без", "last_name": "Телефона"}
    result = await vk_login(api, fake)
    assert result["tokens"] is None
    assert result["userErrors"][0]["code"] == "VK_PHONE_MISSING"


async def test_A5_forged_state_is_refused(api, vk):
    fake, _ = vk
    fake.profile = {"user_id": "1003", "phone": "79205550103"}
    started = (await api.data(START))["startVkLogin"]
    code, state = fake.authorize(started["authorizationUrl"])
    variables = {"code": code, "state": state[:-2] + "00", "redirectUri": REDIRECT, "consent": True}
    result = (await api.data(COMPLETE, input=variables))["completeVkLogin"]
    assert result["userErrors"][0]["code"] == "VK_STATE_INVALID"


async def test_J8_connect_list_and_unlink_vk(api, vk):
    fake, _ = vk
    token = (await password_login(api))["tokens"]["accessToken"]
    fake.profile = {"user_id": "2001", "first_name": "Иван", "last_name": "Иванов"}
    started = (await api.data(START))["startVkLogin"]
    code, state = fake.authorize(started["authorizationUrl"])
    connected = await api.data(
        f"""mutation($input: ConnectVkInput!) {{ connectVk(input: $input) {{ user {{ phone }} {ERR} }} }}""",
        token=token,
        input={"code": code, "state": state, "redirectUri": REDIRECT},
    )
    assert connected["connectVk"] == {"user": {"phone": DEMO_PHONE_E164}, "userErrors": []}
    listed = (await api.data("{ loginServices { id provider displayName } }", token=token))["loginServices"]
    assert [(s["provider"], s["displayName"]) for s in listed] == [("VK", "Иван Иванов")]
    # now VK logs in to the same cabinet, even though this VK profile has no phone
    login = await vk_login(api, fake, consent=False)
    assert login["userErrors"] == [] and login["user"]["phone"] == DEMO_PHONE_E164
    unlinked = await api.data(
        f'mutation {{ unlinkLoginService(input: {{loginServiceId: "{listed[0]["id"]}"}}) {{ ok {ERR} }} }}',
        token=token,
    )
    assert unlinked["unlinkLoginService"]["ok"] is True
    assert (await api.data("{ loginServices { id } }", token=token))["loginServices"] == []
