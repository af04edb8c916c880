"""The demo data set (app/demo/): the manual's content, determinism, re-runs, synthetic accounts.

Self-contained: every test database is a scratch database (``demo_scratch_…``) created on the server of
``DATABASE_URL`` (default: 127.0.0.1:5432), migrated with ``migrations.runner.upgrade`` and dropped at
the end.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import asyncpg
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from app import demo
from app.db import Database, async_url
from app.demo.data import _at
from migrations import runner
from models.accounts import Account
from models.billing import Charge
from models.identity import User
from services.accounts import window_countdown
from services.passwords import verify_password
from services.periods import add_months
from tests.dates import CURRENT, LAST_BILLED, TODAY

MONTHS = 36
EXTRA = 50
SERVER_URL = async_url(os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres")

TABLES = (
    "suppliers",
    "branches",
    "services",
    "tariffs",
    "users",
    "consents",
    "accounts",
    "account_services",
    "user_accounts",
    "meters",
    "reading_submissions",
    "readings",
    "charges",
    "payments",
    "payment_allocations",
    "payment_status_changes",
    "period_balances",
    "receipts",
    "appeals",
    "applications",
    "request_events",
    "documents",
    "files",
    "faq_entries",
    "shop_items",
    "promotions",
    "surveys",
    "survey_questions",
    "offices",
    "office_slots",
    "notifications",
)


def _dsn(database: str) -> str:
    return make_url(SERVER_URL).set(drivername="postgresql", database=database).render_as_string(False)


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(_dsn("postgres"))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def scratch_databases() -> Iterator[list[str]]:
    """Names of the scratch databases made by :func:`new_database`; all dropped after the module."""
    names: list[str] = []
    yield names
    for name in names:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def new_database(names: list[str]) -> Database:
    """A fresh migrated scratch database."""
    name = f"demo_scratch_{uuid.uuid4().hex[:10]}"
    names.append(name)
    await _admin(f'CREATE DATABASE "{name}"')
    url = make_url(SERVER_URL).set(database=name).render_as_string(False)
    await asyncio.to_thread(runner.upgrade, url)
    return Database(url, pool_size=2)


async def table_counts(db: Database) -> dict[str, int]:
    async with db.engine.connect() as conn:
        return {
            table: (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
            for table in TABLES
        }


LOADED: dict[str, int] = {}
"""What :func:`loaded`'s ``demo.load`` answered (rows per table, ``imported_<entity>`` rows the billing
import changed)."""


@pytest.fixture(scope="module")
async def loaded(scratch_databases: list[str]) -> AsyncIterator[Database]:
    """A database with the core demo set and ``EXTRA`` synthetic accounts."""
    db = await new_database(scratch_databases)
    LOADED.update(await demo.load(db, today=TODAY, months=MONTHS, extra_accounts=EXTRA))
    yield db
    await db.dispose()


async def scalar(db: Database, sql: str, **params: object) -> object:
    async with db.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar_one()


async def balance(db: Database, account_id: int) -> Decimal:
    """Last closing balance plus payments after it (what B4 shows), debt positive."""
    value = await scalar(
        db,
        """
        SELECT coalesce((SELECT sum(closing) FROM period_balances WHERE account_id = :a
                         AND period = (SELECT max(period) FROM period_balances WHERE account_id = :a)), 0)
             - coalesce((SELECT sum(l.amount) FROM payment_allocations l JOIN payments p ON p.id =
                 l.payment_id
                         WHERE l.account_id = :a AND p.status = 'SUCCEEDED'
                         AND l.period > (SELECT max(period) FROM period_balances WHERE account_id = :a)), 0)
        """,
        a=account_id,
    )
    assert isinstance(value, Decimal)
    return value


FINGERPRINT = """
SELECT md5(string_agg(row_text, '|' ORDER BY row_text)) FROM (
    SELECT concat_ws(',', a.number, c.period, s.code, c.zone, c.volume, c.rate, c.amount, c.recalculation)
        AS row_text
    FROM charges c JOIN accounts a ON a.id = c.account_id JOIN services s ON s.id = c.service_id
    UNION ALL
    SELECT concat_ws(',', a.number, r.period, m.serial, r.zone, r.value, r.source, r.accepted, r.submitted_at)
    FROM readings r JOIN accounts a ON a.id = r.account_id JOIN meters m ON m.id = r.meter_id
    UNION ALL
    SELECT concat_ws(',', a.number, l.period, l.amount, p.paid_at, p.status)
    FROM payment_allocations l JOIN payments p ON p.id = l.payment_id JOIN accounts a ON a.id = l.account_id
    UNION ALL
    SELECT concat_ws(',', u.phone, u.last_name, u.first_name, u.middle_name, u.email, u.created_at) FROM
        users u
) AS rows
"""


async def test_K1_demo_is_deterministic_and_rerunnable(scratch_databases: list[str]) -> None:
    first, second = await new_database(scratch_databases), await new_database(scratch_databases)
    try:
        await demo.load(first, today=TODAY, months=MONTHS, extra_accounts=30)
        counts = await table_counts(first)
        assert counts["accounts"] == 5 + 30

        again = await demo.load(first, today=TODAY, months=MONTHS)  # the core set is not duplicated
        assert await table_counts(first) == counts
        assert again.get("accounts", 0) == 0

        await demo.load(second, today=TODAY, months=MONTHS, extra_accounts=30)
        assert await table_counts(second) == counts
        assert await scalar(first, FINGERPRINT) == await scalar(second, FINGERPRINT)
    finally:
        await first.dispose()
        await second.dispose()


async def test_K1_demo_appends_synthetic_accounts_in_several_calls(scratch_databases: list[str]) -> None:
    """Two calls of 13 + 17 accounts give the same rows as one call of 30 (numbers and users continue)."""
    split, whole = await new_database(scratch_databases), await new_database(scratch_databases)
    try:
        await demo.load(split, today=TODAY, months=MONTHS, extra_accounts=13)
        await demo.load(split, today=TODAY, months=MONTHS, extra_accounts=17)
        await demo.load(whole, today=TODAY, months=MONTHS, extra_accounts=30)
        assert await table_counts(split) == await table_counts(whole)
        assert await scalar(split, FINGERPRINT) == await scalar(whole, FINGERPRINT)
    finally:
        await split.dispose()
        await whole.dispose()


@pytest.mark.calendar  # date-dependent: CI runs it again on other days
async def test_A3_demo_customer_has_the_manuals_data(loaded: Database) -> None:
    async with loaded.session() as session:
        user = (await session.execute(select(User).where(User.phone == demo.DEMO_PHONE_E164))).scalar_one()
        assert (user.last_name, user.first_name, user.middle_name) == ("Иванов", "Иван", "Иванович")
        assert user.email == demo.DEMO_EMAIL and user.email_confirmed_at is not None
        assert verify_password(user.password_hash, demo.DEMO_PASSWORD)
        assert demo.e164(demo.DEMO_PHONE) == demo.DEMO_PHONE_E164
        consents = await scalar(
            loaded, "SELECT count(*) FROM consents WHERE user_id = :u AND kind = 'PERSONAL_DATA'", u=user.id
        )
        assert consents >= 1  # type: ignore[operator]
        staff = {
            row.role: row
            for row in (await session.execute(select(User).where(User.role != "CUSTOMER"))).scalars()
        }
        for role, phone, email, password in demo.DEMO_STAFF:
            assert staff[role].phone == demo.e164(phone) and staff[role].email == email
            # SEC2: the published staff passwords only with staff_passwords=True (development)
            assert not verify_password(staff[role].password_hash, password)

    async with loaded.engine.connect() as conn:
        links = (
            await conn.execute(
                text(
                    """
            SELECT a.id, a.number, a.address, a.owner_last_name, b.name, b.reading_window_start_day AS s,
                   b.reading_window_end_day AS e, ua.display_name, ua.e_receipt_enabled
            FROM user_accounts ua JOIN accounts a ON a.id = ua.account_id JOIN branches b ON b.id =
                a.branch_id
            WHERE ua.user_id = :u ORDER BY a.number
            """
                ),
                {"u": user.id},
            )
        ).all()
    assert len(links) >= 3
    by_number = {row.number: row for row in links}
    main = by_number[demo.DEMO_ACCOUNT_NUMBER]
    assert main.address == "г. Рязань, ул. Почтовая, д. 61, кв. 95"
    assert main.name == "Скопинское отделение" and main.owner_last_name == "Иванов"
    assert (main.s, main.e) == (15, 25)
    assert window_countdown(TODAY, main.s, main.e).is_open is (15 <= TODAY.day <= 25)
    assert await balance(loaded, main.id) > 0  # «К оплате»

    balances = {row.number: await balance(loaded, row.id) for row in links}
    assert any(value < 0 for value in balances.values())  # «Переплата»
    zero = [row for row in links if balances[row.number] == 0]
    assert zero and (zero[0].s, zero[0].e) == (1, 5)  # «Задолженность отсутствует», Касимовское
    assert all(row.display_name for row in links)
    assert any(row.e_receipt_enabled for row in links) and not all(row.e_receipt_enabled for row in links)


@pytest.mark.calendar  # date-dependent: CI runs it again on other days
async def test_D2_demo_account_has_every_month_of_charges(loaded: Database) -> None:
    account_id = await scalar(loaded, "SELECT id FROM accounts WHERE number = :n", n=demo.DEMO_ACCOUNT_NUMBER)
    periods = await scalar(
        loaded,
        "SELECT array_agg(DISTINCT period ORDER BY period) FROM charges WHERE account_id = :a",
        a=account_id,
    )
    expected = [add_months(CURRENT, -n) for n in range(MONTHS, 0, -1)]
    assert periods == expected
    per_month = await scalar(
        loaded,
        """SELECT min(n) FROM (SELECT count(DISTINCT service_id) AS n FROM charges WHERE account_id = :a
           GROUP BY period) AS x""",
        a=account_id,
    )
    services = await scalar(
        loaded, "SELECT count(*) FROM account_services WHERE account_id = :a", a=account_id
    )
    assert per_month == services and services >= 3  # type: ignore[operator]
    recalculations = await scalar(
        loaded,
        "SELECT array_agg(DISTINCT sign(recalculation)) FROM charges WHERE account_id = :a",
        a=account_id,
    )
    assert set(recalculations) == {-1, 0, 1}  # type: ignore[call-overload]


async def test_B1_unlinked_account_and_other_customers_account(loaded: Database) -> None:
    unlinked = await scalar(
        loaded, "SELECT id FROM accounts WHERE number = :n", n=demo.UNLINKED_ACCOUNT_NUMBER
    )
    assert await scalar(loaded, "SELECT count(*) FROM user_accounts WHERE account_id = :a", a=unlinked) == 0
    assert await scalar(loaded, "SELECT count(*) FROM receipts WHERE account_id = :a", a=unlinked) == 0
    owner = await scalar(
        loaded,
        """SELECT u.phone FROM user_accounts ua JOIN users u ON u.id = ua.user_id JOIN accounts a
           ON a.id = ua.account_id WHERE a.number = :n""",
        n=demo.SECOND_CUSTOMER_ACCOUNT_NUMBER,
    )
    assert owner == demo.SECOND_CUSTOMER[1]


@pytest.mark.calendar  # date-dependent: CI runs it again on other days
async def test_E2_readings_grow_and_match_charged_volumes(loaded: Database) -> None:
    decreasing = await scalar(
        loaded,
        """SELECT count(*) FROM (
               SELECT value < lag(value) OVER (PARTITION BY meter_id, zone ORDER BY period, id) AS down
           FROM readings WHERE superseded_by_id IS NULL) AS x WHERE down""",
    )
    assert decreasing == 0
    mismatched = await scalar(
        loaded,
        """
        WITH r AS (SELECT account_id, meter_id, zone, period,
                          value - lag(value) OVER (PARTITION BY meter_id, zone ORDER BY period) AS used
                   FROM readings WHERE superseded_by_id IS NULL)
        SELECT count(*) FILTER (WHERE c.volume <> r.used) FROM r
        JOIN meters m ON m.id = r.meter_id
        JOIN charges c ON c.account_id = r.account_id AND c.period = r.period AND c.service_id = m.service_id
                      AND coalesce(c.zone, 'SINGLE') = r.zone
        WHERE r.used IS NOT NULL
        """,
    )
    assert mismatched == 0
    sources = await scalar(loaded, "SELECT array_agg(DISTINCT source ORDER BY source) FROM readings")
    assert sources == ["AMI", "CABINET", "MOBILE", "OPERATOR"]


@pytest.mark.calendar  # date-dependent: CI runs it again on other days
async def test_D7_balances_are_consistent_with_charges_and_payments(loaded: Database) -> None:
    broken = await scalar(
        loaded,
        """
        SELECT count(*) FROM period_balances b
        WHERE b.closing <> b.opening + b.charged - b.paid
           OR b.charged <> (SELECT coalesce(sum(amount + recalculation), 0) FROM charges c
                            WHERE c.account_id = b.account_id AND c.period = b.period AND c.supplier_id =
                                b.supplier_id)
           OR b.paid <> (SELECT coalesce(sum(l.amount), 0) FROM payment_allocations l
                         JOIN payments p ON p.id = l.payment_id AND p.status = 'SUCCEEDED'
                         WHERE l.account_id = b.account_id AND l.period = b.period AND l.supplier_id =
                             b.supplier_id)
        """,
    )
    assert broken == 0
    unbalanced = await scalar(
        loaded,
        """SELECT count(*) FROM payments p WHERE p.amount <>
           (SELECT sum(amount) FROM payment_allocations l WHERE l.payment_id = p.id)""",
    )
    assert unbalanced == 0


@pytest.mark.calendar  # date-dependent: CI runs it again on other days
async def test_K1_extra_accounts_have_full_history(loaded: Database) -> None:
    rows = await scalar(
        loaded,
        """
        SELECT count(*) FROM accounts a
        WHERE a.number ~ '^7[0-9]{7}$'
          AND (SELECT count(DISTINCT (period, service_id)) FROM charges c WHERE c.account_id = a.id)
              = :months * (SELECT count(*) FROM account_services s WHERE s.account_id = a.id)
          AND (SELECT count(*) FROM account_services s WHERE s.account_id = a.id) >= 3
          AND EXISTS (SELECT 1 FROM user_accounts ua WHERE ua.account_id = a.id)
          AND EXISTS (SELECT 1 FROM readings r WHERE r.account_id = a.id)
        """,
        months=MONTHS,
    )
    assert rows == EXTRA
    assert await scalar(loaded, "SELECT count(DISTINCT branch_id) FROM accounts WHERE number ~ '^7'") == len(
        demo.BRANCHES
    )
    # the benchmark's logins: every synthetic user up to the last one exists with the demo password
    last_user = demo.synthetic_user_of_account(EXTRA - 1)
    for index in (0, last_user):
        phone = demo.synthetic_user_phone(index)
        password_hash = await scalar(loaded, "SELECT password_hash FROM users WHERE phone = :p", p=phone)
        assert verify_password(password_hash, demo.DEMO_PASSWORD)  # type: ignore[arg-type]


async def test_identity_sequences_are_ahead_of_loaded_ids(loaded: Database) -> None:
    async with loaded.session() as session:
        user = User(phone="+79990001122", last_name="Новый", first_name="Пользователь")
        session.add(user)
        branch_id: int = (await session.execute(text("SELECT min(id) FROM branches"))).scalar_one()
        account = Account(
            branch_id=branch_id,
            number="99999999",
            owner_last_name="Новый",
            owner_first_name="Владелец",
            address="г. Рязань",
        )
        session.add(account)
        await session.flush()
        supplier, service = (
            await session.execute(text("SELECT supplier_id, id FROM services LIMIT 1"))
        ).one()
        charge = Charge(
            account_id=account.id,
            period=LAST_BILLED,
            service_id=service,
            supplier_id=supplier,
            amount=Decimal("1.00"),
        )
        session.add(charge)
        await session.flush()
        for table in ("users", "accounts", "charges"):
            assert await session.scalar(text(f"SELECT max(id) FROM {table}")) in (
                user.id,
                account.id,
                charge.id,
            )
        await session.rollback()


async def test_issue18_demo_billing_history_arrives_through_the_billing_import(loaded: Database) -> None:
    """The demo's billing data (core and synthetic) is what the billing import made of exchange files, the
    cabinet readings billing accepted are acknowledged (not copied), and the history announces nothing."""
    from services.scheduler import new_receipt_notifications

    for entity, table in (
        ("accounts", "accounts"),
        ("meters", "meters"),
        ("charges", "charges"),
        ("balances", "period_balances"),
        ("receipts", "receipts"),
    ):  # every row of these tables was inserted by an import
        assert LOADED[f"imported_{entity}"] == await scalar(loaded, f"SELECT count(*) FROM {table}"), entity
    for table in ("accounts", "meters", "charges"):
        assert await scalar(loaded, f"SELECT count(*) FROM {table} WHERE billing_id IS NULL") == 0, table
    # accepted readings: billing's ids; the accepted ones the import made equal all accepted readings
    assert await scalar(loaded, "SELECT count(*) FROM readings WHERE accepted AND billing_id IS NULL") == 0
    assert LOADED["imported_readings"] == await scalar(loaded, "SELECT count(*) FROM readings WHERE accepted")
    # a reading submitted in the cabinet and accepted by billing is the cabinet's own row (E2)
    acknowledged = await scalar(
        loaded,
        """SELECT count(*) FROM readings r JOIN accounts a ON a.id = r.account_id
           WHERE a.number = :n AND r.accepted AND r.submission_id IS NOT NULL
             AND r.submitted_by_user_id IS NOT NULL AND r.billing_id LIKE 'R-%'""",
        n=demo.DEMO_ACCOUNT_NUMBER,
    )
    assert isinstance(acknowledged, int) and acknowledged > 0
    assert (
        await scalar(
            loaded,
            """SELECT count(*) FROM (SELECT meter_id, zone, period FROM readings
               WHERE superseded_by_id IS NULL GROUP BY meter_id, zone, period
               HAVING count(*) > 1) AS twice""",
        )
        == 0
    )
    # history is not news: the import notified nobody, nothing went into the change feed, and the
    # new-receipt job announces at most the last closed month's receipt (in its first week, as in production)
    assert LOADED["imported_notified"] == 0
    assert await scalar(loaded, "SELECT count(*) FROM notifications WHERE title ~ '^Квитанция за [0-9]'") == 0
    assert await scalar(loaded, "SELECT count(*) FROM exchange_changes") == 0
    await new_receipt_notifications(loaded.unit_of_work, _at(TODAY, 10))
    announced = await scalar(
        loaded,
        "SELECT count(*) FROM notifications WHERE title ~ '^Квитанция за [0-9]' AND title <> :last",
        last=f"Квитанция за {LAST_BILLED:%m.%Y}",
    )
    assert announced == 0
