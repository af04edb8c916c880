"""I4 promotions (акции) with a validity period, everywhere or in a branch."""

from __future__ import annotations

from typing import Any

from models.content import (
    Promotion,
)
from resolvers.content.common import read, require_admin, write
from resolvers.loaders import ById
from services.content import promotions as promotions_service
from services.errors import DomainError


class PromotionById(ById):
    """Promotions by id."""

    model = Promotion


async def current_promotions(info: Any) -> list[Promotion]:
    """I4: current promotions for the caller (anonymous: the ones valid everywhere)."""
    viewer = info.context.viewer
    return await read(
        info,
        lambda s: promotions_service.current_promotions(
            s, viewer.user_id if viewer else None, today=info.context.today
        ),
    )


async def all_promotions(info: Any) -> list[Promotion]:
    """ADMIN: every promotion."""
    require_admin(info)
    return await read(info, promotions_service.all_promotions)


async def promotions_by_ids(info: Any, ids: list[int]) -> list[Promotion | None]:
    """Promotions by id (public)."""
    return await info.context.loader(PromotionById).load_many(ids)  # type: ignore[no-any-return]


async def save_promotion(info: Any, form: promotions_service.PromotionForm) -> tuple[Any, list[DomainError]]:
    """ADMIN."""
    require_admin(info)
    context = info.context
    return await write(
        info, lambda s: promotions_service.save_promotion(s, form, now=context.now, today=context.today)
    )
