"""Users and the current caller: loaders and thin resolvers."""

from __future__ import annotations

from typing import Any

from models.identity import User
from resolvers.loaders import ById
from schema.permissions import viewer


class UserById(ById):
    """Users by id."""

    model = User


def may_see_user(info: Any, user_id: int) -> bool:
    """A customer sees only themself; operators and admins see anybody (analysts see no personal data)."""
    found = viewer(info)
    return found is not None and (found.user_id == user_id or found.role in ("OPERATOR", "ADMIN"))


async def me(info: Any) -> User | None:
    """The caller's user row; None when anonymous or the cabinet was deleted."""
    found = viewer(info)
    if found is None:
        return None
    user: User | None = await info.context.loader(UserById).load(found.user_id)
    return user if user is not None and user.deleted_at is None else None


async def users_by_ids(info: Any, ids: list[int]) -> list[User | None]:
    """Users by id, None where missing or not visible to the caller."""
    rows = await info.context.loader(UserById).load_many(ids)
    return [row if row is not None and may_see_user(info, row.id) else None for row in rows]
