"""What the information sections share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from resolvers.context import Info
from resolvers.permissions import require_role
from services.errors import DomainError

T = TypeVar("T")


def require_admin(info: Info) -> Any:
    """Content is managed by the ADMIN role only (others get FORBIDDEN)."""
    return require_role(info, "ADMIN")


async def read(info: Info, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async with info.context.session() as session:
        return await work(session)


async def write(
    info: Info, work: Callable[[AsyncSession], Awaitable[T]]
) -> tuple[T | None, list[DomainError]]:
    """Run ``work`` in a unit of work (``info.context.unit_of_work``); a domain error rolls it back and is
    returned instead."""
    try:
        async with info.context.unit_of_work() as uow:
            return await work(uow.session), []
    except DomainError as error:
        return None, [error]


def owned_only(info: Info, rows: list[Any]) -> list[Any]:
    viewer = info.context.viewer
    return [
        row if row is not None and viewer is not None and row.user_id == viewer.user_id else None
        for row in rows
    ]
