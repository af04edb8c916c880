"""Information sections (I1–I5): per-request loaders and thin resolvers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from models.content import (
    Appointment,
    CallbackRequest,
    FaqEntry,
    Office,
    OfficeSlot,
    Promotion,
    ShopCategory,
    ShopItem,
    Survey,
    SurveyOption,
    SurveyQuestion,
    SurveyResponse,
)
from resolvers.loaders import ById, Loader, grouped
from schema.permissions import is_staff, require_role, require_viewer
from services import content
from services.errors import DomainError

T = TypeVar("T")

# ------------------------------------------------------------------------------------------------ loaders


class ShopCategoryById(ById):
    """Shop categories by id."""

    model = ShopCategory


class ShopItemById(ById):
    """Shop items by id."""

    model = ShopItem


class ShopItemsByCategoryId(Loader[int, list[ShopItem]]):
    """Items on sale of many categories in one statement."""

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[list[ShopItem]]:
        return grouped(await content.items_by_category(session, keys), keys, "category_id")


class FaqEntryById(ById):
    """FAQ entries by id."""

    model = FaqEntry


class SurveyQuestionsBySurveyId(Loader[int, list[SurveyQuestion]]):
    """Questions of many surveys in one statement."""

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[list[SurveyQuestion]]:
        return grouped(await content.questions_by_survey(session, keys), keys, "survey_id")


class SurveyOptionsByQuestionId(Loader[int, list[SurveyOption]]):
    """Options of many questions in one statement."""

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[list[SurveyOption]]:
        return grouped(await content.options_by_question(session, keys), keys, "question_id")


class ViewerResponseBySurveyId(Loader[int, SurveyResponse | None]):
    """The caller's own response to many surveys in one statement (None where not answered)."""

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[SurveyResponse | None]:
        viewer = self.scope.context.viewer
        if viewer is None:
            return [None for _ in keys]
        found = await content.responses_of(session, viewer.user_id, keys)
        return [found.get(key) for key in keys]


class VisibleSurveyById(Loader[int, Survey | None]):
    """Surveys by id as the caller may see them (staff: all; a customer: the ones sent to them)."""

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[Survey | None]:
        context = self.scope.context
        viewer = context.viewer
        rows = await content.visible_surveys(
            session, viewer.user_id if viewer else None, keys, now=context.now, staff=is_staff(viewer)
        )
        found = {row.id: row for row in rows}
        return [found.get(key) for key in keys]


class PromotionById(ById):
    """Promotions by id."""

    model = Promotion


class OfficeById(ById):
    """Offices by id."""

    model = Office


class OfficeSlotById(ById):
    """Office slots by id."""

    model = OfficeSlot


class SlotBookedBySlotId(Loader[int, bool]):
    """Whether each slot holds a BOOKED appointment, for many slots in one statement."""

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[bool]:
        booked = await content.booked_slot_ids(session, keys)
        return [key in booked for key in keys]


class AppointmentById(ById):
    """Appointments by id."""

    model = Appointment


class CallbackRequestById(ById):
    """Callback requests by id."""

    model = CallbackRequest


# ------------------------------------------------------------------------------------------------ helpers


def require_admin(info: Any) -> Any:
    """Content is managed by the ADMIN role only (others get FORBIDDEN)."""
    return require_role(info, "ADMIN")


async def _read(info: Any, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async with info.context.session() as session:
        return await work(session)


async def _write(
    info: Any, work: Callable[[AsyncSession], Awaitable[T]]
) -> tuple[T | None, list[DomainError]]:
    """Run ``work`` and commit; a domain error rolls everything back and is returned instead."""
    async with info.context.session() as session:
        try:
            result = await work(session)
        except DomainError as error:
            await session.rollback()
            return None, [error]
        await session.commit()
        return result, []


def _owned(info: Any, rows: list[Any]) -> list[Any]:
    viewer = info.context.viewer
    return [
        row if row is not None and viewer is not None and row.user_id == viewer.user_id else None
        for row in rows
    ]


# -------------------------------------------------------------------------------------------------- shop


async def shop_categories(info: Any) -> list[ShopCategory]:
    """I1: categories (public)."""
    return await _read(info, content.shop_categories)


async def shop_items(info: Any, category_id: int | None, include_inactive: bool) -> list[ShopItem]:
    """I1: items on sale (public); ``include_inactive`` is for the ADMIN only."""
    if include_inactive:
        require_admin(info)
    return await _read(
        info,
        lambda s: content.shop_items(s, category_id=category_id, include_inactive=include_inactive),
    )


async def items_of_category(info: Any, category_id: int) -> list[ShopItem]:
    """Items on sale of one category (batched)."""
    return await info.context.loader(ShopItemsByCategoryId).load(category_id)  # type: ignore[no-any-return]


async def category(info: Any, category_id: int) -> ShopCategory:
    """An item's category (batched)."""
    return await info.context.loader(ShopCategoryById).load(category_id)  # type: ignore[no-any-return]


async def shop_items_by_ids(info: Any, ids: list[int]) -> list[ShopItem | None]:
    """Items by id: public while on sale, every item for the ADMIN."""
    rows = await info.context.loader(ShopItemById).load_many(ids)
    admin = info.context.viewer is not None and info.context.viewer.role == "ADMIN"
    return [row if row is not None and (row.active or admin) else None for row in rows]


async def shop_categories_by_ids(info: Any, ids: list[int]) -> list[ShopCategory | None]:
    """Categories by id (public)."""
    return await info.context.loader(ShopCategoryById).load_many(ids)  # type: ignore[no-any-return]


async def order_shop_item(info: Any, order: content.OrderRequest) -> tuple[Any, list[DomainError]]:
    """I1: the caller's order request (an application)."""
    viewer = require_viewer(info)
    return await _write(
        info, lambda s: content.order_shop_item(s, viewer.user_id, order, now=info.context.now)
    )


async def save_shop_category(info: Any, form: content.ShopCategoryForm) -> tuple[Any, list[DomainError]]:
    """ADMIN."""
    require_admin(info)
    return await _write(info, lambda s: content.save_shop_category(s, form))


async def save_shop_item(info: Any, form: content.ShopItemForm) -> tuple[Any, list[DomainError]]:
    """ADMIN."""
    require_admin(info)
    return await _write(info, lambda s: content.save_shop_item(s, form, now=info.context.now))


# --------------------------------------------------------------------------------------------------- FAQ


async def faq_entries(info: Any, search: str | None, category: str | None) -> list[FaqEntry]:
    """I2 (public)."""
    return await _read(info, lambda s: content.faq_entries(s, search=search, category=category))


async def faq_categories(info: Any) -> list[str]:
    """I2 categories (public)."""
    return await _read(info, content.faq_categories)


async def faq_entries_by_ids(info: Any, ids: list[int]) -> list[FaqEntry | None]:
    """FAQ entries by id (public)."""
    return await info.context.loader(FaqEntryById).load_many(ids)  # type: ignore[no-any-return]


async def save_faq_entry(info: Any, form: content.FaqForm) -> tuple[Any, list[DomainError]]:
    """ADMIN."""
    require_admin(info)
    return await _write(info, lambda s: content.save_faq_entry(s, form, now=info.context.now))


async def delete_faq_entry(info: Any, entry_id: int) -> list[DomainError]:
    """ADMIN."""
    require_admin(info)
    return (await _write(info, lambda s: content.delete_faq_entry(s, entry_id)))[1]


# ----------------------------------------------------------------------------------------------- surveys


async def surveys(info: Any) -> list[Survey]:
    """I3: surveys sent to the caller."""
    viewer = require_viewer(info)
    return await _read(info, lambda s: content.surveys_for(s, viewer.user_id, now=info.context.now))


async def surveys_by_ids(info: Any, ids: list[int]) -> list[Survey | None]:
    """Surveys by id, as the caller may see them."""
    return await info.context.loader(VisibleSurveyById).load_many(ids)  # type: ignore[no-any-return]


async def questions(info: Any, survey_id: int) -> list[SurveyQuestion]:
    """A survey's questions (batched)."""
    return await info.context.loader(SurveyQuestionsBySurveyId).load(survey_id)  # type: ignore[no-any-return]


async def options(info: Any, question_id: int) -> list[SurveyOption]:
    """A question's options (batched)."""
    return await info.context.loader(SurveyOptionsByQuestionId).load(question_id)  # type: ignore[no-any-return]


async def my_response(info: Any, survey_id: int) -> SurveyResponse | None:
    """The caller's response to a survey (batched)."""
    return await info.context.loader(ViewerResponseBySurveyId).load(survey_id)  # type: ignore[no-any-return]


async def answer_survey(
    info: Any, survey_id: int, answers: list[content.Answer]
) -> tuple[Any, list[DomainError]]:
    """I3: the caller answers a survey once."""
    viewer = require_viewer(info)
    _, errors = await _write(
        info, lambda s: content.answer_survey(s, viewer.user_id, survey_id, answers, now=info.context.now)
    )
    if errors:
        return None, errors
    return (await surveys_by_ids(info, [survey_id]))[0], []


async def create_survey(info: Any, form: content.SurveyForm) -> tuple[Any, list[DomainError]]:
    """ADMIN."""
    require_admin(info)
    return await _write(info, lambda s: content.create_survey(s, form, now=info.context.now))


async def end_survey(info: Any, survey_id: int) -> tuple[Any, list[DomainError]]:
    """ADMIN."""
    require_admin(info)
    return await _write(info, lambda s: content.end_survey(s, survey_id, now=info.context.now))


# -------------------------------------------------------------------------------------------- promotions


async def current_promotions(info: Any) -> list[Promotion]:
    """I4: current promotions for the caller (anonymous: the ones valid everywhere)."""
    viewer = info.context.viewer
    return await _read(
        info,
        lambda s: content.current_promotions(s, viewer.user_id if viewer else None, today=info.context.today),
    )


async def all_promotions(info: Any) -> list[Promotion]:
    """ADMIN: every promotion."""
    require_admin(info)
    return await _read(info, content.all_promotions)


async def promotions_by_ids(info: Any, ids: list[int]) -> list[Promotion | None]:
    """Promotions by id (public)."""
    return await info.context.loader(PromotionById).load_many(ids)  # type: ignore[no-any-return]


async def save_promotion(info: Any, form: content.PromotionForm) -> tuple[Any, list[DomainError]]:
    """ADMIN."""
    require_admin(info)
    context = info.context
    return await _write(info, lambda s: content.save_promotion(s, form, now=context.now, today=context.today))


# --------------------------------------------------------------------------------------- offices, slots


async def offices(info: Any, branch_id: int | None) -> list[Office]:
    """I5: open offices (public)."""
    return await _read(info, lambda s: content.offices(s, branch_id=branch_id))


async def offices_by_ids(info: Any, ids: list[int]) -> list[Office | None]:
    """Offices by id (public)."""
    return await info.context.loader(OfficeById).load_many(ids)  # type: ignore[no-any-return]


async def office(info: Any, office_id: int) -> Office:
    """An office (batched)."""
    return await info.context.loader(OfficeById).load(office_id)  # type: ignore[no-any-return]


async def office_slots(info: Any, office_id: int, start: dt.datetime, end: dt.datetime) -> list[OfficeSlot]:
    """I5: an office's slots in a time range (public)."""
    return await _read(info, lambda s: content.office_slots(s, office_id, start=start, end=end))


async def slots_by_ids(info: Any, ids: list[int]) -> list[OfficeSlot | None]:
    """Slots by id (public)."""
    return await info.context.loader(OfficeSlotById).load_many(ids)  # type: ignore[no-any-return]


async def slot(info: Any, slot_id: int) -> OfficeSlot:
    """An appointment's slot (batched)."""
    return await info.context.loader(OfficeSlotById).load(slot_id)  # type: ignore[no-any-return]


async def slot_booked(info: Any, slot_id: int) -> bool:
    """Whether a slot is taken (batched)."""
    return await info.context.loader(SlotBookedBySlotId).load(slot_id)  # type: ignore[no-any-return]


async def my_appointments(info: Any) -> list[Appointment]:
    """I5: the caller's appointments."""
    viewer = require_viewer(info)
    return await _read(info, lambda s: content.appointments_of(s, viewer.user_id))


async def appointments_by_ids(info: Any, ids: list[int]) -> list[Appointment | None]:
    """Appointments by id: only the owner's."""
    return _owned(info, await info.context.loader(AppointmentById).load_many(ids))


async def book_appointment(
    info: Any, slot_id: int, topic: str | None, account_id: int | None
) -> tuple[Any, list[DomainError]]:
    """I5: book a slot."""
    viewer = require_viewer(info)
    return await _write(
        info,
        lambda s: content.book_appointment(
            s, viewer.user_id, slot_id, topic=topic, account_id=account_id, now=info.context.now
        ),
    )


async def cancel_appointment(info: Any, appointment_id: int) -> tuple[Any, list[DomainError]]:
    """I5: cancel one's booking."""
    viewer = require_viewer(info)
    return await _write(
        info, lambda s: content.cancel_appointment(s, viewer.user_id, appointment_id, now=info.context.now)
    )


async def save_office(info: Any, form: content.OfficeForm) -> tuple[Any, list[DomainError]]:
    """ADMIN."""
    require_admin(info)
    return await _write(info, lambda s: content.save_office(s, form))


async def add_office_slots(
    info: Any, office_id: int, slots: list[tuple[dt.datetime, dt.datetime]]
) -> tuple[Any, list[DomainError]]:
    """ADMIN."""
    require_admin(info)
    return await _write(info, lambda s: content.add_office_slots(s, office_id, slots))


async def request_callback(
    info: Any,
    phone: str | None,
    preferred_from: dt.datetime | None,
    preferred_to: dt.datetime | None,
    topic: str | None,
) -> tuple[Any, list[DomainError]]:
    """I5: ask to be called back."""
    viewer = require_viewer(info)
    return await _write(
        info,
        lambda s: content.request_callback(
            s,
            viewer.user_id,
            phone=phone,
            preferred_from=preferred_from,
            preferred_to=preferred_to,
            topic=topic,
            now=info.context.now,
        ),
    )


async def my_callbacks(info: Any) -> list[CallbackRequest]:
    """I5: the caller's callback requests."""
    viewer = require_viewer(info)
    return await _read(info, lambda s: content.callbacks_of(s, viewer.user_id))


async def callbacks_by_ids(info: Any, ids: list[int]) -> list[CallbackRequest | None]:
    """Callback requests by id: only the owner's."""
    return _owned(info, await info.context.loader(CallbackRequestById).load_many(ids))
