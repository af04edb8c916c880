"""Billing (B4 balance, C4, D1–D4, D6, D7): per-request loaders and thin resolvers.

Loaders keyed by ``(account id, first month, last month)`` batch every account of a list into one
statement per distinct range, so the dashboard's statement count does not grow with accounts or months.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncSession

from models.billing import Charge, PeriodBalance, Receipt
from models.plain import Reads
from models.tariffs import Tariff, Zone
from resolvers.context import Info
from resolvers.loaders import Loader, SharedLoader
from services import billing, storage
from services.errors import PeriodOutOfRange
from services.periods import PeriodRange, history_range

RangeKey = tuple[int, dt.date, dt.date]


class BalanceByAccountId(SharedLoader[int, billing.AccountBalance]):
    """B4: current balance with the per-supplier breakdown."""

    async def load_batch(self, session: Reads, keys: list[int]) -> list[billing.AccountBalance]:
        return await billing.balances(session, keys)


class LatestReceiptByAccountId(Loader[int, Receipt | None]):
    """B4: the current (latest) receipt."""

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[Receipt | None]:
        found = await billing.latest_receipts(session, keys)
        return [found.get(key) for key in keys]


class ReceiptByAccountPeriod(Loader[tuple[int, dt.date], Receipt | None]):
    """D1/D3: the receipt of an account for a period."""

    async def load_batch(
        self, session: AsyncSession, keys: list[tuple[int, dt.date]]
    ) -> list[Receipt | None]:
        found = await billing.receipts_by_period(session, keys)
        return [found.get(key) for key in keys]


S = TypeVar("S", AsyncSession, Reads)


async def _by_range(
    session: S,
    keys: list[RangeKey],
    fetch: Callable[[S, Sequence[int], dt.date, dt.date], Awaitable[dict[int, Any]]],
) -> list[Any]:
    ranges: dict[tuple[dt.date, dt.date], list[int]] = defaultdict(list)
    for account_id, start, end in keys:
        ranges[(start, end)].append(account_id)
    results: dict[RangeKey, Any] = {}
    for (start, end), account_ids in ranges.items():
        found = await fetch(session, account_ids, start, end)
        for account_id in account_ids:
            results[(account_id, start, end)] = found[account_id]
    return [results[key] for key in keys]


class ChargesByAccountRange(SharedLoader[RangeKey, list[Charge]]):
    """D2: charges of an account over a range of months."""

    async def load_batch(self, session: Reads, keys: list[RangeKey]) -> list[list[Charge]]:
        return await _by_range(session, keys, billing.charges)


class PaymentsByAccountRange(Loader[RangeKey, list[billing.PaymentLine]]):
    """D4: payments credited to an account over a range of months."""

    async def load_batch(
        self, session: AsyncSession, keys: list[RangeKey]
    ) -> list[list[billing.PaymentLine]]:
        return await _by_range(session, keys, billing.payments)


class BalancesByAccountRange(Loader[RangeKey, list[PeriodBalance]]):
    """D7: period balances of an account over a range of months."""

    async def load_batch(self, session: AsyncSession, keys: list[RangeKey]) -> list[list[PeriodBalance]]:
        return await _by_range(session, keys, billing.balance_history)


class ChargeSumsByAccountRange(SharedLoader[RangeKey, billing.ChargeSums]):
    """D6: the CONSUMPTION and CHARGES sums of an account over a range of months, both from one statement
    (a chart asks both series at the same level: one statement for every account and both, issue 21)."""

    async def load_batch(self, session: Reads, keys: list[RangeKey]) -> list[billing.ChargeSums]:
        return await _by_range(session, keys, billing.charge_sums)


class TariffsByAccountId(Loader[int, list[Tariff]]):
    """C4: tariff history of each account's branch and services."""

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[list[Tariff]]:
        found = await billing.tariff_history(session, keys, self.scope.context.today)
        return [found[key] for key in keys]


def period_range(info: Info, start: dt.date | None, end: dt.date | None) -> PeriodRange:
    """D8: the requested range or a clear top-level error (queries have no userErrors)."""
    try:
        return history_range(info.context.today, start, end)
    except PeriodOutOfRange as error:
        raise GraphQLError(
            error.text,
            extensions={
                "code": error.code,
                "field": error.field[-1] if error.field else None,
                "earliest": f"{error.data['earliest']:%Y-%m}",
                "latest": f"{error.data['latest']:%Y-%m}",
            },
        ) from None


async def balance(info: Info, account_id: int) -> billing.AccountBalance:
    """B4."""
    return await info.context.loader(BalanceByAccountId).load(account_id)


async def current_receipt(info: Info, account_id: int) -> Receipt | None:
    """B4."""
    return await info.context.loader(LatestReceiptByAccountId).load(account_id)


async def receipt(info: Info, account_id: int, period: dt.date) -> Receipt | None:
    """D3: the receipt of a period (inside the D8 range)."""
    period_range(info, period, period)
    return await info.context.loader(ReceiptByAccountPeriod).load((account_id, period))


async def charges(info: Info, account_id: int, period: PeriodRange) -> list[Charge]:
    """D2."""
    loader = info.context.loader(ChargesByAccountRange)
    return await loader.load((account_id, period.start, period.end))


async def payments(info: Info, account_id: int, period: PeriodRange) -> list[billing.PaymentLine]:
    """D4."""
    loader = info.context.loader(PaymentsByAccountRange)
    return await loader.load((account_id, period.start, period.end))


async def events(info: Info, account_id: int, period: PeriodRange) -> list[billing.Event]:
    """D1: charges, recalculations and payments of the range."""
    charge_rows = await charges(info, account_id, period)
    payment_lines = await payments(info, account_id, period)
    return billing.events_of(charge_rows, payment_lines)


async def balance_history(info: Info, account_id: int, period: PeriodRange) -> list[PeriodBalance]:
    """D7."""
    loader = info.context.loader(BalancesByAccountRange)
    return await loader.load((account_id, period.start, period.end))


async def statistics(
    info: Info,
    account_id: int,
    period: PeriodRange,
    kind: billing.StatisticsKind,
    service_ids: list[int] | None,
    zones: list[Zone] | None,
) -> list[billing.Series]:
    """D6: the unfiltered CONSUMPTION and CHARGES series through :class:`ChargeSumsByAccountRange`, the rest
    (filters, PAYMENTS) by their own statement."""
    if kind in billing.SUMMED and not service_ids and not zones:
        loader = info.context.loader(ChargeSumsByAccountRange)
        sums = await loader.load((account_id, period.start, period.end))
        return billing.series_of_sums(sums, period, kind)
    async with info.context.session() as session:
        return await billing.statistics(
            session, account_id, period, kind, service_ids=service_ids, zones=zones
        )


async def tariffs(info: Info, account_id: int) -> list[Tariff]:
    """C4."""
    return await info.context.loader(TariffsByAccountId).load(account_id)


def download_url(info: Info, target: str) -> storage.SignedUrl:
    """A short-lived signed URL for a download target (no database access)."""
    context = info.context
    return storage.sign_download(
        context.settings.secret_key, target, now=context.now, base_url=context.base_url
    )
