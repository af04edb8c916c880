"""Keyset pagination: pages are found by the sort key of the last row seen, never by OFFSET."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Integer, Select, bindparam, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from models.plain import PlainQuery
from services.errors import DomainError

T = TypeVar("T")

MAX_PAGE_SIZE = 100

_BIGINT = 2**63


class InvalidCursor(DomainError):
    """A cursor that decodes but is not a sort key of this list (wrong length or types): the client's bug."""

    code = "INVALID_CURSOR"
    message = "Invalid cursor"


def _fits(value: Any, column: ColumnElement[Any] | InstrumentedAttribute[Any]) -> bool:
    """Whether a cursor value can be compared with ``column`` (same Python type, bigint range)."""
    try:
        expected = column.type.python_type
    except NotImplementedError:
        return True
    if isinstance(value, bool) or not isinstance(value, expected):
        return False
    if isinstance(value, int):
        return -_BIGINT <= value < _BIGINT
    if isinstance(value, datetime.datetime) and getattr(column.type, "timezone", False):
        return value.tzinfo is not None
    return True


def check_after(
    after: tuple[Any, ...], order_by: Sequence[ColumnElement[Any] | InstrumentedAttribute[Any]]
) -> None:
    """Raise :class:`InvalidCursor` unless ``after`` is a sort key of ``order_by`` (issue 16)."""
    if len(after) != len(order_by) or not all(_fits(v, c) for v, c in zip(after, order_by, strict=True)):
        raise InvalidCursor()


@dataclass(slots=True)
class Page(Generic[T]):
    """One page of rows, the sort key of each row (for cursors), and whether more rows follow."""

    items: list[T]
    keys: list[tuple[Any, ...]]
    has_next: bool
    total: int | None = None


async def keyset_page(
    session: AsyncSession,
    stmt: Select,  # any row shape (SQLAlchemy types a Select by its columns)
    *,
    order_by: Sequence[ColumnElement[Any] | InstrumentedAttribute[Any]],
    key: Callable[[Any], tuple[Any, ...]],
    first: int,
    after: tuple[Any, ...] | None = None,
    descending: bool = True,
    count_total: bool = False,
    scalars: bool = True,
) -> Page[Any]:
    """Run ``stmt`` ordered by ``order_by`` (unique together), starting after the key ``after``.

    ``key`` turns a result row into its sort key. ``first`` is clamped to 1..MAX_PAGE_SIZE. With
    ``count_total`` one more statement counts every row the filter matches.
    """
    limit = max(1, min(first, MAX_PAGE_SIZE))
    total = None
    if count_total:
        total = (
            await session.execute(select(func.count()).select_from(stmt.order_by(None).subquery()))
        ).scalar_one()
    page = stmt
    if after is not None:
        check_after(after, order_by)
        position = tuple_(*order_by)
        page = page.where(position < tuple_(*after) if descending else position > tuple_(*after))
    page = page.order_by(*(column.desc() if descending else column.asc() for column in order_by)).limit(
        limit + 1
    )
    result = await session.execute(page)
    rows = list(result.scalars() if scalars else result.all())
    has_next = len(rows) > limit
    rows = rows[:limit]
    return Page(items=rows, keys=[key(row) for row in rows], has_next=has_next, total=total)


LIMIT = "kabinet_limit"
"""The bind parameter of a :class:`PlainKeyset`'s LIMIT (the page size + 1)."""


def _after(position: int) -> str:
    return f"kabinet_after_{position}"


class PlainKeyset:
    """:func:`keyset_page` for one statement shape, as plain rows on asyncpg (issue 21).

    Built once per list (module level): the statements are compiled once and sent on the session's
    asyncpg connection (``models.plain.PlainQuery``); every value that differs per call is a bind
    parameter of ``stmt`` (``bindparam("user_id")``, …) given to :meth:`page`. With ``count_total`` the
    count of every row the filter matches comes with the page in the same statement — ``count(*) OVER ()``
    on the first page (the window counts before LIMIT: exactly what a separate count gives), the same
    count as a scalar subquery on later pages (the keyset condition must not narrow it). Only an empty
    later page (a cursor past the end) costs a second statement for the count.
    """

    def __init__(
        self,
        stmt: Select,  # any row shape
        *,
        order_by: Sequence[ColumnElement[Any] | InstrumentedAttribute[Any]],
        descending: bool = True,
        count_total: bool = False,
    ) -> None:
        self.order_by = list(order_by)
        self.count_total = count_total
        ordering = [column.desc() if descending else column.asc() for column in order_by]
        limit = bindparam(LIMIT, type_=Integer)
        count = select(func.count()).select_from(stmt.order_by(None).subquery())
        first = stmt.add_columns(func.count().over()) if count_total else stmt
        position = tuple_(*order_by)
        after = tuple_(*(bindparam(_after(n), type_=column.type) for n, column in enumerate(order_by)))
        later = stmt.where(position < after if descending else position > after)
        if count_total:
            later = later.add_columns(count.scalar_subquery())
        self._first = PlainQuery(first.order_by(*ordering).limit(limit))
        self._later = PlainQuery(later.order_by(*ordering).limit(limit))
        self._count = PlainQuery(count)

    async def page(
        self,
        session: AsyncSession,
        params: dict[str, Any],
        *,
        make: Callable[[Any], T],
        key: Callable[[T], tuple[Any, ...]],
        first: int,
        after: tuple[Any, ...] | None = None,
    ) -> Page[T]:
        """The page after the key ``after`` (``first`` clamped to 1..MAX_PAGE_SIZE): ``make`` turns a
        result row (``stmt``'s columns, then the count when counted) into an item, ``key`` an item into
        its sort key; ``params`` are ``stmt``'s bind parameters."""
        limit = max(1, min(first, MAX_PAGE_SIZE))
        if after is None:
            rows = await self._first.rows(session, {**params, LIMIT: limit + 1})
        else:
            check_after(after, self.order_by)
            bound = {_after(n): value for n, value in enumerate(after)}
            rows = await self._later.rows(session, {**params, **bound, LIMIT: limit + 1})
        total = None
        if self.count_total:
            if rows:
                total = int(rows[0][-1])
            elif after is None:
                total = 0  # the filter matches no row at all
            else:
                total = int((await self._count.rows(session, params))[0][0])
        has_next = len(rows) > limit
        items = [make(row) for row in rows[:limit]]
        return Page(items=items, keys=[key(item) for item in items], has_next=has_next, total=total)
