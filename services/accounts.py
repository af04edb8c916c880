"""Accounts (лицевые счета) and their links to users: who may see which account.

A customer sees an account only while it is linked to them; staff roles see every account. Every
path to account data (fields, ``node(id:)``, mutations) asks :func:`visible_account_ids` or
:func:`require_linked_account`.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.accounts import UserAccount
from services.errors import NotFound

STAFF_ROLES = frozenset({"OPERATOR", "ANALYST", "ADMIN"})


class AccountNotFound(NotFound):
    """The account does not exist or is not linked to the caller (never told apart)."""

    code = "ACCOUNT_NOT_FOUND"
    message = "Данный лицевой счет не найден"


async def linked_account_ids(session: AsyncSession, user_id: int) -> list[int]:
    """Ids of the accounts linked to ``user_id``, in the order they were linked."""
    rows = await session.execute(
        select(UserAccount.account_id)
        .where(UserAccount.user_id == user_id)
        .order_by(UserAccount.linked_at, UserAccount.id)
    )
    return list(rows.scalars())


async def visible_account_ids(
    session: AsyncSession, user_id: int, role: str, account_ids: Iterable[int]
) -> set[int]:
    """The subset of ``account_ids`` the caller may see."""
    wanted = set(account_ids)
    if role in STAFF_ROLES:
        return wanted
    return wanted & set(await linked_account_ids(session, user_id))


async def require_linked_account(session: AsyncSession, user_id: int, account_id: int) -> UserAccount:
    """The caller's link to ``account_id``; :class:`AccountNotFound` when it is not theirs."""
    link = (
        await session.execute(
            select(UserAccount).where(UserAccount.user_id == user_id, UserAccount.account_id == account_id)
        )
    ).scalar_one_or_none()
    if link is None:
        raise AccountNotFound(field=["input", "accountId"])
    return link
