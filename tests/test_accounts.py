"""Accounts (issue 4): linking (B1), unlinking (B2), renaming (B3), the dashboard (B4), requisites (C1),
receipt delivery (J5) and visibility through every path.

Tests arrange their own branch, suppliers, services and accounts with known numbers (``seed_accounts``)
next to the demo data, so the expected values are visible in the test, and link them to the demo customer.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from strawberry import relay

from app.demo import DEMO_PHONE_E164
from models.accounts import Account, AccountService, LinkAttempt, UserAccount
from models.billing import Charge, PeriodBalance, Receipt
from models.branches import Branch, Service, Supplier
from models.identity import User
from models.meters import Meter, ZoneScheme
from models.payments import (
    AutopaySetting,
    Payment,
    PaymentAllocation,
    PaymentMethod,
    PaymentMethodKind,
    PaymentStatus,
)
from models.readings import Reading, ReadingSource
from models.tariffs import Tariff, Zone
from services import storage
from services.accounts import window_countdown
from services.clock import CLOCK
from services.periods import add_months
from tests.conftest import login_as
from tests.dates import CURRENT, LAST_BILLED, TODAY, on_day, period

_seq = itertools.count(1)


@dataclass
class Seeded:
    """What :func:`seed_accounts` created."""

    branch_id: int
    electricity_id: int
    water_id: int
    energy_supplier_id: int
    water_supplier_id: int
    account_ids: list[int] = field(default_factory=list)
    numbers: list[str] = field(default_factory=list)
    tariff_file_id: int | None = None


async def demo_user_id(db: Any, phone: str = "+71111111111") -> int:
    async with db.session() as session:
        return (await session.execute(select(User.id).where(User.phone == phone))).scalar_one()


async def seed_accounts(
    db: Any,
    settings: Any,
    *,
    accounts: int = 1,
    months: int = 12,
    link_to: str | None = "+71111111111",
    receipts: bool = True,
) -> Seeded:
    """A branch with an electricity (day/night) and a water supplier, ``accounts`` accounts with ``months``
    months of history up to LAST_BILLED (the month before today's). Each month: electricity DAY
    100 × 5.0000 = 500.00, NIGHT 50 × 2.5000 = 125.00, water 10 × 30.0000 = 300.00; closing balances
    625.00 (electricity, debt) and -100.00 (water, overpayment); receipts total 525.00. A 200.00
    electricity payment in the current period: balance 325.00 DEBT. LAST_BILLED's water line has a
    -10.00 recalculation.
    """
    n = next(_seq)
    tag = uuid.uuid4().hex[:6]
    async with db.session() as session:
        user_id = None
        if link_to:
            user_id = (await session.execute(select(User.id).where(User.phone == link_to))).scalar_one()
        energy = Supplier(
            name=f"ПАО «Тестэнерго {tag}»",
            inn=f"62{n:02d}{uuid.uuid4().int % 10**6:06d}",
            kpp="623401001",
            bank_name="ПАО Сбербанк",
            bic="046126614",
            correspondent_account="30101810500000000614",
            settlement_account="40702810353000000001",
        )
        water = Supplier(
            name=f"МУП «Водоканал {tag}»",
            inn=f"63{n:02d}{uuid.uuid4().int % 10**6:06d}",
            bank_name="АО Банк",
            bic="046126000",
            correspondent_account="30101810500000000000",
            settlement_account="40702810353000000002",
        )
        branch = Branch(
            name=f"Тестовое отделение {tag}",
            code=f"T{tag}",
            time_zone="Europe/Moscow",
            reading_window_start_day=15,
            reading_window_end_day=25,
        )
        session.add_all([energy, water, branch])
        await session.flush()
        electricity = Service(code=f"EL{tag}", name="Электроэнергия", unit="кВт·ч", supplier_id=energy.id)
        water_service = Service(code=f"WA{tag}", name="Холодная вода", unit="м³", supplier_id=water.id)
        session.add_all([electricity, water_service])
        await session.flush()
        seeded = Seeded(branch.id, electricity.id, water_service.id, energy.id, water.id)

        document = await storage.store_file(
            session,
            storage.local_storage(settings.data_dir),
            b"%PDF-1.4 tariff decision",
            key=f"tariffs/{tag}.pdf",
            filename="postanovlenie.pdf",
            content_type="application/pdf",
        )
        seeded.tariff_file_id = document.id
        session.add_all(
            [
                Tariff(
                    branch_id=branch.id,
                    service_id=electricity.id,
                    zone=Zone.DAY,
                    rate=Decimal("4.5000"),
                    valid_from=dt.date(2020, 1, 1),
                    valid_to=dt.date(2022, 12, 31),
                ),
                Tariff(
                    branch_id=branch.id,
                    service_id=electricity.id,
                    zone=Zone.DAY,
                    rate=Decimal("4.8000"),
                    valid_from=dt.date(2024, 1, 1),
                    valid_to=dt.date(2025, 12, 31),
                    document_title="Постановление ГУ РЭК Рязанской области",
                    document_number="123",
                    document_date=dt.date(2023, 12, 20),
                    document_file_id=document.id,
                ),
                Tariff(
                    branch_id=branch.id,
                    service_id=electricity.id,
                    zone=Zone.DAY,
                    rate=Decimal("5.0000"),
                    valid_from=dt.date(2026, 1, 1),
                ),
                Tariff(
                    branch_id=branch.id,
                    service_id=electricity.id,
                    zone=Zone.NIGHT,
                    rate=Decimal("2.5000"),
                    valid_from=dt.date(2026, 1, 1),
                ),
            ]
        )
        payer = None
        for index in range(accounts):
            number = f"9{n:03d}{index:04d}"
            account = Account(
                branch_id=branch.id,
                number=number,
                owner_last_name="Петров",
                owner_first_name="Петр",
                owner_middle_name="Петрович",
                address=f"г. Рязань, ул. Тестовая, д. {index + 1}",
                total_area=Decimal("54.30"),
                living_area=Decimal("32.10"),
                owners_count=2,
                registered_count=3,
                residing_count=3,
                rooms=2,
                electric_heating=False,
            )
            session.add(account)
            await session.flush()
            seeded.account_ids.append(account.id)
            seeded.numbers.append(number)
            meter = Meter(
                account_id=account.id,
                service_id=electricity.id,
                serial=f"M{number}",
                zone_scheme=ZoneScheme.DAY_NIGHT,
                digits=6,
            )
            session.add(meter)
            await session.flush()
            session.add_all(
                Reading(
                    meter_id=meter.id,
                    account_id=account.id,
                    zone=zone,
                    period=add_months(LAST_BILLED, -back),
                    value=Decimal(10000 - back * step),
                    source=ReadingSource.AMI,
                    accepted=True,
                )
                for back in range(months)
                for zone, step in ((Zone.DAY, 100), (Zone.NIGHT, 50))
            )
            session.add_all(
                [
                    AccountService(account_id=account.id, service_id=electricity.id),
                    AccountService(account_id=account.id, service_id=water_service.id),
                ]
            )
            for back in range(months):
                period = add_months(LAST_BILLED, -back)
                session.add_all(
                    [
                        Charge(
                            account_id=account.id,
                            period=period,
                            service_id=electricity.id,
                            supplier_id=energy.id,
                            zone=Zone.DAY,
                            volume=Decimal("100.000"),
                            rate=Decimal("5.0000"),
                            amount=Decimal("500.00"),
                        ),
                        Charge(
                            account_id=account.id,
                            period=period,
                            service_id=electricity.id,
                            supplier_id=energy.id,
                            zone=Zone.NIGHT,
                            volume=Decimal("50.000"),
                            rate=Decimal("2.5000"),
                            amount=Decimal("125.00"),
                        ),
                        Charge(
                            account_id=account.id,
                            period=period,
                            service_id=water_service.id,
                            supplier_id=water.id,
                            volume=Decimal("10.000"),
                            rate=Decimal("30.0000"),
                            amount=Decimal("300.00"),
                            recalculation=Decimal("-10.00") if back == 0 else Decimal("0"),
                        ),
                        PeriodBalance(
                            account_id=account.id,
                            supplier_id=energy.id,
                            period=period,
                            opening=Decimal("625.00"),
                            charged=Decimal("625.00"),
                            paid=Decimal("625.00"),
                            closing=Decimal("625.00"),
                        ),
                        PeriodBalance(
                            account_id=account.id,
                            supplier_id=water.id,
                            period=period,
                            opening=Decimal("-100.00"),
                            charged=Decimal("290.00") if back == 0 else Decimal("300.00"),
                            paid=Decimal("290.00") if back == 0 else Decimal("300.00"),
                            closing=Decimal("-100.00"),
                        ),
                    ]
                )
                if receipts:
                    session.add(
                        Receipt(
                            account_id=account.id,
                            period=period,
                            total_due=Decimal("525.00"),
                            due_date=add_months(period, 1).replace(day=10),
                        )
                    )
            if user_id is not None:
                link = UserAccount(user_id=user_id, account_id=account.id)
                session.add(link)
                payer = payer or user_id
            if payer is not None:
                for paid_period, amount in ((CURRENT, "200.00"), (LAST_BILLED, "625.00")):
                    payment = Payment(
                        user_id=payer,
                        status=PaymentStatus.SUCCEEDED,
                        method=PaymentMethodKind.SBP,
                        amount=Decimal(amount),
                        gateway="sandbox",
                        idempotency_key=uuid.uuid4().hex,
                        request_fingerprint="0" * 64,
                        paid_at=dt.datetime.combine(paid_period.replace(day=5), dt.time(12), dt.UTC),
                    )
                    session.add(payment)
                    await session.flush()
                    session.add(
                        PaymentAllocation(
                            payment_id=payment.id,
                            account_id=account.id,
                            supplier_id=energy.id,
                            period=paid_period,
                            amount=Decimal(amount),
                        )
                    )
        await session.commit()
    return seeded


def gid(type_name: str, value: int) -> str:
    return relay.to_base64(type_name, value)


ACCOUNTS = """
query($first: Int, $after: String) {
  accounts(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { id number displayName address ownerFullName } }
  }
}"""

DASHBOARD = """
query {
  accounts(first: 50) {
    edges { node {
      id number displayName address ownerFullName
      branch { name }
      balance { amount status label displayAmount billedPeriod
                suppliers { amount status closing paidSince supplier { name } } }
      readingWindow { isOpen daysUntilOpens daysUntilCloses opensOn closesOn }
      autopayEnabled eReceiptEnabled eReceiptAllowed receiptEmail
      currentReceipt { period totalDue download { url expiresAt } }
      meters { serial lastReadings { zone value } }
      charges { period total charges { zone volume rate amount recalculation service { name unit } } }
    } }
  }
}"""


def node_of(data: dict[str, Any], account_id: int) -> dict[str, Any]:
    for edge in data["accounts"]["edges"]:
        if edge["node"]["id"] == gid("Account", account_id):
            return edge["node"]  # type: ignore[no-any-return]
    raise AssertionError(f"account {account_id} not listed")


# --- B4 dashboard -------------------------------------------------------------------------------------------


@pytest.mark.calendar  # date-dependent: CI runs it again on other days
async def test_B4_dashboard_shows_balance_with_label_breakdown_and_current_receipt(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    seeded = await seed_accounts(db, settings)
    node = node_of(await api.data(DASHBOARD, token=customer_token), seeded.account_ids[0])
    assert node["number"] == seeded.numbers[0]
    assert node["displayName"] == seeded.numbers[0]  # no name given: the number
    assert node["ownerFullName"] == "Петров Петр Петрович"
    # 625.00 debt − 200.00 paid this period + (−100.00) overpayment to water = 325.00 to pay
    assert node["balance"]["amount"] == "325.00"
    assert node["balance"]["status"] == "DEBT"
    assert node["balance"]["label"] == "К оплате"
    assert node["balance"]["displayAmount"] == "325,00"
    assert node["balance"]["billedPeriod"] == period(-1)
    lines = {line["supplier"]["name"].split(" ")[0]: line for line in node["balance"]["suppliers"]}
    assert lines["ПАО"] == {
        "amount": "425.00",
        "status": "DEBT",
        "closing": "625.00",
        "paidSince": "200.00",
        "supplier": lines["ПАО"]["supplier"],
    }
    assert lines["МУП"]["amount"] == "-100.00" and lines["МУП"]["status"] == "OVERPAYMENT"
    assert node["currentReceipt"]["period"] == period(-1)
    assert node["currentReceipt"]["totalDue"] == "525.00"
    assert "/downloads/" in node["currentReceipt"]["download"]["url"]
    assert node["autopayEnabled"] is False and node["eReceiptEnabled"] is False
    assert len(node["charges"]) == 12 and node["charges"][0]["period"] == period(-1)


@pytest.mark.calendar  # date-dependent: CI runs it again on other days
async def test_B4_overpayment_and_nothing_due_use_the_manuals_labels(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    seeded = await seed_accounts(db, settings, accounts=2)
    async with db.session() as session:
        # first account: electricity fully paid and more → overpayment; second: exactly settled → none
        for account_id, extra in ((seeded.account_ids[0], "600.00"), (seeded.account_ids[1], "325.00")):
            payment = Payment(
                user_id=await demo_user_id(db),
                status=PaymentStatus.SUCCEEDED,
                method=PaymentMethodKind.CARD,
                amount=Decimal(extra),
                gateway="sandbox",
                idempotency_key=uuid.uuid4().hex,
                request_fingerprint="0" * 64,
            )
            session.add(payment)
            await session.flush()
            session.add(
                PaymentAllocation(
                    payment_id=payment.id,
                    account_id=account_id,
                    supplier_id=seeded.energy_supplier_id,
                    period=CURRENT,
                    amount=Decimal(extra),
                )
            )
        await session.commit()
    data = await api.data(DASHBOARD, token=customer_token)
    over = node_of(data, seeded.account_ids[0])["balance"]
    assert (over["amount"], over["status"], over["label"], over["displayAmount"]) == (
        "-275.00",
        "OVERPAYMENT",
        "Переплата",
        "-275,00",
    )
    none = node_of(data, seeded.account_ids[1])["balance"]
    assert (none["amount"], none["status"], none["label"], none["displayAmount"]) == (
        "0.00",
        "NONE",
        "Задолженность отсутствует",
        "0,00",
    )


def test_B4_window_days_count_to_opening_and_closing() -> None:
    before = window_countdown(dt.date(2026, 11, 10), 15, 25)
    assert (before.is_open, before.days_until_opens, before.opens_on) == (False, 5, dt.date(2026, 11, 15))
    inside = window_countdown(dt.date(2026, 11, 24), 15, 25)
    assert (inside.is_open, inside.days_until_opens, inside.days_until_closes) == (True, 0, 1)
    last = window_countdown(dt.date(2026, 11, 25), 15, 25)
    assert (last.is_open, last.days_until_closes) == (True, 0)
    after = window_countdown(dt.date(2026, 11, 26), 15, 25)
    assert (after.is_open, after.opens_on, after.days_until_opens) == (False, dt.date(2026, 12, 15), 19)
    short = window_countdown(dt.date(2027, 2, 27), 26, 31)  # clamped to February's last day
    assert (short.is_open, short.closes_on, short.days_until_closes) == (True, dt.date(2027, 2, 28), 1)


@pytest.mark.calendar  # date-dependent: CI runs it again on other days
async def test_B4_window_days_follow_the_branchs_time_zone(api: Any, db: Any, settings: Any) -> None:
    seeded = await seed_accounts(db, settings, accounts=2)
    async with db.session() as session:
        branch = await session.get(Branch, seeded.branch_id)
        assert branch is not None
        branch.time_zone = "Asia/Kamchatka"  # UTC+12
        await session.commit()
    # 13:00 UTC on the 24th is the 24th in Moscow but already the 25th, the window's last day, in Kamchatka
    CLOCK.pin(on_day(24).replace(hour=13, tzinfo=dt.UTC))
    token = await login_as(db, settings, DEMO_PHONE_E164)
    node = node_of(await api.data(DASHBOARD, token=token), seeded.account_ids[0])
    assert node["readingWindow"] == {
        "isOpen": True,
        "daysUntilOpens": 0,
        "daysUntilCloses": 0,
        "opensOn": f"{period(0)}-15",
        "closesOn": f"{period(0)}-25",
    }


@pytest.mark.calendar  # date-dependent: CI runs it again on other days
async def test_B4_dashboard_statement_count_does_not_grow_with_accounts_or_months(
    api: Any, db: Any, settings: Any, sql_counter: Any
) -> None:
    # a fresh customer with one account and 12 months, then one with 5 accounts and 36 months
    small = await seed_accounts(db, settings, accounts=1, months=12, link_to="+71111111111")
    token = await login_as(db, settings, "+71111111111")
    await api.data("{ me { id } }", token=token)  # warm-up (first connection), not cached with DASHBOARD
    with sql_counter() as one:
        first = await api.data(DASHBOARD, token=token)
    assert node_of(first, small.account_ids[0])
    big = await seed_accounts(db, settings, accounts=5, months=36, link_to="+71111111111")
    with sql_counter() as many:
        data = await api.data(DASHBOARD, token=token)
    for account_id in big.account_ids:
        node = node_of(data, account_id)
        assert len(node["charges"]) == 12
        assert sorted(reading["value"] for reading in node["meters"][0]["lastReadings"]) == ["10000.000"] * 2
    assert one.statements <= DASHBOARD_STATEMENTS
    assert many.statements <= DASHBOARD_STATEMENTS


DASHBOARD_STATEMENTS = 6
"""The dashboard's statements at most: accounts page with its count (one statement since issue 21: was 13
with the count separate), the user (profile e-mail for e-receipts, ORM), latest receipts (ORM), then one
statement for the plain reads of the accounts' level (balances, autopay, charges, meters with their last
readings, the branch: models.plain.SharedReads, issue 21; were 6) and one for the charge lines' services and
suppliers (were 2). The branch's read waits for its reference version from Redis first: it joins the level's
statement when Redis answers in time, else it follows on its own (6)."""


# --- C1 requisites ------------------------------------------------------------------------------------------


async def test_C1_requisites_and_services(api: Any, db: Any, settings: Any, customer_token: str) -> None:
    seeded = await seed_accounts(db, settings)
    query = """query($id: ID!) { node(id: $id) { ... on Account {
      requisites { ownerFullName totalArea livingArea ownersCount registeredCount residingCount rooms
                   stoveType electricHeating }
      services { service { name unit supplier { name inn } } }
    } } }"""
    node = (await api.data(query, token=customer_token, id=gid("Account", seeded.account_ids[0])))["node"]
    assert node["requisites"] == {
        "ownerFullName": "Петров Петр Петрович",
        "totalArea": "54.30",
        "livingArea": "32.10",
        "ownersCount": 2,
        "registeredCount": 3,
        "residingCount": 3,
        "rooms": 2,
        "stoveType": "NONE",
        "electricHeating": False,
    }
    assert [item["service"]["name"] for item in node["services"]] == ["Электроэнергия", "Холодная вода"]


# --- visibility ---------------------------------------------------------------------------------------------


async def test_B4_customer_sees_only_linked_accounts_through_node(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    foreign = await seed_accounts(db, settings, link_to=None)
    query = "query($id: ID!) { node(id: $id) { id ... on Account { number balance { amount } } } }"
    data = await api.data(query, token=customer_token, id=gid("Account", foreign.account_ids[0]))
    assert data["node"] is None
    anonymous = await api.data(query, id=gid("Account", foreign.account_ids[0]))
    assert anonymous["node"] is None
    listed = await api.data(ACCOUNTS, token=customer_token, first=100)
    assert gid("Account", foreign.account_ids[0]) not in [
        e["node"]["id"] for e in listed["accounts"]["edges"]
    ]


async def test_B4_accounts_list_is_paged(api: Any, db: Any, settings: Any, customer_token: str) -> None:
    await seed_accounts(db, settings, accounts=3, months=1)
    first = (await api.data(ACCOUNTS, token=customer_token, first=2))["accounts"]
    assert len(first["edges"]) == 2 and first["pageInfo"]["hasNextPage"] is True
    total = first["totalCount"]
    seen = [edge["node"]["id"] for edge in first["edges"]]
    after = first["pageInfo"]["endCursor"]
    while after:
        page = (await api.data(ACCOUNTS, token=customer_token, first=2, after=after))["accounts"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        after = page["pageInfo"]["endCursor"] if page["pageInfo"]["hasNextPage"] else None
    assert len(seen) == len(set(seen)) == total


async def test_B4_issue21_accounts_page_and_total_count_are_one_statement(
    api: Any, db: Any, settings: Any, customer_token: str, sql_counter: Any
) -> None:
    await seed_accounts(db, settings, accounts=5, months=1)
    await api.data("{ me { id } }", token=customer_token)  # the session check is cached from here on
    with sql_counter() as counted:
        everything = (await api.data(ACCOUNTS, token=customer_token, first=100))["accounts"]
    assert counted.statements == 1  # page and count(*) OVER () together
    total = everything["totalCount"]
    assert total == len(everything["edges"]) >= 5
    ids = [edge["node"]["id"] for edge in everything["edges"]]
    seen: list[str] = []
    after = None
    while True:
        with sql_counter() as counted:
            page = (await api.data(ACCOUNTS, token=customer_token, first=2, after=after))["accounts"]
        assert counted.statements == 1  # later pages: the count as a scalar subquery
        assert page["totalCount"] == total  # the whole list's, not what follows the cursor
        seen += [edge["node"]["id"] for edge in page["edges"]]
        after = page["pageInfo"]["endCursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
    assert seen == ids
    with sql_counter() as counted:  # a cursor past the end: an empty page, still the whole count
        past = (await api.data(ACCOUNTS, token=customer_token, first=2, after=after))["accounts"]
    assert past["edges"] == [] and past["totalCount"] == total and past["pageInfo"]["hasNextPage"] is False
    assert counted.statements == 2


async def test_B4_accounts_need_a_login(api: Any) -> None:
    body = await api.gql(ACCOUNTS)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# --- B1 link ------------------------------------------------------------------------------------------------

LINK = """mutation($input: LinkAccountInput!) { linkAccount(input: $input) {
  account { id number eReceiptEnabled }
  userErrors { code message field ... on TooManyLinkAttemptsError { retryAfter } } } }"""


def link_input(
    seeded: Seeded, number: str | None = None, proof: str = "525,00", **extra: Any
) -> dict[str, Any]:
    return {
        "branchId": gid("Branch", seeded.branch_id),
        "number": number or seeded.numbers[0],
        "proof": proof,
        **extra,
    }


@pytest.mark.calendar  # date-dependent: CI runs it again on other days
async def test_B1_link_with_the_latest_receipt_total(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    seeded = await seed_accounts(db, settings, link_to=None)
    result = (await api.data(LINK, token=customer_token, input=link_input(seeded, eReceipt=True)))[
        "linkAccount"
    ]
    assert result["userErrors"] == []
    assert result["account"] == {
        "id": gid("Account", seeded.account_ids[0]),
        "number": seeded.numbers[0],
        "eReceiptEnabled": True,
    }
    listed = await api.data(ACCOUNTS, token=customer_token, first=100)
    assert result["account"]["id"] in [edge["node"]["id"] for edge in listed["accounts"]["edges"]]


async def test_B1_link_with_the_owners_last_name_when_there_is_no_receipt(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    seeded = await seed_accounts(db, settings, link_to=None, receipts=False)
    wrong = (await api.data(LINK, token=customer_token, input=link_input(seeded, proof="525.00")))[
        "linkAccount"
    ]
    assert wrong["userErrors"][0]["code"] == "ACCOUNT_PROOF_MISMATCH"
    result = (await api.data(LINK, token=customer_token, input=link_input(seeded, proof=" петров ")))[
        "linkAccount"
    ]
    assert result["userErrors"] == [] and result["account"]["number"] == seeded.numbers[0]


async def test_B1_wrong_number_is_refused(api: Any, db: Any, settings: Any, customer_token: str) -> None:
    seeded = await seed_accounts(db, settings, link_to=None)
    result = (await api.data(LINK, token=customer_token, input=link_input(seeded, number="00000000")))[
        "linkAccount"
    ]
    assert result["account"] is None
    assert result["userErrors"] == [
        {
            "code": "ACCOUNT_NOT_FOUND",
            "message": "Данный лицевой счет не найден",
            "field": ["input", "number"],
        }
    ]


async def test_B1_wrong_proof_gets_its_own_error(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    seeded = await seed_accounts(db, settings, link_to=None)
    result = (await api.data(LINK, token=customer_token, input=link_input(seeded, proof="525.01")))[
        "linkAccount"
    ]
    assert result["account"] is None
    error = result["userErrors"][0]
    assert error["code"] == "ACCOUNT_PROOF_MISMATCH" and error["field"] == ["input", "proof"]
    assert error["message"] != "Данный лицевой счет не найден"


async def test_B1_already_linked_account_is_reported(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    seeded = await seed_accounts(db, settings)
    result = (await api.data(LINK, token=customer_token, input=link_input(seeded)))["linkAccount"]
    assert result["userErrors"][0]["code"] == "ACCOUNT_ALREADY_LINKED"


@pytest.mark.calendar  # date-dependent: CI runs it again on other days
async def test_B1_tries_are_limited_per_user(api: Any, db: Any, settings: Any, customer_token: str) -> None:
    seeded = await seed_accounts(db, settings, link_to=None)
    for attempt in range(10):
        result = await api.data(
            LINK, token=customer_token, input=link_input(seeded, number=f"1000{attempt:04d}")
        )
        assert result["linkAccount"]["userErrors"][0]["code"] == "ACCOUNT_NOT_FOUND"
    blocked = (await api.data(LINK, token=customer_token, input=link_input(seeded)))["linkAccount"]
    assert blocked["account"] is None
    assert blocked["userErrors"][0]["code"] == "TOO_MANY_LINK_ATTEMPTS"
    assert blocked["userErrors"][0]["retryAfter"]
    async with db.session() as session:
        failed = (
            await session.execute(
                select(func.count()).where(
                    LinkAttempt.user_id == await demo_user_id(db), ~LinkAttempt.succeeded
                )
            )
        ).scalar_one()
    assert failed == 10


# --- B2 unlink, B3 rename -----------------------------------------------------------------------------------

UNLINK = """mutation($input: UnlinkAccountInput!) { unlinkAccount(input: $input) {
  unlinkedAccountId autopayDisabled eReceiptStays notice userErrors { code message field } } }"""


async def test_B2_unlink_switches_autopay_off_and_reminds_about_e_receipts(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    seeded = await seed_accounts(db, settings)
    user_id = await demo_user_id(db)
    async with db.session() as session:
        link = (
            await session.execute(select(UserAccount).where(UserAccount.account_id == seeded.account_ids[0]))
        ).scalar_one()
        link.e_receipt_enabled = True
        card = PaymentMethod(user_id=user_id, gateway="sandbox", token=uuid.uuid4().hex, card_last4="4242")
        session.add(card)
        await session.flush()
        session.add(AutopaySetting(user_account_id=link.id, payment_method_id=card.id))
        card_id = card.id
        await session.commit()
    account_gid = gid("Account", seeded.account_ids[0])
    result = (await api.data(UNLINK, token=customer_token, input={"accountId": account_gid}))["unlinkAccount"]
    assert result["userErrors"] == []
    assert result["unlinkedAccountId"] == account_gid
    assert result["autopayDisabled"] is True and result["eReceiptStays"] is True
    assert "службу поддержки" in result["notice"] and "Автоплатеж" in result["notice"]
    async with db.session() as session:
        left = select(func.count()).where(AutopaySetting.payment_method_id == card_id)
        assert (await session.execute(left)).scalar_one() == 0
    gone = await api.data("query($id: ID!) { node(id: $id) { id } }", token=customer_token, id=account_gid)
    assert gone["node"] is None


async def test_B2_unlinking_someone_elses_account_is_not_found(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    foreign = await seed_accounts(db, settings, link_to=None)
    result = await api.data(
        UNLINK, token=customer_token, input={"accountId": gid("Account", foreign.account_ids[0])}
    )
    assert result["unlinkAccount"]["userErrors"][0]["message"] == "Данный лицевой счет не найден"


RENAME = """mutation($input: RenameAccountInput!) { renameAccount(input: $input) {
  account { id displayName } userErrors { code message field } } }"""


async def test_B3_rename_sets_and_clears_the_display_name(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    seeded = await seed_accounts(db, settings)
    account_gid = gid("Account", seeded.account_ids[0])
    named = await api.data(RENAME, token=customer_token, input={"accountId": account_gid, "name": "  Дача  "})
    assert named["renameAccount"] == {"account": {"id": account_gid, "displayName": "Дача"}, "userErrors": []}
    listed = await api.data(ACCOUNTS, token=customer_token, first=100)
    assert {"Дача"} <= {edge["node"]["displayName"] for edge in listed["accounts"]["edges"]}
    cleared = await api.data(RENAME, token=customer_token, input={"accountId": account_gid, "name": ""})
    assert cleared["renameAccount"]["account"]["displayName"] == seeded.numbers[0]
    too_long = await api.data(
        RENAME, token=customer_token, input={"accountId": account_gid, "name": "я" * 101}
    )
    assert too_long["renameAccount"]["userErrors"][0]["code"] == "DISPLAY_NAME_TOO_LONG"


# --- J5 receipt delivery ------------------------------------------------------------------------------------

DELIVERY = """mutation($input: SetReceiptDeliveryInput!) { setReceiptDelivery(input: $input) {
  account { eReceiptEnabled receiptEmail } userErrors { code message field } } }"""


async def test_J5_e_receipt_goes_to_the_confirmed_profile_email_by_default(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    seeded = await seed_accounts(db, settings)
    async with db.session() as session:
        user = await session.get(User, await demo_user_id(db))
        assert user is not None
        user.email, user.email_confirmed_at = "ivanov@bk.ru", dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        await session.commit()
    account_gid = gid("Account", seeded.account_ids[0])
    result = await api.data(
        DELIVERY, token=customer_token, input={"accountId": account_gid, "electronic": True}
    )
    assert result["setReceiptDelivery"] == {
        "account": {"eReceiptEnabled": True, "receiptEmail": "ivanov@bk.ru"},
        "userErrors": [],
    }
    own = await api.data(
        DELIVERY,
        token=customer_token,
        input={"accountId": account_gid, "electronic": True, "email": "Dacha@Example.ru"},
    )
    assert own["setReceiptDelivery"]["account"]["receiptEmail"] == "dacha@example.ru"
    async with db.session() as session:
        user = await session.get(User, await demo_user_id(db))
        assert user is not None and user.email == "ivanov@bk.ru"  # the profile e-mail did not change
    paper = await api.data(
        DELIVERY, token=customer_token, input={"accountId": account_gid, "electronic": False}
    )
    assert paper["setReceiptDelivery"]["account"] == {"eReceiptEnabled": False, "receiptEmail": None}


async def test_J5_only_accounts_that_allow_it_and_only_with_an_address(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    seeded = await seed_accounts(db, settings, accounts=2)
    async with db.session() as session:
        account = await session.get(Account, seeded.account_ids[1])
        assert account is not None
        account.e_receipt_allowed = False
        user = await session.get(User, await demo_user_id(db))
        assert user is not None
        user.email_confirmed_at = None
        await session.commit()
    refused = await api.data(
        DELIVERY,
        token=customer_token,
        input={"accountId": gid("Account", seeded.account_ids[1]), "electronic": True, "email": "a@b.ru"},
    )
    assert refused["setReceiptDelivery"]["userErrors"][0]["code"] == "E_RECEIPT_NOT_ALLOWED"
    no_address = await api.data(
        DELIVERY,
        token=customer_token,
        input={"accountId": gid("Account", seeded.account_ids[0]), "electronic": True},
    )
    assert no_address["setReceiptDelivery"]["userErrors"][0] == {
        "code": "EMAIL_NOT_CONFIRMED",
        "message": "Подтвердить адрес электронной почты",
        "field": ["input", "email"],
    }


# --- on the demo data ---------------------------------------------------------------------------------------


@pytest.mark.calendar  # date-dependent: CI runs it again on other days
async def test_B4_demo_customer_dashboard_lists_account_11111111(api: Any, customer_token: str) -> None:
    data = await api.data(DASHBOARD, token=customer_token)
    nodes = [edge["node"] for edge in data["accounts"]["edges"]]
    demo = next(node for node in nodes if node["number"] == "11111111")
    assert "Почтовая" in demo["address"] and demo["ownerFullName"] == "Иванов Иван Иванович"
    assert demo["balance"]["status"] == "DEBT" and demo["balance"]["label"] == "К оплате"


async def test_B1_demo_unlinked_account_links_by_the_owners_last_name(
    api: Any, db: Any, customer_token: str
) -> None:
    async with db.session() as session:
        branch_id = (
            await session.execute(select(Account.branch_id).where(Account.number == "22222222"))
        ).scalar_one()
    result = await api.data(
        LINK,
        token=customer_token,
        input={"branchId": gid("Branch", branch_id), "number": "22222222", "proof": "Петров"},
    )
    assert result["linkAccount"]["userErrors"] == []
    assert result["linkAccount"]["account"]["number"] == "22222222"


__all__ = ["LAST_BILLED", "TODAY", "Seeded", "gid", "seed_accounts"]


# --- issue 21: a read-only request of plain reads sends no BEGIN/COMMIT ------------------------------------

PLAIN_DASHBOARD = """query {
  accounts(first: 20) {
    totalCount pageInfo { hasNextPage }
    edges { node {
      id number address displayName autopayEnabled
      balance { amount status label displayAmount billedPeriod suppliers { amount supplier { id name } } }
      readingWindow { isOpen opensOn closesOn daysUntilOpens daysUntilCloses }
      meters { id serial zoneScheme service { code name unit } lastReadings { zone period value } }
      charges { period total charges { zone volume rate amount recalculation total service { id name } } }
    } }
  }
}"""
"""``bench/dashboard.py``'s uncached dashboard (plus autopay): every statement of it is a plain read."""


async def test_B4_issue21_a_dashboard_of_plain_reads_sends_no_begin_or_commit(
    api: Any, db: Any, settings: Any, sql_counter: Any, monkeypatch: Any
) -> None:
    import asyncpg.transaction

    await seed_accounts(db, settings, accounts=2)
    token = await login_as(db, settings, "+71111111111")
    begun: list[object] = []
    start = asyncpg.transaction.Transaction.start

    async def counting_start(self: Any) -> None:  # a spy: the real BEGIN still runs
        begun.append(self)
        await start(self)

    monkeypatch.setattr(asyncpg.transaction.Transaction, "start", counting_start)
    with sql_counter() as counted:  # the session check included (the first request of this token)
        data = await api.data(PLAIN_DASHBOARD, token=token)
    assert data["accounts"]["totalCount"] == len(data["accounts"]["edges"]) >= 2
    # session check, page + count, then one statement for balances, autopay, charges, meters with their last
    # readings and the branch (models.plain.SharedReads, issue 21: were 6), one for services and suppliers
    # (were 2); the branch waits for its reference version from Redis, and goes on its own when Redis
    # answers after the level's statement has gone
    assert 4 <= counted.statements <= 5
    assert begun == []  # no statement ran through the ORM: no transaction to begin or end
    history = """query($id: ID!) { node(id: $id) { ... on Account {
      number displayName eReceiptEnabled
      charges { period total charges { amount service { id name } } } } } }"""
    with sql_counter() as counted:  # bench/peers.py's charges36 path: the account by its global ID
        node = (await api.data(history, token=token, id=data["accounts"]["edges"][0]["node"]["id"]))["node"]
    assert node["number"] and node["charges"]
    # account with the viewer's link (visibility; one statement since issue 21), charges; services and
    # suppliers unless kept from the request before
    assert 2 <= counted.statements <= 4
    assert begun == []
    await api.data(
        "mutation($input: RenameAccountInput!) { renameAccount(input: $input) { userErrors { code } } }",
        token=token,
        input={"accountId": data["accounts"]["edges"][0]["node"]["id"], "name": "Дача"},
    )
    assert len(begun) == 1  # a write still runs in its transaction
