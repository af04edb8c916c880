"""The database pool under more concurrent requests than its size (issue 21): connections are kept, not
churned. Real PostgreSQL and the real app; no timing is asserted, only connections opened."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, text

from app.db import Database
from app.demo import DEMO_PHONE_E164
from tests.conftest import login_as


def _connects(db: Database) -> list[int]:
    """A list that grows by one for every new DBAPI connection the pool opens."""
    opened: list[int] = []
    event.listen(db.engine.sync_engine.pool, "connect", lambda *_args: opened.append(1))
    return opened


async def test_issue21_pool_keeps_its_connections_under_concurrency_above_its_size(database_url: str) -> None:
    db = Database(database_url, pool_size=3)
    opened = _connects(db)
    peak = 0
    in_use = 0

    async def request() -> None:
        nonlocal peak, in_use
        async with db.session() as session:
            await session.execute(text("SELECT 1"))
            in_use += 1
            peak = max(peak, in_use)
            await asyncio.sleep(0.005)  # holds its connection while others want one
            in_use -= 1

    try:
        await asyncio.gather(*(request() for _ in range(12)))  # warm-up: the pool fills
        assert len(opened) == 3
        for _ in range(5):  # steady state: 12 at a time against 3 connections
            await asyncio.gather(*(request() for _ in range(12)))
        assert len(opened) == 3  # overflow connections used to be opened and closed in every round
        assert peak == 3  # the others waited for a pooled connection
        pool: Any = db.engine.sync_engine.pool  # a QueuePool
        assert pool.checkedin() == 3  # all kept, none closed on return
    finally:
        await db.dispose()


async def test_issue21_the_app_opens_no_connection_in_steady_state(
    app: Any, api: Any, db: Database, settings: Any
) -> None:
    from tests.test_accounts import DASHBOARD, seed_accounts

    await seed_accounts(db, settings, accounts=2)
    token = await login_as(db, settings, DEMO_PHONE_E164)
    opened = _connects(db)
    concurrency = settings.db_pool_size + 6
    await asyncio.gather(*(api.data(DASHBOARD, token=token) for _ in range(concurrency)))  # warm-up
    warm = len(opened)
    assert warm <= settings.db_pool_size
    for _ in range(3):
        await asyncio.gather(*(api.data(DASHBOARD, token=token) for _ in range(concurrency)))
    assert len(opened) == warm


@pytest.mark.parametrize("size", [1])
async def test_issue21_a_request_waits_for_a_pooled_connection(database_url: str, size: int) -> None:
    db = Database(database_url, pool_size=size, pool_timeout=5)
    opened = _connects(db)
    try:

        async def read() -> int:
            async with db.session() as session:
                return int((await session.execute(text("SELECT 1"))).scalar_one())

        assert await asyncio.gather(*(read() for _ in range(4))) == [1, 1, 1, 1]
        assert len(opened) == 1
    finally:
        await db.dispose()


async def test_issue21_side_writes_of_a_request_use_its_own_connection(settings: Any) -> None:
    """With one pooled connection, a logged-in request that writes on the side — an analyst's audit row
    (issue 17), an automatically registered persisted document — must not wait for a second connection
    while it holds its own: it would wait out the pool timeout (or, with every connection held that
    way, all would). They go through the request's own session."""
    import httpx

    from app.main import create_app
    from services.persisted_documents import document_hash
    from services.query_audit import ACTION
    from tests.client import Api
    from tests.test_analytics import ANALYST

    AUDITED = f"SELECT count(*) FROM audit_log WHERE action = '{ACTION}'"

    small = create_app(
        settings.model_copy(
            update={"db_pool_size": 1, "db_pool_timeout": 2, "persisted_documents_auto_register": True}
        )
    )
    async with small.router.lifespan_context(small):
        db = small.state.kabinet.db
        transport = httpx.ASGITransport(app=small, client=("203.0.113.10", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://kabinet.test") as client:
            api = Api(client)
            analyst = await login_as(db, settings, ANALYST)
            assert (await api.data("{ me { id } }", token=analyst))["me"]["id"]
            async with db.session() as session:
                audited = (await session.execute(text(AUDITED))).scalar_one()
            assert audited >= 1
            customer = await login_as(db, settings, DEMO_PHONE_E164)
            query = "query Side { me { id } }"
            body = {
                "query": query,
                "extensions": {"persistedQuery": {"version": 1, "sha256Hash": document_hash(query)}},
            }
            answer = await client.post("/graphql", json=body, headers={"authorization": f"Bearer {customer}"})
            assert answer.status_code == 200 and answer.json()["data"]["me"]["id"]
            del body["query"]  # registered: now known by its hash alone
            answer = await client.post("/graphql", json=body, headers={"authorization": f"Bearer {customer}"})
            assert answer.status_code == 200 and answer.json()["data"]["me"]["id"]


async def test_issue21_an_exhausted_pool_answers_service_busy_without_a_traceback(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Every pooled connection held for longer than ``KABINET_DB_POOL_TIMEOUT``: a request that needs one
    used to end in "Internal server error" (or Starlette's bare 500 when the session check waited) with a
    traceback at ERROR. It is the server's load, not a bug: a top-level error ``SERVICE_BUSY`` with
    ``retryAfterSeconds`` (HTTP 503 and ``Retry-After`` when no operation could start), at WARNING."""
    import logging

    import httpx

    from app.main import create_app
    from tests.client import Api

    small = create_app(settings.model_copy(update={"db_pool_size": 1, "db_pool_timeout": 1.0}))
    async with small.router.lifespan_context(small):
        db = small.state.kabinet.db
        transport = httpx.ASGITransport(app=small, client=("203.0.113.10", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://kabinet.test") as client:
            api = Api(client)
            token = await login_as(db, settings, DEMO_PHONE_E164)
            assert (await api.data("{ me { id } }", token=token))["me"]["id"]  # the session is now known
            caplog.clear()
            with caplog.at_level(logging.WARNING):
                async with db.session() as holder:
                    await holder.execute(text("SELECT 1"))  # the pool's only connection, held
                    body = await api.gql("{ busy: me { id } }", token=token)  # session check cached
                    small.state.kabinet.sessions._active.clear()  # now the session row must be read
                    refused = await client.post(
                        "/graphql",
                        json={"query": "{ again: me { id } }"},
                        headers={"authorization": f"Bearer {token}"},
                    )
            assert body["errors"][0]["extensions"] == {"code": "SERVICE_BUSY", "retryAfterSeconds": 1}
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert refused.json()["errors"][0]["extensions"]["code"] == "SERVICE_BUSY"
            assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
            assert any("pool" in record.getMessage() for record in caplog.records)
            assert (await api.data("{ me { id } }", token=token))["me"]["id"]  # released: served again


async def test_issue21_the_apps_connections_start_no_parallel_workers_and_no_jit(settings: Any) -> None:
    """A request's short reads must not launch parallel workers (~10 ms each time, for ~1.5 ms of work: the
    dashboard's balance on 20,000 accounts) nor be compiled by JIT (app.db.OLTP_SETTINGS); the analytics
    replica's pool keeps the server's settings."""
    from app.main import create_app

    analytics = settings.model_copy(update={"analytics_database_url": settings.database_url})
    application = create_app(analytics)
    async with application.router.lifespan_context(application):
        state = application.state.kabinet
        async with state.db.session() as session:
            assert (await session.execute(text("SHOW max_parallel_workers_per_gather"))).scalar() == "0"
            assert (await session.execute(text("SHOW jit"))).scalar() == "off"
        async with state.analytics_db.session() as session:
            server_default = (await session.execute(text("SHOW max_parallel_workers_per_gather"))).scalar()
            assert (
                server_default
                == (
                    await session.execute(
                        text(
                            "SELECT boot_val FROM pg_settings WHERE name = 'max_parallel_workers_per_gather'"
                        )
                    )
                ).scalar()
            )


NUMERICS = (
    "SELECT 15.0000::numeric(12,4) AS scale, -3.50::numeric(12,2) AS negative, 0.000::numeric AS zero,"
    " 'NaN'::numeric AS nan, 'Infinity'::numeric AS inf, 12345678901234567890.123456789::numeric AS big,"
    " ARRAY[1.10, 2]::numeric[] AS list, $1::numeric(12,2) AS param, $2::numeric AS exponent"
)


async def test_issue21_numeric_values_are_read_in_text_form_with_the_same_values(settings: Any) -> None:
    """The app's connections read ``numeric`` in PostgreSQL's text form through ``Decimal``'s parser
    (``app.db.numeric_as_text``: asyncpg's binary decoder cost twice as much per value, and a 36-month
    charges history reads ~600 of them) — with the same values, signs and scales as the binary form, and
    parameters still exact."""
    import asyncpg

    db = Database(settings.database_url or "")
    try:
        async with db.session() as session:
            connection = await session.connection()
            raw = (await connection.get_raw_connection()).driver_connection
            codecs = raw._protocol.get_settings()
            assert codecs.get_data_codec(1700, 1) is None  # no binary numeric codec: the text one is used
            params = (Decimal("-3.505"), Decimal("1E+2"))
            text_form = await raw.fetchrow(NUMERICS, *params)
            orm = (await session.execute(text("SELECT 7.25::numeric(12,2) + 0"))).scalar()
    finally:
        await db.dispose()
    binary = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    try:
        binary_form = await binary.fetchrow(NUMERICS, *params)
    finally:
        await binary.close()

    def shown(record: Any) -> list[tuple[Any, ...]]:
        return [(key, type(value), str(value)) for key, value in record.items()]

    assert shown(text_form) == shown(binary_form)
    assert str(text_form["param"]) == "-3.51" and text_form["exponent"] == 100
    assert type(orm) is Decimal and str(orm) == "7.25"
