"""Accounts (B1–B4, C1, J5): loaders and thin resolvers.

Visibility: an ``Account`` value only ever comes from :func:`linked_accounts` or :func:`accounts_by_ids`
(both apply the rule of :mod:`services.accounts`), so fields under an account need no second check.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.accounts import Account, AccountService, UserAccount
from models.payments import AutopaySetting
from models.plain import PlainQuery, Reads, plain, plain_columns, plain_rows, plain_select
from resolvers.branches import BranchById
from resolvers.context import Info
from resolvers.loaders import Loader, PlainById, SharedLoader, grouped
from resolvers.permissions import require_viewer
from services import accounts
from services.accounts import WindowCountdown
from services.pagination import Page, PlainKeyset
from services.roles import reads_customer_data


class AccountById(PlainById):
    """Accounts by id as plain :data:`AccountRow` rows (no visibility rule: callers apply it; read only:
    mutations read their ORM instances in their unit of work). The accounts page primes it."""

    model = Account


AccountRow = AccountById.row_class()
"""Accounts as plain rows (``models.plain``; the schema's ``Account`` accepts them): the accounts page's and
:class:`AccountById`'s (issue 21)."""

LinkRow = plain(UserAccount)
"""The viewer's links as plain rows (``models.plain``): :class:`LinkByAccountId`'s and the accounts page's."""

_LINKS = PlainQuery(
    plain_select(UserAccount).where(
        UserAccount.user_id == bindparam("user_id"),
        UserAccount.account_id.in_(bindparam("ids", expanding=True)),
    )
)


class LinkByAccountId(SharedLoader[int, Any]):
    """The viewer's own link to each account (display name, e-receipt), None where not linked: plain
    :data:`LinkRow` rows, read only (the link mutations prime their ORM instances)."""

    async def load_batch(self, session: Reads, keys: list[int]) -> list[Any]:
        viewer = self.scope.context.viewer
        if viewer is None:
            return [None for _ in keys]
        rows = await _LINKS.rows(session, {"user_id": viewer.user_id, "ids": keys})
        found = {link.account_id: link for link in plain_rows(LinkRow, rows)}
        return [found.get(key) for key in keys]


_ACCOUNTS_AND_LINKS = PlainQuery(
    select(*plain_columns(Account), *plain_columns(UserAccount))
    .outerjoin(
        UserAccount,
        and_(UserAccount.account_id == Account.id, UserAccount.user_id == bindparam("user_id")),
    )
    .where(Account.id.in_(bindparam("ids", expanding=True)))
)
"""Accounts by id with the viewer's link to each (one at most: unique per user and account), built once."""
_ACCOUNT_WIDTH = len(plain_columns(Account))
_LINK_ID = _ACCOUNT_WIDTH + [column.key for column in plain_columns(UserAccount)].index("id")


class AccountAndLinkById(SharedLoader[int, tuple[Any, Any]]):
    """Account id → (plain :data:`AccountRow` or None where missing, the viewer's :data:`LinkRow` or None
    where not linked): what :func:`accounts_by_ids` needs, in one statement instead of :class:`AccountById`
    then :class:`LinkByAccountId` (issue 21); both are primed with what it read. No visibility rule here:
    :func:`accounts_by_ids` applies it."""

    async def load_batch(self, session: Reads, keys: list[int]) -> list[tuple[Any, Any]]:
        viewer = self.scope.context.viewer
        user_id = viewer.user_id if viewer is not None else None
        rows = await _ACCOUNTS_AND_LINKS.rows(session, {"user_id": user_id, "ids": keys})
        found: dict[int, tuple[Any, Any]] = {}
        for row in rows:
            account = AccountRow(*row[:_ACCOUNT_WIDTH])
            link = LinkRow(*row[_ACCOUNT_WIDTH:]) if row[_LINK_ID] is not None else None  # not linked
            found[account.id] = (account, link)
        accounts_by_id = self.scope.loader(AccountById)
        links = self.scope.loader(LinkByAccountId)
        out = []
        for key in keys:
            account, link = found.get(key, (None, None))
            accounts_by_id.prime(key, account)
            if viewer is not None:
                links.prime(key, link)
            out.append((account, link))
        return out


_AUTOPAY_ON = PlainQuery(
    select(UserAccount.account_id)
    .join(AutopaySetting, AutopaySetting.user_account_id == UserAccount.id)
    .where(
        UserAccount.user_id == bindparam("user_id"),
        UserAccount.account_id.in_(bindparam("ids", expanding=True)),
        AutopaySetting.enabled.is_(True),
    )
)
"""Which of the accounts the user has autopay on for, built once, on asyncpg directly (issue 21)."""


class AutopayByAccountId(SharedLoader[int, bool]):
    """Whether the viewer has autopay switched on for each account."""

    async def load_batch(self, session: Reads, keys: list[int]) -> list[bool]:
        viewer = self.scope.context.viewer
        if viewer is None:
            return [False for _ in keys]
        rows = await _AUTOPAY_ON.rows(session, {"user_id": viewer.user_id, "ids": keys})
        enabled = {row[0] for row in rows}
        return [key in enabled for key in keys]


class ServicesByAccountId(Loader[int, list[AccountService]]):
    """C1: the services of each account."""

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[list[AccountService]]:
        rows = (
            await session.execute(
                select(AccountService)
                .where(AccountService.account_id.in_(keys))
                .order_by(AccountService.account_id, AccountService.id)
            )
        ).scalars()
        return grouped(rows, keys, "account_id")


_LINK_WIDTH = len(plain_columns(UserAccount))
_ACCOUNT_END = _LINK_WIDTH + len(plain_columns(Account))

_LINKED = PlainKeyset(
    select(*plain_columns(UserAccount), *plain_columns(Account))
    .join(Account, Account.id == UserAccount.account_id)
    .where(UserAccount.user_id == bindparam("user_id")),
    order_by=[UserAccount.linked_at, UserAccount.id],
    descending=False,
    count_total=True,
)
"""B4's page of the viewer's links and accounts with their count, built once (issue 21)."""


def _link_and_account(row: Any) -> tuple[Any, Any]:
    return LinkRow(*row[:_LINK_WIDTH]), AccountRow(*row[_LINK_WIDTH:_ACCOUNT_END])


async def linked_accounts(info: Info, *, first: int, after: tuple[Any, ...] | None) -> Page[Any]:
    """B4: the caller's accounts (plain :data:`AccountRow` rows) in the order they were linked, a page at a
    time with their count, in one statement; the links (:data:`LinkRow`) and accounts are primed."""
    viewer = require_viewer(info)
    async with info.context.session() as session:
        page: Page[Any] = await _LINKED.page(
            session,
            {"user_id": viewer.user_id},
            make=_link_and_account,
            key=lambda item: (item[0].linked_at, item[0].id),
            first=first,
            after=after,
        )
    links = info.context.loader(LinkByAccountId)
    accounts_by_id = info.context.loader(AccountById)
    both = info.context.loader(AccountAndLinkById)
    for link, account in page.items:
        links.prime(account.id, link)
        accounts_by_id.prime(account.id, account)
        both.prime(account.id, (account, link))
    page.items = [account for _, account in page.items]
    return page


async def accounts_by_ids(info: Info, ids: list[int]) -> list[Any]:
    """Accounts by id (plain :data:`AccountRow` rows), None where missing or not visible (customers: linked
    only; OPERATOR, ADMIN: all)."""
    viewer = info.context.viewer
    if viewer is None:
        return [None for _ in ids]
    found = await info.context.loader(AccountAndLinkById).load_many(ids)  # one statement (issue 21)
    if reads_customer_data(viewer.role):
        return [account for account, _ in found]
    return [account if link is not None else None for account, link in found]


async def require_account(info: Info, account_id: int) -> Any:
    """An account the caller may see, else :class:`services.accounts.AccountNotFound`."""
    found = (await accounts_by_ids(info, [account_id]))[0]
    if found is None:
        raise accounts.AccountNotFound(field=["accountId"])
    return found


async def link_of(info: Info, account_id: int) -> Any:
    """The viewer's link to the account, read only (a :data:`LinkRow`, or the ``UserAccount`` a mutation
    primed); None for staff viewing an account they are not linked to."""
    return await info.context.loader(LinkByAccountId).load(account_id)


async def autopay_enabled(info: Info, account_id: int) -> bool:
    """Whether the viewer's autopay is on for the account."""
    return await info.context.loader(AutopayByAccountId).load(account_id)


async def branch_of(info: Info, account: Account) -> Any:
    """The account's branch."""
    return await info.context.loader(BranchById).load(account.branch_id)


async def services_of(info: Info, account_id: int) -> list[AccountService]:
    """C1: the account's services."""
    return await info.context.loader(ServicesByAccountId).load(account_id)


async def reading_window(info: Info, account: Account) -> WindowCountdown:
    """B4: the reading-window countdown in the account's branch's time zone."""
    branch = await branch_of(info, account)
    today = accounts.local_today(info.context.now, branch.time_zone)
    return accounts.window_countdown(today, branch.reading_window_start_day, branch.reading_window_end_day)


async def effective_receipt_email(info: Info, link: Any) -> str | None:
    """J5: the address e-receipts go to: the link's own, else the confirmed profile e-mail."""
    if link is None or not link.e_receipt_enabled:
        return None
    if link.receipt_email:
        return link.receipt_email
    from resolvers.identity import UserById

    user = await info.context.loader(UserById).load(link.user_id)
    return user.email if user is not None and user.email_confirmed_at is not None else None


# --- mutations ----------------------------------------------------------------------------------------------


async def link_account(
    info: Info, *, branch_id: int, number: str, proof: str, e_receipt: bool
) -> tuple[Account, UserAccount]:
    """B1 (the unit of work commits even on failure, so failed attempts count)."""
    viewer = require_viewer(info)
    async with info.context.unit_of_work(commit_on=(accounts.DomainError,)) as uow:
        link = await accounts.link_account(
            uow.session,
            user_id=viewer.user_id,
            branch_id=branch_id,
            number=number,
            proof=proof,
            e_receipt=e_receipt,
            now=info.context.now,
            client_ip=info.context.client_ip,
        )
        account = await uow.session.get(Account, link.account_id)
    assert account is not None
    info.context.loader(LinkByAccountId).prime(account.id, link)
    return account, link


async def unlink_account(info: Info, account_id: int) -> accounts.Unlinked:
    """B2."""
    viewer = require_viewer(info)
    async with info.context.unit_of_work() as uow:
        return await accounts.unlink_account(uow.session, user_id=viewer.user_id, account_id=account_id)


async def rename_account(info: Info, account_id: int, name: str | None) -> Account:
    """B3."""
    viewer = require_viewer(info)
    async with info.context.unit_of_work() as uow:
        link = await accounts.rename_account(
            uow.session, user_id=viewer.user_id, account_id=account_id, name=name
        )
        account = await uow.session.get(Account, account_id)
    info.context.loader(LinkByAccountId).clear(account_id).prime(account_id, link)
    assert account is not None
    return account


async def set_receipt_delivery(info: Info, account_id: int, electronic: bool, email: str | None) -> Account:
    """J5."""
    viewer = require_viewer(info)
    async with info.context.unit_of_work() as uow:
        link = await accounts.set_receipt_delivery(
            uow.session, user_id=viewer.user_id, account_id=account_id, electronic=electronic, email=email
        )
        account = await uow.session.get(Account, account_id)
    info.context.loader(LinkByAccountId).clear(account_id).prime(account_id, link)
    assert account is not None
    return account


def today(info: Info) -> dt.date:
    """The company's today for this request."""
    return info.context.today
