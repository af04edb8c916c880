"""Database engine, sessions, and the statement counter that tests and benchmarks use."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from services.unit_of_work import Event, Record, Touched, UnitOfWork, watch

log = logging.getLogger(__name__)


def async_url(url: str) -> str:
    """Normalize ``postgres://`` / ``postgresql://`` URLs to the asyncpg driver SQLAlchemy needs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


DEFAULT_POOL_TIMEOUT = 10.0
"""Seconds a request waits for a pooled connection when all are in use (``KABINET_DB_POOL_TIMEOUT``)."""


@dataclass
class StatementCounter:
    """Statements sent to PostgreSQL while the counter is active (BEGIN/COMMIT are not counted)."""

    statements: int = 0
    sql: list[str] = field(default_factory=list)


OLTP_SETTINGS: dict[str, str] = {"max_parallel_workers_per_gather": "0", "jit": "off"}
"""PostgreSQL settings of the app's own connections (issue 21). A request reads a few hundred rows by index;
when the planner's cost estimate of such a statement passes ``parallel_setup_cost`` it launches parallel
workers — new backend processes, ~10 ms before the first row of a statement whose work is ~1.5 ms (the
dashboard's balance took 12–16 ms instead of 1.5 on 20,000 accounts, bench/README.md) — and a statement
whose estimate passes ``jit_above_cost`` is compiled to machine code first. Neither pays off for short reads,
and both use the database server's few worker processes and cores that other requests need. The analytics
replica's pool keeps the server's defaults (its aggregations are the work parallel query is for)."""


async def numeric_as_text(connection: Any) -> None:
    """Have ``numeric`` values sent in PostgreSQL's text form and read with ``Decimal(text)`` on an asyncpg
    connection (issue 21). asyncpg's binary numeric decoder builds each ``Decimal`` digit group by digit
    group, ~0.5 µs a value; the text form through ``Decimal``'s own C parser gives the same value, sign and
    scale (``15.0000``, ``NaN``, ``Infinity``) in less than half of that — and a 36-month charges history
    reads ~600 of them. Parameters go as ``str(value)``, which PostgreSQL parses exactly."""
    await connection.set_type_codec(
        "numeric", encoder=str, decoder=Decimal, schema="pg_catalog", format="text"
    )


def _numeric_as_text(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.run_async(numeric_as_text)


class Database:
    """One engine and session factory per process (or per test database)."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        pool_timeout: float = DEFAULT_POOL_TIMEOUT,
        echo: bool = False,
        hide_parameters: bool = True,
        server_settings: dict[str, str] | None = None,
    ) -> None:
        """``hide_parameters`` (default) keeps SQL parameters — personal data, message bodies with codes —
        out of SQLAlchemy's statement log and error messages; the app shows them only in development.

        The pool holds at most ``pool_size`` connections and keeps every one it opened: a request that
        finds them all in use waits up to ``pool_timeout`` seconds for one to come back (then
        ``sqlalchemy.exc.TimeoutError``). There is no overflow: overflow connections are closed as soon as
        they are returned, so a process serving more concurrent requests than its pool size opened and
        closed connections continually — connect, TLS attempt, type introspection, every statement
        prepared again on the new connection, about 5 % of its CPU (issue 21, bench/README.md).

        ``server_settings`` are PostgreSQL settings for every connection (sent when it opens):
        :data:`OLTP_SETTINGS` unless given."""
        self.url = async_url(url)
        self.engine: AsyncEngine = create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=pool_timeout,
            pool_pre_ping=False,
            echo=echo,
            hide_parameters=hide_parameters,
            connect_args={"server_settings": OLTP_SETTINGS if server_settings is None else server_settings},
        )
        self._sync_session_class: type[Session] = type("KabinetSession", (Session,), {})  # own event hooks
        self.sessionmaker = async_sessionmaker(
            self.engine, expire_on_commit=False, autoflush=False, sync_session_class=self._sync_session_class
        )
        self._counters: list[StatementCounter] = []
        self._publishing: set[asyncio.Task[None]] = set()
        self.strict = False
        """Whether undeclared writes fail (see :meth:`publish_after_commit`)."""
        self._publish: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None
        self._on_touched: Callable[[Touched], Awaitable[None]] | None = None
        watch(self._sync_session_class, self._committed)
        event.listen(self.engine.sync_engine, "before_cursor_execute", self._count)
        event.listen(self.engine.sync_engine, "connect", _numeric_as_text)

    def _count(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        for counter in self._counters:
            counter.statements += 1
            counter.sql.append(statement)

    def publish_after_commit(
        self,
        publish: Callable[[str, dict[str, Any]], Awaitable[None]],
        on_touched: Callable[[Touched], Awaitable[None]] | None = None,
        *,
        strict: bool = False,
    ) -> None:
        """After every COMMIT: bump the cache versions of what the unit of work declared (``on_touched``),
        then publish the events it queued (``publish``).

        ``strict`` (tests, ``KABINET_STRICT_WRITES``): a unit of work that wrote rows but declared nothing
        fails its COMMIT with ``services.unit_of_work.UndeclaredWrite``; otherwise such a write is logged
        as an error and makes every cached answer stale.
        """
        self.strict = strict
        self._publish = publish
        self._on_touched = on_touched

    def _committed(self, record: Record) -> None:
        """Right after a COMMIT: start the after-commit work of what the unit of work collected."""
        touched, events = record.take()
        if self._publish is None or (not events and not touched):
            return  # a process without the app's publishers (CLI): nothing to tell
        task = asyncio.get_running_loop().create_task(
            self._after_commit(self._publish, self._on_touched, events, touched)
        )
        self._publishing.add(task)
        task.add_done_callback(self._published)
        record.after_commit.append(task)

    @staticmethod
    async def _after_commit(
        publish: Callable[[str, dict[str, Any]], Awaitable[None]],
        on_touched: Callable[[Touched], Awaitable[None]] | None,
        pending: list[Event],
        touched: Touched,
    ) -> None:
        if on_touched is not None and touched:
            try:
                await on_touched(touched)  # first: a subscriber that reads on the event sees fresh data
            except Exception:
                log.exception("invalidating cached results after a commit failed")
        for channel, message in pending:
            try:
                await publish(channel, message)
            except Exception:
                log.exception("publishing an event on %s failed", channel)

    def _published(self, task: asyncio.Task[None]) -> None:
        self._publishing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("publishing an event failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait until every event handed to the bus has been sent (tests, shutdown)."""
        while self._publishing:
            await asyncio.gather(*list(self._publishing), return_exceptions=True)

    @contextlib.contextmanager
    def count_statements(self) -> Iterator[StatementCounter]:
        """Count every statement this engine executes inside the ``with`` block."""
        counter = StatementCounter()
        self._counters.append(counter)
        try:
            yield counter
        finally:
            self._counters.remove(counter)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A plain session for reads (and tests arranging data); commits nothing by itself. Writes go
        through :meth:`unit_of_work`; a write committed here without a declaration makes every cached answer
        stale. On exit it waits for the after-commit work of what it committed."""
        async with self.sessionmaker() as session:
            yield session
        await self.drain()

    @contextlib.asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """A unit of work in a session of its own (jobs, the CLI, app endpoints): commits when the block
        ends normally, rolls back when it raises; waits for the after-commit work either way."""
        async with self.sessionmaker() as session:
            work = UnitOfWork(session, strict=self.strict)
            work.attach()
            try:
                yield work
                await work.commit()
            except BaseException:
                await work.rollback()
                raise

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
