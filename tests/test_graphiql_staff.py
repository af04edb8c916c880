"""K3 / issue 17, part 6: GraphiQL for analysts in production.

The app runs in production configuration (``tests.conftest.production``): the GraphiQL page is served but
runs nothing before a staff login; the API still refuses introspection to anonymous callers and customers;
every operation an analyst sends is audited (who, when, operation name, hash and text of the document,
variables without personal data). The browser test drives a real headless chromium against a real uvicorn.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from app.db import Database
from app.settings import Settings
from models.audit import AuditLogEntry
from models.identity import User
from services.passwords import hash_password
from services.query_audit import ACTION, REDACTED
from tests.client import Api
from tests.conftest import login_as, production, running_server

ANALYST_PHONE = "+73333333333"
ANALYST_EMAIL = "analyst@resk.demo"
ANALYST_PASSWORD = "Analyst#Browser-2026"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
SCREENSHOT_DIR = Path(os.environ.get("KABINET_SCREENSHOT_DIR", "var/screenshots"))


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return production(settings)


@pytest.fixture
async def analyst(db: Database, settings: Settings) -> str:
    return await login_as(db, settings, ANALYST_PHONE)


def page_config(html: str) -> dict[str, Any]:
    found = re.search(
        r'<script type="application/json" id="kabinet-graphiql-config">(.*?)</script>', html, re.S
    )
    assert found, "the page carries no config"
    return json.loads(found.group(1))  # type: ignore[no-any-return]


async def audit_rows(db: Database) -> list[AuditLogEntry]:
    async with db.session() as session:
        rows = await session.execute(
            select(AuditLogEntry).where(AuditLogEntry.action == ACTION).order_by(AuditLogEntry.id)
        )
        return list(rows.scalars())


async def test_K3_production_serves_graphiql_behind_a_staff_login(api: Api) -> None:
    page = await api.client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    config = page_config(page.text)
    assert config["staffLogin"] is True
    names = [example["name"] for example in config["examples"]]
    assert "01-branches.graphql" in names and "02-queues.graphql" in names
    # the token lives in sessionStorage and travels as a header, never in a cookie
    assert "sessionStorage" in page.text and "document.cookie" not in page.text
    assert "set-cookie" not in page.headers
    assert (
        "shouldPersistHeaders: !config.staffLogin" in page.text
        and "isHeadersEditorEnabled: !config.staffLogin" in page.text
    )


async def test_K3_production_refuses_introspection_to_anonymous_and_customers(
    api: Api, customer_token: str, analyst: str
) -> None:
    introspect = "{ __schema { queryType { name } } }"
    for token in (None, customer_token):
        body = await api.gql(introspect, token=token)
        assert body.get("errors") and not body.get("data"), body
    assert (await api.data(introspect, token=analyst))["__schema"]["queryType"]["name"] == "Query"


async def test_K3_every_analyst_query_is_audited(
    api: Api, db: Database, analyst: str, customer_token: str
) -> None:
    document = (
        "query Queue($hours: Int, $who: String) { appealQueue(olderThanHours: $hours) { totalCount } "
        "faqEntries(search: $who) { id } }"
    )
    variables = {"hours": 48, "who": "Иванов Иван +79161234567"}
    response = await api.post(document, variables, token=analyst)
    assert response.status_code == 200 and not response.json().get("errors"), response.text
    await api.post("{ me { role } }", token=customer_token)  # customers' operations are not audited here
    await api.post("{ me { fullName } }", token=analyst)  # refused (FORBIDDEN), still audited
    rows = await audit_rows(db)
    assert len(rows) == 2, [row.changes for row in rows]
    first = rows[0]
    async with db.session() as session:
        analyst_id = (await session.execute(select(User.id).where(User.phone == ANALYST_PHONE))).scalar_one()
    assert first.actor_user_id == analyst_id and first.created_at is not None
    assert first.changes is not None
    assert first.changes["operationName"] is None  # not sent by this client: the document names it
    assert first.changes["document"] == document
    assert first.changes["sha256"] == hashlib.sha256(document.encode()).hexdigest()
    assert first.changes["variables"] == {"hours": 48, "who": REDACTED}
    assert "Иванов" not in json.dumps(first.changes["variables"], ensure_ascii=False)
    assert rows[1].changes is not None and rows[1].changes["document"] == "{ me { fullName } }"


@pytest.mark.browser
async def test_K3_analyst_logs_in_to_graphiql_in_production_and_runs_an_example(
    app: Any, db: Database, tmp_path: Path
) -> None:
    if CHROMIUM is None:
        pytest.skip("no chromium binary (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; no browser download needed)")
    async with db.session() as session:
        await session.execute(
            update(User)
            .where(User.phone == ANALYST_PHONE)
            .values(password_hash=hash_password(ANALYST_PASSWORD))
        )
        await session.commit()
    async with running_server(app) as url, async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            await page.goto(f"{url}/graphql")
            # before the login there is no GraphiQL, only the form
            await page.wait_for_selector("#kabinet-login")
            assert await page.locator(".graphiql-execute-button").count() == 0
            await page.fill("#kabinet-login-name", ANALYST_EMAIL)
            await page.fill("#kabinet-login-password", ANALYST_PASSWORD)
            await page.click("#kabinet-login-submit")
            await page.wait_for_selector(".graphiql-execute-button", timeout=20_000)
            assert await page.evaluate("document.cookie") == ""
            assert await page.evaluate("sessionStorage.getItem('kabinet.graphiql.accessToken')")
            await page.click(".graphiql-execute-button")
            result = page.locator(".result-window")
            await result.get_by_text('"branches"').first.wait_for(timeout=20_000)
            text = await result.inner_text()
            assert '"timeZone"' in text and '"errors"' not in text
            await asyncio.to_thread(SCREENSHOT_DIR.mkdir, parents=True, exist_ok=True)
            shot = SCREENSHOT_DIR / "graphiql-analyst.png"
            await page.screenshot(path=str(shot))
            print(f"screenshot: {shot.resolve()}")
        finally:
            await browser.close()
    rows = await audit_rows(db)
    assert any(row.changes and "BranchesAndReadingWindows" in row.changes["document"] for row in rows)


async def test_K3_analyst_operations_over_websockets_are_audited(
    live_server: str, db: Database, analyst: str
) -> None:
    from tests.client import graphql_ws

    document = "query WsBranches { branches { code } }"
    async with graphql_ws(live_server, init={"token": analyst}) as ws:
        op = await ws.subscribe(document)
        answers = [event async for event in ws.events(op)]
    assert answers and answers[0]["data"]["branches"]
    rows = await audit_rows(db)
    assert [row.changes["document"] for row in rows if row.changes] == [document]


async def test_K3_persisted_only_still_lets_the_graphiql_login_through(
    app: Any, db: Database, settings: Settings
) -> None:
    """With KABINET_PERSISTED_DOCUMENTS_ONLY the page's login document is the one free-form document an
    anonymous caller may send (any other is refused): staff can still log in to GraphiQL."""
    import httpx

    from app.graphiql import STAFF_LOGIN_DOCUMENT
    from app.main import create_app

    strict = create_app(settings.model_copy(update={"persisted_documents_only": True}))
    async with db.session() as session:
        await session.execute(
            update(User)
            .where(User.phone == ANALYST_PHONE)
            .values(password_hash=hash_password(ANALYST_PASSWORD))
        )
        await session.commit()
    async with strict.router.lifespan_context(strict):
        transport = httpx.ASGITransport(app=strict, client=("203.0.113.10", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://kabinet.test") as client:
            api = Api(client)
            login = await api.gql(
                STAFF_LOGIN_DOCUMENT, input={"login": ANALYST_EMAIL, "password": ANALYST_PASSWORD}
            )
            other = await api.gql("{ branches { code } }")
    assert login["data"]["loginWithPassword"]["user"] == {"role": "ANALYST"}, login
    assert login["data"]["loginWithPassword"]["tokens"]["accessToken"]
    assert other["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED", other
