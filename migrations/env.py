"""Alembic environment: runs migrations over an async (asyncpg) engine.

The URL comes from ``sqlalchemy.url`` of the config, which ``migrations.runner.alembic_config`` sets.
A caller may also pass an open synchronous connection in ``config.attributes["connection"]`` (e.g. from
``AsyncConnection.run_sync``), which is then used as it is.

``asyncio.run`` needs a thread without a running event loop: when alembic is called from code that runs
inside one (or from a thread of such a program), the migrations run in a short-lived thread of their own,
so the caller's loop is never used or blocked on re-entrantly.
"""

from __future__ import annotations

import asyncio
import threading
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

import models

config = context.config

if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = models.Base.metadata

CONFIGURE_OPTIONS: dict[str, Any] = {
    "target_metadata": target_metadata,
    "compare_type": True,
    "compare_server_default": False,
    "transaction_per_migration": True,
}


def async_url(url: str) -> str:
    """The URL with the asyncpg driver (``postgresql://`` and psycopg URLs are accepted too)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "asyncpg":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of executing it (``alembic upgrade --sql``)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **CONFIGURE_OPTIONS,
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    """Run the migrations on a synchronous connection facade."""
    context.configure(connection=connection, **CONFIGURE_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    """Open an engine for this run only (no pool kept) and run the migrations on it."""
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set: use migrations.runner.alembic_config(database_url)")
    engine = create_async_engine(async_url(url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


def run_in_fresh_loop() -> None:
    """``asyncio.run`` here, or in a new thread when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(run_async_migrations())
        return
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(run_async_migrations())
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=target, name="alembic-migrations")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def run_migrations_online() -> None:
    """Run against the database: on a connection given by the caller, or on a new async engine."""
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        run_in_fresh_loop()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
