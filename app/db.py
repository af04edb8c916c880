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

from models.accounts import Account
from models.identity import User
from services.events import Touched, take_pending, take_touched, touch

log = logging.getLogger(__name__)

PRIVATE_TABLES = frozenset(
    {
        "outbox_messages",
        "refresh_tokens",
        "verification_codes",
        "audit_log",
        "idempotency_keys",
        "webhook_events",
        "scheduled_job_runs",
        "qr_login_challenges",
        "payment_status_changes",  # written with their payment (which has a user_id)
        "request_events",  # written with their appeal/application (which has a user_id)
        "attachments",
        "files",
    }
)
"""Tables whose rows no customer query shows by themselves: writing them never invalidates everybody."""


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

    def __init__(
        self, url: str, *, pool_size: int = 10, echo: bool = False, hide_parameters: bool = True
    ) -> None:
        """``hide_parameters`` (default) keeps SQL parameters — personal data, message bodies with codes —
        out of SQLAlchemy's statement log and error messages; the app shows them only in development."""
        self.url = async_url(url)
        self.engine: AsyncEngine = create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=False,
            echo=echo,
            hide_parameters=hide_parameters,
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

    def publish_after_commit(
        self,
        publish: Callable[[str, dict[str, Any]], Awaitable[None]],
        on_touched: Callable[[Touched], Awaitable[None]] | None = None,
    ) -> None:
        """After COMMIT: report touched users/accounts (cache versions), then publish queued events.

        Events queued with ``services.events.emit`` and touches (``services.events.touch``, plus every ORM
        row flushed with a ``user_id`` or ``account_id``) wait in the session; a rollback drops them.
        """

        def after_flush(session: Session, _context: Any) -> None:
            users: set[int] = set()
            accounts: set[int] = set()
            everyone = False
            for row in (*session.new, *session.dirty, *session.deleted):
                if isinstance(row, User):
                    users.add(row.id)
                elif isinstance(row, Account):
                    accounts.add(row.id)
                user_id = getattr(row, "user_id", None)
                account_id = getattr(row, "account_id", None)
                if user_id is not None:
                    users.add(user_id)
                if account_id is not None:
                    accounts.add(account_id)
                if (
                    user_id is None
                    and account_id is None
                    and not isinstance(row, User | Account)
                    and getattr(row, "__tablename__", None) not in PRIVATE_TABLES
                ):
                    everyone = True  # reference data (branches, tariffs, content…) is everybody's
            if users or accounts or everyone:
                touch(session, users=users, accounts=accounts, everyone=everyone)

        def after_commit(session: Session) -> None:
            pending = take_pending(session)
            touched = take_touched(session)
            touched.users.update(int(channel[5:]) for channel, _ in pending if channel.startswith("user:"))
            if not pending and not touched:
                return
            task = asyncio.get_running_loop().create_task(
                self._after_commit(publish, on_touched, pending, touched)
            )
            self._publishing.add(task)
            task.add_done_callback(self._published)

        def after_rollback(session: Session, previous: SessionTransaction) -> None:
            if previous.parent is None:  # the whole transaction, not a savepoint
                take_pending(session)
                take_touched(session)

        event.listen(self._sync_session_class, "after_flush", after_flush)
        event.listen(self._sync_session_class, "after_commit", after_commit)
        event.listen(self._sync_session_class, "after_soft_rollback", after_rollback)

    @staticmethod
    async def _after_commit(
        publish: Callable[[str, dict[str, Any]], Awaitable[None]],
        on_touched: Callable[[Touched], Awaitable[None]] | None,
        pending: list[tuple[str, dict[str, Any]]],
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
        """A session for jobs, the CLI and tests; commits nothing by itself.

        On exit it waits for the after-commit work (cache versions, events) of what it committed.
        """
        async with self.sessionmaker() as session:
            yield session
        await self.drain()

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
