"""I1 the online shop: categories, goods and services, orders that become applications."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.appeals import Application, ApplicationKind, RequestEvent, RequestEventKind, RequestStatus
from models.content import (
    ShopCategory,
    ShopItem,
)
from models.files import StoredFile
from models.identity import User
from models.notifications import NotificationCategory
from services.accounts import require_linked_account
from services.content.common import FileNotFound, limited_text, optional_text, required_text
from services.errors import DomainError, NotFound
from services.identity.common import normalize_phone
from services.notifications import notify
from services.unit_of_work import Reference, touch

MAX_QUANTITY = 100


class ShopItemNotFound(NotFound):
    """The item does not exist or is not on sale."""

    code = "SHOP_ITEM_NOT_FOUND"
    message = "Товар или услуга не найдены"


class ShopCategoryNotFound(NotFound):
    """The category does not exist."""

    code = "SHOP_CATEGORY_NOT_FOUND"
    message = "Категория не найдена"


class QuantityInvalid(DomainError):
    """Quantity outside 1..MAX_QUANTITY."""

    code = "QUANTITY_INVALID"
    message = f"Количество должно быть от 1 до {MAX_QUANTITY}"


async def shop_categories(session: AsyncSession) -> list[ShopCategory]:
    """Every category, in display order."""
    rows = await session.execute(select(ShopCategory).order_by(ShopCategory.position, ShopCategory.id))
    return list(rows.scalars())


async def shop_items(
    session: AsyncSession, *, category_id: int | None = None, include_inactive: bool = False
) -> list[ShopItem]:
    """Items on sale (every item for the admin), optionally of one category, in display order."""
    stmt = select(ShopItem).order_by(ShopItem.position, ShopItem.id)
    if category_id is not None:
        stmt = stmt.where(ShopItem.category_id == category_id)
    if not include_inactive:
        stmt = stmt.where(ShopItem.active.is_(True))
    return list((await session.execute(stmt)).scalars())


async def items_by_category(
    session: AsyncSession, category_ids: Sequence[int], *, include_inactive: bool = False
) -> list[ShopItem]:
    """Items of several categories in one statement (the loader's batch)."""
    stmt = select(ShopItem).where(ShopItem.category_id.in_(category_ids))
    if not include_inactive:
        stmt = stmt.where(ShopItem.active.is_(True))
    return list((await session.execute(stmt.order_by(ShopItem.position, ShopItem.id))).scalars())


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What a customer asks to buy."""

    item_id: int
    account_id: int
    quantity: int = 1
    comment: str | None = None
    contact_phone: str | None = None


async def order_shop_item(
    session: AsyncSession, user_id: int, order: OrderRequest, *, now: dt.datetime
) -> Application:
    """I1: an order request, filed as a FREE_FORM application of one of the caller's accounts.

    The operators see it in their application queue; ``fields`` holds the order (``source = SHOP_ORDER``,
    the item, its price at the time of the order, quantity, total, contact phone, comment).
    """
    await require_linked_account(session, user_id, order.account_id)
    item = await session.get(ShopItem, order.item_id)
    if item is None or not item.active:
        raise ShopItemNotFound(field=["input", "itemId"])
    if not 1 <= order.quantity <= MAX_QUANTITY:
        raise QuantityInvalid(field=["input", "quantity"])
    comment = limited_text(optional_text(order.comment), ["input", "comment"])
    user = await session.get(User, user_id)
    phone = (
        normalize_phone(order.contact_phone, ["input", "contactPhone"])
        if optional_text(order.contact_phone)
        else (user.phone if user else None)
    )
    total = item.price * order.quantity if item.price is not None else None
    fields: dict[str, Any] = {
        "source": "SHOP_ORDER",
        "shopItemId": item.id,
        "itemName": item.name,
        "price": str(item.price) if item.price is not None else None,
        "quantity": order.quantity,
        "total": str(total) if total is not None else None,
        "contactPhone": phone,
        "comment": comment,
    }
    price_text = f", сумма {total} ₽" if total is not None else ", цена по запросу"
    touch(session, users=[user_id], accounts=[order.account_id])  # the order is an application
    application = Application(
        user_id=user_id,
        account_id=order.account_id,
        kind=ApplicationKind.FREE_FORM,
        fields=fields,
        text=f"Заказ в интернет-магазине: {item.name} × {order.quantity}{price_text}."
        + (f" Комментарий: {comment}" if comment else ""),
        status=RequestStatus.NEW,
        created_at=now,
        updated_at=now,
    )
    session.add(application)
    await session.flush()
    session.add(
        RequestEvent(
            application_id=application.id,
            kind=RequestEventKind.CREATED,
            status=RequestStatus.NEW,
            actor_user_id=user_id,
            created_at=now,
        )
    )
    await notify(
        session,
        user_id=user_id,
        category=NotificationCategory.REQUESTS,
        title="Заказ принят",
        body=f"Заявка на «{item.name}» передана оператору. Мы свяжемся с Вами для уточнения деталей.",
        account_id=order.account_id,
        data={"applicationId": application.id, "shopItemId": item.id},
    )
    return application


@dataclass(slots=True)
class ShopCategoryForm:
    """ADMIN: a new or changed category."""

    id: int | None
    name: str | None
    position: int = 0


async def save_shop_category(session: AsyncSession, form: ShopCategoryForm) -> ShopCategory:
    """ADMIN: create (no id) or change a category."""
    name = required_text(form.name, ["input", "name"])
    touch(session, reference=Reference.SHOP)
    if form.id is None:
        row = ShopCategory(name=name, position=form.position)
        session.add(row)
    else:
        found = await session.get(ShopCategory, form.id)
        if found is None:
            raise ShopCategoryNotFound(field=["input", "id"])
        row = found
        row.name, row.position = name, form.position
    await session.flush()
    return row


@dataclass(slots=True)
class ShopItemForm:
    """ADMIN: a new or changed item (the image is a file already in storage)."""

    id: int | None
    category_id: int
    name: str | None
    description: str | None = None
    price: Decimal | None = None
    url: str | None = None
    image_file_id: int | None = None
    active: bool = True
    position: int = 0


async def save_shop_item(session: AsyncSession, form: ShopItemForm, *, now: dt.datetime) -> ShopItem:
    """ADMIN: create (no id) or change an item; ``active = false`` takes it off sale."""
    name = required_text(form.name, ["input", "name"])
    if await session.get(ShopCategory, form.category_id) is None:
        raise ShopCategoryNotFound(field=["input", "categoryId"])
    if form.price is not None and form.price < 0:
        raise DomainError(field=["input", "price"], message="Цена не может быть отрицательной")
    if form.image_file_id is not None and await session.get(StoredFile, form.image_file_id) is None:
        raise FileNotFound(field=["input", "imageFileId"])
    touch(session, reference=Reference.SHOP)
    if form.id is None:
        row = ShopItem(created_at=now)
        session.add(row)
    else:
        found = await session.get(ShopItem, form.id)
        if found is None:
            raise ShopItemNotFound(field=["input", "id"])
        row = found
    row.category_id = form.category_id
    row.name = name
    row.description = optional_text(form.description)
    row.price = form.price
    row.url = optional_text(form.url)
    row.image_file_id = form.image_file_id
    row.active = form.active
    row.position = form.position
    row.updated_at = now
    await session.flush()
    return row
