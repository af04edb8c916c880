"""Billing: balances (B4, D7), charges (D2), payments (D4), events (D1), statistics (D6), tariffs (C4).

Sign convention everywhere: positive = the customer owes (debt), negative = overpayment, zero = neither.
Functions that serve lists take many account ids at once so per-request loaders batch them into one
statement whatever the number of accounts or months.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, and_, bindparam, cast, false, func, literal, null, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from models.accounts import Account, AccountService
from models.billing import Charge, PeriodBalance, Receipt
from models.exchange import ExternalPayment
from models.payments import Payment, PaymentAllocation, PaymentMethodKind, PaymentStatus
from models.plain import PlainQuery, Reads, plain, plain_rows, plain_select
from models.tariffs import Tariff, Zone
from services.clock import MOSCOW
from services.periods import PeriodRange, add_months, allowed_range, month_start

ZERO = Decimal("0.00")


class BalanceStatus(enum.StrEnum):
    """B4: what the balance means to the customer."""

    DEBT = "DEBT"
    OVERPAYMENT = "OVERPAYMENT"
    NONE = "NONE"


BALANCE_LABELS = {
    BalanceStatus.DEBT: "К оплате",
    BalanceStatus.OVERPAYMENT: "Переплата",
    BalanceStatus.NONE: "Задолженность отсутствует",
}
"""B4: the words the manual shows next to the amount."""


def balance_status(amount: Decimal) -> BalanceStatus:
    """DEBT for a positive amount, OVERPAYMENT for a negative one, NONE for zero."""
    if amount > 0:
        return BalanceStatus.DEBT
    if amount < 0:
        return BalanceStatus.OVERPAYMENT
    return BalanceStatus.NONE


def display_amount(amount: Decimal) -> str:
    """B4's text of an amount: «1 234,50», overpayment with «-», neither «0,00»."""
    quantized = amount.quantize(Decimal("0.01"))
    sign = "-" if quantized < 0 else ""
    whole, _, kopecks = f"{abs(quantized):.2f}".partition(".")
    grouped = f"{int(whole):,}".replace(",", "\u00a0")
    return f"{sign}{grouped},{kopecks}"


@dataclass(slots=True)
class SupplierBalance:
    """The balance with one supplier: last closing balance minus payments credited since."""

    supplier_id: int
    amount: Decimal
    closing: Decimal  # closing balance of the last billed period
    paid_since: Decimal  # payments credited after that period (the current one)


@dataclass(slots=True)
class AccountBalance:
    """B4: the account's balance counting this period's payments, with the per-supplier breakdown."""

    account_id: int
    billed_period: dt.date | None  # the last period billing closed
    suppliers: list[SupplierBalance] = field(default_factory=list)

    @property
    def amount(self) -> Decimal:
        """Sum over suppliers (debt positive, overpayment negative)."""
        return sum((line.amount for line in self.suppliers), ZERO)


_SINCE = (
    select(
        Account.id.label("account_id"),
        func.coalesce(
            select(func.max(PeriodBalance.period))
            .where(PeriodBalance.account_id == Account.id)
            .scalar_subquery(),
            literal(dt.date.min),
        ).label("period"),
    )
    .where(Account.id.in_(bindparam("account_ids", expanding=True)))
    .cte("since")
)
"""Each account with its last closed period (the earliest date when it has none): planned once, used by
both parts (issue 21: the balance's planning was three times its execution)."""
_LAST_CLOSED = select(
    literal(0).label("part"),
    PeriodBalance.account_id,
    PeriodBalance.supplier_id,
    PeriodBalance.period,
    PeriodBalance.closing,
).join(_SINCE, and_(PeriodBalance.account_id == _SINCE.c.account_id, PeriodBalance.period == _SINCE.c.period))
_CABINET_PAID = (
    select(PaymentAllocation.account_id, PaymentAllocation.supplier_id, PaymentAllocation.amount)
    .join(
        _SINCE,
        and_(PaymentAllocation.account_id == _SINCE.c.account_id, PaymentAllocation.period > _SINCE.c.period),
    )
    .join(Payment, Payment.id == PaymentAllocation.payment_id)
    .where(Payment.status == PaymentStatus.SUCCEEDED)
)
_EXTERNAL_PAID = select(ExternalPayment.account_id, ExternalPayment.supplier_id, ExternalPayment.amount).join(
    _SINCE, and_(ExternalPayment.account_id == _SINCE.c.account_id, ExternalPayment.period > _SINCE.c.period)
)
_PAID = union_all(_CABINET_PAID, _EXTERNAL_PAID).subquery("paid")
_PAID_SINCE = select(
    literal(1).label("part"), _PAID.c.account_id, _PAID.c.supplier_id, null(), func.sum(_PAID.c.amount)
).group_by(_PAID.c.account_id, _PAID.c.supplier_id)
"""Payments credited after the last closed period: the cabinet's own and those billing received through
other channels (issue 18: a bank payment of this month lowers the balance as a cabinet payment does). The
period is a join condition, so each account's payments are one index range of ``(account_id, period)``
(issue 21: every payment an account ever made was looked up to keep the few of this month)."""
_BALANCE_PARTS = PlainQuery(
    union_all(_LAST_CLOSED, _PAID_SINCE).order_by("part", "account_id", "supplier_id")
)
"""B4's two parts in one statement, built once (the dashboard runs it on every request), run on asyncpg
directly (models.plain.PlainQuery: the values SQLAlchemy would give): part 0, the last closed balances
(account, supplier, period, closing); then part 1, the payments credited since (account, supplier, –, their
sum); each by account and supplier."""


async def balances(session: Reads, account_ids: Sequence[int]) -> list[AccountBalance]:
    """B4: current balances of many accounts in one statement (last closed balances, later payments)."""
    params = {"account_ids": list(account_ids)}
    result = {account_id: AccountBalance(account_id, None) for account_id in account_ids}
    for part, account_id, supplier_id, period, total in await _BALANCE_PARTS.rows(session, params):
        found = result[account_id]
        if part == 0:  # (all of part 0 comes first)
            found.billed_period = period
            found.suppliers.append(SupplierBalance(supplier_id, total, total, ZERO))
            continue
        line = next((line for line in found.suppliers if line.supplier_id == supplier_id), None)
        if line is None:
            line = SupplierBalance(supplier_id, ZERO, ZERO, ZERO)
            found.suppliers.append(line)
        line.paid_since += total
        line.amount = line.closing - line.paid_since
    return [result[account_id] for account_id in account_ids]


# --- D2 charges -------------------------------------------------------------------------------------------


ChargeRow = plain(Charge, extra=("_kabinet_service", "_kabinet_supplier"))
"""Charge lines as plain rows (models.plain): a dashboard shows ~150, a 36-month history ~450, read only.
The extra attributes hold the service and supplier rows the schema attaches (schema.billing)."""

_C = Charge.__table__.c
_CHARGES = PlainQuery(
    plain_select(Charge)
    .where(
        _C.account_id.in_(bindparam("account_ids", expanding=True)),
        _C.period.between(bindparam("start"), bindparam("end")),
    )
    .order_by(_C.account_id, _C.period.desc(), _C.service_id, _C.zone, _C.id)
)
"""Built once, run on asyncpg directly (models.plain.PlainQuery): the dashboard runs it on every request."""


async def charges(
    session: Reads, account_ids: Sequence[int], start: dt.date, end: dt.date
) -> dict[int, list[Any]]:
    """D2: charges (plain :data:`ChargeRow` rows) of many accounts over the months ``start``..``end``,
    newest month first, one statement."""
    rows = await _CHARGES.rows(session, {"account_ids": list(account_ids), "start": start, "end": end})
    out: dict[int, list[Any]] = {account_id: [] for account_id in account_ids}
    for row in plain_rows(ChargeRow, rows):
        out[row.account_id].append(row)
    return out


def charge_total(charge: Charge) -> Decimal:
    """What a charge line adds to the balance: amount plus recalculation."""
    return charge.amount + (charge.recalculation or ZERO)


def by_month(rows: Iterable[object], attribute: str = "period") -> list[tuple[dt.date, list[object]]]:
    """Group rows (already ordered newest month first) by their period, keeping the order."""
    groups: dict[dt.date, list[object]] = {}
    for row in rows:
        groups.setdefault(getattr(row, attribute), []).append(row)
    return list(groups.items())


# --- D4 payments ------------------------------------------------------------------------------------------


class PaymentChannel(enum.StrEnum):
    """D4: where a payment was made: in the cabinet, or outside it (imported from billing, issue 18)."""

    CABINET = "CABINET"
    BANK = "BANK"
    POST = "POST"
    CASHIER = "CASHIER"
    OTHER = "OTHER"


@dataclass(frozen=True, slots=True)
class PaymentLine:
    """D4: a payment credited to one account and supplier."""

    id: int  # allocation id (external payment id for other channels)
    payment_id: int | None  # the cabinet payment; None for other channels
    account_id: int
    supplier_id: int
    period: dt.date
    amount: Decimal
    paid_at: dt.datetime | None
    method: PaymentMethodKind | None  # None for other channels
    is_autopay: bool
    channel: PaymentChannel = PaymentChannel.CABINET


async def payments(
    session: AsyncSession, account_ids: Sequence[int], start: dt.date, end: dt.date
) -> dict[int, list[PaymentLine]]:
    """D4: successful payments credited to many accounts in the months ``start``..``end``, newest first:
    the cabinet's own and those billing received through other channels (bank, post, cashier)."""
    paid_at = func.coalesce(Payment.paid_at, Payment.created_at)
    cabinet = (
        select(
            PaymentAllocation.id,
            PaymentAllocation.payment_id,
            PaymentAllocation.account_id,
            PaymentAllocation.supplier_id,
            PaymentAllocation.period,
            PaymentAllocation.amount,
            paid_at.label("paid_at"),
            Payment.method,
            Payment.is_autopay,
            literal(PaymentChannel.CABINET.value).label("channel"),
        )
        .join(Payment, Payment.id == PaymentAllocation.payment_id)
        .where(
            PaymentAllocation.account_id.in_(account_ids),
            PaymentAllocation.period.between(start, end),
            Payment.status == PaymentStatus.SUCCEEDED,
        )
    )
    # a day without a time: its start in the company's time zone
    external_paid_at = func.timezone(MOSCOW.key, cast(ExternalPayment.paid_on, DateTime))
    other = select(
        ExternalPayment.id,
        null(),
        ExternalPayment.account_id,
        ExternalPayment.supplier_id,
        ExternalPayment.period,
        ExternalPayment.amount,
        external_paid_at,
        null(),
        false(),
        ExternalPayment.channel,
    ).where(ExternalPayment.account_id.in_(account_ids), ExternalPayment.period.between(start, end))
    both = union_all(cabinet, other).subquery()
    rows = await session.execute(
        select(both).order_by(
            both.c.account_id, both.c.period.desc(), both.c.paid_at.desc(), both.c.channel, both.c.id.desc()
        )
    )
    out: dict[int, list[PaymentLine]] = {account_id: [] for account_id in account_ids}
    for row in rows:
        method = PaymentMethodKind(row[7]) if row[7] is not None else None
        channel = PaymentChannel(row[9]) if row[9] in PaymentChannel.__members__ else PaymentChannel.OTHER
        line = PaymentLine(
            id=row[0],
            payment_id=row[1],
            account_id=row[2],
            supplier_id=row[3],
            period=row[4],
            amount=row[5],
            paid_at=row[6],
            method=method,
            is_autopay=row[8],
            channel=channel,
        )
        out[line.account_id].append(line)
    return out


# --- D1 events --------------------------------------------------------------------------------------------


class EventKind(enum.StrEnum):
    """D1: what happened on the account."""

    CHARGE = "CHARGE"
    PAYMENT = "PAYMENT"
    RECALCULATION = "RECALCULATION"


@dataclass(frozen=True, slots=True)
class Event:
    """D1: one operation; ``amount`` is its effect on the balance (payments negative)."""

    kind: EventKind
    period: dt.date
    amount: Decimal
    service_id: int | None = None
    supplier_id: int | None = None
    occurred_at: dt.datetime | None = None


def events_of(charge_rows: Iterable[Charge], payment_lines: Iterable[PaymentLine]) -> list[Event]:
    """D1: charges (per service and zone), recalculations and payments, newest month first."""
    out: list[Event] = []
    for charge in charge_rows:
        out.append(
            Event(EventKind.CHARGE, charge.period, charge.amount, charge.service_id, charge.supplier_id)
        )
        if charge.recalculation:
            out.append(
                Event(
                    EventKind.RECALCULATION,
                    charge.period,
                    charge.recalculation,
                    charge.service_id,
                    charge.supplier_id,
                )
            )
    for line in payment_lines:
        out.append(Event(EventKind.PAYMENT, line.period, -line.amount, None, line.supplier_id, line.paid_at))
    order = {EventKind.CHARGE: 0, EventKind.RECALCULATION: 1, EventKind.PAYMENT: 2}
    out.sort(key=lambda event: (-event.period.toordinal(), order[event.kind]))
    return out


# --- D7 balance by month and supplier --------------------------------------------------------------------


async def balance_history(
    session: AsyncSession, account_ids: Sequence[int], start: dt.date, end: dt.date
) -> dict[int, list[PeriodBalance]]:
    """D7: period balances by month and supplier, newest month first."""
    rows = (
        await session.execute(
            select(PeriodBalance)
            .where(PeriodBalance.account_id.in_(account_ids), PeriodBalance.period.between(start, end))
            .order_by(PeriodBalance.account_id, PeriodBalance.period.desc(), PeriodBalance.supplier_id)
        )
    ).scalars()
    out: dict[int, list[PeriodBalance]] = {account_id: [] for account_id in account_ids}
    for row in rows:
        out[row.account_id].append(row)
    return out


# --- D6 statistics ----------------------------------------------------------------------------------------


class StatisticsKind(enum.StrEnum):
    """D6: what a chart shows."""

    CONSUMPTION = "CONSUMPTION"  # volume by month, service and zone
    CHARGES = "CHARGES"  # roubles charged by month, service and zone
    PAYMENTS = "PAYMENTS"  # roubles paid by month and supplier


@dataclass(slots=True)
class Series:
    """One line (or bar group) of a chart: a value for every month of the range, zeros included."""

    service_id: int | None
    zone: Zone | None
    supplier_id: int | None
    points: list[tuple[dt.date, Decimal]]


def _series(kind: StatisticsKind) -> Any:
    """D6's statement of a CONSUMPTION or CHARGES series: sums per service, zone and month."""
    measure = Charge.volume if kind is StatisticsKind.CONSUMPTION else Charge.amount + Charge.recalculation
    total = func.coalesce(func.sum(measure), 0)
    by = (Charge.service_id, Charge.zone, Charge.period)
    return select(*by, total).group_by(*by)


_SERIES = {
    kind: PlainQuery(
        _series(kind).where(
            Charge.account_id == bindparam("account_id"),
            Charge.period.between(bindparam("start"), bindparam("end")),
        )
    )
    for kind in (StatisticsKind.CONSUMPTION, StatisticsKind.CHARGES)
}
"""D6 without service or zone filters (what the charts ask), built once (models.plain.PlainQuery)."""

SUMMED = (StatisticsKind.CONSUMPTION, StatisticsKind.CHARGES)
"""The kinds :func:`charge_sums` measures: both from one statement."""

_SUMS_BY = (Charge.account_id, Charge.service_id, Charge.zone, Charge.period)
_SUMS = PlainQuery(
    select(
        *_SUMS_BY,
        func.coalesce(func.sum(Charge.volume), 0),  # CONSUMPTION, as _series
        func.coalesce(func.sum(Charge.amount + Charge.recalculation), 0),  # CHARGES, as _series
    )
    .where(
        Charge.account_id.in_(bindparam("account_ids", expanding=True)),
        Charge.period.between(bindparam("start"), bindparam("end")),
    )
    .group_by(*_SUMS_BY)
)
"""D6's CONSUMPTION and CHARGES sums of many accounts in one statement: the measures and grouping of
:func:`_series` (same SQL expressions, so the same values and types), per account as well (issue 21)."""

ChargeSums = dict[tuple[int, Zone | None], dict[dt.date, tuple[Decimal, Decimal]]]
"""(service id, zone) → month → (volume, amount + recalculation): what :func:`series_of_sums` reads."""


async def charge_sums(
    session: Reads, account_ids: Sequence[int], start: dt.date, end: dt.date
) -> dict[int, ChargeSums]:
    """D6: the unfiltered CONSUMPTION and CHARGES sums of many accounts over ``start``..``end``, one
    statement (a chart page asks both series: one statement instead of two per account)."""
    params = {"account_ids": list(account_ids), "start": start, "end": end}
    out: dict[int, ChargeSums] = {account_id: defaultdict(dict) for account_id in account_ids}
    for account_id, service_id, zone, month, volume, charged in await _SUMS.rows(session, params):
        out[account_id][(service_id, zone)][month] = (volume, charged)
    return out


def series_of_sums(sums: ChargeSums, period: PeriodRange, kind: StatisticsKind) -> list[Series]:
    """D6: the series of one of :data:`SUMMED` from :func:`charge_sums` (what :func:`statistics` gives
    without service or zone filters)."""
    at = 0 if kind is StatisticsKind.CONSUMPTION else 1
    values: dict[tuple[int | None, Zone | None, int | None], dict[dt.date, Decimal]] = {
        (service_id, zone, None): {month: pair[at] for month, pair in months.items()}
        for (service_id, zone), months in sums.items()
    }
    return _series_list(values, period, kind)


async def statistics(
    session: AsyncSession,
    account_id: int,
    period: PeriodRange,
    kind: StatisticsKind,
    *,
    service_ids: Sequence[int] | None = None,
    zones: Sequence[Zone] | None = None,
) -> list[Series]:
    """D6: series for charts, filtered by period, services and zones, one statement."""
    if kind is StatisticsKind.PAYMENTS:
        paid = union_all(
            select(PaymentAllocation.supplier_id, PaymentAllocation.period, PaymentAllocation.amount)
            .join(Payment, Payment.id == PaymentAllocation.payment_id)
            .where(
                PaymentAllocation.account_id == account_id,
                PaymentAllocation.period.between(period.start, period.end),
                Payment.status == PaymentStatus.SUCCEEDED,
            ),
            select(ExternalPayment.supplier_id, ExternalPayment.period, ExternalPayment.amount).where(
                ExternalPayment.account_id == account_id,
                ExternalPayment.period.between(period.start, period.end),
            ),
        ).subquery()
        stmt = select(paid.c.supplier_id, paid.c.period, func.sum(paid.c.amount)).group_by(
            paid.c.supplier_id, paid.c.period
        )
        values: dict[tuple[int | None, Zone | None, int | None], dict[dt.date, Decimal]] = defaultdict(dict)
        for row in await session.execute(stmt):
            values[(None, None, row[0])][row[1]] = row[2]
    elif not service_ids and not zones:  # the usual chart: a statement built once, on asyncpg directly
        values = defaultdict(dict)
        params = {"account_id": account_id, "start": period.start, "end": period.end}
        for service_id, zone, month, total in await _SERIES[kind].rows(session, params):
            values[(service_id, zone, None)][month] = total
    else:
        charges = _series(kind).where(
            Charge.account_id == account_id, Charge.period.between(period.start, period.end)
        )
        if service_ids:
            charges = charges.where(Charge.service_id.in_(service_ids))
        if zones:
            charges = charges.where(Charge.zone.in_(zones))
        values = defaultdict(dict)
        found: Any = await session.execute(charges)
        for service_id, zone, month, total in found:
            values[(service_id, zone, None)][month] = total
    return _series_list(values, period, kind)


def _series_list(
    values: dict[tuple[int | None, Zone | None, int | None], dict[dt.date, Decimal]],
    period: PeriodRange,
    kind: StatisticsKind,
) -> list[Series]:
    """Series in a stable order (by service, zone, supplier), a value for every month, zeros included."""
    months = period.months
    zero = Decimal("0.000") if kind is StatisticsKind.CONSUMPTION else ZERO
    return [
        Series(service_id, zone, supplier_id, [(month, found.get(month, zero)) for month in months])
        for (service_id, zone, supplier_id), found in sorted(
            values.items(), key=lambda item: tuple(str(part) for part in item[0])
        )
    ]


# --- C4 tariffs -------------------------------------------------------------------------------------------


async def tariff_history(
    session: AsyncSession, account_ids: Sequence[int], today: dt.date
) -> dict[int, list[Tariff]]:
    """C4: tariffs of each account's branch and services in force now or within the last three years.

    Newest first per service and zone.
    """
    earliest = allowed_range(today).start
    rows = await session.execute(
        select(AccountService.account_id, Tariff)
        .join(Account, Account.id == AccountService.account_id)
        .join(
            Tariff,
            and_(Tariff.branch_id == Account.branch_id, Tariff.service_id == AccountService.service_id),
        )
        .where(
            AccountService.account_id.in_(account_ids),
            or_(Tariff.valid_to.is_(None), Tariff.valid_to >= earliest),
            Tariff.valid_from <= today,
        )
        .order_by(
            AccountService.account_id, Tariff.service_id, Tariff.zone, Tariff.valid_from.desc(), Tariff.id
        )
    )
    out: dict[int, list[Tariff]] = {account_id: [] for account_id in account_ids}
    for account_id, tariff in rows:
        out[account_id].append(tariff)
    return out


def tariff_is_current(tariff: Tariff, today: dt.date) -> bool:
    """Whether ``tariff`` is in force on ``today``."""
    return tariff.valid_from <= today and (tariff.valid_to is None or tariff.valid_to >= today)


# --- receipts ---------------------------------------------------------------------------------------------


async def receipts_by_period(
    session: AsyncSession, keys: Sequence[tuple[int, dt.date]]
) -> dict[tuple[int, dt.date], Receipt]:
    """Receipts for (account id, period) pairs in one statement."""
    if not keys:
        return {}
    account_ids = {account_id for account_id, _ in keys}
    periods = {period for _, period in keys}
    rows = (
        await session.execute(
            select(Receipt).where(Receipt.account_id.in_(account_ids), Receipt.period.in_(periods))
        )
    ).scalars()
    return {(row.account_id, row.period): row for row in rows}


async def latest_receipts(session: AsyncSession, account_ids: Sequence[int]) -> dict[int, Receipt]:
    """B4: the current (latest) receipt of each account, one statement."""
    latest = (
        select(Receipt.account_id, func.max(Receipt.period).label("period"))
        .where(Receipt.account_id.in_(account_ids))
        .group_by(Receipt.account_id)
        .subquery()
    )
    rows = (
        await session.execute(
            select(Receipt).join(
                latest, and_(Receipt.account_id == latest.c.account_id, Receipt.period == latest.c.period)
            )
        )
    ).scalars()
    return {row.account_id: row for row in rows}


def dashboard_months(today: dt.date, months: int = 12) -> PeriodRange:
    """The last ``months`` closed months before ``today``'s (the dashboard's charge history)."""
    end = add_months(month_start(today), -1)
    return PeriodRange(add_months(end, -(months - 1)), end)
