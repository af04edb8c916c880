"""Security review (issue 15), HTTP-level findings, against an app in production configuration:
4 — anonymous introspection; 12 — security headers."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from tests.client import Api
from tests.conftest import login_as, production

INTROSPECTION = "{ __schema { types { name } } }"


@pytest.fixture
def prod_settings(settings: Settings) -> Settings:
    """Production settings of this test's database (with HSTS, as behind a TLS proxy)."""
    return production(settings, hsts_max_age=31536000)


@pytest.fixture
async def prod_api(prod_settings: Settings) -> AsyncIterator[Api]:
    """A client of the app in production configuration, over HTTP through the ASGI app."""
    application = create_app(prod_settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("203.0.113.10", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="https://kabinet.test") as client:
            yield Api(client)


async def test_SEC4_production_refuses_anonymous_introspection_even_when_validated_before(
    prod_api: Api, db: Any, prod_settings: Settings
) -> None:
    # a staff member's introspection is validated (and cached) first: the anonymous one must not reuse it
    admin = await login_as(db, prod_settings, "+75555555555")
    staff = await prod_api.gql(INTROSPECTION, token=admin)
    assert "errors" not in staff and staff["data"]["__schema"]["types"]
    for _ in range(2):  # and the anonymous refusal is not a one-off either
        anonymous = await prod_api.gql(INTROSPECTION)
        assert anonymous.get("data") is None
        assert "introspection" in anonymous["errors"][0]["message"].lower()
    customer = await login_as(db, prod_settings, "+71111111111")
    assert (await prod_api.gql('{ __type(name: "Account") { name } }', token=customer)).get("data") is None


async def test_SEC12_every_answer_carries_the_security_headers(
    prod_api: Api, db: Any, prod_settings: Settings
) -> None:
    customer_token = await login_as(db, prod_settings, "+71111111111")
    answers = [
        await prod_api.post("{ __typename }"),
        await prod_api.post("{ me { phone } }", token=customer_token),
        await prod_api.client.get("/healthz"),
        await prod_api.client.get("/downloads/forged.token"),
    ]
    for response in answers:
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff", response.url
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["strict-transport-security"].startswith("max-age=31536000")
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["cache-control"] == "no-store"
    assert answers[1].json()["data"]["me"]["phone"] == "+71111111111"


async def test_SEC12_html_pages_allow_only_their_own_scripts(api: Api) -> None:
    """GraphiQL (development) has one inline script: the CSP allows exactly it, by hash; no HSTS on HTTP."""
    page = await api.client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    inline = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
    assert inline
    for script in inline:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert "strict-transport-security" not in page.headers
    static = await api.client.get(re.findall(r'src="([^"]+\.js)"', page.text)[0])
    assert static.status_code == 200 and "no-store" not in static.headers.get("cache-control", "")
    assert static.headers["x-content-type-options"] == "nosniff"
