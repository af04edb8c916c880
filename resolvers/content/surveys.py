"""I3 surveys: sent to everybody or to chosen users, answered once."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from models.content import (
    Survey,
    SurveyOption,
    SurveyQuestion,
    SurveyResponse,
)
from resolvers.content.common import read, require_admin, write
from resolvers.loaders import Loader, grouped
from schema.permissions import is_staff, require_viewer
from services.content import surveys as surveys_service
from services.errors import DomainError


class SurveyQuestionsBySurveyId(Loader[int, list[SurveyQuestion]]):
    """Questions of many surveys in one statement."""

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[list[SurveyQuestion]]:
        return grouped(await surveys_service.questions_by_survey(session, keys), keys, "survey_id")


class SurveyOptionsByQuestionId(Loader[int, list[SurveyOption]]):
    """Options of many questions in one statement."""

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[list[SurveyOption]]:
        return grouped(await surveys_service.options_by_question(session, keys), keys, "question_id")


class ViewerResponseBySurveyId(Loader[int, SurveyResponse | None]):
    """The caller's own response to many surveys in one statement (None where not answered)."""

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[SurveyResponse | None]:
        viewer = self.scope.context.viewer
        if viewer is None:
            return [None for _ in keys]
        found = await surveys_service.responses_of(session, viewer.user_id, keys)
        return [found.get(key) for key in keys]


class VisibleSurveyById(Loader[int, Survey | None]):
    """Surveys by id as the caller may see them (staff: all; a customer: the ones sent to them)."""

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[Survey | None]:
        context = self.scope.context
        viewer = context.viewer
        rows = await surveys_service.visible_surveys(
            session, viewer.user_id if viewer else None, keys, now=context.now, staff=is_staff(viewer)
        )
        found = {row.id: row for row in rows}
        return [found.get(key) for key in keys]


async def surveys(info: Any) -> list[Survey]:
    """I3: surveys sent to the caller."""
    viewer = require_viewer(info)
    return await read(info, lambda s: surveys_service.surveys_for(s, viewer.user_id, now=info.context.now))


async def surveys_by_ids(info: Any, ids: list[int]) -> list[Survey | None]:
    """Surveys by id, as the caller may see them."""
    return await info.context.loader(VisibleSurveyById).load_many(ids)  # type: ignore[no-any-return]


async def questions(info: Any, survey_id: int) -> list[SurveyQuestion]:
    """A survey's questions (batched)."""
    return await info.context.loader(SurveyQuestionsBySurveyId).load(survey_id)  # type: ignore[no-any-return]


async def options(info: Any, question_id: int) -> list[SurveyOption]:
    """A question's options (batched)."""
    return await info.context.loader(SurveyOptionsByQuestionId).load(question_id)  # type: ignore[no-any-return]


async def answer_survey(
    info: Any, survey_id: int, answers: list[surveys_service.Answer]
) -> tuple[Any, list[DomainError]]:
    """I3: the caller answers a survey once."""
    viewer = require_viewer(info)
    _, errors = await write(
        info,
        lambda s: surveys_service.answer_survey(s, viewer.user_id, survey_id, answers, now=info.context.now),
    )
    if errors:
        return None, errors
    return (await surveys_by_ids(info, [survey_id]))[0], []


async def create_survey(info: Any, form: surveys_service.SurveyForm) -> tuple[Any, list[DomainError]]:
    """ADMIN."""
    require_admin(info)
    return await write(info, lambda s: surveys_service.create_survey(s, form, now=info.context.now))


async def end_survey(info: Any, survey_id: int) -> tuple[Any, list[DomainError]]:
    """ADMIN."""
    require_admin(info)
    return await write(info, lambda s: surveys_service.end_survey(s, survey_id, now=info.context.now))


async def my_response(info: Any, survey_id: int) -> SurveyResponse | None:
    """The caller's response to a survey (batched)."""
    return await info.context.loader(ViewerResponseBySurveyId).load(survey_id)  # type: ignore[no-any-return]
