"""The YooKassa adapter against a local server that speaks YooKassa's HTTP API v3.

The fake implements what the adapter uses, as documented: ``POST /v3/payments`` (basic auth
``shopId:secretKey``, ``Idempotence-Key`` header — the same key returns the same payment), ``GET
/v3/payments/{id}``, confirmation ``redirect`` → ``confirmation_url`` and ``qr`` → ``confirmation_data``,
``payment_method_id`` for saved cards. Notifications are POSTed to Kabinet's ``/webhooks/yookassa``.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.db import Database
from models.payments import Payment, PaymentStatus
from services import gateways, payments
from services.clock import CLOCK
from tests.client import Api
from tests.conftest import running_server
from tests.test_payments import account_form, balance, card_input, count, create, pk_of

SHOP, KEY = "123456", "test_secret_key"


class FakeYooKassa:
    """In-memory YooKassa: payments by id, answers by idempotence key, every request recorded."""

    def __init__(self) -> None:
        self.payments: dict[str, dict[str, Any]] = {}
        self.by_key: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []

    def _authorized(self, request: Request) -> bool:
        expected = "Basic " + base64.b64encode(f"{SHOP}:{KEY}".encode()).decode()
        return request.headers.get("authorization") == expected

    async def create(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return JSONResponse({"type": "error", "code": "invalid_credentials"}, status_code=401)
        key = request.headers.get("idempotence-key")
        if not key:
            return JSONResponse({"type": "error", "code": "invalid_request"}, status_code=400)
        body = await request.json()
        self.requests.append({"key": key, "body": body})
        if key in self.by_key:
            return JSONResponse(self.by_key[key])
        payment_id = str(uuid.uuid4())
        answer: dict[str, Any] = {
            "id": payment_id,
            "status": "pending",
            "paid": False,
            "amount": body["amount"],
            "created_at": CLOCK.now().isoformat(),
            "metadata": body.get("metadata", {}),
            "test": True,
        }
        confirmation = body.get("confirmation") or {}
        if body.get("payment_method_id"):
            answer["status"] = "succeeded"
            answer["paid"] = True
        elif confirmation.get("type") == "qr":
            answer["confirmation"] = {
                "type": "qr",
                "confirmation_data": f"https://qr.nspk.ru/AD10{payment_id[:20]}?type=02&bank=100000000111",
            }
        else:
            answer["confirmation"] = {
                "type": "redirect",
                "confirmation_url": f"https://yoomoney.ru/checkout/payments/v2/contract?orderId={payment_id}",
                "return_url": confirmation.get("return_url"),
            }
        self.payments[payment_id] = answer
        self.by_key[key] = answer
        return JSONResponse(answer)

    async def get(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return JSONResponse({"type": "error", "code": "invalid_credentials"}, status_code=401)
        found = self.payments.get(request.path_params["id"])
        if found is None:
            return JSONResponse({"type": "error", "code": "not_found"}, status_code=404)
        return JSONResponse(found)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v3/payments", self.create, methods=["POST"]),
                Route("/v3/payments/{id}", self.get, methods=["GET"]),
            ]
        )


@pytest.fixture
async def yookassa(app: Any) -> AsyncIterator[FakeYooKassa]:
    """A running fake YooKassa, made the app's gateway for new payments."""
    fake = FakeYooKassa()
    async with running_server(fake.app()) as url:
        state = app.state.kabinet
        registry = state.extras["gateways"]
        state.extras["gateways"] = gateways.Gateways(
            {**registry.by_name, "yookassa": gateways.YooKassaGateway(SHOP, KEY, api_url=f"{url}/v3")},
            default="yookassa",
        )
        yield fake
        state.extras["gateways"] = registry


def notification(payment_id: str, event: str, status: str) -> dict[str, Any]:
    """A YooKassa notification as it POSTs it."""
    return {"type": "notification", "event": event, "object": {"id": payment_id, "status": status}}


async def test_D5_yookassa_card_payment_redirect_then_notification(
    api: Api, db: Database, customer_token: str, yookassa: FakeYooKassa
) -> None:
    account = await account_form(api, customer_token, "11111111")
    before = await balance(api, customer_token, account["account"]["id"])
    created = await create(api, customer_token, card_input(account, idempotencyKey="yk-1"))
    assert created["userErrors"] == []
    payment = created["payment"]
    assert payment["confirmationUrl"].startswith("https://yoomoney.ru/checkout/payments/v2/contract?orderId=")
    sent = yookassa.requests[-1]
    assert sent["key"] == f"kabinet-{(await _user(db))}-yk-1"
    assert sent["body"]["amount"] == {"value": payment["amount"], "currency": "RUB"}
    assert sent["body"]["confirmation"]["type"] == "redirect" and sent["body"]["confirmation"]["return_url"]
    assert sent["body"]["metadata"] == {"kabinet_payment_id": str(pk_of(payment["id"]))}
    yk_id = payment["confirmationUrl"].rsplit("=", 1)[1]

    # a notification that lies (the API still says pending) changes nothing
    lie = await api.client.post(
        "/webhooks/yookassa", json=notification(yk_id, "payment.succeeded", "succeeded")
    )
    assert lie.status_code == 200 and lie.json() == {"status": "ignored"}
    assert await balance(api, customer_token, account["account"]["id"]) == before

    yookassa.payments[yk_id]["status"] = "succeeded"
    yookassa.payments[yk_id]["paid"] = True
    real = await api.client.post(
        "/webhooks/yookassa", json=notification(yk_id, "payment.succeeded", "succeeded")
    )
    assert real.json() == {"status": "applied"}
    again = await api.client.post(
        "/webhooks/yookassa", json=notification(yk_id, "payment.succeeded", "succeeded")
    )
    assert again.json() == {"status": "duplicate"}
    assert await balance(api, customer_token, account["account"]["id"]) == before - Decimal(payment["amount"])
    malformed = await api.client.post("/webhooks/yookassa", content=b"{not json")
    assert malformed.status_code == 400


async def _user(db: Database) -> int:
    from sqlalchemy import select

    from app.demo import DEMO_PHONE_E164
    from models.identity import User

    async with db.session() as session:
        return (await session.execute(select(User.id).where(User.phone == DEMO_PHONE_E164))).scalar_one()


async def test_D5_yookassa_sbp_payment_gets_the_qr_payload(
    api: Api, customer_token: str, yookassa: FakeYooKassa
) -> None:
    account = await account_form(api, customer_token, "11111111")
    payment = (await create(api, customer_token, card_input(account, method="SBP")))["payment"]
    sent = yookassa.requests[-1]["body"]
    assert sent["payment_method_data"] == {"type": "sbp"} and sent["confirmation"] == {"type": "qr"}
    assert payment["sbpPayload"].startswith("https://qr.nspk.ru/") and payment["confirmationUrl"] is None
    image = await api.client.get("/" + payment["sbpQrImageUrl"].split("/", 3)[3])
    assert image.content.startswith(b"\x89PNG")


async def test_D5_yookassa_canceled_payment_found_by_the_recheck(
    app: Any, api: Api, db: Database, customer_token: str, yookassa: FakeYooKassa
) -> None:
    account = await account_form(api, customer_token, "11111111")
    payment = (await create(api, customer_token, card_input(account)))["payment"]
    yk_id = payment["confirmationUrl"].rsplit("=", 1)[1]
    yookassa.payments[yk_id].update(
        status="canceled", cancellation_details={"party": "yoo_money", "reason": "expired_on_confirmation"}
    )
    async with db.session() as session:
        changed = await payments.recheck_pending(
            db.unit_of_work,
            app.state.kabinet.extras["gateways"],
            CLOCK.now() + dt.timedelta(minutes=10),
            older_than=dt.timedelta(minutes=5),
        )
        assert changed == 1
        found = await session.get(Payment, pk_of(payment["id"]))
        assert found is not None and found.status is PaymentStatus.CANCELED
        assert found.failure_reason == "expired_on_confirmation"


async def test_D5_unreachable_gateway_stores_nothing_and_a_retry_works(
    app: Any, api: Api, db: Database, customer_token: str, yookassa: FakeYooKassa
) -> None:
    registry = app.state.kabinet.extras["gateways"]
    real = registry.by_name["yookassa"]
    registry.by_name["yookassa"] = gateways.YooKassaGateway(SHOP, KEY, api_url="http://127.0.0.1:9/v3")
    account = await account_form(api, customer_token, "11111111")
    before = await count(db, Payment)
    request = card_input(account, idempotencyKey="yk-retry")
    failed = await create(api, customer_token, request)
    assert failed["payment"] is None
    assert [(e["code"], e["message"]) for e in failed["userErrors"]] == [
        ("PAYMENT_GATEWAY_UNAVAILABLE", "Оплата временно недоступна. Попробуйте позже")
    ]
    assert await count(db, Payment) == before
    registry.by_name["yookassa"] = real
    retried = await create(api, customer_token, request)
    assert retried["userErrors"] == [] and retried["payment"]["status"] == "PENDING"


async def test_J7_yookassa_autopay_charges_the_saved_card_by_its_id(
    app: Any, db: Database, yookassa: FakeYooKassa
) -> None:
    from sqlalchemy import select

    from models.accounts import Account, UserAccount
    from models.payments import AutopaySetting, PaymentMethod

    async with db.session() as session:
        user_id = await _user(db)
        card = PaymentMethod(
            user_id=user_id,
            gateway="yookassa",
            token="2d9d1b5a-000f-5000-a000-1a1b2c3d4e5f",
            card_last4="4477",
            created_at=CLOCK.now(),
        )
        session.add(card)
        await session.flush()
        link = (
            await session.execute(
                select(UserAccount)
                .join(Account, Account.id == UserAccount.account_id)
                .where(Account.number == "11111111")
            )
        ).scalar_one()
        session.add(AutopaySetting(user_account_id=link.id, payment_method_id=card.id, enabled=True))
        await session.commit()
    async with db.session() as session:
        outcome = await payments.run_autopay(
            db.unit_of_work, app.state.kabinet.extras["gateways"], CLOCK.now()
        )
    assert outcome.charged == 1
    sent = yookassa.requests[-1]
    assert sent["body"]["payment_method_id"] == "2d9d1b5a-000f-5000-a000-1a1b2c3d4e5f"
    assert sent["key"].startswith("kabinet-autopay-")
