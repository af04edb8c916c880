"""The customer dashboard's latency with and without a stream of hostile requests (issue 16).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/hostile.py [--requests 200] [--max-seconds 60] [--hostile-concurrency 1]

Creates a database ``kabinet_hostile_<random>`` (migrated, demo data; dropped afterwards), starts one
Kabinet process (``python -m app.workers … --workers 1`` on 127.0.0.1, result cache off so every dashboard
runs its resolvers), and logs the demo customer in twice (sessions started in the database). Then:

1. **quiet** — one client requests the customer dashboard (``bench.dashboard.DASHBOARD``) ``--requests``
   times, one after another;
2. **hostile** — the same, while ``--hostile-concurrency`` other clients loop over the hostile cases of
   issue 16: a zip-bomb DOCX upload (1 MB declaring 1 GiB), ``nodes`` with 50,000 IDs, a 3 MB JSON body,
   an unauthenticated 3 MB chunked upload, a query that fails (again and again), 2,000 unknown directives,
   25 websockets at once with an anonymous ``serverTime``.

It prints p50 / p99 / max of the dashboard in both phases, the hostile requests sent by case with their
HTTP statuses, and the server's peak RSS. Loopback only; every phase stops after ``--requests`` requests or
``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import websockets
from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import demo
from app.db import Database, async_url
from bench.dashboard import DASHBOARD, admin_dsn, free_port, pct
from models.identity import User
from services import clock
from services.sessions import start_session
from tests.client import Api
from tests.test_limits import zip_bomb_docx
from tests.test_uploads import appeal_input

SECRET = "hostile-bench-secret-" + "x" * 32
CSRF = {"x-kabinet-csrf": "1"}
APPEAL = """mutation($input: CreateAppealInput!) { createAppeal(input: $input) { userErrors { code } } }"""


async def prepare(server_url: str) -> tuple[str, str, list[str]]:
    """Creates and loads the database; returns (database name, its URL, two access tokens)."""
    from sqlalchemy.engine import make_url

    from migrations import runner

    name = f"kabinet_hostile_{uuid.uuid4().hex[:8]}"
    url = make_url(async_url(server_url)).set(database=name).render_as_string(hide_password=False)
    connection = await asyncpg.connect(admin_dsn(server_url))
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    await asyncio.to_thread(runner.upgrade, url)
    db = Database(url, pool_size=2)
    await demo.load(db, today=clock.today())
    tokens = []
    async with db.session() as session:
        user = (await session.execute(select(User).where(User.phone == demo.DEMO_PHONE_E164))).scalar_one()
        for _ in range(2):
            tokens.append((await start_session(session, SECRET, user, now=clock.now())).access_token)
        await session.commit()
    await db.dispose()
    return name, url, tokens


def start_server(database_url: str, redis_url: str, port: int) -> subprocess.Popen[bytes]:
    """One Kabinet worker process on 127.0.0.1:``port``."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "KABINET_REDIS_PREFIX": f"hostile-{uuid.uuid4().hex[:8]}",
        "KABINET_SECRET_KEY": SECRET,
        "KABINET_ENV": "test",
        "KABINET_DEMO_ON_START": "false",
        "KABINET_MIGRATE_ON_START": "false",
        "KABINET_SCHEDULER_ENABLED": "false",
        "KABINET_OUTBOX_DISPATCH": "false",
        "KABINET_RESULT_CACHE": "false",
        "KABINET_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "app.workers", "app.main:app_from_env", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level", "warning"]
    return subprocess.Popen(command, env=env, cwd=str(ROOT))


async def wait_healthy(base: str) -> None:
    """Until ``/healthz`` answers (at most 60 s)."""
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{base}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not start")


async def hostile_cases(client: httpx.AsyncClient, token: str) -> dict[str, Callable[[], Awaitable[str]]]:
    """Each case sends one hostile request (or a burst of sockets) and returns an outcome label."""
    bomb = zip_bomb_docx(1024)
    auth = {"authorization": f"Bearer {token}"}
    base = str(client.base_url).rstrip("/")
    operations = json.dumps({"query": APPEAL, "variables": await appeal_input(Api(client), token, 1)})
    mapping = json.dumps({"0": ["variables.input.attachments.0"]})

    async def zip_bomb() -> str:
        response = await client.post(
            "/graphql",
            data={"operations": operations, "map": mapping},
            files={"0": ("report.docx", bomb, "application/octet-stream")},
            headers={**auth, **CSRF},
        )
        codes = [e["code"] for e in response.json()["data"]["createAppeal"]["userErrors"]]
        return f"{response.status_code} {','.join(codes)}"

    async def many_ids() -> str:
        ids = ["QWNjb3VudDox"] * 50_000
        query = {"query": "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", "variables": {"ids": ids}}
        response = await client.post("/graphql", json=query, headers=auth)
        errors = response.json().get("errors") or [{}]
        return f"{response.status_code} {errors[0].get('extensions', {}).get('code')}"

    async def big_body() -> str:
        body = json.dumps({"query": "{ __typename }", "variables": {"x": "a" * (3 * 1024 * 1024)}})
        response = await client.post("/graphql", content=body, headers={"content-type": "application/json"})
        return str(response.status_code)

    async def chunked_upload() -> str:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'--b\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{}\r\n'
            for _ in range(48):
                yield b"0" * 65536
            yield b"\r\n--b--\r\n"

        headers = {"content-type": "multipart/form-data; boundary=b", **CSRF}
        response = await client.post("/graphql", content=chunks(), headers=headers)
        return str(response.status_code)

    async def failing_query() -> str:
        query = '{ a: accounts(first: 1) { totalCount } b: node(id: "bm90IGEgbm9kZQ") { id } }'
        response = await client.post("/graphql", json={"query": query}, headers=auth)
        return str(response.status_code)

    async def directives() -> str:
        query = "{ __typename " + " ".join(f"@d{n}" for n in range(1900)) + " }"
        response = await client.post("/graphql", json={"query": query})
        return f"{response.status_code}/{len(response.json().get('errors', []))} errors"

    async def sockets() -> str:
        url = base.replace("http://", "ws://") + "/graphql"
        closes: Counter[str] = Counter()

        async def one() -> None:
            try:
                protocols = ["graphql-transport-ws"]
                async with websockets.connect(url, subprotocols=protocols) as socket:  # type: ignore[arg-type]
                    await socket.send('{"type": "connection_init", "payload": {}}')
                    await asyncio.wait_for(socket.recv(), 5)
                    query = "subscription { serverTime(count: 1000, intervalSeconds: 0.01) }"
                    message = {"id": "1", "type": "subscribe", "payload": {"query": query}}
                    await socket.send(json.dumps(message))
                    await asyncio.wait_for(socket.recv(), 5)
                    closes["answered"] += 1
            except websockets.ConnectionClosed as closed:
                closes[str(closed.rcvd.code if closed.rcvd else "closed")] += 1
            except (OSError, TimeoutError):
                closes["failed"] += 1

        await asyncio.gather(*(one() for _ in range(25)))
        return ",".join(f"{k}×{v}" for k, v in sorted(closes.items()))

    return {
        "zip bomb": zip_bomb,
        "nodes 50k ids": many_ids,
        "3 MB body": big_body,
        "anonymous chunked upload": chunked_upload,
        "failing query": failing_query,
        "1900 directives": directives,
        "25 sockets": sockets,
    }


async def dashboard_phase(base: str, token: str, requests: int, max_seconds: float) -> list[float]:
    """Latencies (ms) of sequential dashboard requests."""
    latencies = []
    deadline = time.monotonic() + max_seconds
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        headers = {"authorization": f"Bearer {token}"}
        for _ in range(requests):
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            response = await client.post("/graphql", json={"query": DASHBOARD}, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            body = response.json()
            if response.status_code != 200 or body.get("errors"):
                raise RuntimeError(f"dashboard failed: {response.status_code} {body.get('errors')}")
    return latencies


async def hostile_loop(
    cases: dict[str, Callable[[], Awaitable[str]]],
    stop: asyncio.Event,
    sent: Counter[str],
    spent: dict[str, list[float]],
) -> None:
    """Sends the hostile cases round-robin until ``stop``; counts outcomes and each case's latency (ms)."""
    while not stop.is_set():
        for name, case in cases.items():
            if stop.is_set():
                return
            started = time.perf_counter()
            try:
                outcome = await case()
            except httpx.HTTPError as error:
                outcome = type(error).__name__
            spent.setdefault(name, []).append((time.perf_counter() - started) * 1000)
            sent[f"{name}: {outcome}"] += 1


def run_attackers(base: str, token: str, concurrency: int, stop: Any, results: Any, only: str = "") -> None:
    """Child process: ``concurrency`` hostile clients until ``stop`` is set; puts (outcomes, latencies)."""

    async def attack() -> tuple[Counter[str], dict[str, list[float]]]:
        sent: Counter[str] = Counter()
        spent: dict[str, list[float]] = {}
        finished = asyncio.Event()
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            cases = await hostile_cases(client, token)
            if only:
                cases = {name: case for name, case in cases.items() if name in only.split(",")}
            loops = [
                asyncio.create_task(hostile_loop(cases, finished, sent, spent)) for _ in range(concurrency)
            ]
            while not stop.is_set():
                await asyncio.sleep(0.05)
            finished.set()
            await asyncio.gather(*loops, return_exceptions=True)
        return sent, spent

    results.put(asyncio.run(attack()))


def report(name: str, latencies: list[float]) -> None:
    """One line of dashboard latencies."""
    print(
        f"{name:8} dashboard n={len(latencies):4}  p50 {pct(latencies, 0.5):7.1f} ms  "
        f"p99 {pct(latencies, 0.99):7.1f} ms  max {max(latencies):7.1f} ms",
        flush=True,
    )


async def main() -> None:
    """Prepare, serve, measure quiet and hostile phases, clean up."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200, help="dashboard requests per phase")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="longest phase")
    parser.add_argument("--hostile-concurrency", type=int, default=1, help="hostile clients")
    parser.add_argument("--cases", default="", help="comma-separated subset of the hostile cases (by name)")
    args = parser.parse_args()
    server_url = os.environ.get("DATABASE_URL") or sys.exit("DATABASE_URL is required")
    redis_url = os.environ.get("REDIS_URL") or sys.exit("REDIS_URL is required")

    name, database_url, tokens = await prepare(server_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(database_url, redis_url, port)
    peak_rss = 0
    try:
        await wait_healthy(base)
        processes = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]

        async def sample_rss(stop: asyncio.Event) -> None:
            nonlocal peak_rss
            while not stop.is_set():
                rss = 0
                for process in processes:
                    with contextlib.suppress(psutil.Error):
                        rss += process.memory_info().rss
                peak_rss = max(peak_rss, rss)
                await asyncio.sleep(0.01)

        await dashboard_phase(base, tokens[0], 20, args.max_seconds)  # warm-up
        quiet = await dashboard_phase(base, tokens[0], args.requests, args.max_seconds)
        report("quiet", quiet)

        # The hostile clients run in their own process, so their CPU does not delay the dashboard client.
        stop = multiprocessing.Event()
        results: multiprocessing.Queue[tuple[Counter[str], dict[str, list[float]]]] = multiprocessing.Queue()
        attacker = multiprocessing.Process(
            target=run_attackers,
            args=(base, tokens[1], args.hostile_concurrency, stop, results, args.cases),
        )
        attacker.start()
        rss_stop = asyncio.Event()
        sampler = asyncio.create_task(sample_rss(rss_stop))
        await asyncio.sleep(1.0)  # let the stream start
        try:
            hostile = await dashboard_phase(base, tokens[0], args.requests, args.max_seconds)
        finally:
            stop.set()
            rss_stop.set()
            await sampler
        sent, spent = await asyncio.to_thread(results.get, True, 120)
        attacker.join(30)
        report("hostile", hostile)
        print(f"hostile requests ({sum(sent.values())}):", flush=True)
        for label, count in sorted(sent.items()):
            if not label.startswith("25 sockets"):
                print(f"  {count:4} × {label}", flush=True)
        refused = sum(
            int(part.split("×")[1])
            for label, count in sent.items()
            if label.startswith("25 sockets")
            for part in label.split(": ", 1)[1].split(",")
            if part.startswith("4429")
            for _ in range(count)
        )
        rounds = sum(count for label, count in sent.items() if label.startswith("25 sockets"))
        print(f"  {rounds:4} × 25 sockets: {refused} of {25 * rounds} closed with 4429", flush=True)
        print("hostile request latency by case:", flush=True)
        for case, values in spent.items():
            print(f"  {case:26} p50 {pct(values, 0.5):7.1f} ms  max {max(values):7.1f} ms", flush=True)
        print(f"server peak RSS during the hostile phase: {peak_rss / 1024 / 1024:.0f} MB", flush=True)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        connection = await asyncpg.connect(admin_dsn(server_url))
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()


if __name__ == "__main__":
    asyncio.run(main())
