"""Base classes of the per-request dataloaders (one instance per scope, see ``app.context.DbScope``).

Every relation resolved under a list goes through a loader, so a query's statement count does not grow
with the number of rows. Name loaders ``<Thing>By<Key>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from aiodataloader import DataLoader
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.plain import PlainQuery, plain, plain_select
from resolvers.context import DbScope

K = TypeVar("K")
V = TypeVar("V")


class Loader(DataLoader, Generic[K, V]):
    """A DataLoader whose batches run on its scope's (serialized) session."""

    def __init__(self, scope: DbScope) -> None:
        super().__init__()
        self.scope = scope

    async def batch_load_fn(self, keys: Sequence[K]) -> list[V]:
        """aiodataloader's hook: opens the scope's session and delegates to :meth:`load_batch`."""
        async with self.scope.session() as session:
            return await self.load_batch(session, list(keys))

    async def load_batch(self, session: AsyncSession, keys: list[K]) -> list[V]:
        """Values for ``keys``, in the same order, in as few statements as possible (usually one)."""
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


class PlainById(Loader[int, Any]):
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

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[Any]:
        query = self.query()
        make = self._row
        assert make is not None
        rows = await query.rows(session, {"ids": keys})
        found = {row.id: row for row in (make(*values) for values in rows)}
        return [found.get(key) for key in keys]


def grouped(rows: Any, keys: list[K], attribute: str) -> list[list[Any]]:
    """Group ``rows`` by ``getattr(row, attribute)`` into one list per key, in key order."""
    groups: dict[Any, list[Any]] = {key: [] for key in keys}
    for row in rows:
        groups.setdefault(getattr(row, attribute), []).append(row)
    return [groups[key] for key in keys]
