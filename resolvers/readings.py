"""Meters and readings (E1–E3, H2): per-request loaders and thin resolvers.

Resolvers parse global IDs, check that the caller may see (or submit for) the account, call
``services.readings`` and hand rows and plain results to ``schema.readings``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from graphql import FieldNode, FragmentSpreadNode, GraphQLError, InlineFragmentNode
from sqlalchemy import true
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.relay import GlobalID

from models.meters import Meter
from models.plain import PlainQuery, Reads, plain, plain_columns, plain_query, plain_rows
from models.readings import Reading, ReadingSource, ReadingSubmission
from resolvers.branches import ServiceById
from resolvers.context import Info
from resolvers.loaders import CAST, ById, SharedLoader, grouped
from resolvers.permissions import Forbidden, require_viewer
from services import accounts, readings
from services.errors import DomainError, PeriodOutOfRange
from services.periods import PeriodRange, history_range

log = logging.getLogger("kabinet.readings")

# ---------------------------------------------------------------- loaders


class MeterById(ById):
    """Meters by id (no visibility check: callers filter by account)."""

    model = Meter


class ReadingById(ById):
    """Readings by id."""

    model = Reading


class ReadingSubmissionById(ById):
    """Reading submissions by id."""

    model = ReadingSubmission


MeterRow = plain(Meter, extra=CAST)
"""Meters and readings as the dashboard reads them: plain rows (models.plain; the schema's ``is_type_of``
takes them), the same statements as ``services.readings.meters_by_account`` / ``last_readings``."""
ReadingRow = plain(Reading, extra=CAST)
_METERS = plain_query(Meter, readings._METERS)
_LAST_READINGS = plain_query(Reading, readings._LAST_READINGS)


class MetersByAccountId(SharedLoader[int, list[Any]]):
    """Installed meters of each account (service order, then serial): account id → list of meters
    (plain :data:`MeterRow` rows, read only)."""

    async def load_batch(self, session: Reads, keys: list[int]) -> list[list[Any]]:
        rows = await _METERS.rows(session, {"ids": keys})
        return grouped(plain_rows(MeterRow, rows), keys, "account_id")


class LastReadingsByMeterId(SharedLoader[int, list[Any]]):
    """Meter id → its latest non-superseded reading of every zone (any period, any source), as plain
    :data:`ReadingRow` rows (read only)."""

    async def load_batch(self, session: Reads, keys: list[int]) -> list[list[Any]]:
        rows = await _LAST_READINGS.rows(session, {"ids": keys})
        return grouped(plain_rows(ReadingRow, rows), keys, "meter_id")


_LAST_OF_METER = (
    readings._latest_per_zone(Reading.meter_id == Meter.id)
    .with_only_columns(*plain_columns(Reading))
    .lateral("last_reading")
)
_METERS_WITH_LAST = PlainQuery(
    readings._METERS.with_only_columns(*plain_columns(Meter), *_LAST_OF_METER.c)
    .outerjoin(_LAST_OF_METER, true())
    .order_by(_LAST_OF_METER.c.zone)
)
"""The meters of :data:`_METERS` (same order), each joined with its rows of :data:`_LAST_READINGS` (the
latest non-superseded reading per zone, zone order; none: one row of NULLs), built once (issue 21)."""
_METER_WIDTH = len(plain_columns(Meter))
_METER_ID = [column.key for column in plain_columns(Meter)].index("id")
_READING_ID = _METER_WIDTH + [column.key for column in plain_columns(Reading)].index("id")


class MetersWithLastReadingsByAccountId(SharedLoader[int, list[Any]]):
    """:class:`MetersByAccountId` and, in the same statement, every meter's :class:`LastReadingsByMeterId`
    (primed): for a selection that asks ``meters { lastReadings }`` (the dashboard), one statement instead
    of one per level (issue 21). The same plain rows, read only."""

    async def load_batch(self, session: Reads, keys: list[int]) -> list[list[Any]]:
        rows = await _METERS_WITH_LAST.rows(session, {"ids": keys})
        meters: dict[int, list[Any]] = {key: [] for key in keys}
        last: dict[int, list[Any]] = {}
        for row in rows:
            found = last.get(row[_METER_ID])
            if found is None:
                meter = MeterRow(*row[:_METER_WIDTH])
                meters[meter.account_id].append(meter)
                found = last[meter.id] = []
            if row[_READING_ID] is not None:  # (a meter without readings: its one row of NULLs)
                found.append(ReadingRow(*row[_METER_WIDTH:]))
        readings_of = self.scope.loader(LastReadingsByMeterId)
        for meter_id, found in last.items():
            readings_of.prime(meter_id, found)
        meters_of = self.scope.loader(MetersByAccountId)
        for key in keys:
            meters_of.prime(key, meters[key])
        return [meters[key] for key in keys]


def selects(info: Info, name: str) -> bool:
    """Whether the field being resolved selects a field ``name`` on its value (directly or through
    fragments; ``@skip``/``@include`` not evaluated: a field that may be asked counts as asked)."""
    raw = info._raw_info
    fragments = raw.fragments
    stack = [node.selection_set for node in raw.field_nodes]
    while stack:
        selection_set = stack.pop()
        if selection_set is None:
            continue
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                if selection.name.value == name:
                    return True
            elif isinstance(selection, InlineFragmentNode):
                stack.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = fragments.get(selection.name.value)
                if fragment is not None:
                    stack.append(fragment.selection_set)
    return False


async def meters_of(info: Info, account_id: int) -> list[Any]:
    """C1/B4: the account's installed meters (plain :data:`MeterRow` rows); with their last readings in
    the same statement when the selection asks for them."""
    if selects(info, "lastReadings"):
        return await info.context.loader(MetersWithLastReadingsByAccountId).load(account_id)
    return await info.context.loader(MetersByAccountId).load(account_id)


# ---------------------------------------------------------------- helpers


def parse_id(value: Any, type_name: str) -> int | None:
    """The database id inside a global ID of ``type_name``; None for anything else."""
    try:
        parsed = GlobalID.from_id(str(value))
    except Exception:
        return None
    if parsed.type_name != type_name:
        return None
    try:
        return int(parsed.node_id)
    except ValueError:
        return None


async def visible_account(info: Info, account_global_id: Any) -> int | None:
    """The account id if the caller may see the account (linked, or staff); else None."""
    viewer = require_viewer(info)
    account_id = parse_id(account_global_id, "Account")
    if account_id is None:
        return None
    async with info.context.session() as session:
        visible = await accounts.visible_account_ids(session, viewer.user_id, viewer.role, [account_id])
    return account_id if account_id in visible else None


async def visible_account_ids(info: Info, account_ids: list[int]) -> set[int]:
    """The subset of ``account_ids`` the caller may see."""
    viewer = info.context.viewer
    if viewer is None:
        return set()
    async with info.context.session() as session:
        return await accounts.visible_account_ids(session, viewer.user_id, viewer.role, account_ids)


def require_customer(info: Info) -> Any:
    """Only customers submit readings for their own accounts."""
    viewer = require_viewer(info)
    if viewer.role != "CUSTOMER":
        raise Forbidden()
    return viewer


# ---------------------------------------------------------------- queries


@dataclass(slots=True)
class AccountMeters:
    """E1: the installed meters of an account and their services."""

    account_id: int
    meters: list[Meter]
    services: dict[int, Any]


async def account_meters(info: Info, account_global_id: Any) -> AccountMeters | None:
    """E1 meters of a visible account (None when not found or not visible)."""
    account_id = await visible_account(info, account_global_id)
    if account_id is None:
        return None
    meters = await info.context.loader(MetersByAccountId).load(account_id)
    services = await info.context.loader(ServiceById).load_many(sorted({m.service_id for m in meters}))
    return AccountMeters(account_id, meters, {service.id: service for service in services if service})


async def readings_form(info: Info, account_global_id: Any) -> readings.ReadingsForm | None:
    """E3 form of a visible account (None when not found or not visible)."""
    account_id = await visible_account(info, account_global_id)
    if account_id is None:
        return None
    async with info.context.session() as session:
        forms = await readings.reading_forms(session, [account_id], info.context.now)
    return forms[0] if forms else None


@dataclass(slots=True)
class History:
    """E2: the range shown and its readings."""

    range: PeriodRange
    rows: list[Reading]


async def reading_history(
    info: Info, account_global_id: Any, start: dt.date | None, end: dt.date | None
) -> History | None:
    """E2 history of a visible account; a range outside D8 is a PERIOD_OUT_OF_RANGE error."""
    account_id = await visible_account(info, account_global_id)
    if account_id is None:
        return None
    try:
        period = history_range(info.context.today, start, end)
    except PeriodOutOfRange as error:
        raise GraphQLError(
            error.text,
            extensions={
                "code": error.code,
                "field": [name for name in (error.field or [])][-1:],
                "earliest": error.data["earliest"].strftime("%Y-%m"),
                "latest": error.data["latest"].strftime("%Y-%m"),
            },
        ) from None
    async with info.context.session() as session:
        rows = await readings.history(session, account_id, period)
    return History(period, rows)


@dataclass(slots=True)
class AllAccounts:
    """H2: whether the section is available and the forms of accounts whose window is open."""

    linked: int
    forms: list[readings.ReadingsForm]


async def readings_for_all_accounts(info: Info) -> AllAccounts:
    """H2: forms of the caller's linked accounts whose window is open now (only with >1 linked)."""
    viewer = require_viewer(info)
    async with info.context.session() as session:
        linked = await accounts.linked_account_ids(session, viewer.user_id)
        if len(linked) < 2:
            return AllAccounts(len(linked), [])
        forms = await readings.reading_forms(session, linked, info.context.now)
    return AllAccounts(len(linked), [form for form in forms if form.window.is_open])


async def meters_by_ids(info: Info, ids: list[int]) -> list[Meter | None]:
    """Meters by id, None where missing or on an account the caller may not see."""
    rows = await info.context.loader(MeterById).load_many(ids)
    visible = await visible_account_ids(info, [row.account_id for row in rows if row is not None])
    return [row if row is not None and row.account_id in visible else None for row in rows]


async def readings_by_ids(info: Info, ids: list[int]) -> list[Reading | None]:
    """Readings by id, None where missing or not visible."""
    rows = await info.context.loader(ReadingById).load_many(ids)
    visible = await visible_account_ids(info, [row.account_id for row in rows if row is not None])
    return [row if row is not None and row.account_id in visible else None for row in rows]


async def submissions_by_ids(info: Info, ids: list[int]) -> list[ReadingSubmission | None]:
    """Submissions by id, None where missing or not visible."""
    rows = await info.context.loader(ReadingSubmissionById).load_many(ids)
    visible = await visible_account_ids(info, [row.account_id for row in rows if row is not None])
    return [row if row is not None and row.account_id in visible else None for row in rows]


# ---------------------------------------------------------------- mutations


@dataclass(slots=True)
class SubmitResult:
    """One account's outcome: the submission, or the problems (nothing stored then)."""

    account_id: Any  # the global ID as given
    submission: ReadingSubmission | None
    errors: list[DomainError]


def _meter_values(meters: list[Any]) -> list[readings.MeterValues]:
    return [
        readings.MeterValues(
            meter_id=parse_id(item.meter_id, "Meter"),
            values=[readings.ZoneValue(value.zone, value.value) for value in item.values],
        )
        for item in meters
    ]


async def _submit_one(
    session: AsyncSession,
    info: Info,
    user_id: int,
    account_global_id: Any,
    meters: list[Any],
    *,
    source: ReadingSource,
    key: str | None,
    scope: str,
    prefix: list[str],
) -> Any:
    """One account's submission; raises a :class:`DomainError` (or ``SubmissionRejected``) when refused."""
    account_id = parse_id(account_global_id, "Account")
    if account_id is None:
        raise accounts.AccountNotFound(field=[*prefix, "accountId"])
    try:
        await accounts.require_linked_account(session, user_id, account_id)
    except accounts.AccountNotFound:
        raise accounts.AccountNotFound(field=[*prefix, "accountId"]) from None
    return await readings.submit(
        session,
        user_id=user_id,
        account_id=account_id,
        meters=_meter_values(meters),
        now=info.context.now,
        source=source,
        idempotency_key=key,
        idempotency_scope=scope,
        field_prefix=prefix,
    )


def _refused(account_global_id: Any, error: readings.SubmissionRejected | DomainError) -> SubmitResult:
    if isinstance(error, readings.SubmissionRejected):
        return SubmitResult(account_global_id, None, error.errors)
    return SubmitResult(account_global_id, None, [error])


async def submit_readings(info: Info, data: Any) -> SubmitResult:
    """E3: one account's readings; commits on success, rolls back on any user error."""
    viewer = require_customer(info)
    try:
        async with info.context.unit_of_work() as uow:
            submission = await _submit_one(
                uow.session,
                info,
                viewer.user_id,
                data.account_id,
                data.meters,
                source=ReadingSource(data.source.value),
                key=data.idempotency_key,
                scope="submitReadings",
                prefix=["input"],
            )
    except (readings.SubmissionRejected, DomainError) as error:
        return _refused(data.account_id, error)
    return SubmitResult(data.account_id, submission, [])


class AllAccountsUnavailable(DomainError):
    """H2 is offered only to users with more than one linked account."""

    code = "ALL_ACCOUNTS_UNAVAILABLE"
    message = "Раздел доступен, если к личному кабинету подключен не один лицевой счет"


async def submit_readings_for_all_accounts(
    info: Info, data: Any
) -> tuple[list[SubmitResult], list[DomainError]]:
    """H2: each account in its own savepoint, so each succeeds or fails on its own; one commit."""
    viewer = require_customer(info)
    results: list[SubmitResult] = []
    async with info.context.unit_of_work() as uow:
        session = uow.session
        if len(await accounts.linked_account_ids(session, viewer.user_id)) < 2:
            return [], [AllAccountsUnavailable(field=["input", "accounts"])]
        key_given = data.idempotency_key
        if key_given is not None and not 1 <= len(key_given) <= readings.MAX_KEY_LENGTH:
            return [], [readings.InvalidIdempotencyKey(field=["input", "idempotencyKey"])]
        for index, item in enumerate(data.accounts):
            key = (
                hashlib.sha256(f"{data.idempotency_key}:{item.account_id}".encode()).hexdigest()
                if data.idempotency_key
                else None
            )
            try:
                async with uow.savepoint():
                    submission = await _submit_one(
                        session,
                        info,
                        viewer.user_id,
                        item.account_id,
                        item.meters,
                        source=ReadingSource(data.source.value),
                        key=key,
                        scope="submitReadingsForAllAccounts",
                        prefix=["input", "accounts", str(index)],
                    )
            except (readings.SubmissionRejected, DomainError) as error:
                results.append(_refused(item.account_id, error))
                continue
            results.append(SubmitResult(item.account_id, submission, []))
    return results, []
