"""A5 VK login / registration and J8 against a tiny local OAuth 2 server (real HTTP, authlib client)."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.demo import DEMO_PHONE_E164, SECOND_CUSTOMER
from app.settings import Settings
from tests.conftest import production, running_server
from tests.test_identity import ERR, password_login

REDIRECT = "https://lk.example.ru/vk/callback"


class FakeVk:
    """Issues codes for whichever VK profile the test picks; checks PKCE and the client secret."""

    def __init__(self) -> None:
        self.profile: dict[str, Any] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.nonce_override: str | None = None  # answer with an ID token for another nonce

    def authorize(self, authorization_url: str) -> tuple[str, str]:
        """What VK's consent page does: returns (code, state) for the redirect.

        Like VK, it gives a code to whoever opens the URL: opening it twice gives two codes for one state."""
        query = parse_qs(urlparse(authorization_url).query)
        assert query["client_id"] == ["vk-app"] and query["redirect_uri"] == [REDIRECT]
        assert query["code_challenge_method"] == ["S256"]
        code = secrets.token_hex(8)
        self.codes[code] = {
            "profile": dict(self.profile),
            "challenge": query["code_challenge"][0],
            "nonce": query.get("nonce", [""])[0],
        }
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
        claims = {
            "sub": str(grant["profile"].get("user_id", "")),
            "nonce": self.nonce_override or grant["nonce"],
        }
        id_token = (
            ".".join(
                base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
                for part in ({"alg": "none"}, claims)
            )
            + ".sig"
        )
        return JSONResponse(
            {"access_token": access, "token_type": "Bearer", "expires_in": 3600, "id_token": id_token}
        )

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
    """VK against the fake server, in production configuration (the SEC3 findings are production's)."""
    _, url = vk
    return production(
        settings,
        **{
            "vk_client_id": "vk-app",
            "vk_client_secret": "vk-secret",
            "vk_authorize_url": f"{url}/authorize",
            "vk_token_url": f"{url}/oauth2/auth",
            "vk_userinfo_url": f"{url}/oauth2/user_info",
        },
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
    started = (await api.data(START, token=token))["startVkLogin"]  # started by the cabinet it connects to
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


# --- SEC3 (issue 15, finding 3): the VK flow is bound to whoever started it and used once ------------------

LINK_REQUIRES_PROOF = (
    "Номер телефона из профиля VK уже зарегистрирован в личном кабинете. Войдите по номеру телефона "
    "с паролем или кодом из SMS и подключите VK в профиле (раздел «Сервисы авторизации»)."
)
CONNECT = f"""mutation($input: ConnectVkInput!) {{ connectVk(input: $input) {{ user {{ phone }} {ERR} }} }}"""


async def connect_vk(api: Any, token: str, code: str, state: str) -> dict[str, Any]:
    variables = {"code": code, "state": state, "redirectUri": REDIRECT}
    return (await api.data(CONNECT, token=token, input=variables))["connectVk"]


async def vk_identities(db: Any, subject: str) -> list[int]:
    async with db.session() as session:
        rows = await session.execute(
            text("SELECT user_id FROM external_identities WHERE provider = 'VK' AND subject = :s"),
            {"s": subject},
        )
        return list(rows.scalars())


async def test_SEC3_a_used_vk_state_is_refused_on_replay(api, vk):
    fake, _ = vk
    fake.profile = {
        "user_id": "3001",
        "first_name": "Мария",
        "last_name": "Кузнецова",
        "phone": "79205553001",
    }
    started = (await api.data(START))["startVkLogin"]
    code, state = fake.authorize(started["authorizationUrl"])
    first = await api.data(
        COMPLETE, input={"code": code, "state": state, "redirectUri": REDIRECT, "consent": True}
    )
    assert first["completeVkLogin"]["userErrors"] == []
    # a second code for the same authorization URL (VK hands one to whoever opens it), same state
    code2, state2 = fake.authorize(started["authorizationUrl"])
    assert state2 == state
    again = await api.data(
        COMPLETE, input={"code": code2, "state": state, "redirectUri": REDIRECT, "consent": True}
    )
    assert again["completeVkLogin"]["tokens"] is None
    assert again["completeVkLogin"]["userErrors"][0]["code"] == "VK_STATE_INVALID"


async def test_SEC3_a_refused_state_is_spent_too(api, vk):
    fake, _ = vk
    fake.profile = {"user_id": "3002", "phone": "79205553002"}
    started = (await api.data(START))["startVkLogin"]
    code, state = fake.authorize(started["authorizationUrl"])
    refused = await api.data(COMPLETE, input={"code": code, "state": state, "redirectUri": REDIRECT})
    assert refused["completeVkLogin"]["userErrors"][0]["code"] == "CONSENT_REQUIRED"
    code2, _ = fake.authorize(started["authorizationUrl"])
    again = await api.data(
        COMPLETE, input={"code": code2, "state": state, "redirectUri": REDIRECT, "consent": True}
    )
    assert again["completeVkLogin"]["userErrors"][0]["code"] == "VK_STATE_INVALID"


async def test_SEC3_connect_vk_refuses_a_state_started_by_someone_else(api, db, vk):
    fake, _ = vk
    victim = (await password_login(api))["tokens"]["accessToken"]
    attacker = (await password_login(api, SECOND_CUSTOMER[0], SECOND_CUSTOMER[3]))["tokens"]["accessToken"]
    fake.profile = {"user_id": "6661", "first_name": "Чужой", "last_name": "Профиль"}
    for starter in (None, attacker):  # started anonymously, or by another logged-in user
        started = (await api.data(START, token=starter))["startVkLogin"]
        assert started["userErrors"] == []
        code, state = fake.authorize(started["authorizationUrl"])  # the attacker approves with his VK
        result = await connect_vk(api, victim, code, state)  # the victim's front end calls connectVk
        assert result["user"] is None
        assert result["userErrors"][0]["code"] == "VK_STATE_INVALID"
    assert await vk_identities(db, "6661") == []
    login = await vk_login(api, fake, consent=True)  # the attacker's VK does not open the victim's cabinet
    assert login["tokens"] is None and login["userErrors"][0]["code"] == "VK_PHONE_MISSING"


async def test_SEC3_complete_vk_login_refuses_a_state_started_to_connect(api, db, vk):
    fake, _ = vk
    token = (await password_login(api))["tokens"]["accessToken"]
    fake.profile = {"user_id": "3003", "phone": "79205553003"}
    started = (await api.data(START, token=token))["startVkLogin"]
    code, state = fake.authorize(started["authorizationUrl"])
    result = await api.data(
        COMPLETE, input={"code": code, "state": state, "redirectUri": REDIRECT, "consent": True}
    )
    assert result["completeVkLogin"]["tokens"] is None
    assert result["completeVkLogin"]["userErrors"][0]["code"] == "VK_STATE_INVALID"
    assert await vk_identities(db, "3003") == []


async def test_SEC3_another_redirect_uri_or_nonce_is_refused(api, vk):
    fake, _ = vk
    fake.profile = {"user_id": "3004", "phone": "79205553004"}
    started = (await api.data(START))["startVkLogin"]
    query = parse_qs(urlparse(started["authorizationUrl"]).query)
    assert len(query["nonce"][0]) >= 16 and query["nonce"] != query["state"]
    code, state = fake.authorize(started["authorizationUrl"])
    other = {"code": code, "state": state, "redirectUri": "https://evil.example/vk", "consent": True}
    result = await api.data(COMPLETE, input=other)
    assert result["completeVkLogin"]["userErrors"][0]["code"] == "VK_STATE_INVALID"
    fake.nonce_override = "not-the-nonce-we-sent"
    answer = await vk_login(api, fake)
    assert answer["tokens"] is None and answer["userErrors"][0]["code"] == "VK_STATE_INVALID"


async def test_SEC3_vk_phone_of_an_existing_cabinet_does_not_log_in(api, db, vk):
    fake, _ = vk
    fake.profile = {"user_id": "6662", "first_name": "Иван", "last_name": "Иванов", "phone": "71111111111"}
    result = await vk_login(api, fake)
    assert result["tokens"] is None and result["user"] is None
    assert result["userErrors"] == [
        {"code": "LOGIN_SERVICE_LINK_REQUIRES_PROOF", "message": LINK_REQUIRES_PROOF, "field": None}
    ]
    assert await vk_identities(db, "6662") == []
    # the owner logs in with the password and connects VK in the profile; then VK logs in
    token = (await password_login(api))["tokens"]["accessToken"]
    started = (await api.data(START, token=token))["startVkLogin"]
    code, state = fake.authorize(started["authorizationUrl"])
    assert (await connect_vk(api, token, code, state))["userErrors"] == []
    login = await vk_login(api, fake)
    assert login["userErrors"] == [] and login["user"]["phone"] == DEMO_PHONE_E164
