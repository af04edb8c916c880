"""Benchmark: N websocket subscribers across 2 Kabinet processes, M notifications per user.

    python bench/subscriptions.py --subscribers 10000 --users 100 --notifications 5

Needs PostgreSQL and Redis: DATABASE_URL / REDIS_URL, or embedded ones when unset. It creates its own
database, starts two `uvicorn` processes sharing it and Redis, and client processes (one per 5,000
sockets, so no process runs out of file descriptors) that open N graphql-transport-ws connections
(alternating between the servers, `users` distinct logins): first every socket connects and is
acknowledged, then every socket subscribes. This (producer) process then commits M notifications per
user at `--rate` per second and measures, per delivered event, the time from COMMIT to arrival at the
client (one monotonic clock for every process of the machine). A client whose socket closes reconnects
and resumes from its last cursor, as real clients do.

Prints: deliveries expected / received, lost, duplicated, latency p50/p99 commit → client, server RSS
(idle, with N sockets, with N subscriptions, after delivery), memory per socket and per subscription,
the connect and subscribe rates, reconnects, and the load average of the machine before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import gc
import json
import os
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import websockets
from sqlalchemy import insert, select
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.db import Database, async_url
from models.identity import User
from models.notifications import NotificationCategory
from services.notifications import notify
from services.passwords import hash_password
from services.sessions import start_session

PREFIX = f"bench-ws-{uuid.uuid4().hex[:8]}"  # Redis prefix of this run (others may share Redis)
SECRET = secrets.token_urlsafe(48)  # production refuses placeholder-looking keys
STREAM = "subscription { notifications { cursor notification { id title } } }"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def prepare_database(server_url: str, users: int) -> tuple[str, list[tuple[int, str]]]:
    """A fresh migrated database with ``users`` customers; returns its URL and (user id, token) pairs."""
    from migrations import runner

    name = f"kabinet_bench_ws_{uuid.uuid4().hex[:8]}"
    admin = make_url(async_url(server_url)).set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    url = make_url(async_url(server_url)).set(database=name).render_as_string(hide_password=False)
    await asyncio.to_thread(runner.upgrade, url)
    db = Database(url, pool_size=2)
    password = hash_password("Bench#2026")
    now = dt.datetime.now(dt.UTC)
    async with db.session() as session:
        await session.execute(
            insert(User),
            [
                {
                    "phone": f"+7999{n:07d}",
                    "last_name": "Тестов",
                    "first_name": f"Пользователь{n}",
                    "password_hash": password,
                    "role": "CUSTOMER",
                }
                for n in range(users)
            ],
        )
        rows = (await session.execute(select(User).order_by(User.id))).scalars().all()
        tokens = [
            (user.id, (await start_session(session, SECRET, user, now=now)).access_token) for user in rows
        ]
        await session.commit()
    await db.dispose()
    return url, tokens


def start_server(
    database_url: str,
    redis_url: str,
    port: int,
    metrics_port: int,
    ws: str | None = None,
    deflate: bool = False,
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "KABINET_REDIS_PREFIX": PREFIX,
        "KABINET_SECRET_KEY": SECRET,
        "KABINET_ENV": "production",
        "KABINET_SCHEDULER_ENABLED": "false",
        "KABINET_OUTBOX_DISPATCH": "false",
        "KABINET_DB_POOL_SIZE": "10",
        "KABINET_METRICS_PORT": str(metrics_port),
        "KABINET_LOG_LEVEL": "WARNING",
        # every client of the benchmark comes from 127.0.0.1; real ones come from many addresses
        "KABINET_MAX_SOCKETS_PER_ADDRESS": "1000000",
        "KABINET_SANDBOX_IN_PRODUCTION": "true",  # nothing is paid here; production refuses it otherwise
        "KABINET_SMTP_HOST": "127.0.0.1",
        "KABINET_SMS_GATEWAY_URL": "http://127.0.0.1:9/sms",
    }
    # what `kabinet serve` runs (app/workers.py applies the production websocket options), one process each
    command = [sys.executable, "-m", "app.workers", "app.main:app_from_env", "--factory", "--workers", "1"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    if ws:  # else production's (app/workers.py WEBSOCKET_OPTIONS)
        command += ["--ws", ws]
    if deflate:
        command.append("--ws-per-message-deflate")
    return subprocess.Popen(
        command,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
    )


async def wait_healthy(port: int, seconds: float = 180.0) -> None:
    deadline = time.monotonic() + seconds  # a loaded machine imports the app slowly
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"server on {port} did not start")


CLIENTS_PER_PROCESS = 5000


async def live_subscriptions(metrics_ports: list[int]) -> int:
    """Subscriptions the servers run (``kabinet_subscriptions_active``): a client cannot see when its
    subscribe took effect (graphql-transport-ws has no acknowledgement), the servers can."""
    total = 0
    async with httpx.AsyncClient(timeout=30) as client:
        for port in metrics_ports:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            for line in text.splitlines():
                if line.startswith("kabinet_subscriptions_active "):
                    total += int(float(line.split()[1]))
    return total


class Client:
    """One subscriber: a websocket with the notifications subscription; reconnects from its cursor."""

    def __init__(self, port: int, user_id: int, token: str) -> None:
        self.port, self.user_id, self.token = port, user_id, token
        self.connected = asyncio.Event()
        self.subscribe_now = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.seen: list[tuple[int, float]] = []  # (notification id, arrival) in arrival order
        self.cursor: str | None = None
        self.reconnects = 0

    async def run(self) -> None:
        url = f"ws://127.0.0.1:{self.port}/graphql"
        while True:
            try:
                async with websockets.connect(
                    url,
                    subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                    open_timeout=120,
                    ping_interval=None,
                    max_queue=64,
                ) as socket_:
                    await socket_.send(
                        json.dumps({"type": "connection_init", "payload": {"token": self.token}})
                    )
                    assert json.loads(await socket_.recv())["type"] == "connection_ack"
                    self.connected.set()
                    await self.subscribe_now.wait()
                    variables = {"after": self.cursor} if self.cursor else {}
                    payload = {"query": STREAM, "variables": variables}
                    await socket_.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
                    self.subscribed.set()
                    async for raw in socket_:
                        message = json.loads(raw)
                        if message.get("type") == "next":
                            event = message["payload"]["data"]["notifications"]
                            pk = int(base64.b64decode(event["notification"]["id"]).decode().split(":")[1])
                            self.seen.append((pk, time.monotonic()))
                            self.cursor = event["cursor"]
            except asyncio.CancelledError:
                raise
            except Exception as error:  # closed by the server or the network: resume from the cursor
                if self.reconnects < 3:
                    print(f"client of user {self.user_id}: {error!r}; reconnecting", file=sys.stderr)
            self.reconnects += 1
            await asyncio.sleep(0.5)


async def client_worker() -> None:
    """A client process: reads its clients from stdin, answers each command of the producer on stdout."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**28)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(what: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(what) + "\n")
        sys.stdout.flush()

    setup = json.loads(await reader.readline())
    clients = [Client(port, user_id, token) for port, user_id, token in setup["clients"]]
    tasks: list[asyncio.Task[None]] = []
    started = time.monotonic()
    for batch in range(0, len(clients), 100):  # connect in waves, as real clients would
        wave = clients[batch : batch + 100]
        tasks += [asyncio.create_task(c.run()) for c in wave]
        await asyncio.gather(*(c.connected.wait() for c in wave))
    say({"connected": time.monotonic() - started})
    await reader.readline()  # "subscribe"
    started = time.monotonic()
    for client in clients:
        client.subscribe_now.set()
    await asyncio.gather(*(c.subscribed.wait() for c in clients))
    # Everything alive now (5,000 connections) lives until the end: exempt it from the collector, and do
    # not collect while measuring (this process is the instrument; what it allocates meanwhile is a few
    # MB). With the collector on, its full collections took 0.2–1.3 s each during delivery and its young
    # ones 0.1–0.2 s (gc.callbacks, 10,000 run): every frame waiting meanwhile counted as server latency.
    gc.collect()
    gc.freeze()
    gc.disable()
    say({"subscribed": time.monotonic() - started})
    finish = json.loads(await reader.readline())
    expected: dict[str, int] = finish["expected"]
    deadline = time.monotonic() + finish["wait"]
    while time.monotonic() < deadline and any(
        len({pk for pk, _ in c.seen}) < expected[str(c.user_id)] for c in clients
    ):
        await asyncio.sleep(0.2)
    held = sum(1 for task in tasks if not task.done())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    say(
        {
            "held": held,
            "reconnects": sum(c.reconnects for c in clients),
            "seen": [[c.user_id, c.seen] for c in clients],
        }
    )


class Workers:
    """The client processes, driven over their stdin/stdout."""

    def __init__(self, assignments: list[list[tuple[int, int, str]]]) -> None:
        self.processes = [
            subprocess.Popen(
                [sys.executable, __file__, "--client-worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in assignments
        ]
        for process, clients in zip(self.processes, assignments, strict=True):
            self.send(process, {"clients": clients})

    @staticmethod
    def send(process: subprocess.Popen[str], what: Any) -> None:
        assert process.stdin is not None
        process.stdin.write(json.dumps(what) + "\n")
        process.stdin.flush()

    async def answers(self) -> list[dict[str, Any]]:
        def read(process: subprocess.Popen[str]) -> dict[str, Any]:
            assert process.stdout is not None
            line = process.stdout.readline()
            if not line:
                raise RuntimeError("a client process died")
            return json.loads(line)  # type: ignore[no-any-return]

        return list(await asyncio.gather(*(asyncio.to_thread(read, p) for p in self.processes)))

    def tell_all(self, what: Any) -> None:
        for process in self.processes:
            self.send(process, what)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(10)


def cpu_s(servers: list[subprocess.Popen[bytes]]) -> list[float]:
    """CPU time (user + system) each server process has used so far, s."""
    return [sum(psutil.Process(server.pid).cpu_times()[:2]) for server in servers]


def rss_mb(servers: list[subprocess.Popen[bytes]]) -> list[float]:
    """Resident memory of each server process, MB."""
    return [psutil.Process(server.pid).memory_info().rss / 2**20 for server in servers]


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--notifications", type=int, default=5, help="notifications per user")
    parser.add_argument("--rate", type=float, default=100.0, help="notifications per second")
    parser.add_argument("--settle", type=float, default=None, help="seconds to wait after subscribing")
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the last deliveries")
    parser.add_argument(
        "--ws",
        default=None,
        help="uvicorn's websocket implementation (auto, websockets-sansio, wsproto; default: production's)",
    )
    parser.add_argument(
        "--deflate", action="store_true", help="servers negotiate permessage-deflate (off in production)"
    )
    parser.add_argument("--client-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client_worker:
        await client_worker()
        return
    load_before = os.getloadavg()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the servers inherit it: a socket is a file

    with tempfile.TemporaryDirectory() as scratch:
        server_url = os.environ.get("DATABASE_URL")
        if not server_url:
            from app.embedded import embedded_postgres_url

            server_url = embedded_postgres_url(Path(scratch) / "pg", database="postgres", keep=False)
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url:
            from app.embedded import embedded_redis_url

            redis_url = embedded_redis_url(Path(scratch) / "redis")

        database_url, tokens = await prepare_database(server_url, args.users)
        ports = [free_port(), free_port()]
        metrics_ports = [free_port(), free_port()]
        servers = [
            start_server(database_url, redis_url, port, mport, args.ws, args.deflate)
            for port, mport in zip(ports, metrics_ports, strict=True)
        ]
        workers: Workers | None = None
        try:
            await asyncio.gather(*(wait_healthy(port) for port in ports))
            await asyncio.sleep(1)
            rss_idle = rss_mb(servers)
            plan = [(ports[n % 2], *tokens[n % len(tokens)]) for n in range(args.subscribers)]
            count = -(-args.subscribers // CLIENTS_PER_PROCESS)
            workers = Workers([plan[k::count] for k in range(count)])
            connect_time = max(a["connected"] for a in await workers.answers())
            await asyncio.sleep(1)
            rss_sockets = rss_mb(servers)
            workers.tell_all("subscribe")
            started = time.monotonic()
            await workers.answers()  # every subscribe message sent
            while await live_subscriptions(metrics_ports) < args.subscribers:
                if time.monotonic() - started > 600:
                    raise RuntimeError("the subscriptions did not all start within 600 s")
                await asyncio.sleep(0.2)
            subscribe_time = time.monotonic() - started  # until the servers run every subscription
            await asyncio.sleep(args.settle if args.settle is not None else 1.0)
            rss_subscribed = rss_mb(servers)
            cpu_subscribed = cpu_s(servers)

            db = Database(database_url, pool_size=4)
            from app.broadcast import EventBus

            bus = EventBus(redis_url, prefix=PREFIX)
            await bus.connect()
            db.publish_after_commit(bus.publish)
            committed: dict[int, float] = {}
            owner_of: dict[int, int] = {}
            produced = 0
            producing_since = time.monotonic()
            for round_ in range(args.notifications):
                for user_id, _ in tokens:
                    produced += 1
                    ahead = producing_since + produced / args.rate - time.monotonic()
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                    async with db.session() as session:
                        row = await notify(
                            session,
                            user_id=user_id,
                            category=NotificationCategory.BILLING,
                            title=f"Уведомление {round_}",
                            body="Проверка доставки",
                        )
                        await session.commit()
                    assert row is not None
                    committed[row.id] = time.monotonic()
                    owner_of[row.id] = user_id
            await db.drain()
            subscribers_of: dict[int, int] = {}
            for _, user_id, _ in plan:
                subscribers_of[user_id] = subscribers_of.get(user_id, 0) + 1
            workers.tell_all({"expected": {str(u): args.notifications for u, _ in tokens}, "wait": args.wait})
            results = await workers.answers()
            rss_after = rss_mb(servers)
            cpu_delivery = [b - a for a, b in zip(cpu_subscribed, cpu_s(servers), strict=True)]
            expected = sum(subscribers_of.get(u, 0) * args.notifications for u, _ in tokens)
            latencies: list[float] = []
            delivered = duplicated = foreign = 0
            owned: dict[int, list[int]] = {}
            for pk, owner in owner_of.items():
                owned.setdefault(owner, []).append(pk)
            short: list[str] = []
            for result in results:
                for user_id, seen in result["seen"]:
                    ids = [pk for pk, _ in seen]
                    unique = set(ids)
                    missing = sorted(set(owned.get(user_id, ())) - unique)
                    if missing and len(short) < 5:
                        short.append(f"user {user_id}: got {ids}, missing {missing}")
                    duplicated += len(ids) - len(unique)
                    delivered += len(unique & committed.keys())
                    foreign += len(unique - committed.keys())
                    latencies += [(at - committed[pk]) * 1000 for pk, at in seen if pk in committed]
            latencies.sort()
            held = sum(r["held"] for r in results)
            reconnects = sum(r["reconnects"] for r in results)

            def pct(q: float) -> float:
                return (
                    latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")
                )

            n = args.subscribers
            held_by = [
                sum(1 for port_, _, _ in plan if port_ == port) for port in ports
            ]  # sockets per server
            per_socket = [(b - a) * 1024 / k for a, b, k in zip(rss_idle, rss_sockets, held_by, strict=True)]
            per_sub = [
                (b - a) * 1024 / k for a, b, k in zip(rss_sockets, rss_subscribed, held_by, strict=True)
            ]

            def two(values: list[float], unit: str) -> str:
                return ", ".join(f"{v:.0f} {unit}" if abs(v) >= 10 else f"{v:.1f} {unit}" for v in values)

            deflate = "on" if args.deflate else "off"
            implementation = args.ws or "production's (app/workers.py)"
            print(f"websockets             uvicorn --ws {implementation}, permessage-deflate {deflate}")
            print(
                f"subscribers            {n} over 2 processes, {args.users} users, {count} client processes"
            )
            print(f"connect                {connect_time:.1f} s ({n / connect_time:.0f} sockets/s)")
            print(f"subscribe              {subscribe_time:.1f} s ({n / max(subscribe_time, 1e-3):.0f}/s)")
            print(f"connect + subscribe    {n / (connect_time + subscribe_time):.0f} per second")
            print(f"connections held       {held} (reconnects {reconnects})")
            print(f"notifications          {len(committed)} ({args.notifications} per user, {args.rate:g}/s)")
            print(f"deliveries expected    {expected}")
            print(f"deliveries received    {delivered}")
            print(f"lost                   {expected - delivered}")
            print(f"duplicated             {duplicated}")
            print(f"latency p50 / p99      {pct(0.50):.1f} ms / {pct(0.99):.1f} ms (commit → client)")
            if latencies:
                print(f"latency mean / max     {statistics.fmean(latencies):.1f} ms / {latencies[-1]:.1f} ms")
            print(f"server RSS idle        {two(rss_idle, 'MB')}")
            print(f"server RSS sockets     {two(rss_sockets, 'MB')}")
            print(f"server RSS subscribed  {two(rss_subscribed, 'MB')}")
            print(f"server RSS after       {two(rss_after, 'MB')}")
            print(f"memory per socket      {two(per_socket, 'kB')}")
            print(f"memory per subscription {two(per_sub, 'kB')}")
            # CPU from "subscribed" to "after": the deliveries, plus the clients' closing at the end
            print(
                f"server CPU delivery    {', '.join(f'{v:.1f} s' for v in cpu_delivery)}"
                f" ({sum(cpu_delivery) * 1e6 / max(delivered, 1):.0f} µs per delivery, closes included)"
            )
            print(
                f"load average           {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after (1 min)"
            )
            for line in short:
                print(f"  incomplete: {line}")
            await bus.disconnect()
            await db.dispose()
        finally:
            if workers is not None:
                workers.stop()
            for server in servers:
                server.terminate()
                server.wait(20)


if __name__ == "__main__":
    asyncio.run(main())
