"""The unit of work: one object per write that owns its transaction and says what the write changed.

Every write runs inside a :class:`UnitOfWork`, opened by whoever starts the work — a resolver
(``info.context.unit_of_work()``), a scheduled job or a CLI command (``db.unit_of_work()``) — never by a
service. The unit of work holds

- the transaction (its ``session``; services get that session and never commit or roll back),
- savepoints (:meth:`UnitOfWork.savepoint`: a failed step is undone, events it queued are dropped),
- the events to publish after COMMIT (:func:`emit`), and
- what cached answers the write makes stale (:func:`touch`): ``users``, every user of ``accounts``, the
  :class:`Reference` data kinds that changed (exactly the cached answers that show that kind are stale), or
  ``everyone`` (every cached answer — the conservative fallback).

A service declares what it touches *where it writes*: ``touch(session, users=[user_id])`` next to the
UPDATE, ``touch(session, reference=Reference.FAQ)`` next to the DELETE of an FAQ entry. Writes are seen by
SQLAlchemy events (:func:`watch`: ORM flushes and INSERT/UPDATE/DELETE statements run through the
session); a unit of work that wrote but declared nothing is a bug: in strict mode (tests) its COMMIT raises
:class:`UndeclaredWrite` (nothing is written), otherwise it logs an error and makes everything stale.
Rows that no cached answer shows (audit log, codes, outbox…) are declared with
``touch(session, private=AuditLogEntry)``; they do not count as a declaration for any other table written.

Nothing here publishes or bumps: after COMMIT the unit of work hands what it collected (:class:`Touched`,
the events) to the ``after_commit`` hook the application installed (``app.db``), which bumps the result
cache's versions (``app.cache``) and publishes the events (``app.broadcast``) before the writer answers.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.sql.elements import TextClause

log = logging.getLogger("kabinet.unit_of_work")

INFO_KEY = "kabinet_unit_of_work"


class Reference(StrEnum):
    """Kinds of reference data: shared by every customer, versioned one by one in the result cache.

    A cached answer depends on a kind when its query selects a GraphQL type of that kind (the map is
    ``schema.cache_tags.REFERENCE_TYPES``); declaring a kind makes exactly those answers stale."""

    FAQ = "faq"
    SHOP = "shop"
    SURVEYS = "surveys"
    PROMOTIONS = "promotions"
    OFFICES = "offices"
    """Offices and their appointment slots (free places change with every booking)."""
    BRANCHES = "branches"
    """Branches, suppliers, services and tariffs."""


@dataclass
class Touched:
    """What one transaction changed, as far as cached query results are concerned."""

    users: set[int] = field(default_factory=set)
    accounts: set[int] = field(default_factory=set)
    references: set[Reference] = field(default_factory=set)
    everyone: bool = False

    def __bool__(self) -> bool:
        return bool(self.users or self.accounts or self.references or self.everyone)


class UndeclaredWrite(RuntimeError):
    """A unit of work wrote rows but declared nothing it touched (a forgotten cache invalidation)."""


Event = tuple[str, dict[str, Any]]


class Record:
    """What one transaction of a session declared, queued and wrote (a unit of work's bookkeeping).

    A plain session (test fixtures arranging data) gets an implicit record: never strict, and an
    undeclared write there makes everything stale."""

    def __init__(self, *, strict: bool = False, explicit: bool = False) -> None:
        self.strict = strict
        self.explicit = explicit
        self.touched = Touched()
        self.declared = False
        self.events: list[Event] = []
        self.written: set[str] = set()
        """Tables (``"sql"`` for textual statements) written in the current transaction."""
        self.private: set[str] = set()
        """Tables declared private (``touch(private=Model)``): in no cached answer."""
        self.after_commit: list[Awaitable[None]] = []
        """The application's after-commit work for what was committed (``app.db`` adds it)."""

    @staticmethod
    def of(session: AsyncSession | Session) -> Record:
        """The record of ``session``: its unit of work's, or an implicit one for a plain session."""
        sync = session.sync_session if isinstance(session, AsyncSession) else session
        found = sync.info.get(INFO_KEY)
        if found is None:
            found = sync.info[INFO_KEY] = Record()
        return found

    def touch(
        self,
        *,
        users: Iterable[int | None] = (),
        accounts: Iterable[int | None] = (),
        reference: Reference | Iterable[Reference] = (),
        everyone: bool = False,
        private: type | Iterable[type] = (),
    ) -> None:
        """Declare what this write makes stale once it commits (see :func:`touch`)."""
        tables = (private,) if isinstance(private, type) else tuple(private)
        self.private.update(str(getattr(model, "__tablename__", model.__name__)) for model in tables)
        user_ids = {u for u in users if u is not None}
        account_ids = {a for a in accounts if a is not None}
        kinds = {reference} if isinstance(reference, Reference) else set(reference)
        if tables and not (user_ids or account_ids or kinds or everyone):
            return  # only private rows: no answer to make stale
        self.declared = True
        self.touched.users.update(user_ids)
        self.touched.accounts.update(account_ids)
        self.touched.references.update(kinds)
        self.touched.everyone = self.touched.everyone or everyone

    def emit(self, channel: str, message: dict[str, Any]) -> None:
        """Queue ``message`` for ``channel``, published after COMMIT (a rollback drops it)."""
        self.events.append((channel, message))
        if channel.startswith("user:"):  # a user's live event: that user's cached answers change too
            self.touched.users.add(int(channel[5:]))

    def check(self) -> None:
        """Before COMMIT: every write must have been declared (see the module doc)."""
        if self.declared or not self.written - self.private:
            return
        tables = ", ".join(sorted(self.written - self.private))
        if self.strict:
            raise UndeclaredWrite(
                f"this unit of work wrote ({tables}) but declared nothing it touches: call "
                "services.unit_of_work.touch(session, users=…, accounts=…, reference=…) where it writes"
            )
        if self.explicit:
            log.error("undeclared write (%s): every cached answer is made stale", tables)
        self.touched.everyone = True

    def take(self) -> tuple[Touched, list[Event]]:
        """After COMMIT: what to bump and publish; the record starts afresh for the next transaction."""
        taken = self.touched, self.events
        self.reset()
        return taken

    def reset(self) -> None:
        """Forget the current transaction (after COMMIT or ROLLBACK)."""
        self.touched = Touched()
        self.events = []
        self.written = set()
        self.private = set()
        self.declared = False


class UnitOfWork(Record):
    """One write: its session, savepoints, declared touches and queued events (see the module doc).

    Open it with ``info.context.unit_of_work()`` (resolvers) or ``db.unit_of_work()`` (jobs, CLI): the
    block commits when it ends normally and rolls back when it raises."""

    def __init__(self, session: AsyncSession, *, strict: bool = False) -> None:
        super().__init__(strict=strict, explicit=True)
        self.session = session

    def attach(self) -> None:
        """Make this the unit of work of its session (what :func:`touch` and :func:`emit` find)."""
        self.session.sync_session.info[INFO_KEY] = self

    def detach(self) -> None:
        """Forget this unit of work on its session (a request's session lives on for reads)."""
        info = self.session.sync_session.info
        if info.get(INFO_KEY) is self:
            del info[INFO_KEY]

    def savepoint(self) -> contextlib.AbstractAsyncContextManager[None]:
        """A step that succeeds or fails on its own: an exception rolls back to the savepoint (and drops the
        events queued inside), then propagates."""
        return savepoint(self.session)

    async def commit(self) -> None:
        """COMMIT (the check for undeclared writes runs first), then wait for the application's
        after-commit work (cache versions bumped, events published) so the writer answers after it."""
        await self.session.commit()
        await self.settle()

    async def rollback(self) -> None:
        """Roll the whole transaction back: nothing is published, nothing bumped."""
        await self.session.rollback()

    async def settle(self) -> None:
        """Wait for the after-commit work of what this unit of work committed."""
        while self.after_commit:
            await self.after_commit.pop(0)


Units = Callable[[], contextlib.AbstractAsyncContextManager[UnitOfWork]]
"""A unit-of-work factory (``db.unit_of_work``): jobs open one unit of work per item with it."""


def touch(
    session: AsyncSession | Session,
    *,
    users: Iterable[int | None] = (),
    accounts: Iterable[int | None] = (),
    reference: Reference | Iterable[Reference] = (),
    everyone: bool = False,
    private: type | Iterable[type] = (),
) -> None:
    """Declare, where a service writes, what the write makes stale once its unit of work commits.

    ``users``: those users' cached answers; ``accounts``: every user linked to them; ``reference``: every
    answer that shows that kind of reference data; ``everyone``: every answer (use sparingly);
    ``private=Model`` (or several): rows of these models are in no cached answer (audit log, one-time
    codes, outbox…) — they need no other declaration; every other table written does.
    """
    Record.of(session).touch(
        users=users, accounts=accounts, reference=reference, everyone=everyone, private=private
    )


@contextlib.asynccontextmanager
async def savepoint(session: AsyncSession) -> AsyncIterator[None]:
    """A step of the session's unit of work that succeeds or fails on its own (a service racing a unique
    key uses it): an exception rolls back to the savepoint, drops the events queued inside, propagates."""
    record = Record.of(session)
    queued = len(record.events)
    nested = await session.begin_nested()
    try:
        yield
    except BaseException:
        await nested.rollback()
        del record.events[queued:]
        raise
    await nested.commit()


def emit(session: AsyncSession | Session, channel: str, message: dict[str, Any]) -> None:
    """Queue ``message`` for ``channel`` (e.g. ``user:42``), published after the unit of work commits."""
    Record.of(session).emit(channel, message)


def _dml(state: ORMExecuteState) -> str | None:
    if state.is_insert or state.is_update or state.is_delete:
        table = getattr(getattr(state.statement, "table", None), "name", None)
        return str(table or "dml")
    statement = state.statement
    if isinstance(statement, TextClause):
        head = statement.text.lstrip().split(None, 1)[:1]
        if head and head[0].upper() in ("INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "WITH"):
            simple = _SIMPLE_DML.match(statement.text)
            return simple.group(1).lower() if simple else "sql"
    return None


_SIMPLE_DML = re.compile(
    r"\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?)\s+([a-z_][a-z0-9_]*)\b", re.IGNORECASE
)
"""A textual statement that writes one named table (its name counts like an ORM write's: a ``private=``
declaration covers it); anything else (CTEs, MERGE) counts as ``sql`` and needs a real declaration."""


def watch(session_class: type[Session], after_commit: Callable[[Record], None]) -> None:
    """Install the write detector and the commit/rollback bookkeeping on a session class.

    ``after_commit`` receives the session's record right after each COMMIT; the application takes what
    it collected (:meth:`Record.take`) and appends its work to ``record.after_commit``.
    """

    def after_flush(session: Session, _context: Any) -> None:
        rows = (*session.new, *session.dirty, *session.deleted)
        if rows:
            record = Record.of(session)
            for row in rows:
                record.written.add(str(getattr(row, "__tablename__", type(row).__name__)))

    def do_orm_execute(state: ORMExecuteState) -> None:
        what = _dml(state)
        if what is not None:
            Record.of(state.session).written.add(what)

    def before_commit(session: Session) -> None:
        if session.in_nested_transaction():
            return  # a savepoint's release (SQLAlchemy fires the commit events for savepoints too)
        session.flush()  # COMMIT flushes after this hook: flush now so the check sees every write
        found: Record | None = session.info.get(INFO_KEY)
        if found is not None:
            found.check()

    def on_commit(session: Session) -> None:
        if session.in_nested_transaction():
            return
        found: Record | None = session.info.get(INFO_KEY)
        if found is not None:
            after_commit(found)

    def after_rollback(session: Session, previous: SessionTransaction) -> None:
        found: Record | None = session.info.get(INFO_KEY)
        if found is not None and previous.parent is None:  # the whole transaction, not a savepoint
            found.reset()

    event.listen(session_class, "after_flush", after_flush)
    event.listen(session_class, "do_orm_execute", do_orm_execute)
    event.listen(session_class, "before_commit", before_commit)
    event.listen(session_class, "after_commit", on_commit)
    event.listen(session_class, "after_soft_rollback", after_rollback)


__all__ = [
    "Record",
    "Reference",
    "Touched",
    "UndeclaredWrite",
    "UnitOfWork",
    "Units",
    "emit",
    "savepoint",
    "touch",
    "watch",
]
