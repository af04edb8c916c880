"""K1: the alembic migrations build exactly the schema the models declare, and downgrade removes it.

Self-contained: each test creates its own throwaway database on the server of ``DATABASE_URL`` (or
127.0.0.1:5432 as user postgres) and drops it afterwards, so it needs no shared fixtures.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import models
from migrations.runner import downgrade, upgrade

DEFAULT_SERVER_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def _server_url() -> str:
    """URL of a maintenance database on the server where throwaway databases are created."""
    url = make_url(os.environ.get("DATABASE_URL") or DEFAULT_SERVER_URL)
    return url.set(drivername="postgresql+asyncpg", database="postgres").render_as_string(hide_password=False)


async def _admin(statement: str) -> None:
    engine = create_async_engine(_server_url(), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql(statement)
    finally:
        await engine.dispose()


async def _inspect(url: str, fn: Any) -> Any:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(fn)
    finally:
        await engine.dispose()


@pytest.fixture
def scratch_database_url() -> Iterator[str]:
    """A new empty database, dropped after the test."""
    name = f"kabinet_migr_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(_server_url()).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, models.Base.metadata)


def _table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def test_K1_migrations_match_models(scratch_database_url: str) -> None:
    upgrade(scratch_database_url)

    differences = asyncio.run(_inspect(scratch_database_url, _differences))

    assert differences == []
    tables = asyncio.run(_inspect(scratch_database_url, _table_names))
    assert tables == set(models.Base.metadata.tables) | {"alembic_version"}


def test_K1_downgrade_to_base(scratch_database_url: str) -> None:
    upgrade(scratch_database_url)

    downgrade(scratch_database_url)

    assert asyncio.run(_inspect(scratch_database_url, _table_names)) == {"alembic_version"}
    upgrade(scratch_database_url)  # and the schema can be built again
    assert (
        len(asyncio.run(_inspect(scratch_database_url, _table_names))) == len(models.Base.metadata.tables) + 1
    )
