"""Password-login timing for an existing vs an unknown phone over real HTTP (issue 15, finding 10).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/login_timing.py [--tries 9]

Creates a scratch database (dropped afterwards), migrates it and loads the demo set, starts Kabinet with
uvicorn (one worker, as `kabinet serve` does) on a free port and sends ``loginWithPassword`` with a wrong
password: ``--tries`` times for the demo cabinet's phone and as many times for phones nobody registered
(a new one each try), interleaved, after one warm-up of each. Prints the median and mean of each and their
ratio; before the fix the unknown phone answered several times faster (no argon2 verification ran).
Tries stay under the per-login limit (10 per 15 minutes) and the per-address one (50); each run uses a
fresh Redis prefix. Without DATABASE_URL / REDIS_URL embedded servers are started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import demo
from app.db import Database, async_url
from app.demo import DEMO_PHONE

LOGIN = """mutation($input: LoginWithPasswordInput!) { loginWithPassword(input: $input) {
  tokens { accessToken } userErrors { code } } }"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def admin_dsn(server_url: str, database: str = "postgres") -> str:
    parsed = make_url(async_url(server_url)).set(drivername="postgresql", database=database)
    return parsed.render_as_string(hide_password=False)


async def login(client: httpx.AsyncClient, url: str, phone: str) -> float:
    started = time.perf_counter()
    response = await client.post(
        url, json={"query": LOGIN, "variables": {"input": {"login": phone, "password": "Wrong#pass1"}}}
    )
    elapsed = time.perf_counter() - started
    codes = [error["code"] for error in response.json()["data"]["loginWithPassword"]["userErrors"]]
    if codes != ["INVALID_CREDENTIALS"]:
        raise SystemExit(f"unexpected answer for {phone}: {codes} (rate limited? use fewer --tries)")
    return elapsed


async def measure(port: int, tries: int) -> tuple[list[float], list[float]]:
    url = f"http://127.0.0.1:{port}/graphql"
    existing: list[float] = []
    unknown: list[float] = []
    async with httpx.AsyncClient(timeout=30) as client:
        await login(client, url, DEMO_PHONE)  # warm-up: connections, the process's dummy hash
        await login(client, url, "+7 (900) 000-00-00")
        for index in range(tries):
            existing.append(await login(client, url, DEMO_PHONE))
            unknown.append(
                await login(client, url, f"+7 (984) 417-{index // 100 % 100:02d}-{index % 100:02d}")
            )
    return existing, unknown


def start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """Kabinet under uvicorn, one worker, on ``port``."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "app.main:app_from_env", "--factory"),
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        ],
        env=env,
        cwd=str(ROOT),
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tries", type=int, default=9, help="logins per kind (at most 9: the per-login limit)"
    )
    args = parser.parse_args()
    tries = min(args.tries, 9)
    with tempfile.TemporaryDirectory() as scratch:
        server_url = os.environ.get("DATABASE_URL")
        if not server_url:
            from app.embedded import embedded_postgres_url

            server_url = embedded_postgres_url(Path(scratch) / "pg", database="postgres", keep=False)
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url:
            from app.embedded import embedded_redis_url

            redis_url = embedded_redis_url(Path(scratch) / "redis")
        from migrations import runner

        name = f"kabinet_bench_login_{uuid.uuid4().hex[:8]}"
        connection = await asyncpg.connect(admin_dsn(server_url))
        await connection.execute(f'CREATE DATABASE "{name}"')
        await connection.close()
        url = make_url(async_url(server_url)).set(database=name).render_as_string(hide_password=False)
        process = None
        try:
            await asyncio.to_thread(runner.upgrade, url)
            db = Database(url, pool_size=2)
            await demo.load(db)
            await db.dispose()
            port = free_port()
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "DATABASE_URL": url,
                "REDIS_URL": redis_url,
                "KABINET_REDIS_PREFIX": f"bench-login-{uuid.uuid4().hex[:8]}",
                "KABINET_SECRET_KEY": "bench-secret-" + "x" * 32,
                "KABINET_ENV": "production",
                "KABINET_SCHEDULER_ENABLED": "false",
                "KABINET_OUTBOX_DISPATCH": "false",
                "KABINET_LOG_LEVEL": "WARNING",
            }
            process = start_server(env, port)
            async with httpx.AsyncClient() as client:
                for _ in range(600):
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                            break
                    await asyncio.sleep(0.1)
            existing, unknown = await measure(port, tries)
        finally:
            if process is not None:
                process.terminate()
                process.wait(10)
            connection = await asyncpg.connect(admin_dsn(server_url))
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await connection.close()
    med_e, med_u = statistics.median(existing), statistics.median(unknown)
    print(f"loginWithPassword, wrong password, {tries} tries each over HTTP (one uvicorn worker)")
    print(f"existing phone   median {med_e * 1000:7.1f} ms   mean {statistics.mean(existing) * 1000:7.1f} ms")
    print(f"unknown phone    median {med_u * 1000:7.1f} ms   mean {statistics.mean(unknown) * 1000:7.1f} ms")
    print(f"ratio unknown/existing (medians) {med_u / med_e:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
