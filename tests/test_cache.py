"""K1: customers' query results are cached per user and never served stale (app/cache.py)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.db import Database
from app.demo import DEMO_PHONE_E164
from app.settings import Settings
from models.accounts import Account
from models.identity import User
from models.notifications import NotificationCategory
from services.clock import CLOCK
from services.notifications import notify
from tests.conftest import login_as
from tests.dates import SKOPIN_OPEN
from tests.test_notifications import _free_port, _kabinet_process
from tests.test_readings import above_previous

DASHBOARD = """query Dashboard {
  accounts(first: 20) { edges { node {
    id number displayName
    balance { amount status label suppliers { amount supplier { name } } }
    readingWindow { isOpen daysUntilOpens daysUntilCloses }
    meters { serial lastReadings { zone value } }
    charges { period total }
  } } }
  unreadNotificationCount
}"""
RENAME = """mutation($id: ID!, $name: String) { renameAccount(input: {accountId: $id, name: $name}) {
  account { displayName } userErrors { code } } }"""
FORM = (
    """query($id: ID!) { readingsForm(accountId: $id) { meters { meter { id } zones { zone previous } } } }"""
)
SUBMIT = (
    """mutation($input: SubmitReadingsInput!) { submitReadings(input: $input) { userErrors { code } } }"""
)


def _gid(type_name: str, pk: int) -> str:
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


def _node(data: dict[str, Any], number: str) -> dict[str, Any]:
    return next(e["node"] for e in data["accounts"]["edges"] if e["node"]["number"] == number)


async def test_K1_a_repeated_dashboard_is_served_from_cache_without_sql(
    api: Any, customer_token: str, sql_counter: Any
) -> None:
    with sql_counter() as first:
        cold = await api.data(DASHBOARD, token=customer_token)
    with sql_counter() as second:
        warm = await api.data(DASHBOARD, token=customer_token)
    assert first.statements > 0
    assert second.statements == 0
    assert warm == cold


async def test_K1_a_customers_own_write_is_visible_at_once(
    api: Any, db: Database, customer_token: str
) -> None:
    async with db.session() as session:
        account = (await session.execute(select(Account.id).where(Account.number == "11111111"))).scalar_one()
    before = _node(await api.data(DASHBOARD, token=customer_token), "11111111")
    renamed = await api.data(RENAME, token=customer_token, id=_gid("Account", account), name="Кэш проверен")
    assert renamed["renameAccount"]["userErrors"] == []
    after = _node(await api.data(DASHBOARD, token=customer_token), "11111111")
    assert (before["displayName"], after["displayName"]) == ("Квартира", "Кэш проверен")


async def test_K1_writes_by_others_make_the_cache_stale(api: Any, db: Database, customer_token: str) -> None:
    count = (await api.data(DASHBOARD, token=customer_token))["unreadNotificationCount"]
    async with db.session() as session:  # a producer in another place: a job, a webhook, an operator
        user_id = (await session.execute(select(User.id).where(User.phone == DEMO_PHONE_E164))).scalar_one()
        await notify(session, user_id=user_id, category=NotificationCategory.BILLING, title="Т", body="Т")
        await session.commit()
    assert (await api.data(DASHBOARD, token=customer_token))["unreadNotificationCount"] == count + 1


@pytest.mark.calendar
async def test_K1_cache_is_never_stale_across_two_processes(
    settings: Settings, db: Database, app: Any
) -> None:
    CLOCK.pin(SKOPIN_OPEN)  # readings are taken in the window
    customer_token = await login_as(db, settings, DEMO_PHONE_E164)
    async with db.session() as session:
        account = (await session.execute(select(Account.id).where(Account.number == "11111111"))).scalar_one()
    account_id = _gid("Account", account)
    headers = {"authorization": f"Bearer {customer_token}"}
    with (
        _kabinet_process(settings, _free_port(), now=SKOPIN_OPEN) as writer,
        _kabinet_process(settings, _free_port(), now=SKOPIN_OPEN) as reader,
    ):
        async with (
            httpx.AsyncClient(base_url=writer, headers=headers) as a,
            httpx.AsyncClient(base_url=reader, headers=headers) as b,
        ):

            async def read() -> dict[str, Any]:
                body = (await b.post("/graphql", json={"query": DASHBOARD})).json()
                assert "errors" not in body, body
                return body["data"]  # type: ignore[no-any-return]

            async def write(query: str, **variables: Any) -> dict[str, Any]:
                body = (await a.post("/graphql", json={"query": query, "variables": variables})).json()
                assert "errors" not in body, body
                return body["data"]  # type: ignore[no-any-return]

            first = await read()
            assert await read() == first  # warm
            # 1. rename through the other process
            await write(RENAME, id=account_id, name="Через другой процесс")
            assert _node(await read(), "11111111")["displayName"] == "Через другой процесс"
            # 2. readings through the other process change the meters' last readings
            form = (await write(FORM, id=account_id))["readingsForm"]
            meters = above_previous(form, 5)
            before = _node(await read(), "11111111")["meters"]
            assert (await write(SUBMIT, input={"accountId": account_id, "meters": meters}))["submitReadings"][
                "userErrors"
            ] == []
            after = _node(await read(), "11111111")["meters"]
            assert after != before
            # 3. the notification of that submission shows in the badge at once
            unread = (await read())["unreadNotificationCount"]
            await write("mutation { markAllNotificationsRead { changed } }")
            assert unread > 0 and (await read())["unreadNotificationCount"] == 0
    await asyncio.sleep(0)
