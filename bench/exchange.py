"""Benchmark of the billing import (issue 18): a monthly exchange for N accounts, imported in one batch.

    python bench/exchange.py                       # 100 000 accounts
    python bench/exchange.py --accounts 10000      # quick
    python bench/exchange.py --reuse-db NAME       # skip creating the database and the initial load

Needs PostgreSQL (DATABASE_URL). Creates ``kabinet_bench_exchange_<random>`` (kept, printed), migrates it,
loads the demo core set (its suppliers, branches and services have billing ids), then generates in Python
and imports through :func:`services.exchange.importer.import_batch` — the path of ``kabinet import`` and
``POST /exchange/import``:

1. the initial set: ``accounts.csv`` (N) and ``meters.csv`` (an electricity meter each, half day/night;
   a cold-water meter for every other account) — timed, but not the target;
2. the monthly set: ``charges.csv`` (electricity per zone, water, waste: ~3.5 per account),
   ``balances.csv`` (two suppliers per account) and ``readings.csv`` (accepted readings, one per meter
   zone) — the target: ≤ 60 s for 100 000 accounts;
3. the same monthly set again (nothing changes: the idempotent path).

Prints parse time, time and rows/s per entity, the total, and a linear estimate for 1 000 000 accounts.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import io
import os
import secrets
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import demo
from app.db import Database, async_url
from services.exchange.formats import FORMAT, VERSION
from services.exchange.importer import ImportReport, import_batch
from services.storage import local_storage

MSK = dt.timezone(dt.timedelta(hours=3))


def _file(entity: str, header: list[str], rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    out.write(f"#{FORMAT}/{VERSION} {entity}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def initial_set(count: int, branches: list[str]) -> dict[str, bytes]:
    """Accounts and their meters."""
    accounts, meters = [], []
    for i in range(count):
        number = f"{80_000_000 + i}"
        billing = f"X-{number}"
        accounts.append(
            [
                billing,
                branches[i % len(branches)],
                number,
                "Петров",
                "Пётр",
                "Петрович",
                f"г. Рязань, ул. Ленина, д. {i % 200 + 1}, кв. {i % 150 + 1}",
                "54.30",
                "36.80",
                1,
                2,
                2,
                2,
                "GAS",
                "false",
                "true",
                "",
            ]
        )
        scheme = "DAY_NIGHT" if i % 2 else "SINGLE"
        meters.append(
            [
                f"E-{number}",
                billing,
                "ELECTRICITY",
                f"E{i:09d}",
                "Меркурий 201.8",
                scheme,
                6,
                1,
                "",
                "2020-01-15",
                "2020-01-15",
                "2036-01-14",
                "",
                "",
                "",
            ]
        )
        if i % 2 == 0:
            meters.append(
                [
                    f"W-{number}",
                    billing,
                    "WATER_COLD",
                    f"W{i:09d}",
                    "ВСХ-15",
                    "SINGLE",
                    5,
                    3,
                    "",
                    "2021-03-01",
                    "2021-03-01",
                    "2027-02-28",
                    "",
                    "",
                    "",
                ]
            )
    return {
        "accounts.csv": _file(
            "accounts",
            [
                "billing_id",
                "branch",
                "number",
                "owner_last_name",
                "owner_first_name",
                "owner_middle_name",
                "address",
                "total_area",
                "living_area",
                "owners_count",
                "registered_count",
                "residing_count",
                "rooms",
                "stove_type",
                "electric_heating",
                "e_receipt_allowed",
                "closed_on",
            ],
            accounts,
        ),
        "meters.csv": _file(
            "meters",
            [
                "billing_id",
                "account",
                "service",
                "serial",
                "model",
                "zone_scheme",
                "digits",
                "decimals",
                "location",
                "installed_on",
                "verified_on",
                "verification_due",
                "seal_number",
                "sealed_on",
                "removed_on",
            ],
            meters,
        ),
    }


def monthly_set(count: int, period: dt.date, suppliers: dict[str, str]) -> dict[str, bytes]:
    """One closed month: charges, balances, accepted readings."""
    charges, balances, readings = [], [], []
    month = f"{period:%Y-%m}"
    accepted = dt.datetime.combine(period.replace(day=26), dt.time(3, 0), MSK).isoformat()
    resk, water = suppliers["ELECTRICITY"], suppliers["WATER_COLD"]
    for i in range(count):
        number = f"{80_000_000 + i}"
        billing = f"X-{number}"
        volume = Decimal(100 + i % 250)
        zones = (
            [("DAY", Decimal("0.7"), Decimal("6.5200")), ("NIGHT", Decimal("0.3"), Decimal("3.1100"))]
            if i % 2
            else [("SINGLE", Decimal("1"), Decimal("5.6100"))]
        )
        electricity = Decimal("0")
        for zone, share, rate in zones:
            used = (volume * share).quantize(Decimal("0.001"))
            amount = (used * rate).quantize(Decimal("0.01"))
            electricity += amount
            charges.append(
                [
                    f"{billing}-{month}-E-{zone}",
                    billing,
                    month,
                    "ELECTRICITY",
                    resk,
                    zone,
                    used,
                    rate,
                    amount,
                    "0.00",
                ]
            )
            readings.append(
                [
                    f"{billing}-{month}-E-{zone}",
                    f"E-{number}",
                    zone,
                    month,
                    Decimal(10_000 + i % 5000) + used,
                    accepted,
                    "AMI",
                    "",
                ]
            )
        waste = Decimal("187.40")
        charges.append(
            [
                f"{billing}-{month}-WASTE",
                billing,
                month,
                "WASTE",
                suppliers["WASTE"],
                "",
                "",
                "",
                waste,
                "0.00",
            ]
        )
        charged_resk = electricity + waste
        balances.append([billing, resk, month, "100.00", charged_resk, "100.00", charged_resk])
        if i % 2 == 0:
            used = Decimal(3 + i % 7)
            amount = (used * Decimal("38.4500")).quantize(Decimal("0.01"))
            charges.append(
                [
                    f"{billing}-{month}-W",
                    billing,
                    month,
                    "WATER_COLD",
                    water,
                    "",
                    used,
                    "38.4500",
                    amount,
                    "0.00",
                ]
            )
            readings.append(
                [
                    f"{billing}-{month}-W",
                    f"W-{number}",
                    "SINGLE",
                    month,
                    Decimal(200 + i % 300) + used,
                    accepted,
                    "AMI",
                    "",
                ]
            )
            balances.append([billing, water, month, "0.00", amount, "0.00", amount])
    return {
        "charges.csv": _file(
            "charges",
            [
                "billing_id",
                "account",
                "period",
                "service",
                "supplier",
                "zone",
                "volume",
                "rate",
                "amount",
                "recalculation",
            ],
            charges,
        ),
        "balances.csv": _file(
            "balances", ["account", "supplier", "period", "opening", "charged", "paid", "closing"], balances
        ),
        "readings.csv": _file(
            "readings",
            ["billing_id", "meter", "zone", "period", "value", "accepted_at", "source", "cabinet_reading_id"],
            readings,
        ),
    }


_EXPLAIN = (
    "LOAD 'auto_explain'",
    "SET LOCAL auto_explain.log_min_duration = {ms}",
    "SET LOCAL auto_explain.log_analyze = on",
    "SET LOCAL auto_explain.log_buffers = on",
    "SET LOCAL auto_explain.log_triggers = on",
    "SET LOCAL auto_explain.log_level = notice",
    "SET LOCAL client_min_messages = notice",
)


async def run_import(
    db: Database, files: dict[str, bytes], data_dir: Path, explain: tuple[int, Path] | None = None
) -> tuple[ImportReport, float]:
    """Import ``files`` in one transaction (timed with its COMMIT); with ``explain`` = (ms, file), the plans
    of the statements slower than ms (auto_explain, a superuser's) are appended to the file."""
    async with db.session() as session:
        if explain is not None:
            connection = await session.connection()
            raw = (await connection.get_raw_connection()).driver_connection
            for setting in _EXPLAIN:
                await raw.execute(setting.format(ms=explain[0]))
            out = explain[1].open("a")

            def listener(_conn: Any, message: Any) -> None:
                out.write(message.message + "\n\n")

            raw.add_log_listener(listener)
        started = time.perf_counter()
        report = await import_batch(
            session, files, storage=local_storage(data_dir), now=dt.datetime.now(dt.UTC)
        )
        await session.commit()
        seconds = time.perf_counter() - started
        if explain is not None:
            raw.remove_log_listener(listener)
            out.close()
    return report, seconds


def show(title: str, report: ImportReport, seconds: float) -> None:
    print(f"\n{title}: {seconds:.1f} s in all (parse + validate in Python: {report.parse_seconds:.1f} s)")
    for name, entity in report.entities.items():
        rate = entity.rows / entity.seconds if entity.seconds else 0
        print(
            f"  {name:>10}: {entity.rows:>9,} rows  {entity.changed:>9,} changed  {entity.seconds:6.1f} s"
            f"  {rate:>9,.0f} rows/s (COPY + checks + merge)"
        )
    if report.periods:
        print(f"  analytics rollups of {len(report.periods)} month(s): {report.analytics_seconds:.1f} s")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--reuse-db", default=None, help="a database an earlier run created and loaded")
    parser.add_argument(
        "--explain",
        type=int,
        metavar="MS",
        help="write the plans of the monthly import's statements slower than MS ms (auto_explain) to a file",
    )
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL")
    if not server:
        raise SystemExit("set DATABASE_URL to a PostgreSQL server the benchmark may create a database on")
    name = args.reuse_db or f"kabinet_bench_exchange_{secrets.token_hex(4)}"
    url = make_url(async_url(server)).set(database=name).render_as_string(hide_password=False)
    if not args.reuse_db:
        admin = await asyncpg.connect(
            make_url(server)
            .set(database="postgres", drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        from migrations import runner

        runner.upgrade(url, "head")
    print(f"database {name}")
    db = Database(url, pool_size=2)
    data_dir = Path(tempfile.mkdtemp(prefix="kabinet-bench-exchange-"))
    try:
        if not args.reuse_db:
            await demo.load(db, months=3)
        async with db.engine.connect() as conn:
            from sqlalchemy import text

            branches = list(
                (await conn.execute(text("SELECT billing_id FROM branches ORDER BY id"))).scalars()
            )
            suppliers = {
                row.code: row.supplier
                for row in await conn.execute(
                    text(
                        "SELECT s.code, sup.billing_id AS supplier FROM services s "
                        "JOIN suppliers sup ON sup.id = s.supplier_id"
                    )
                )
            }
            existing = (
                await conn.execute(text("SELECT count(*) FROM accounts WHERE number LIKE '8%'"))
            ).scalar_one()
        if existing < args.accounts:
            files = initial_set(args.accounts, branches)
            report, seconds = await run_import(db, files, data_dir)
            show(f"initial load ({args.accounts:,} accounts, meters)", report, seconds)
        async with db.engine.connect() as conn:
            from sqlalchemy import text

            last = (await conn.execute(text("SELECT max(period) FROM charges"))).scalar_one() or dt.date(
                2026, 1, 1
            )
        period = (last.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        started = time.perf_counter()
        files = monthly_set(args.accounts, period, suppliers)
        generated = time.perf_counter() - started
        size = sum(len(data) for data in files.values())
        print(
            f"\nmonthly set for {period:%Y-%m}: {size / 1e6:.1f} MB, generated in {generated:.1f} s (untimed)"
        )
        explain = None
        if args.explain is not None:
            explain = (args.explain, data_dir / "plans.txt")
            print(f"plans of statements slower than {args.explain} ms: {explain[1]}")
        report, seconds = await run_import(db, files, data_dir, explain)
        show(f"monthly import ({args.accounts:,} accounts)", report, seconds)
        rows = sum(entity.rows for entity in report.entities.values())
        print(f"  total: {rows:,} rows in {seconds:.1f} s = {rows / seconds:,.0f} rows/s; target ≤ 60 s")
        print(
            f"  estimate for 1 000 000 accounts (linear in rows): {seconds * 1_000_000 / args.accounts:.0f} s"
        )
        again, seconds_again = await run_import(db, files, data_dir)
        show("the same monthly set again (idempotent: nothing changes)", again, seconds_again)
    finally:
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
