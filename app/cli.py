"""The ``kabinet`` command: serve, migrate, demo, import, export, exchange-key, export-schema, staff,
documents, check-config."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from app.config_check import problems, report
from app.logging import configure_logging
from app.settings import Environment, Settings, get_settings
from services import clock

log = logging.getLogger("kabinet")


def resolve_database_url(settings: Settings) -> str:
    """``DATABASE_URL`` if set, else an embedded PostgreSQL kept under ``data_dir/pg``."""
    if settings.database_url:
        return settings.database_url
    from app.embedded import embedded_postgres_url

    return embedded_postgres_url(settings.data_dir / "pg", keep=True)


def migrate(database_url: str, revision: str = "head", *, downgrade: bool = False) -> None:
    """Apply (or roll back to) a migration revision."""
    from migrations import runner

    if downgrade:
        runner.downgrade(database_url, revision)
    else:
        runner.upgrade(database_url, revision)


async def _load_demo(
    database_url: str, accounts: int, months: int, *, staff_passwords: bool, keep: Path | None = None
) -> dict[str, int]:
    from app import demo
    from app.db import Database
    from app.demo.exchange import load_via_exchange
    from services.storage import local_storage

    db = Database(database_url)
    try:
        counts = await demo.load(db, extra_accounts=accounts, months=months, staff_passwords=staff_passwords)
        # the billing-owned part goes back in through the billing exchange, as production's data does
        report = await load_via_exchange(db, local_storage(get_settings().data_dir), keep=keep)
        counts["exchange_rows_changed"] = report.changed
        from services import analytics

        async with db.session() as session:  # every month's analytics rollups (the scheduler keeps 2 fresh)
            counts["analytics_rollups"] = (await analytics.refresh(session)).rows
            await session.commit()
        return counts
    finally:
        await db.dispose()


async def _has_demo_customer(database_url: str) -> bool:
    from sqlalchemy import text

    from app.db import Database
    from app.demo import DEMO_PHONE_E164

    db = Database(database_url, pool_size=1)
    try:
        async with db.session() as session:
            found = await session.execute(
                text("SELECT 1 FROM users WHERE phone = :p"), {"p": DEMO_PHONE_E164}
            )
            return found.first() is not None
    finally:
        await db.dispose()


async def _is_empty(database_url: str) -> bool:
    from sqlalchemy import text

    from app.db import Database

    db = Database(database_url, pool_size=1)
    try:
        async with db.session() as session:
            return not (await session.execute(text("SELECT EXISTS (SELECT 1 FROM users)"))).scalar_one()
    finally:
        await db.dispose()


def ensure_secret_key(settings: Settings) -> None:
    """Every worker must sign tokens with the same key: keep a generated one under data_dir when unset."""
    if os.environ.get("KABINET_SECRET_KEY"):
        return
    if settings.is_production:
        raise SystemExit("KABINET_SECRET_KEY must be set in production")
    path = settings.data_dir / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(settings.secret_key, encoding="utf-8")
        path.chmod(0o600)
    os.environ["KABINET_SECRET_KEY"] = path.read_text(encoding="utf-8").strip()


def cmd_serve(args: argparse.Namespace) -> int:
    """Start the server (embedded PostgreSQL when DATABASE_URL is unset); production refuses unsafe setups."""

    settings = get_settings()
    if settings.is_production and (found := problems(settings, workers=args.workers)):
        print(report(found), file=sys.stderr, flush=True)
        return 2
    host = args.host or settings.host
    port = args.port or settings.port
    # the workers build links (e-mails, sandbox pages) from the address actually served (issue 20)
    os.environ["KABINET_HOST"], os.environ["KABINET_PORT"] = host, str(port)
    url = resolve_database_url(settings)
    os.environ["DATABASE_URL"] = url
    ensure_secret_key(settings)
    if args.workers > 1 and not settings.redis_url:
        from app.embedded import embedded_redis_url

        os.environ["REDIS_URL"] = embedded_redis_url(settings.data_dir / "redis")
        log.info("several workers: embedded Redis carries subscription events between them")
    if settings.migrate_on_start:
        migrate(url)
    development = settings.env is Environment.DEVELOPMENT
    demo_loaded = False
    if settings.demo_on_start_enabled and asyncio.run(_is_empty(url)):
        started = time.monotonic()
        asyncio.run(_load_demo(url, 0, 36, staff_passwords=development))
        log.info("demo data loaded in %.1f s", time.monotonic() - started)
        demo_loaded = True
    get_settings.cache_clear()
    from app.demo import DEMO_EMAIL, DEMO_PASSWORD, DEMO_PHONE

    ide = "  (GraphiQL in a browser)" if settings.graphiql_enabled else ""
    print(f"\n  Kabinet GraphQL: http://{host}:{port}/graphql{ide}", flush=True)
    # the demo login only where the demo data is (loaded now or on an earlier start); never in production
    if settings.demo_on_start_enabled and (demo_loaded or asyncio.run(_has_demo_customer(url))):
        print(f"  Demo customer:   {DEMO_PHONE} or {DEMO_EMAIL} / password {DEMO_PASSWORD}", flush=True)
    if settings.metrics_port:
        print(
            f"  Metrics:         http://{settings.metrics_host}:{settings.metrics_port}/metrics", flush=True
        )
    print(flush=True)
    from app import workers

    workers.run(
        "app.main:app_from_env",
        host=host,
        port=port,
        workers=1 if args.reload else args.workers,
        factory=True,
        reload=args.reload,
        log_config=None,
        proxy_headers=True,
        metrics_address=(settings.metrics_host, settings.metrics_port) if settings.metrics_port else None,
        database_url=url,
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply migrations up to a revision, or roll back with --downgrade."""
    migrate(resolve_database_url(get_settings()), args.revision, downgrade=args.downgrade)
    print("migrations applied" if not args.downgrade else f"downgraded to {args.revision}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Load the demo data set (and N synthetic accounts for benchmarks) into a migrated database."""
    settings = get_settings()
    if settings.is_production:
        print("kabinet demo refuses KABINET_ENV=production: demo users have known passwords", file=sys.stderr)
        return 2
    url = resolve_database_url(settings)
    if not args.no_migrate:
        migrate(url)
    started = time.monotonic()
    staff_passwords = settings.env is Environment.DEVELOPMENT
    counts = asyncio.run(
        _load_demo(url, args.accounts, args.months, staff_passwords=staff_passwords, keep=args.write_set)
    )
    took = time.monotonic() - started
    for table, count in counts.items():
        print(f"{table:>24}: {count:,}")
    print(f"demo data loaded in {took:.1f} s")
    return 0


async def _refresh_analytics(database_url: str, months: int | None) -> tuple[int, int]:
    from app.db import Database
    from services import analytics, clock
    from services.periods import add_months, month_of

    db = Database(database_url, pool_size=2)
    try:
        async with db.session() as session:
            periods = None
            if months is not None:
                current = month_of(clock.now())
                periods = [add_months(current, -back) for back in range(months)]
            result = await analytics.refresh(session, periods=periods)
            await session.commit()
        return len(result.periods), result.rows
    finally:
        await db.dispose()


def _collect_files(paths: list[Path]) -> dict[str, bytes] | None:
    """The members of a batch: every file under each directory (by relative path), each file given (by
    name, with the ``documents/`` directory next to it); None when a path does not exist."""
    files: dict[str, bytes] = {}
    for path in paths:
        if path.is_dir():
            for member in sorted(path.rglob("*")):
                if member.is_file():
                    files[member.relative_to(path).as_posix()] = member.read_bytes()
        elif path.is_file():
            files[path.name] = path.read_bytes()
            documents = path.parent / "documents"  # tariff documents next to a tariffs file
            for member in sorted(documents.rglob("*")) if documents.is_dir() else []:
                files.setdefault(member.relative_to(path.parent).as_posix(), member.read_bytes())
        else:
            print(f"{path}: no such file or directory", file=sys.stderr)
            return None
    return files


async def _exchange_import(database_url: str, files: dict[str, bytes]) -> int:
    from app.broadcast import EventBus
    from app.cache import ResultCache, run_bumps
    from app.db import Database
    from services.events import Touched
    from services.exchange.importer import ImportRefused, import_batch
    from services.storage import local_storage

    settings = get_settings()
    db = Database(database_url, pool_size=1)
    bus = EventBus(settings.redis_url, prefix=settings.redis_prefix)
    cache = (
        ResultCache(settings.redis_url, prefix=settings.redis_prefix, ttl=settings.result_cache_ttl)
        if settings.redis_url
        else None
    )
    await bus.connect()

    async def bump(touched: Touched) -> None:
        if cache is not None:
            await run_bumps(cache, db, touched)

    db.publish_after_commit(bus.publish, bump)  # cached answers and live clients of the server see it
    try:
        async with db.session() as session:
            try:
                report = await import_batch(
                    session, files, storage=local_storage(settings.data_dir), now=clock.now()
                )
            except ImportRefused as refused:
                await session.rollback()
                print("batch refused, nothing applied:", file=sys.stderr)
                for message in refused.problems.messages:
                    print(f"  {message}", file=sys.stderr)
                if refused.problems.count > len(refused.problems.messages):
                    print(f"  ... {refused.problems.count} errors in all", file=sys.stderr)
                return 1
            await session.commit()
        await db.drain()
    finally:
        await bus.disconnect()
        if cache is not None:
            await cache.close()
        await db.dispose()
    for name, entity in report.entities.items():
        print(f"{name:>18}: {entity.rows:>9,} rows, {entity.changed:>9,} changed in {entity.seconds:.2f} s")
    print(f"accounts changed: {len(report.accounts):,}; users refreshed: {len(report.users):,}")
    print(f"new receipt notifications: {report.notified:,}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Import billing exchange files (directories and/or files) as one all-or-nothing batch."""
    files = _collect_files(args.paths)
    if files is None:
        return 2
    return asyncio.run(_exchange_import(resolve_database_url(get_settings()), files))


async def _exchange_export(database_url: str, after: str, limit: int) -> Any:
    from app.db import Database
    from services.exchange import feed

    db = Database(database_url, pool_size=1)
    try:
        async with db.unit_of_work() as uow:  # reading after N acknowledges up to N
            return await feed.changes(uow.session, after, limit=limit)
    finally:
        await db.dispose()


def cmd_analytics_refresh(args: argparse.Namespace) -> int:
    """Rebuild the analytics rollups: every month (default) or the last --months N (issue 17)."""
    url = resolve_database_url(get_settings())
    started = time.monotonic()
    months, rows = asyncio.run(_refresh_analytics(url, args.months))
    print(f"analytics rollups: {months} months, {rows:,} rows in {time.monotonic() - started:.1f} s")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the change feed after a cursor (JSON Lines) for billing; prints the next cursor."""
    from services.exchange import feed

    try:
        page = asyncio.run(_exchange_export(resolve_database_url(get_settings()), args.after, args.limit))
    except feed.BadCursor as error:
        print(error, file=sys.stderr)
        return 2
    if args.out is None:
        sys.stdout.write(page.jsonl())
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        target = args.out / f"changes-{page.after}-{page.next}.jsonl"
        target.write_text(page.jsonl(), encoding="utf-8")
        print(f"wrote {target}", file=sys.stderr)
    print(f"{len(page.changes)} changes; next cursor: {page.next}", file=sys.stderr)
    return 0


def cmd_exchange_key(_args: argparse.Namespace) -> int:
    """Make a billing exchange key: give the key to billing, put only its hash in the server's settings."""
    import secrets

    from app.exchange_api import key_sha256

    key = "kbx_" + secrets.token_urlsafe(32)
    print(f"key for the billing system (shown once): {key}")
    print(f"server setting: KABINET_EXCHANGE_KEY_SHA256={key_sha256(key)}")
    return 0


def cmd_export_schema(args: argparse.Namespace) -> int:
    """Write the SDL of the live schema; with --check, fail when the file differs from it."""
    from schema.schema import export_sdl

    sdl = export_sdl()
    path = Path(args.output)
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != sdl:
            print(f"{path} is out of date: run `kabinet export-schema`", file=sys.stderr)
            return 1
        print(f"{path} matches the live schema")
        return 0
    path.write_text(sdl, encoding="utf-8")
    print(f"wrote {path}")
    return 0


async def _create_staff(database_url: str, args: argparse.Namespace) -> int:

    from app.db import Database
    from models.identity import UserRole
    from services.errors import DomainError
    from services.identity import staff

    db = Database(database_url, pool_size=1)
    try:
        try:
            async with db.unit_of_work() as uow:
                user = await staff.create_staff(
                    uow.session,
                    role=UserRole(args.role),
                    phone=args.phone,
                    email=args.email,
                    last_name=args.last_name,
                    first_name=args.first_name,
                    middle_name=args.middle_name,
                    password=args.password or os.environ.get("KABINET_STAFF_PASSWORD", ""),
                    now=clock.now(),
                )
        except DomainError as error:
            errors = getattr(error, "errors", [error])
            for item in errors:
                print(f"{'.'.join(item.field or [])}: {item.text}", file=sys.stderr)
            return 2
        print(f"created {user.role.value} {user.phone} (id {user.id})")
        return 0
    finally:
        await db.dispose()


async def _register_documents(database_url: str, paths: list[Path]) -> int:
    from app.db import Database
    from services import persisted_documents

    try:
        documents = persisted_documents.read_files(paths)
    except (OSError, persisted_documents.ManifestError) as error:
        print(f"not registered: {error}", file=sys.stderr)
        return 2
    db = Database(database_url, pool_size=1)
    try:
        async with db.unit_of_work() as uow:
            await persisted_documents.store(uow.session, documents)
    finally:
        await db.dispose()
    for document in documents:
        print(f"{document.hash}  {document.name or '(anonymous)'}")
    print(f"{len(documents)} document(s) registered", file=sys.stderr)
    return 0


async def _list_documents(database_url: str) -> int:
    from app.db import Database
    from services import persisted_documents

    db = Database(database_url, pool_size=1)
    try:
        async with db.session() as session:
            for row in await persisted_documents.listing(session):
                stored = row.created_at.isoformat(timespec="seconds")
                print(f"{row.hash}  {stored}  {row.name or '(anonymous)'}")
    finally:
        await db.dispose()
    return 0


def cmd_documents_register(args: argparse.Namespace) -> int:
    """Store persisted documents from manifests ({sha256: document} JSON) or .graphql files; print hashes."""
    return asyncio.run(_register_documents(resolve_database_url(get_settings()), args.files))


def cmd_documents_list(args: argparse.Namespace) -> int:
    """List the stored persisted documents: hash, when stored, operation name."""
    return asyncio.run(_list_documents(resolve_database_url(get_settings())))


def cmd_check_config(args: argparse.Namespace) -> int:
    """Report every setting production would refuse (exit 1 if any), without starting anything."""
    settings = get_settings()
    found = problems(settings, workers=args.workers)
    if not settings.is_production:
        print(f"KABINET_ENV is {settings.env.value}; checked as production would check it.")
    print(report(found))
    return 1 if found else 0


def cmd_staff_create(args: argparse.Namespace) -> int:
    """Create a staff user: OPERATOR, ANALYST or ADMIN."""
    return asyncio.run(_create_staff(resolve_database_url(get_settings()), args))


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="kabinet", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help=cmd_serve.__doc__)
    serve.add_argument("--host", default=None, help="bind address (KABINET_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (KABINET_PORT, default 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes, one SO_REUSEPORT socket each (app/workers.py)",
    )
    serve.add_argument("--reload", action="store_true", help="restart on code changes (development)")
    serve.set_defaults(func=cmd_serve)

    mig = commands.add_parser("migrate", help=cmd_migrate.__doc__)
    mig.add_argument("revision", nargs="?", default="head", help="target revision (default head)")
    mig.add_argument("--downgrade", action="store_true", help="roll back to the revision (e.g. base)")
    mig.set_defaults(func=cmd_migrate)

    demo = commands.add_parser("demo", help=cmd_demo.__doc__)
    demo.add_argument("--accounts", type=int, default=0, help="synthetic accounts to add for benchmarks")
    demo.add_argument("--months", type=int, default=36, help="months of history per account")
    demo.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")
    demo.add_argument("--write-set", type=Path, default=None, help="keep the exchange set it imports in DIR")
    demo.set_defaults(func=cmd_demo)

    refresh = commands.add_parser("analytics-refresh", help=cmd_analytics_refresh.__doc__)
    refresh.add_argument("--months", type=int, default=None, help="only the last N months (with the current)")
    refresh.set_defaults(func=cmd_analytics_refresh)

    staff = commands.add_parser("staff", help="manage staff users")
    staff_commands = staff.add_subparsers(dest="staff_command", required=True)
    create = staff_commands.add_parser("create", help=cmd_staff_create.__doc__)
    create.add_argument("--role", required=True, choices=["OPERATOR", "ANALYST", "ADMIN"], help="staff role")
    create.add_argument("--phone", required=True, help="phone in any common form")
    create.add_argument("--email", default=None, help="e-mail (stored as confirmed)")
    create.add_argument("--last-name", required=True, help="last name")
    create.add_argument("--first-name", required=True, help="first name")
    create.add_argument("--middle-name", default=None, help="middle name")
    create.add_argument(
        "--password", default=None, help="password (A1 rules); default: $KABINET_STAFF_PASSWORD"
    )
    create.set_defaults(func=cmd_staff_create)

    documents = commands.add_parser("documents", help="persisted documents of first-party apps")
    documents_commands = documents.add_subparsers(dest="documents_command", required=True)
    register = documents_commands.add_parser("register", help=cmd_documents_register.__doc__)
    register.add_argument(
        "files", nargs="+", type=Path, help="manifest (.json: {sha256 hex: document}) or .graphql files"
    )
    register.set_defaults(func=cmd_documents_register)
    listing = documents_commands.add_parser("list", help=cmd_documents_list.__doc__)
    listing.set_defaults(func=cmd_documents_list)

    check = commands.add_parser("check-config", help=cmd_check_config.__doc__)
    check.add_argument(
        "--workers", type=int, default=1, help="worker processes `kabinet serve --workers` will start"
    )
    check.set_defaults(func=cmd_check_config)

    importing = commands.add_parser("import", help=cmd_import.__doc__)
    importing.add_argument("paths", nargs="+", type=Path, help="exchange set directories and/or files")
    importing.set_defaults(func=cmd_import)
    exporting = commands.add_parser("export", help=cmd_export.__doc__)
    exporting.add_argument("--after", default="0", help="cursor of the last change read (default: start)")
    exporting.add_argument("--limit", type=int, default=10_000, help="most changes to write (≤ 10 000)")
    exporting.add_argument("--out", type=Path, default=None, help="directory for the file (default: stdout)")
    exporting.set_defaults(func=cmd_export)
    key = commands.add_parser("exchange-key", help=cmd_exchange_key.__doc__)
    key.set_defaults(func=cmd_exchange_key)

    export = commands.add_parser("export-schema", help=cmd_export_schema.__doc__)
    export.add_argument("--output", default="graphql.schema", help="file to write (default graphql.schema)")
    export.add_argument("--check", action="store_true", help="exit 1 if the file differs from the schema")
    export.set_defaults(func=cmd_export_schema)
    return parser


def anchor_clock(settings: Settings) -> None:
    """With ``KABINET_CLOCK_START``, start this process's clock there and record the real instant it
    stands for in ``KABINET_CLOCK_ANCHORED_AT``, so the server's workers (and their restarts) all read the
    same time instead of each starting the clock anew."""
    if settings.clock_start is None:
        return
    anchored = settings.clock_anchored_at or clock.wall_clock()
    os.environ["KABINET_CLOCK_ANCHORED_AT"] = anchored.isoformat()
    clock.CLOCK.start_at(settings.clock_start, anchored_at=anchored)
    get_settings.cache_clear()
    log.warning("clock started at %s (KABINET_CLOCK_START); it runs forward from there", settings.clock_start)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    anchor_clock(settings)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
