"""I2 frequently asked questions, searched in Russian full text."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from models.content import (
    FaqEntry,
)
from services.content.common import required_text
from services.errors import NotFound
from services.unit_of_work import Reference, touch


async def faq_entries(
    session: AsyncSession, *, search: str | None = None, category: str | None = None
) -> list[FaqEntry]:
    """FAQ entries in display order; with ``search``, the matches best first (Russian full text).

    ``websearch_to_tsquery('russian', …)`` stems the words («оплатить» → «оплат») and accepts what people
    type (quotes, «-слово», «или»), never failing on punctuation.
    """
    stmt = select(FaqEntry)
    if category:
        stmt = stmt.where(FaqEntry.category == category)
    query_text = (search or "").strip()
    if query_text:
        tsquery = func.websearch_to_tsquery(text("'russian'::regconfig"), query_text)
        stmt = stmt.where(FaqEntry.search_vector.op("@@")(tsquery)).order_by(
            func.ts_rank(FaqEntry.search_vector, tsquery).desc(), FaqEntry.position, FaqEntry.id
        )
    else:
        stmt = stmt.order_by(FaqEntry.position, FaqEntry.id)
    return list((await session.execute(stmt)).scalars())


async def faq_categories(session: AsyncSession) -> list[str]:
    """Distinct categories, in the order of their first entry."""
    rows = await session.execute(
        select(FaqEntry.category).group_by(FaqEntry.category).order_by(func.min(FaqEntry.position))
    )
    return list(rows.scalars())


@dataclass(slots=True)
class FaqForm:
    """ADMIN: a new or changed FAQ entry."""

    id: int | None
    category: str | None
    question: str | None
    answer: str | None
    position: int = 0


async def save_faq_entry(session: AsyncSession, form: FaqForm, *, now: dt.datetime) -> FaqEntry:
    """ADMIN: create (no id) or change an entry (its search document is recomputed by PostgreSQL)."""
    category = required_text(form.category, ["input", "category"])
    question = required_text(form.question, ["input", "question"])
    answer = required_text(form.answer, ["input", "answer"])
    touch(session, reference=Reference.FAQ)  # every answer that lists FAQ entries (and the assistant's)
    if form.id is None:
        row = FaqEntry(created_at=now)
        session.add(row)
    else:
        found = await session.get(FaqEntry, form.id)
        if found is None:
            raise NotFound(field=["input", "id"])
        row = found
    row.category, row.question, row.answer, row.position, row.updated_at = (
        category,
        question,
        answer,
        form.position,
        now,
    )
    await session.flush()
    await session.refresh(row, ["search_vector"])
    return row


async def delete_faq_entry(session: AsyncSession, entry_id: int) -> None:
    """ADMIN: remove an entry."""
    touch(session, reference=Reference.FAQ)
    deleted = await session.execute(delete(FaqEntry).where(FaqEntry.id == entry_id).returning(FaqEntry.id))
    if deleted.first() is None:
        raise NotFound(field=["input", "id"])
