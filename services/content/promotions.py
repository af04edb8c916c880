"""I4 promotions (акции) with a validity period, everywhere or in a branch."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.accounts import Account, UserAccount
from models.content import (
    Promotion,
)
from models.files import StoredFile
from models.identity import User, UserRole
from models.notifications import NotificationCategory
from services.content.common import BranchNotFound, FileNotFound, PeriodInvalid, optional_text, required_text
from services.errors import NotFound
from services.notifications import notify
from services.unit_of_work import Reference, touch


def _current(today: dt.date) -> Any:
    return and_(Promotion.starts_on <= today, or_(Promotion.ends_on.is_(None), Promotion.ends_on >= today))


async def current_promotions(
    session: AsyncSession, user_id: int | None, *, today: dt.date
) -> list[Promotion]:
    """I4: promotions current ``today``: everywhere, or in a branch of one of the caller's accounts."""
    branch_filter: Any = Promotion.branch_id.is_(None)
    if user_id is not None:
        branch_filter = or_(
            branch_filter,
            Promotion.branch_id.in_(
                select(Account.branch_id)
                .join(UserAccount, UserAccount.account_id == Account.id)
                .where(UserAccount.user_id == user_id)
            ),
        )
    rows = await session.execute(
        select(Promotion)
        .where(_current(today), branch_filter)
        .order_by(Promotion.starts_on.desc(), Promotion.id.desc())
    )
    return list(rows.scalars())


async def all_promotions(session: AsyncSession) -> list[Promotion]:
    """ADMIN: every promotion, newest first."""
    rows = await session.execute(select(Promotion).order_by(Promotion.starts_on.desc(), Promotion.id.desc()))
    return list(rows.scalars())


@dataclass(slots=True)
class PromotionForm:
    """ADMIN: a new or changed promotion."""

    id: int | None
    title: str | None
    body: str | None
    starts_on: dt.date
    ends_on: dt.date | None
    branch_id: int | None = None
    url: str | None = None
    image_file_id: int | None = None


async def save_promotion(
    session: AsyncSession, form: PromotionForm, *, now: dt.datetime, today: dt.date
) -> Promotion:
    """ADMIN: create (no id) or change a promotion.

    A new promotion that is current goes to the customers it concerns as a MARKETING notification
    (delivered only to those who opted in to advertising, J6).
    """
    from models.branches import Branch

    title = required_text(form.title, ["input", "title"])
    body = required_text(form.body, ["input", "body"])
    if form.ends_on is not None and form.ends_on < form.starts_on:
        raise PeriodInvalid(field=["input", "endsOn"])
    if form.branch_id is not None and await session.get(Branch, form.branch_id) is None:
        raise BranchNotFound(field=["input", "branchId"])
    if form.image_file_id is not None and await session.get(StoredFile, form.image_file_id) is None:
        raise FileNotFound(field=["input", "imageFileId"])
    touch(session, reference=Reference.PROMOTIONS)
    created = form.id is None
    if created:
        row = Promotion(created_at=now)
        session.add(row)
    else:
        found = await session.get(Promotion, form.id)
        if found is None:
            raise NotFound(field=["input", "id"], message="Акция не найдена")
        row = found
    row.title, row.body, row.starts_on, row.ends_on = title, body, form.starts_on, form.ends_on
    row.branch_id, row.url, row.image_file_id = form.branch_id, optional_text(form.url), form.image_file_id
    await session.flush()
    if created and row.starts_on <= today and (row.ends_on is None or row.ends_on >= today):
        await _announce_promotion(session, row)
    return row


async def _announce_promotion(session: AsyncSession, promotion: Promotion) -> None:
    """Notify the customers a promotion concerns who accept advertising (MARKETING is opt-in)."""
    from models.notifications import NotificationChannel, NotificationSetting

    stmt = (
        select(NotificationSetting.user_id)
        .join(User, User.id == NotificationSetting.user_id)
        .where(
            NotificationSetting.category == NotificationCategory.MARKETING,
            NotificationSetting.channel == NotificationChannel.IN_APP,
            NotificationSetting.enabled.is_(True),
            User.role == UserRole.CUSTOMER,
            User.deleted_at.is_(None),
        )
    )
    if promotion.branch_id is not None:
        stmt = stmt.where(
            exists().where(
                UserAccount.user_id == User.id,
                UserAccount.account_id == Account.id,
                Account.branch_id == promotion.branch_id,
            )
        )
    for user_id in (await session.execute(stmt.distinct())).scalars():
        await notify(
            session,
            user_id=user_id,
            category=NotificationCategory.MARKETING,
            title=promotion.title,
            body=promotion.body,
            data={"promotionId": promotion.id},
        )
