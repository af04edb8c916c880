"""The practical limit: the dashboard of `bench/dashboard.py` from a minimal Starlette + asyncpg + orjson app.

    DATABASE_URL=postgresql://… KABINET_SECRET_KEY=… python -m uvicorn bench.baseline:app --workers 2

``POST /dashboard`` with ``Authorization: Bearer <access token>`` returns exactly what Kabinet returns as
``data`` for :data:`bench.dashboard.DASHBOARD` (same values, same key order): hand-written SQL (four
statements on one pooled connection, no transaction), plain dicts, orjson. It verifies the JWT like
Kabinet but skips Kabinet's Redis revocation check (one EXISTS per request), rate limits and GraphQL.
Pure helpers (D8 period range, window countdown, amount formatting) are imported from ``services`` so
the two cannot disagree on rules; they cost microseconds.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import os
from collections.abc import AsyncIterator
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services import clock
from services.accounts import local_today, window_countdown
from services.billing import BALANCE_LABELS, ZERO, balance_status, display_amount
from services.periods import history_range
from services.tokens import verify_access_token

PAGE = 20

ACCOUNTS_SQL = """
SELECT a.id, a.number, a.address, coalesce(ua.display_name, a.number) AS display_name,
       b.time_zone, b.reading_window_start_day, b.reading_window_end_day
FROM user_accounts ua JOIN accounts a ON a.id = ua.account_id JOIN branches b ON b.id = a.branch_id
WHERE ua.user_id = $1
ORDER BY ua.linked_at, ua.id
LIMIT $2
"""

COUNT_SQL = "SELECT count(*) FROM user_accounts WHERE user_id = $1"

BALANCES_SQL = """
WITH latest AS (
    SELECT account_id, max(period) AS period FROM period_balances
    WHERE account_id = ANY($1::bigint[]) GROUP BY account_id
), closing AS (
    SELECT pb.account_id, pb.supplier_id, pb.period, pb.closing
    FROM period_balances pb JOIN latest l ON l.account_id = pb.account_id AND l.period = pb.period
), paid AS (
    SELECT pa.account_id, pa.supplier_id, sum(pa.amount) AS paid
    FROM payment_allocations pa JOIN payments p ON p.id = pa.payment_id
    LEFT JOIN latest l ON l.account_id = pa.account_id
    WHERE pa.account_id = ANY($1::bigint[]) AND p.status = 'SUCCEEDED'
      AND (l.period IS NULL OR pa.period > l.period)
    GROUP BY pa.account_id, pa.supplier_id
)
SELECT coalesce(c.account_id, paid.account_id) AS account_id,
       coalesce(c.supplier_id, paid.supplier_id) AS supplier_id,
       c.period, c.closing, paid.paid, s.name AS supplier_name, c.account_id IS NULL AS paid_only
FROM closing c FULL JOIN paid ON paid.account_id = c.account_id AND paid.supplier_id = c.supplier_id
JOIN suppliers s ON s.id = coalesce(c.supplier_id, paid.supplier_id)
ORDER BY 1, 7, 2
"""

METERS_SQL = """
SELECT m.account_id, m.id, m.serial, m.zone_scheme::text AS zone_scheme, s.code, s.name, s.unit,
       r.zone::text AS zone, r.period, r.value
FROM meters m JOIN services s ON s.id = m.service_id
LEFT JOIN LATERAL (
    SELECT DISTINCT ON (zone) zone, period, value FROM readings
    WHERE meter_id = m.id AND superseded_by_id IS NULL
    ORDER BY zone, period DESC, submitted_at DESC, id DESC
) r ON true
WHERE m.account_id = ANY($1::bigint[]) AND m.removed_at IS NULL
ORDER BY m.account_id, s.position, s.id, m.serial, m.id, r.zone
"""

CHARGES_SQL = """
SELECT c.account_id, c.period, c.zone::text AS zone, c.volume, c.rate, c.amount, c.recalculation,
       c.service_id, s.name AS service_name
FROM charges c JOIN services s ON s.id = c.service_id
WHERE c.account_id = ANY($1::bigint[]) AND c.period BETWEEN $2 AND $3
ORDER BY c.account_id, c.period DESC, c.service_id, c.zone, c.id
"""


def gid(type_name: str, pk: int) -> str:
    """Strawberry's relay global ID."""
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


def month(value: dt.date) -> str:
    return f"{value.year:04d}-{value.month:02d}"


def num(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


async def dashboard(request: Request) -> Response:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    claims = (
        verify_access_token(SECRET, token.strip(), now=clock.now()) if scheme.lower() == "bearer" else None
    )
    if claims is None:
        return Response(b'{"error":"unauthenticated"}', status_code=401, media_type="application/json")
    now = dt.datetime.now(dt.UTC)
    today = now.astimezone(ZoneInfo(TIME_ZONE)).date()
    period = history_range(today)
    async with POOL.acquire() as connection:
        rows = await connection.fetch(ACCOUNTS_SQL, claims.user_id, PAGE + 1)
        has_next = len(rows) > PAGE
        rows = rows[:PAGE]
        total = await connection.fetchval(COUNT_SQL, claims.user_id)
        ids = [row["id"] for row in rows]
        balance_rows = await connection.fetch(BALANCES_SQL, ids)
        meter_rows = await connection.fetch(METERS_SQL, ids)
        charge_rows = await connection.fetch(CHARGES_SQL, ids, period.start, period.end)

    balances: dict[int, dict[str, object]] = {
        pk: {"period": None, "lines": []} for pk in ids
    }  # account id -> billed period, [(supplier id, name, amount)]
    for row in balance_rows:
        found = balances[row["account_id"]]
        if row["period"] is not None:
            found["period"] = row["period"]
        closing = row["closing"] if row["closing"] is not None else ZERO
        amount = closing - (ZERO + row["paid"]) if row["paid"] is not None else closing
        found["lines"].append((row["supplier_id"], row["supplier_name"], amount))  # type: ignore[attr-defined]

    meters: dict[int, list[dict[str, object]]] = {pk: [] for pk in ids}
    last_meter: dict[str, object] | None = None
    for row in meter_rows:
        if last_meter is None or last_meter["_id"] != row["id"]:
            last_meter = {
                "_id": row["id"],
                "id": gid("Meter", row["id"]),
                "serial": row["serial"],
                "zoneScheme": row["zone_scheme"],
                "service": {"code": row["code"], "name": row["name"], "unit": row["unit"]},
                "lastReadings": [],
            }
            meters[row["account_id"]].append(last_meter)
        if row["zone"] is not None:
            last_meter["lastReadings"].append(  # type: ignore[attr-defined]
                {"zone": row["zone"], "period": month(row["period"]), "value": str(row["value"])}
            )

    charges: dict[int, list[dict[str, object]]] = {pk: [] for pk in ids}
    for row in charge_rows:
        months = charges[row["account_id"]]
        if not months or months[-1]["_period"] != row["period"]:
            months.append(
                {"_period": row["period"], "period": month(row["period"]), "_total": ZERO, "charges": []}
            )
        line_total = row["amount"] + (row["recalculation"] or ZERO)
        months[-1]["_total"] += line_total  # type: ignore[operator]
        months[-1]["charges"].append(  # type: ignore[attr-defined]
            {
                "zone": row["zone"],
                "volume": num(row["volume"]),
                "rate": num(row["rate"]),
                "amount": str(row["amount"]),
                "recalculation": str(row["recalculation"]),
                "total": str(line_total),
                "service": {"id": gid("Service", row["service_id"]), "name": row["service_name"]},
            }
        )

    edges = []
    for row in rows:
        pk = row["id"]
        found = balances[pk]
        amount = sum((line[2] for line in found["lines"]), ZERO)  # type: ignore[attr-defined]
        status = balance_status(amount)
        window = window_countdown(
            local_today(now, row["time_zone"]), row["reading_window_start_day"], row["reading_window_end_day"]
        )
        edges.append(
            {
                "node": {
                    "id": gid("Account", pk),
                    "number": row["number"],
                    "address": row["address"],
                    "displayName": row["display_name"],
                    "balance": {
                        "amount": str(amount),
                        "status": status.value,
                        "label": BALANCE_LABELS[status],
                        "displayAmount": display_amount(amount),
                        "billedPeriod": month(found["period"]) if found["period"] else None,  # type: ignore[arg-type]
                        "suppliers": [
                            {
                                "amount": str(line_amount),
                                "supplier": {"id": gid("Supplier", sid), "name": name},
                            }
                            for sid, name, line_amount in found["lines"]  # type: ignore[attr-defined]
                        ],
                    },
                    "readingWindow": {
                        "isOpen": window.is_open,
                        "opensOn": window.opens_on.isoformat(),
                        "closesOn": window.closes_on.isoformat(),
                        "daysUntilOpens": window.days_until_opens,
                        "daysUntilCloses": window.days_until_closes,
                    },
                    "meters": [{k: v for k, v in m.items() if k != "_id"} for m in meters[pk]],
                    "charges": [
                        {"period": m["period"], "total": str(m["_total"]), "charges": m["charges"]}
                        for m in charges[pk]
                    ],
                }
            }
        )
    body = {"accounts": {"totalCount": total, "pageInfo": {"hasNextPage": has_next}, "edges": edges}}
    return Response(orjson.dumps(body), media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(b"ok")


SECRET = os.environ.get("KABINET_SECRET_KEY", "")
TIME_ZONE = os.environ.get("KABINET_TIME_ZONE", "Europe/Moscow")
POOL: asyncpg.Pool


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    global POOL
    dsn = os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    POOL = await asyncpg.create_pool(
        dsn, min_size=2, max_size=int(os.environ.get("KABINET_DB_POOL_SIZE", "10"))
    )
    yield
    await POOL.close()


app = Starlette(
    routes=[Route("/dashboard", dashboard, methods=["POST"]), Route("/healthz", healthz)],
    lifespan=lifespan,
)
