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


def grouped(rows: Any, keys: list[K], attribute: str) -> list[list[Any]]:
    """Group ``rows`` by ``getattr(row, attribute)`` into one list per key, in key order."""
    groups: dict[Any, list[Any]] = {key: [] for key in keys}
    for row in rows:
        groups.setdefault(getattr(row, attribute), []).append(row)
    return [groups[key] for key in keys]
