"""Database engine, sessions, and the statement counter that tests and benchmarks use."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


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
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._counters: list[StatementCounter] = []
        event.listen(self.engine.sync_engine, "before_cursor_execute", self._count)

    def _count(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        for counter in self._counters:
            counter.statements += 1
            counter.sql.append(statement)

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
