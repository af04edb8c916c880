"""I3 surveys: sent to everybody or to chosen users, answered once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import MISSING
from enum import Enum
from typing import Annotated

import strawberry
from strawberry import relay

from models import content as models
from resolvers.content import surveys as surveys_resolvers
from resolvers.context import Info
from schema import rules
from schema.content.common import decode_id, int_ids
from schema.errors import error_code_enum, error_domain
from schema.node import as_node, backed_by
from services.content import surveys as surveys_service

SurveyErrorCode = error_code_enum(
    "SurveyErrorCode",
    "Why a survey mutation (I4) failed: the `code` of `SurveyError`.",
    "services.content.surveys",
    "services.content.common",
    "services.notifications",
)


@strawberry.interface(
    description=(
        "A problem with a survey mutation (I4), "
        "reported in its payload's `userErrors`. "
        "`code` (`SurveyErrorCode`) is stable for programs, `message` is the text to show the user "
        "(Russian), `field` is the path of the input it concerns."
    )
)
class SurveyError:
    """Common shape of this domain's user errors; specific ones implement it and carry more data."""

    code: str = strawberry.field(
        graphql_type=SurveyErrorCode,
        description="Stable machine-readable code, one of `SurveyErrorCode`.",
    )
    message: str = strawberry.field(description="Human-readable text to show the user, in Russian.")
    field: list[str] | None = strawberry.field(
        description='Path of the input field at fault, e.g. `["input", "phone"]`; null for the whole input.'
    )


@strawberry.type(description="A `SurveyError` with no data beyond code, message and field.")
class SurveyInputError(SurveyError):
    """The default implementation of :class:`SurveyError`."""


SURVEY_ERRORS = error_domain(SurveyError, SurveyErrorCode, SurveyInputError)
user_error = SURVEY_ERRORS.one
user_errors = SURVEY_ERRORS.many


@strawberry.enum(description="How a survey question is answered.")
class SurveyQuestionKind(Enum):
    """Question kinds."""

    SINGLE = strawberry.enum_value("SINGLE", description="Exactly one of the options.")
    MULTIPLE = strawberry.enum_value("MULTIPLE", description="One or more of the options.")
    TEXT = strawberry.enum_value("TEXT", description="A free text.")


@strawberry.type(description="An answer option of a SINGLE or MULTIPLE question.")
class SurveyOption(relay.Node):
    """Backed by ``models.content.SurveyOption`` rows."""

    is_type_of = backed_by(models.SurveyOption)

    id: relay.NodeID[int]
    text: str = strawberry.field(description="Text of the option.")

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[SurveyOption | None]:
        """Options are reached through their survey only."""
        return [None for _ in node_ids]


@strawberry.type(description="A question of a survey.")
class SurveyQuestion(relay.Node):
    """Backed by ``models.content.SurveyQuestion`` rows."""

    is_type_of = backed_by(models.SurveyQuestion)

    id: relay.NodeID[int]
    text: str = rules.field("The question.", rules.COMMENT, default=MISSING)
    required: bool = strawberry.field(description="Whether it must be answered.")

    @strawberry.field(description="How it is answered.")
    def kind(self, root: strawberry.Parent[models.SurveyQuestion]) -> SurveyQuestionKind:
        return SurveyQuestionKind(root.kind.value)

    @strawberry.field(description="Options to choose from (empty for TEXT questions).")
    async def options(self, info: Info, root: strawberry.Parent[models.SurveyQuestion]) -> list[SurveyOption]:
        return await surveys_resolvers.options(info, root.id)  # type: ignore[return-value]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[SurveyQuestion | None]:
        """Questions are reached through their survey only."""
        return [None for _ in node_ids]


@strawberry.type(description="A survey sent to the user (I3); each user answers it once.")
class Survey(relay.Node):
    """Backed by ``models.content.Survey`` rows."""

    is_type_of = backed_by(models.Survey)

    id: relay.NodeID[int]
    title: str = rules.field("Title.", rules.TITLE, default=MISSING)
    description: str | None = strawberry.field(description="Introduction shown above the questions.")
    starts_at: dt.datetime = strawberry.field(description="When it opened.")
    ends_at: dt.datetime | None = strawberry.field(description="When it closes; null: open until ended.")

    @strawberry.field(description="Whether answers are accepted now.")
    def open(self, info: Info, root: strawberry.Parent[models.Survey]) -> bool:
        return surveys_service.is_open(root, info.context.now)

    @strawberry.field(description="Whether the caller has answered it.")
    async def answered(self, info: Info, root: strawberry.Parent[models.Survey]) -> bool:
        return await surveys_resolvers.my_response(info, root.id) is not None

    @strawberry.field(description="When the caller answered it; null if not yet.")
    async def answered_at(self, info: Info, root: strawberry.Parent[models.Survey]) -> dt.datetime | None:
        response = await surveys_resolvers.my_response(info, root.id)
        return response.submitted_at if response else None

    @strawberry.field(description="Its questions, in order.")
    async def questions(self, info: Info, root: strawberry.Parent[models.Survey]) -> list[SurveyQuestion]:
        return await surveys_resolvers.questions(info, root.id)  # type: ignore[return-value]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Survey | None]:
        """A customer sees the surveys sent to them; staff see all."""
        return as_node(cls, await surveys_resolvers.surveys_by_ids(info, int_ids(node_ids)))


@strawberry.type(description="The «Опросы» section (I3): inactive when no survey has been sent to the user.")
class SurveySection:
    """Surveys plus the section's state."""

    surveys: list[Survey] = strawberry.field(description="Surveys sent to the user, newest first.")

    @strawberry.field(description="False when the user has no surveys: the section is shown inactive.")
    def active(self) -> bool:
        return bool(self.surveys)


@strawberry.input(description="The answer to one question.")
class SurveyAnswerInput:
    """One answer."""

    question_id: strawberry.ID = strawberry.field(description="Global ID of the SurveyQuestion.")
    option_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list,
        description="Chosen SurveyOption IDs (one for SINGLE, one or more for MULTIPLE).",
    )
    text: str | None = rules.field("Free text (TEXT questions).", rules.LONG_TEXT)


@strawberry.input(description="I3: answer a survey (once).")
class AnswerSurveyInput:
    """Input of answerSurvey."""

    survey_id: strawberry.ID = strawberry.field(description="Global ID of the Survey.")
    answers: list[SurveyAnswerInput] = strawberry.field(description="Answers, one per question at most.")


@strawberry.type(description="Result of answerSurvey.")
class AnswerSurveyPayload:
    """The survey, now answered."""

    survey: Survey | None = strawberry.field(description="The survey (`answered` is true).")
    user_errors: list[SurveyError] = strawberry.field(description="Why the answers were refused, if so.")


@strawberry.input(description="ADMIN: one question of a new survey.")
class SurveyQuestionInput:
    """A question."""

    kind: SurveyQuestionKind = strawberry.field(description="How it is answered.")
    text: str = rules.field("The question.", rules.COMMENT, default=MISSING)
    required: bool = strawberry.field(default=True, description="Whether it must be answered.")
    options: list[str] = strawberry.field(
        default_factory=list, description="Options (at least two for SINGLE/MULTIPLE, none for TEXT)."
    )


@strawberry.input(description="ADMIN: a new survey, to everybody or to chosen users.")
class CreateSurveyInput:
    """Input of createSurvey."""

    title: str = rules.field("Title.", rules.TITLE, default=MISSING)
    description: str | None = rules.field("Introduction.", rules.LONG_TEXT)
    starts_at: dt.datetime = strawberry.field(description="When it opens.")
    ends_at: dt.datetime | None = strawberry.field(default=None, description="When it closes; null: no end.")
    questions: list[SurveyQuestionInput] = strawberry.field(description="Questions, in order.")
    recipient_ids: list[strawberry.ID] | None = strawberry.field(
        default=None,
        description="Global IDs of the users it is sent to (they are notified); null: everybody.",
    )


@strawberry.type(description="Result of createSurvey.")
class CreateSurveyPayload:
    """The survey."""

    survey: Survey | None = strawberry.field(description="The new survey.")
    user_errors: list[SurveyError] = strawberry.field(description="Why nothing was created, if so.")


@strawberry.input(description="ADMIN: stop accepting answers to a survey now.")
class EndSurveyInput:
    """Input of endSurvey."""

    survey_id: strawberry.ID = strawberry.field(description="Global ID of the Survey.")


@strawberry.type(description="Result of endSurvey.")
class EndSurveyPayload:
    """The survey."""

    survey: Survey | None = strawberry.field(description="The survey, now closed.")
    user_errors: list[SurveyError] = strawberry.field(description="Why nothing changed, if so.")


@strawberry.type
class SurveysQueries:
    """Queries of I3 (surveys); merged into Query."""

    @strawberry.field(description="I3: the surveys sent to the caller and whether the section is active.")
    async def survey_section(self, info: Info) -> SurveySection:
        return SurveySection(surveys=await surveys_resolvers.surveys(info))  # type: ignore[arg-type]


@strawberry.type
class SurveysMutations:
    """Mutations of I3 (surveys); merged into Mutation."""

    @strawberry.mutation(description="I3: answer a survey sent to the caller; a second answer is refused.")
    async def answer_survey(
        self,
        info: Info,
        input: Annotated[
            AnswerSurveyInput,
            strawberry.argument(description="The survey and the answers to its questions (I3)."),
        ],
    ) -> AnswerSurveyPayload:
        answers = [
            surveys_service.Answer(
                question_id=decode_id(answer.question_id, "SurveyQuestion"),
                option_ids=[decode_id(option, "SurveyOption") for option in answer.option_ids],
                text=answer.text,
            )
            for answer in input.answers
        ]
        result, errors = await surveys_resolvers.answer_survey(
            info, decode_id(input.survey_id, "Survey"), answers
        )
        return AnswerSurveyPayload(survey=result, user_errors=user_errors(errors))

    @strawberry.mutation(description="ADMIN: create a survey for everybody or for chosen users.")
    async def create_survey(
        self,
        info: Info,
        input: Annotated[
            CreateSurveyInput,
            strawberry.argument(description="ADMIN: the survey's title, period, recipients and questions."),
        ],
    ) -> CreateSurveyPayload:
        form = surveys_service.SurveyForm(
            title=input.title,
            description=input.description,
            starts_at=input.starts_at,
            ends_at=input.ends_at,
            questions=[
                surveys_service.QuestionForm(
                    kind=models.QuestionKind(question.kind.name),
                    text=question.text,
                    required=question.required,
                    options=list(question.options),
                )
                for question in input.questions
            ],
            recipient_ids=(
                None
                if input.recipient_ids is None
                else [decode_id(user, "User") for user in input.recipient_ids]
            ),
        )
        result, errors = await surveys_resolvers.create_survey(info, form)
        return CreateSurveyPayload(survey=result, user_errors=user_errors(errors))

    @strawberry.mutation(description="ADMIN: close a survey now.")
    async def end_survey(
        self,
        info: Info,
        input: Annotated[
            EndSurveyInput, strawberry.argument(description="ADMIN: the survey to stop accepting answers.")
        ],
    ) -> EndSurveyPayload:
        result, errors = await surveys_resolvers.end_survey(info, decode_id(input.survey_id, "Survey"))
        return EndSurveyPayload(survey=result, user_errors=user_errors(errors))
