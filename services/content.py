"""Information sections (I1–I5): online shop, FAQ, surveys, promotions, offices, appointments, callbacks.

Customers read the sections and act on them (order an item, answer a survey, book and cancel an office
appointment, ask to be called back); the ADMIN role manages the content. Rules live here, no GraphQL.

- I1: an order request becomes an application (``applications`` row, kind FREE_FORM, the order in its
  ``fields``) so it reaches the operators' queue like any other application.
- I2: FAQ search is PostgreSQL full text in Russian (``faq_entries.search_vector``, stemmed), so
  «оплатить» finds «оплата».
- I3: a survey is offered to everybody (ALL) or to its recipients (SELECTED); a user answers it once
  (unique row per survey and user, also under concurrent submissions).
- I4: promotions are current between ``starts_on`` and ``ends_on`` (inclusive), everywhere or in a branch.
- I5: a slot holds at most one BOOKED appointment (a partial unique index; booking is an
  ``INSERT … ON CONFLICT DO NOTHING``, so of two concurrent requests exactly one wins); cancelling frees it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from models.accounts import Account, UserAccount
from models.appeals import Application, ApplicationKind, RequestEvent, RequestEventKind, RequestStatus
from models.content import (
    Appointment,
    AppointmentStatus,
    CallbackRequest,
    FaqEntry,
    Office,
    OfficeSlot,
    Promotion,
    QuestionKind,
    ShopCategory,
    ShopItem,
    Survey,
    SurveyAnswer,
    SurveyAudience,
    SurveyOption,
    SurveyQuestion,
    SurveyRecipient,
    SurveyResponse,
)
from models.files import StoredFile
from models.identity import User, UserRole
from models.notifications import NotificationCategory
from services.accounts import require_linked_account
from services.errors import DomainError, FieldRequired, NotFound
from services.identity.common import normalize_phone
from services.notifications import notify

# --------------------------------------------------------------------------------------------- constants

HOTLINE_PHONE = "8 (800) 775-62-62"
"""The contact centre's free phone (the manual's help line)."""

VIDEO_CALL_URL = "https://resk.demo/video"
"""Where the «Видеозвонок» button leads (F4 hands the user to an operator there)."""

WEB_CONSULTANT_URL = "https://resk.demo/consultant"
"""Where the «Web-консультант» chat opens."""

MAX_QUANTITY = 100
MAX_TEXT = 2000
MAX_SLOT_DAYS = 31


# ------------------------------------------------------------------------------------------------ errors


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


class SurveyNotFound(NotFound):
    """The survey does not exist or is not addressed to the caller."""

    code = "SURVEY_NOT_FOUND"
    message = "Опрос не найден"


class SurveyClosed(DomainError):
    """The survey has not started or is over."""

    code = "SURVEY_CLOSED"
    message = "Опрос завершён"


class SurveyAlreadyAnswered(DomainError):
    """I3: a user answers each survey once."""

    code = "SURVEY_ALREADY_ANSWERED"
    message = "Вы уже ответили на этот опрос"


class AnswerInvalid(DomainError):
    """An answer that does not fit its question (wrong option, several options to a SINGLE question…)."""

    code = "ANSWER_INVALID"
    message = "Некорректный ответ на вопрос"


class AnswerRequired(FieldRequired):
    """A required question was left unanswered."""

    code = "ANSWER_REQUIRED"
    message = "Ответьте на обязательный вопрос"


class OfficeNotFound(NotFound):
    """The office does not exist or is closed for good."""

    code = "OFFICE_NOT_FOUND"
    message = "Офис обслуживания не найден"


class SlotNotFound(NotFound):
    """The slot does not exist."""

    code = "SLOT_NOT_FOUND"
    message = "Время приёма не найдено"


class SlotTaken(DomainError):
    """I5: somebody (maybe the caller) has booked the slot already."""

    code = "SLOT_TAKEN"
    message = "Выбранное время уже занято. Выберите другое время"


class SlotInPast(DomainError):
    """The slot has started already."""

    code = "SLOT_IN_PAST"
    message = "Выбранное время уже прошло. Выберите другое время"


class AppointmentNotFound(NotFound):
    """The appointment does not exist or is somebody else's."""

    code = "APPOINTMENT_NOT_FOUND"
    message = "Запись на приём не найдена"


class AppointmentNotCancelable(DomainError):
    """Already cancelled, or its time has come."""

    code = "APPOINTMENT_NOT_CANCELABLE"
    message = "Запись на приём уже отменена или время приёма прошло"


class PeriodInvalid(DomainError):
    """An end before its start, or a time in the past where the future is expected."""

    code = "PERIOD_INVALID"
    message = "Некорректный период"


class TextTooLong(DomainError):
    """A free text over :data:`MAX_TEXT` characters."""

    code = "TEXT_TOO_LONG"
    message = f"Текст не должен превышать {MAX_TEXT} символов"


class FileNotFound(NotFound):
    """An image file id that names no stored file."""

    code = "FILE_NOT_FOUND"
    message = "Файл не найден"


class BranchNotFound(NotFound):
    """A branch id that names no branch."""

    code = "BRANCH_NOT_FOUND"
    message = "Отделение не найдено"


def _required(value: str | None, field_path: list[str]) -> str:
    cleaned = (value or "").strip()
    if not cleaned:
        raise FieldRequired(field=field_path)
    return cleaned


def _optional(value: str | None) -> str | None:
    cleaned = (value or "").strip()
    return cleaned or None


def _limit(value: str | None, field_path: list[str]) -> str | None:
    if value is not None and len(value) > MAX_TEXT:
        raise TextTooLong(field=field_path)
    return value


# ----------------------------------------------------------------------------------------------- I1 shop


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
    comment = _limit(_optional(order.comment), ["input", "comment"])
    user = await session.get(User, user_id)
    phone = (
        normalize_phone(order.contact_phone, ["input", "contactPhone"])
        if _optional(order.contact_phone)
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
    name = _required(form.name, ["input", "name"])
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
    name = _required(form.name, ["input", "name"])
    if await session.get(ShopCategory, form.category_id) is None:
        raise ShopCategoryNotFound(field=["input", "categoryId"])
    if form.price is not None and form.price < 0:
        raise DomainError(field=["input", "price"], message="Цена не может быть отрицательной")
    if form.image_file_id is not None and await session.get(StoredFile, form.image_file_id) is None:
        raise FileNotFound(field=["input", "imageFileId"])
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
    row.description = _optional(form.description)
    row.price = form.price
    row.url = _optional(form.url)
    row.image_file_id = form.image_file_id
    row.active = form.active
    row.position = form.position
    row.updated_at = now
    await session.flush()
    return row


# ------------------------------------------------------------------------------------------------ I2 FAQ


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
    category = _required(form.category, ["input", "category"])
    question = _required(form.question, ["input", "question"])
    answer = _required(form.answer, ["input", "answer"])
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
    deleted = await session.execute(delete(FaqEntry).where(FaqEntry.id == entry_id).returning(FaqEntry.id))
    if deleted.first() is None:
        raise NotFound(field=["input", "id"])


# -------------------------------------------------------------------------------------------- I3 surveys


def _addressed_to(user_id: int) -> Any:
    return or_(
        Survey.audience == SurveyAudience.ALL,
        exists().where(SurveyRecipient.survey_id == Survey.id, SurveyRecipient.user_id == user_id),
    )


async def surveys_for(session: AsyncSession, user_id: int, *, now: dt.datetime) -> list[Survey]:
    """I3: the surveys sent to ``user_id`` that have started (open and finished), newest first."""
    rows = await session.execute(
        select(Survey)
        .where(_addressed_to(user_id), Survey.starts_at <= now)
        .order_by(Survey.starts_at.desc(), Survey.id.desc())
    )
    return list(rows.scalars())


async def visible_surveys(
    session: AsyncSession, user_id: int | None, ids: Sequence[int], *, now: dt.datetime, staff: bool
) -> list[Survey]:
    """Surveys by id that the caller may see (staff: all; a customer: the started ones sent to them)."""
    stmt = select(Survey).where(Survey.id.in_(ids))
    if not staff:
        if user_id is None:
            return []
        stmt = stmt.where(_addressed_to(user_id), Survey.starts_at <= now)
    return list((await session.execute(stmt)).scalars())


def is_open(survey: Survey, now: dt.datetime) -> bool:
    """Whether answers are accepted at ``now``."""
    return survey.starts_at <= now and (survey.ends_at is None or now < survey.ends_at)


async def questions_by_survey(session: AsyncSession, survey_ids: Sequence[int]) -> list[SurveyQuestion]:
    """Questions of several surveys, in order (one statement)."""
    rows = await session.execute(
        select(SurveyQuestion)
        .where(SurveyQuestion.survey_id.in_(survey_ids))
        .order_by(SurveyQuestion.position, SurveyQuestion.id)
    )
    return list(rows.scalars())


async def options_by_question(session: AsyncSession, question_ids: Sequence[int]) -> list[SurveyOption]:
    """Options of several questions, in order (one statement)."""
    rows = await session.execute(
        select(SurveyOption)
        .where(SurveyOption.question_id.in_(question_ids))
        .order_by(SurveyOption.position, SurveyOption.id)
    )
    return list(rows.scalars())


async def responses_of(
    session: AsyncSession, user_id: int, survey_ids: Sequence[int]
) -> dict[int, SurveyResponse]:
    """The user's responses to several surveys, by survey id (one statement)."""
    rows = await session.execute(
        select(SurveyResponse).where(
            SurveyResponse.user_id == user_id, SurveyResponse.survey_id.in_(survey_ids)
        )
    )
    return {row.survey_id: row for row in rows.scalars()}


@dataclass(slots=True)
class Answer:
    """The answer to one question: chosen options or a text."""

    question_id: int
    option_ids: list[int] = field(default_factory=list)
    text: str | None = None


async def answer_survey(
    session: AsyncSession, user_id: int, survey_id: int, answers: Sequence[Answer], *, now: dt.datetime
) -> SurveyResponse:
    """I3: store the caller's answers; each user answers a survey once (also under concurrent calls)."""
    survey = (await visible_surveys(session, user_id, [survey_id], now=now, staff=False)) or [None]
    found = survey[0]
    if found is None:
        raise SurveyNotFound(field=["input", "surveyId"])
    if not is_open(found, now):
        raise SurveyClosed(field=["input", "surveyId"])
    if await responses_of(session, user_id, [survey_id]):
        raise SurveyAlreadyAnswered(field=["input", "surveyId"])
    questions = await questions_by_survey(session, [survey_id])
    options: dict[int, set[int]] = {question.id: set() for question in questions}
    for option in await options_by_question(session, [question.id for question in questions]):
        options[option.question_id].add(option.id)
    by_question: dict[int, tuple[int, Answer]] = {}
    for index, answer in enumerate(answers):
        if answer.question_id not in options or answer.question_id in by_question:
            raise AnswerInvalid(field=["input", "answers", str(index), "questionId"])
        by_question[answer.question_id] = (index, answer)
    rows: list[dict[str, Any]] = []
    for question in questions:
        index, answer = by_question.get(question.id, (None, None))  # type: ignore[assignment]
        path = ["input", "answers", str(index)] if index is not None else ["input", "answers"]
        chosen = list(dict.fromkeys(answer.option_ids)) if answer else []
        written = _optional(answer.text) if answer else None
        if question.kind is QuestionKind.TEXT:
            if chosen:
                raise AnswerInvalid(field=[*path, "optionIds"])
            _limit(written, [*path, "text"])
            if written:
                rows.append({"question_id": question.id, "option_id": None, "text": written})
            elif question.required:
                raise AnswerRequired(field=[*path, "text"])
            continue
        if written:
            raise AnswerInvalid(field=[*path, "text"])
        if any(option_id not in options[question.id] for option_id in chosen):
            raise AnswerInvalid(field=[*path, "optionIds"])
        if question.kind is QuestionKind.SINGLE and len(chosen) > 1:
            raise AnswerInvalid(field=[*path, "optionIds"])
        if not chosen and question.required:
            raise AnswerRequired(field=[*path, "optionIds"])
        rows.extend({"question_id": question.id, "option_id": option, "text": None} for option in chosen)
    inserted = await session.execute(
        insert(SurveyResponse)
        .values(survey_id=survey_id, user_id=user_id, submitted_at=now)
        .on_conflict_do_nothing(index_elements=["survey_id", "user_id"])
        .returning(SurveyResponse.id)
    )
    response_id = inserted.scalar_one_or_none()
    if response_id is None:  # a concurrent submission won
        raise SurveyAlreadyAnswered(field=["input", "surveyId"])
    if rows:
        await session.execute(insert(SurveyAnswer), [{**row, "response_id": response_id} for row in rows])
    return (await responses_of(session, user_id, [survey_id]))[survey_id]


@dataclass(slots=True)
class QuestionForm:
    """ADMIN: one question of a new survey."""

    kind: QuestionKind
    text: str | None
    required: bool = True
    options: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SurveyForm:
    """ADMIN: a new survey."""

    title: str | None
    description: str | None
    starts_at: dt.datetime
    ends_at: dt.datetime | None
    questions: list[QuestionForm]
    recipient_ids: list[int] | None = None  # None = everybody


async def create_survey(session: AsyncSession, form: SurveyForm, *, now: dt.datetime) -> Survey:
    """ADMIN: a survey with its questions, sent to everybody or to ``recipient_ids``.

    The users it is addressed to are notified (SERVICE_NEWS) when it is already open.
    """
    title = _required(form.title, ["input", "title"])
    if form.ends_at is not None and form.ends_at <= form.starts_at:
        raise PeriodInvalid(field=["input", "endsAt"])
    if not form.questions:
        raise FieldRequired(field=["input", "questions"])
    for index, question in enumerate(form.questions):
        path = ["input", "questions", str(index)]
        _required(question.text, [*path, "text"])
        cleaned = [option.strip() for option in question.options if option.strip()]
        if question.kind is QuestionKind.TEXT and cleaned:
            raise AnswerInvalid(
                field=[*path, "options"], message="У вопроса со свободным ответом нет вариантов"
            )
        if question.kind is not QuestionKind.TEXT and len(cleaned) < 2:
            raise AnswerInvalid(field=[*path, "options"], message="Укажите не менее двух вариантов ответа")
    recipients: list[int] = []
    if form.recipient_ids is not None:
        wanted = list(dict.fromkeys(form.recipient_ids))
        found = set(
            (
                await session.execute(select(User.id).where(User.id.in_(wanted), User.deleted_at.is_(None)))
            ).scalars()
        )
        if not wanted or len(found) != len(wanted):
            raise NotFound(field=["input", "recipientIds"], message="Получатель опроса не найден")
        recipients = wanted
    survey = Survey(
        title=title,
        description=_optional(form.description),
        audience=SurveyAudience.SELECTED if form.recipient_ids is not None else SurveyAudience.ALL,
        starts_at=form.starts_at,
        ends_at=form.ends_at,
        created_at=now,
    )
    session.add(survey)
    await session.flush()
    for position, question in enumerate(form.questions):
        row = SurveyQuestion(
            survey_id=survey.id,
            kind=question.kind,
            text=(question.text or "").strip(),
            position=position,
            required=question.required,
        )
        session.add(row)
        await session.flush()
        options = [option.strip() for option in question.options if option.strip()]
        if options:
            await session.execute(
                insert(SurveyOption),
                [{"question_id": row.id, "text": text_, "position": n} for n, text_ in enumerate(options)],
            )
    if recipients:
        await session.execute(
            insert(SurveyRecipient), [{"survey_id": survey.id, "user_id": uid} for uid in recipients]
        )
        if is_open(survey, now):
            for user_id in recipients:
                await notify(
                    session,
                    user_id=user_id,
                    category=NotificationCategory.SERVICE_NEWS,
                    title="Новый опрос",
                    body=f"Вам направлен опрос «{title}». Ответьте в разделе «Опросы».",
                    data={"surveyId": survey.id},
                )
    return survey


async def end_survey(session: AsyncSession, survey_id: int, *, now: dt.datetime) -> Survey:
    """ADMIN: stop accepting answers now (the survey stays in the users' history)."""
    survey = await session.get(Survey, survey_id)
    if survey is None:
        raise SurveyNotFound(field=["input", "surveyId"])
    if survey.ends_at is None or survey.ends_at > now:
        survey.ends_at = max(now, survey.starts_at + dt.timedelta(seconds=1))
    await session.flush()
    return survey


# ----------------------------------------------------------------------------------------- I4 promotions


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

    title = _required(form.title, ["input", "title"])
    body = _required(form.body, ["input", "body"])
    if form.ends_on is not None and form.ends_on < form.starts_on:
        raise PeriodInvalid(field=["input", "endsOn"])
    if form.branch_id is not None and await session.get(Branch, form.branch_id) is None:
        raise BranchNotFound(field=["input", "branchId"])
    if form.image_file_id is not None and await session.get(StoredFile, form.image_file_id) is None:
        raise FileNotFound(field=["input", "imageFileId"])
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
    row.branch_id, row.url, row.image_file_id = form.branch_id, _optional(form.url), form.image_file_id
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


# -------------------------------------------------------------------------------- I5 offices, slots, …


async def offices(session: AsyncSession, *, branch_id: int | None = None) -> list[Office]:
    """Open offices, optionally of one branch, by branch then name."""
    stmt = select(Office).where(Office.active.is_(True))
    if branch_id is not None:
        stmt = stmt.where(Office.branch_id == branch_id)
    return list((await session.execute(stmt.order_by(Office.branch_id, Office.name, Office.id))).scalars())


async def office_slots(
    session: AsyncSession, office_id: int, *, start: dt.datetime, end: dt.datetime
) -> list[OfficeSlot]:
    """The office's slots starting in ``[start, end)``, by time."""
    rows = await session.execute(
        select(OfficeSlot)
        .join(Office, Office.id == OfficeSlot.office_id)
        .where(
            OfficeSlot.office_id == office_id,
            Office.active.is_(True),
            OfficeSlot.starts_at >= start,
            OfficeSlot.starts_at < end,
        )
        .order_by(OfficeSlot.starts_at)
    )
    return list(rows.scalars())


async def booked_slot_ids(session: AsyncSession, slot_ids: Sequence[int]) -> set[int]:
    """Which of ``slot_ids`` hold a BOOKED appointment (one statement)."""
    rows = await session.execute(
        select(Appointment.slot_id).where(
            Appointment.slot_id.in_(slot_ids), Appointment.status == AppointmentStatus.BOOKED
        )
    )
    return set(rows.scalars())


async def appointments_of(session: AsyncSession, user_id: int) -> list[Appointment]:
    """The user's appointments, latest first."""
    rows = await session.execute(
        select(Appointment)
        .where(Appointment.user_id == user_id)
        .order_by(Appointment.created_at.desc(), Appointment.id.desc())
    )
    return list(rows.scalars())


def _moment(value: dt.datetime) -> str:
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo("Europe/Moscow")).strftime("%d.%m.%Y %H:%M")


async def book_appointment(
    session: AsyncSession,
    user_id: int,
    slot_id: int,
    *,
    topic: str | None,
    account_id: int | None,
    now: dt.datetime,
) -> Appointment:
    """I5: book a free future slot. Of concurrent bookings of one slot exactly one succeeds."""
    subject = _required(topic, ["input", "topic"])
    if len(subject) > 255:
        raise TextTooLong(field=["input", "topic"], message="Тема не должна превышать 255 символов")
    if account_id is not None:
        await require_linked_account(session, user_id, account_id)
    found = (
        await session.execute(
            select(OfficeSlot, Office)
            .join(Office, Office.id == OfficeSlot.office_id)
            .where(OfficeSlot.id == slot_id)
        )
    ).first()
    if found is None or not found[1].active:
        raise SlotNotFound(field=["input", "slotId"])
    slot, office = found
    if slot.starts_at <= now:
        raise SlotInPast(field=["input", "slotId"])
    inserted = await session.execute(
        insert(Appointment)
        .values(
            slot_id=slot_id,
            user_id=user_id,
            account_id=account_id,
            topic=subject,
            status=AppointmentStatus.BOOKED,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["slot_id"], index_where=text("status = 'BOOKED'"))
        .returning(Appointment.id)
    )
    appointment_id = inserted.scalar_one_or_none()
    if appointment_id is None:
        raise SlotTaken(field=["input", "slotId"])
    await notify(
        session,
        user_id=user_id,
        category=NotificationCategory.REQUESTS,
        title="Запись на приём",
        body=f"Вы записаны на приём {_moment(slot.starts_at)}: {office.name}, {office.address}.",
        account_id=account_id,
        data={"appointmentId": appointment_id, "officeId": office.id},
    )
    appointment = await session.get(Appointment, appointment_id)
    assert appointment is not None
    return appointment


async def cancel_appointment(
    session: AsyncSession, user_id: int, appointment_id: int, *, now: dt.datetime
) -> Appointment:
    """I5: the user cancels their future booking; the slot becomes free for others at once."""
    found = (
        await session.execute(
            select(Appointment, OfficeSlot, Office)
            .join(OfficeSlot, OfficeSlot.id == Appointment.slot_id)
            .join(Office, Office.id == OfficeSlot.office_id)
            .where(Appointment.id == appointment_id, Appointment.user_id == user_id)
            .with_for_update(of=Appointment)
        )
    ).first()
    if found is None:
        raise AppointmentNotFound(field=["input", "appointmentId"])
    appointment, slot, office = found
    if appointment.status is not AppointmentStatus.BOOKED or slot.starts_at <= now:
        raise AppointmentNotCancelable(field=["input", "appointmentId"])
    appointment.status = AppointmentStatus.CANCELED
    appointment.canceled_at = now
    await session.flush()
    await notify(
        session,
        user_id=user_id,
        category=NotificationCategory.REQUESTS,
        title="Запись на приём отменена",
        body=f"Запись на приём {_moment(slot.starts_at)} ({office.name}) отменена.",
        account_id=appointment.account_id,
        data={"appointmentId": appointment.id, "officeId": office.id},
    )
    return appointment


@dataclass(slots=True)
class OfficeForm:
    """ADMIN: a new or changed office."""

    id: int | None
    branch_id: int
    name: str | None
    address: str | None
    latitude: Decimal | None = None
    longitude: Decimal | None = None
    opening_hours: dict[str, list[list[str]]] | None = None
    services: list[str] | None = None
    phone: str | None = None
    active: bool = True


async def save_office(session: AsyncSession, form: OfficeForm) -> Office:
    """ADMIN: create (no id) or change an office; ``active = false`` removes it from the map."""
    from models.branches import Branch

    name = _required(form.name, ["input", "name"])
    address = _required(form.address, ["input", "address"])
    if await session.get(Branch, form.branch_id) is None:
        raise BranchNotFound(field=["input", "branchId"])
    if form.latitude is not None and not -90 <= form.latitude <= 90:
        raise DomainError(field=["input", "latitude"], message="Широта должна быть от -90 до 90")
    if form.longitude is not None and not -180 <= form.longitude <= 180:
        raise DomainError(field=["input", "longitude"], message="Долгота должна быть от -180 до 180")
    if form.id is None:
        row = Office()
        session.add(row)
    else:
        found = await session.get(Office, form.id)
        if found is None:
            raise OfficeNotFound(field=["input", "id"])
        row = found
    row.branch_id, row.name, row.address = form.branch_id, name, address
    row.latitude, row.longitude = form.latitude, form.longitude
    row.opening_hours, row.services = form.opening_hours, form.services
    row.phone, row.active = _optional(form.phone), form.active
    await session.flush()
    return row


async def add_office_slots(
    session: AsyncSession, office_id: int, slots: Sequence[tuple[dt.datetime, dt.datetime]]
) -> list[OfficeSlot]:
    """ADMIN: open bookable slots (ones that exist already are kept as they are)."""
    if await session.get(Office, office_id) is None:
        raise OfficeNotFound(field=["input", "officeId"])
    if not slots:
        raise FieldRequired(field=["input", "slots"])
    for index, (starts, ends) in enumerate(slots):
        if ends <= starts:
            raise PeriodInvalid(field=["input", "slots", str(index), "endsAt"])
    await session.execute(
        insert(OfficeSlot)
        .values([{"office_id": office_id, "starts_at": s, "ends_at": e} for s, e in slots])
        .on_conflict_do_nothing(index_elements=["office_id", "starts_at"])
    )
    rows = await session.execute(
        select(OfficeSlot)
        .where(OfficeSlot.office_id == office_id, OfficeSlot.starts_at.in_([s for s, _ in slots]))
        .order_by(OfficeSlot.starts_at)
    )
    return list(rows.scalars())


async def request_callback(
    session: AsyncSession,
    user_id: int,
    *,
    phone: str | None,
    preferred_from: dt.datetime | None,
    preferred_to: dt.datetime | None,
    topic: str | None,
    now: dt.datetime,
) -> CallbackRequest:
    """I5: ask the contact centre to call back, at a preferred time (default: the user's own phone)."""
    if _optional(phone):
        number = normalize_phone(phone, ["input", "phone"])
    else:
        user = await session.get(User, user_id)
        if user is None or not user.phone:
            raise FieldRequired(field=["input", "phone"])
        number = user.phone
    # A time without an offset is read as UTC, so it compares with the aware clock (issue 16).
    if preferred_from is not None and preferred_from.tzinfo is None:
        preferred_from = preferred_from.replace(tzinfo=dt.UTC)
    if preferred_to is not None and preferred_to.tzinfo is None:
        preferred_to = preferred_to.replace(tzinfo=dt.UTC)
    if preferred_from is not None and preferred_to is not None and preferred_to <= preferred_from:
        raise PeriodInvalid(field=["input", "preferredTo"])
    if (preferred_to or preferred_from) is not None and (preferred_to or preferred_from) <= now:  # type: ignore[operator]
        raise PeriodInvalid(
            field=["input", "preferredTo" if preferred_to else "preferredFrom"],
            message="Укажите время в будущем",
        )
    subject = _optional(topic)
    if subject is not None and len(subject) > 255:
        raise TextTooLong(field=["input", "topic"], message="Тема не должна превышать 255 символов")
    row = CallbackRequest(
        user_id=user_id,
        phone=number,
        preferred_from=preferred_from,
        preferred_to=preferred_to,
        topic=subject,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def callbacks_of(session: AsyncSession, user_id: int) -> list[CallbackRequest]:
    """The user's callback requests, newest first."""
    rows = await session.execute(
        select(CallbackRequest)
        .where(CallbackRequest.user_id == user_id)
        .order_by(CallbackRequest.created_at.desc(), CallbackRequest.id.desc())
    )
    return list(rows.scalars())
