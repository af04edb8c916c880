"""The demo data set: what `kabinet serve` shows on first start and what tests and benchmarks run against.

Contents (everything fictitious, shaped after the user manual):

- Suppliers: ПАО «РЭСК» (electricity, general-house electricity, waste collection as the regional
  operator's agent), МУП «Водоканал города Рязани» (cold water, sewerage), МУП «Рязанские тепловые сети»
  (hot water, heating); made-up ИНН/КПП and bank details with valid check digits.
- Branches (филиалы) with their monthly reading windows, see :data:`BRANCHES`. On 2026-11-24 the windows
  of the Рязанское городское, Скопинское and Михайловское branches are open, the others closed.
- Services and tariffs: yearly tariff periods starting each 1 July, single-rate and day/night electricity
  for two consumer groups (gas / electric stoves), each with the approving «Постановление ГУ РЭК
  Рязанской области».
- The demo customer Иванов Иван Иванович (:data:`DEMO_PHONE`, :data:`DEMO_EMAIL`, :data:`DEMO_PASSWORD`)
  with three linked accounts: 11111111 «Квартира» (г. Рязань, ул. Почтовая, д. 61, кв. 95; Скопинское
  отделение, window open on 2026-11-24; a DEBT), 11111112 «Дача» (Михайловское; an OVERPAYMENT, autopay
  on) and 11111113 «Квартира мамы» (Касимовское, window closed on 2026-11-24; balance zero).
  Account 22222222 (owner Петров) is linked to nobody and has no receipts (B1 linking by last name);
  33333333 belongs to the second customer Сидорова Анна Сергеевна (:data:`SECOND_CUSTOMER`).
  Staff users: :data:`DEMO_STAFF`.
- Per account: requisites (C1), services, meters, monthly readings, charges (volume × tariff rate, with a
  few recalculations), payments with per-supplier allocations, period balances and receipts (no PDF
  files: receipts are rendered on demand).
- Light content for every other section: notifications, appeals and applications with timelines,
  documents, FAQ, shop, promotions (a current and an expired one), a survey, offices with slots for
  the next two weeks.
- ``extra_accounts`` synthetic accounts for benchmarks (see :func:`load`), generated inside PostgreSQL.

Determinism and idempotency: rows depend only on ``today``, ``months``, ``extra_accounts`` and what the
database already holds — Python parts use ``random.Random`` with fixed seeds, SQL parts use
``hashint8extended`` on row indexes, timestamps are derived from ``today`` (never the wall clock).
The core set is loaded once: when the demo user exists it is left as it is. Synthetic accounts are
numbered ``7xxxxxxx`` and continue after the ones already present, so several calls append.

Files: the documents' ``files`` rows point at storage keys under ``demo/`` that nobody has written yet;
:func:`demo_file_bytes` returns the bytes they describe (a one-page PDF) so a storage backend or a
start-up hook can materialize them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import itertools
import math
import random
import re
import secrets
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.db import Database
from models.accounts import Account, AccountService, StoveType, UserAccount
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
from models.billing import Charge, PeriodBalance, Receipt
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
from services.passwords import hash_password
from services.periods import add_months, month_start

MSK = ZoneInfo("Europe/Moscow")

# --- logins ------------------------------------------------------------------------------------------------

DEMO_PHONE = "+7 (111) 111-11-11"
"""The demo customer's phone as the manual shows it."""
DEMO_PHONE_E164 = "+71111111111"
"""The same phone as stored in ``users.phone``."""
DEMO_EMAIL = "ivanov@bk.ru"
DEMO_PASSWORD = "Ivanov#2026"
"""Password of the demo customer, the second customer and every synthetic user."""

SECOND_CUSTOMER = ("+7 (444) 444-44-44", "+74444444444", "sidorova@mail.ru", DEMO_PASSWORD)
"""(phone, E.164 phone, e-mail, password) of Сидорова Анна Сергеевна, owner of account 33333333."""

DEMO_STAFF: list[tuple[UserRole, str, str, str]] = [
    (UserRole.OPERATOR, "+7 (222) 222-22-22", "operator@resk.demo", "Operator#2026"),
    (UserRole.ANALYST, "+7 (333) 333-33-33", "analyst@resk.demo", "Analyst#2026"),
    (UserRole.ADMIN, "+7 (555) 555-55-55", "admin@resk.demo", "Admin#2026"),
]
"""(role, phone, e-mail, development password) of the staff demo users.

The passwords are published here, so staff get them only when :func:`load` is asked to
(``staff_passwords=True``: ``kabinet serve`` / ``kabinet demo`` in development); otherwise each staff user
gets the hash of a random password nobody knows (:func:`staff_password_hashes`)."""

_STAFF_NAMES = {
    UserRole.OPERATOR: ("Смирнова", "Ольга", "Викторовна"),
    UserRole.ANALYST: ("Кузнецов", "Алексей", "Андреевич"),
    UserRole.ADMIN: ("Попов", "Дмитрий", "Сергеевич"),
}

DEMO_ACCOUNT_NUMBER = "11111111"
UNLINKED_ACCOUNT_NUMBER = "22222222"
"""Linked to nobody, no receipts: link it with the owner's last name «Петров» (B1)."""
SECOND_CUSTOMER_ACCOUNT_NUMBER = "33333333"

POLICY_VERSION = "2026-01"
"""Version of the personal-data policy the demo users accepted."""


def e164(phone: str) -> str:
    """``+7 (111) 111-11-11`` → ``+71111111111``."""
    return "+" + "".join(ch for ch in phone if ch.isdigit())


SYNTHETIC_NUMBER_BASE = 70_000_000
"""Synthetic account ``i`` has the number ``70000000 + i``."""

SYNTHETIC_PHONE_BASE = 9_500_000_000
"""Synthetic user ``index`` has the phone ``+7`` followed by ``9500000000 + index``."""


def synthetic_user_phone(index: int) -> str:
    """The E.164 phone of synthetic user ``index`` (0-based); the password is :data:`DEMO_PASSWORD`."""
    return f"+7{SYNTHETIC_PHONE_BASE + index:010d}"


def synthetic_account_number(index: int) -> str:
    """The number of synthetic account ``index`` (0-based)."""
    return str(SYNTHETIC_NUMBER_BASE + index)


# Synthetic accounts belong to users in groups of these sizes (1–5 accounts per user), repeating.
SYNTHETIC_GROUP_SIZES = (1, 2, 1, 1, 3, 1, 2, 5, 1, 4, 1, 2)
_GROUP_SPAN = sum(SYNTHETIC_GROUP_SIZES)  # 24 accounts ...
_GROUP_USERS = len(SYNTHETIC_GROUP_SIZES)  # ... of 12 users
_USER_OFFSET = [user for user, size in enumerate(SYNTHETIC_GROUP_SIZES) for _ in range(size)]
_FIRST_OF_GROUP = [i == 0 or _USER_OFFSET[i] != _USER_OFFSET[i - 1] for i in range(_GROUP_SPAN)]


def synthetic_user_of_account(index: int) -> int:
    """The synthetic user index that owns synthetic account ``index``."""
    return (index // _GROUP_SPAN) * _GROUP_USERS + _USER_OFFSET[index % _GROUP_SPAN]


# --- reference data ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BranchSpec:
    code: str
    name: str
    window: tuple[int, int]
    address: str
    phone: str


BRANCHES: tuple[BranchSpec, ...] = (
    BranchSpec(
        "RZN", "Рязанское городское отделение", (20, 26), "г. Рязань, ул. Ленина, д. 9", "+7 (4912) 55-10-10"
    ),
    BranchSpec("SKP", "Скопинское отделение", (15, 25), "г. Скопин, ул. Ленина, д. 23", "+7 (49156) 2-11-40"),
    BranchSpec(
        "MHL", "Михайловское отделение", (23, 27), "г. Михайлов, пл. Освобождения, д. 4", "+7 (49130) 2-14-75"
    ),
    BranchSpec(
        "KSM", "Касимовское отделение", (1, 5), "г. Касимов, ул. Советская, д. 30", "+7 (49131) 4-33-12"
    ),
    BranchSpec("SSV", "Сасовское отделение", (5, 15), "г. Сасово, ул. Ленина, д. 12", "+7 (49133) 5-02-60"),
    BranchSpec("RZH", "Ряжское отделение", (10, 20), "г. Ряжск, ул. Советская, д. 8", "+7 (49132) 2-25-81"),
)
"""Branches in list order with their reading windows (days of the month, inclusive)."""

_BANK = "Рязанское отделение № 8606 ПАО Сбербанк"
SUPPLIERS: dict[str, dict[str, str]] = {
    "RESK": {
        "name": "Публичное акционерное общество «Рязанская энергетическая сбытовая компания»",
        "short_name": "ПАО «РЭСК»",
        "inn": "6227004515",
        "kpp": "622701001",
        "bank_name": _BANK,
        "bic": "046126699",
        "correspondent_account": "30101810800000000699",
        "settlement_account": "40702810753000012345",
        "address": "390000, г. Рязань, ул. Радищева, д. 61",
        "phone": "8 (800) 775-62-62",
        "email": "info@resk.demo",
    },
    "WATER": {
        "name": "Муниципальное унитарное предприятие «Водоканал города Рязани»",
        "short_name": "МУП «Водоканал г. Рязани»",
        "inn": "6229018778",
        "kpp": "622901001",
        "bank_name": "Филиал «Рязанский» АО «Альфа-Банк»",
        "bic": "046126743",
        "correspondent_account": "30101810400000000743",
        "settlement_account": "40702810953000012345",
        "address": "390000, г. Рязань, ул. Колхозная, д. 9",
        "phone": "+7 (4912) 29-40-00",
        "email": "abonent@vodokanal.demo",
    },
    "HEAT": {
        "name": "Муниципальное унитарное предприятие «Рязанские тепловые сети»",
        "short_name": "МУП «Рязанские тепловые сети»",
        "inn": "6234001392",
        "kpp": "623401001",
        "bank_name": _BANK,
        "bic": "046126699",
        "correspondent_account": "30101810800000000699",
        "settlement_account": "40702810253000067890",
        "address": "390044, г. Рязань, Московское ш., д. 51",
        "phone": "+7 (4912) 24-05-05",
        "email": "teplo@rts.demo",
    },
}


@dataclass(frozen=True)
class ServiceSpec:
    code: str
    name: str
    unit: str
    supplier: str
    base_rate: Decimal  # single-zone rate of the tariff period starting 1 July 2024
    yearly_growth: Decimal
    document: str


_REK = "Постановление ГУ РЭК Рязанской области"
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "ELECTRICITY",
        "Электроснабжение",
        "кВт·ч",
        "RESK",
        Decimal("6.17"),
        Decimal("1.10"),
        f"{_REK} «О тарифах на электрическую энергию для населения и приравненных к нему категорий "
        "потребителей по Рязанской области»",
    ),
    ServiceSpec(
        "ELECTRICITY_COMMON",
        "Электроснабжение на содержание общего имущества МКД",
        "кВт·ч",
        "RESK",
        Decimal("6.17"),
        Decimal("1.10"),
        f"{_REK} «О тарифах на электрическую энергию для населения и приравненных к нему категорий "
        "потребителей по Рязанской области»",
    ),
    ServiceSpec(
        "WASTE",
        "Обращение с твёрдыми коммунальными отходами",
        "чел.",
        "RESK",
        Decimal("158.72"),
        Decimal("1.08"),
        f"{_REK} «Об утверждении предельного единого тарифа на услугу регионального оператора по "
        "обращению с твёрдыми коммунальными отходами»",
    ),
    ServiceSpec(
        "WATER_COLD",
        "Холодное водоснабжение",
        "м³",
        "WATER",
        Decimal("39.85"),
        Decimal("1.09"),
        f"{_REK} «Об установлении тарифов на питьевую воду и водоотведение для МУП «Водоканал города Рязани»",
    ),
    ServiceSpec(
        "WASTEWATER",
        "Водоотведение",
        "м³",
        "WATER",
        Decimal("31.20"),
        Decimal("1.09"),
        f"{_REK} «Об установлении тарифов на питьевую воду и водоотведение для МУП «Водоканал города Рязани»",
    ),
    ServiceSpec(
        "WATER_HOT",
        "Горячее водоснабжение",
        "м³",
        "HEAT",
        Decimal("231.40"),
        Decimal("1.10"),
        f"{_REK} «Об установлении тарифов на горячую воду в закрытой системе горячего "
        "водоснабжения для МУП «Рязанские тепловые сети»",
    ),
    ServiceSpec(
        "HEATING",
        "Отопление",
        "Гкал",
        "HEAT",
        Decimal("2650.00"),
        Decimal("1.10"),
        f"{_REK} «Об установлении тарифов на тепловую энергию для МУП «Рязанские тепловые сети»",
    ),
)

GROUP_GAS = "Городское население в домах с газовыми плитами"
GROUP_ELECTRIC = "Городское население в домах с электроплитами и (или) электроотопительными установками"
_ELECTRIC_GROUP_FACTOR = Decimal("0.7")  # the reduction coefficient for electric stoves
_ZONE_FACTOR = {Zone.SINGLE: Decimal("1"), Zone.DAY: Decimal("1.15"), Zone.NIGHT: Decimal("0.55")}

WATER_NORM_PER_PERSON = Decimal("4.85")  # м³ a month without a meter
COMMON_KWH_PER_M2 = Decimal("0.55")  # general-house electricity norm
HEATING_GCAL_PER_M2 = Decimal("0.0167")  # heating paid evenly over the year

_CENT = Decimal("0.01")
_MILLI = Decimal("0.001")


def _money(value: Decimal) -> Decimal:
    return value.quantize(_CENT, ROUND_HALF_UP)


def _seed(*parts: object) -> int:
    return zlib.crc32("/".join(str(part) for part in parts).encode())


def _at(day: dt.date, hour: int = 10, minute: int = 0) -> dt.datetime:
    """A Moscow wall-clock moment as an aware datetime."""
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=MSK)


def _day_of(month: dt.date, day: int) -> dt.date:
    """``day`` of ``month``, clamped to the month's last day."""
    following = add_months(month, 1)
    return min(month.replace(day=1) + dt.timedelta(days=day - 1), following - dt.timedelta(days=1))


def tariff_years(first_month: dt.date, today: dt.date) -> list[int]:
    """Years whose 1 July starts a tariff period in force at some time from ``first_month`` to ``today``."""
    start = first_month.year if first_month.month >= 7 else first_month.year - 1
    end = today.year if today.month >= 7 else today.year - 1
    return list(range(start, end + 1))


def tariff_rate(spec: ServiceSpec, year: int, zone: Zone, group: str | None) -> Decimal:
    """The rate of ``spec`` in the tariff period starting 1 July ``year``."""
    rate = spec.base_rate * spec.yearly_growth ** (year - 2024) * _ZONE_FACTOR[zone]
    if group == GROUP_ELECTRIC:
        rate *= _ELECTRIC_GROUP_FACTOR
    return _money(rate)


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

    def rate(self, branch_id: int, service: str, zone: Zone, group: str | None, period: dt.date) -> Decimal:
        for start, end, rate in self.tariffs[(branch_id, service, zone, group)]:
            if start <= period and (end is None or period <= end):
                return rate
        raise LookupError(f"no tariff for {service} {zone} on {period}")


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
            await _load_core(
                session,
                today=today,
                months=months,
                password_hash=password_hash,
                counts=counts,
                staff_hashes=staff_password_hashes(staff_passwords),
            )
            await session.commit()
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
    *,
    today: dt.date,
    months: int,
    password_hash: str,
    counts: dict[str, int],
    staff_hashes: dict[UserRole, str],
) -> None:
    ref = await _reference_data(session, today=today, months=months, counts=counts)
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
        await _core_history(session, ref, spec, account, users, today=today, months=months, counts=counts)
    await _requests_and_documents(session, ref, users, accounts, today=today, counts=counts)
    await _content(session, ref, users, accounts, today=today, counts=counts)
    await _fix_sequences(session, _CORE_TABLES)


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


async def _reference_data(
    session: AsyncSession, *, today: dt.date, months: int, counts: dict[str, int]
) -> _Ref:
    created = _at(add_months(month_start(today), -months - 2), 9)
    suppliers = {
        code: Supplier(**fields, created_at=created, updated_at=created) for code, fields in SUPPLIERS.items()
    }
    _add(session, counts, *suppliers.values())
    branches = {
        spec.code: Branch(
            name=spec.name,
            code=spec.code,
            time_zone="Europe/Moscow",
            reading_window_start_day=spec.window[0],
            reading_window_end_day=spec.window[1],
            address=spec.address,
            phone=spec.phone,
            position=position,
            video_consultation_url=f"https://video.resk.demo/room/{spec.code.lower()}",
            created_at=created,
            updated_at=created,
        )
        for position, spec in enumerate(BRANCHES)
    }
    _add(session, counts, *branches.values())
    await session.flush()
    services = {
        spec.code: Service(
            code=spec.code,
            name=spec.name,
            unit=spec.unit,
            supplier_id=suppliers[spec.supplier].id,
            position=position,
        )
        for position, spec in enumerate(SERVICES)
    }
    _add(session, counts, *services.values())
    await session.flush()

    first_month = add_months(month_start(today), -months - 1)  # the base readings' month
    years = tariff_years(first_month, today)
    tariffs: dict[tuple[int, str, Zone, str | None], list[tuple[dt.date, dt.date | None, Decimal]]] = (
        defaultdict(list)
    )
    rows: list[dict[str, Any]] = []
    for branch in branches.values():
        for number, spec in enumerate(SERVICES):
            variants: list[tuple[Zone, str | None]] = [(Zone.SINGLE, None)]
            if spec.code == "ELECTRICITY":
                variants = [
                    (zone, group)
                    for group in (GROUP_GAS, GROUP_ELECTRIC)
                    for zone in (Zone.SINGLE, Zone.DAY, Zone.NIGHT)
                ]
            for year in years:
                start = dt.date(year, 7, 1)
                end = None if year == years[-1] else dt.date(year + 1, 6, 30)
                for zone, group in variants:
                    rate = tariff_rate(spec, year, zone, group)
                    tariffs[(branch.id, spec.code, zone, group)].append((start, end, rate))
                    rows.append(
                        {
                            "branch_id": branch.id,
                            "service_id": services[spec.code].id,
                            "zone": zone,
                            "consumer_group": group,
                            "rate": rate,
                            "valid_from": start,
                            "valid_to": end,
                            "document_title": spec.document,
                            "document_number": f"{120 + (year % 100) * 3 + number}",
                            "document_date": dt.date(year - 1, 12, 18 + number % 3),
                            "created_at": _at(dt.date(year - 1, 12, 25)),
                        }
                    )
    await _insert(session, counts, Tariff, rows)
    return _Ref(
        suppliers={code: row.id for code, row in suppliers.items()},
        branches={code: row.id for code, row in branches.items()},
        branch_specs={branches[spec.code].id: spec for spec in BRANCHES},
        services={code: row.id for code, row in services.items()},
        service_supplier={spec.code: suppliers[spec.supplier].id for spec in SERVICES},
        tariffs=dict(tariffs),
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
    created = _at(add_months(month_start(today), -months - 2), 9)
    for spec in CORE_ACCOUNTS:
        owner_last, owner_first, owner_middle = spec.owner
        account = Account(
            branch_id=ref.branches[spec.branch],
            number=spec.number,
            owner_last_name=owner_last,
            owner_first_name=owner_first,
            owner_middle_name=owner_middle,
            address=spec.address,
            total_area=spec.total_area,
            living_area=spec.living_area,
            owners_count=spec.owners,
            registered_count=spec.registered,
            residing_count=spec.residing,
            rooms=spec.rooms,
            stove_type=spec.stove,
            electric_heating=spec.electric_heating,
            e_receipt_allowed=True,
            created_at=created,
            updated_at=created,
        )
        _add(session, counts, account)
        out.append((spec, account))
    await session.flush()
    linked = _at(add_months(month_start(today), -months - 1) + dt.timedelta(days=9), 19, 50)
    method_id = (
        await session.execute(select(PaymentMethod.id).where(PaymentMethod.user_id == users["ivanov"].id))
    ).scalar_one()
    for position, (spec, account) in enumerate(out):
        for service, scheme in spec.services:
            _add(
                session,
                counts,
                AccountService(
                    account_id=account.id,
                    service_id=ref.services[service],
                    zone_scheme=scheme,
                    started_on=spec.opened,
                ),
            )
        for meter in spec.meters:
            _add(
                session,
                counts,
                Meter(
                    account_id=account.id,
                    service_id=ref.services[meter.service],
                    serial=meter.serial,
                    model=meter.model,
                    zone_scheme=meter.scheme,
                    digits=meter.digits,
                    decimals=meter.decimals,
                    location=meter.location,
                    installed_at=meter.installed,
                    verified_at=meter.verified,
                    verification_due=meter.verification_due,
                    seal_number=meter.seal,
                    sealed_at=meter.installed,
                    created_at=created,
                    updated_at=created,
                ),
            )
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
    spec: _AccountSpec,
    account: Account,
    users: dict[str, User],
    *,
    today: dt.date,
    months: int,
    counts: dict[str, int],
) -> None:
    """Readings, charges, payments, balances and receipts of one core account."""
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
        session, spec, account, meter_rows, ref, usage, user, branch, periods, today, rng, counts
    )

    # charges
    recalc_months = (
        {months - 5: Decimal("-0.35"), months - 14: Decimal("0.20")}
        if spec.balance == "DEBT"
        else {months - 9: Decimal("-0.25")}
    )
    charged: dict[tuple[int, int], Decimal] = defaultdict(Decimal)  # (month index, supplier id) → total
    rows: list[dict[str, Any]] = []
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
            rows.append(
                {
                    "account_id": account.id,
                    "period": period,
                    "service_id": ref.services[service],
                    "supplier_id": supplier_id,
                    "zone": zone if zoned else None,
                    "volume": volume,
                    "rate": rate,
                    "amount": amount,
                    "recalculation": recalculation,
                    "created_at": _at(add_months(period, 1), 3),
                }
            )
            charged[(m, supplier_id)] += amount + recalculation
    await _insert(session, counts, Charge, rows)

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
    balance_rows: list[dict[str, Any]] = []
    receipt_rows: list[dict[str, Any]] = []
    for m, period in enumerate(periods):
        total = Decimal("0.00")
        for supplier in suppliers:
            opening = closing_by_supplier[supplier]
            closing = opening + charged[(m, supplier)] - paid[(m, supplier)]
            closing_by_supplier[supplier] = closing
            total += closing
            balance_rows.append(
                {
                    "account_id": account.id,
                    "supplier_id": supplier,
                    "period": period,
                    "opening": opening,
                    "charged": charged[(m, supplier)],
                    "paid": paid[(m, supplier)],
                    "closing": closing,
                    "created_at": _at(add_months(period, 1), 3),
                }
            )
        receipt_rows.append(
            {
                "account_id": account.id,
                "period": period,
                "total_due": total,
                "due_date": _day_of(add_months(period, 1), 10),
                "created_at": _at(add_months(period, 1), 4),
            }
        )
    await _insert(session, counts, PeriodBalance, balance_rows)
    await _insert(session, counts, Receipt, receipt_rows)


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
        submission = None
        if r > 0:
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
                # once a year the customer first sent a mistyped value and corrected it in the same window
                if r > 0 and r % 12 == 5 and meter_spec.service == "ELECTRICITY" and user is not None:
                    wrong = Reading(
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
                    )
                    right = Reading(
                        meter_id=meter.id,
                        account_id=account.id,
                        submission_id=submission.id if submission else None,
                        zone=zone,
                        period=period,
                        value=value,
                        source=source,
                        submitted_by_user_id=by_user,
                        submitted_at=submitted,
                        accepted=True,
                        accepted_at=accepted_at,
                    )
                    _add(session, counts, wrong, right)
                    await session.flush()
                    wrong.superseded_by_id = right.id
                    continue
                _add(
                    session,
                    counts,
                    Reading(
                        meter_id=meter.id,
                        account_id=account.id,
                        submission_id=submission.id if submission else None,
                        zone=zone,
                        period=period,
                        value=value,
                        source=source,
                        submitted_by_user_id=by_user,
                        submitted_at=submitted,
                        accepted=period < current or r == 0,
                        accepted_at=accepted_at if period < current or r == 0 else None,
                    ),
                )
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


async def _fix_sequences(session: AsyncSession | AsyncConnection, tables: Sequence[str]) -> None:
    """Move each table's identity sequence past its largest id (rows may carry explicit ids)."""
    for table in tables:
        await session.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) "
                f"FROM {table}"
            )
        )


# --- synthetic accounts (bulk, inside PostgreSQL) -----------------------------------------------------------

_SYNTHETIC_NUMBER_RE = "^7[0-9]{7}$"
SYNTHETIC_CHUNK = _GROUP_SPAN * 250
"""Accounts per transaction; a multiple of the user group span so no user's accounts straddle two chunks."""
SYNTHETIC_WORKERS = 2
"""Connections loading chunks in parallel."""

# Slots give every generated row a fixed id: base + (account slot) * width + row slot.
_METERS_PER_ACCOUNT = 2  # electricity, cold water (when metered)
_SERVICES_PER_ACCOUNT = 3  # electricity, cold water, waste
_CHARGE_SLOTS = 4  # electricity single/day, electricity night, cold water, waste
_SUPPLIER_SLOTS = 2  # РЭСК, Водоканал

MALE_LAST = (
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Васильев",
    "Петров",
    "Соколов",
    "Михайлов",
    "Новиков",
    "Фёдоров",
    "Морозов",
    "Волков",
    "Алексеев",
    "Лебедев",
    "Семёнов",
    "Егоров",
    "Павлов",
    "Козлов",
    "Степанов",
    "Николаев",
    "Орлов",
    "Андреев",
    "Макаров",
    "Никитин",
    "Захаров",
    "Зайцев",
    "Соловьёв",
    "Борисов",
    "Яковлев",
    "Григорьев",
    "Романов",
)
MALE_FIRST = (
    "Александр",
    "Сергей",
    "Дмитрий",
    "Андрей",
    "Алексей",
    "Максим",
    "Евгений",
    "Иван",
    "Михаил",
    "Николай",
    "Владимир",
    "Юрий",
    "Олег",
    "Павел",
    "Виктор",
    "Артём",
)
FEMALE_FIRST = (
    "Елена",
    "Ольга",
    "Наталья",
    "Татьяна",
    "Ирина",
    "Светлана",
    "Анна",
    "Мария",
    "Екатерина",
    "Юлия",
    "Галина",
    "Людмила",
    "Марина",
    "Надежда",
    "Валентина",
    "Оксана",
)
PATRONYMICS = (
    ("Александрович", "Александровна"),
    ("Сергеевич", "Сергеевна"),
    ("Дмитриевич", "Дмитриевна"),
    ("Андреевич", "Андреевна"),
    ("Алексеевич", "Алексеевна"),
    ("Иванович", "Ивановна"),
    ("Михайлович", "Михайловна"),
    ("Николаевич", "Николаевна"),
    ("Владимирович", "Владимировна"),
    ("Юрьевич", "Юрьевна"),
    ("Викторович", "Викторовна"),
    ("Петрович", "Петровна"),
)
STREETS = (
    "ул. Ленина",
    "ул. Есенина",
    "ул. Циолковского",
    "Московское ш.",
    "ул. Гагарина",
    "ул. Каляева",
    "ул. Новосёлов",
    "ул. Интернациональная",
    "ул. Бирюзова",
    "ул. Костычева",
    "Касимовское ш.",
    "ул. Полевая",
    "ул. Вокзальная",
    "ул. Маяковского",
    "Первомайский пр-т",
    "ул. Соборная",
    "ул. Свободы",
    "ул. Дзержинского",
    "ул. Забайкальская",
    "ул. Народный бульвар",
)
DISPLAY_NAMES = ("Квартира", "Дом", "Дача", "Гараж", "Квартира родителей")


def _rnd(expr: str, salt: int) -> str:
    """SQL: a deterministic pseudo-random integer in 0..1048575 from ``expr`` (an integer) and ``salt``."""
    return f"(hashint8extended(({expr})::bigint, {salt}) & 1048575)"


def _local(day_expr: str, hour_expr: str) -> str:
    """SQL: Moscow wall-clock time on ``day_expr`` (a date) at ``hour_expr`` hours as timestamptz."""
    return f"((({day_expr})::timestamp + ({hour_expr}) * interval '1 hour') AT TIME ZONE 'Europe/Moscow')"


_PHONE_SQL = f"'+7' || lpad(({SYNTHETIC_PHONE_BASE} + {{u}})::text, 10, '0')"

# Per-account attributes of one chunk, every later statement joins this table.
SQL_CHUNK_ACCOUNTS = f"""
CREATE TEMP TABLE demo_acc ON COMMIT DROP AS
SELECT x.*,
       CASE WHEN x.user_index >= CAST(:u_first AS bigint)
            THEN CAST(:u_base AS bigint) + x.user_index - CAST(:u_first AS bigint)
            ELSE (SELECT id FROM users WHERE deleted_at IS NULL
                  AND phone = {_PHONE_SQL.format(u="x.user_index")})
       END AS user_id,
       CASE WHEN x.female THEN x.last_male || 'а' ELSE x.last_male END AS last_name,
       CASE WHEN x.female THEN (CAST(:female_first AS text[]))[1 + {_rnd("x.i", 3)} % :n_female_first]
            ELSE (CAST(:male_first AS text[]))[1 + {_rnd("x.i", 3)} % :n_male_first] END AS first_name,
       (CAST(:patronymics AS text[]))[1 + 2 * ({_rnd("x.i", 4)} % :n_patronymics) + x.female::int] AS
           middle_name
FROM (
    SELECT s.k, s.i,
           CAST(:acc_base AS bigint) + s.k AS account_id,
           b.id AS branch_id, b.reading_window_start_day AS win_start, b.reading_window_end_day AS win_end,
           (s.i / {_GROUP_SPAN}) * {_GROUP_USERS} + (CAST(:user_offsets AS int[]))[1 + s.i % {_GROUP_SPAN}]
               AS user_index,
           (CAST(:first_of_group AS boolean[]))[1 + s.i % {_GROUP_SPAN}] AS first_of_group,
           {_rnd("s.i", 1)} % 2 = 0 AS female,
           (CAST(:male_last AS text[]))[1 + {_rnd("s.i", 2)} % :n_male_last] AS last_male,
           'г. Рязань, ' || (CAST(:streets AS text[]))[1 + {_rnd("s.i", 5)} % :n_streets]
               || ', д. ' || (1 + {_rnd("s.i", 6)} % 120) || ', кв. ' || (1 + {_rnd("s.i", 7)} % 180) AS
                   address,
           1 + {_rnd("s.i", 8)} % 4 AS residents,
           1 + {_rnd("s.i", 9)} % 4 AS rooms,
           {_rnd("s.i", 10)} % 4 = 0 AS electric_stove,
           {_rnd("s.i", 11)} % 25 = 0 AS electric_heating,
           {_rnd("s.i", 12)} % 3 = 0 AS two_zone,
           {_rnd("s.i", 13)} % 10 < 7 AS water_meter,
           (120 + {_rnd("s.i", 14)} % 220)::numeric AS elec_average,
           (2.5 + ({_rnd("s.i", 15)} % 200) / 100.0)::numeric AS water_per_person,
           (10000 + {_rnd("s.i", 16)} % 40000)::numeric(14, 3) AS day_base,
           (4000 + {_rnd("s.i", 17)} % 15000)::numeric(14, 3) AS night_base,
           round((50 + ({_rnd("s.i", 18)} % 700000) / 1000.0)::numeric, 3) AS water_base,
           {_rnd("s.i", 19)} % 10 = 0 AS overpayer,
           CASE WHEN {_rnd("s.i", 20)} % 25 = 1 THEN 2 + {_rnd("s.i", 21)} % 5 ELSE 0 END AS stopped_months,
           5 + {_rnd("s.i", 22)} % 19 AS pay_day
    FROM (SELECT k, CAST(:i0 AS bigint) + k AS i
          FROM generate_series(CAST(:k0 AS bigint), CAST(:k1 AS bigint) - 1) AS k) AS s
    JOIN branches AS b ON b.id = (CAST(:branch_ids AS bigint[]))[1 + s.i % :n_branches]
) AS x
"""

SQL_USERS = f"""
INSERT INTO users (id, phone, email, email_confirmed_at, last_name, first_name, middle_name, password_hash,
                   password_changed_at, role, show_hints, created_at, updated_at)
SELECT a.user_id, {_PHONE_SQL.format(u="a.user_index")}, 'client' || a.user_index || '@example.com',
       CAST(:created AS timestamptz), a.last_name, a.first_name, a.middle_name, CAST(:password_hash AS text),
       CAST(:created AS timestamptz), 'CUSTOMER', true, CAST(:created AS timestamptz), CAST(:created AS
           timestamptz)
FROM demo_acc AS a WHERE a.first_of_group
"""

SQL_CONSENTS = """
INSERT INTO consents (id, user_id, kind, policy_version, accepted_at)
SELECT CAST(:cons_base AS bigint) + a.user_id - CAST(:u_base AS bigint), a.user_id, 'PERSONAL_DATA',
       CAST(:policy AS text), CAST(:created AS timestamptz)
FROM demo_acc AS a WHERE a.first_of_group
"""

SQL_ACCOUNTS = f"""
INSERT INTO accounts (id, branch_id, number, owner_last_name, owner_first_name, owner_middle_name, address,
                      total_area, living_area, owners_count, registered_count, residing_count, rooms,
                          stove_type,
                      electric_heating, e_receipt_allowed, created_at, updated_at)
SELECT a.account_id, a.branch_id, ({SYNTHETIC_NUMBER_BASE} + a.i)::text, a.last_name, a.first_name,
    a.middle_name,
       a.address, round(22 + a.rooms * 15 + ({_rnd("a.i", 30)} % 900) / 100.0, 2),
       round((22 + a.rooms * 15) * 0.62, 2), 1 + {_rnd("a.i", 31)} % 2, a.residents + ({_rnd("a.i", 32)} % 5
           = 0)::int,
       a.residents, a.rooms, CASE WHEN a.electric_stove THEN 'ELECTRIC' ELSE 'GAS' END, a.electric_heating,
       {_rnd("a.i", 33)} % 20 <> 0, CAST(:created AS timestamptz), CAST(:created AS timestamptz)
FROM demo_acc AS a
"""

SQL_USER_ACCOUNTS = f"""
INSERT INTO user_accounts (id, user_id, account_id, display_name, e_receipt_enabled, linked_at)
SELECT CAST(:ua_base AS bigint) + a.k, a.user_id, a.account_id,
       CASE WHEN {_rnd("a.i", 40)} % 3 = 0 THEN (CAST(:display_names AS text[]))[1 + {_rnd("a.i", 41)} %
           :n_display]
       END,
       {_rnd("a.i", 42)} % 3 = 0, CAST(:created AS timestamptz) + (a.i % 1440) * interval '1 minute'
FROM demo_acc AS a
"""

SQL_ACCOUNT_SERVICES = f"""
INSERT INTO account_services (id, account_id, service_id, zone_scheme, started_on)
SELECT CAST(:as_base AS bigint) + a.k * {_SERVICES_PER_ACCOUNT} + s.slot, a.account_id,
       (ARRAY[CAST(:svc_electricity AS bigint), CAST(:svc_water AS bigint), CAST(:svc_waste AS bigint)])[1 +
           s.slot],
       CASE WHEN s.slot = 0 THEN CASE WHEN a.two_zone THEN 'DAY_NIGHT' ELSE 'SINGLE' END END,
       CAST(:opened AS date)
FROM demo_acc AS a CROSS JOIN generate_series(0, {_SERVICES_PER_ACCOUNT - 1}) AS s(slot)
"""

SQL_METERS = f"""
INSERT INTO meters (id, account_id, service_id, serial, model, zone_scheme, digits, decimals, location,
                    installed_at, verified_at, verification_due, seal_number, sealed_at, created_at,
                        updated_at)
SELECT CAST(:m_base AS bigint) + a.k * {_METERS_PER_ACCOUNT} + j.slot, a.account_id,
       CASE WHEN j.slot = 0 THEN CAST(:svc_electricity AS bigint) ELSE CAST(:svc_water AS bigint) END,
       lpad(({_rnd("a.i * 2 + j.slot", 50)} * 97 + a.i)::text, 9, '0'),
       CASE WHEN j.slot = 1 THEN 'СГВ-15 «Бетар»' WHEN a.two_zone THEN 'Меркурий 200.02'
            ELSE 'Меркурий 201.8' END,
       CASE WHEN j.slot = 0 AND a.two_zone THEN 'DAY_NIGHT' ELSE 'SINGLE' END,
       CASE WHEN j.slot = 0 THEN 6 ELSE 5 END, CASE WHEN j.slot = 0 THEN 1 ELSE 3 END,
       CASE WHEN j.slot = 0 THEN 'Лестничная площадка' ELSE 'Санузел' END,
       d.installed, d.installed, d.installed + CASE WHEN j.slot = 0 THEN 5844 ELSE 2191 END,
       CASE WHEN j.slot = 0 THEN 'РЭСК ' ELSE 'ВК ' END || lpad(({_rnd("a.i", 52)})::text, 7, '0'),
       d.installed, CAST(:created AS timestamptz), CAST(:created AS timestamptz)
FROM demo_acc AS a
CROSS JOIN LATERAL (SELECT CAST(:installed AS date) - ({_rnd("a.i", 51)} % 1500)::int AS installed) AS d
CROSS JOIN generate_series(0, {_METERS_PER_ACCOUNT - 1}) AS j(slot)
WHERE j.slot = 0 OR a.water_meter
"""

# Consumption per account, month and charge slot; readings and charges are both derived from it.
SQL_USAGE = f"""
CREATE TEMP TABLE demo_usage ON COMMIT DROP AS
SELECT x.k, x.i, x.account_id, x.branch_id, x.m, x.period, c.slot,
       CASE WHEN c.slot < 2 THEN CAST(:svc_electricity AS bigint) WHEN c.slot = 2 THEN CAST(:svc_water AS
           bigint)
            ELSE CAST(:svc_waste AS bigint) END AS service_id,
       CASE WHEN c.slot = 2 THEN CAST(:sup_water AS bigint) ELSE CAST(:sup_resk AS bigint) END AS supplier_id,
       CASE WHEN c.slot = 2 THEN 1 ELSE 0 END AS sup_slot,
       CASE WHEN c.slot = 1 THEN 'NIGHT' WHEN c.slot = 0 AND x.two_zone THEN 'DAY' ELSE 'SINGLE' END AS zone,
       CASE WHEN c.slot >= 2 THEN 0 WHEN x.electric_stove OR x.electric_heating THEN 2 ELSE 1 END AS grp,
       (c.slot < 2 OR (c.slot = 2 AND x.water_meter)) AS metered,
       CASE WHEN c.slot < 2 THEN 0 ELSE 1 END AS meter_slot,
       CASE WHEN c.slot = 1 THEN 1 ELSE 0 END AS zone_slot,
       CASE c.slot WHEN 0 THEN x.day_base WHEN 1 THEN x.night_base ELSE x.water_base END AS base_value,
       CASE c.slot
            WHEN 0 THEN CASE WHEN x.two_zone THEN x.elec_total - round(x.elec_total * 0.32) ELSE
                x.elec_total END
            WHEN 1 THEN round(x.elec_total * 0.32)
            WHEN 2 THEN CASE WHEN x.water_meter
                             THEN round(x.residents * x.water_per_person
                                        * (0.8 + ({_rnd("x.i * 64 + x.m", 61)} % 400) / 1000.0), 3)
                             ELSE x.residents * CAST(:water_norm AS numeric) END
            ELSE x.residents::numeric
       END::numeric(14, 3) AS volume
FROM (
    SELECT a.*, m.m, (CAST(:p0 AS date) + m.m * interval '1 month')::date AS period,
           round((a.elec_average * (1 + CASE WHEN a.electric_stove THEN 0.3 ELSE 0 END)
                  + CASE WHEN a.electric_heating THEN 300 ELSE 0 END)
                 * (1 + 0.25 * cos(2 * pi() * (extract(month FROM CAST(:p0 AS date) + m.m * interval
                     '1 month')
                                                - 1) / 12))::numeric
                 * (0.85 + ({_rnd("a.i * 64 + m.m", 60)} % 300) / 1000.0)::numeric) AS elec_total
    FROM demo_acc AS a CROSS JOIN generate_series(0, CAST(:months AS int) - 1) AS m(m)
) AS x
CROSS JOIN generate_series(0, {_CHARGE_SLOTS - 1}) AS c(slot)
WHERE c.slot <> 1 OR x.two_zone
"""

SQL_SUBMISSIONS = f"""
INSERT INTO reading_submissions (id, account_id, user_id, source, period, created_at)
SELECT CAST(:rs_base AS bigint) + a.k * (CAST(:months AS int) + 1) + r.r, a.account_id,
       a.user_id, src.source, (CAST(:p0 AS date) + (r.r - 1) * interval '1 month')::date,
       {
    _local(
        "CAST(:p0 AS date) + (r.r - 1) * interval '1 month' + (a.win_start - 1) * interval '1 day'",
        "8 + r.r % 12",
    )
}
FROM demo_acc AS a CROSS JOIN generate_series(1, CAST(:months AS int)) AS r(r)
CROSS JOIN LATERAL (SELECT CASE WHEN {_rnd("a.i * 64 + r.r", 70)} % 20 < 9 THEN 'CABINET'
                                WHEN {
    _rnd("a.i * 64 + r.r", 70)
} % 20 < 17 THEN 'MOBILE' END AS source) AS src
WHERE src.source IS NOT NULL
"""

# r = 0 is the base reading of the month before the history; r = m + 1 closes month m.
SQL_READINGS = f"""
INSERT INTO readings (id, meter_id, account_id, submission_id, zone, period, value, source,
    submitted_by_user_id,
                      submitted_at, accepted, accepted_at)
SELECT CAST(:r_base AS bigint)
           + ((v.k * {
    _METERS_PER_ACCOUNT
} + v.meter_slot) * (CAST(:months AS int) + 1) + v.r) * 2 + v.zone_slot,
       CAST(:m_base AS bigint) + v.k * {_METERS_PER_ACCOUNT} + v.meter_slot, v.account_id,
       CASE WHEN src.source IN ('CABINET', 'MOBILE')
            THEN CAST(:rs_base AS bigint) + v.k * (CAST(:months AS int) + 1) + v.r END,
       v.zone, (CAST(:p0 AS date) + (v.r - 1) * interval '1 month')::date, v.value, src.source,
       CASE WHEN src.source IN ('CABINET', 'MOBILE') THEN a.user_id END,
       {
    _local(
        "CAST(:p0 AS date) + (v.r - 1) * interval '1 month' + (a.win_start - 1) * interval '1 day'",
        "8 + v.r % 12",
    )
},
       true,
       {_local("CAST(:p0 AS date) + (v.r - 1) * interval '1 month' + a.win_end * interval '1 day'", "1")}
FROM (
    SELECT u.k, u.account_id, u.meter_slot, u.zone_slot, u.zone, u.m + 1 AS r,
           u.base_value + sum(u.volume) OVER (PARTITION BY u.k, u.slot ORDER BY u.m) AS value
    FROM demo_usage AS u WHERE u.metered
    UNION ALL
    SELECT u.k, u.account_id, u.meter_slot, u.zone_slot, u.zone, 0, u.base_value
    FROM demo_usage AS u WHERE u.metered AND u.m = 0
) AS v
JOIN demo_acc AS a ON a.k = v.k
CROSS JOIN LATERAL (SELECT CASE WHEN v.r = 0 THEN 'OPERATOR'
                                WHEN {_rnd("a.i * 64 + v.r", 70)} % 20 < 9 THEN 'CABINET'
                                WHEN {_rnd("a.i * 64 + v.r", 70)} % 20 < 17 THEN 'MOBILE'
                                WHEN {_rnd("a.i * 64 + v.r", 70)} % 20 < 19 THEN 'AMI'
                                ELSE 'OPERATOR' END AS source) AS src
"""

SQL_CHARGES = f"""
WITH inserted AS (
    INSERT INTO charges (id, account_id, period, service_id, supplier_id, zone, volume, rate, amount,
        recalculation,
                         created_at)
    SELECT CAST(:c_base AS bigint) + (c.k * CAST(:months AS int) + c.m) * {_CHARGE_SLOTS} + c.slot,
           c.account_id, c.period, c.service_id, c.supplier_id,
           CASE WHEN c.slot < 2 THEN c.zone END, c.volume, c.rate, c.amount,
           CASE WHEN c.slot = 0 AND {_rnd("c.i * 64 + c.m", 80)} % 40 = 0
                THEN CASE WHEN {_rnd("c.i * 64 + c.m", 81)} % 2 = 0 THEN -round(c.amount * 0.25, 2)
                          ELSE round(c.amount * 0.15, 2) END
                ELSE 0 END,
           {_local("c.period + interval '1 month'", "3")}
    FROM (
        SELECT u.*, r.rate, round(u.volume * r.rate, 2) AS amount
        FROM demo_usage AS u
        JOIN demo_rates AS r ON r.branch_id = u.branch_id AND r.service_id = u.service_id AND r.zone = u.zone
                             AND r.grp = u.grp AND r.period = u.period
    ) AS c
    RETURNING account_id, period, supplier_id, amount + recalculation AS total
)
INSERT INTO demo_due (k, m, account_id, period, supplier_id, sup_slot, charged)
SELECT account_id - CAST(:acc_base AS bigint),
       (extract(year FROM period) * 12 + extract(month FROM period) - 1)::int - CAST(:p0_index AS int),
       account_id, period, supplier_id,
       CASE WHEN supplier_id = CAST(:sup_resk AS bigint) THEN 0 ELSE 1 END, sum(total)
FROM inserted GROUP BY account_id, period, supplier_id
"""

# Payment in month t (1..months; months = the current month) pays the charges of month t - 1, and of t - 2
# when month t - 1 went without payment. Every 7th month is skipped; some accounts stop paying at the end;
# overpayers add an advance in the current month.
SQL_PAYMENT_PLAN = """
INSERT INTO demo_alloc (k, t, sup_slot, supplier_id, account_id, user_id, amount, paid_at, method)
SELECT p.k, p.t, d.sup_slot, d.supplier_id, p.account_id, p.user_id,
       sum(d.charged) + CASE WHEN p.overpayer AND p.t = CAST(:months AS int) AND d.sup_slot = 0
                             THEN 500 ELSE 0 END,
       min(p.paid_at), min(p.method)
FROM (
    SELECT a.k, a.i, t.t, a.account_id, a.user_id, a.overpayer,
           (a.i + t.t - 1) % 7 = 3 AND t.t >= 2 AS covers_previous,
           PAID_AT AS paid_at,
           CASE WHEN RND_METHOD % 5 < 2 THEN 'SBP' ELSE 'CARD' END AS method
    FROM demo_acc AS a CROSS JOIN generate_series(1, CAST(:months AS int)) AS t(t)
    WHERE (a.i + t.t) % 7 <> 3
      AND NOT (a.stopped_months > 0 AND t.t > CAST(:months AS int) - a.stopped_months)
      AND (t.t < CAST(:months AS int) OR a.pay_day < CAST(:today_day AS int))
) AS p
CROSS JOIN LATERAL (VALUES (p.t - 1), (CASE WHEN p.covers_previous THEN p.t - 2 END)) AS c(m)
JOIN demo_due AS d ON d.k = p.k AND d.m = c.m
GROUP BY p.k, p.t, d.sup_slot, d.supplier_id, p.account_id, p.user_id, p.overpayer
HAVING sum(d.charged) > 0
""".replace(
    "PAID_AT",
    _local(
        "CAST(:p0 AS date) + t.t * interval '1 month' + (a.pay_day - 1) * interval '1 day'",
        f"9 + {_rnd('a.i * 64 + t.t', 90)} % 11",
    ),
).replace("RND_METHOD", _rnd("a.i * 64 + t.t", 91))

SQL_PAYMENTS = """
INSERT INTO payments (id, user_id, status, method, amount, currency, gateway, gateway_payment_id,
    idempotency_key,
                      request_fingerprint, rules_accepted_at, is_autopay, paid_at, created_at, updated_at)
SELECT g.id, g.user_id, 'SUCCEEDED', g.method, g.amount, 'RUB', 'sandbox', 'demo-' || g.id, 'demo-' || g.id,
       lpad(to_hex(g.id), 64, '0'), g.paid_at, false, g.paid_at + interval '40 seconds', g.paid_at,
       g.paid_at + interval '40 seconds'
FROM (SELECT CAST(:p_base AS bigint) + k * (CAST(:months AS int) + 1) + t AS id, min(user_id) AS user_id,
             min(method) AS method, sum(amount) AS amount, min(paid_at) AS paid_at
      FROM demo_alloc GROUP BY k, t) AS g
"""

SQL_ALLOCATIONS = f"""
INSERT INTO payment_allocations (id, payment_id, account_id, supplier_id, period, amount)
SELECT CAST(:pa_base AS bigint) + (l.k * (CAST(:months AS int) + 1) + l.t) * {_SUPPLIER_SLOTS} + l.sup_slot,
       CAST(:p_base AS bigint) + l.k * (CAST(:months AS int) + 1) + l.t, l.account_id, l.supplier_id,
       (CAST(:p0 AS date) + l.t * interval '1 month')::date, l.amount
FROM demo_alloc AS l
"""

SQL_BALANCES_AND_RECEIPTS = f"""
WITH balances AS (
    INSERT INTO period_balances (id, account_id, supplier_id, period, opening, charged, paid, closing,
        created_at)
    SELECT CAST(:pb_base AS bigint) + (b.k * CAST(:months AS int) + b.m) * {_SUPPLIER_SLOTS} + b.sup_slot,
           b.account_id, b.supplier_id, b.period, b.closing - b.charged + b.paid, b.charged, b.paid,
               b.closing,
           {_local("b.period + interval '1 month'", "3")}
    FROM (
        SELECT d.*, coalesce(l.amount, 0) AS paid,
               sum(d.charged - coalesce(l.amount, 0)) OVER (PARTITION BY d.k, d.sup_slot ORDER BY d.m) AS
                   closing
        FROM demo_due AS d LEFT JOIN demo_alloc AS l ON l.k = d.k AND l.t = d.m AND l.sup_slot = d.sup_slot
    ) AS b
    RETURNING account_id, period, closing
)
INSERT INTO receipts (id, account_id, period, total_due, due_date, created_at)
SELECT CAST(:rc_base AS bigint) + (account_id - CAST(:acc_base AS bigint)) * CAST(:months AS int)
           + (extract(year FROM period) * 12 + extract(month FROM period) - 1)::int - CAST(:p0_index AS int),
       account_id, period, sum(closing), (period + interval '1 month 9 days')::date,
       {_local("period + interval '1 month'", "4")}
FROM balances GROUP BY account_id, period
"""

SQL_CHUNK_TEMPS = """
CREATE TEMP TABLE demo_due (k bigint, m int, account_id bigint, period date, supplier_id bigint, sup_slot int,
                            charged numeric) ON COMMIT DROP;
CREATE TEMP TABLE demo_alloc (k bigint, t int, sup_slot int, supplier_id bigint, account_id bigint, user_id
    bigint,
                              amount numeric, paid_at timestamptz, method text) ON COMMIT DROP
"""

SQL_RATES = """
CREATE TEMP TABLE demo_rates AS
SELECT t.branch_id, t.service_id, t.zone, p::date AS period, t.rate,
       CASE t.consumer_group WHEN CAST(:group_gas AS text) THEN 1 WHEN CAST(:group_electric AS text) THEN 2
            ELSE 0 END AS grp
FROM tariffs AS t
CROSS JOIN generate_series(CAST(:p0 AS date), CAST(:p_last AS date), interval '1 month') AS p
WHERE p::date >= t.valid_from AND (t.valid_to IS NULL OR p::date <= t.valid_to)
"""

# statement → rows counted under this table name
_CHUNK_STEPS: tuple[tuple[str, str | None], ...] = (
    (SQL_CHUNK_ACCOUNTS, None),
    (SQL_USERS, "users"),
    (SQL_CONSENTS, "consents"),
    (SQL_ACCOUNTS, "accounts"),
    (SQL_USER_ACCOUNTS, "user_accounts"),
    (SQL_ACCOUNT_SERVICES, "account_services"),
    (SQL_METERS, "meters"),
    (SQL_USAGE, None),
    ("ANALYZE demo_acc, demo_usage", None),
    (SQL_SUBMISSIONS, "reading_submissions"),
    (SQL_READINGS, "readings"),
    (SQL_CHARGES, None),
    ("ANALYZE demo_due", None),
    (SQL_PAYMENT_PLAN, None),
    ("ANALYZE demo_alloc", None),
    (SQL_PAYMENTS, "payments"),
    (SQL_ALLOCATIONS, "payment_allocations"),
    (SQL_BALANCES_AND_RECEIPTS, None),
)

_SYNTHETIC_TABLES = (
    "users",
    "consents",
    "accounts",
    "user_accounts",
    "account_services",
    "meters",
    "reading_submissions",
    "readings",
    "charges",
    "payments",
    "payment_allocations",
    "period_balances",
    "receipts",
)
# table → its id base parameter
_ID_BASES = {
    "users": "u_base",
    "consents": "cons_base",
    "accounts": "acc_base",
    "user_accounts": "ua_base",
    "account_services": "as_base",
    "meters": "m_base",
    "reading_submissions": "rs_base",
    "readings": "r_base",
    "charges": "c_base",
    "payments": "p_base",
    "payment_allocations": "pa_base",
    "period_balances": "pb_base",
    "receipts": "rc_base",
}


async def _load_synthetic(
    db: Database, *, count: int, months: int, today: dt.date, password_hash: str, counts: dict[str, int]
) -> None:
    """Append ``count`` synthetic accounts (with users and ``months`` of history) in parallel chunks."""
    current = month_start(today)
    p0 = add_months(current, -months)
    async with db.engine.connect() as conn:
        start: int = (
            await conn.execute(
                text(
                    f"SELECT coalesce(max(number::bigint) - {SYNTHETIC_NUMBER_BASE} + 1, 0) FROM accounts "
                    f"WHERE number ~ '{_SYNTHETIC_NUMBER_RE}'"
                )
            )
        ).scalar_one()
        bases: dict[str, int] = {}
        for table, name in _ID_BASES.items():
            bases[name] = (
                await conn.execute(text(f"SELECT coalesce(max(id), 0) + 1 FROM {table}"))
            ).scalar_one()
        refs = {row.code: row.id for row in (await conn.execute(text("SELECT code, id FROM services"))).all()}
        suppliers = {
            row.inn: row.id for row in (await conn.execute(text("SELECT inn, id FROM suppliers"))).all()
        }
        superuser: bool = (
            await conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
        ).scalar_one()
        branch_ids: list[int] = list(
            (await conn.execute(text("SELECT id FROM branches ORDER BY position, id"))).scalars()
        )
        await conn.commit()
    first_user = synthetic_user_of_account(start) + (0 if _FIRST_OF_GROUP[start % _GROUP_SPAN] else 1)
    end = start + count
    params: dict[str, Any] = {
        **bases,
        "i0": start,
        "u_first": first_user,
        "months": months,
        "p0": p0,
        "p0_index": p0.year * 12 + p0.month - 1,
        "today_day": today.day,
        "skip_fk_checks": bool(superuser),
        "created": _at(add_months(p0, -2), 12),
        "opened": add_months(p0, -24),
        "installed": add_months(p0, -1),
        "password_hash": password_hash,
        "policy": POLICY_VERSION,
        "branch_ids": branch_ids,
        "n_branches": len(branch_ids),
        "user_offsets": _USER_OFFSET,
        "first_of_group": _FIRST_OF_GROUP,
        "male_last": list(MALE_LAST),
        "n_male_last": len(MALE_LAST),
        "male_first": list(MALE_FIRST),
        "n_male_first": len(MALE_FIRST),
        "female_first": list(FEMALE_FIRST),
        "n_female_first": len(FEMALE_FIRST),
        "patronymics": [form for pair in PATRONYMICS for form in pair],
        "n_patronymics": len(PATRONYMICS),
        "streets": list(STREETS),
        "n_streets": len(STREETS),
        "display_names": list(DISPLAY_NAMES),
        "n_display": len(DISPLAY_NAMES),
        "svc_electricity": refs["ELECTRICITY"],
        "svc_water": refs["WATER_COLD"],
        "svc_waste": refs["WASTE"],
        "sup_resk": suppliers[SUPPLIERS["RESK"]["inn"]],
        "sup_water": suppliers[SUPPLIERS["WATER"]["inn"]],
        "group_gas": GROUP_GAS,
        "group_electric": GROUP_ELECTRIC,
        "water_norm": WATER_NORM_PER_PERSON,
    }
    # chunk boundaries at multiples of the group span (in global account numbering)
    bounds = [start]
    edge = (start // SYNTHETIC_CHUNK + 1) * SYNTHETIC_CHUNK
    while edge < end:
        bounds.append(edge)
        edge += SYNTHETIC_CHUNK
    bounds.append(end)
    chunks: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for low, high in itertools.pairwise(bounds):
        chunks.put_nowait((low - start, high - start))

    async def worker() -> None:
        async with db.engine.connect() as conn:
            await conn.execute(
                text(SQL_RATES), _used(SQL_RATES, {**params, "p_last": add_months(current, -1)})
            )
            await conn.execute(text("ANALYZE demo_rates"))
            await conn.commit()
            try:
                while not chunks.empty():
                    k0, k1 = chunks.get_nowait()
                    await _load_chunk(conn, {**params, "k0": k0, "k1": k1}, counts)
            finally:
                await conn.execute(text("DROP TABLE IF EXISTS demo_rates"))
                await conn.commit()

    async with asyncio.TaskGroup() as group:
        for _ in range(min(SYNTHETIC_WORKERS, chunks.qsize())):
            group.create_task(worker())
    async with db.engine.begin() as conn:
        await _fix_sequences(conn, _SYNTHETIC_TABLES)
        await conn.execute(text("ANALYZE"))
    counts["synthetic_users"] += synthetic_user_of_account(end - 1) - first_user + 1


async def _load_chunk(conn: AsyncConnection, params: dict[str, Any], counts: dict[str, int]) -> None:
    """One transaction: accounts ``k0..k1`` (run-local indexes) with everything that hangs off them."""
    async with conn.begin():
        await conn.execute(text("SET LOCAL synchronous_commit = off"))
        await conn.execute(text("SET LOCAL work_mem = '128MB'"))
        # the rows are consistent by construction, and FK triggers would cost half the time
        if params["skip_fk_checks"]:
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
        for statement in SQL_CHUNK_TEMPS.split(";"):
            await conn.execute(text(statement))
        for sql, table in _CHUNK_STEPS:
            result = await conn.execute(text(sql), _used(sql, params))
            if table is not None:
                counts[table] += result.rowcount
        totals = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM demo_usage), (SELECT count(*) FROM demo_due),"
                    " (SELECT count(DISTINCT (k, m)) FROM demo_due)"
                )
            )
        ).one()
        # (no await between reading and writing the shared counters: the other worker interleaves)
        counts["charges"] += totals[0]
        counts["period_balances"] += totals[1]
        counts["receipts"] += totals[2]


_BIND = re.compile(r"(?<![:\w]):(\w+)")


def _used(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``params`` that ``sql`` binds."""
    return {name: params[name] for name in set(_BIND.findall(sql))}
