"""Database engine, sessions, and the statement counter that tests and benchmarks use."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, SessionTransaction

from services.events import take_pending

log = logging.getLogger(__name__)


def async_url(url: str) -> str:
    """Normalize ``postgres://`` / ``postgresql://`` URLs to the asyncpg driver SQLAlchemy needs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


@dataclass
class StatementCounter:
    """Statements sent to PostgreSQL while the counter is active (BEGIN/COMMIT are not counted)."""

    statements: int = 0
    sql: list[str] = field(default_factory=list)


class Database:
    """One engine and session factory per process (or per test database)."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = async_url(url)
        self.engine: AsyncEngine = create_async_engine(
            self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False, echo=echo
        )
        self._sync_session_class: type[Session] = type("KabinetSession", (Session,), {})  # own event hooks
        self.sessionmaker = async_sessionmaker(
            self.engine, expire_on_commit=False, autoflush=False, sync_session_class=self._sync_session_class
        )
        self._counters: list[StatementCounter] = []
        self._publishing: set[asyncio.Task[None]] = set()
        event.listen(self.engine.sync_engine, "before_cursor_execute", self._count)

    def _count(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        for counter in self._counters:
            counter.statements += 1
            counter.sql.append(statement)

    def publish_after_commit(self, publish: Callable[[str, dict[str, Any]], Awaitable[None]]) -> None:
        """Publish events queued with ``services.events.emit`` after COMMIT; drop them on rollback."""

        def after_commit(session: Session) -> None:
            pending = take_pending(session)
            if not pending:
                return
            loop = asyncio.get_running_loop()
            for channel, message in pending:
                task = loop.create_task(publish(channel, message))
                self._publishing.add(task)
                task.add_done_callback(self._published)

        def after_rollback(session: Session, previous: SessionTransaction) -> None:
            if previous.parent is None:  # the whole transaction, not a savepoint
                take_pending(session)

        event.listen(self._sync_session_class, "after_commit", after_commit)
        event.listen(self._sync_session_class, "after_soft_rollback", after_rollback)

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
        """A session for jobs, the CLI and tests; commits nothing by itself."""
        async with self.sessionmaker() as session:
            yield session

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
