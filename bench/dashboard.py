"""Benchmark of the read paths customers hit most (issue 10), against a raw-SQL baseline.

    python bench/dashboard.py --accounts 2000 --duration 10          # quick (~6 min)
    python bench/dashboard.py                                         # 100 000 accounts (~8 min to load)
    python bench/dashboard.py --reuse-db kabinet_bench_1234abcd       # skip creating and loading

Needs PostgreSQL and Redis: DATABASE_URL / REDIS_URL, or embedded ones when unset. Creates a database
(kept afterwards, printed, so `--reuse-db` can use it), loads the demo set with ``N`` synthetic accounts
and 36 months, starts Kabinet as production does (uvicorn, 2 workers, KABINET_ENV=production, scheduler
and outbox dispatcher off) and `bench/baseline.py` the same way, issues access tokens for customers with
exactly 3 accounts directly in the database, and drives each operation from an async httpx client:
closed-loop at saturation (``--concurrency`` in flight), then open-loop at 25 % and 50 % of that rate
(latency measured from the scheduled send time, so queueing counts). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import orjson
import psutil
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import demo
from app.db import Database, async_url
from models.accounts import UserAccount
from models.identity import User
from services.periods import allowed_range
from services.sessions import start_session

SECRET = secrets.token_urlsafe(48)  # production refuses placeholder-looking keys
MSK = ZoneInfo("Europe/Moscow")
COUNT_ROLE = "kabinet_bench_count"
REDIS_PREFIX = f"bench-{uuid.uuid4().hex[:8]}"
"""A fresh Redis namespace per run: result-cache entries of an earlier run are never read. (A server
started with KABINET_RESULT_CACHE=false does not bump cache versions on its writes, so entries written
before the uncached phase's writes would be stale for the next run within their TTL.)"""

DASHBOARD = """query Dashboard {
  accounts(first: 20) {
    totalCount
    pageInfo { hasNextPage }
    edges { node {
      id number address displayName
      balance { amount status label displayAmount billedPeriod suppliers { amount supplier { id name } } }
      readingWindow { isOpen opensOn closesOn daysUntilOpens daysUntilCloses }
      meters { id serial zoneScheme service { code name unit } lastReadings { zone period value } }
      charges { period total charges { zone volume rate amount recalculation total service { id name } } }
    } }
  }
}"""

CHARGES_36 = """query Charges($id: ID!, $from: YearMonth!, $to: YearMonth!) {
  node(id: $id) { ... on Account {
    charges(from: $from, to: $to) {
      period total
      charges { zone volume rate amount recalculation total service { id name } supplier { id name } }
    }
  } }
}"""

STATISTICS = """query Statistics($id: ID!, $from: YearMonth!, $to: YearMonth!) {
  node(id: $id) { ... on Account {
    consumption: statistics(filter: {kind: CONSUMPTION, from: $from, to: $to}) {
      zone service { id name } points { period value }
    }
    charges: statistics(filter: {kind: CHARGES, from: $from, to: $to}) {
      zone service { id name } points { period value }
    }
  } }
}"""

NOTIFICATIONS = """query Notifications {
  unreadNotificationCount
  notifications(first: 20) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id title body createdAt read category accountId } }
  }
}"""

READINGS_FORM = """query Form($id: ID!) {
  readingsForm(accountId: $id) {
    window { __typename }
    meters { meter { id decimals } zones { zone previous current } }
  }
}"""

SUBMIT = """mutation Submit($input: SubmitReadingsInput!) {
  submitReadings(input: $input) { submission { id } userErrors { code message } }
}"""

PAY = """mutation Pay($input: CreatePaymentInput!) {
  createPayment(input: $input) { payment { id } userErrors { code message } }
}"""


# --- data -------------------------------------------------------------------------------------------------


@dataclass
class Customer:
    user_id: int
    token: str
    accounts: list[str] = field(default_factory=list)  # global IDs
    suppliers: dict[str, list[str]] = field(default_factory=dict)  # account → supplier global IDs
    form: tuple[str, list[dict[str, Any]]] | None = None  # (account, meters) with an open window
    submissions: int = 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def admin_dsn(server_url: str, database: str = "postgres") -> str:
    url = make_url(async_url(server_url)).set(drivername="postgresql", database=database)
    return url.render_as_string(hide_password=False)


async def prepare_database(server_url: str, accounts: int, reuse: str | None, today: dt.date) -> str:
    """A database loaded with the demo set and ``accounts`` synthetic accounts; returns its asyncpg URL."""
    from migrations import runner

    name = reuse or f"kabinet_bench_{uuid.uuid4().hex[:8]}"
    url = make_url(async_url(server_url)).set(database=name).render_as_string(hide_password=False)
    if reuse:
        print(f"database               {name} (reused)", flush=True)
        return url
    connection = await asyncpg.connect(admin_dsn(server_url))
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    await asyncio.to_thread(runner.upgrade, url)
    started = time.monotonic()
    db = Database(url, pool_size=4)
    counts = await demo.load(db, extra_accounts=accounts, months=36, today=today)
    await db.dispose()
    connection = await asyncpg.connect(admin_dsn(server_url, name))
    await connection.execute("VACUUM ANALYZE")
    await connection.close()
    print(
        f"database               {name}: {counts.get('synthetic_accounts_total')} synthetic accounts, "
        f"loaded in {time.monotonic() - started:.0f} s (reuse with --reuse-db {name})",
        flush=True,
    )
    return url


async def issue_tokens(url: str, users: int) -> list[Customer]:
    """Access tokens (sessions started in the database, no login requests) of customers with 3 accounts."""
    db = Database(url, pool_size=2)
    now = dt.datetime.now(dt.UTC)
    out: list[Customer] = []
    async with db.session() as session:
        three = select(UserAccount.user_id).group_by(UserAccount.user_id).having(func.count() == 3)
        query = (
            select(User)
            .where(User.id.in_(three), User.phone.like("+795%"))  # synthetic customers only
            .order_by(User.id)
            .limit(users)
        )
        for user in (await session.execute(query)).scalars():
            tokens = await start_session(session, SECRET, user, now=now)
            out.append(Customer(user.id, tokens.access_token))
        await session.commit()
    await db.dispose()
    return out


# --- servers ----------------------------------------------------------------------------------------------


def server_env(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "KABINET_REDIS_PREFIX": REDIS_PREFIX,
        "KABINET_SECRET_KEY": SECRET,
        "KABINET_ENV": "production",
        "KABINET_SCHEDULER_ENABLED": "false",
        "KABINET_OUTBOX_DISPATCH": "false",
        "KABINET_DB_POOL_SIZE": "10",
        "KABINET_LOG_LEVEL": "WARNING",
        # what production requires to start (app/config_check.py); nothing is sent: the dispatcher is off,
        # and the sandbox acquirer serves the createPayment operation as on a staging stand
        "KABINET_SANDBOX_IN_PRODUCTION": "true",
        "KABINET_SMTP_HOST": "127.0.0.1",
        "KABINET_SMS_GATEWAY_URL": "http://127.0.0.1:9/sms",
    }


KABINET_APP = ["app.main:app_from_env", "--factory"]
BASELINE_APP = ["bench.baseline:app"]


def start(app: list[str], env: dict[str, str], port: int, workers: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "app.workers", *app, "--host", "127.0.0.1", "--port", str(port)),
            *("--workers", str(workers), "--log-level", "warning"),
        ],
        env=env,
        cwd=str(ROOT),
    )


async def wait_healthy(port: int) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start")


class Servers:
    """The processes of one server (uvicorn supervisor and workers): CPU time and peak RSS."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.peak_rss: dict[int, float] = {}

    def processes(self) -> list[psutil.Process]:
        root = psutil.Process(self.popen.pid)
        return [root, *root.children(recursive=True)]

    def cpu(self) -> float:
        total = 0.0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def sample_rss(self) -> None:
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                rss = proc.memory_info().rss / 2**20
                self.peak_rss[proc.pid] = max(self.peak_rss.get(proc.pid, 0.0), rss)

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(20)
        except subprocess.TimeoutExpired:
            self.popen.kill()


# --- operations -------------------------------------------------------------------------------------------


@dataclass
class Op:
    name: str
    build: Any  # (customer, rng) -> (path, body), or None when the customer cannot do it
    write: bool = False


def gql(query: str, **variables: Any) -> tuple[str, bytes]:
    return "/graphql", orjson.dumps({"query": query, "variables": variables})


def make_ops(today: dt.date, payments: bool) -> dict[str, Op]:
    allowed = allowed_range(today)
    months = {"from": f"{allowed.start:%Y-%m}", "to": f"{allowed.end:%Y-%m}"}  # D8: the longest range

    def dashboard(c: Customer, rng: random.Random) -> tuple[str, bytes]:
        return gql(DASHBOARD)

    def charges(c: Customer, rng: random.Random) -> tuple[str, bytes]:
        return gql(CHARGES_36, id=rng.choice(c.accounts), **months)

    def statistics(c: Customer, rng: random.Random) -> tuple[str, bytes]:
        return gql(STATISTICS, id=rng.choice(c.accounts), **months)

    def notifications(c: Customer, rng: random.Random) -> tuple[str, bytes]:
        return gql(NOTIFICATIONS)

    def submit(c: Customer, rng: random.Random) -> tuple[str, bytes] | None:
        if c.form is None:
            return None
        account, meters = c.form
        c.submissions += 1  # each submission a little higher: replaces the previous one of the window
        values = [
            {
                "meterId": m["id"],
                "values": [{"zone": z, "value": str(base + c.submissions)} for z, base in m["zones"]],
            }
            for m in meters
        ]
        return gql(SUBMIT, input={"accountId": account, "meters": values, "idempotencyKey": uuid.uuid4().hex})

    def pay(c: Customer, rng: random.Random) -> tuple[str, bytes] | None:
        account = rng.choice(c.accounts)
        suppliers = c.suppliers.get(account)
        if not suppliers:
            return None
        payment = {
            "accountId": account,
            "lines": [{"supplierId": suppliers[0], "amount": "100.00"}],
            "method": "CARD",
            "acceptRules": True,
            "idempotencyKey": uuid.uuid4().hex,
        }
        return gql(PAY, input=payment)

    writes = [submit, pay] if payments else [submit]

    def mix(c: Customer, rng: random.Random) -> tuple[str, bytes] | None:
        # 90 % reads (dashboard 50 %, charges 15 %, statistics 15 %, notifications 10 %), 10 % writes.
        roll = rng.random()
        if roll < 0.10:
            return rng.choice(writes)(c, rng)
        if roll < 0.60:
            return dashboard(c, rng)
        if roll < 0.75:
            return charges(c, rng)
        if roll < 0.90:
            return statistics(c, rng)
        return notifications(c, rng)

    ops = {
        "dashboard": Op("dashboard", dashboard),
        "charges36": Op("charges36", charges),
        "statistics": Op("statistics", statistics),
        "notifications": Op("notifications", notifications),
        "submitReadings": Op("submitReadings", submit, write=True),
    }
    if payments:
        ops["createPayment"] = Op("createPayment", pay, write=True)
    ops["mix90/10"] = Op("mix90/10", mix, write=True)
    return ops


def baseline_op() -> Op:
    return Op("dashboard@baseline", lambda c, rng: ("/dashboard", b""))


async def call(client: httpx.AsyncClient, c: Customer, path: str, body: bytes) -> dict[str, Any]:
    response = await client.post(
        path, content=body, headers={"authorization": f"Bearer {c.token}", "content-type": "application/json"}
    )
    response.raise_for_status()
    return orjson.loads(response.content)  # type: ignore[no-any-return]


def next_value(zone: dict[str, Any]) -> int:
    """An integer above both the previous and the already submitted value of a zone."""
    return int(max(float(zone["current"] or 0), float(zone["previous"] or 0))) + 1


async def prepare_customers(client: httpx.AsyncClient, customers: list[Customer], today: dt.date) -> bool:
    """Learn each customer's accounts, suppliers and an open reading form; whether payments work here."""
    for c in customers:
        data = (await call(client, c, *gql(DASHBOARD)))["data"]
        for edge in data["accounts"]["edges"]:
            node = edge["node"]
            c.accounts.append(node["id"])
            c.suppliers[node["id"]] = [s["supplier"]["id"] for s in node["balance"]["suppliers"]]
            if c.form is None and node["readingWindow"]["isOpen"]:
                form = (await call(client, c, *gql(READINGS_FORM, id=node["id"])))["data"]["readingsForm"]
                meters = [
                    {"id": m["meter"]["id"], "zones": [(z["zone"], next_value(z)) for z in m["zones"]]}
                    for m in form["meters"]
                ]
                if meters:
                    c.form = (node["id"], meters)
    c = customers[0]  # does the payments mutation exist and work here?
    try:
        result = await call(client, c, *make_ops(today, True)["createPayment"].build(c, random.Random(0)))
    except httpx.HTTPError as error:
        print(f"createPayment          unavailable ({error}); write mix is readings only", flush=True)
        return False
    errors = result.get("errors") or (result.get("data") or {}).get("createPayment", {}).get("userErrors")
    if errors:
        print(f"createPayment          refused ({str(errors)[:200]}); write mix is readings only", flush=True)
        return False
    return True


# --- load -------------------------------------------------------------------------------------------------


@dataclass
class Result:
    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    first_error: str | None = None


async def one(
    client: httpx.AsyncClient, op: Op, c: Customer, rng: random.Random, result: Result, t0: float
) -> None:
    """Send one request of ``op``; its latency counts from ``t0`` (the scheduled time in open loop)."""
    built = op.build(c, rng) or gql(DASHBOARD)  # a customer with nothing to write reads instead (rare)
    path, body = built
    try:
        response = await client.post(
            path,
            content=body,
            headers={"authorization": f"Bearer {c.token}", "content-type": "application/json"},
        )
        ok = response.status_code == 200 and (path != "/graphql" or b'"errors"' not in response.content)
        if ok and op.write and b'"userErrors":[{' in response.content:
            ok = False
        if not ok and result.first_error is None:
            result.first_error = f"{response.status_code} {response.content[:300]!r}"
    except httpx.HTTPError as error:
        ok = False
        if result.first_error is None:
            result.first_error = repr(error)
    result.requests += 1
    result.errors += 0 if ok else 1
    result.latencies.append((time.perf_counter() - t0) * 1000)


async def closed_loop(
    clients: list[httpx.AsyncClient], op: Op, customers: list[Customer], concurrency: int, duration: float
) -> tuple[Result, float]:
    """``concurrency`` requests in flight for ``duration`` seconds (saturation)."""
    result = Result()
    deadline = time.perf_counter() + duration

    async def worker(n: int) -> None:
        rng = random.Random(n)
        client = clients[n % len(clients)]
        while time.perf_counter() < deadline:
            await one(client, op, rng.choice(customers), rng, result, time.perf_counter())

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return result, time.perf_counter() - started


async def open_loop(
    clients: list[httpx.AsyncClient], op: Op, customers: list[Customer], rate: float, duration: float
) -> tuple[Result, float]:
    """Requests sent at ``rate`` per second whatever the answers (no coordinated omission), round-robin
    over ``clients`` — many customers' browsers, each with its own keep-alive connection(s). (One shared
    httpx pool reuses its first idle connection, so at low rates nearly every request went over the
    same one or two connections to the same worker: that measured the client's pooling, not the
    server.)"""
    result = Result()
    rng = random.Random(1)
    tasks: set[asyncio.Task[None]] = set()
    started = time.perf_counter()
    for n in range(max(1, int(rate * duration))):
        due = started + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        client = clients[n % len(clients)]
        task = asyncio.create_task(one(client, op, rng.choice(customers), rng, result, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    return result, time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def backend_cpu(database: str) -> dict[int, float]:
    """CPU seconds of the PostgreSQL backends connected to ``database`` (a server on this machine)."""
    found: dict[int, float] = {}
    for proc in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["name"] == "postgres" and f" {database} " in " ".join(proc.info["cmdline"] or ()):
                times = proc.cpu_times()
                found[proc.pid] = times.user + times.system
    return found


@dataclass
class Phase:
    result: Result
    seconds: float
    server_ms: float  # the server's CPU per request
    db_ms: float  # PostgreSQL backends' CPU per request
    client_pct: float  # this load generator's CPU, % of one core
    host_pct: float  # the whole machine's CPU, % of all cores


async def measure(run: Any, servers: Servers, database: str) -> Phase:
    """Run one phase, sampling the servers' RSS; CPU deltas of server, PostgreSQL, client and host."""
    me = psutil.Process()
    cpu0, mine0, db0 = servers.cpu(), me.cpu_times(), backend_cpu(database)
    psutil.cpu_percent(None)
    stop = asyncio.Event()

    async def sampler() -> None:
        while not stop.is_set():
            servers.sample_rss()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)

    sampling = asyncio.create_task(sampler())
    # This load generator's own garbage collector stays off during a phase: its full collections (httpx
    # leaves a reference cycle per response) took ~80 ms, and every request in flight then — of whichever
    # server — showed them as latency: p99 at 50 % of saturation of 90–100 ms for both Kabinet and
    # PostGraphile, 10–16 ms for Kabinet without them (issue 21, bench/README.md, session 9).
    gc.collect()
    gc.disable()
    try:
        result, seconds = await run
    finally:
        gc.enable()
    stop.set()
    await sampling
    host = psutil.cpu_percent(None)
    cpu1, mine1, db1 = servers.cpu(), me.cpu_times(), backend_cpu(database)
    requests = max(1, result.requests)
    return Phase(
        result,
        seconds,
        (cpu1 - cpu0) * 1000 / requests,
        sum(value - db0.get(pid, 0.0) for pid, value in db1.items()) * 1000 / requests,
        ((mine1.user + mine1.system) - (mine0.user + mine0.system)) / seconds * 100,
        host,
    )


# --- SQL statements counted at PostgreSQL ------------------------------------------------------------------


class StatementCounter:
    """Counts statements in PostgreSQL's own log: a separate role whose sessions in this database have
    ``log_statement = all``, used only by one-worker counting servers; the log is read back through
    ``pg_read_file`` (superuser). pg_stat_statements is not in shared_preload_libraries here."""

    def __init__(self, server_url: str, database: str) -> None:
        self.server_url, self.database = server_url, database
        self.log_path: str | None = None

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(admin_dsn(self.server_url, self.database))

    async def setup(self) -> str | None:
        """Create the role; returns the counting servers' database URL, or None when logs are unreadable."""
        connection = await self._connect()
        try:
            path = await connection.fetchval("SELECT pg_current_logfile()")
            if path is None:
                major = (await connection.fetchval("SHOW server_version")).split(".")[0]
                path = f"/var/log/postgresql/postgresql-{major}-main.log"
            try:
                await connection.fetchval("SELECT (pg_stat_file($1)).size", path)
            except asyncpg.PostgresError:
                return None
            self.log_path = path
            if not await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", COUNT_ROLE):
                await connection.execute(f"CREATE ROLE {COUNT_ROLE} LOGIN")
                await connection.execute(f"GRANT postgres TO {COUNT_ROLE}")
            await connection.execute(
                f"ALTER ROLE {COUNT_ROLE} IN DATABASE \"{self.database}\" SET log_statement = 'all'"
            )
        finally:
            await connection.close()
        url = make_url(async_url(self.server_url)).set(
            database=self.database, username=COUNT_ROLE, password=None
        )
        return url.render_as_string(hide_password=False)

    async def reset(self) -> None:
        connection = await self._connect()
        try:
            await connection.execute(f'ALTER ROLE {COUNT_ROLE} IN DATABASE "{self.database}" RESET ALL')
        finally:
            await connection.close()

    async def size(self) -> int:
        connection = await self._connect()
        try:
            return int(await connection.fetchval("SELECT (pg_stat_file($1)).size", self.log_path))
        finally:
            await connection.close()

    async def count_since(self, offset: int) -> tuple[int, int]:
        """(statements, of which BEGIN/COMMIT/ROLLBACK) logged by the counting role since ``offset``."""
        await asyncio.sleep(0.3)
        connection = await self._connect()
        try:
            end = int(await connection.fetchval("SELECT (pg_stat_file($1)).size", self.log_path))
            text = await connection.fetchval(
                "SELECT pg_read_file($1, $2, $3)", self.log_path, offset, end - offset
            )
        finally:
            await connection.close()
        tag = f" {COUNT_ROLE}@{self.database} "
        total = control = 0
        for line in text.splitlines():
            if tag not in line:
                continue
            _, sep, rest = line.partition("LOG:  ")
            if not sep or not (rest.startswith("statement: ") or rest.startswith("execute ")):
                continue
            total += 1
            if rest.split(": ", 1)[1].strip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
                control += 1
        return total, control


async def count_statements(
    counter: StatementCounter, port: int, op: Op, customers: list[Customer], n: int = 10
) -> str:
    """Statements per request of ``op`` on a counting server: ``n`` warm-up requests, then ``n`` counted."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        rng = random.Random(7)
        for c in customers[:n]:  # warm the pool and the prepared statements
            await one(client, op, c, rng, Result(), time.perf_counter())
        offset = await counter.size()
        result = Result()
        for c in customers[n : 2 * n] or customers[:n]:
            await one(client, op, c, rng, result, time.perf_counter())
        total, control = await counter.count_since(offset)
    requests = max(1, result.requests)
    return f"{total / requests:.1f} ({(total - control) / requests:.1f})"


# --- profile ----------------------------------------------------------------------------------------------


def profile_dashboard(database_url: str, redis_url: str, token: str, repeat: int = 50) -> str:
    """cProfile of ``repeat`` dashboard requests served in a fresh process (ASGI in process, no sockets)."""
    code = f"""
import asyncio, cProfile, io, os, pstats, time, httpx
os.environ.update({dict(server_env(database_url, redis_url), **VARIANTS["uncached"])!r})
from app.main import app_from_env
async def main():
    app = app_from_env()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            headers = {{"authorization": "Bearer {token}"}}
            for _ in range(10):
                await client.post("/graphql", json={{"query": {DASHBOARD!r}}}, headers=headers)
            cpu = time.process_time()
            for _ in range({repeat}):
                await client.post("/graphql", json={{"query": {DASHBOARD!r}}}, headers=headers)
            print(f"unprofiled: {{(time.process_time() - cpu) * 1000 / {repeat}:.1f}} ms CPU per dashboard "
                  "(client and server in one process)")
            profile = cProfile.Profile()
            profile.enable()
            for _ in range({repeat}):
                await client.post("/graphql", json={{"query": {DASHBOARD!r}}}, headers=headers)
            profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(45)
    print(out.getvalue())
asyncio.run(main())
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT), timeout=600
    )
    return done.stdout + done.stderr[-3000:]


# --- main -------------------------------------------------------------------------------------------------


HEADER = (
    f"{'operation':<19} {'mode':<13} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms':>7} {'db ms':>6}"
    f" {'client':>7} {'host':>6} {'errors':>6}  SQL/request (all, w/o BEGIN/COMMIT)"
)


def row(name: str, mode: str, phase: Phase, sql: str) -> str:
    result = phase.result
    return (
        f"{name:<19} {mode:<13} {result.requests / phase.seconds:8.1f} {pct(result.latencies, 0.5):8.1f}"
        f" {pct(result.latencies, 0.99):8.1f} {phase.server_ms:7.2f} {phase.db_ms:6.2f}"
        f" {phase.client_pct:6.0f}% {phase.host_pct:5.0f}% {result.errors:6d}  {sql}"
    )


async def run_op(
    op: Op,
    port: int,
    servers: Servers,
    customers: list[Customer],
    args: argparse.Namespace,
    sql: str,
    database: str,
) -> float:
    """Closed loop at saturation, then open loop at 25 % and 50 % of it, ``--runs`` times; returns the
    mean saturation rate. With more than one run it prints the run-to-run spread (min–max) and the load
    average: on a shared machine the rate a run finds at saturation is only what the box gave it then,
    and an open loop at 50 % of a calm run's rate is over capacity in a busy one (issue 21)."""
    rates: list[float] = []
    cpus: list[float] = []
    p99s: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60)
            )
            for _ in range(args.concurrency)
        ]
        await closed_loop(clients, op, customers, args.concurrency, min(2.0, args.duration))  # warm-up
        for _ in range(args.runs):
            phase = await measure(
                closed_loop(clients, op, customers, args.concurrency, args.duration), servers, database
            )
            saturation = phase.result.requests / phase.seconds
            rates.append(saturation)
            cpus.append(phase.server_ms)
            print(row(op.name, f"closed c={args.concurrency}", phase, sql), flush=True)
            if phase.result.first_error:
                print(f"    first error: {phase.result.first_error}", flush=True)
            for share in (0.25, 0.5):
                rate = max(1.0, saturation * share)
                loop = open_loop(clients, op, customers, rate, args.duration)
                phase = await measure(loop, servers, database)
                print(row(op.name, f"open {share:.0%}", phase, ""), flush=True)
                if phase.result.first_error:
                    print(f"    first error: {phase.result.first_error}", flush=True)
            p99s.append(pct(phase.result.latencies, 0.99))
    if args.runs > 1:
        print(
            f"{op.name:<19} spread over {args.runs} runs: req/s {min(rates):.1f}–{max(rates):.1f}, "
            f"cpu ms {min(cpus):.2f}–{max(cpus):.2f}, p99 at 50 % {min(p99s):.1f}–{max(p99s):.1f} ms; "
            f"load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    return sum(rates) / len(rates)


SCRAPED = (
    "kabinet_graphql_requests_total",
    "kabinet_graphql_request_duration_seconds_count",
    "kabinet_graphql_request_duration_seconds_sum",
    "kabinet_result_cache_lookups_total",
    "kabinet_fast_executor_queries_total",
    "kabinet_db_pool_checked_out",
    "kabinet_db_pool_size",
    "kabinet_websockets_open",
    "kabinet_outbox_pending_messages",
)


async def print_metrics(port: int) -> None:
    """Scrape the server's /metrics port (app/metrics.py, all workers merged) and print the figures the
    operators watch, summed over labels other than the outcome/result/path."""
    async with httpx.AsyncClient(timeout=30) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(SCRAPED):
            continue
        series, _, value = line.rpartition(" ")
        name, _, labels = series.partition("{")
        wanted = {"outcome", "result", "path"}
        kept = ",".join(part for part in labels.rstrip("}").split(",") if part.split("=")[0] in wanted)
        key = f"{name}{{{kept}}}" if kept else name
        totals[key] = totals.get(key, 0.0) + float(value)
    print("/metrics (scraped after the runs above)")
    for key, value in sorted(totals.items()):
        print(f"    {key:<70} {value:14.3f}")


def flatten(value: Any, path: str = "") -> Any:
    """(path, leaf) pairs of a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flatten(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from flatten(item, f"{path}[{index}]")
    else:
        yield path, value


async def check_baseline(kabinet_port: int, baseline_port: int, customers: list[Customer]) -> None:
    """The baseline must answer Kabinet's `data`, byte for byte once keys are sorted."""
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{kabinet_port}", timeout=60) as ours,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{baseline_port}", timeout=60) as theirs,
    ):
        checked = customers[:20]
        same, size = 0, 0
        for c in checked:
            answer = await call(ours, c, *gql(DASHBOARD))
            a = orjson.dumps(answer.get("data"), option=orjson.OPT_SORT_KEYS)
            b = orjson.dumps(await call(theirs, c, "/dashboard", b""), option=orjson.OPT_SORT_KEYS)
            size = len(orjson.dumps(answer.get("data")))
            if a == b and "errors" not in answer:
                same += 1
            elif len(checked) - same <= 2:
                ours_flat, theirs_flat = dict(flatten(answer.get("data"))), dict(flatten(orjson.loads(b)))
                paths = sorted(
                    p for p in {*ours_flat, *theirs_flat} if ours_flat.get(p) != theirs_flat.get(p)
                )
                print(
                    f"MISMATCH for user {c.user_id}: "
                    + "; ".join(
                        f"{p}: Kabinet {ours_flat.get(p)!r}, baseline {theirs_flat.get(p)!r}"
                        for p in paths[:6]
                    )
                )
        print(
            f"baseline check         {same}/{len(checked)} dashboards identical ({size} bytes of JSON each)"
        )
        if same != len(checked):
            raise SystemExit("the baseline does not return Kabinet's data: the comparison would be dishonest")


VARIANTS = {"cached": {}, "uncached": {"KABINET_RESULT_CACHE": "false"}}
"""Kabinet with its per-user result cache (the production default) and without it."""


def otlp_sink() -> str:
    """A local OTLP/HTTP endpoint that accepts and drops every export (``--tracing``): the servers pay for
    creating, batching, encoding and posting spans, as with a real collector; the sink's own CPU is this
    client's. Returns its traces URL."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1/traces"


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=100_000, help="synthetic accounts to load")
    parser.add_argument("--reuse-db", metavar="NAME", help="use this already loaded database")
    parser.add_argument("--users", type=int, default=500, help="customers (3 accounts each) to log in")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight, closed loop")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers per server")
    parser.add_argument("--ops", default="", help="comma-separated subset of operations")
    parser.add_argument(
        "--cache", choices=["both", "cached", "uncached"], default="both", help="Kabinet's result cache"
    )
    parser.add_argument("--runs", type=int, default=1, help="repeat each operation's phases (prints spread)")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile of the dashboard")
    parser.add_argument(
        "--tracing", action="store_true", help="Kabinet exports OTLP traces (to a local sink that drops them)"
    )
    parser.add_argument(
        "--metrics", action="store_true", help="scrape each Kabinet server's /metrics port after its runs"
    )
    args = parser.parse_args()

    today = dt.datetime.now(MSK).date()
    with tempfile.TemporaryDirectory() as scratch:
        server_url = os.environ.get("DATABASE_URL")
        if not server_url:
            from app.embedded import embedded_postgres_url

            server_url = embedded_postgres_url(Path(scratch) / "pg", database="postgres", keep=False)
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url:
            from app.embedded import embedded_redis_url

            redis_url = embedded_redis_url(Path(scratch) / "redis")

        database_url = await prepare_database(server_url, args.accounts, args.reuse_db, today)
        database = make_url(database_url).database
        assert database is not None
        customers = await issue_tokens(database_url, args.users)
        print(f"customers              {len(customers)} with 3 accounts each, tokens issued in the database")
        if not customers:
            raise SystemExit("no customer with 3 accounts: load more accounts")

        variants = list(VARIANTS) if args.cache == "both" else [args.cache]
        env = server_env(database_url, redis_url)
        if args.tracing:
            tracing_env = {"KABINET_OTLP_ENDPOINT": otlp_sink()}
            print(f"tracing                on, OTLP/HTTP to {tracing_env['KABINET_OTLP_ENDPOINT']} (dropped)")
            for variant in VARIANTS.values():
                variant.update(tracing_env)
        counter = StatementCounter(server_url, database)
        count_url = await counter.setup()
        ports: dict[str, int] = {}
        metrics_ports: dict[str, int] = {}
        servers: dict[str, Servers] = {}
        counting: dict[str, tuple[int, Servers]] = {}
        for name in [*variants, "baseline"]:
            app = BASELINE_APP if name == "baseline" else KABINET_APP
            extra = VARIANTS.get(name, {})
            ports[name] = free_port()
            scraped = {}
            if args.metrics and name != "baseline":
                metrics_ports[name] = free_port()
                scraped = {"KABINET_METRICS_PORT": str(metrics_ports[name])}
            servers[name] = Servers(start(app, {**env, **extra, **scraped}, ports[name], args.workers))
            if count_url:
                port = free_port()
                counting[name] = (
                    port,
                    Servers(start(app, {**server_env(count_url, redis_url), **extra}, port, 1)),
                )
        try:
            await asyncio.gather(
                *(wait_healthy(port) for port in [*ports.values(), *(port for port, _ in counting.values())])
            )
            print(
                "servers                "
                + ", ".join(f"{name} :{port}" for name, port in ports.items())
                + f"; {args.workers} uvicorn workers each; {os.cpu_count()} CPUs shared with PostgreSQL, "
                "Redis and this client",
                flush=True,
            )
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{ports[variants[0]]}", timeout=60
            ) as client:
                payments = await prepare_customers(client, customers, today)
            writers = sum(1 for c in customers if c.form)
            print(f"readings targets       {writers} customers have an account with an open window")
            for name in variants:
                print(f"[{name}] ", end="")
                await check_baseline(ports[name], ports["baseline"], customers)

            ops = make_ops(today, payments)
            selected = args.ops.split(",") if args.ops else list(ops)
            saturation: dict[str, float] = {}
            for variant in variants:
                sql_of = {name: "n/a" for name in selected}
                if count_url:
                    for name in selected:
                        sql_of[name] = await count_statements(
                            counter, counting[variant][0], ops[name], customers
                        )
                print(f"\nKabinet, result cache {'on' if variant == 'cached' else 'off'}")
                print(HEADER)
                for name in selected:
                    saturation[f"{name} {variant}"] = await run_op(
                        ops[name], ports[variant], servers[variant], customers, args, sql_of[name], database
                    )
                if variant in metrics_ports:
                    await print_metrics(metrics_ports[variant])
            base_sql = (
                await count_statements(counter, counting["baseline"][0], baseline_op(), customers)
                if count_url
                else "n/a"
            )
            print("\nBaseline (bench/baseline.py)")
            print(HEADER)
            saturation["baseline"] = await run_op(
                baseline_op(), ports["baseline"], servers["baseline"], customers, args, base_sql, database
            )
            print()
            for variant in variants:
                if f"dashboard {variant}" in saturation:
                    ours, theirs = saturation[f"dashboard {variant}"], saturation["baseline"]
                    print(
                        f"dashboard Kabinet ({variant}) / baseline   {ours / theirs:.3f} "
                        f"({ours:.0f} / {theirs:.0f} req/s at saturation)"
                    )
            for name, found in servers.items():
                peaks = sorted(found.peak_rss.values(), reverse=True)
                print(f"peak RSS {name:<21} " + ", ".join(f"{mb:.0f} MB" for mb in peaks) + " (per process)")
            if payments:
                print("write mix              submitReadings and createPayment, half each")
            else:
                print("write mix              readings only (payments mutation unavailable)")
        finally:
            for found in [*servers.values(), *(proc for _, proc in counting.values())]:
                found.stop()
            if count_url:
                await counter.reset()
        if not args.no_profile:
            print(
                "\ncProfile of 50 dashboard requests in one process, result cache off "
                "(tottime, then cumulative):",
                flush=True,
            )
            print(profile_dashboard(database_url, redis_url, customers[0].token))


if __name__ == "__main__":
    asyncio.run(main())
