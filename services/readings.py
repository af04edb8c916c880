"""Meters and readings (E1–E3, H2): reading windows, the submission form, history and submissions.

Rules in one place:
- a branch accepts readings from ``reading_window_start_day`` to ``reading_window_end_day`` of every
  month (inclusive, clamped to the month's length; a start after the end runs into the next month), in the
  branch's time zone; the readings belong to the period (month) in which the window opens;
- "previous" of a meter zone is its latest reading (any source) of an earlier period that nothing
  superseded; "current" is the latest non-superseded reading of the window's period;
- a submission carries every zone of each meter it names; a value may not be below the previous one, must
  fit the meter's digit capacity and decimals; a jump far above the usual monthly consumption is accepted
  but flagged for an operator;
- readings are append-only: a resubmission inserts new rows and points the old ones at them
  (``superseded_by_id``);
- the meters of the account are locked (``SELECT … FOR UPDATE``) for the whole submission, so two
  concurrent submissions never interleave; an idempotency key makes a retry return the first result.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession

from models.accounts import Account
from models.branches import Branch, Service
from models.idempotency import IdempotencyKey
from models.meters import Meter, ZoneScheme
from models.notifications import NotificationCategory
from models.readings import Reading, ReadingSource, ReadingSubmission
from models.tariffs import Zone
from services.accounts import AccountNotFound
from services.branches import Window, WindowState, window_state
from services.errors import DomainError
from services.notifications import notify
from services.periods import PeriodRange, add_months
from services.unit_of_work import touch

ZONES: dict[ZoneScheme, tuple[Zone, ...]] = {
    ZoneScheme.SINGLE: (Zone.SINGLE,),
    ZoneScheme.DAY_NIGHT: (Zone.DAY, Zone.NIGHT),
    ZoneScheme.THREE_ZONE: (Zone.PEAK, Zone.HALF_PEAK, Zone.NIGHT),
}
"""The registers of each meter scheme, in display order."""

JUMP_FACTOR = Decimal(3)
"""A consumption above this many times the usual monthly one is flagged for review."""

USUAL_MONTHS = 12
"""How many months before the window the usual consumption is computed from."""

IDEMPOTENCY_TTL = dt.timedelta(days=7)

VOLUME_QUANTUM = Decimal("0.001")
"""Readings are stored as NUMERIC(14, 3)."""

WINDOW_CLOSED_MESSAGE = (
    "Внести показания Вы можете в период каждого месяца. Просим быть внимательным к этим датам и вовремя "
    "вводить показания прибора учета"
)
NO_METERS_MESSAGE = "Нет данных: к лицевому счету не привязан ни один прибор учета"
SUCCESS_TITLE = "Показания переданы"
SUCCESS_BODY = "Показания приборов учета по лицевому счету {number} за {period} успешно переданы"


def zones_of(scheme: ZoneScheme) -> tuple[Zone, ...]:
    """The zones (registers) of a meter with ``scheme``."""
    return ZONES[scheme]


# ---------------------------------------------------------------- errors


class ReadingWindowClosed(DomainError):
    """E3: today (in the branch's time zone) is outside the monthly window; data: next_opens, next_closes."""

    code = "READING_WINDOW_CLOSED"
    message = WINDOW_CLOSED_MESSAGE


class ReadingBelowPrevious(DomainError):
    """E3: a value below the previous one; data: meter_id, zone, previous."""

    code = "READING_BELOW_PREVIOUS"
    message = (
        "Показание не принято! Введенные показания меньше ранее переданных показаний. "
        "Проверьте корректность ввода"
    )


class ReadingOverflow(DomainError):
    """E3: a value that does not fit the meter's display; data: meter_id, zone, digits, decimals."""

    code = "READING_DOES_NOT_FIT_METER"
    message = "Показание не соответствует разрядности прибора учета"

    def __init__(self, *, field: list[str] | None, meter_id: int, zone: Zone, digits: int, decimals: int):
        super().__init__(
            field=field,
            message=(
                f"Показание не соответствует разрядности прибора учета: не более {digits} цифр до запятой"
                + (f" и {decimals} после" if decimals else " и без дробной части")
            ),
            meter_id=meter_id,
            zone=zone,
            digits=digits,
            decimals=decimals,
        )


class ReadingZonesMissing(DomainError):
    """E3: some zones of a meter have no value; data: meter_id, zones (the missing ones)."""

    code = "READING_ZONES_MISSING"
    message = "Внесите показания по всем зонам прибора учета"


class UnknownZone(DomainError):
    """E3: a zone the meter does not have, or given twice; data: meter_id, zone."""

    code = "READING_ZONE_UNKNOWN"
    message = "У прибора учета нет такой зоны"


class MeterNotFound(DomainError):
    """E3: a meter that is not installed on the account, or named twice."""

    code = "METER_NOT_FOUND"
    message = "Прибор учета не найден на лицевом счете"


class NoReadings(DomainError):
    """E3: a submission without any meter."""

    code = "REQUIRED"
    message = "Внесите текущие показания"


class IdempotencyKeyReused(DomainError):
    """The idempotency key was used before for a different request."""

    code = "IDEMPOTENCY_KEY_REUSED"
    message = "Ключ идемпотентности уже использован для другого запроса"


class InvalidIdempotencyKey(DomainError):
    """The idempotency key is empty or longer than 128 characters."""

    code = "IDEMPOTENCY_KEY_INVALID"
    message = "Ключ идемпотентности должен содержать от 1 до 128 символов"


MAX_KEY_LENGTH = 128


class SubmissionRejected(Exception):
    """Several problems with one submission's values; nothing was stored."""

    def __init__(self, errors: list[DomainError]) -> None:
        self.errors = errors
        super().__init__("; ".join(error.text for error in errors))


# ---------------------------------------------------------------- windows


def require_open(state: WindowState) -> Window:
    """The open window, or :class:`ReadingWindowClosed` carrying the next window's dates."""
    if state.current is None:
        raise ReadingWindowClosed(next_opens=state.next.opens, next_closes=state.next.closes)
    return state.current


# ---------------------------------------------------------------- reads


async def accounts_with_branches(
    session: AsyncSession, account_ids: Sequence[int]
) -> dict[int, tuple[Account, Branch]]:
    """Accounts and their branches by account id, in one statement."""
    rows = await session.execute(_WITH_BRANCHES, {"ids": list(account_ids)})
    return {account.id: (account, branch) for account, branch in rows}


async def meters_by_account(session: AsyncSession, account_ids: Sequence[int]) -> dict[int, list[Meter]]:
    """Installed meters of each account (by service order, then serial), in one statement."""
    rows = await session.execute(_METERS, {"ids": list(account_ids)})
    found: dict[int, list[Meter]] = {account_id: [] for account_id in account_ids}
    for meter in rows.scalars():
        found.setdefault(meter.account_id, []).append(meter)
    return found


async def services_by_id(session: AsyncSession, ids: Iterable[int]) -> dict[int, Service]:
    """Services by id, in one statement."""
    rows = await session.execute(select(Service).where(Service.id.in_(set(ids))))
    return {service.id: service for service in rows.scalars()}


def _latest_per_zone(*conditions: Any) -> Any:
    """Latest non-superseded reading per (meter, zone) among rows matching ``conditions``."""
    return (
        select(Reading)
        .where(Reading.superseded_by_id.is_(None), *conditions)
        .ext(distinct_on(Reading.meter_id, Reading.zone))
        .order_by(
            Reading.meter_id,
            Reading.zone,
            Reading.period.desc(),
            Reading.submitted_at.desc(),
            Reading.id.desc(),
        )
    )


_LAST_READINGS = _latest_per_zone(Reading.meter_id.in_(bindparam("ids", expanding=True)))
_WITH_BRANCHES = (
    select(Account, Branch)
    .join(Branch, Branch.id == Account.branch_id)
    .where(Account.id.in_(bindparam("ids", expanding=True)))
)
_METERS = (
    select(Meter)
    .join(Service, Service.id == Meter.service_id)
    .where(Meter.account_id.in_(bindparam("ids", expanding=True)), Meter.removed_at.is_(None))
    .order_by(Meter.account_id, Service.position, Service.id, Meter.serial, Meter.id)
)
"""The dashboard's statements of this module, built once (it runs them on every request)."""


async def last_readings(session: AsyncSession, meter_ids: Sequence[int]) -> dict[int, list[Reading]]:
    """The latest value of every zone of each meter (any period, any source), in one statement."""
    rows = await session.execute(_LAST_READINGS, {"ids": list(meter_ids)})
    found: dict[int, list[Reading]] = {meter_id: [] for meter_id in meter_ids}
    reading: Reading
    for reading in rows.scalars():
        found.setdefault(reading.meter_id, []).append(reading)
    return found


async def _previous_and_current(
    session: AsyncSession, meter_periods: dict[int, dt.date], *, lock_current: bool = False
) -> tuple[dict[tuple[int, Zone], Reading], dict[tuple[int, Zone], Reading]]:
    """For meters each with its window period: latest reading of an earlier period, latest of the period."""
    if not meter_periods:
        return {}, {}
    by_period: dict[dt.date, list[int]] = defaultdict(list)
    for meter_id, period in meter_periods.items():
        by_period[period].append(meter_id)
    previous: dict[tuple[int, Zone], Reading] = {}
    current: dict[tuple[int, Zone], Reading] = {}
    # one statement each for "before" and "in" (periods differ only across branches, usually one)
    before = or_(*(and_(Reading.meter_id.in_(ids), Reading.period < p) for p, ids in by_period.items()))
    within = or_(*(and_(Reading.meter_id.in_(ids), Reading.period == p) for p, ids in by_period.items()))
    reading: Reading
    for reading in (await session.execute(_latest_per_zone(before))).scalars():
        previous[(reading.meter_id, reading.zone)] = reading
    for reading in (await session.execute(_latest_per_zone(within))).scalars():
        current[(reading.meter_id, reading.zone)] = reading
    return previous, current


@dataclass(slots=True)
class ZoneRow:
    """One line of the form: a zone of a meter with its previous and this window's values."""

    zone: Zone
    previous: Reading | None
    current: Reading | None


@dataclass(slots=True)
class MeterRow:
    """One meter of the form with its zones."""

    meter: Meter
    zones: list[ZoneRow]


@dataclass(slots=True)
class ReadingsForm:
    """Everything the E3 form needs for one account."""

    account: Account
    branch: Branch
    window: WindowState
    meters: list[MeterRow] = field(default_factory=list)

    @property
    def period(self) -> dt.date:
        """The period readings submitted now (or in the next window) belong to."""
        return (self.window.current or self.window.next).period


async def reading_forms(
    session: AsyncSession, account_ids: Sequence[int], now: dt.datetime
) -> list[ReadingsForm]:
    """The E3 form of each account (in the given order), in four statements whatever their size."""
    found = await accounts_with_branches(session, account_ids)
    ids = [account_id for account_id in account_ids if account_id in found]
    meters = await meters_by_account(session, ids)
    forms = {
        account_id: ReadingsForm(
            found[account_id][0], found[account_id][1], window_state(found[account_id][1], now)
        )
        for account_id in ids
    }
    meter_periods = {meter.id: forms[a].period for a in ids for meter in meters.get(a, [])}
    previous, current = await _previous_and_current(session, meter_periods)
    for account_id in ids:
        for meter in meters.get(account_id, []):
            zones = [
                ZoneRow(zone, previous.get((meter.id, zone)), current.get((meter.id, zone)))
                for zone in zones_of(meter.zone_scheme)
            ]
            forms[account_id].meters.append(MeterRow(meter, zones))
    return [forms[account_id] for account_id in ids]


async def reading_form(session: AsyncSession, account_id: int, now: dt.datetime) -> ReadingsForm:
    """The E3 form of one account; :class:`AccountNotFound` when the account does not exist."""
    forms = await reading_forms(session, [account_id], now)
    if not forms:
        raise AccountNotFound(field=["accountId"])
    return forms[0]


async def history(session: AsyncSession, account_id: int, period: PeriodRange) -> list[Reading]:
    """E2: every reading of the account's meters in ``period`` (any source, superseded ones too),
    newest month first, then by meter, zone and time of submission; one statement."""
    rows = await session.execute(
        select(Reading)
        .where(
            Reading.account_id == account_id,
            Reading.period >= period.start,
            Reading.period <= period.end,
        )
        .order_by(Reading.period.desc(), Reading.meter_id, Reading.zone, Reading.submitted_at, Reading.id)
    )
    return list(rows.scalars())


# ---------------------------------------------------------------- submission


@dataclass(frozen=True, slots=True)
class ZoneValue:
    """One value of the input: a zone of a meter."""

    zone: Zone
    value: Decimal


@dataclass(frozen=True, slots=True)
class MeterValues:
    """Values of all zones of one meter."""

    meter_id: int | None  # None: the given id was not a meter id at all
    values: list[ZoneValue]


def request_hash(account_id: int, meters: list[MeterValues], source: ReadingSource) -> str:
    """A stable hash of a submission's content (what an idempotency key is bound to)."""
    canonical = {
        "account": account_id,
        "source": source.value,
        "meters": sorted(
            [m.meter_id or 0, sorted([v.zone.value, str(v.value.normalize())] for v in m.values)]
            for m in meters
        ),
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


async def _claim_key(
    session: AsyncSession, user_id: int, scope: str, key: str, digest: str, now: dt.datetime
) -> ReadingSubmission | None:
    """Claim an idempotency key for this call, or return the submission of the first call with it.

    A concurrent first call holding the key blocks this INSERT until it commits (then its result is
    returned) or rolls back (then this call claims the key)."""
    touch(session, private=IdempotencyKey)
    inserted = await session.execute(
        insert(IdempotencyKey)
        .values(
            user_id=user_id,
            scope=scope,
            key=key,
            request_hash=digest,
            expires_at=now + IDEMPOTENCY_TTL,
        )
        .on_conflict_do_nothing(index_elements=["user_id", "scope", "key"])
        .returning(IdempotencyKey.id)
    )
    if inserted.scalar_one_or_none() is not None:
        return None
    existing = (
        await session.execute(
            select(IdempotencyKey).where(
                IdempotencyKey.user_id == user_id, IdempotencyKey.scope == scope, IdempotencyKey.key == key
            )
        )
    ).scalar_one()
    if existing.request_hash != digest or not existing.response:
        raise IdempotencyKeyReused(field=["input", "idempotencyKey"])
    submission = await session.get(ReadingSubmission, int(existing.response["submissionId"]))
    assert submission is not None
    return submission


def _fits(value: Decimal, digits: int, decimals: int) -> bool:
    if value >= Decimal(10) ** digits:
        return False
    return value == value.quantize(Decimal(1).scaleb(-decimals)) if decimals else value == value.to_integral()


def _usual_consumption(values_by_period: dict[dt.date, Decimal]) -> Decimal | None:
    """Median monthly consumption from consecutive months' values, None without enough history."""
    periods = sorted(values_by_period)
    deltas = [
        values_by_period[b] - values_by_period[a]
        for a, b in itertools.pairwise(periods)
        if add_months(a, 1) == b and values_by_period[b] >= values_by_period[a]
    ]
    if len(deltas) < 2:
        return None
    return Decimal(statistics.median(deltas))


async def submit(
    session: AsyncSession,
    *,
    user_id: int,
    account_id: int,
    meters: list[MeterValues],
    now: dt.datetime,
    source: ReadingSource = ReadingSource.CABINET,
    idempotency_key: str | None = None,
    idempotency_scope: str = "submitReadings",
    field_prefix: Sequence[str] = ("input",),
) -> ReadingSubmission:
    """E3: store the values of all zones of the given meters of an account in its open window.

    The caller has checked the user's right to the account and commits (or rolls back) afterwards.
    Raises a :class:`DomainError` for the whole submission or :class:`SubmissionRejected` with every
    problem of the values; nothing is stored then.
    """
    prefix = list(field_prefix)
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_KEY_LENGTH:
        raise InvalidIdempotencyKey(field=["input", "idempotencyKey"])
    if idempotency_key:
        digest = request_hash(account_id, meters, source)
        first = await _claim_key(session, user_id, idempotency_scope, idempotency_key, digest, now)
        if first is not None:
            return first
    found = await accounts_with_branches(session, [account_id])
    if account_id not in found:
        raise AccountNotFound(field=[*prefix, "accountId"])
    account, branch = found[account_id]
    window = require_open(window_state(branch, now))
    if not meters:
        raise NoReadings(field=[*prefix, "meters"])

    # lock every installed meter of the account: concurrent submissions queue here
    locked = (
        await session.execute(
            select(Meter)
            .where(Meter.account_id == account_id, Meter.removed_at.is_(None))
            .order_by(Meter.id)
            .with_for_update()
        )
    ).scalars()
    installed = {meter.id: meter for meter in locked}

    errors: list[DomainError] = []
    seen: set[int] = set()
    wanted: list[tuple[int, Meter, MeterValues]] = []
    for index, given in enumerate(meters):
        path = [*prefix, "meters", str(index)]
        meter = installed.get(given.meter_id) if given.meter_id is not None else None
        if meter is None or meter.id in seen:
            errors.append(MeterNotFound(field=[*path, "meterId"]))
            continue
        seen.add(meter.id)
        zones = zones_of(meter.zone_scheme)
        given_zones: set[Zone] = set()
        for position, item in enumerate(given.values):
            value_path = [*path, "values", str(position)]
            if item.zone not in zones or item.zone in given_zones:
                errors.append(UnknownZone(field=[*value_path, "zone"], meter_id=meter.id, zone=item.zone))
                continue
            given_zones.add(item.zone)
            if item.value < 0 or not _fits(item.value, meter.digits, meter.decimals):
                errors.append(
                    ReadingOverflow(
                        field=[*value_path, "value"],
                        meter_id=meter.id,
                        zone=item.zone,
                        digits=meter.digits,
                        decimals=meter.decimals,
                    )
                )
        missing = [zone for zone in zones if zone not in given_zones]
        if missing:
            errors.append(ReadingZonesMissing(field=[*path, "values"], meter_id=meter.id, zones=missing))
        wanted.append((index, meter, given))
    if errors:
        raise SubmissionRejected(errors)

    period = window.period
    previous, current = await _previous_and_current(session, {meter.id: period for _, meter, _ in wanted})
    for index, meter, given in wanted:
        for position, item in enumerate(given.values):
            before = previous.get((meter.id, item.zone))
            if before is not None and item.value < before.value:
                errors.append(
                    ReadingBelowPrevious(
                        field=[*prefix, "meters", str(index), "values", str(position), "value"],
                        meter_id=meter.id,
                        zone=item.zone,
                        previous=before.value,
                    )
                )
    if errors:
        raise SubmissionRejected(errors)

    # usual consumption: the latest value of each of the last months before the window
    recent = await session.execute(
        select(Reading.meter_id, Reading.zone, Reading.period, Reading.value)
        .where(
            Reading.meter_id.in_([meter.id for _, meter, _ in wanted]),
            Reading.superseded_by_id.is_(None),
            Reading.period < period,
            Reading.period >= add_months(period, -USUAL_MONTHS),
        )
        .order_by(Reading.period, Reading.submitted_at, Reading.id)
    )
    monthly: dict[tuple[int, Zone], dict[dt.date, Decimal]] = defaultdict(dict)
    for meter_id, zone, reading_period, value in recent:
        monthly[(meter_id, zone)][reading_period] = value  # later rows of a month win

    submission = ReadingSubmission(account_id=account_id, user_id=user_id, source=source, period=period)
    touch(session, accounts=[account_id])  # every user of the account sees its readings
    session.add(submission)
    await session.flush()
    details: list[dict[str, Any]] = []
    new_rows: list[tuple[Reading, Reading | None]] = []
    for _, meter, given in wanted:
        for zone in zones_of(meter.zone_scheme):
            item = next(v for v in given.values if v.zone == zone)
            before = previous.get((meter.id, zone))
            consumption = item.value - before.value if before is not None else None
            usual = _usual_consumption(monthly.get((meter.id, zone), {}))
            flagged = bool(
                consumption is not None
                and usual is not None
                and consumption > max(usual * JUMP_FACTOR, Decimal(1))
            )
            row = Reading(
                meter_id=meter.id,
                account_id=account_id,
                submission_id=submission.id,
                zone=zone,
                period=period,
                value=item.value,
                source=source,
                submitted_by_user_id=user_id,
                submitted_at=now,
                flagged_for_review=flagged,
            )
            session.add(row)
            new_rows.append((row, current.get((meter.id, zone))))
            details.append(
                {
                    "meterId": meter.id,
                    "zone": zone.value,
                    "value": str(item.value.quantize(VOLUME_QUANTUM)),
                    "previous": str(before.value.quantize(VOLUME_QUANTUM)) if before is not None else None,
                    "previousPeriod": before.period.isoformat() if before is not None else None,
                    "consumption": str(consumption.quantize(VOLUME_QUANTUM))
                    if consumption is not None
                    else None,
                    "usualConsumption": str(usual) if usual is not None else None,
                    "flaggedForReview": flagged,
                    "replaced": current.get((meter.id, zone)) is not None,
                }
            )
    await session.flush()
    for (row, replaced), detail in zip(new_rows, details, strict=True):
        detail["readingId"] = row.id
        if replaced is not None:
            await session.execute(
                update(Reading)
                .where(Reading.meter_id == row.meter_id, Reading.zone == row.zone, Reading.period == period)
                .where(Reading.superseded_by_id.is_(None), Reading.id != row.id)
                .values(superseded_by_id=row.id)
            )
    submission.details = {"readings": details}
    await notify(
        session,
        user_id=user_id,
        category=NotificationCategory.READINGS,
        account_id=account_id,
        title=SUCCESS_TITLE,
        body=SUCCESS_BODY.format(number=account.number, period=f"{period.month:02d}.{period.year}"),
        data={"submissionId": submission.id, "accountId": account_id, "period": period.isoformat()},
    )
    if idempotency_key:
        await session.execute(
            update(IdempotencyKey)
            .where(
                IdempotencyKey.user_id == user_id,
                IdempotencyKey.scope == idempotency_scope,
                IdempotencyKey.key == idempotency_key,
            )
            .values(response={"submissionId": submission.id})
        )
    await session.flush()
    return submission


__all__ = [
    "NO_METERS_MESSAGE",
    "WINDOW_CLOSED_MESSAGE",
    "MeterValues",
    "ReadingBelowPrevious",
    "ReadingOverflow",
    "ReadingWindowClosed",
    "ReadingZonesMissing",
    "SubmissionRejected",
    "ZoneValue",
    "history",
    "last_readings",
    "meters_by_account",
    "reading_form",
    "reading_forms",
    "submit",
    "window_state",
]
