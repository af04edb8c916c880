"""Byte-identical answers before and after a change of the read path (issue 21).

    python bench/answers.py --reuse-db kabinet_bench_1a2b3c4d --save /tmp/answers.jsonl      # before
    python bench/answers.py --reuse-db kabinet_bench_1a2b3c4d --compare /tmp/answers.jsonl   # after

Serves Kabinet in this process (ASGI, result cache off, production settings as `bench/dashboard.py`
starts it) and asks, for ``--users`` customers with 3 accounts, the dashboard and, for each of their
accounts, the 36-month charges history and both statistics series of `bench/dashboard.py`. ``--save``
writes every HTTP body; ``--compare`` asks again and requires each body to be byte for byte the saved
one up to the ``"extensions"`` member (the query-cost budget there counts down per minute and user);
the data and "today" must not change in between: same database, same day in Moscow. Exits 1 on any
difference, printing the first differing bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.dashboard import (
    CHARGES_36,
    DASHBOARD,
    MSK,
    STATISTICS,
    VARIANTS,
    issue_tokens,
    prepare_database,
    server_env,
)
from services.periods import allowed_range

EXTENSIONS = b',"extensions":{"cost":'


def stable(body: bytes) -> bytes:
    """The body without its trailing ``extensions`` (cost budget: remaining requests, reset time)."""
    at = body.rfind(EXTENSIONS)
    return body if at < 0 else body[:at]


async def collect(database_url: str, redis_url: str, users: int) -> list[tuple[str, bytes]]:
    """(what was asked, HTTP body) for every request, in a fixed order."""
    customers = await issue_tokens(database_url, users)
    os.environ.update({**server_env(database_url, redis_url), **VARIANTS["uncached"]})
    from app.main import app_from_env

    allowed = allowed_range(dt.datetime.now(MSK).date())
    months = {"from": f"{allowed.start:%Y-%m}", "to": f"{allowed.end:%Y-%m}"}
    app = app_from_env()
    out: list[tuple[str, bytes]] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for customer in customers:
                headers = {"authorization": f"Bearer {customer.token}"}
                answer = await client.post("/graphql", json={"query": DASHBOARD}, headers=headers)
                out.append((f"dashboard user {customer.user_id}", stable(answer.content)))
                edges = orjson.loads(answer.content)["data"]["accounts"]["edges"]
                for edge in edges:
                    account = edge["node"]["id"]
                    for name, query in (("charges36", CHARGES_36), ("statistics", STATISTICS)):
                        body = {"query": query, "variables": {"id": account, **months}}
                        answer = await client.post("/graphql", json=body, headers=headers)
                        key = f"{name} user {customer.user_id} account {account}"
                        out.append((key, stable(answer.content)))
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--reuse-db", metavar="NAME", required=True, help="an already loaded bench database")
    parser.add_argument("--users", type=int, default=20, help="customers (3 accounts each)")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--save", type=Path, help="write the answers to this file")
    action.add_argument("--compare", type=Path, help="compare the answers with this file")
    args = parser.parse_args()
    server_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    today = dt.datetime.now(MSK).date()
    database_url = await prepare_database(server_url, 0, args.reuse_db, today)
    answers = await collect(database_url, redis_url, args.users)
    errors = sum(1 for _, body in answers if b'"errors"' in body)
    if args.save:
        with args.save.open("wb") as out:
            for key, body in answers:
                out.write(orjson.dumps({"key": key, "body": body.decode()}) + b"\n")
        print(f"saved {len(answers)} answers ({errors} with errors) to {args.save}")
        return
    saved = [orjson.loads(line) for line in args.compare.read_bytes().splitlines()]
    if [item["key"] for item in saved] != [key for key, _ in answers]:
        raise SystemExit("different requests: was the database or the day changed?")
    different = 0
    for item, (key, body) in zip(saved, answers, strict=True):
        before = item["body"].encode()
        if before != body:
            different += 1
            if different == 1:
                at = next((i for i, (a, b) in enumerate(zip(before, body, strict=False)) if a != b), None)
                at = min(len(before), len(body)) if at is None else at
                print(
                    f"{key}: differs at byte {at}:\n  before {before[at - 80 : at + 80]!r}\n"
                    f"  after  {body[at - 80 : at + 80]!r}"
                )
    size = sum(len(body) for _, body in answers)
    same = len(answers) - different
    print(f"{same}/{len(answers)} answers byte-identical ({size} bytes, {errors} with errors)")
    if different:
        raise SystemExit(1)


if __name__ == "__main__":
    asyncio.run(main())
