"""Pay for all accounts (H1), autopay (J7) and the periodic re-check of stuck PENDING payments."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app.db import Database
from app.demo import SECOND_CUSTOMER
from app.settings import Settings
from models.accounts import Account, UserAccount
from models.notifications import Notification
from models.payments import (
    AutopayRun,
    AutopaySetting,
    Payment,
    PaymentAllocation,
    PaymentMethod,
    PaymentStatus,
)
from services import gateways, payments
from services.clock import CLOCK
from services.scheduler import DEFAULT_JOBS
from tests.client import Api
from tests.conftest import login_as
from tests.test_payments import (
    CREATE_ALL,
    account_form,
    balance,
    card_input,
    count,
    create,
    form,
    gateway_id,
    pk_of,
    post_webhook,
)

pytestmark = pytest.mark.calendar  # date-dependent: CI runs it again on other days (README, Tests)


def all_input(accounts: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    """An H1 payment: every supplier of every account, the due amount or a 10.00 advance."""
    return {
        "accounts": [
            {
                "accountId": item["account"]["id"],
                "lines": [
                    {"supplierId": line["supplier"]["id"], "amount": line["suggestedAmount"]}
                    for line in item["lines"]
                ],
            }
            for item in accounts
        ],
        "method": "CARD",
        "acceptRules": True,
        "idempotencyKey": f"all-{len(accounts)}-{overrides.get('method', 'CARD')}",
        **overrides,
    }


async def create_all(api: Api, token: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run createPaymentForAllAccounts."""
    return (await api.data(CREATE_ALL, token=token, input=payload))["createPaymentForAllAccounts"]  # type: ignore[no-any-return]


def registry(app: Any) -> gateways.Gateways:
    """The app's gateway registry."""
    return app.state.kabinet.extras["gateways"]  # type: ignore[no-any-return]


# --- H1 -----------------------------------------------------------------------------------------------------


async def test_H1_one_checkout_over_several_accounts_allocated_per_account_and_supplier(
    api: Api, db: Database, settings: Settings, customer_token: str
) -> None:
    found = await form(api, customer_token)
    assert found["payAllAvailable"] is True and len(found["accounts"]) == 3
    assert found["minAmount"] == "10.00" and found["maxAccounts"] == 10
    chosen = [item for item in found["accounts"] if item["account"]["number"] in ("11111111", "11111113")]
    before = {
        item["account"]["id"]: await balance(api, customer_token, item["account"]["id"]) for item in chosen
    }
    result = await create_all(api, customer_token, all_input(chosen))
    assert result["userErrors"] == []
    payment = result["payment"]
    expected = sum(Decimal(line["suggestedAmount"]) for item in chosen for line in item["lines"])
    assert Decimal(payment["amount"]) == expected
    pairs = {(a["account"]["number"], a["supplier"]["id"]) for a in payment["allocations"]}
    assert pairs == {
        (item["account"]["number"], line["supplier"]["id"]) for item in chosen for line in item["lines"]
    }
    assert payment["confirmationUrl"]  # one confirmation for everything
    response = await post_webhook(api, settings, await gateway_id(db, payment["id"]), "SUCCEEDED")
    assert response.json() == {"status": "applied"}
    for item in chosen:
        paid = sum(Decimal(line["suggestedAmount"]) for line in item["lines"])
        assert (
            await balance(api, customer_token, item["account"]["id"]) == before[item["account"]["id"]] - paid
        )
    body = await _scalar(db, select(Notification.body).where(Notification.title == "Оплата прошла успешно"))
    assert "лицевым счетам 11111111, 11111113" in body


async def _scalar(db: Database, stmt: Any) -> Any:
    async with db.session() as session:
        return (await session.execute(stmt)).scalar_one()


async def test_H1_only_with_more_than_one_linked_account(api: Api, db: Database, settings: Settings) -> None:
    token = await login_as(db, settings, SECOND_CUSTOMER[1])
    found = await form(api, token)
    assert found["payAllAvailable"] is False and len(found["accounts"]) == 1
    result = await create_all(api, token, all_input(found["accounts"]))
    assert result["payment"] is None
    assert [(e["code"], e["message"]) for e in result["userErrors"]] == [
        (
            "PAY_ALL_UNAVAILABLE",
            "Оплата по всем лицевым счетам доступна, если к личному кабинету подключен не один лицевой счет",
        )
    ]


async def test_H1_limits_on_the_number_of_accounts_and_the_total(
    api: Api, db: Database, settings: Settings, customer_token: str
) -> None:
    found = await form(api, customer_token)
    settings.pay_all_max_accounts = 2
    result = await create_all(api, customer_token, all_input(found["accounts"], idempotencyKey="k1"))
    assert [e["code"] for e in result["userErrors"]] == ["TOO_MANY_ACCOUNTS"]
    assert result["userErrors"][0]["field"] == ["input", "accounts"]
    settings.pay_all_max_accounts = 10
    settings.pay_all_max_total = Decimal("100.00")
    result = await create_all(api, customer_token, all_input(found["accounts"], idempotencyKey="k2"))
    assert [e["code"] for e in result["userErrors"]] == ["TOTAL_TOO_LARGE"]
    assert "100,00" in result["userErrors"][0]["message"]
    assert await count(db, Payment, Payment.idempotency_key.in_(["k1", "k2"])) == 0


async def test_H1_amounts_below_10_and_rules_are_checked_per_line(api: Api, customer_token: str) -> None:
    found = await form(api, customer_token)
    payload = all_input(found["accounts"][:2], acceptRules=False)
    payload["accounts"][1]["lines"][0]["amount"] = "5.00"
    result = await create_all(api, customer_token, payload)
    assert [(e["code"], e["field"]) for e in result["userErrors"]] == [
        ("PAYMENT_RULES_NOT_ACCEPTED", ["input", "acceptRules"]),
        ("AMOUNT_TOO_SMALL", ["input", "accounts", "1", "lines", "0", "amount"]),
    ]


async def test_D5_payment_form_costs_a_fixed_number_of_statements(
    api: Api, customer_token: str, sql_counter: Any
) -> None:
    every = [account["account"]["id"] for account in (await form(api, customer_token))["accounts"]]
    one_id = (await account_form(api, customer_token, "11111111"))["account"]["id"]
    # explicit ids: neither request repeats an earlier one, so both are executed, not served from cache
    with sql_counter() as one:
        assert len((await form(api, customer_token, [one_id]))["accounts"]) == 1
    with sql_counter() as three:
        assert len((await form(api, customer_token, every))["accounts"]) == 3
    # the same statements for one account as for three: nothing is loaded per account or per line (the
    # suppliers and services are reference rows the first request read: kept per version, issue 21; the
    # balance's two parts are one statement since issue 21: was 5)
    assert one.statements == three.statements == 4


# --- J7 autopay ---------------------------------------------------------------------------------------------

SET_AUTOPAY = """mutation($input: SetAutopayInput!) { setAutopay(input: $input) { enabled
  userErrors { code field message } } }"""

CARDS = "query { savedCards { id cardLast4 cardBrand } }"


async def _autopay_on(api: Api, token: str, number: str, **extra: Any) -> dict[str, Any]:
    account = await account_form(api, token, number)
    cards = (await api.data(CARDS, token=token))["savedCards"]
    result = (
        await api.data(
            SET_AUTOPAY,
            token=token,
            input={"accountId": account["account"]["id"], "enabled": True, "cardId": cards[0]["id"], **extra},
        )
    )["setAutopay"]
    assert result == {"enabled": True, "userErrors": []}, result
    return account


async def test_J7_autopay_pays_the_new_bill_once_even_when_the_job_runs_twice(
    app: Any, api: Api, db: Database, customer_token: str
) -> None:
    account = await _autopay_on(api, customer_token, "11111111")
    due = sum(Decimal(line["due"]) for line in account["lines"])
    before = await balance(api, customer_token, account["account"]["id"])
    now = CLOCK.now()
    outcomes = await asyncio.gather(
        payments.run_autopay(db.unit_of_work, registry(app), now),
        payments.run_autopay(db.unit_of_work, registry(app), now),
    )
    again = await payments.run_autopay(db.unit_of_work, registry(app), now + dt.timedelta(hours=1))
    assert sum(outcome.charged for outcome in outcomes) == 1 and again.charged == 0
    account_pk = pk_of(account["account"]["id"])
    runs = await count(db, AutopayRun, AutopayRun.account_id == account_pk, AutopayRun.created_at >= now)
    assert runs == 1
    paid = await _scalar(
        db,
        select(Payment)
        .join(PaymentAllocation, PaymentAllocation.payment_id == Payment.id)
        .where(PaymentAllocation.account_id == account_pk, Payment.is_autopay, Payment.created_at >= now)
        .distinct(),
    )
    assert paid.status is PaymentStatus.SUCCEEDED and paid.amount == due and paid.rules_accepted_at is None
    assert await balance(api, customer_token, account["account"]["id"]) == before - due
    body = await _scalar(
        db,
        select(Notification.body).where(
            Notification.created_at >= now, Notification.account_id == account_pk
        ),
    )
    assert body.startswith("Автоплатёж на сумму") and "11111111" in body
    # the overpaid account with demo autopay had nothing due: recorded as skipped, nobody charged
    overpaid = await _scalar(db, select(Account.id).where(Account.number == "11111112"))
    skipped = await _scalar(db, select(AutopayRun.skipped_reason).where(AutopayRun.account_id == overpaid))
    assert skipped == "nothing due"


async def test_J7_autopay_over_the_limit_is_skipped_and_the_user_told(
    app: Any, api: Api, db: Database, customer_token: str
) -> None:
    account = await _autopay_on(api, customer_token, "11111111", amountLimit="100.00")
    now = CLOCK.now()
    outcome = await payments.run_autopay(db.unit_of_work, registry(app), now)
    assert outcome.charged == 0
    assert await count(db, Payment, Payment.is_autopay, Payment.created_at >= now) == 0
    title = await _scalar(
        db,
        select(Notification.title).where(
            Notification.created_at >= now, Notification.account_id == pk_of(account["account"]["id"])
        ),
    )
    assert title == "Автоплатёж не выполнен"


async def test_J7_declined_autopay_notifies_the_user(
    app: Any, api: Api, db: Database, customer_token: str
) -> None:
    account = await _autopay_on(api, customer_token, "11111111")
    async with db.session() as session:
        await session.execute(
            PaymentMethod.__table__.update().values(token=gateways.SANDBOX_DECLINED_TOKEN_PREFIX + "card")
        )
        await session.commit()
    now = CLOCK.now()
    async with db.session() as session:
        await payments.run_autopay(db.unit_of_work, registry(app), now)
    assert (
        await count(
            db, Payment, Payment.is_autopay, Payment.status == PaymentStatus.FAILED, Payment.created_at >= now
        )
        == 1
    )
    title = await _scalar(
        db,
        select(Notification.title).where(
            Notification.created_at >= now, Notification.account_id == pk_of(account["account"]["id"])
        ),
    )
    assert title == "Оплата не прошла"


async def test_J7_card_saved_on_the_card_page_and_autopay_switched_off_on_unlink(
    api: Api, db: Database, customer_token: str
) -> None:
    account = await account_form(api, customer_token, "11111111")
    payment = (await create(api, customer_token, card_input(account, saveCard=True)))["payment"]
    page = "/" + payment["confirmationUrl"].split("/", 3)[3]
    assert "Сохранить карту" in (await api.client.get(page)).text
    await api.client.post(
        page, data={"outcome": "pay", "card": "2200 0000 0000 1234", "save_card": "on", "expiry": "09/31"}
    )
    cards = (await api.data(CARDS, token=customer_token))["savedCards"]
    assert cards[0]["cardLast4"] == "1234" and cards[0]["cardBrand"] == "MIR"
    await _autopay_on(api, customer_token, "11111111")
    assert (await count(db, AutopaySetting)) >= 2
    unlink = (
        """mutation($input: UnlinkAccountInput!) { unlinkAccount(input: $input) { userErrors { code } } }"""
    )
    result = await api.data(unlink, token=customer_token, input={"accountId": account["account"]["id"]})
    assert result["unlinkAccount"]["userErrors"] == []
    remaining = await count(
        db,
        AutopaySetting,
        AutopaySetting.user_account_id.in_(
            select(UserAccount.id).where(UserAccount.account_id == pk_of(account["account"]["id"]))
        ),
    )
    assert remaining == 0


async def test_J7_autopay_settings_refuse_a_foreign_card_and_can_be_switched_off(
    api: Api, db: Database, settings: Settings, customer_token: str
) -> None:
    from strawberry import relay

    account = await account_form(api, customer_token, "11111111")
    foreign = str(relay.GlobalID("SavedCard", "999999"))
    result = (
        await api.data(
            SET_AUTOPAY,
            token=customer_token,
            input={"accountId": account["account"]["id"], "enabled": True, "cardId": foreign},
        )
    )["setAutopay"]
    assert [e["code"] for e in result["userErrors"]] == ["CARD_NOT_FOUND"]
    await _autopay_on(api, customer_token, "11111111")
    autopay = """query($id: ID!) { node(id: $id) { ... on Account { autopayEnabled } } }"""
    assert (await api.data(autopay, token=customer_token, id=account["account"]["id"]))["node"] == {
        "autopayEnabled": True  # the plain read of the autopay loader (issue 21)
    }
    off = (
        await api.data(
            SET_AUTOPAY, token=customer_token, input={"accountId": account["account"]["id"], "enabled": False}
        )
    )["setAutopay"]
    assert off == {"enabled": False, "userErrors": []}
    assert (await api.data(autopay, token=customer_token, id=account["account"]["id"]))["node"] == {
        "autopayEnabled": False
    }


# --- re-check of stuck PENDING payments ---------------------------------------------------------------------


async def test_D5_stuck_pending_payment_is_rechecked_with_the_gateway(
    app: Any, api: Api, db: Database, settings: Settings, customer_token: str
) -> None:
    assert {"payments-recheck", "autopay"} <= set(DEFAULT_JOBS)
    settings.sandbox_webhook_url = "http://127.0.0.1:9/lost"  # the webhook never arrives
    account = await account_form(api, customer_token, "11111111")
    before = await balance(api, customer_token, account["account"]["id"])
    paid = (await create(api, customer_token, card_input(account)))["payment"]
    page = "/" + paid["confirmationUrl"].split("/", 3)[3]
    assert "позже" in (await api.client.post(page, data={"outcome": "pay"})).text
    abandoned = (await create(api, customer_token, card_input(account)))["payment"]
    assert await balance(api, customer_token, account["account"]["id"]) == before

    now = CLOCK.now()
    async with db.session() as session:  # too early: nothing is asked yet
        assert (
            await payments.recheck_pending(
                db.unit_of_work, registry(app), now, older_than=dt.timedelta(minutes=5)
            )
            == 0
        )
    async with db.session() as session:  # later: the paid one succeeds, the abandoned one is still waiting
        later = now + dt.timedelta(minutes=6)
        assert (
            await payments.recheck_pending(
                db.unit_of_work, registry(app), later, older_than=dt.timedelta(minutes=5)
            )
            == 1
        )
    assert await balance(api, customer_token, account["account"]["id"]) == before - Decimal(paid["amount"])
    async with db.session() as session:  # after the sandbox's timeout the abandoned one is canceled
        much_later = now + dt.timedelta(minutes=16)
        assert (
            await payments.recheck_pending(
                db.unit_of_work, registry(app), much_later, older_than=dt.timedelta(minutes=5)
            )
            == 1
        )
        status, reason = (
            await session.execute(
                select(Payment.status, Payment.failure_reason).where(Payment.id == pk_of(abandoned["id"]))
            )
        ).one()
    assert status is PaymentStatus.CANCELED and reason == "Время ожидания оплаты истекло"
    assert (
        await count(
            db,
            Payment,
            Payment.status == PaymentStatus.PENDING,
            Payment.created_at >= now - dt.timedelta(minutes=1),
        )
        == 0
    )
