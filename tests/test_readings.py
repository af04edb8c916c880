"""Meters and readings (E1–E3, H2) through GraphQL over HTTP on a real PostgreSQL.

Each test arranges its own customer, branches, accounts, meters and 36 months of readings in its copy of
the demo database (so the rules are exercised on known numbers), and pins the clock to NOW: 10:00 Moscow on
the 24th of the run's current month (``tests.dates``), when branch «open» (15th–25th) accepts readings and
branch «closed» (1st–10th) does not.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from strawberry.relay import to_base64

from app.db import Database
from app.settings import Settings
from models.accounts import Account, UserAccount
from models.branches import Branch, Service, Supplier
from models.identity import User
from models.meters import Meter, ZoneScheme
from models.notifications import Notification
from models.readings import Reading, ReadingSource, ReadingSubmission
from models.tariffs import Zone
from services.clock import CLOCK
from services.periods import add_months
from tests.client import Api
from tests.conftest import login_as
from tests.dates import MSK, TODAY, month, on_day, period

pytestmark = pytest.mark.calendar  # date-dependent: CI runs it again on other days (README, Tests)

NOW = on_day(24)
"""The arranged world's "now": inside branch «open»'s window, outside branch «closed»'s."""
FIRST_MONTH = month(-36)  # 36 months up to last month
MONTHS = [add_months(FIRST_MONTH, index) for index in range(36)]
_unique = itertools.count(1)

WINDOW_CLOSED = (
    "Внести показания Вы можете в период каждого месяца. Просим быть внимательным к этим датам и вовремя "
    "вводить показания прибора учета"
)
BELOW_PREVIOUS = (
    "Показание не принято! Введенные показания меньше ранее переданных показаний. "
    "Проверьте корректность ввода"
)


def above_previous(form: dict[str, Any], step: int) -> list[dict[str, Any]]:
    """The ``meters`` input of submitReadings: each zone of a readings form ``step`` above its previous."""
    return [
        {
            "meterId": meter["meter"]["id"],
            "values": [
                {"zone": zone["zone"], "value": str(Decimal(zone["previous"] or "0") + step)}
                for zone in meter["zones"]
            ],
        }
        for meter in form["meters"]
    ]


def gid(type_name: str, id_: int) -> str:
    return to_base64(type_name, id_)


@dataclass
class World:
    """What a test arranged: ids of rows and the customer's token."""

    token: str = ""
    phone: str = ""
    user_id: int = 0
    open_branch: int = 0
    closed_branch: int = 0
    home: int = 0  # account in the open branch: day/night electricity + cold water
    dacha: int = 0  # account in the closed branch: one single-zone meter
    empty: int = 0  # account in the open branch without meters
    big: int = 0  # account in the open branch: 4 three-zone meters
    foreign: int = 0  # account of somebody else
    meters: dict[str, int] = field(default_factory=dict)


async def _meter(
    session: Any,
    account_id: int,
    service_id: int,
    serial: str,
    scheme: ZoneScheme,
    monthly: dict[Zone, tuple[int, int]],
    *,
    digits: int = 6,
    decimals: int = 0,
    months: list[dt.date] = MONTHS,
) -> int:
    """A meter with one accepted reading per zone and month: value = base + monthly step × month index."""
    meter = Meter(
        account_id=account_id,
        service_id=service_id,
        serial=serial,
        model="Меркурий 201.8",
        zone_scheme=scheme,
        digits=digits,
        decimals=decimals,
        installed_at=dt.date(2019, 5, 14),
        verification_due=dt.date(2031, 5, 14),
        seal_number=f"S-{serial}",
        sealed_at=dt.date(2019, 5, 14),
    )
    session.add(meter)
    await session.flush()
    rows = []
    for index, first in enumerate(months):
        for zone, (base, step) in monthly.items():
            rows.append(
                Reading(
                    meter_id=meter.id,
                    account_id=account_id,
                    zone=zone,
                    period=first,
                    value=Decimal(base + step * index),
                    source=ReadingSource.AMI if index % 2 else ReadingSource.CABINET,
                    submitted_at=dt.datetime.combine(first.replace(day=20), dt.time(12), MSK),
                    accepted=True,
                    accepted_at=dt.datetime.combine(first.replace(day=26), dt.time(3), MSK),
                )
            )
    session.add_all(rows)
    return meter.id


async def _arrange(db: Database, settings: Settings, *, second_account: bool = True) -> World:
    n = next(_unique)
    world = World()
    async with db.session() as session:
        supplier = Supplier(
            name=f"Тестовый поставщик {n}",
            inn=f"99{n:010d}",
            bank_name="Банк",
            bic="044525225",
            correspondent_account="30101810400000000225",
            settlement_account="40702810000000000001",
        )
        session.add(supplier)
        await session.flush()
        electricity = Service(
            code=f"T{n}_ELECTRICITY", name="Электроэнергия", unit="кВт·ч", supplier_id=supplier.id, position=1
        )
        water = Service(
            code=f"T{n}_WATER", name="Холодная вода", unit="м³", supplier_id=supplier.id, position=2
        )
        open_branch = Branch(
            name=f"Открытое отделение {n}",
            code=f"T{n}_OPEN",
            reading_window_start_day=15,
            reading_window_end_day=25,
        )
        closed_branch = Branch(
            name=f"Закрытое отделение {n}",
            code=f"T{n}_CLOSED",
            reading_window_start_day=1,
            reading_window_end_day=10,
        )
        user = User(phone=f"+7999{n:07d}", last_name="Петров", first_name="Пётр", role="CUSTOMER")
        other = User(phone=f"+7998{n:07d}", last_name="Сидоров", first_name="Сидор", role="CUSTOMER")
        session.add_all([electricity, water, open_branch, closed_branch, user, other])
        await session.flush()

        def account(branch: Branch, number: str) -> Account:
            return Account(
                branch_id=branch.id,
                number=number,
                owner_last_name="Петров",
                owner_first_name="Пётр",
                address=f"г. Рязань, ул. Тестовая, д. {n}, кв. {number[-2:]}",
            )

        home, dacha, empty, big, foreign = (
            account(open_branch, f"7{n:05d}01"),
            account(closed_branch, f"7{n:05d}02"),
            account(open_branch, f"7{n:05d}03"),
            account(open_branch, f"7{n:05d}04"),
            account(open_branch, f"7{n:05d}05"),
        )
        session.add_all([home, dacha, empty, big, foreign])
        await session.flush()
        linked = [home, empty, big] + ([dacha] if second_account else [])
        session.add_all([UserAccount(user_id=user.id, account_id=a.id) for a in linked])
        session.add(UserAccount(user_id=other.id, account_id=foreign.id))

        world.meters["home_el"] = await _meter(
            session,
            home.id,
            electricity.id,
            "EL-001",
            ZoneScheme.DAY_NIGHT,
            {Zone.DAY: (1000, 150), Zone.NIGHT: (500, 60)},
        )
        world.meters["home_water"] = await _meter(
            session,
            home.id,
            water.id,
            "W-001",
            ZoneScheme.SINGLE,
            {Zone.SINGLE: (10, 3)},
            digits=5,
            decimals=3,
        )
        world.meters["dacha_el"] = await _meter(
            session, dacha.id, electricity.id, "EL-777", ZoneScheme.SINGLE, {Zone.SINGLE: (200, 40)}
        )
        world.meters["foreign_el"] = await _meter(
            session, foreign.id, electricity.id, "EL-999", ZoneScheme.SINGLE, {Zone.SINGLE: (1, 1)}
        )
        for index in range(4):
            world.meters[f"big_{index}"] = await _meter(
                session,
                big.id,
                electricity.id,
                f"EL-B{index}",
                ZoneScheme.THREE_ZONE,
                {Zone.PEAK: (100, 10), Zone.HALF_PEAK: (200, 20), Zone.NIGHT: (300, 30)},
            )
        await session.commit()
        world.user_id = user.id
        world.open_branch, world.closed_branch = open_branch.id, closed_branch.id
        world.home, world.dacha, world.empty, world.big, world.foreign = (
            home.id,
            dacha.id,
            empty.id,
            big.id,
            foreign.id,
        )
        phone = user.phone
    world.phone = phone
    world.token = await login_as(db, settings, phone)
    return world


@pytest.fixture
async def world(db: Database, settings: Settings) -> World:
    """The arranged data, with the clock at NOW (the 24th, 10:00 Moscow)."""
    CLOCK.pin(NOW)
    return await _arrange(db, settings)


# ---------------------------------------------------------------- GraphQL documents

METERS = """query($id: ID!) { meters(accountId: $id) {
  accountId isEmpty message
  services { service { code name unit } meters { id serial model zoneScheme zones digits decimals
    installedAt verificationDue sealNumber sealedAt lastReadings { zone value period } } } } }"""

FORM = """query($id: ID!) { readingsForm(accountId: $id) {
  accountId accountNumber
  window { isOpen today timeZone period opensOn closesOn nextOpensOn nextClosesOn message }
  meters { meter { id serial } zones { zone previous previousPeriod current consumption } } } }"""

HISTORY = """query($id: ID!, $from: YearMonth, $to: YearMonth) {
  readingHistory(accountId: $id, from: $from, to: $to) {
    from to months { period readings { id zone value source accepted superseded meter { serial } }
    accepted { id } } } }"""

SUBMIT = """mutation($input: SubmitReadingsInput!) { submitReadings(input: $input) {
  submission { id period readings { zone value previous consumption flaggedForReview replacedEarlier
    meter { serial } } flaggedForReview }
  userErrors { code message field
    ... on ReadingWindowClosedError { nextOpensOn nextClosesOn }
    ... on ReadingBelowPreviousError { meterId zone previous }
    ... on ReadingDoesNotFitMeterError { meterId zone digits decimals }
    ... on ReadingZonesMissingError { meterId missingZones } } } }"""

ALL_FORMS = """{ readingsForAllAccounts { available message accounts { accountNumber window { isOpen }
  meters { meter { serial } zones { zone previous } } } } }"""

SUBMIT_ALL = """mutation($input: SubmitReadingsForAllAccountsInput!) {
  submitReadingsForAllAccounts(input: $input) {
    results { accountId ok submission { id readings { zone value consumption } }
      userErrors { code message field ... on ReadingWindowClosedError { nextOpensOn } } }
    userErrors { code message } } }"""


def home_values(world: World, day: str = "6400", night: str = "2660", water: str = "118.5") -> list[Any]:
    return [
        {
            "meterId": gid("Meter", world.meters["home_el"]),
            "values": [{"zone": "DAY", "value": day}, {"zone": "NIGHT", "value": night}],
        },
        {"meterId": gid("Meter", world.meters["home_water"]), "values": [{"zone": "SINGLE", "value": water}]},
    ]


async def submit(api: Any, world: World, meters: list[Any], account: int | None = None, **extra: Any) -> Any:
    data = await api.data(
        SUBMIT,
        token=world.token,
        input={"accountId": gid("Account", account or world.home), "meters": meters, **extra},
    )
    return data["submitReadings"]


async def count(db: Database, statement: Any) -> int:
    async with db.session() as session:
        return int((await session.execute(statement)).scalar_one())


# ---------------------------------------------------------------- E1


async def test_E1_meters_are_grouped_by_service_with_details(api: Any, world: World) -> None:
    data = (await api.data(METERS, token=world.token, id=gid("Account", world.home)))["meters"]
    assert data["isEmpty"] is False and data["message"] is None
    assert [group["service"]["name"] for group in data["services"]] == ["Электроэнергия", "Холодная вода"]
    electricity = data["services"][0]["meters"][0]
    assert electricity["serial"] == "EL-001"
    assert electricity["zoneScheme"] == "DAY_NIGHT" and electricity["zones"] == ["DAY", "NIGHT"]
    assert electricity["digits"] == 6 and electricity["decimals"] == 0
    assert electricity["verificationDue"] == "2031-05-14" and electricity["sealNumber"] == "S-EL-001"
    assert {(r["zone"], r["value"], r["period"]) for r in electricity["lastReadings"]} == {
        ("DAY", "6250.000", period(-1)),
        ("NIGHT", "2600.000", period(-1)),
    }
    water = data["services"][1]["meters"][0]
    assert water["decimals"] == 3 and water["zones"] == ["SINGLE"]


async def test_E1_account_without_meters_answers_an_explicit_empty_state(api: Any, world: World) -> None:
    data = (await api.data(METERS, token=world.token, id=gid("Account", world.empty)))["meters"]
    assert data["isEmpty"] is True
    assert data["services"] == []
    assert data["message"]


async def test_E1_meters_of_an_account_not_linked_are_not_shown(api: Any, world: World) -> None:
    assert (await api.data(METERS, token=world.token, id=gid("Account", world.foreign)))["meters"] is None
    assert (await api.data(METERS, token=world.token, id=gid("Meter", world.home)))["meters"] is None
    node = await api.data(
        "query($id: ID!) { node(id: $id) { id } }",
        token=world.token,
        id=gid("Meter", world.meters["foreign_el"]),
    )
    assert node["node"] is None


async def test_E1_meters_need_a_login(api: Any, world: World) -> None:
    body = await api.gql(METERS, id=gid("Account", world.home))
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# ---------------------------------------------------------------- E3 form and window


async def test_E3_form_gives_previous_values_and_the_open_window(api: Any, world: World) -> None:
    form = (await api.data(FORM, token=world.token, id=gid("Account", world.home)))["readingsForm"]
    assert form["window"] == {
        "isOpen": True,
        "today": f"{period(0)}-24",
        "timeZone": "Europe/Moscow",
        "period": period(0),
        "opensOn": f"{period(0)}-15",
        "closesOn": f"{period(0)}-25",
        "nextOpensOn": f"{period(1)}-15",
        "nextClosesOn": f"{period(1)}-25",
        "message": None,
    }
    electricity = form["meters"][0]
    assert electricity["meter"]["serial"] == "EL-001"
    assert electricity["zones"] == [
        {
            "zone": "DAY",
            "previous": "6250.000",
            "previousPeriod": period(-1),
            "current": None,
            "consumption": None,
        },
        {
            "zone": "NIGHT",
            "previous": "2600.000",
            "previousPeriod": period(-1),
            "current": None,
            "consumption": None,
        },
    ]


async def test_E3_window_closed_is_refused_with_the_next_window_dates(
    api: Any, world: World, db: Database
) -> None:
    form = (await api.data(FORM, token=world.token, id=gid("Account", world.dacha)))["readingsForm"]
    assert form["window"]["isOpen"] is False
    assert form["window"]["message"] == WINDOW_CLOSED
    assert (form["window"]["nextOpensOn"], form["window"]["nextClosesOn"]) == (
        f"{period(1)}-01",
        f"{period(1)}-10",
    )

    before = await count(
        db, select(func.count()).select_from(Reading).where(Reading.account_id.in_([world.home, world.dacha]))
    )
    meters = [
        {"meterId": gid("Meter", world.meters["dacha_el"]), "values": [{"zone": "SINGLE", "value": "2000"}]}
    ]
    result = await submit(api, world, meters, account=world.dacha)
    assert result["submission"] is None
    assert result["userErrors"] == [
        {
            "code": "READING_WINDOW_CLOSED",
            "message": WINDOW_CLOSED,
            "field": None,
            "nextOpensOn": f"{period(1)}-01",
            "nextClosesOn": f"{period(1)}-10",
        }
    ]
    assert (
        await count(
            db,
            select(func.count())
            .select_from(Reading)
            .where(Reading.account_id.in_([world.home, world.dacha])),
        )
        == before
    )


async def test_E3_window_is_computed_in_the_branch_time_zone(
    api: Any, world: World, db: Database, settings: Settings
) -> None:
    # the 25th, 18:00 in Moscow is already the 26th in Vladivostok: the 15th–25th window is over there
    CLOCK.pin(on_day(25, hour=18))
    world.token = await login_as(db, settings, world.phone)
    form = (await api.data(FORM, token=world.token, id=gid("Account", world.home)))["readingsForm"]
    assert form["window"]["isOpen"] is True
    async with db.session() as session:
        branch = await session.get(Branch, world.open_branch)
        assert branch is not None
        branch.time_zone = "Asia/Vladivostok"
        await session.commit()
    form = (await api.data(FORM, token=world.token, id=gid("Account", world.home)))["readingsForm"]
    assert form["window"]["isOpen"] is False
    assert form["window"]["today"] == f"{period(0)}-26"
    assert form["window"]["nextOpensOn"] == f"{period(1)}-15"
    result = await submit(api, world, home_values(world))
    assert [error["code"] for error in result["userErrors"]] == ["READING_WINDOW_CLOSED"]


# ---------------------------------------------------------------- E3 rules


async def test_E3_value_lower_than_previous_is_refused_with_meter_zone_and_previous(
    api: Any, world: World, db: Database
) -> None:
    before = await count(
        db, select(func.count()).select_from(Reading).where(Reading.account_id.in_([world.home, world.dacha]))
    )
    result = await submit(api, world, home_values(world, night="2599"))
    assert result["submission"] is None
    assert result["userErrors"] == [
        {
            "code": "READING_BELOW_PREVIOUS",
            "message": BELOW_PREVIOUS,
            "field": ["input", "meters", "0", "values", "1", "value"],
            "meterId": gid("Meter", world.meters["home_el"]),
            "zone": "NIGHT",
            "previous": "2600.000",
        }
    ]
    assert (
        await count(
            db,
            select(func.count())
            .select_from(Reading)
            .where(Reading.account_id.in_([world.home, world.dacha])),
        )
        == before
    )
    assert (
        await count(
            db, select(func.count()).select_from(Notification).where(Notification.user_id == world.user_id)
        )
        == 0
    )


async def test_E3_value_must_fit_the_digit_capacity_and_decimals(api: Any, world: World) -> None:
    result = await submit(api, world, home_values(world, day="1000000", water="118.5005"))
    assert result["submission"] is None
    errors = {tuple(error["field"]): error for error in result["userErrors"]}
    day = errors[("input", "meters", "0", "values", "0", "value")]
    assert day["code"] == "READING_DOES_NOT_FIT_METER"
    assert (day["zone"], day["digits"], day["decimals"]) == ("DAY", 6, 0)
    water = errors[("input", "meters", "1", "values", "0", "value")]
    assert (water["code"], water["digits"], water["decimals"]) == ("READING_DOES_NOT_FIT_METER", 5, 3)
    assert len(errors) == 2


async def test_E3_every_zone_of_a_meter_is_required(api: Any, world: World, db: Database) -> None:
    meters = home_values(world)
    meters[0]["values"] = meters[0]["values"][:1]  # DAY only
    result = await submit(api, world, meters)
    assert result["submission"] is None
    assert result["userErrors"] == [
        {
            "code": "READING_ZONES_MISSING",
            "message": "Внесите показания по всем зонам прибора учета",
            "field": ["input", "meters", "0", "values"],
            "meterId": gid("Meter", world.meters["home_el"]),
            "missingZones": ["NIGHT"],
        }
    ]
    assert (
        await count(
            db,
            select(func.count())
            .select_from(Reading)
            .where(Reading.period == month(0), Reading.account_id == world.home),
        )
        == 0
    )


async def test_E3_meters_of_other_accounts_and_foreign_accounts_are_refused(api: Any, world: World) -> None:
    meters = [
        {"meterId": gid("Meter", world.meters["foreign_el"]), "values": [{"zone": "SINGLE", "value": "50"}]}
    ]
    result = await submit(api, world, meters)
    assert [(e["code"], e["field"]) for e in result["userErrors"]] == [
        ("METER_NOT_FOUND", ["input", "meters", "0", "meterId"])
    ]
    result = await submit(api, world, meters, account=world.foreign)
    assert [(e["code"], e["message"]) for e in result["userErrors"]] == [
        ("ACCOUNT_NOT_FOUND", "Данный лицевой счет не найден")
    ]


async def test_E3_success_returns_consumption_and_creates_a_notification(
    api: Any, world: World, db: Database
) -> None:
    result = await submit(api, world, home_values(world))
    assert result["userErrors"] == []
    submission = result["submission"]
    assert submission["period"] == period(0) and submission["flaggedForReview"] is False
    assert [
        (r["meter"]["serial"], r["zone"], r["value"], r["previous"], r["consumption"])
        for r in submission["readings"]
    ] == [
        ("EL-001", "DAY", "6400.000", "6250.000", "150.000"),
        ("EL-001", "NIGHT", "2660.000", "2600.000", "60.000"),
        ("W-001", "SINGLE", "118.500", "115.000", "3.500"),
    ]
    async with db.session() as session:
        notes = (
            await session.execute(select(Notification).where(Notification.user_id == world.user_id))
        ).scalars()
        notes = list(notes)
    assert len(notes) == 1
    assert notes[0].category == "READINGS" and notes[0].account_id == world.home
    assert notes[0].title == "Показания переданы"

    form = (await api.data(FORM, token=world.token, id=gid("Account", world.home)))["readingsForm"]
    assert [(z["zone"], z["current"], z["consumption"]) for z in form["meters"][0]["zones"]] == [
        ("DAY", "6400.000", "150.000"),
        ("NIGHT", "2660.000", "60.000"),
    ]


async def test_E3_resubmission_in_the_window_replaces_the_earlier_values(
    api: Any, world: World, db: Database
) -> None:
    first = await submit(api, world, home_values(world, day="6500"))
    # the second may be lower than the first: both are compared with the previous month's value
    second = await submit(api, world, home_values(world, day="6420"))
    assert first["userErrors"] == [] and second["userErrors"] == []
    assert second["submission"]["readings"][0]["replacedEarlier"] is True
    assert second["submission"]["readings"][0]["previous"] == "6250.000"

    form = (await api.data(FORM, token=world.token, id=gid("Account", world.home)))["readingsForm"]
    assert form["meters"][0]["zones"][0]["current"] == "6420.000"

    async with db.session() as session:
        rows = (
            await session.execute(
                select(Reading)
                .where(Reading.meter_id == world.meters["home_el"], Reading.period == month(0))
                .order_by(Reading.id)
            )
        ).scalars()
        rows = list(rows)
    assert len(rows) == 4  # append-only: the old rows stay
    old_day, old_night, new_day, new_night = rows
    assert old_day.superseded_by_id == new_day.id and old_night.superseded_by_id == new_night.id
    assert new_day.superseded_by_id is None and new_day.value == Decimal("6420")


async def test_E3_retry_with_the_same_idempotency_key_returns_the_first_result(
    api: Any, world: World, db: Database
) -> None:
    first = await submit(api, world, home_values(world), idempotencyKey="retry-1")
    again = await submit(api, world, home_values(world), idempotencyKey="retry-1")
    assert first["userErrors"] == [] and again == first
    assert (
        await count(
            db,
            select(func.count())
            .select_from(ReadingSubmission)
            .where(ReadingSubmission.user_id == world.user_id),
        )
        == 1
    )
    assert (
        await count(
            db, select(func.count()).select_from(Notification).where(Notification.user_id == world.user_id)
        )
        == 1
    )
    other = await submit(api, world, home_values(world, day="7000"), idempotencyKey="retry-1")
    assert [error["code"] for error in other["userErrors"]] == ["IDEMPOTENCY_KEY_REUSED"]


async def test_E3_concurrent_retries_with_one_key_store_once(api: Any, world: World, db: Database) -> None:
    results = await asyncio.gather(
        *(submit(api, world, home_values(world), idempotencyKey="same") for _ in range(3))
    )
    assert all(result == results[0] for result in results)
    assert (
        await count(
            db,
            select(func.count())
            .select_from(ReadingSubmission)
            .where(ReadingSubmission.user_id == world.user_id),
        )
        == 1
    )


async def test_E3_concurrent_submissions_for_one_meter_never_interleave_or_get_lost(
    live_server: str, world: World, db: Database
) -> None:
    # two real HTTP requests through uvicorn at the same time, each with its own connection and transaction
    async with (
        httpx.AsyncClient(base_url=live_server) as first_client,
        httpx.AsyncClient(base_url=live_server) as second_client,
    ):
        first, second = await asyncio.gather(
            submit(Api(first_client), world, home_values(world, day="6300", night="2610")),
            submit(Api(second_client), world, home_values(world, day="6350", night="2650")),
        )
    assert first["userErrors"] == [] and second["userErrors"] == []
    async with db.session() as session:
        rows = list(
            (
                await session.execute(
                    select(Reading)
                    .where(Reading.meter_id == world.meters["home_el"], Reading.period == month(0))
                    .order_by(Reading.id)
                )
            ).scalars()
        )
    assert len(rows) == 4  # none lost
    current = [row for row in rows if row.superseded_by_id is None]
    superseded = [row for row in rows if row.superseded_by_id is not None]
    assert len(current) == 2 and len(superseded) == 2
    # the current values come from one submission, the superseded ones from the other: never mixed
    assert len({row.submission_id for row in current}) == 1
    assert len({row.submission_id for row in superseded}) == 1
    assert {row.superseded_by_id for row in superseded} == {row.id for row in current}
    assert max(row.id for row in superseded) < min(row.id for row in current)


async def test_E3_jump_far_above_usual_consumption_is_accepted_but_flagged(
    api: Any, world: World, db: Database
) -> None:
    result = await submit(api, world, home_values(world, day="9250"))  # 3000 kWh instead of about 150
    assert result["userErrors"] == []
    readings = result["submission"]["readings"]
    assert [(r["zone"], r["flaggedForReview"]) for r in readings] == [
        ("DAY", True),
        ("NIGHT", False),
        ("SINGLE", False),
    ]
    assert result["submission"]["flaggedForReview"] is True
    flagged = await count(
        db,
        select(func.count())
        .select_from(Reading)
        .where(Reading.flagged_for_review.is_(True), Reading.account_id == world.home),
    )
    assert flagged == 1


async def test_E3_submitting_needs_a_customer_login(api: Any, world: World) -> None:
    body = await api.gql(
        SUBMIT, input={"accountId": gid("Account", world.home), "meters": home_values(world)}
    )
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# ---------------------------------------------------------------- E2


async def test_E2_history_by_month_with_every_source_and_the_accepted_ones(api: Any, world: World) -> None:
    await submit(api, world, home_values(world, day="6500"))
    await submit(api, world, home_values(world, day="6450"))
    history = (await api.data(HISTORY, token=world.token, id=gid("Account", world.home)))["readingHistory"]
    # D8 default: the 12 months up to the month before the current one
    assert (history["from"], history["to"]) == (period(-12), period(-1))
    assert [month["period"] for month in history["months"]][:2] == [period(-1), period(-2)]
    october = history["months"][0]
    assert {(r["meter"]["serial"], r["zone"], r["value"], r["source"]) for r in october["readings"]} == {
        ("EL-001", "DAY", "6250.000", "AMI"),
        ("EL-001", "NIGHT", "2600.000", "AMI"),
        ("W-001", "SINGLE", "115.000", "AMI"),
    }
    assert len(october["accepted"]) == 3
    assert history["months"][1]["readings"][0]["source"] == "CABINET"


async def test_E2_D8_history_range_is_checked(api: Any, world: World) -> None:
    body = await api.gql(HISTORY, token=world.token, id=gid("Account", world.home), **{"from": period(-37)})
    assert body["errors"][0]["extensions"]["code"] == "PERIOD_OUT_OF_RANGE"
    body = await api.gql(HISTORY, token=world.token, id=gid("Account", world.home), to=period(0))
    assert body["errors"][0]["extensions"]["code"] == "PERIOD_OUT_OF_RANGE"
    history = (
        await api.data(
            HISTORY,
            token=world.token,
            id=gid("Account", world.home),
            **{"from": period(-36), "to": period(-1)},
        )
    )["readingHistory"]
    assert len(history["months"]) == 36


async def test_E2_history_of_an_account_not_linked_is_null(api: Any, world: World) -> None:
    data = await api.data(HISTORY, token=world.token, id=gid("Account", world.foreign))
    assert data["readingHistory"] is None


# ---------------------------------------------------------------- statement counts


async def test_E1_meters_run_in_a_fixed_number_of_statements(
    api: Any, world: World, sql_counter: Any
) -> None:
    await api.data("{ me { id } }", token=world.token)  # warm-up: the session row is read once (SEC6)
    with sql_counter() as counted:
        data = (await api.data(METERS, token=world.token, id=gid("Account", world.big)))["meters"]
    assert sum(len(meter["lastReadings"]) for meter in data["services"][0]["meters"]) == 12
    assert counted.statements == 4  # visibility, meters, services, last readings (one batch each)


async def test_E2_history_runs_in_a_fixed_number_of_statements(
    api: Any, world: World, sql_counter: Any
) -> None:
    await api.data("{ me { id } }", token=world.token)  # warm-up: the session row is read once (SEC6)
    # 4 meters × 3 zones × 36 months = 432 readings
    with sql_counter() as counted:
        data = await api.data(
            HISTORY,
            token=world.token,
            id=gid("Account", world.big),
            **{"from": period(-36), "to": period(-1)},
        )
    months = data["readingHistory"]["months"]
    assert sum(len(month["readings"]) for month in months) == 432
    assert counted.statements == 3  # visibility, readings, meters (one loader batch)
    with sql_counter() as small:
        await api.data(HISTORY, token=world.token, id=gid("Account", world.home), **{"from": period(-1)})
    assert small.statements == counted.statements


async def test_E3_form_runs_in_a_fixed_number_of_statements(api: Any, world: World, sql_counter: Any) -> None:
    await api.data("{ me { id } }", token=world.token)  # warm-up: the session row is read once (SEC6)
    with sql_counter() as counted:
        form = (await api.data(FORM, token=world.token, id=gid("Account", world.big)))["readingsForm"]
    assert sum(len(meter["zones"]) for meter in form["meters"]) == 12
    assert counted.statements == 5  # visibility, account+branch, meters, previous values, current values
    with sql_counter() as small:
        await api.data(FORM, token=world.token, id=gid("Account", world.home))
    assert small.statements == counted.statements


# ---------------------------------------------------------------- H2


async def test_H2_readings_for_all_accounts_list_only_accounts_with_an_open_window(
    api: Any, world: World
) -> None:
    data = (await api.data(ALL_FORMS, token=world.token))["readingsForAllAccounts"]
    assert data["available"] is True and data["message"] is None
    numbers = [form["accountNumber"] for form in data["accounts"]]
    assert len(numbers) == 3 and all(
        not number.endswith("02") for number in numbers
    )  # dacha's window is closed
    assert all(form["window"]["isOpen"] for form in data["accounts"])


async def test_H2_when_no_window_is_open_the_notice_is_shown(
    api: Any, world: World, db: Database, settings: Settings
) -> None:
    CLOCK.pin(on_day(12))  # between both windows
    world.token = await login_as(db, settings, world.phone)
    data = (await api.data(ALL_FORMS, token=world.token))["readingsForAllAccounts"]
    assert data == {"available": True, "message": WINDOW_CLOSED, "accounts": []}


async def test_H2_is_available_only_with_more_than_one_linked_account(
    api: Any, db: Database, settings: Settings
) -> None:
    CLOCK.pin(NOW)
    world = await _arrange(db, settings)
    async with db.session() as session:
        links = (
            await session.execute(select(UserAccount).where(UserAccount.user_id == world.user_id))
        ).scalars()
        for link in list(links)[1:]:
            await session.delete(link)
        await session.commit()
    data = (await api.data(ALL_FORMS, token=world.token))["readingsForAllAccounts"]
    assert data == {"available": False, "message": None, "accounts": []}
    result = (await api.data(SUBMIT_ALL, token=world.token, input={"accounts": []}))[
        "submitReadingsForAllAccounts"
    ]
    assert [error["code"] for error in result["userErrors"]] == ["ALL_ACCOUNTS_UNAVAILABLE"]


async def test_H2_submit_for_all_accounts_answers_per_account_with_mixed_windows(
    api: Any, world: World, db: Database
) -> None:
    dacha = [
        {"meterId": gid("Meter", world.meters["dacha_el"]), "values": [{"zone": "SINGLE", "value": "1700"}]}
    ]
    big_low = [
        {
            "meterId": gid("Meter", world.meters[f"big_{index}"]),
            "values": [
                {"zone": "PEAK", "value": "460"},
                {"zone": "HALF_PEAK", "value": "920"},
                {"zone": "NIGHT", "value": "1000" if index == 0 else "1400"},  # previous 1350
            ],
        }
        for index in range(4)
    ]
    accounts = [
        {"accountId": gid("Account", world.home), "meters": home_values(world)},
        {"accountId": gid("Account", world.dacha), "meters": dacha},
        {"accountId": gid("Account", world.big), "meters": big_low},
    ]
    result = (
        await api.data(SUBMIT_ALL, token=world.token, input={"accounts": accounts, "idempotencyKey": "all-1"})
    )["submitReadingsForAllAccounts"]
    assert result["userErrors"] == []
    home, dacha_result, big = result["results"]
    assert home["ok"] is True and home["userErrors"] == []
    assert [r["consumption"] for r in home["submission"]["readings"]] == ["150.000", "60.000", "3.500"]
    assert dacha_result["ok"] is False and dacha_result["submission"] is None
    assert dacha_result["userErrors"] == [
        {
            "code": "READING_WINDOW_CLOSED",
            "message": WINDOW_CLOSED,
            "field": None,
            "nextOpensOn": f"{period(1)}-01",
        }
    ]
    assert big["ok"] is False
    assert [(e["code"], e["field"]) for e in big["userErrors"]] == [
        ("READING_BELOW_PREVIOUS", ["input", "accounts", "2", "meters", "0", "values", "2", "value"])
    ]
    async with db.session() as session:
        stored = list(
            (
                await session.execute(
                    select(ReadingSubmission.account_id).where(ReadingSubmission.user_id == world.user_id)
                )
            ).scalars()
        )
    assert stored == [world.home]  # the failures did not undo the success

    again = (
        await api.data(SUBMIT_ALL, token=world.token, input={"accounts": accounts, "idempotencyKey": "all-1"})
    )["submitReadingsForAllAccounts"]
    assert again["results"][0] == home
    assert (
        await count(
            db,
            select(func.count())
            .select_from(ReadingSubmission)
            .where(ReadingSubmission.user_id == world.user_id),
        )
        == 1
    )


# ---------------------------------------------------------------- the demo data


async def _demo_account(db: Database, number: str) -> int:
    async with db.session() as session:
        return int((await session.execute(select(Account.id).where(Account.number == number))).scalar_one())


def _demo_window(start: int, end: int) -> tuple[bool, str, str]:
    """Whether a demo branch's window (days ``start``–``end``) is open on TODAY, and its next opening and
    closing days (written out from the rule B4/E3 state, not computed by the code under test)."""
    today = TODAY.day
    next_month = 1 if today >= start else 0  # the window of this month has begun or passed
    return start <= today <= end, f"{period(next_month)}-{start:02d}", f"{period(next_month)}-{end:02d}"


async def test_E1_E3_H2_work_on_the_demo_customer(
    api: Any, db: Database, settings: Settings, customer_token: str
) -> None:
    """On the run's TODAY: Скопинское (15th–25th) for 11111111, Михайловское (23rd–27th) for 11111112,
    Касимовское (1st–5th) for 11111113; readings go in where the window is open and are refused elsewhere."""
    flat, mother = [await _demo_account(db, n) for n in ("11111111", "11111113")]
    meters = (await api.data(METERS, token=customer_token, id=gid("Account", flat)))["meters"]
    electricity = next(m for g in meters["services"] for m in g["meters"] if m["serial"] == "011354178")
    assert electricity["zones"] == ["DAY", "NIGHT"] and electricity["decimals"] == 1

    windows = {
        "11111111": _demo_window(15, 25),
        "11111112": _demo_window(23, 27),
        "11111113": _demo_window(1, 5),
    }
    everything = (await api.data(ALL_FORMS, token=customer_token))["readingsForAllAccounts"]
    assert everything["available"] is True
    assert [form["accountNumber"] for form in everything["accounts"]] == [
        number for number, (is_open, _, _) in windows.items() if is_open
    ]

    for number, account in (("11111111", flat), ("11111113", mother)):
        is_open, opens, closes = windows[number]
        form = (await api.data(FORM, token=customer_token, id=gid("Account", account)))["readingsForm"]
        assert form["window"]["isOpen"] is is_open, number
        assert (form["window"]["nextOpensOn"], form["window"]["nextClosesOn"]) == (opens, closes), number
        values = above_previous(form, 10)
        result = (
            await api.data(
                SUBMIT, token=customer_token, input={"accountId": gid("Account", account), "meters": values}
            )
        )["submitReadings"]
        if is_open:
            assert result["userErrors"] == [], number
            assert {reading["consumption"] for reading in result["submission"]["readings"]} == {"10.000"}
        else:
            assert [error["code"] for error in result["userErrors"]] == ["READING_WINDOW_CLOSED"], number


async def test_E2_demo_history_shows_replaced_and_accepted_readings(
    api: Any, db: Database, settings: Settings, customer_token: str
) -> None:
    flat = await _demo_account(db, "11111111")
    history = (
        await api.data(
            HISTORY,
            token=customer_token,
            id=gid("Account", flat),
            **{"from": period(-36), "to": period(-1)},
        )
    )["readingHistory"]
    readings = [reading for month in history["months"] for reading in month["readings"]]
    assert any(reading["superseded"] for reading in readings)  # the demo's corrected typos
    assert all(month["accepted"] for month in history["months"])
    assert {reading["source"] for reading in readings} >= {"CABINET", "MOBILE"}
