"""Benchmark: N websocket subscribers across 2 Kabinet processes, M notifications per user.

    python bench/subscriptions.py --subscribers 1000 --users 100 --notifications 5

Needs PostgreSQL and Redis: DATABASE_URL / REDIS_URL, or embedded ones when unset. It creates its own
database, starts two `uvicorn` processes sharing it and Redis, opens N graphql-transport-ws connections
(alternating between the processes, `users` distinct logins), then commits M notifications per user from
this (third) process and measures, per delivered event, the time from COMMIT to arrival at the client.
Prints: connections held, deliveries expected/received, lost, duplicated, latency p50/p99, server RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

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

SECRET = "bench-secret-" + "x" * 32
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


def start_server(database_url: str, redis_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "KABINET_REDIS_PREFIX": "bench",
        "KABINET_SECRET_KEY": SECRET,
        "KABINET_ENV": "production",
        "KABINET_SCHEDULER_ENABLED": "false",
        "KABINET_OUTBOX_DISPATCH": "false",
        "KABINET_DB_POOL_SIZE": "10",
        "KABINET_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:app_from_env",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--ws-max-queue",
            "64",
        ],
        env=env,
    )


async def wait_healthy(port: int) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start")


class Client:
    """One subscriber: a websocket with the notifications subscription."""

    def __init__(self, port: int, user_id: int, token: str, received: dict[int, list[float]]) -> None:
        self.port, self.user_id, self.token, self.received = port, user_id, token, received
        self.ready = asyncio.Event()
        self.seen: list[int] = []

    async def run(self) -> None:
        url = f"ws://127.0.0.1:{self.port}/graphql"
        async with websockets.connect(
            url,
            subprotocols=["graphql-transport-ws"],
            open_timeout=60,  # type: ignore[list-item]
            ping_interval=None,
            max_queue=64,
        ) as socket_:
            await socket_.send(json.dumps({"type": "connection_init", "payload": {"token": self.token}}))
            assert json.loads(await socket_.recv())["type"] == "connection_ack"
            await socket_.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": STREAM}}))
            self.ready.set()
            async for raw in socket_:
                message = json.loads(raw)
                if message.get("type") == "next":
                    gid = message["payload"]["data"]["notifications"]["notification"]["id"]
                    import base64

                    pk = int(base64.b64decode(gid).decode().split(":")[1])
                    self.seen.append(pk)
                    self.received.setdefault(pk, []).append(time.monotonic())


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--notifications", type=int, default=5, help="notifications per user")
    parser.add_argument("--rate", type=float, default=100.0, help="notifications per second")
    parser.add_argument("--settle", type=float, default=None, help="seconds to wait after subscribing")
    args = parser.parse_args()

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
        servers = [start_server(database_url, redis_url, port) for port in ports]
        try:
            await asyncio.gather(*(wait_healthy(port) for port in ports))
            received: dict[int, list[float]] = {}
            clients = [
                Client(ports[n % 2], *tokens[n % len(tokens)], received) for n in range(args.subscribers)
            ]
            started = time.monotonic()
            tasks = []
            for batch in range(0, len(clients), 200):  # connect in waves, as real clients would
                tasks += [asyncio.create_task(c.run()) for c in clients[batch : batch + 200]]
                await asyncio.gather(*(c.ready.wait() for c in clients[batch : batch + 200]))
            connect_time = time.monotonic() - started
            await asyncio.sleep(args.settle if args.settle is not None else 1 + args.subscribers / 2000)
            held = sum(1 for task in tasks if not task.done())

            db = Database(database_url, pool_size=4)
            from app.broadcast import EventBus

            bus = EventBus(redis_url, prefix="bench")
            await bus.connect()
            db.publish_after_commit(bus.publish)
            committed: dict[int, float] = {}
            owners: dict[int, int] = {}
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
                    owners[row.id] = user_id
            await db.drain()
            subscribers_of: dict[int, int] = {}
            for client in clients:
                subscribers_of[client.user_id] = subscribers_of.get(client.user_id, 0) + 1
            expected = sum(subscribers_of.get(owners[pk], 0) for pk in committed)
            deadline = time.monotonic() + 60
            while sum(len(v) for v in received.values()) < expected and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            latencies = sorted(
                (at - committed[pk]) * 1000
                for pk, times in received.items()
                if pk in committed
                for at in times
            )
            duplicated = sum(len(c.seen) - len(set(c.seen)) for c in clients)
            delivered = sum(len(set(c.seen)) for c in clients)
            rss = [psutil.Process(server.pid).memory_info().rss / 2**20 for server in servers]

            def pct(q: float) -> float:
                return (
                    latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")
                )

            print(f"subscribers            {args.subscribers} over 2 processes, {args.users} users")
            print(f"connect + subscribe    {connect_time:.1f} s")
            print(f"connections held       {held}")
            print(f"notifications          {len(committed)} ({args.notifications} per user, {args.rate:g}/s)")
            print(f"deliveries expected    {expected}")
            print(f"deliveries received    {delivered}")
            print(f"lost                   {expected - delivered}")
            print(f"duplicated             {duplicated}")
            print(f"latency p50 / p99      {pct(0.50):.1f} ms / {pct(0.99):.1f} ms (commit → client)")
            if latencies:
                print(f"latency mean / max     {statistics.fmean(latencies):.1f} ms / {latencies[-1]:.1f} ms")
            print(f"server RSS             {rss[0]:.0f} MB, {rss[1]:.0f} MB")
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await bus.disconnect()
            await db.dispose()
        finally:
            for server in servers:
                server.terminate()
                server.wait(20)


if __name__ == "__main__":
    asyncio.run(main())
