"""I3 surveys: sent to everybody or to chosen users, answered once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from models.content import (
    QuestionKind,
    Survey,
    SurveyAnswer,
    SurveyAudience,
    SurveyOption,
    SurveyQuestion,
    SurveyRecipient,
    SurveyResponse,
)
from models.identity import User
from models.notifications import NotificationCategory
from services.content.common import PeriodInvalid, limited_text, optional_text, required_text
from services.errors import DomainError, FieldRequired, NotFound
from services.notifications import notify
from services.unit_of_work import Reference, touch


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
    found = next(iter(await visible_surveys(session, user_id, [survey_id], now=now, staff=False)), None)
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
        written = optional_text(answer.text) if answer else None
        if question.kind is QuestionKind.TEXT:
            if chosen:
                raise AnswerInvalid(field=[*path, "optionIds"])
            limited_text(written, [*path, "text"])
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
    touch(session, users=[user_id])  # the caller's answers
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
    title = required_text(form.title, ["input", "title"])
    if form.ends_at is not None and form.ends_at <= form.starts_at:
        raise PeriodInvalid(field=["input", "endsAt"])
    if not form.questions:
        raise FieldRequired(field=["input", "questions"])
    for index, question in enumerate(form.questions):
        path = ["input", "questions", str(index)]
        required_text(question.text, [*path, "text"])
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
        description=optional_text(form.description),
        audience=SurveyAudience.SELECTED if form.recipient_ids is not None else SurveyAudience.ALL,
        starts_at=form.starts_at,
        ends_at=form.ends_at,
        created_at=now,
    )
    touch(session, reference=Reference.SURVEYS)
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
    touch(session, reference=Reference.SURVEYS)
    if survey.ends_at is None or survey.ends_at > now:
        survey.ends_at = max(now, survey.starts_at + dt.timedelta(seconds=1))
    await session.flush()
    return survey
