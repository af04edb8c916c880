"""Kabinet against PostGraphile, side by side on the same data and the same core (issue 21).

    cd bench/peers/postgraphile && npm install && cd -      # once: PostGraphile 5 and Node 22 (see README)
    python bench/peers.py --reuse-db kabinet_bench_1a2b3c4d [--runs 2] [--duration 10] [--ops dashboard]

Each server is ONE process pinned with ``taskset`` to the same core (``--server-cpu``, default 0):
Kabinet as `python -m app.workers … --workers 1` with the result cache off (production settings as in
`bench/dashboard.py`), PostGraphile 5.1.5 with `bench/peers/postgraphile/graphile.config.mjs`. This load
generator pins itself to the other core(s); PostgreSQL cannot be pinned from here and shares them.
For every run (``--runs``, servers alternating which goes first) and operation: 2 s warm-up, a closed
loop at ``--concurrency`` (saturation), then an open loop at 50 % of that rate (p50/p99 from the scheduled
send time). Printed per run, then a summary with the spread (min–max over runs) and the ratio.
The other server is stopped (SIGSTOP) while one is measured (``--no-suspend``: it is not); ``peer ms`` is
the CPU ms it used during the open loop all the same (0 when the stop held): an idle server's own
background work, such as a collector shrinking its heap after a load, competes with the measured one on
the shared core.

Operations (the same data asked of both; PostGraphile leaves totals, labels and countdowns to the client):
- ``dashboard`` — Kabinet's DASHBOARD of `bench/dashboard.py`; PostGraphile's equivalent
  `bench/peers/postgraphile/pgl_dashboard.graphql` (12 months of charges, balances, meters, readings);
- ``charges36`` — one account's charges over the longest D8 range (36 months) with service and supplier;
- ``statistics`` — Kabinet's two 36-month series (CONSUMPTION, CHARGES) of one account; PostGraphile has
  no aggregates in this preset, so its side returns the 36 months' lines the client would sum.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.dashboard import (
    CHARGES_36,
    DASHBOARD,
    MSK,
    STATISTICS,
    VARIANTS,
    Customer,
    Op,
    Phase,
    Servers,
    StatementCounter,
    closed_loop,
    count_statements,
    free_port,
    issue_tokens,
    measure,
    open_loop,
    pct,
    prepare_database,
    server_env,
)
from services.periods import allowed_range, history_range

PGL_DIR = ROOT / "bench" / "peers" / "postgraphile"
PGL_DASHBOARD = (PGL_DIR / "pgl_dashboard.graphql").read_text()
PGL_CHARGES_36 = """query Charges($id: BigInt!, $from: Date!, $to: Date!) {
  accountByRowId(rowId: $id) {
    charges: chargesByAccountId(
      filter: { period: { greaterThanOrEqualTo: $from, lessThanOrEqualTo: $to } }
      orderBy: [PERIOD_DESC, SERVICE_ID_ASC, ZONE_ASC, PRIMARY_KEY_ASC]
    ) {
      nodes {
        period zone volume rate amount recalculation
        service: serviceByServiceId { id name }
        supplier: supplierBySupplierId { id name }
      }
    }
  }
}"""
PGL_STATISTICS = """query Statistics($id: BigInt!, $from: Date!, $to: Date!) {
  accountByRowId(rowId: $id) {
    lines: chargesByAccountId(
      filter: { period: { greaterThanOrEqualTo: $from, lessThanOrEqualTo: $to } }
      orderBy: [SERVICE_ID_ASC, ZONE_ASC, PERIOD_ASC]
    ) {
      nodes { period zone volume amount recalculation service: serviceByServiceId { id name } }
    }
  }
}"""
"""PostGraphile (amber preset, no aggregates plugin) cannot sum: the closest request returns the 36 months'
charge lines with what Kabinet's two series are summed from (the client would add them up)."""


class Peer:
    """What one customer asks of PostGraphile: its user id, accounts' row ids, last billed month."""

    def __init__(self, customer: Customer, account_ids: list[int], billed: dt.date | None) -> None:
        self.customer = customer
        self.account_ids = account_ids
        self.billed = billed


def pgl_body(query: str, **variables: Any) -> tuple[str, bytes]:
    return "/graphql", orjson.dumps({"query": query, "variables": variables})


def make_ops(today: dt.date, peers: dict[int, Peer]) -> dict[str, dict[str, Op]]:
    """Per operation: the Kabinet and the PostGraphile request of a customer."""
    longest = allowed_range(today)
    months36 = {"from": f"{longest.start:%Y-%m}", "to": f"{longest.end:%Y-%m}"}
    dates36 = {"from": longest.start.isoformat(), "to": longest.end.isoformat()}
    default = history_range(today, None, None)  # Kabinet's dashboard: the default 12 months
    dates12 = {"from": default.start.isoformat(), "to": default.end.isoformat()}

    def k_dashboard(c: Customer, rng: random.Random) -> tuple[str, bytes]:
        return pgl_body(DASHBOARD)

    def p_dashboard(c: Customer, rng: random.Random) -> tuple[str, bytes]:
        peer = peers[c.user_id]
        billed = (peer.billed or default.end).isoformat()
        return pgl_body(PGL_DASHBOARD, uid=str(c.user_id), billed=billed, **dates12)

    def k_charges(c: Customer, rng: random.Random) -> tuple[str, bytes]:
        index = rng.randrange(len(peers[c.user_id].account_ids))
        return pgl_body(CHARGES_36, id=c.accounts[index], **months36)

    def p_charges(c: Customer, rng: random.Random) -> tuple[str, bytes]:
        account = rng.choice(peers[c.user_id].account_ids)
        return pgl_body(PGL_CHARGES_36, id=str(account), **dates36)

    def k_statistics(c: Customer, rng: random.Random) -> tuple[str, bytes]:
        index = rng.randrange(len(peers[c.user_id].account_ids))
        return pgl_body(STATISTICS, id=c.accounts[index], **months36)

    def p_statistics(c: Customer, rng: random.Random) -> tuple[str, bytes]:
        account = rng.choice(peers[c.user_id].account_ids)
        return pgl_body(PGL_STATISTICS, id=str(account), **dates36)

    return {
        "dashboard": {"kabinet": Op("dashboard", k_dashboard), "postgraphile": Op("dashboard", p_dashboard)},
        "charges36": {"kabinet": Op("charges36", k_charges), "postgraphile": Op("charges36", p_charges)},
        "statistics": {
            "kabinet": Op("statistics", k_statistics),
            "postgraphile": Op("statistics", p_statistics),
        },
    }


async def load_peers(database_url: str, customers: list[Customer]) -> dict[int, Peer]:
    """Account ids (in link order, as both servers list them) and the last billed month per customer."""
    from sqlalchemy import func, select

    from app.db import Database
    from models.accounts import UserAccount
    from models.billing import PeriodBalance

    db = Database(database_url, pool_size=2)
    out: dict[int, Peer] = {}
    async with db.session() as session:
        for c in customers:
            links = (
                await session.execute(
                    select(UserAccount.account_id)
                    .where(UserAccount.user_id == c.user_id)
                    .order_by(UserAccount.linked_at, UserAccount.id)
                )
            ).scalars()
            ids = list(links)
            billed = await session.scalar(
                select(func.max(PeriodBalance.period)).where(PeriodBalance.account_id.in_(ids))
            )
            out[c.user_id] = Peer(c, ids, billed)
    await db.dispose()
    return out


async def global_ids(port: int, customers: list[Customer]) -> None:
    """Each customer's account IDs as Kabinet gives them (for ``node(id:)``), in link order."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for c in customers:
            answer = await client.post(
                "/graphql", json={"query": DASHBOARD}, headers={"authorization": f"Bearer {c.token}"}
            )
            c.accounts = [edge["node"]["id"] for edge in answer.json()["data"]["accounts"]["edges"]]


async def setup(
    reuse_db: str, users: int, client_cpu: str
) -> tuple[str, str, str, dt.date, list[Customer], dict[int, Peer]]:
    """Pin this load generator to ``client_cpu``; then the PostgreSQL server's URL, the bench database's,
    Redis's, today (Moscow), ``users`` customers with access tokens and their accounts (and `bench/ab.py`)."""
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {int(cpu) for cpu in client_cpu.split(",")})
    server_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    today = dt.datetime.now(MSK).date()
    database_url = await prepare_database(server_url, 0, reuse_db, today)
    customers = await issue_tokens(database_url, users)
    peers = await load_peers(database_url, customers)
    return server_url, database_url, redis_url, today, customers, peers


def pin(cpus: str) -> list[str]:
    return ["taskset", "-c", cpus]


def start_kabinet(env: dict[str, str], port: int, cpus: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "app.workers", "app.main:app_from_env", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level", "warning"]
    return subprocess.Popen([*pin(cpus), *command], env=env, cwd=str(ROOT))


def start_postgraphile(
    database: str, port: int, cpus: str, user: str = "postgres"
) -> subprocess.Popen[bytes]:
    node = PGL_DIR / "node_modules" / "node" / "bin" / "node"
    cli = PGL_DIR / "node_modules" / "postgraphile" / "dist" / "cli-run.js"
    if not node.exists() or not cli.exists():
        raise SystemExit(f"PostGraphile is not installed: cd {PGL_DIR} && npm install")
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{user}@127.0.0.1:5432/{database}",
        "PORT": str(port),
        "NODE_ENV": "production",
    }
    return subprocess.Popen(
        [*pin(cpus), str(node), str(cli), "-C", "graphile.config.mjs"],
        env=env,
        cwd=str(PGL_DIR),
        stdout=subprocess.DEVNULL,
    )


async def wait_graphql(port: int) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                answer = await client.post(f"http://127.0.0.1:{port}/graphql", json={"query": "{__typename}"})
                if answer.status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start")


@contextlib.contextmanager
def suspended(others: list[Servers]) -> Iterator[None]:
    """The other servers stopped (SIGSTOP) while one is measured, then resumed: an idle server is not idle
    on a shared core — PostGraphile's Node collected its heap for 150–170 ms of CPU during Kabinet's next
    open loop after its dashboard phase, and Kabinet's p99 at 50 % went from ~14 ms to ~92 ms (session 9)."""
    stopped = [proc for servers in others for proc in servers.processes()]
    for proc in stopped:
        with contextlib.suppress(psutil.Error):
            proc.suspend()
    try:
        yield
    finally:
        for proc in stopped:
            with contextlib.suppress(psutil.Error):
                proc.resume()


HEADER = (
    f"{'run':>3} {'server':<13} {'operation':<10} {'req/s':>7} {'cpu ms':>7} {'db ms':>6} {'p50 ms':>7}"
    f" {'p99 ms':>7} {'@ req/s':>8} {'peer ms':>7} {'errors':>6} {'load avg':>8}"
)


async def run_one(
    op: Op,
    port: int,
    servers: Servers,
    customers: list[Customer],
    args: Any,
    database: str,
    others: list[Servers],
) -> tuple[Phase, Phase, float]:
    """Warm-up, saturation (closed loop), then 50 % of it (open loop); and the CPU ms the ``others`` (the
    idle servers pinned to the same core) used during the open loop: their own work then — a collector
    shrinking its heap after a load — shows in this server's latency."""
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    clients = [
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits)
        for _ in range(args.concurrency)
    ]
    try:
        await closed_loop(clients, op, customers, args.concurrency, 2.0)
        closed = await measure(
            closed_loop(clients, op, customers, args.concurrency, args.duration), servers, database
        )
        rate = closed.result.requests / closed.seconds * 0.5
        idle = sum(other.cpu() for other in others)
        half = await measure(open_loop(clients, op, customers, rate, args.duration), servers, database)
        idle = sum(other.cpu() for other in others) - idle
    finally:
        for client in clients:
            await client.aclose()
    return closed, half, idle * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--reuse-db", metavar="NAME", required=True, help="a loaded bench database")
    parser.add_argument("--users", type=int, default=200, help="customers (3 accounts each)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight, closed loop")
    parser.add_argument("--runs", type=int, default=2, help="repetitions (the spread is printed)")
    parser.add_argument("--ops", default="dashboard,charges36,statistics", help="comma-separated operations")
    parser.add_argument("--servers", default="kabinet,postgraphile", help="comma-separated servers")
    parser.add_argument("--server-cpu", default="0", help="the core both servers are pinned to")
    parser.add_argument("--client-cpu", default="1", help="the core(s) this load generator uses")
    parser.add_argument("--no-count", action="store_true", help="skip counting SQL statements per request")
    parser.add_argument(
        "--no-suspend", action="store_true", help="leave the other server running while one is measured"
    )
    args = parser.parse_args()
    server_url, database_url, redis_url, today, customers, peers = await setup(
        args.reuse_db, args.users, args.client_cpu
    )
    database = args.reuse_db
    names = args.servers.split(",")
    selected = args.ops.split(",")
    env = {**server_env(database_url, redis_url), **VARIANTS["uncached"]}
    ports = {name: free_port() for name in names}
    running: dict[str, Servers] = {}
    if "kabinet" in names:
        running["kabinet"] = Servers(start_kabinet(env, ports["kabinet"], args.server_cpu))
    if "postgraphile" in names:
        running["postgraphile"] = Servers(
            start_postgraphile(database, ports["postgraphile"], args.server_cpu)
        )
    counting: dict[str, tuple[int, Servers]] = {}
    counter = StatementCounter(server_url, database)
    try:
        await asyncio.gather(*(wait_graphql(port) for port in ports.values()))
        if "kabinet" in names:
            await global_ids(ports["kabinet"], customers)
        else:  # node(id:) needs Kabinet's IDs; PostGraphile's ops use row ids
            for c in customers:
                c.accounts = [str(i) for i in peers[c.user_id].account_ids]
        ops = make_ops(today, peers)
        sql: dict[tuple[str, str], str] = {}
        count_url = None if args.no_count else await counter.setup()
        if count_url:
            count_role = count_url.split("://", 1)[1].split("@", 1)[0]
            for name in names:
                port = free_port()
                if name == "kabinet":
                    count_env = {**server_env(count_url, redis_url), **VARIANTS["uncached"]}
                    popen = start_kabinet(count_env, port, args.server_cpu)
                else:
                    popen = start_postgraphile(database, port, args.server_cpu, user=count_role)
                counting[name] = (port, Servers(popen))
            await asyncio.gather(*(wait_graphql(port) for port, _ in counting.values()))
            for name in names:
                for op_name in selected:
                    counted = await count_statements(
                        counter, counting[name][0], ops[op_name][name], customers
                    )
                    sql[(name, op_name)] = counted
            for _, found in counting.values():
                found.stop()
            counting.clear()
            await counter.reset()
        print(
            f"database               {database}; {len(customers)} customers with 3 accounts; "
            f"servers pinned to CPU {args.server_cpu}, this client to CPU {args.client_cpu}; "
            f"{os.cpu_count()} CPUs; "
            f"concurrency {args.concurrency}; {args.duration:.0f} s per phase",
            flush=True,
        )
        if sql:
            for (name, op_name), counted in sql.items():
                print(f"SQL per request        {name:<13} {op_name:<10} {counted} (all, w/o BEGIN/COMMIT)")
        print(HEADER, flush=True)
        results: dict[tuple[str, str], list[tuple[Phase, Phase]]] = {}
        for run in range(1, args.runs + 1):
            order = names if run % 2 else list(reversed(names))
            for op_name in selected:
                for name in order:
                    others = [servers for other, servers in running.items() if other != name]
                    with suspended([] if args.no_suspend else others):
                        closed, half, idle = await run_one(
                            ops[op_name][name], ports[name], running[name], customers, args, database, others
                        )
                    results.setdefault((name, op_name), []).append((closed, half))
                    errors = closed.result.errors + half.result.errors
                    print(
                        f"{run:>3} {name:<13} {op_name:<10} {closed.result.requests / closed.seconds:7.1f}"
                        f" {closed.server_ms:7.2f} {closed.db_ms:6.2f}"
                        f" {pct(half.result.latencies, 0.5):7.1f} {pct(half.result.latencies, 0.99):7.1f}"
                        f" {half.result.requests / half.seconds:8.1f} {idle:7.0f} {errors:6d}"
                        f" {os.getloadavg()[0]:8.2f}",
                        flush=True,
                    )
                    first = closed.result.first_error or half.result.first_error
                    if first:
                        print(f"    first error: {first}")
        print("\nsummary (mean, [min–max] over runs)")
        for op_name in selected:
            for name in names:
                found = results[(name, op_name)]
                rates = [c.result.requests / c.seconds for c, _ in found]
                cpu = [c.server_ms for c, _ in found]
                p99 = [pct(h.result.latencies, 0.99) for _, h in found]
                print(
                    f"{name:<13} {op_name:<10} req/s {statistics.mean(rates):7.1f}"
                    f" [{min(rates):.1f}–{max(rates):.1f}]"
                    f"  cpu ms/req {statistics.mean(cpu):6.2f} [{min(cpu):.2f}–{max(cpu):.2f}]"
                    f"  p99 @50% {statistics.mean(p99):7.1f} [{min(p99):.1f}–{max(p99):.1f}] ms"
                )
            if {"kabinet", "postgraphile"} <= set(names):
                ratios = [
                    (k.result.requests / k.seconds) / (p.result.requests / p.seconds)
                    for (k, _), (p, _) in zip(
                        results[("kabinet", op_name)], results[("postgraphile", op_name)], strict=True
                    )
                ]
                print(
                    f"{'Kabinet / PostGraphile':<24} {op_name:<10} req/s ratio "
                    + ", ".join(f"{r:.2f}" for r in ratios)
                    + " (per run)"
                )
    finally:
        for found in [*running.values(), *(s for _, s in counting.values())]:
            found.stop()
        with contextlib.suppress(Exception):
            await counter.reset()


if __name__ == "__main__":
    asyncio.run(main())
