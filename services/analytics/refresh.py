"""Rebuilding the monthly rollups (``models.analytics``) from the raw tables, set-based in SQL.

``refresh`` recomputes whole months: every family's rows of those months are deleted and inserted again
by one ``INSERT … SELECT … GROUP BY period, GROUPING SETS (…)`` per family, so a refresh of all 36 months
scans each source table once. Rollups are group-level (a branch, a supplier, …), so an account's change
touches every grouping set of its month: ``account_ids`` only choose *which months* to recompute.

Who calls it:
- the scheduler, every :data:`REFRESH_EVERY` for the current and the previous month (the stated lag:
  writes through the API — payments, readings, appeals, logins — show up within that time plus the
  scheduler interval);
- the billing import, after it wrote balances and charges: ``refresh(session, periods=…)`` or
  ``refresh(session, account_ids=…)``;
- ``rebuild`` (every month from the first fact to the current one): first start, the benchmark.
The caller commits.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT, DATE
from sqlalchemy.ext.asyncio import AsyncSession

from models.analytics import AnalyticsRollup
from services.analytics.catalog import DIMENSION_COLUMN, FAMILIES, Family
from services.clock import MOSCOW
from services.clock import now as clock_now
from services.periods import add_months, month_bounds, month_of, month_start, months_between
from services.unit_of_work import Units, touch

log = logging.getLogger("kabinet.analytics")

REFRESH_EVERY = dt.timedelta(minutes=15)
"""How often the scheduled job recomputes the current and the previous month (the lag of API writes)."""

_RANGE = "{col} >= CAST(:since AS timestamptz) AND {col} < CAST(:until AS timestamptz)"
_MONTH = "CAST(date_trunc('month', {col} AT TIME ZONE CAST(:tz AS text)) AS date)"

# Each source yields: period, the family's dimension columns, subject, and the inputs of its aggregates.
SOURCES: dict[str, tuple[str, str]] = {
    "charges": (
        """
        SELECT c.period, a.branch_id, c.supplier_id, c.service_id, c.zone, c.account_id AS subject,
               CASE WHEN sv.unit = 'кВт·ч' THEN c.volume END AS consumption,
               c.amount + c.recalculation AS charged
        FROM charges AS c JOIN accounts AS a ON a.id = c.account_id
        JOIN services AS sv ON sv.id = c.service_id
        WHERE c.period = ANY(:periods)
        """,
        "sum(consumption) AS consumption, sum(charged) AS charged",
    ),
    "balances": (
        """
        SELECT pb.period, a.branch_id, pb.supplier_id, pb.account_id AS subject, pb.paid,
               greatest(pb.closing, 0) AS debt, pb.closing > 0 AS in_debt,
               coalesce(f.e_receipt, false) AS e_receipt, coalesce(f.autopay, false) AS autopay
        FROM period_balances AS pb JOIN accounts AS a ON a.id = pb.account_id
        LEFT JOIN (
            SELECT ua.account_id, bool_or(ua.e_receipt_enabled) AS e_receipt,
                   bool_or(coalesce(ap.enabled, false)) AS autopay
            FROM user_accounts AS ua LEFT JOIN autopay_settings AS ap ON ap.user_account_id = ua.id
            GROUP BY ua.account_id
        ) AS f ON f.account_id = pb.account_id
        WHERE pb.period = ANY(:periods)
        """,
        "sum(paid) AS paid, sum(debt) AS debt, count(DISTINCT subject) AS accounts, "
        "count(DISTINCT subject) FILTER (WHERE in_debt) AS debtors, "
        "count(DISTINCT subject) FILTER (WHERE e_receipt) AS e_receipts, "
        "count(DISTINCT subject) FILTER (WHERE autopay) AS autopay",
    ),
    "sessions": (
        f"""
        SELECT {_MONTH.format(col="s.created_at")} AS period, a.branch_id, s.client_kind AS channel,
               s.user_id AS subject
        FROM auth_sessions AS s JOIN users AS u ON u.id = s.user_id AND u.role = 'CUSTOMER'
        LEFT JOIN user_accounts AS ua ON ua.user_id = u.id LEFT JOIN accounts AS a ON a.id = ua.account_id
        WHERE {_RANGE.format(col="s.created_at")}
        """,
        "count(DISTINCT subject) AS active_cabinets",
    ),
    "registrations": (
        f"""
        SELECT {_MONTH.format(col="u.created_at")} AS period, u.id AS subject
        FROM users AS u WHERE u.role = 'CUSTOMER' AND {_RANGE.format(col="u.created_at")}
        """,
        "count(*) AS registrations",
    ),
    "readings": (
        f"""
        SELECT r.period, a.branch_id, m.service_id, r.zone,
               CASE r.source WHEN 'CABINET' THEN 'WEB' WHEN 'AMI' THEN 'METER_DATA' ELSE r.source END
                   AS channel,
               r.account_id AS subject,
               CASE WHEN b.reading_window_start_day <= b.reading_window_end_day THEN
                        {_MONTH.format(col="r.submitted_at")} = r.period
                        AND extract(day FROM r.submitted_at AT TIME ZONE CAST(:tz AS text))
                            BETWEEN b.reading_window_start_day AND b.reading_window_end_day
                    ELSE extract(day FROM r.submitted_at AT TIME ZONE CAST(:tz AS text))
                            NOT BETWEEN b.reading_window_end_day + 1 AND b.reading_window_start_day - 1
               END AS on_time
        FROM readings AS r JOIN meters AS m ON m.id = r.meter_id JOIN accounts AS a ON a.id = r.account_id
        JOIN branches AS b ON b.id = a.branch_id
        WHERE r.period = ANY(:periods)
        """,
        "count(*) AS readings, count(*) FILTER (WHERE on_time) AS readings_on_time",
    ),
    "payments": (
        f"""
        SELECT {_MONTH.format(col="p.created_at")} AS period, a.branch_id, pa.supplier_id,
               p.method AS payment_method, p.status, pa.account_id AS subject, p.id AS payment_id, pa.amount
        FROM payments AS p JOIN payment_allocations AS pa ON pa.payment_id = p.id
        JOIN accounts AS a ON a.id = pa.account_id
        WHERE {_RANGE.format(col="p.created_at")}
        """,
        "count(DISTINCT payment_id) AS payments, sum(amount) AS payments_sum",
    ),
    "appeals": (
        f"""
        SELECT {_MONTH.format(col="ap.created_at")} AS period, a.branch_id, ap.supplier_id, ap.topic,
               ap.status,
               ap.account_id AS subject,
               CAST(extract(epoch FROM coalesce(fa.first_answer, ap.answered_at) - ap.created_at) AS integer)
                   AS answer_s
        FROM appeals AS ap JOIN accounts AS a ON a.id = ap.account_id
        LEFT JOIN LATERAL (
            SELECT min(e.created_at) AS first_answer FROM request_events AS e
            WHERE e.appeal_id = ap.id AND e.kind = 'ANSWER'
        ) AS fa ON true
        WHERE {_RANGE.format(col="ap.created_at")}
        """,
        "count(*) AS appeals, array_agg(answer_s) FILTER (WHERE answer_s IS NOT NULL) AS answer_seconds",
    ),
    "applications": (
        f"""
        SELECT {_MONTH.format(col="ap.created_at")} AS period, a.branch_id, ap.kind AS application_kind,
               ap.status, ap.account_id AS subject,
               CAST(extract(epoch FROM coalesce(fa.first_answer, ap.answered_at) - ap.created_at) AS integer)
                   AS answer_s
        FROM applications AS ap JOIN accounts AS a ON a.id = ap.account_id
        LEFT JOIN LATERAL (
            SELECT min(e.created_at) AS first_answer FROM request_events AS e
            WHERE e.application_id = ap.id AND e.kind = 'ANSWER'
        ) AS fa ON true
        WHERE {_RANGE.format(col="ap.created_at")}
        """,
        "count(*) AS applications, array_agg(answer_s) FILTER (WHERE answer_s IS NOT NULL) AS answer_seconds",
    ),
}


def _aggregate_columns(aggregates: str) -> list[str]:
    return [part.rsplit(" AS ", 1)[1].strip() for part in _split_top_level(aggregates)]


def _split_top_level(expression: str) -> list[str]:
    """Split ``a, f(b, c) AS x`` at the commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in expression:
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += (char == "(") - (char == ")")
        current += char
    parts.append(current)
    return [part.strip() for part in parts if part.strip()]


def family_insert_sql(family: Family) -> str:
    """The ``INSERT … SELECT`` that rebuilds ``family`` for the months in ``:periods``."""
    source, aggregates = SOURCES[family.name]
    columns = [DIMENSION_COLUMN[d] for d in family.dimensions]
    subsets = [
        combo for size in range(len(columns), -1, -1) for combo in itertools.combinations(columns, size)
    ]
    if columns:
        sets = ", ".join("(" + ", ".join(combo) + ")" for combo in subsets)
        group_by = f"GROUP BY period, GROUPING SETS ({sets})"
        grouping = f"GROUPING({', '.join(columns)})"
    else:
        group_by, grouping = "GROUP BY period", "0"
    outputs = _aggregate_columns(aggregates)
    dim_list = "".join(f"{c}, " for c in columns)
    return (
        f"INSERT INTO analytics_rollups (family, period, grouping, {dim_list}subjects, {', '.join(outputs)}) "
        f"SELECT CAST(:family AS text), period, {grouping}, {dim_list}count(DISTINCT subject), {aggregates} "
        f"FROM ({source}) AS src WHERE period = ANY(:periods) {group_by}"
    )


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What a refresh recomputed."""

    periods: list[dt.date]
    rows: int


async def _periods_of_accounts(
    session: AsyncSession, account_ids: Sequence[int], zone: ZoneInfo
) -> list[dt.date]:
    month = _MONTH
    found = await session.execute(
        text(
            "SELECT period FROM period_balances WHERE account_id = ANY(:ids) "
            "UNION SELECT period FROM charges WHERE account_id = ANY(:ids) "
            "UNION SELECT period FROM readings WHERE account_id = ANY(:ids) "
            f"UNION SELECT {month.format(col='p.created_at')} FROM payments AS p "
            "JOIN payment_allocations AS pa "
            "ON pa.payment_id = p.id WHERE pa.account_id = ANY(:ids) "
            f"UNION SELECT {month.format(col='created_at')} FROM appeals WHERE account_id = ANY(:ids) "
            f"UNION SELECT {month.format(col='created_at')} FROM applications WHERE account_id = ANY(:ids)"
        ).bindparams(bindparam("ids", type_=ARRAY(BIGINT))),
        {"ids": list(account_ids), "tz": zone.key},
    )
    return sorted({row[0] for row in found if row[0] is not None})


async def all_periods(session: AsyncSession, *, zone: ZoneInfo = MOSCOW) -> list[dt.date]:
    """Every month from the first fact in the database to the current one."""
    first: dt.date | None = (
        await session.execute(
            text(
                "SELECT least((SELECT min(period) FROM period_balances), (SELECT min(period) FROM charges), "
                "(SELECT min(period) FROM readings), "
                "CAST(date_trunc('month', (SELECT min(created_at) FROM users) "
                "AT TIME ZONE CAST(:tz AS text)) "
                "AS date))"
            ),
            {"tz": zone.key},
        )
    ).scalar_one()
    current = month_of(clock_now(), zone)
    return months_between(month_start(first), current) if first is not None else [current]


async def refresh(
    session: AsyncSession,
    *,
    periods: Iterable[dt.date] | None = None,
    account_ids: Iterable[int] | None = None,
    families: Iterable[str] | None = None,
    zone: ZoneInfo = MOSCOW,
) -> RefreshResult:
    """Recompute the rollups of ``periods`` (months), or of the months where ``account_ids`` have facts,
    or of every month when neither is given. Set-based: one DELETE and one INSERT per family."""
    if periods is not None:
        months = sorted({month_start(p) for p in periods})
    elif account_ids is not None:
        months = await _periods_of_accounts(session, list(account_ids), zone)
    else:
        months = await all_periods(session, zone=zone)
    if not months:
        return RefreshResult([], 0)
    since, until = month_bounds(months[0], months[-1], zone)
    touch(session, private=AnalyticsRollup)  # staff-only aggregates: no cached customer answer shows them
    names = list(families) if families is not None else list(FAMILIES)
    periods_param = bindparam("periods", type_=ARRAY(DATE))
    await session.execute(
        text(
            "DELETE FROM analytics_rollups WHERE family = ANY(:families) AND period = ANY(:periods)"
        ).bindparams(periods_param),
        {"families": names, "periods": months},
    )
    inserted = 0
    for name in names:
        result = await session.execute(
            text(family_insert_sql(FAMILIES[name])).bindparams(periods_param),
            {"family": name, "periods": months, "since": since, "until": until, "tz": zone.key},
        )
        inserted += result.rowcount or 0  # type: ignore[attr-defined]
    log.info("analytics rollups refreshed: %d months, %d rows", len(months), inserted)
    return RefreshResult(months, inserted)


async def refresh_job(units: Units, now: dt.datetime) -> int:
    """Scheduled: every :data:`REFRESH_EVERY`, recompute the current and the previous month (one unit of
    work: the claim and the rollups commit together)."""
    from services.scheduler import claim_run

    slot = int(now.timestamp() // REFRESH_EVERY.total_seconds())
    async with units() as uow:
        if not await claim_run(uow.session, "analytics-refresh", str(slot), now):
            return 0
        current = month_of(now, MOSCOW)
        result = await refresh(uow.session, periods=[add_months(current, -1), current])
    return result.rows
