"""The demo data set (constants and specs): what `kabinet serve` shows and tests and benchmarks run on.

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

import datetime as dt
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from models.identity import UserRole
from models.tariffs import Zone
from services.periods import add_months

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


async def _fix_sequences(session: AsyncSession | AsyncConnection, tables: Sequence[str]) -> None:
    """Move each table's identity sequence past its largest id (rows may carry explicit ids)."""
    for table in tables:
        await session.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) "
                f"FROM {table}"
            )
        )
