"""Benchmark of the analytics API (issue 17): rollup build time and analyst query latency over HTTP.

    python bench/analytics.py                                   # 100 000 accounts × 36 months
    python bench/analytics.py --accounts 5000 --duration 10     # quick
    python bench/analytics.py --reuse-db kabinet_bench_1234abcd --skip-refresh

Needs PostgreSQL and Redis: DATABASE_URL / REDIS_URL, or embedded ones when unset. Loads the demo core set
and ``N`` accounts with 36 months of history generated set-based in SQL (``bench/analytics_data.py``;
``--loader demo``: the ORM loader of bench/dashboard.py, ``prepare_database``, ~30× slower), builds
every month's rollups with ``services.analytics.refresh`` (timed), starts Kabinet as production does
(uvicorn, ``--workers`` processes, KABINET_ENV=production, scheduler off), logs the demo analyst in
(a session started in the database) and runs a mix of analyst queries — each over 36 months — in a closed
loop with ``--concurrency`` requests in flight for ``--duration`` seconds. Prints p50/p95/p99 per query and
overall. Results and conditions: bench/README.md ("Analytics").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from sqlalchemy import select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.db import Database
from bench.dashboard import (
    KABINET_APP,
    MSK,
    SECRET,
    free_port,
    pct,
    prepare_database,
    server_env,
    start,
    wait_healthy,
)
from models.identity import User
from services import analytics
from services.periods import add_months, month_start
from services.sessions import start_session

ANALYST_PHONE = "+73333333333"

QUERY = (
    "query A($q: AnalyticsQueryInput!) { analytics(query: $q) { rows { keys { value label } "
    "cells { money quantity count share seconds suppressed comparison { money count share } } } "
    "totals { money quantity count share seconds suppressed } } }"
)


def mix(today: dt.date) -> dict[str, dict[str, Any]]:
    """The analyst queries, all over the last 36 closed months."""
    last = add_months(month_start(today), -1)
    first = add_months(last, -35)
    span = {"periodFrom": f"{first:%Y-%m}", "periodTo": f"{last:%Y-%m}"}
    year = {"periodFrom": f"{add_months(last, -11):%Y-%m}", "periodTo": f"{last:%Y-%m}"}
    return {
        "money_by_month": {**span, "measures": ["CHARGED", "PAID", "DEBT"], "dimensions": ["PERIOD"]},
        "kwh_branch_zone_quarter": {
            **span,
            "measures": ["CONSUMPTION_KWH", "CHARGED"],
            "dimensions": ["BRANCH", "ZONE", "PERIOD"],
            "periodGranularity": "QUARTER",
        },
        "accounts_branch_supplier_yoy": {
            **year,
            "measures": ["ACCOUNTS", "DEBTORS", "E_RECEIPT_ADOPTION", "AUTOPAY_ADOPTION"],
            "dimensions": ["BRANCH", "SUPPLIER"],
            "compareWith": "YEAR_EARLIER",
        },
        "readings_channel_month": {
            **span,
            "measures": ["READINGS_SUBMITTED", "READINGS_ON_TIME_SHARE"],
            "dimensions": ["CHANNEL", "PERIOD"],
        },
        "payments_method_status": {
            **span,
            "measures": ["PAYMENTS_COUNT", "PAYMENTS_SUM"],
            "dimensions": ["PAYMENT_METHOD", "STATUS", "PERIOD"],
            "periodGranularity": "YEAR",
        },
        "appeals_topic": {
            **span,
            "measures": ["APPEALS", "FIRST_ANSWER_MEDIAN", "FIRST_ANSWER_P90"],
            "dimensions": ["APPEAL_TOPIC"],
        },
        "applications_kind": {
            **span,
            "measures": ["APPLICATIONS", "APPLICATION_FIRST_ANSWER_MEDIAN", "APPLICATION_FIRST_ANSWER_P90"],
            "dimensions": ["APPLICATION_KIND"],
        },
        "cabinets_registrations": {
            **span,
            "measures": ["ACTIVE_CABINETS", "REGISTRATIONS"],
            "dimensions": ["PERIOD"],
            "compareWith": "PREVIOUS_PERIOD",
        },
    }


async def prepare_fast(server_url: str, accounts: int, today: dt.date) -> str:
    """A new database: migrated, the demo core set, then ``accounts`` accounts by the set-based generator
    (``bench/analytics_data.py``); prints the load time. Returns its asyncpg URL."""
    import uuid

    from sqlalchemy.engine import make_url

    from app.db import async_url
    from bench.analytics_data import generate
    from bench.dashboard import admin_dsn
    from migrations import runner
    from services import demo

    name = f"kabinet_bench_{uuid.uuid4().hex[:8]}"
    url = make_url(async_url(server_url)).set(database=name).render_as_string(hide_password=False)
    connection = await asyncpg.connect(admin_dsn(server_url))
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    await asyncio.to_thread(runner.upgrade, url)
    started = time.monotonic()
    db = Database(url, pool_size=2)
    await demo.load(db, extra_accounts=0, months=36, today=today)
    await db.dispose()
    core = time.monotonic() - started
    timings = await generate(admin_dsn(server_url, name), accounts, today)
    total = time.monotonic() - started
    print(
        f"database               {name}: demo core set {core:.0f} s + {accounts} generated accounts "
        f"{sum(timings.values()):.0f} s (VACUUM ANALYZE {timings['vacuum_analyze']:.0f} s) = loaded in "
        f"{total:.0f} s (reuse with --reuse-db {name})",
        flush=True,
    )
    return url


async def build_rollups(url: str) -> None:
    db = Database(url, pool_size=2)
    started = time.monotonic()
    async with db.session() as session:
        result = await analytics.refresh(session)
        await session.commit()
    elapsed = time.monotonic() - started
    async with db.session() as session:
        await session.execute(text("ANALYZE analytics_rollups"))
        await session.commit()
    await db.dispose()
    print(
        f"rollups                {result.rows} rows for {len(result.periods)} months "
        f"built in {elapsed:.1f} s",
        flush=True,
    )


def service_query(q: dict[str, Any]) -> Any:
    """The service's query of one mix entry (no filters in the mix)."""
    from services.analytics import query as analytics_query
    from services.analytics.catalog import Dimension, Granularity, Measure

    return analytics_query.AnalyticsQuery(
        measures=tuple(Measure(m) for m in q["measures"]),
        dimensions=tuple(Dimension(d) for d in q["dimensions"]),
        first=dt.date.fromisoformat(q["periodFrom"] + "-01"),
        last=dt.date.fromisoformat(q["periodTo"] + "-01"),
        granularity=Granularity(q.get("periodGranularity", "MONTH")),
        compare=analytics_query.Comparison(q["compareWith"]) if q.get("compareWith") else None,
    )


async def explain(url: str, queries: dict[str, dict[str, Any]]) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of each mix query's statement (the first range): planning and execution
    time, and the rollup index scans."""
    from services.analytics import query as analytics_query

    db = Database(url, pool_size=1)
    async with db.session() as session:
        indexes = await session.execute(
            text("SELECT indexdef FROM pg_indexes WHERE tablename = 'analytics_rollups'")
        )
        for (definition,) in indexes:
            print(f"  index: {definition}")
        for name, q in queries.items():
            query = service_query(q)
            sql, params = analytics_query._answer_sql(query, analytics_query._key_dimensions(query), 0)
            plan = [
                row[0] for row in await session.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql), params)
            ]
            scans = sorted({line.strip().split(" on ")[0] for line in plan if "Scan" in line})
            timing = [line.strip() for line in plan if line.startswith(("Planning Time", "Execution Time"))]
            print(f"  {name:30} {'; '.join(timing)}; {', '.join(scans)}", flush=True)
    await db.dispose()


async def analyst_token(url: str) -> str:
    db = Database(url, pool_size=1)
    async with db.session() as session:
        user = (await session.execute(select(User).where(User.phone == ANALYST_PHONE))).scalar_one()
        tokens = await start_session(session, SECRET, user, now=dt.datetime.now(dt.UTC))
        await session.commit()
    await db.dispose()
    return tokens.access_token


async def run(
    port: int, token: str, queries: dict[str, dict[str, Any]], duration: float, concurrency: int
) -> None:
    bodies = {name: orjson.dumps({"query": QUERY, "variables": {"q": q}}) for name, q in queries.items()}
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    latencies: dict[str, list[float]] = {name: [] for name in bodies}
    names = list(bodies)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for name, body in bodies.items():  # warm-up and a correctness check of each query
            answer = (await client.post("/graphql", content=body, headers=headers)).json()
            if answer.get("errors"):
                raise RuntimeError(f"{name}: {answer['errors']}")
            rows = answer["data"]["analytics"]["rows"]
            hidden = sum(c["suppressed"] for r in rows for c in r["cells"])
            print(f"  {name:30} {len(rows):4} rows, {hidden} suppressed cells", flush=True)
        deadline = time.monotonic() + duration
        counter = 0

        async def worker() -> None:
            nonlocal counter
            while time.monotonic() < deadline:
                name = names[counter % len(names)]
                counter += 1
                started = time.monotonic()
                response = await client.post("/graphql", content=bodies[name], headers=headers)
                latencies[name].append((time.monotonic() - started) * 1000)
                if response.status_code != 200 or b'"errors"' in response.content:
                    raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    every = [v for values in latencies.values() for v in values]
    print(f"{'query':32} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for name, values in latencies.items():
        print(
            f"{name:32} {len(values):6} {pct(values, 0.5):8.1f} {pct(values, 0.95):8.1f} "
            f"{pct(values, 0.99):8.1f}"
        )
    print(f"{'all':32} {len(every):6} {pct(every, 0.5):8.1f} {pct(every, 0.95):8.1f} {pct(every, 0.99):8.1f}")
    print(f"throughput             {len(every) / duration:.1f} queries/s at concurrency {concurrency}")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=100_000, help="synthetic accounts to load")
    parser.add_argument("--reuse-db", metavar="NAME", help="use this already loaded database")
    parser.add_argument(
        "--loader",
        choices=["fast", "demo"],
        default="fast",
        help="fast: set-based SQL generator (bench/analytics_data.py); demo: the ORM synthetic loader",
    )
    parser.add_argument("--skip-refresh", action="store_true", help="keep the rollups already built")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of each query first")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of the closed loop")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers")
    args = parser.parse_args()
    today = dt.datetime.now(MSK).date()
    with tempfile.TemporaryDirectory(prefix="kabinet-bench-") as scratch:
        server_url = os.environ.get("DATABASE_URL")
        if not server_url:
            from app.embedded import embedded_postgres_url

            server_url = embedded_postgres_url(Path(scratch) / "pg", database="postgres", keep=False)
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url:
            from app.embedded import embedded_redis_url

            redis_url = embedded_redis_url(Path(scratch) / "redis")
        if args.loader == "fast" and not args.reuse_db:
            database_url = await prepare_fast(server_url, args.accounts, today)
        else:
            database_url = await prepare_database(server_url, args.accounts, args.reuse_db, today)
        if not args.skip_refresh:
            await build_rollups(database_url)
        if args.explain:
            await explain(database_url, mix(today))
        token = await analyst_token(database_url)
        env = {**server_env(database_url, redis_url), "KABINET_COST_BUDGET_PER_MINUTE": "100000000"}
        port = free_port()
        server = start(KABINET_APP, env, port, args.workers)
        try:
            await wait_healthy(port)
            await run(port, token, mix(today), args.duration, args.concurrency)
        finally:
            server.terminate()
            with contextlib.suppress(Exception):
                server.wait(timeout=20)


if __name__ == "__main__":
    asyncio.run(main())
