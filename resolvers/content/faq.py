"""I2 frequently asked questions, searched in Russian full text."""

from __future__ import annotations

from typing import Any

from models.content import (
    FaqEntry,
)
from resolvers.content.common import read, require_admin, write
from resolvers.loaders import ById
from services.content import faq as faq_service
from services.errors import DomainError


class FaqEntryById(ById):
    """FAQ entries by id."""

    model = FaqEntry


async def faq_entries(info: Any, search: str | None, category: str | None) -> list[FaqEntry]:
    """I2 (public)."""
    return await read(info, lambda s: faq_service.faq_entries(s, search=search, category=category))


async def faq_categories(info: Any) -> list[str]:
    """I2 categories (public)."""
    return await read(info, faq_service.faq_categories)


async def faq_entries_by_ids(info: Any, ids: list[int]) -> list[FaqEntry | None]:
    """FAQ entries by id (public)."""
    return await info.context.loader(FaqEntryById).load_many(ids)  # type: ignore[no-any-return]


async def save_faq_entry(info: Any, form: faq_service.FaqForm) -> tuple[Any, list[DomainError]]:
    """ADMIN."""
    require_admin(info)
    return await write(info, lambda s: faq_service.save_faq_entry(s, form, now=info.context.now))


async def delete_faq_entry(info: Any, entry_id: int) -> list[DomainError]:
    """ADMIN."""
    require_admin(info)
    return (await write(info, lambda s: faq_service.delete_faq_entry(s, entry_id)))[1]
