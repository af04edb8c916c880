"""I1 the online shop: categories, goods and services, orders that become applications."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from models.content import (
    ShopCategory,
    ShopItem,
)
from resolvers.content.common import read, require_admin, write
from resolvers.loaders import ById, Loader, grouped
from schema.permissions import require_viewer
from services.content import shop as shop_service
from services.errors import DomainError


class ShopCategoryById(ById):
    """Shop categories by id."""

    model = ShopCategory


class ShopItemById(ById):
    """Shop items by id."""

    model = ShopItem


class ShopItemsByCategoryId(Loader[int, list[ShopItem]]):
    """Items on sale of many categories in one statement."""

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[list[ShopItem]]:
        return grouped(await shop_service.items_by_category(session, keys), keys, "category_id")


async def shop_categories(info: Any) -> list[ShopCategory]:
    """I1: categories (public)."""
    return await read(info, shop_service.shop_categories)


async def shop_items(info: Any, category_id: int | None, include_inactive: bool) -> list[ShopItem]:
    """I1: items on sale (public); ``include_inactive`` is for the ADMIN only."""
    if include_inactive:
        require_admin(info)
    return await read(
        info,
        lambda s: shop_service.shop_items(s, category_id=category_id, include_inactive=include_inactive),
    )


async def shop_items_by_ids(info: Any, ids: list[int]) -> list[ShopItem | None]:
    """Items by id: public while on sale, every item for the ADMIN."""
    rows = await info.context.loader(ShopItemById).load_many(ids)
    admin = info.context.viewer is not None and info.context.viewer.role == "ADMIN"
    return [row if row is not None and (row.active or admin) else None for row in rows]


async def shop_categories_by_ids(info: Any, ids: list[int]) -> list[ShopCategory | None]:
    """Categories by id (public)."""
    return await info.context.loader(ShopCategoryById).load_many(ids)  # type: ignore[no-any-return]


async def order_shop_item(info: Any, order: shop_service.OrderRequest) -> tuple[Any, list[DomainError]]:
    """I1: the caller's order request (an application)."""
    viewer = require_viewer(info)
    return await write(
        info, lambda s: shop_service.order_shop_item(s, viewer.user_id, order, now=info.context.now)
    )


async def save_shop_category(info: Any, form: shop_service.ShopCategoryForm) -> tuple[Any, list[DomainError]]:
    """ADMIN."""
    require_admin(info)
    return await write(info, lambda s: shop_service.save_shop_category(s, form))


async def save_shop_item(info: Any, form: shop_service.ShopItemForm) -> tuple[Any, list[DomainError]]:
    """ADMIN."""
    require_admin(info)
    return await write(info, lambda s: shop_service.save_shop_item(s, form, now=info.context.now))


async def items_of_category(info: Any, category_id: int) -> list[ShopItem]:
    """Items on sale of one category (batched)."""
    return await info.context.loader(ShopItemsByCategoryId).load(category_id)  # type: ignore[no-any-return]


async def category(info: Any, category_id: int) -> ShopCategory:
    """An item's category (batched)."""
    return await info.context.loader(ShopCategoryById).load(category_id)  # type: ignore[no-any-return]
