"""Payments through GraphQL, the sandbox acquirer's pages and signed webhooks (D5, H1, J7, K2)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from strawberry import relay

from app.db import Database
from app.demo import SECOND_CUSTOMER
from app.settings import Settings
from models.notifications import Notification
from models.outbox import OutboxMessage
from models.payments import Payment, PaymentStatus, PaymentStatusChange, WebhookEvent
from services import billing, gateways
from services.clock import CLOCK
from tests.client import Api, graphql_ws
from tests.conftest import login_as
from tests.dates import TODAY

FORM = """query($ids: [ID!]) { paymentForm(accountIds: $ids) {
  payAllAvailable minAmount maxAccounts maxTotal
  accounts { account { id number } lines { supplier { id name } balance due suggestedAmount } } } }"""

PAYMENT_FIELDS = """id status amount method confirmationUrl sbpPayload sbpQrImageUrl failureReason
  receiptEmail allocations { amount period account { number } supplier { id } }
  statusHistory { status changedAt reason }"""

ERRORS = "userErrors { code message field ... on AmountTooSmallError { minimum } }"

CREATE = f"""mutation($input: CreatePaymentInput!) {{ createPayment(input: $input) {{
  payment {{ {PAYMENT_FIELDS} }} {ERRORS} }} }}"""

CREATE_ALL = f"""mutation($input: CreatePaymentForAllAccountsInput!) {{
  createPaymentForAllAccounts(input: $input) {{ payment {{ {PAYMENT_FIELDS} }} {ERRORS} }} }}"""

BALANCE = """query($id: ID!) { node(id: $id) { ... on Account { number balance { amount } } } }"""

STATUS = """subscription($id: ID!) { paymentStatus(paymentId: $id) {
  status changedAt reason payment { id status amount } } }"""


async def form(api: Api, token: str, ids: list[str] | None = None) -> dict[str, Any]:
    """The payment form of ``ids`` (every linked account when None)."""
    return (await api.data(FORM, token=token, ids=ids))["paymentForm"]  # type: ignore[no-any-return]


async def account_form(api: Api, token: str, number: str) -> dict[str, Any]:
    """One account's part of the form."""
    found = await form(api, token)
    return next(item for item in found["accounts"] if item["account"]["number"] == number)


async def balance(api: Api, token: str, account_id: str) -> Decimal:
    """B4 balance of an account."""
    node = (await api.data(BALANCE, token=token, id=account_id))["node"]
    return Decimal(node["balance"]["amount"])


def card_input(account: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A CARD payment of everything due on ``account`` (debt lines only)."""
    lines = [
        {"supplierId": line["supplier"]["id"], "amount": line["suggestedAmount"]}
        for line in account["lines"]
        if Decimal(line["due"]) > 0
    ]
    return {
        "accountId": account["account"]["id"],
        "lines": lines,
        "method": "CARD",
        "acceptRules": True,
        "idempotencyKey": str(uuid.uuid4()),
        **overrides,
    }


async def create(api: Api, token: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run createPayment; returns its payload."""
    return (await api.data(CREATE, token=token, input=payload))["createPayment"]  # type: ignore[no-any-return]


async def post_webhook(
    api: Api,
    settings: Settings,
    gateway_payment_id: str,
    status: str,
    *,
    event_id: str | None = None,
    sent_at: dt.datetime | None = None,
    secret: str | None = None,
) -> httpx.Response:
    """POST a sandbox webhook signed as the acquirer signs it."""
    body = json.dumps(
        {
            "id": event_id or f"evt_{uuid.uuid4().hex}",
            "type": f"payment.{status.lower()}",
            "payment": {"id": gateway_payment_id, "status": status},
        }
    ).encode()
    headers = gateways.signed_headers(secret or settings.secret_key, body, sent_at or CLOCK.now())
    return await api.client.post("/webhooks/sandbox", content=body, headers=headers)


def pk_of(global_id: str) -> int:
    """The database id in a global ID."""
    from strawberry import relay

    return int(relay.GlobalID.from_id(global_id).node_id)


async def gateway_id(db: Database, payment_gid: str) -> str:
    """The sandbox's id of a payment given its global ID."""
    from strawberry import relay

    pk = int(relay.GlobalID.from_id(payment_gid).node_id)
    async with db.session() as session:
        return (
            await session.execute(select(Payment.gateway_payment_id).where(Payment.id == pk))
        ).scalar_one()


async def count(db: Database, model: Any, *where: Any) -> int:
    """Rows of ``model`` matching ``where``."""
    async with db.session() as session:
        return (await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def next_status(ws: Any, op: str) -> dict[str, Any]:
    """The next pushed payment status."""
    while True:
        message = await ws.receive(10.0)
        if message.get("id") != op:
            continue
        if message["type"] != "next":
            raise AssertionError(message)
        if message["payload"].get("errors"):
            raise AssertionError(message["payload"]["errors"])
        return message["payload"]["data"]["paymentStatus"]  # type: ignore[no-any-return]


# --- the whole flow -----------------------------------------------------------------------------------------


@pytest.mark.calendar
async def test_D5_card_flow_end_to_end_page_webhook_websocket_balance(
    api: Api, db: Database, settings: Settings, customer_token: str, live_server: str
) -> None:
    # the sandbox acquirer delivers its signed webhook over real HTTP to the running server
    settings.sandbox_webhook_url = f"{live_server}/webhooks/sandbox"
    account = await account_form(api, customer_token, "11111111")
    before = await balance(api, customer_token, account["account"]["id"])
    assert before > 0 and any(Decimal(line["due"]) > 0 for line in account["lines"])
    created = await create(api, customer_token, card_input(account, receiptEmail="Ivanov@BK.ru"))
    assert created["userErrors"] == []
    payment = created["payment"]
    assert payment["status"] == "PENDING" and payment["method"] == "CARD"
    assert Decimal(payment["amount"]) == before
    assert {a["account"]["number"] for a in payment["allocations"]} == {"11111111"}
    assert payment["confirmationUrl"].startswith("http://127.0.0.1:8000/sandbox/pay/sbx_")
    page_path = "/" + payment["confirmationUrl"].split("/", 3)[3]
    account_pk, payment_pk = pk_of(account["account"]["id"]), pk_of(payment["id"])

    async with graphql_ws(live_server, init={"token": customer_token}) as ws:
        op = await ws.subscribe(STATUS, {"id": payment["id"]})
        first = await next_status(ws, op)
        assert first["status"] == "PENDING"
        # a person opens the card page and pays
        page = await api.client.get(page_path)
        assert page.status_code == 200 and "Оплатить" in page.text and "К оплате" in page.text
        done = await api.client.post(page_path, data={"outcome": "pay", "card": "2200000000004242"})
        assert done.status_code == 200 and "Оплата прошла успешно" in done.text
        pushed = await next_status(ws, op)
        assert pushed["status"] == "SUCCEEDED" and pushed["payment"]["status"] == "SUCCEEDED"
        assert (await ws.receive(5.0))["type"] == "complete"

    assert await balance(api, customer_token, account["account"]["id"]) == before - Decimal(payment["amount"])
    # the payment history (D4) reads the same SUCCEEDED allocations: this month's line is there at once
    month = TODAY.replace(day=1)
    async with db.session() as session:
        lines = (await billing.payments(session, [account_pk], month, month))[account_pk]
    assert sum(line.amount for line in lines if line.payment_id == payment_pk) == Decimal(payment["amount"])
    history = (
        await api.data(
            f'query {{ node(id: "{payment["id"]}") {{ ... on Payment {{ {PAYMENT_FIELDS} }} }} }}',
            token=customer_token,
        )
    )["node"]
    assert [step["status"] for step in history["statusHistory"]] == ["PENDING", "SUCCEEDED"]
    assert await count(db, Notification, Notification.title == "Оплата прошла успешно") == 1
    assert (
        await count(
            db,
            OutboxMessage,
            OutboxMessage.destination == "ivanov@bk.ru",
            OutboxMessage.subject == "Квитанция об оплате",
        )
        == 1
    )


async def test_D5_sbp_payment_qr_in_kopecks_then_signed_webhook(
    api: Api, db: Database, settings: Settings, customer_token: str
) -> None:
    account = await account_form(api, customer_token, "11111111")
    supplier = account["lines"][0]["supplier"]["id"]
    created = await create(
        api,
        customer_token,
        card_input(account, method="SBP", lines=[{"supplierId": supplier, "amount": "1234.50"}]),
    )
    payment = created["payment"]
    assert (
        payment["sbpPayload"] and "sum=123450" in payment["sbpPayload"] and "cur=RUB" in payment["sbpPayload"]
    )
    assert payment["confirmationUrl"] is None
    image = await api.client.get("/" + payment["sbpQrImageUrl"].split("/", 3)[3])
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    sbp_page = await api.client.get("/" + payment["sbpPayload"].split("/", 3)[3])
    assert sbp_page.status_code == 200 and "СБП" in sbp_page.text
    before = await balance(api, customer_token, account["account"]["id"])
    response = await post_webhook(api, settings, await gateway_id(db, payment["id"]), "SUCCEEDED")
    assert response.status_code == 200 and response.json() == {"status": "applied"}
    assert await balance(api, customer_token, account["account"]["id"]) == before - Decimal("1234.50")


async def test_D5_declined_card_payment_fails_and_changes_nothing(
    api: Api, db: Database, customer_token: str
) -> None:
    account = await account_form(api, customer_token, "11111111")
    before = await balance(api, customer_token, account["account"]["id"])
    payment = (await create(api, customer_token, card_input(account)))["payment"]
    page_path = "/" + payment["confirmationUrl"].split("/", 3)[3]
    declined = await api.client.post(page_path, data={"outcome": "decline"})
    assert "Оплата не прошла" in declined.text
    node = (
        await api.data(
            f'query {{ node(id: "{payment["id"]}") {{ ... on Payment {{ status failureReason }} }} }}',
            token=customer_token,
        )
    )["node"]
    assert node == {"status": "FAILED", "failureReason": "Платёж отклонён банком"}
    assert await balance(api, customer_token, account["account"]["id"]) == before
    assert await count(db, Notification, Notification.title == "Оплата не прошла") == 1
    # the page of a finished payment cannot pay it again
    again = await api.client.get(page_path)
    assert "уже обработан" in again.text


# --- webhooks -----------------------------------------------------------------------------------------------


async def test_D5_forged_webhook_is_rejected(
    api: Api, db: Database, settings: Settings, customer_token: str
) -> None:
    account = await account_form(api, customer_token, "11111111")
    payment = (await create(api, customer_token, card_input(account)))["payment"]
    gid = await gateway_id(db, payment["id"])
    forged = await post_webhook(api, settings, gid, "SUCCEEDED", secret="not-the-secret")
    assert forged.status_code == 401
    unsigned = await api.client.post(
        "/webhooks/sandbox", content=json.dumps({"id": "e", "payment": {"id": gid, "status": "SUCCEEDED"}})
    )
    assert unsigned.status_code == 401
    async with db.session() as session:
        assert (
            await session.execute(select(Payment.status).where(Payment.gateway_payment_id == gid))
        ).scalar_one() == (PaymentStatus.PENDING)
    assert await count(db, WebhookEvent, WebhookEvent.provider == "sandbox") == 0


async def test_D5_stale_webhook_is_rejected(
    api: Api, db: Database, settings: Settings, customer_token: str
) -> None:
    account = await account_form(api, customer_token, "11111111")
    payment = (await create(api, customer_token, card_input(account)))["payment"]
    gid = await gateway_id(db, payment["id"])
    old = CLOCK.now() - dt.timedelta(minutes=6)
    stale = await post_webhook(api, settings, gid, "SUCCEEDED", sent_at=old)
    assert stale.status_code == 401 and "stale" in stale.json()["error"]
    fresh_enough = await post_webhook(
        api, settings, gid, "SUCCEEDED", sent_at=CLOCK.now() - dt.timedelta(minutes=4)
    )
    assert fresh_enough.status_code == 200


@pytest.mark.calendar
async def test_D5_duplicate_webhook_is_applied_once(
    api: Api, db: Database, settings: Settings, customer_token: str
) -> None:
    account = await account_form(api, customer_token, "11111111")
    before = await balance(api, customer_token, account["account"]["id"])
    payment = (await create(api, customer_token, card_input(account)))["payment"]
    gid = await gateway_id(db, payment["id"])
    first = await post_webhook(api, settings, gid, "SUCCEEDED", event_id="evt-1")
    second = await post_webhook(api, settings, gid, "SUCCEEDED", event_id="evt-1")
    assert first.json() == {"status": "applied"} and second.json() == {"status": "duplicate"}
    assert (
        await count(
            db,
            PaymentStatusChange,
            PaymentStatusChange.status == PaymentStatus.SUCCEEDED,
            PaymentStatusChange.payment_id == int(relay.GlobalID.from_id(payment["id"]).node_id),
        )
        == 1
    )
    assert await count(db, Notification, Notification.title == "Оплата прошла успешно") == 1
    assert await balance(api, customer_token, account["account"]["id"]) == before - Decimal(payment["amount"])


async def test_D5_out_of_order_webhook_never_moves_a_final_status_back(
    api: Api, db: Database, settings: Settings, customer_token: str
) -> None:
    account = await account_form(api, customer_token, "11111111")
    payment = (await create(api, customer_token, card_input(account)))["payment"]
    gid = await gateway_id(db, payment["id"])
    assert (await post_webhook(api, settings, gid, "SUCCEEDED")).json() == {"status": "applied"}
    assert (await post_webhook(api, settings, gid, "FAILED")).json() == {"status": "ignored"}
    assert (await post_webhook(api, settings, gid, "PENDING")).json() == {"status": "ignored"}
    node = (
        await api.data(
            f'query {{ node(id: "{payment["id"]}") {{ ... on Payment {{ status }} }} }}', token=customer_token
        )
    )["node"]
    assert node["status"] == "SUCCEEDED"
    # a webhook about a payment nobody knows is accepted and stored (the gateway stops retrying)
    assert (await post_webhook(api, settings, "sbx_unknown", "SUCCEEDED")).json() == {"status": "unknown"}


# --- creating -----------------------------------------------------------------------------------------------


async def test_D5_idempotent_retry_returns_the_first_payment(
    api: Api, db: Database, customer_token: str
) -> None:
    account = await account_form(api, customer_token, "11111111")
    request = card_input(account, idempotencyKey="retry-key-1")
    before = await count(db, Payment)
    first = await create(api, customer_token, request)
    retried = await create(api, customer_token, request)
    assert first["userErrors"] == [] and retried["payment"]["id"] == first["payment"]["id"]
    assert retried["payment"]["confirmationUrl"] == first["payment"]["confirmationUrl"]
    assert await count(db, Payment) == before + 1
    changed = {**request, "lines": [{**request["lines"][0], "amount": "11.00"}]}
    refused = await create(api, customer_token, changed)
    assert refused["payment"] is None
    assert refused["userErrors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert refused["userErrors"][0]["field"] == ["input", "idempotencyKey"]


async def test_D5_amount_below_10_roubles_is_refused(api: Api, db: Database, customer_token: str) -> None:
    account = await account_form(api, customer_token, "11111111")
    supplier = account["lines"][0]["supplier"]["id"]
    before = await count(db, Payment)
    result = await create(
        api, customer_token, card_input(account, lines=[{"supplierId": supplier, "amount": "9.99"}])
    )
    assert result["payment"] is None
    assert result["userErrors"] == [
        {
            "code": "AMOUNT_TOO_SMALL",
            "message": "Сумма к оплате должна быть не менее 10,00 руб.",
            "field": ["input", "lines", "0", "amount"],
            "minimum": "10.00",
        }
    ]
    fraction = await create(
        api, customer_token, card_input(account, lines=[{"supplierId": supplier, "amount": "10.005"}])
    )
    assert [e["code"] for e in fraction["userErrors"]] == ["INVALID_AMOUNT"]
    ok = await create(
        api, customer_token, card_input(account, lines=[{"supplierId": supplier, "amount": "10.00"}])
    )
    assert ok["userErrors"] == [] and ok["payment"]["amount"] == "10.00"
    assert await count(db, Payment) == before + 1


async def test_D5_payment_rules_must_be_accepted(api: Api, db: Database, customer_token: str) -> None:
    account = await account_form(api, customer_token, "11111111")
    before = await count(db, Payment)
    result = await create(api, customer_token, card_input(account, acceptRules=False))
    assert result["payment"] is None
    assert [(e["code"], e["field"]) for e in result["userErrors"]] == [
        ("PAYMENT_RULES_NOT_ACCEPTED", ["input", "acceptRules"])
    ]
    assert await count(db, Payment) == before
    accepted = await create(api, customer_token, card_input(account))
    async with db.session() as session:
        from strawberry import relay

        pk = int(relay.GlobalID.from_id(accepted["payment"]["id"]).node_id)
        assert (await session.get(Payment, pk)).rules_accepted_at is not None  # type: ignore[union-attr]


async def test_D5_one_supplier_only_and_an_advance_when_nothing_is_due(api: Api, customer_token: str) -> None:
    debt = await account_form(api, customer_token, "11111111")
    assert len(debt["lines"]) >= 2
    only = debt["lines"][0]
    one = await create(
        api,
        customer_token,
        card_input(debt, lines=[{"supplierId": only["supplier"]["id"], "amount": "150.00"}]),
    )
    assert [a["supplier"]["id"] for a in one["payment"]["allocations"]] == [only["supplier"]["id"]]

    settled = await account_form(api, customer_token, "11111113")
    assert all(Decimal(line["due"]) == 0 for line in settled["lines"])
    assert all(line["suggestedAmount"] == "10.00" for line in settled["lines"])
    advance = await create(
        api,
        customer_token,
        card_input(
            settled, lines=[{"supplierId": settled["lines"][0]["supplier"]["id"], "amount": "500.00"}]
        ),
    )
    assert advance["userErrors"] == [] and advance["payment"]["amount"] == "500.00"


async def test_D5_someone_elses_account_or_supplier_is_refused(
    api: Api, customer_token: str, db: Database
) -> None:
    account = await account_form(api, customer_token, "11111111")
    from strawberry import relay

    foreign = str(relay.GlobalID("Account", "999999"))
    result = await create(api, customer_token, card_input(account, accountId=foreign))
    assert [e["code"] for e in result["userErrors"]] == ["ACCOUNT_NOT_FOUND"]
    wrong_supplier = str(relay.GlobalID("Supplier", "999999"))
    result = await create(
        api, customer_token, card_input(account, lines=[{"supplierId": wrong_supplier, "amount": "20.00"}])
    )
    assert [e["code"] for e in result["userErrors"]] == ["SUPPLIER_NOT_FOUND"]


async def test_K2_payment_status_of_someone_elses_payment_is_not_streamed(
    api: Api, db: Database, settings: Settings, customer_token: str, live_server: str
) -> None:
    account = await account_form(api, customer_token, "11111111")
    payment = (await create(api, customer_token, card_input(account)))["payment"]
    other = await login_as(db, settings, SECOND_CUSTOMER[1])
    async with graphql_ws(live_server, init={"token": other}) as ws:
        op = await ws.subscribe(STATUS, {"id": payment["id"]})
        message = await ws.receive(10.0)
        assert message["id"] == op and (message["type"] == "error" or message["payload"].get("errors")), (
            message
        )
    # and the other customer cannot read it either
    node = (await api.data(f'query {{ node(id: "{payment["id"]}") {{ id }} }}', token=other))["node"]
    assert node is None


async def test_K2_status_change_is_pushed_to_a_subscriber_waiting_on_pending(
    api: Api, db: Database, settings: Settings, customer_token: str, live_server: str
) -> None:
    account = await account_form(api, customer_token, "11111111")
    payment = (await create(api, customer_token, card_input(account, method="SBP")))["payment"]
    gid = await gateway_id(db, payment["id"])
    async with graphql_ws(live_server, init={"token": customer_token}) as ws:
        op = await ws.subscribe(STATUS, {"id": payment["id"]})
        assert (await next_status(ws, op))["status"] == "PENDING"
        await asyncio.sleep(0.1)
        assert (await post_webhook(api, settings, gid, "CANCELED")).status_code == 200
        pushed = await next_status(ws, op)
        assert pushed["status"] == "CANCELED" and pushed["changedAt"]
