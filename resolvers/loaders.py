"""Base classes of the per-request dataloaders (one instance per scope, see ``app.context.DbScope``).

Every relation resolved under a list goes through a loader, so a query's statement count does not grow
with the number of rows. Name loaders ``<Thing>By<Key>``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from aiodataloader import DataLoader
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.plain import PlainQuery, Reads, plain, plain_select
from resolvers.context import DbScope
from services import clock
from services.unit_of_work import Reference

K = TypeVar("K")
V = TypeVar("V")


class Loader(DataLoader, Generic[K, V]):
    """A DataLoader whose batches run on its scope's (serialized) session."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """What ``DataLoader.__init__`` checks of every instance, checked once per class: the batch function
        is a coroutine function."""
        super().__init_subclass__(**kwargs)
        if not inspect.iscoroutinefunction(cls.batch_load_fn):
            raise TypeError(f"{cls.__name__}.batch_load_fn must be a coroutine function")

    def __init__(self, scope: DbScope) -> None:
        """The state ``DataLoader.__init__`` sets (no options: batching and caching on), without its checks
        of the batch function per instance: a request creates a loader per relation it resolves, and those
        checks (``asyncio.iscoroutinefunction``, ``get_event_loop``) were ~3 % of an uncached dashboard's
        CPU (issue 21). aiodataloader is pinned to 0.4.x, whose ``__init__`` this mirrors; a test compares
        the two."""
        self.loop = asyncio.get_running_loop()
        self._cache: dict[Any, asyncio.Future[Any]] = {}
        self._queue: list[Any] = []
        self.scope = scope

    @staticmethod
    def get_cache_key(key: Any) -> Any:
        """The key itself (aiodataloader's default, without a lambda per instance)."""
        return key

    async def batch_load_fn(self, keys: Sequence[K]) -> list[V]:
        """aiodataloader's hook: opens the scope's session and delegates to :meth:`load_batch`."""
        async with self.scope.session() as session:
            return await self.load_batch(session, list(keys))

    async def load_batch(self, session: AsyncSession, keys: list[K]) -> list[V]:
        """Values for ``keys``, in the same order, in as few statements as possible (usually one)."""
        raise NotImplementedError


class SharedLoader(Loader[K, V]):
    """A loader whose batches read only through ``models.plain.PlainQuery``: its :meth:`load_batch` gets the
    scope's ``SharedReads`` instead of the locked session, so the batches that the loaders of one level
    send at the same moment (the dashboard's balance, meters and charges) go to PostgreSQL as one statement
    (issue 21). A batch that needs the session itself (ORM, writes) belongs in a plain :class:`Loader`:
    ``SharedReads`` has no ``execute``, so a mistake fails at once."""

    async def batch_load_fn(self, keys: Sequence[K]) -> list[V]:
        """aiodataloader's hook: delegates to :meth:`load_batch` with the scope's shared reads."""
        return await self.load_batch(self.scope.reads, list(keys))

    async def load_batch(self, session: Reads, keys: list[K]) -> list[V]:
        """Values for ``keys``, in the same order, read through ``PlainQuery.rows(session, …)``."""
        raise NotImplementedError


class ById(Loader[int, Any]):
    """Rows of ``model`` by primary key (None where missing)."""

    model: ClassVar[Any]
    _statement: ClassVar[Any] = None

    @classmethod
    def statement(cls) -> Any:
        """``SELECT … WHERE id IN (:ids)``, built once per class (building and keying a statement costs
        more than running a small one; SQLAlchemy memoizes the cache key of a statement object)."""
        if cls.__dict__.get("_statement") is None:
            cls._statement = select(cls.model).where(cls.model.id.in_(bindparam("ids", expanding=True)))
        return cls._statement

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[Any]:
        rows: Any = (await session.execute(self.statement(), {"ids": keys})).scalars()
        found = {row.id: row for row in rows}
        return [found.get(key) for key in keys]


CAST = ("__as_strawberry_type__",)
"""The attribute ``strawberry.cast`` sets (``schema.node.as_node``): plain rows of Node types keep a slot."""


class PlainById(SharedLoader[int, Any]):
    """Rows of ``model`` by primary key as plain rows (``models.plain``; None where missing): for reference
    data that requests only read. One statement text for any number of ids, sent on asyncpg directly
    (``models.plain.PlainQuery``). The rows are not in the session: never write them.
    """

    model: ClassVar[Any]
    _query: ClassVar[PlainQuery | None] = None
    _row: ClassVar[type | None] = None

    @classmethod
    def row_class(cls) -> type:
        """The plain-row class of ``model`` (also what the schema's ``is_type_of`` accepts)."""
        return plain(cls.model, extra=CAST)

    @classmethod
    def query(cls) -> PlainQuery:
        """``SELECT … WHERE id = ANY(:ids)``, built once per class."""
        if cls.__dict__.get("_query") is None:
            table = cls.model.__table__
            cls._query = PlainQuery(
                plain_select(cls.model).where(table.c.id.in_(bindparam("ids", expanding=True)))
            )
            cls._row = cls.row_class()
        assert cls._query is not None
        return cls._query

    async def load_batch(self, session: Reads, keys: list[int]) -> list[Any]:
        query = self.query()
        make = self._row
        assert make is not None
        rows = await query.rows(session, {"ids": keys})
        found = {row.id: row for row in (make(*values) for values in rows)}
        return [found.get(key) for key in keys]


REFERENCE_ROWS = "reference_rows"
"""``state.extras`` key of the reference rows an app keeps between requests (:class:`ReferenceById`)."""
REFERENCE_ROWS_MAX = 10_000
"""Rows kept per loader class at most (reference tables hold hundreds; a bound all the same)."""
REFERENCE_ROWS_MAX_AGE = dt.timedelta(minutes=5)
"""Rows are read again at least this often, even without a bump (a bump lost in a Redis outage)."""


class ReferenceById(PlainById):
    """:class:`PlainById` for reference data that only the billing import writes (branches, suppliers,
    services: ``Reference.BRANCHES``), with the rows kept in the app's memory between requests — every
    dashboard shows the same few dozen, and reading them cost three statements per dashboard (issue 21).

    Never stale: the rows are kept for one *version* of the reference kind (``DbScope.reference_version``:
    the result cache's version of the kind and of "everyone", which the unit of work bumps after COMMIT and
    before the writing request answers, ``services.unit_of_work.touch(reference=…)``); a scope that sees
    another version drops them and reads again. Rows are read after the version, so what is kept under a
    version is at least as new as that version. Without a readable version (no Redis, no versions) every
    batch reads PostgreSQL as :class:`PlainById` does. Ids not kept (new rows) are read, and only the
    missing ones. The rows are shared by requests: read only, as every plain row.
    """

    reference: ClassVar[str] = Reference.BRANCHES.value

    async def batch_load_fn(self, keys: Sequence[int]) -> list[Any]:
        """Kept rows without opening the session; the rest as :class:`PlainById` reads them."""
        version = await self.scope.reference_version(self.reference)
        if version is None:
            return await super().batch_load_fn(keys)
        extras = self.scope.context.state.extras
        kept: dict[type, tuple[str, dt.datetime, dict[int, Any]]] = extras.setdefault(REFERENCE_ROWS, {})  # type: ignore[assignment]
        now = clock.now()
        held = kept.get(type(self))
        if (
            held is None
            or held[0] != version
            or now - held[1] > REFERENCE_ROWS_MAX_AGE
            or len(held[2]) > REFERENCE_ROWS_MAX
        ):
            held = kept[type(self)] = (version, now, {})
        rows = held[2]
        missing = [key for key in dict.fromkeys(keys) if key not in rows]
        if missing:
            loaded = await self.load_batch(self.scope.reads, missing)
            for key, row in zip(missing, loaded, strict=True):
                if row is not None:
                    rows[key] = row
        return [rows.get(key) for key in keys]


def grouped(rows: Any, keys: list[K], attribute: str) -> list[list[Any]]:
    """Group ``rows`` by ``getattr(row, attribute)`` into one list per key, in key order."""
    groups: dict[Any, list[Any]] = {key: [] for key in keys}
    for row in rows:
        groups.setdefault(getattr(row, attribute), []).append(row)
    return [groups[key] for key in keys]
