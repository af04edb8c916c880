"""Request context, built by the app for every request: the caller, one database session per request
(or per subscription event), loaders.

Strawberry resolves sibling fields concurrently, and an ``AsyncSession`` must not be used by two
coroutines at once, so every use of the session goes through :meth:`DbScope.session`, which serializes
access with a lock. Loaders are created lazily per scope: per HTTP request, and per subscription *event*
on websockets (:meth:`Context.new_event_scope`), so a long-lived connection never serves stale values.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast
from zoneinfo import ZoneInfo

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.plain import SharedReads
from services import clock
from services.unit_of_work import UnitOfWork

L = TypeVar("L")


class AppParts(Protocol):
    """What a request needs of the process's long-lived state (``app.state.AppState`` is one): the app
    passes it in, so this layer never imports ``app`` (issue 19, docs/architecture.md)."""

    @property
    def settings(self) -> Any:
        """The process's settings (``app.settings.Settings``)."""

    @property
    def db(self) -> Any:
        """The database (``app.db.Database``): its ``sessionmaker`` opens sessions."""

    @property
    def bus(self) -> Any:
        """The event bus (``app.broadcast.EventBus``): publish, subscribe, listen."""

    @property
    def analytics_db(self) -> Any:
        """The analytics read replica (``app.db.Database``) when configured, else None."""

    @property
    def extras(self) -> dict[str, object]:
        """Per-process objects built on first use (gateways, rate-limit counters, gates)."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """The authenticated caller, taken from a verified access token."""

    user_id: int
    role: str
    session_id: int
    expires_at: dt.datetime | None = None
    """When the access token expires (a websocket is closed then, ``app.revocation``)."""


class DbScope:
    """One lazily opened ``AsyncSession`` plus the loaders that read through it."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], context: Context) -> None:
        self._sessionmaker = sessionmaker
        self._session: AsyncSession | None = None
        self._closed = False
        self._lock = asyncio.Lock()
        self._loaders: dict[type, Any] = {}
        self._versions: dict[str, asyncio.Future[str | None]] = {}
        self._context = None if context is None else weakref.ref(context)
        scope = weakref.ref(self)

        def exclusive() -> contextlib.AbstractAsyncContextManager[AsyncSession]:
            alive = scope()
            if alive is None:  # nothing that can still read holds the scope: cannot happen
                raise RuntimeError("the scope of these reads is gone")
            return alive.session()

        self.reads = SharedReads(exclusive)
        """This scope's plain reads, sent together (``models.plain.SharedReads``; :class:`SharedLoader`)."""

    @property
    def context(self) -> Context:
        """The request's (or websocket's) context, None in a scope made without one.

        Held weakly, as the shared reads hold the scope: a reference cycle kept a request's whole object
        graph (context, session, connection, rows, its execution's objects) alive after it ended until the
        cyclic collector found it — ~150 objects a request, and 20–30 ms collections of the young
        generations every few seconds that stalled every request in flight (issue 21, bench/README.md).
        The context outlives its scopes: it closes them."""
        return None if self._context is None else self._context()  # type: ignore[return-value]

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """Exclusive use of this scope's session; never call a loader while holding it."""
        async with self._lock:
            if self._closed:  # a straggler after the request ended: its own session, closed at once
                async with self._sessionmaker() as late:
                    yield late
                return
            if self._session is None:
                self._session = self._sessionmaker()
            yield self._session

    def loader(self, cls: type[L]) -> L:
        """The instance of loader class ``cls`` for this scope (created on first use)."""
        found = self._loaders.get(cls)
        if found is None:
            found = self._loaders[cls] = cast(Any, cls)(self)  # every loader class takes its scope
        return found

    async def reference_version(self, kind: str) -> str | None:
        """The version of reference data ``kind`` (``services.unit_of_work.Reference``) as this scope sees
        it: read once per scope (request or subscription event) from what the app provides as
        ``state.extras["reference_version"]`` (``app.cache.ResultCache.reference_version``); None when the
        app keeps no versions or they cannot be read — then nothing may be served from memory."""
        found = self._versions.get(kind)
        if found is None:
            state = getattr(self.context, "state", None)  # a scope without a context keeps no versions
            read = state.extras.get("reference_version") if state is not None else None
            if read is None:
                return None
            found = self._versions[kind] = asyncio.ensure_future(cast(Any, read)(kind))
        return await found

    async def close(self) -> None:
        """Roll back anything uncommitted and return the connection to the pool, once whatever still uses
        the session is done (a loader batch the fast executor started before it gave up keeps running)."""
        async with self._lock:
            self._closed = True
            if self._session is not None:
                session, self._session = self._session, None
                await session.close()
            # Loaders point back at this scope: dropping them breaks the cycle, so what they loaded (a
            # dashboard's rows) is freed at once by reference counting, not later by the cyclic collector.
            self._loaders = {}


_event_scope: contextvars.ContextVar[DbScope | None] = contextvars.ContextVar(
    "kabinet_event_scope", default=None
)


class Context:
    """What every resolver gets as ``info.context``."""

    def __init__(
        self,
        state: AppParts,
        *,
        viewer: Viewer | None,
        client_ip: str | None,
        user_agent: str | None,
        request: Any = None,
        connection_params: dict[str, Any] | None = None,
    ) -> None:
        self.state = state
        self.settings = state.settings
        self.viewer = viewer
        self.client_ip = client_ip
        self.user_agent = user_agent
        self.request = request
        self.connection_params = connection_params or {}
        self.answer_objects: int | None = None
        """Objects in the last operation's answer when the fast executor counted them (app/cost.py)."""
        self._scope = DbScope(state.db.sessionmaker, self)
        self._scopes: list[DbScope] = [self._scope]

    @property
    def scope(self) -> DbScope:
        """The current scope: this task's subscription event's if one is active, else the request's."""
        return _event_scope.get() or self._scope

    def session(self) -> contextlib.AbstractAsyncContextManager[AsyncSession]:
        """Exclusive use of the current scope's session (see :class:`DbScope`)."""
        return self.scope.session()

    @contextlib.asynccontextmanager
    async def unit_of_work(
        self, *, commit_on: tuple[type[BaseException], ...] = ()
    ) -> AsyncIterator[UnitOfWork]:
        """The one way a resolver writes: a unit of work on the current scope's session
        (``services.unit_of_work``). The block commits when it ends normally and rolls back when it raises
        — except for the exception types in ``commit_on``, which commit first (failed code attempts must
        count) and then propagate. Holds the session: never call a loader inside the block."""
        async with self.session() as session:
            work = UnitOfWork(session, strict=self.state.db.strict)
            work.attach()
            try:
                try:
                    yield work
                except commit_on:
                    await _commit(work)
                    raise
                except BaseException:
                    await work.rollback()
                    raise
                await _commit(work)
            finally:
                work.detach()

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """The current scope's session for a read that ends its transaction when done (a long-lived
        subscription must not keep one open between events). It ends with COMMIT, not ROLLBACK: a rollback
        would expire the rows just read (``expire_on_commit`` is off)."""
        async with self.session() as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
            await session.commit()

    def loader(self, cls: type[L]) -> L:
        """The current scope's instance of a loader class."""
        return self.scope.loader(cls)

    async def new_event_scope(self) -> None:
        """Start a fresh scope for the next subscription event in this task (closing the previous one)."""
        previous = _event_scope.get()
        if previous is not None:
            await previous.close()
            self._scopes.remove(previous)
        scope = DbScope(self.state.db.sessionmaker, self)
        self._scopes.append(scope)
        _event_scope.set(scope)

    @property
    def base_url(self) -> str:
        """Where links in this answer point: ``KABINET_PUBLIC_URL`` when set, else the address the client
        reached this server at (behind a proxy, uvicorn's proxy headers make that the public one)."""
        if self.settings.public_url or self.request is None:
            return self.settings.base_url
        url = self.request.base_url  # a websocket's is ws(s)://: links are for browsers
        return str(url.replace(scheme={"ws": "http", "wss": "https"}.get(url.scheme, url.scheme))).rstrip("/")

    @property
    def now(self) -> dt.datetime:
        """Current time, UTC, from the process's one clock (:mod:`services.clock`)."""
        return clock.now()

    @property
    def today(self) -> dt.date:
        """Today's date in the company's time zone."""
        return self.now.astimezone(ZoneInfo(self.settings.time_zone)).date()

    async def close(self) -> None:
        """Close every scope's session (end of the HTTP request or websocket connection)."""
        for scope in self._scopes:
            await scope.close()


Info = strawberry.Info[Context, None]
"""What a resolver's ``info`` is: Strawberry's, with our :class:`Context` (issue 19: typed, not ``Any``)."""


async def _commit(work: UnitOfWork) -> None:
    """Commit; a COMMIT that fails (an undeclared write in strict mode, a conflict) rolls back."""
    try:
        await work.commit()
    except BaseException:
        await work.rollback()
        raise
