"""Two (or more) checkouts of Kabinet served side by side, at the same moment, on the same core (issue 21).

    git worktree add /tmp/kabinet-base <commit>                       # the code to compare against
    python bench/ab.py /tmp/kabinet-base . --reuse-db kabinet_bench_1a2b3c4d [--ops dashboard,charges36]

On this shared 2-core machine the same code measures 20–40 % apart from one run to the next (other
sessions' tests, PostgreSQL, the load generator): a before/after comparison made of two separate
`bench/peers.py` runs cannot resolve a 10 % change. Here every checkout is started as production starts it
(`python -m app.workers … --workers 1`, production settings, result cache off, as `bench/peers.py` does;
``PYTHONPATH`` and working directory = the checkout), all pinned to the same core, and driven by the same
closed loop *at the same time* (``--concurrency`` requests in flight each), so they share whatever the
machine is doing. Each round prints every checkout's server CPU per request (process user + system time
over the requests it answered) and req/s; the ratio between checkouts is the comparable figure, the
absolute numbers are not (the servers share one core).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.dashboard import (
    VARIANTS,
    Servers,
    closed_loop,
    free_port,
    server_env,
)
from bench.peers import global_ids, make_ops, pin, setup, wait_graphql


def start(root: Path, env: dict[str, str], port: int, cpus: str) -> Servers:
    """One single-process server of the checkout at ``root``."""
    command = [sys.executable, "-m", "app.workers", "app.main:app_from_env", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level", "warning"]
    return Servers(subprocess.Popen([*pin(cpus), *command], env={**env, "PYTHONPATH": str(root)}, cwd=root))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("checkouts", nargs="+", type=Path, help="directories of Kabinet checkouts")
    parser.add_argument("--reuse-db", metavar="NAME", required=True, help="a loaded bench database")
    parser.add_argument("--users", type=int, default=200, help="customers (3 accounts each)")
    parser.add_argument("--ops", default="dashboard", help="comma-separated operations of bench/peers.py")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per operation")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per round")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight per checkout")
    parser.add_argument("--server-cpu", default="0", help="the core every server is pinned to")
    parser.add_argument("--client-cpu", default="1", help="the core(s) this load generator uses")
    args = parser.parse_args()
    _, database_url, redis_url, today, customers, peers = await setup(
        args.reuse_db, args.users, args.client_cpu
    )
    env = {**server_env(database_url, redis_url), **VARIANTS["uncached"]}
    names = [checkout.resolve().name for checkout in args.checkouts]
    running = [
        (start(checkout.resolve(), env, port, args.server_cpu), port)
        for checkout, port in ((checkout, free_port()) for checkout in args.checkouts)
    ]
    try:
        await asyncio.gather(*(wait_graphql(port) for _, port in running))
        await global_ids(running[0][1], customers)
        ops = make_ops(today, peers)
        print(f"checkouts: {', '.join(names)}; server CPU {args.server_cpu}, client CPU {args.client_cpu}")
        for name in args.ops.split(","):
            op = ops[name]["kabinet"]
            clients = [
                [httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60)] * args.concurrency
                for _, port in running
            ]
            try:
                await asyncio.gather(*(closed_loop(c, op, customers, args.concurrency, 2.0) for c in clients))
                ratios: list[list[float]] = [[] for _ in running]
                for round_ in range(args.rounds):
                    before = [servers.cpu() for servers, _ in running]
                    results = await asyncio.gather(
                        *(closed_loop(c, op, customers, args.concurrency, args.duration) for c in clients)
                    )
                    after = [servers.cpu() for servers, _ in running]
                    cells = []
                    per_request = []
                    for checkout, (result, seconds), start_cpu, end_cpu in zip(
                        names, results, before, after, strict=True
                    ):
                        ms = (end_cpu - start_cpu) * 1000 / max(result.requests, 1)
                        per_request.append(ms)
                        cells.append(
                            f"{checkout} {ms:6.2f} ms/req {result.requests / seconds:6.1f} req/s"
                            f" {result.errors} errors"
                        )
                    for index, ms in enumerate(per_request):
                        ratios[index].append(ms / per_request[0])
                    print(
                        f"{name:<11} round {round_ + 1}: "
                        + " | ".join(cells)
                        + f"  (load average {os.getloadavg()[0]:.2f})",
                        flush=True,
                    )
                summary = ", ".join(
                    f"{checkout} {min(r):.3f}–{max(r):.3f}" for checkout, r in zip(names, ratios, strict=True)
                )
                print(f"{name:<11} CPU per request relative to {names[0]} (min–max over rounds): {summary}")
            finally:
                for group in clients:
                    await group[0].aclose()
    finally:
        for servers, _ in running:
            servers.stop()


if __name__ == "__main__":
    asyncio.run(main())
