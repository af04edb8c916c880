"""Keyset pagination: pages are found by the sort key of the last row seen, never by OFFSET."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

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
