"""The demo loader: the core data set. Billing's data comes in through the billing import as production's
does (issue 18): the master data first (:func:`reference_set`), then the history billing owns — charges,
balances, receipts and the readings it accepted (:class:`_BillingSet`) — after the cabinet's own rows
(users, links, submitted readings, cabinet payments, appeals, content) are inserted through the ORM.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import math
import random
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.demo.data import (
    _MILLI,
    _STAFF_NAMES,
    BRANCHES,
    COMMON_KWH_PER_M2,
    DEMO_ACCOUNT_NUMBER,
    DEMO_EMAIL,
    DEMO_PASSWORD,
    DEMO_PHONE_E164,
    DEMO_STAFF,
    GROUP_ELECTRIC,
    GROUP_GAS,
    HEATING_GCAL_PER_M2,
    MSK,
    POLICY_VERSION,
    SECOND_CUSTOMER,
    SECOND_CUSTOMER_ACCOUNT_NUMBER,
    SERVICES,
    SUPPLIERS,
    UNLINKED_ACCOUNT_NUMBER,
    WATER_NORM_PER_PERSON,
    BranchSpec,
    _at,
    _day_of,
    _fix_sequences,
    _money,
    _seed,
    e164,
    tariff_rate,
    tariff_years,
)
from app.demo.synthetic import _SYNTHETIC_NUMBER_RE, _load_synthetic
from models.accounts import Account, StoveType, UserAccount
from models.appeals import (
    Appeal,
    Application,
    ApplicationKind,
    Document,
    DocumentType,
    RequestEvent,
    RequestEventKind,
    RequestStatus,
)
from models.branches import Branch, Service, Supplier
from models.content import (
    FaqEntry,
    Office,
    OfficeSlot,
    Promotion,
    QuestionKind,
    ShopCategory,
    ShopItem,
    Survey,
    SurveyAudience,
    SurveyOption,
    SurveyQuestion,
)
from models.files import StoredFile
from models.identity import Consent, ConsentKind, User, UserRole
from models.meters import Meter, ZoneScheme
from models.notifications import Notification, NotificationCategory, NotificationChannel, NotificationSetting
from models.payments import (
    AutopaySetting,
    Payment,
    PaymentAllocation,
    PaymentMethod,
    PaymentMethodKind,
    PaymentStatus,
    PaymentStatusChange,
)
from models.readings import Reading, ReadingSource, ReadingSubmission
from models.tariffs import Tariff, Zone
from services import clock
from services.exchange.formats import render
from services.exchange.importer import import_batch
from services.passwords import hash_password
from services.periods import add_months, month_start
from services.storage import local_storage

# --- the loader ---------------------------------------------------------------------------------------------


@dataclass
class _Ref:
    """Ids of the reference rows, by code."""

    suppliers: dict[str, int]
    branches: dict[str, int]
    branch_specs: dict[int, BranchSpec]
    services: dict[str, int]
    service_supplier: dict[str, int]
    # (branch id, service code, zone, group) → [(valid_from, valid_to, rate)]
    tariffs: dict[tuple[int, str, Zone, str | None], list[tuple[dt.date, dt.date | None, Decimal]]]
    supplier_keys: dict[int, str]  # supplier id → its billing id

    def supplier_key(self, supplier_id: int) -> str:
        return self.supplier_keys[supplier_id]

    def rate(self, branch_id: int, service: str, zone: Zone, group: str | None, period: dt.date) -> Decimal:
        for start, end, rate in self.tariffs[(branch_id, service, zone, group)]:
            if start <= period and (end is None or period <= end):
                return rate
        raise LookupError(f"no tariff for {service} {zone} on {period}")


@dataclass
class _BillingSet:
    """The billing-owned history of the core accounts as billing sends it (issue 18): rows of the exchange
    entities by column name, imported through :func:`services.exchange.importer.import_batch`
    (:func:`_import_history`). A reading billing accepted from the cabinet names the cabinet's
    :class:`Reading` in ``cabinet_reading_id`` (its id is known once the ORM has flushed it)."""

    charges: list[dict[str, Any]] = field(default_factory=list)
    balances: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)
    receipts: list[dict[str, Any]] = field(default_factory=list)
    readings: list[dict[str, Any]] = field(default_factory=list)

    def files(self, *, since: dt.date | None = None, before: dt.date | None = None) -> dict[str, bytes]:
        """The batch of the periods ``since`` ≤ period < ``before``: ``<entity>.csv`` per entity with rows."""
        readings = [
            {**row, "cabinet_reading_id": cabinet.id}
            if isinstance(cabinet := row.get("cabinet_reading_id"), Reading)
            else row
            for row in self.readings
        ]
        entities = {
            "charges": self.charges,
            "balances": self.balances,
            "payments": self.payments,
            "receipts": self.receipts,
            "readings": readings,
        }
        return {
            f"{name}.csv": render(name, chosen).encode()
            for name, rows in entities.items()
            if (
                chosen := [
                    row
                    for row in rows
                    if (since is None or row["period"] >= since)
                    and (before is None or row["period"] < before)
                ]
            )
        }


HISTORY_TABLES = {
    "charges": "charges",
    "balances": "period_balances",
    "payments": "external_payments",
    "receipts": "receipts",
    "readings": "readings",
}
"""Exchange entity → the table it fills."""


def staff_password_hashes(staff_passwords: bool) -> dict[UserRole, str]:
    """The password hash of each demo staff user: of its :data:`DEMO_STAFF` password with
    ``staff_passwords`` (development), else of a random password generated and forgotten here."""
    return {
        role: hash_password(password if staff_passwords else secrets.token_urlsafe(32))
        for role, _phone, _email, password in DEMO_STAFF
    }


async def load(
    db: Database,
    *,
    extra_accounts: int = 0,
    months: int = 36,
    today: dt.date | None = None,
    staff_passwords: bool = False,
) -> dict[str, int]:
    """Load the demo data set into a migrated database; returns the rows inserted per table.

    The demo customers get the documented :data:`DEMO_PASSWORD`; staff users get their :data:`DEMO_STAFF`
    passwords only with ``staff_passwords`` (the CLI passes it in development), else unknown random ones.
    Production never loads the demo set (``app/config_check.py``, ``kabinet demo`` refuses).

    ``today`` (default: today in Moscow) anchors every date: history covers the ``months`` months before
    today's month, plus payments and some readings of the current month. The core set is inserted only
    when the demo user is missing; ``extra_accounts`` synthetic accounts are always appended (numbers
    continue after existing ones). The result also has ``synthetic_users`` (users created this call) and
    ``synthetic_accounts_total``.
    """
    today = today or clock.today(MSK)
    counts: dict[str, int] = defaultdict(int)
    password_hash = hash_password(DEMO_PASSWORD)
    async with db.session() as session:
        exists = (
            await session.execute(
                select(User.id).where(User.phone == DEMO_PHONE_E164, User.deleted_at.is_(None))
            )
        ).first()
        if exists is None:
            await session.rollback()
            await _import_reference(db, today=today, months=months, counts=counts)
            # the demo history is not news for billing: keep it out of the change feed (issue 18)
            await session.execute(text("SET LOCAL kabinet.exchange = 'import'"))
            bill = _BillingSet()
            await _load_core(
                session,
                bill,
                today=today,
                months=months,
                password_hash=password_hash,
                counts=counts,
                staff_hashes=staff_password_hashes(staff_passwords),
            )
            # billing's history until last month, in the same transaction: a refused batch leaves no
            # half-loaded demo; then the last closed month, billing's latest batch
            last = add_months(month_start(today), -1)
            await session.flush()  # the cabinet readings billing acknowledges get their ids
            await _import_history(
                session, bill.files(before=last), now=_at(last, HISTORY_SENT), counts=counts
            )
            await session.commit()
            async with db.session() as latest:
                files = bill.files(since=last)
                await _import_history(latest, files, now=_at(month_start(today), HISTORY_SENT), counts=counts)
                await latest.commit()
    if extra_accounts > 0:
        await _load_synthetic(
            db, count=extra_accounts, months=months, today=today, password_hash=password_hash, counts=counts
        )
    async with db.engine.connect() as conn:
        counts["synthetic_accounts_total"] = (
            await conn.execute(text(f"SELECT count(*) FROM accounts WHERE number ~ '{_SYNTHETIC_NUMBER_RE}'"))
        ).scalar_one()
    return dict(counts)


async def _load_core(
    session: AsyncSession,
    bill: _BillingSet,
    *,
    today: dt.date,
    months: int,
    password_hash: str,
    counts: dict[str, int],
    staff_hashes: dict[UserRole, str],
) -> None:
    ref = await _reference_data(session, today=today, months=months)
    users = await _people(
        session,
        today=today,
        months=months,
        password_hash=password_hash,
        counts=counts,
        staff_hashes=staff_hashes,
    )
    accounts = await _core_accounts(session, ref, users, today=today, months=months, counts=counts)
    for spec, account in accounts:
        await _core_history(
            session, ref, bill, spec, account, users, today=today, months=months, counts=counts
        )
    await _requests_and_documents(session, ref, users, accounts, today=today, counts=counts)
    await _content(session, ref, users, accounts, today=today, counts=counts)
    await _fix_sequences(session, _CORE_TABLES)


HISTORY_SENT = 3
"""The hour (Moscow) on the 1st of a month when billing sends the batch of the month it closed."""


async def _import_history(
    session: AsyncSession, files: dict[str, bytes], *, now: dt.datetime, counts: dict[str, int]
) -> None:
    """Import a batch of the billing-owned history through the billing import, in the caller's transaction,
    sent ``now``. History is not news: the import notifies nobody of its receipts (the new-receipt job
    still announces the last month's in its first week, as in production)."""
    if not files:
        return
    report = await import_batch(
        session,
        files,
        storage=local_storage(Path("/nonexistent")),  # the batch names no documents
        now=now,
        announce=False,
    )
    for name, entity in report.entities.items():
        counts[HISTORY_TABLES[name]] += entity.inserted
        counts[f"imported_{name}"] += entity.changed
    counts["imported_notified"] += report.notified


def _add(session: AsyncSession, counts: dict[str, int], *rows: Any) -> None:
    for row in rows:
        session.add(row)
        counts[row.__tablename__] += 1


async def _insert(
    session: AsyncSession, counts: dict[str, int], model: Any, rows: list[dict[str, Any]]
) -> None:
    if rows:
        await session.execute(insert(model), rows)
        counts[model.__tablename__] += len(rows)


# --- reference data -----------------------------------------------------------------------------------------


def _tariff_key(branch: str, service: str, zone: Zone, group: str | None, year: int) -> str:
    kind = {None: "", GROUP_GAS: "-G", GROUP_ELECTRIC: "-E"}[group]
    return f"T-{branch}-{service}-{zone.value}{kind}-{year}"


def reference_set(*, today: dt.date, months: int) -> dict[str, bytes]:
    """The demo's billing-owned master data as billing sends it (issue 18): suppliers, branches, services
    and their tariffs (one per branch, service, zone, consumer group and tariff year starting 1 July), the
    core accounts with their services and meters."""
    suppliers = [{"billing_id": f"S{fields['inn']}", **fields} for fields in SUPPLIERS.values()]
    branches = [
        {
            "billing_id": f"B{spec.code}",
            "code": spec.code,
            "name": spec.name,
            "time_zone": "Europe/Moscow",
            "reading_window_start_day": spec.window[0],
            "reading_window_end_day": spec.window[1],
            "address": spec.address,
            "phone": spec.phone,
            "position": position,
            "video_consultation_url": f"https://video.resk.demo/room/{spec.code.lower()}",
        }
        for position, spec in enumerate(BRANCHES)
    ]
    services = [
        {
            "billing_id": spec.code,
            "code": spec.code,
            "name": spec.name,
            "unit": spec.unit,
            "supplier": f"S{SUPPLIERS[spec.supplier]['inn']}",
            "position": position,
        }
        for position, spec in enumerate(SERVICES)
    ]
    first_month = add_months(month_start(today), -months - 1)  # the base readings' month
    years = tariff_years(first_month, today)
    tariffs: list[dict[str, Any]] = []
    for branch in BRANCHES:
        for number, spec in enumerate(SERVICES):
            variants: list[tuple[Zone, str | None]] = [(Zone.SINGLE, None)]
            if spec.code == "ELECTRICITY":
                variants = [
                    (zone, group)
                    for group in (GROUP_GAS, GROUP_ELECTRIC)
                    for zone in (Zone.SINGLE, Zone.DAY, Zone.NIGHT)
                ]
            for year in years:
                for zone, group in variants:
                    tariffs.append(
                        {
                            "billing_id": _tariff_key(branch.code, spec.code, zone, group, year),
                            "branch": f"B{branch.code}",
                            "service": spec.code,
                            "zone": zone.value,
                            "consumer_group": group,
                            "rate": tariff_rate(spec, year, zone, group),
                            "valid_from": dt.date(year, 7, 1),
                            "valid_to": None if year == years[-1] else dt.date(year + 1, 6, 30),
                            "document_title": spec.document,
                            "document_number": f"{120 + (year % 100) * 3 + number}",
                            "document_date": dt.date(year - 1, 12, 18 + number % 3),
                        }
                    )
    accounts = [
        {
            "billing_id": f"{spec.branch}-{spec.number}",
            "branch": f"B{spec.branch}",
            "number": spec.number,
            "owner_last_name": spec.owner[0],
            "owner_first_name": spec.owner[1],
            "owner_middle_name": spec.owner[2],
            "address": spec.address,
            "total_area": spec.total_area,
            "living_area": spec.living_area,
            "owners_count": spec.owners,
            "registered_count": spec.registered,
            "residing_count": spec.residing,
            "rooms": spec.rooms,
            "stove_type": spec.stove.value,
            "electric_heating": spec.electric_heating,
            "e_receipt_allowed": True,
        }
        for spec in CORE_ACCOUNTS
    ]
    account_services = [
        {
            "account": f"{spec.branch}-{spec.number}",
            "service": service,
            "zone_scheme": scheme.value if scheme is not None else None,
            "started_on": spec.opened,
        }
        for spec in CORE_ACCOUNTS
        for service, scheme in spec.services
    ]
    meters = [
        {
            "billing_id": f"M-{spec.number}-{meter.serial}",
            "account": f"{spec.branch}-{spec.number}",
            "service": meter.service,
            "serial": meter.serial,
            "model": meter.model,
            "zone_scheme": meter.scheme.value,
            "digits": meter.digits,
            "decimals": meter.decimals,
            "location": meter.location,
            "installed_on": meter.installed,
            "verified_on": meter.verified,
            "verification_due": meter.verification_due,
            "seal_number": meter.seal,
            "sealed_on": meter.installed,
        }
        for spec in CORE_ACCOUNTS
        for meter in spec.meters
    ]
    return {
        "suppliers.csv": render("suppliers", suppliers).encode(),
        "branches.csv": render("branches", branches).encode(),
        "services.csv": render("services", services).encode(),
        "tariffs.csv": render("tariffs", tariffs).encode(),
        "accounts.csv": render("accounts", accounts).encode(),
        "account_services.csv": render("account_services", account_services).encode(),
        "meters.csv": render("meters", meters).encode(),
    }


async def _import_reference(db: Database, *, today: dt.date, months: int, counts: dict[str, int]) -> None:
    """Bring the reference data in through the billing import, in its own transaction (idempotent: a
    rerun after a failed core load changes nothing). No documents: ``kabinet demo`` adds them."""
    async with db.session() as session:
        report = await import_batch(
            session,
            reference_set(today=today, months=months),
            storage=local_storage(Path("/nonexistent")),  # the set names no documents
            now=_at(add_months(month_start(today), -months - 2), 9),  # created before the history
        )
        await session.commit()
    for name, entity in report.entities.items():
        counts[name] += entity.inserted
        counts[f"imported_{name}"] += entity.changed


async def _reference_data(session: AsyncSession, *, today: dt.date, months: int) -> _Ref:
    """The ids of the reference rows the import brought (:func:`reference_set`)."""
    suppliers = {
        code: (
            await session.execute(select(Supplier.id).where(Supplier.billing_id == f"S{fields['inn']}"))
        ).scalar_one()
        for code, fields in SUPPLIERS.items()
    }
    branches = {
        spec.code: (
            await session.execute(select(Branch.id).where(Branch.billing_id == f"B{spec.code}"))
        ).scalar_one()
        for spec in BRANCHES
    }
    services = {
        spec.code: (
            await session.execute(select(Service.id).where(Service.billing_id == spec.code))
        ).scalar_one()
        for spec in SERVICES
    }
    tariffs: dict[tuple[int, str, Zone, str | None], list[tuple[dt.date, dt.date | None, Decimal]]] = (
        defaultdict(list)
    )
    codes = {service_id: code for code, service_id in services.items()}
    rows = await session.execute(
        select(
            Tariff.branch_id,
            Tariff.service_id,
            Tariff.zone,
            Tariff.consumer_group,
            Tariff.valid_from,
            Tariff.valid_to,
            Tariff.rate,
        ).order_by(Tariff.valid_from)
    )
    for branch_id, service_id, zone, group, start, end, rate in rows:
        tariffs[(branch_id, codes[service_id], zone, group)].append((start, end, rate))
    return _Ref(
        suppliers=suppliers,
        branches=branches,
        branch_specs={branches[spec.code]: spec for spec in BRANCHES},
        services=services,
        service_supplier={spec.code: suppliers[spec.supplier] for spec in SERVICES},
        tariffs=dict(tariffs),
        supplier_keys={suppliers[code]: f"S{fields['inn']}" for code, fields in SUPPLIERS.items()},
    )


# --- users --------------------------------------------------------------------------------------------------


async def _people(
    session: AsyncSession,
    *,
    today: dt.date,
    months: int,
    password_hash: str,
    counts: dict[str, int],
    staff_hashes: dict[UserRole, str],
) -> dict[str, User]:
    registered = _at(add_months(month_start(today), -months - 1) + dt.timedelta(days=9), 19, 42)
    users = {
        "ivanov": User(
            phone=DEMO_PHONE_E164,
            email=DEMO_EMAIL,
            email_confirmed_at=registered,
            last_name="Иванов",
            first_name="Иван",
            middle_name="Иванович",
            password_hash=password_hash,
            password_changed_at=registered,
            role=UserRole.CUSTOMER,
        ),
        "sidorova": User(
            phone=SECOND_CUSTOMER[1],
            email=SECOND_CUSTOMER[2],
            email_confirmed_at=registered,
            last_name="Сидорова",
            first_name="Анна",
            middle_name="Сергеевна",
            password_hash=password_hash,
            password_changed_at=registered,
            role=UserRole.CUSTOMER,
        ),
    }
    for role, phone, email, _password in DEMO_STAFF:
        last, first, middle = _STAFF_NAMES[role]
        users[role.value.lower()] = User(
            phone=e164(phone),
            email=email,
            email_confirmed_at=registered,
            last_name=last,
            first_name=first,
            middle_name=middle,
            password_hash=staff_hashes[role],
            password_changed_at=registered,
            role=role,
            show_hints=False,
        )
    for user in users.values():
        user.created_at = user.updated_at = registered
    _add(session, counts, *users.values())
    await session.flush()
    for key in ("ivanov", "sidorova"):
        _add(
            session,
            counts,
            Consent(
                user_id=users[key].id,
                kind=ConsentKind.PERSONAL_DATA,
                policy_version=POLICY_VERSION,
                accepted_at=registered,
                client_ip="203.0.113.24",
                user_agent="Mozilla/5.0 (demo)",
            ),
        )
    _add(
        session,
        counts,
        Consent(
            user_id=users["ivanov"].id,
            kind=ConsentKind.E_RECEIPT,
            policy_version=POLICY_VERSION,
            accepted_at=registered + dt.timedelta(minutes=5),
        ),
        PaymentMethod(
            user_id=users["ivanov"].id,
            gateway="sandbox",
            token="demo-card-ivanov-4242",
            card_brand="MIR",
            card_last4="4242",
            expiry_month=8,
            expiry_year=today.year + 3,
            created_at=registered + dt.timedelta(days=30),
        ),
    )
    for category, channel, enabled in (
        (NotificationCategory.MARKETING, NotificationChannel.SMS, False),
        (NotificationCategory.MARKETING, NotificationChannel.EMAIL, False),
        (NotificationCategory.READINGS, NotificationChannel.PUSH, True),
        (NotificationCategory.PAYMENTS, NotificationChannel.EMAIL, True),
    ):
        _add(
            session,
            counts,
            NotificationSetting(
                user_id=users["ivanov"].id, category=category, channel=channel, enabled=enabled
            ),
        )
    await session.flush()
    return users


# --- core accounts ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _MeterSpec:
    service: str
    scheme: ZoneScheme
    serial: str
    model: str
    digits: int
    decimals: int
    location: str
    # zone → (value at the start of the history, average monthly consumption)
    zones: dict[Zone, tuple[Decimal, Decimal]]
    installed: dt.date
    verified: dt.date
    verification_due: dt.date
    seal: str


@dataclass(frozen=True)
class _AccountSpec:
    number: str
    branch: str
    owner: tuple[str, str, str]
    address: str
    total_area: Decimal
    living_area: Decimal
    owners: int
    registered: int
    residing: int
    rooms: int
    stove: StoveType
    electric_heating: bool
    services: tuple[tuple[str, ZoneScheme | None], ...]
    meters: tuple[_MeterSpec, ...]
    balance: str  # DEBT, OVERPAYMENT, NONE, or NEW (no history at all)
    user: str | None = None
    display_name: str | None = None
    e_receipt: bool = False
    autopay: bool = False
    opened: dt.date = dt.date(2015, 3, 1)


_D = Decimal
CORE_ACCOUNTS: tuple[_AccountSpec, ...] = (
    _AccountSpec(
        number=DEMO_ACCOUNT_NUMBER,
        branch="SKP",
        owner=("Иванов", "Иван", "Иванович"),
        address="г. Рязань, ул. Почтовая, д. 61, кв. 95",
        total_area=_D("54.30"),
        living_area=_D("36.80"),
        owners=2,
        registered=3,
        residing=3,
        rooms=2,
        stove=StoveType.GAS,
        electric_heating=False,
        services=(
            ("ELECTRICITY", ZoneScheme.DAY_NIGHT),
            ("ELECTRICITY_COMMON", None),
            ("WATER_COLD", None),
            ("WATER_HOT", None),
            ("WASTEWATER", None),
            ("HEATING", None),
            ("WASTE", None),
        ),
        meters=(
            _MeterSpec(
                "ELECTRICITY",
                ZoneScheme.DAY_NIGHT,
                "011354178",
                "Меркурий 200.02",
                6,
                1,
                "Лестничная площадка, щиток",
                {Zone.DAY: (_D("18452.3"), _D("165")), Zone.NIGHT: (_D("7311.6"), _D("78"))},
                dt.date(2019, 4, 12),
                dt.date(2019, 4, 12),
                dt.date(2035, 4, 11),
                "РЭСК 0457812",
            ),
            _MeterSpec(
                "WATER_COLD",
                ZoneScheme.SINGLE,
                "21-048213",
                "СГВ-15 «Бетар»",
                5,
                3,
                "Санузел",
                {Zone.SINGLE: (_D("412.118"), _D("8.4"))},
                dt.date(2021, 2, 3),
                dt.date(2021, 2, 3),
                dt.date(2027, 2, 2),
                "ВК 118204",
            ),
            _MeterSpec(
                "WATER_HOT",
                ZoneScheme.SINGLE,
                "21-048577",
                "СГВ-15 «Бетар»",
                5,
                3,
                "Санузел",
                {Zone.SINGLE: (_D("256.904"), _D("4.9"))},
                dt.date(2021, 2, 3),
                dt.date(2021, 2, 3),
                dt.date(2027, 2, 2),
                "ВК 118205",
            ),
        ),
        balance="DEBT",
        user="ivanov",
        display_name="Квартира",
        e_receipt=True,
        opened=dt.date(2012, 9, 1),
    ),
    _AccountSpec(
        number="11111112",
        branch="MHL",
        owner=("Иванов", "Иван", "Иванович"),
        address="Рязанская обл., Михайловский р-н, с. Печерники, ул. Садовая, д. 12",
        total_area=_D("48.00"),
        living_area=_D("32.50"),
        owners=1,
        registered=0,
        residing=1,
        rooms=2,
        stove=StoveType.ELECTRIC,
        electric_heating=False,
        services=(("ELECTRICITY", ZoneScheme.SINGLE), ("WATER_COLD", None), ("WASTE", None)),
        meters=(
            _MeterSpec(
                "ELECTRICITY",
                ZoneScheme.SINGLE,
                "47331920",
                "Нева 103 1SO",
                6,
                2,
                "Фасад дома",
                {Zone.SINGLE: (_D("5210.47"), _D("120"))},
                dt.date(2020, 6, 5),
                dt.date(2020, 6, 5),
                dt.date(2036, 6, 4),
                "РЭСК 0513377",
            ),
        ),
        balance="OVERPAYMENT",
        user="ivanov",
        display_name="Дача",
        e_receipt=False,
        autopay=True,
        opened=dt.date(2018, 5, 14),
    ),
    _AccountSpec(
        number="11111113",
        branch="KSM",
        owner=("Иванова", "Мария", "Петровна"),
        address="Рязанская обл., г. Касимов, ул. Советская, д. 14, кв. 7",
        total_area=_D("41.20"),
        living_area=_D("27.90"),
        owners=1,
        registered=1,
        residing=1,
        rooms=1,
        stove=StoveType.ELECTRIC,
        electric_heating=False,
        services=(
            ("ELECTRICITY", ZoneScheme.SINGLE),
            ("ELECTRICITY_COMMON", None),
            ("WATER_COLD", None),
            ("WASTEWATER", None),
            ("WASTE", None),
        ),
        meters=(
            _MeterSpec(
                "ELECTRICITY",
                ZoneScheme.SINGLE,
                "36250117",
                "Энергомера СЕ101",
                6,
                1,
                "Прихожая",
                {Zone.SINGLE: (_D("30977.4"), _D("135"))},
                dt.date(2017, 11, 20),
                dt.date(2017, 11, 20),
                dt.date(2033, 11, 19),
                "РЭСК 0388102",
            ),
            _MeterSpec(
                "WATER_COLD",
                ZoneScheme.SINGLE,
                "19-220871",
                "ВСКМ 90-15",
                5,
                3,
                "Кухня",
                {Zone.SINGLE: (_D("689.051"), _D("3.2"))},
                dt.date(2019, 8, 9),
                dt.date(2025, 8, 1),
                dt.date(2031, 7, 31),
                "ВК 090114",
            ),
        ),
        balance="NONE",
        user="ivanov",
        display_name="Квартира мамы",
        e_receipt=False,
        opened=dt.date(2009, 1, 20),
    ),
    _AccountSpec(
        number=UNLINKED_ACCOUNT_NUMBER,
        branch="RZN",
        owner=("Петров", "Пётр", "Петрович"),
        address="г. Рязань, ул. Есенина, д. 21, кв. 14",
        total_area=_D("62.10"),
        living_area=_D("44.00"),
        owners=1,
        registered=2,
        residing=2,
        rooms=3,
        stove=StoveType.GAS,
        electric_heating=False,
        services=(("ELECTRICITY", ZoneScheme.SINGLE), ("WATER_COLD", None), ("WASTE", None)),
        meters=(
            _MeterSpec(
                "ELECTRICITY",
                ZoneScheme.SINGLE,
                "58800341",
                "Меркурий 201.8",
                6,
                1,
                "Лестничная площадка",
                {Zone.SINGLE: (_D("0.0"), _D("0"))},
                dt.date(2026, 10, 30),
                dt.date(2026, 10, 30),
                dt.date(2042, 10, 29),
                "РЭСК 0600021",
            ),
        ),
        balance="NEW",
    ),
    _AccountSpec(
        number=SECOND_CUSTOMER_ACCOUNT_NUMBER,
        branch="RZN",
        owner=("Сидорова", "Анна", "Сергеевна"),
        address="г. Рязань, Московское ш., д. 33, кв. 120",
        total_area=_D("38.60"),
        living_area=_D("19.40"),
        owners=1,
        registered=2,
        residing=2,
        rooms=1,
        stove=StoveType.GAS,
        electric_heating=False,
        services=(
            ("ELECTRICITY", ZoneScheme.SINGLE),
            ("ELECTRICITY_COMMON", None),
            ("WATER_COLD", None),
            ("WATER_HOT", None),
            ("WASTEWATER", None),
            ("HEATING", None),
            ("WASTE", None),
        ),
        meters=(
            _MeterSpec(
                "ELECTRICITY",
                ZoneScheme.SINGLE,
                "41020555",
                "Меркурий 201.8",
                6,
                1,
                "Лестничная площадка",
                {Zone.SINGLE: (_D("12004.8"), _D("140"))},
                dt.date(2018, 3, 2),
                dt.date(2018, 3, 2),
                dt.date(2034, 3, 1),
                "РЭСК 0400417",
            ),
            _MeterSpec(
                "WATER_COLD",
                ZoneScheme.SINGLE,
                "20-113402",
                "СГВ-15 «Бетар»",
                5,
                3,
                "Санузел",
                {Zone.SINGLE: (_D("301.400"), _D("5.1"))},
                dt.date(2020, 1, 15),
                dt.date(2020, 1, 15),
                dt.date(2026, 1, 14),
                "ВК 100221",
            ),
            _MeterSpec(
                "WATER_HOT",
                ZoneScheme.SINGLE,
                "20-113403",
                "СГВ-15 «Бетар»",
                5,
                3,
                "Санузел",
                {Zone.SINGLE: (_D("188.250"), _D("3.3"))},
                dt.date(2020, 1, 15),
                dt.date(2020, 1, 15),
                dt.date(2026, 1, 14),
                "ВК 100222",
            ),
        ),
        balance="NONE",
        user="sidorova",
        display_name="Моя квартира",
        e_receipt=True,
    ),
)


async def _core_accounts(
    session: AsyncSession,
    ref: _Ref,
    users: dict[str, User],
    *,
    today: dt.date,
    months: int,
    counts: dict[str, int],
) -> list[tuple[_AccountSpec, Account]]:
    out: list[tuple[_AccountSpec, Account]] = []
    for spec in CORE_ACCOUNTS:  # imported with the reference data (:func:`reference_set`)
        account = (
            await session.execute(select(Account).where(Account.billing_id == f"{spec.branch}-{spec.number}"))
        ).scalar_one()
        out.append((spec, account))
    await session.flush()
    linked = _at(add_months(month_start(today), -months - 1) + dt.timedelta(days=9), 19, 50)
    method_id = (
        await session.execute(select(PaymentMethod.id).where(PaymentMethod.user_id == users["ivanov"].id))
    ).scalar_one()
    for position, (spec, account) in enumerate(out):
        if spec.user is not None:
            link = UserAccount(
                user_id=users[spec.user].id,
                account_id=account.id,
                display_name=spec.display_name,
                e_receipt_enabled=spec.e_receipt,
                linked_at=linked + dt.timedelta(minutes=position),
            )
            _add(session, counts, link)
            if spec.autopay:
                await session.flush()
                _add(
                    session,
                    counts,
                    AutopaySetting(
                        user_account_id=link.id,
                        payment_method_id=method_id,
                        amount_limit=Decimal("5000.00"),
                        day_of_month=None,
                        enabled=True,
                        created_at=linked,
                        updated_at=linked,
                    ),
                )
    await session.flush()
    return out


# --- core history -------------------------------------------------------------------------------------------


async def _core_history(
    session: AsyncSession,
    ref: _Ref,
    bill: _BillingSet,
    spec: _AccountSpec,
    account: Account,
    users: dict[str, User],
    *,
    today: dt.date,
    months: int,
    counts: dict[str, int],
) -> None:
    """Readings, charges, payments, balances and receipts of one core account: the cabinet's rows (submitted
    readings, cabinet payments) inserted, billing's (charges, balances, receipts, accepted readings) into
    ``bill``."""
    if spec.balance == "NEW":
        return
    rng = random.Random(_seed("core", spec.number))
    current = month_start(today)
    first = add_months(current, -months)
    periods = [add_months(first, m) for m in range(months)]
    branch = ref.branch_specs[account.branch_id]
    user = users[spec.user] if spec.user else None
    group = GROUP_ELECTRIC if spec.stove == StoveType.ELECTRIC or spec.electric_heating else GROUP_GAS

    # consumption per (service, zone) and month: metered ones from the meters, the others by norms
    meters = (
        await session.execute(select(Meter).where(Meter.account_id == account.id).order_by(Meter.id))
    ).scalars()
    meter_rows = {meter.service_id: meter for meter in meters}
    usage: dict[tuple[str, Zone], list[Decimal]] = {}
    for meter_spec in spec.meters:
        quantum = Decimal(1).scaleb(-meter_spec.decimals)
        for zone, (_, average) in meter_spec.zones.items():
            values = []
            for period in periods:
                season = 1 + 0.22 * math.cos(2 * math.pi * (period.month - 1) / 12)
                factor = Decimal(str(round(season * rng.uniform(0.82, 1.18), 4)))
                values.append(
                    (average * factor).quantize(
                        quantum if meter_spec.service != "ELECTRICITY" else Decimal(1), ROUND_HALF_UP
                    )
                )
            usage[(meter_spec.service, zone)] = values
    services = dict(spec.services)
    if "WATER_COLD" in services and ("WATER_COLD", Zone.SINGLE) not in usage:
        usage[("WATER_COLD", Zone.SINGLE)] = [WATER_NORM_PER_PERSON * spec.residing] * months
    if "WASTEWATER" in services:
        hot = usage.get(("WATER_HOT", Zone.SINGLE), [Decimal(0)] * months)
        usage[("WASTEWATER", Zone.SINGLE)] = [
            c + h for c, h in zip(usage[("WATER_COLD", Zone.SINGLE)], hot, strict=True)
        ]
    if "ELECTRICITY_COMMON" in services:
        usage[("ELECTRICITY_COMMON", Zone.SINGLE)] = [
            (spec.total_area * COMMON_KWH_PER_M2).quantize(_MILLI)
        ] * months
    if "HEATING" in services:
        usage[("HEATING", Zone.SINGLE)] = [(spec.total_area * HEATING_GCAL_PER_M2).quantize(_MILLI)] * months
    if "WASTE" in services:
        usage[("WASTE", Zone.SINGLE)] = [Decimal(max(spec.residing, 1))] * months

    # readings: a base reading before the history, then one per month in the branch's window
    await _core_readings(
        session, bill, spec, account, meter_rows, ref, usage, user, branch, periods, today, rng, counts
    )
    key = f"{spec.branch}-{spec.number}"  # the account's billing id

    # charges
    recalc_months = (
        {months - 5: Decimal("-0.35"), months - 14: Decimal("0.20")}
        if spec.balance == "DEBT"
        else {months - 9: Decimal("-0.25")}
    )
    charged: dict[tuple[int, int], Decimal] = defaultdict(Decimal)  # (month index, supplier id) → total
    for (service, zone), volumes in sorted(
        usage.items(), key=lambda item: (ref.services[item[0][0]], item[0][1])
    ):
        supplier_id = ref.service_supplier[service]
        zoned = service == "ELECTRICITY"
        for m, (period, volume) in enumerate(zip(periods, volumes, strict=True)):
            rate = ref.rate(
                account.branch_id, service, zone, group if service == "ELECTRICITY" else None, period
            )
            amount = _money(volume * rate)
            recalculation = Decimal("0.00")
            if (
                m in recalc_months
                and service in ("ELECTRICITY", "WATER_COLD")
                and zone in (Zone.SINGLE, Zone.DAY)
            ):
                recalculation = _money(amount * recalc_months[m])
            bill.charges.append(
                {
                    "billing_id": f"C-{spec.number}-{period:%Y-%m}-{service}" + (f"-{zone}" if zoned else ""),
                    "account": key,
                    "period": period,
                    "service": service,
                    "supplier": ref.supplier_key(supplier_id),
                    "zone": zone.value if zoned else None,
                    "volume": volume,
                    "rate": rate,
                    "amount": amount,
                    "recalculation": recalculation,
                }
            )
            charged[(m, supplier_id)] += amount + recalculation

    # payments: in month t the charges of month t-1 are paid (t = months is the current month)
    suppliers = sorted({supplier for _, supplier in charged})
    plan: dict[int, dict[int, Decimal]] = {}
    for t in range(1, months + 1):
        plan[t] = {supplier: charged[(t - 1, supplier)] for supplier in suppliers}
    resk = ref.suppliers["RESK"]
    if spec.balance == "DEBT":
        skipped = months - 7
        if skipped >= 1:
            for supplier in suppliers:  # a month without payment, paid together with the next one
                plan[skipped + 1][supplier] += plan[skipped][supplier]
            del plan[skipped]
        if months - 4 >= 1:
            plan[months - 4][resk] -= Decimal("1000.00")  # paid short
        plan.pop(months, None)  # nothing paid yet this month
    elif spec.balance == "OVERPAYMENT" and months >= 1:
        plan[months][resk] += Decimal("1500.00")  # an advance
    method_id = None
    if spec.autopay and user is not None:
        method_id = (
            await session.execute(select(PaymentMethod.id).where(PaymentMethod.user_id == user.id))
        ).scalar_one()
    paid: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    for t, parts in plan.items():
        period = add_months(first, t)
        if period == current and today.day == 1:
            # on the 1st nothing of this month can have been paid before today: it was paid at the end of
            # last month (the balance label stays what the spec says on every day of the year)
            t, period = t - 1, add_months(period, -1)
        last_day = today.day - 1 if period == current else 28
        day = max(1, min(5 + rng.randrange(18), last_day))
        paid_at = _at(_day_of(period, day), 9 + rng.randrange(11), rng.randrange(60))
        await _core_payment(
            session,
            counts,
            user,
            account,
            period,
            parts,
            paid_at,
            rng,
            method_id,
            failed_before=(spec.balance == "DEBT" and t == months - 2),
        )
        if period < current:
            for supplier, amount in parts.items():
                paid[(t, supplier)] += amount

    # balances per supplier and month, receipts per month
    closing_by_supplier = dict.fromkeys(suppliers, Decimal("0.00"))
    for m, period in enumerate(periods):
        total = Decimal("0.00")
        for supplier in suppliers:
            opening = closing_by_supplier[supplier]
            closing = opening + charged[(m, supplier)] - paid[(m, supplier)]
            closing_by_supplier[supplier] = closing
            total += closing
            bill.balances.append(
                {
                    "account": key,
                    "supplier": ref.supplier_key(supplier),
                    "period": period,
                    "opening": opening,
                    "charged": charged[(m, supplier)],
                    "paid": paid[(m, supplier)],
                    "closing": closing,
                }
            )
        bill.receipts.append(
            {
                "account": key,
                "period": period,
                "total_due": total,
                "due_date": _day_of(add_months(period, 1), 10),
            }
        )


async def _core_payment(
    session: AsyncSession,
    counts: dict[str, int],
    user: User | None,
    account: Account,
    period: dt.date,
    parts: dict[int, Decimal],
    paid_at: dt.datetime,
    rng: random.Random,
    method_id: int | None,
    *,
    failed_before: bool,
) -> None:
    if user is None:
        return
    parts = {supplier: amount for supplier, amount in parts.items() if amount > 0}
    if not parts:
        return
    total = sum(parts.values(), Decimal("0.00"))
    if failed_before:  # a declined card attempt an hour before the successful payment
        failed_at = paid_at - dt.timedelta(hours=1)
        failed = _payment(user, account, PaymentStatus.FAILED, PaymentMethodKind.CARD, total, failed_at, None)
        failed.failure_reason = "Недостаточно средств на карте"
        _add(session, counts, failed)
        await session.flush()
        _add(
            session,
            counts,
            PaymentStatusChange(payment_id=failed.id, status=PaymentStatus.PENDING, changed_at=failed_at),
            PaymentStatusChange(
                payment_id=failed.id,
                status=PaymentStatus.FAILED,
                changed_at=failed_at + dt.timedelta(minutes=2),
                reason=failed.failure_reason,
            ),
        )
        for supplier, amount in parts.items():
            _add(
                session,
                counts,
                PaymentAllocation(
                    payment_id=failed.id,
                    account_id=account.id,
                    supplier_id=supplier,
                    period=period,
                    amount=amount,
                ),
            )
    method = PaymentMethodKind.SBP if rng.random() < 0.4 else PaymentMethodKind.CARD
    payment = _payment(user, account, PaymentStatus.SUCCEEDED, method, total, paid_at, method_id)
    _add(session, counts, payment)
    await session.flush()
    _add(
        session,
        counts,
        PaymentStatusChange(payment_id=payment.id, status=PaymentStatus.PENDING, changed_at=paid_at),
        PaymentStatusChange(
            payment_id=payment.id,
            status=PaymentStatus.SUCCEEDED,
            changed_at=paid_at + dt.timedelta(seconds=40),
        ),
    )
    for supplier, amount in parts.items():
        _add(
            session,
            counts,
            PaymentAllocation(
                payment_id=payment.id,
                account_id=account.id,
                supplier_id=supplier,
                period=period,
                amount=amount,
            ),
        )


def _payment(
    user: User,
    account: Account,
    status: PaymentStatus,
    method: PaymentMethodKind,
    amount: Decimal,
    at: dt.datetime,
    method_id: int | None,
) -> Payment:
    key = f"demo-{account.number}-{at:%Y%m%d%H%M}-{status.value.lower()}"
    return Payment(
        user_id=user.id,
        status=status,
        method=method,
        amount=amount,
        currency="RUB",
        gateway="sandbox",
        gateway_payment_id=key,
        idempotency_key=key,
        request_fingerprint=hashlib.sha256(key.encode()).hexdigest(),
        receipt_email=user.email if method is PaymentMethodKind.CARD else None,
        rules_accepted_at=None if method_id else at,
        is_autopay=method_id is not None,
        payment_method_id=method_id,
        paid_at=at + dt.timedelta(seconds=40) if status is PaymentStatus.SUCCEEDED else None,
        created_at=at,
        updated_at=at + dt.timedelta(seconds=40),
    )


_SOURCES = (
    (ReadingSource.CABINET,) * 9
    + (ReadingSource.MOBILE,) * 8
    + (ReadingSource.AMI,) * 2
    + (ReadingSource.OPERATOR,)
)


async def _core_readings(
    session: AsyncSession,
    bill: _BillingSet,
    spec: _AccountSpec,
    account: Account,
    meter_rows: dict[int, Meter],
    ref: _Ref,
    usage: dict[tuple[str, Zone], list[Decimal]],
    user: User | None,
    branch: BranchSpec,
    periods: list[dt.date],
    today: dt.date,
    rng: random.Random,
    counts: dict[str, int],
) -> None:
    """The readings of one core account. Readings submitted in the cabinet (customers, operators) are the
    cabinet's rows; billing acknowledges those it accepted (``cabinet_reading_id``, E2). The base reading
    before the history and the meter data (AMI) are billing's own: they come only through the import."""
    if not spec.meters:
        return
    current = month_start(today)
    start_day, end_day = branch.window
    # months with readings: the base one, the history, and the current one when its window has closed
    reading_periods = [add_months(periods[0], -1), *periods]
    if end_day < today.day:
        reading_periods.append(current)
    values: dict[tuple[int, Zone], Decimal] = {}
    for meter_spec in spec.meters:
        for zone, (base, _) in meter_spec.zones.items():
            values[(meter_rows[ref.services[meter_spec.service]].id, zone)] = base
    for r, period in enumerate(reading_periods):
        source = ReadingSource.OPERATOR if r == 0 else rng.choice(_SOURCES)
        day = _day_of(period, start_day + rng.randrange(max(1, end_day - start_day + 1)))
        submitted = _at(day, 8 + rng.randrange(13), rng.randrange(60))
        by_user = (
            user.id if user is not None and source in (ReadingSource.CABINET, ReadingSource.MOBILE) else None
        )
        billings = r == 0 or source is ReadingSource.AMI  # billing's own: not submitted in the cabinet
        submission = None
        if not billings:
            submission = ReadingSubmission(
                account_id=account.id, user_id=by_user, source=source, period=period, created_at=submitted
            )
            _add(session, counts, submission)
            await session.flush()
        accepted_at = _at(_day_of(period, end_day), 23, 30) + dt.timedelta(hours=1)
        for meter_spec in spec.meters:
            meter = meter_rows[ref.services[meter_spec.service]]
            for zone in meter_spec.zones:
                if 0 < r <= len(periods):
                    values[(meter.id, zone)] += usage[(meter_spec.service, zone)][r - 1]
                elif r > len(periods):  # current month: about the usual consumption so far
                    values[(meter.id, zone)] += usage[(meter_spec.service, zone)][-1]
                value = values[(meter.id, zone)]
                accepted = {
                    "billing_id": f"R-{spec.number}-{meter_spec.serial}-{zone}-{period:%Y-%m}",
                    "meter": f"M-{spec.number}-{meter_spec.serial}",
                    "zone": zone.value,
                    "period": period,
                    "value": value,
                    "accepted_at": accepted_at,
                    "source": source.value,
                }
                if billings:
                    bill.readings.append(accepted)
                    continue
                # once a year the customer first sent a mistyped value and corrected it in the same window
                # (billing accepts the corrected one: it supersedes the typo, E2)
                if r % 12 == 5 and meter_spec.service == "ELECTRICITY" and user is not None:
                    _add(
                        session,
                        counts,
                        Reading(
                            meter_id=meter.id,
                            account_id=account.id,
                            submission_id=submission.id if submission else None,
                            zone=zone,
                            period=period,
                            value=value + 90,
                            source=source,
                            submitted_by_user_id=by_user,
                            submitted_at=submitted - dt.timedelta(hours=2),
                            accepted=False,
                        ),
                    )
                submitted_reading = Reading(
                    meter_id=meter.id,
                    account_id=account.id,
                    submission_id=submission.id if submission else None,
                    zone=zone,
                    period=period,
                    value=value,
                    source=source,
                    submitted_by_user_id=by_user,
                    submitted_at=submitted,
                    accepted=False,
                )
                _add(session, counts, submitted_reading)
                if period < current:  # billed: billing accepted it
                    bill.readings.append({**accepted, "cabinet_reading_id": submitted_reading})
    await session.flush()


# --- appeals, applications, documents -----------------------------------------------------------------------


_PDF_TEMPLATE = (
    "%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    "2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    "3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Resources<</Font<</F1 4 0 R>>>>/Contents 5 0 R>>"
    "endobj\n4 0 obj<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>endobj\n"
)


def demo_file_bytes(storage_key: str) -> bytes:
    """The bytes of the demo file stored under ``storage_key``: a one-page PDF naming it."""
    stream = f"BT /F1 14 Tf 60 780 Td (Kabinet demo document: {storage_key}) Tj ET"
    body = _PDF_TEMPLATE + f"5 0 obj<</Length {len(stream)}>>stream\n{stream}\nendstream endobj\n"
    offsets, position = [], 0
    for line in body.split("\n"):
        if " 0 obj" in line:
            offsets.append(position)
        position += len(line) + 1
    xref = "xref\n0 6\n0000000000 65535 f \n" + "".join(f"{offset:010d} 00000 n \n" for offset in offsets)
    trailer = f"trailer<</Size 6/Root 1 0 R>>\nstartxref\n{len(body)}\n%%EOF\n"
    return (body + xref + trailer).encode("ascii")


def _demo_file(key: str, filename: str, created: dt.datetime, owner: int | None) -> StoredFile:
    data = demo_file_bytes(key)
    return StoredFile(
        storage_key=key,
        original_filename=filename,
        content_type="application/pdf",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        owner_user_id=owner,
        created_at=created,
    )


async def _requests_and_documents(
    session: AsyncSession,
    ref: _Ref,
    users: dict[str, User],
    accounts: list[tuple[_AccountSpec, Account]],
    *,
    today: dt.date,
    counts: dict[str, int],
) -> None:
    by_number = {spec.number: account for spec, account in accounts}
    main, dacha = by_number[DEMO_ACCOUNT_NUMBER], by_number["11111112"]
    ivanov, operator = users["ivanov"], users["operator"]
    day = dt.timedelta(days=1)
    t1 = _at(today - 40 * day, 11, 5)
    appeal1 = Appeal(
        user_id=ivanov.id,
        account_id=main.id,
        supplier_id=ref.suppliers["RESK"],
        topic="CHARGES",
        text="Прошу разъяснить, почему за сентябрь начислено больше обычного за электроэнергию на "
        "содержание общего имущества.",
        full_name="Иванов Иван Иванович",
        phone=DEMO_PHONE_E164,
        email=DEMO_EMAIL,
        status=RequestStatus.ANSWERED,
        operator_id=operator.id,
        answer="Начисление выполнено по нормативу потребления на содержание общего имущества МКД исходя из "
        "общей площади помещения. Перерасчёт не требуется.",
        answered_at=t1 + 3 * day,
        created_at=t1,
        updated_at=t1 + 3 * day,
    )
    t2 = _at(today - 2 * day, 18, 40)
    appeal2 = Appeal(
        user_id=ivanov.id,
        account_id=dacha.id,
        supplier_id=ref.suppliers["RESK"],
        topic="READINGS",
        text="Не получается передать показания по даче через мобильное приложение, появляется ошибка.",
        full_name="Иванов Иван Иванович",
        phone=DEMO_PHONE_E164,
        email=DEMO_EMAIL,
        status=RequestStatus.NEW,
        created_at=t2,
        updated_at=t2,
    )
    t3 = _at(today - 12 * day, 9, 30)
    appeal3 = Appeal(
        user_id=users["sidorova"].id,
        account_id=by_number[SECOND_CUSTOMER_ACCOUNT_NUMBER].id,
        supplier_id=ref.suppliers["WATER"],
        topic="CHARGES",
        text="Прошу проверить начисление за холодную воду за октябрь.",
        full_name="Сидорова Анна Сергеевна",
        phone=SECOND_CUSTOMER[1],
        email=SECOND_CUSTOMER[2],
        status=RequestStatus.IN_PROGRESS,
        operator_id=operator.id,
        created_at=t3,
        updated_at=t3 + day,
    )
    _add(session, counts, appeal1, appeal2, appeal3)
    consent = Consent(
        user_id=ivanov.id,
        kind=ConsentKind.PERSONAL_DATA,
        policy_version=POLICY_VERSION,
        accepted_at=_at(today - 75 * day, 12),
    )
    _add(session, counts, consent)
    await session.flush()
    meters = {
        m.service_id: m
        for m in (await session.execute(select(Meter).where(Meter.account_id == main.id))).scalars()
    }
    t4 = _at(today - 75 * day, 12)
    application1 = Application(
        user_id=ivanov.id,
        account_id=main.id,
        kind=ApplicationKind.RECONCILIATION_ACT,
        fields={
            "periodFrom": f"{today.year - 1}-01",
            "periodTo": f"{today.year - 1}-12",
            "delivery": "EMAIL",
        },
        text="Прошу предоставить акт сверки за прошлый год.",
        status=RequestStatus.CLOSED,
        consent_id=consent.id,
        operator_id=operator.id,
        answer="Акт сверки сформирован и размещён в разделе «Мои документы».",
        answered_at=t4 + 2 * day,
        closed_at=t4 + 2 * day,
        created_at=t4,
        updated_at=t4 + 2 * day,
    )
    t5 = _at(today - 6 * day, 20, 15)
    application2 = Application(
        user_id=ivanov.id,
        account_id=main.id,
        kind=ApplicationKind.METER_CHECK,
        meter_id=meters[ref.services["WATER_HOT"]].id,
        fields={"malfunction": "Счётчик горячей воды не вращается при открытом кране"},
        text="Прошу проверить прибор учёта горячей воды.",
        status=RequestStatus.IN_PROGRESS,
        consent_id=consent.id,
        operator_id=operator.id,
        created_at=t5,
        updated_at=t5 + day,
    )
    _add(session, counts, application1, application2)
    await session.flush()

    def event(
        kind: RequestEventKind,
        at: dt.datetime,
        *,
        appeal: Appeal | None = None,
        application: Application | None = None,
        status: RequestStatus | None = None,
        note: str | None = None,
        actor: User | None = None,
    ) -> RequestEvent:
        return RequestEvent(
            appeal_id=appeal.id if appeal else None,
            application_id=application.id if application else None,
            kind=kind,
            status=status,
            text=note,
            actor_user_id=actor.id if actor else None,
            created_at=at,
        )

    _add(
        session,
        counts,
        event(RequestEventKind.CREATED, t1, appeal=appeal1, status=RequestStatus.NEW, actor=ivanov),
        event(
            RequestEventKind.STATUS_CHANGED,
            t1 + day,
            appeal=appeal1,
            status=RequestStatus.IN_PROGRESS,
            actor=operator,
        ),
        event(
            RequestEventKind.ANSWER,
            t1 + 3 * day,
            appeal=appeal1,
            status=RequestStatus.ANSWERED,
            note=appeal1.answer,
            actor=operator,
        ),
        event(RequestEventKind.CREATED, t2, appeal=appeal2, status=RequestStatus.NEW, actor=ivanov),
        event(
            RequestEventKind.CREATED, t3, appeal=appeal3, status=RequestStatus.NEW, actor=users["sidorova"]
        ),
        event(
            RequestEventKind.STATUS_CHANGED,
            t3 + day,
            appeal=appeal3,
            status=RequestStatus.IN_PROGRESS,
            actor=operator,
        ),
        event(RequestEventKind.CREATED, t4, application=application1, status=RequestStatus.NEW, actor=ivanov),
        event(
            RequestEventKind.ANSWER,
            t4 + 2 * day,
            application=application1,
            status=RequestStatus.ANSWERED,
            note=application1.answer,
            actor=operator,
        ),
        event(
            RequestEventKind.STATUS_CHANGED,
            t4 + 2 * day,
            application=application1,
            status=RequestStatus.CLOSED,
            actor=operator,
        ),
        event(RequestEventKind.CREATED, t5, application=application2, status=RequestStatus.NEW, actor=ivanov),
        event(
            RequestEventKind.STATUS_CHANGED,
            t5 + day,
            application=application2,
            status=RequestStatus.IN_PROGRESS,
            actor=operator,
        ),
        event(
            RequestEventKind.COMMENT,
            t5 + day,
            application=application2,
            note="Выезд контролёра запланирован на ближайшую неделю.",
            actor=operator,
        ),
        event(
            RequestEventKind.COMMENT,
            t5 + day,
            application=application2,
            note="Внутренняя заметка: проверить пломбу ВК 118205.",
            actor=operator,
        ),
    )
    await session.flush()
    internal = (
        await session.execute(
            select(RequestEvent).where(
                RequestEvent.application_id == application2.id, RequestEvent.text.like("Внутренняя%")
            )
        )
    ).scalar_one()
    internal.visible_to_customer = False

    documents = [
        (
            DocumentType.ENERGY_SUPPLY_CONTRACT,
            f"Договор энергоснабжения № {DEMO_ACCOUNT_NUMBER}",
            "demo/documents/11111111/contract.pdf",
            "dogovor_11111111.pdf",
            _at(dt.date(2012, 9, 3)),
            None,
        ),
        (
            DocumentType.RECONCILIATION_ACT,
            f"Акт сверки взаимных расчётов за {today.year - 1} год",
            "demo/documents/11111111/reconciliation.pdf",
            "akt_sverki.pdf",
            t4 + 2 * day,
            None,
        ),
        (
            DocumentType.OWNERSHIP_DOCUMENT,
            "Выписка из ЕГРН",
            "demo/documents/11111111/egrn.pdf",
            "egrn.pdf",
            _at(today - 100 * day, 15),
            ivanov.id,
        ),
    ]
    for doc_type, title, key, filename, created, uploader in documents:
        stored = _demo_file(key, filename, created, uploader)
        _add(session, counts, stored)
        await session.flush()
        _add(
            session,
            counts,
            Document(
                account_id=main.id,
                user_id=uploader,
                type=doc_type,
                title=title,
                file_id=stored.id,
                uploaded_by_customer=uploader is not None,
                created_at=created,
            ),
        )
    await session.flush()


# --- information sections -----------------------------------------------------------------------------------

FAQ: tuple[tuple[str, str, str], ...] = (
    (
        "Регистрация и вход",
        "Как зарегистрироваться в Личном кабинете?",
        "Нажмите «Зарегистрироваться», укажите номер телефона, электронную почту, фамилию, имя и пароль, "
        "подтвердите согласие на обработку персональных данных и введите код из SMS.",
    ),
    (
        "Регистрация и вход",
        "Какие требования к паролю?",
        "Не менее 6 символов: латинские строчные и заглавные буквы, цифры и специальный "
        "символ (например, !, $, #, %).",
    ),
    (
        "Регистрация и вход",
        "Я забыл пароль. Что делать?",
        "На странице входа нажмите «Забыли пароль?», выберите телефон или подтверждённую электронную почту и "
        "введите полученный код. Код действует 5 минут. Помощь: 8 (800) 775-62-62.",
    ),
    (
        "Лицевые счета",
        "Как добавить лицевой счёт?",
        "В разделе «Лицевые счета» нажмите «Добавить», выберите отделение, введите номер лицевого счёта из "
        "квитанции и сумму последней квитанции до копеек.",
    ),
    (
        "Лицевые счета",
        "Можно ли подключить несколько лицевых счетов?",
        "Да. Для всех подключённых счетов доступны оплата и передача показаний одной операцией.",
    ),
    (
        "Показания приборов учёта",
        "Когда можно передать показания?",
        "Показания принимаются в период, установленный для Вашего отделения. Дни начала и окончания периода "
        "показаны на главной странице.",
    ),
    (
        "Показания приборов учёта",
        "Почему показания не приняты?",
        "Введённые показания меньше ранее переданных. Проверьте корректность ввода: передавайте целую часть "
        "показаний без цифр после запятой, если они отделены красным цветом.",
    ),
    (
        "Показания приборов учёта",
        "Что делать, если счётчик неисправен?",
        "В разделе «Реквизиты» выберите прибор учёта и нажмите «Уведомить о неисправности».",
    ),
    (
        "Оплата",
        "Какие способы оплаты доступны?",
        "Банковской картой и через Систему быстрых платежей (СБП) по QR-коду. Комиссия не взимается.",
    ),
    ("Оплата", "Какая минимальная сумма платежа?", "Минимальная сумма платежа — 10,00 ₽."),
    (
        "Оплата",
        "Когда поступит платёж?",
        "Платёж отражается в личном кабинете сразу после подтверждения банком, в начислениях "
        "— в течение 1–3 дней.",
    ),
    (
        "Квитанции",
        "Как перейти на электронную квитанцию?",
        "В профиле в разделе «Получение квитанций» включите электронную квитанцию для нужного "
        "лицевого счёта.",
    ),
    (
        "Тарифы",
        "Когда меняются тарифы?",
        "Тарифы для населения устанавливаются ГУ РЭК Рязанской области и, как правило, изменяются с 1 июля.",
    ),
)


async def _content(
    session: AsyncSession,
    ref: _Ref,
    users: dict[str, User],
    accounts: list[tuple[_AccountSpec, Account]],
    *,
    today: dt.date,
    counts: dict[str, int],
) -> None:
    day = dt.timedelta(days=1)
    created = _at(today - 200 * day)
    for position, (category, question, answer) in enumerate(FAQ):
        _add(
            session,
            counts,
            FaqEntry(
                category=category,
                question=question,
                answer=answer,
                position=position,
                created_at=created,
                updated_at=created,
            ),
        )

    categories = [
        ShopCategory(name=name, position=n)
        for n, name in enumerate(("Приборы учёта", "Услуги", "Электротовары"))
    ]
    _add(session, counts, *categories)
    await session.flush()
    items = (
        (
            0,
            "Счётчик электроэнергии «Меркурий 201.8» однотарифный",
            "Класс точности 1, межповерочный интервал 16 лет.",
            "2150.00",
        ),
        (
            0,
            "Счётчик электроэнергии «Нева МТ 124» двухтарифный",
            "Учёт по зонам суток день/ночь, ЖК-дисплей.",
            "4390.00",
        ),
        (0, "Счётчик воды СГВ-15", "Для холодной и горячей воды, Ду 15 мм.", "890.00"),
        (
            1,
            "Замена прибора учёта электроэнергии",
            "Демонтаж старого и установка нового счётчика с опломбировкой.",
            "1800.00",
        ),
        (1, "Поверка счётчика воды без снятия", "Выезд поверителя, свидетельство о поверке.", "900.00"),
        (1, "Опломбировка прибора учёта", "Стоимость уточняйте у оператора.", None),
        (2, "Светодиодная лампа 10 Вт E27", "Тёплый свет, 900 лм.", "120.00"),
        (2, "Удлинитель с заземлением, 5 м", "3 розетки, 16 А.", "690.00"),
    )
    for position, (category_index, name, description, price) in enumerate(items):
        _add(
            session,
            counts,
            ShopItem(
                category_id=categories[category_index].id,
                name=name,
                description=description,
                price=Decimal(price) if price else None,
                url=f"https://shop.resk.demo/item/{position + 1}",
                position=position,
                created_at=created,
                updated_at=created,
            ),
        )

    _add(
        session,
        counts,
        Promotion(
            title="Передавайте показания вовремя — выигрывайте призы",
            body="Клиенты, передавшие показания через Личный кабинет в установленный период, участвуют в "
            "ежемесячном розыгрыше умных розеток.",
            url="https://resk.demo/promo/pokazaniya",
            starts_on=today - 20 * day,
            ends_on=today + 40 * day,
            created_at=_at(today - 21 * day),
        ),
        Promotion(
            title="Скидка 15% на замену счётчика",
            body="Закажите замену прибора учёта в интернет-магазине со скидкой 15%.",
            branch_id=ref.branches["RZN"],
            url="https://resk.demo/promo/zamena",
            starts_on=today - 120 * day,
            ends_on=today - 60 * day,
            created_at=_at(today - 121 * day),
        ),
    )

    survey = Survey(
        title="Оценка качества обслуживания в Личном кабинете",
        description="Ответьте на три вопроса — это займёт не больше минуты.",
        audience=SurveyAudience.ALL,
        starts_at=_at(today - 10 * day, 0),
        ends_at=_at(today + 30 * day, 23, 59),
        created_at=_at(today - 11 * day),
    )
    _add(session, counts, survey)
    await session.flush()
    questions = (
        (
            QuestionKind.SINGLE,
            "Насколько удобно передавать показания через Личный кабинет?",
            True,
            ("Очень удобно", "Скорее удобно", "Затрудняюсь ответить", "Скорее неудобно", "Очень неудобно"),
        ),
        (
            QuestionKind.MULTIPLE,
            "Какими разделами Вы пользуетесь чаще всего?",
            True,
            ("Оплата", "Передача показаний", "Начисления и платежи", "Обращения", "Документы"),
        ),
        (QuestionKind.TEXT, "Что нам стоит улучшить?", False, ()),
    )
    for position, (kind, question_text, required, options) in enumerate(questions):
        survey_question = SurveyQuestion(
            survey_id=survey.id, kind=kind, text=question_text, position=position, required=required
        )
        _add(session, counts, survey_question)
        await session.flush()
        for number, option in enumerate(options):
            _add(session, counts, SurveyOption(question_id=survey_question.id, text=option, position=number))

    weekdays = {day: [["08:00", "17:00"]] for day in ("mon", "tue", "wed", "thu")}
    hours = {**weekdays, "fri": [["08:00", "16:00"]], "sat": [], "sun": []}
    office_services = ["Приём показаний", "Оплата без комиссии", "Заключение договоров", "Консультации"]
    offices_data = (
        ("RZN", "Центральный офис обслуживания", "г. Рязань, ул. Ленина, д. 9", "54.627400", "39.740900"),
        (
            "RZN",
            "Офис обслуживания «Московский»",
            "г. Рязань, Московское ш., д. 20",
            "54.633900",
            "39.683200",
        ),
        ("SKP", "Офис обслуживания г. Скопин", "г. Скопин, ул. Ленина, д. 23", "53.823600", "39.549700"),
        (
            "MHL",
            "Офис обслуживания г. Михайлов",
            "г. Михайлов, пл. Освобождения, д. 4",
            "54.229700",
            "39.009100",
        ),
        ("KSM", "Офис обслуживания г. Касимов", "г. Касимов, ул. Советская, д. 30", "54.937300", "41.391300"),
        ("SSV", "Офис обслуживания г. Сасово", "г. Сасово, ул. Ленина, д. 12", "54.350000", "41.916700"),
        ("RZH", "Офис обслуживания г. Ряжск", "г. Ряжск, ул. Советская, д. 8", "53.706700", "40.052200"),
    )
    offices = [
        Office(
            branch_id=ref.branches[branch],
            name=name,
            address=address,
            latitude=Decimal(lat),
            longitude=Decimal(lon),
            opening_hours=hours,
            services=office_services,
            phone=ref.branch_specs[ref.branches[branch]].phone,
        )
        for branch, name, address, lat, lon in offices_data
    ]
    _add(session, counts, *offices)
    await session.flush()
    slots: list[dict[str, Any]] = []
    for office in offices:
        for offset in range(1, 15):
            date = today + offset * day
            if date.weekday() >= 5:
                continue
            for half_hour in itertools.chain(range(18, 24), range(26, 34)):  # 09:00–12:00, 13:00–17:00
                starts = _at(date, half_hour // 2, 30 * (half_hour % 2))
                slots.append(
                    {
                        "office_id": office.id,
                        "starts_at": starts,
                        "ends_at": starts + dt.timedelta(minutes=30),
                    }
                )
    await _insert(session, counts, OfficeSlot, slots)

    ivanov = users["ivanov"]
    main = next(account for spec, account in accounts if spec.number == DEMO_ACCOUNT_NUMBER)
    last_month = add_months(month_start(today), -1)
    notes = (
        (
            NotificationCategory.BILLING,
            f"Квитанция за {_MONTHS_RU[last_month.month - 1]} {last_month.year} г.",
            "Сформирована квитанция по лицевому счёту 11111111. Её можно скачать в разделе «Начисления».",
            today - 22 * day,
            True,
        ),
        (
            NotificationCategory.PAYMENTS,
            "Платёж зачислен",
            "Платёж по лицевому счёту 11111112 зачислен. Спасибо!",
            today - 15 * day,
            True,
        ),
        (
            NotificationCategory.SERVICE_NEWS,
            "Плановые работы",
            "В ночь на воскресенье с 01:00 до 03:00 Личный кабинет может быть недоступен.",
            today - 12 * day,
            True,
        ),
        (
            NotificationCategory.READINGS,
            "Открыт период передачи показаний",
            "Передайте показания по лицевому счёту 11111111 до 25 числа.",
            today - 9 * day,
            False,
        ),
        (
            NotificationCategory.REQUESTS,
            "Заявление принято в работу",
            "Ваше обращение принято в работу.",
            today - 5 * day,
            False,
        ),
        (
            NotificationCategory.MARKETING,
            "Скидка на поверку счётчиков",
            "До конца месяца поверка счётчиков воды без снятия со скидкой 10%.",
            today - 1 * day,
            False,
        ),
    )
    for category, title, body, date, read in notes:
        at = _at(date, 10)
        _add(
            session,
            counts,
            Notification(
                user_id=ivanov.id,
                category=category,
                account_id=main.id,
                title=title,
                body=body,
                read_at=at + dt.timedelta(hours=3) if read else None,
                created_at=at,
            ),
        )
    _add(
        session,
        counts,
        Notification(
            user_id=users["sidorova"].id,
            category=NotificationCategory.BILLING,
            title="Квитанция сформирована",
            body="Квитанция по лицевому счёту 33333333.",
            created_at=_at(today - 22 * day, 10),
        ),
    )
    await session.flush()


_MONTHS_RU = (
    "январь",
    "февраль",
    "март",
    "апрель",
    "май",
    "июнь",
    "июль",
    "август",
    "сентябрь",
    "октябрь",
    "ноябрь",
    "декабрь",
)

# --- sequences ----------------------------------------------------------------------------------------------

_CORE_TABLES = (
    "suppliers",
    "branches",
    "services",
    "tariffs",
    "users",
    "consents",
    "payment_methods",
    "notification_settings",
    "accounts",
    "account_services",
    "meters",
    "user_accounts",
    "autopay_settings",
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
    "files",
    "documents",
    "faq_entries",
    "shop_categories",
    "shop_items",
    "promotions",
    "surveys",
    "survey_questions",
    "survey_options",
    "offices",
    "office_slots",
    "notifications",
)
