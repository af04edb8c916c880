"""Information sections (I1–I5): shop, FAQ, surveys, promotions, contacts, appointments, callbacks."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable
from dataclasses import MISSING
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry import relay

from models import content as models
from resolvers import branches as branch_resolvers
from resolvers import content as resolvers
from resolvers.billing import download_url
from schema import rules
from schema.branches import Branch
from schema.errors import UserError, user_errors
from schema.node import as_node, backed_by, canonical, parse_global_id
from services import content as service
from services import storage

# ------------------------------------------------------------------------------------------------ helpers


def _id(value: strawberry.ID, type_name: str) -> int:
    global_id = parse_global_id(value, expected_type=type_name)
    try:
        return int(canonical(global_id).node_id)
    except ValueError as error:
        from schema.node import InvalidId

        raise InvalidId(value) from error


def _optional_id(value: strawberry.ID | None, type_name: str) -> int | None:
    return None if value is None else _id(value, type_name)


def _global(type_name: str, value: int | None) -> strawberry.ID | None:
    return None if value is None else strawberry.ID(str(relay.GlobalID(type_name, str(value))))


def _image_url(info: strawberry.Info, file_id: int | None) -> str | None:
    return None if file_id is None else download_url(info, storage.file_target(file_id)).url


def _int_ids(node_ids: Iterable[str]) -> list[int]:
    result = []
    for node_id in node_ids:
        try:
            result.append(int(node_id))
        except ValueError:
            result.append(0)
    return result


# --------------------------------------------------------------------------------------------------- shop


@strawberry.type(description="A category of the online shop (I1), e.g. «Приборы учёта».")
class ShopCategory(relay.Node):
    """Backed by ``models.content.ShopCategory`` rows."""

    is_type_of = backed_by(models.ShopCategory)

    id: relay.NodeID[int]
    name: str = strawberry.field(description="Name shown to customers.")
    position: int = strawberry.field(description="Display order (ascending).")

    @strawberry.field(description="Goods and services on sale in this category, in display order.")
    async def items(
        self, info: strawberry.Info, root: strawberry.Parent[models.ShopCategory]
    ) -> list[ShopItem]:
        return await resolvers.items_of_category(info, root.id)  # type: ignore[return-value]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False
    ) -> list[ShopCategory | None]:
        """Categories are public."""
        return as_node(cls, await resolvers.shop_categories_by_ids(info, _int_ids(node_ids)))


@strawberry.type(description="Goods or a service sold by the supplier (I1).")
class ShopItem(relay.Node):
    """Backed by ``models.content.ShopItem`` rows."""

    is_type_of = backed_by(models.ShopItem)

    id: relay.NodeID[int]
    name: str = strawberry.field(description="Name of the goods or service.")
    description: str | None = strawberry.field(description="What it is, in a few sentences.")
    price: decimal.Decimal | None = strawberry.field(
        description="Price in RUB with kopecks; null when the price is given on request."
    )
    url: str | None = strawberry.field(description="Page of the item in the supplier's web shop, if any.")
    active: bool = strawberry.field(description="Whether it is on sale (customers only ever see true).")
    position: int = strawberry.field(description="Display order inside its category (ascending).")

    @strawberry.field(description="The category it belongs to.")
    async def category(self, info: strawberry.Info, root: strawberry.Parent[models.ShopItem]) -> ShopCategory:
        return await resolvers.category(info, root.category_id)  # type: ignore[return-value]

    @strawberry.field(description="A short-lived signed URL of the item's picture; null when it has none.")
    def image_url(self, info: strawberry.Info, root: strawberry.Parent[models.ShopItem]) -> str | None:
        return _image_url(info, root.image_file_id)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False
    ) -> list[ShopItem | None]:
        """Items on sale are public; the ADMIN also sees the ones taken off sale."""
        return as_node(cls, await resolvers.shop_items_by_ids(info, _int_ids(node_ids)))


# ---------------------------------------------------------------------------------------------------- FAQ


@strawberry.type(description="A frequently asked question and its answer (I2).")
class FaqEntry(relay.Node):
    """Backed by ``models.content.FaqEntry`` rows."""

    is_type_of = backed_by(models.FaqEntry)

    id: relay.NodeID[int]
    category: str = strawberry.field(description="Topic, e.g. «Оплата».")
    question: str = strawberry.field(description="The question.")
    answer: str = strawberry.field(description="The answer.")
    position: int = strawberry.field(description="Display order (ascending).")

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False
    ) -> list[FaqEntry | None]:
        """The FAQ is public."""
        return as_node(cls, await resolvers.faq_entries_by_ids(info, _int_ids(node_ids)))


# ------------------------------------------------------------------------------------------------ surveys


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
        cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False
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
    async def options(
        self, info: strawberry.Info, root: strawberry.Parent[models.SurveyQuestion]
    ) -> list[SurveyOption]:
        return await resolvers.options(info, root.id)  # type: ignore[return-value]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False
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
    def open(self, info: strawberry.Info, root: strawberry.Parent[models.Survey]) -> bool:
        return service.is_open(root, info.context.now)

    @strawberry.field(description="Whether the caller has answered it.")
    async def answered(self, info: strawberry.Info, root: strawberry.Parent[models.Survey]) -> bool:
        return await resolvers.my_response(info, root.id) is not None

    @strawberry.field(description="When the caller answered it; null if not yet.")
    async def answered_at(
        self, info: strawberry.Info, root: strawberry.Parent[models.Survey]
    ) -> dt.datetime | None:
        response = await resolvers.my_response(info, root.id)
        return response.submitted_at if response else None

    @strawberry.field(description="Its questions, in order.")
    async def questions(
        self, info: strawberry.Info, root: strawberry.Parent[models.Survey]
    ) -> list[SurveyQuestion]:
        return await resolvers.questions(info, root.id)  # type: ignore[return-value]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Survey | None]:
        """A customer sees the surveys sent to them; staff see all."""
        return as_node(cls, await resolvers.surveys_by_ids(info, _int_ids(node_ids)))


@strawberry.type(description="The «Опросы» section (I3): inactive when no survey has been sent to the user.")
class SurveySection:
    """Surveys plus the section's state."""

    surveys: list[Survey] = strawberry.field(description="Surveys sent to the user, newest first.")

    @strawberry.field(description="False when the user has no surveys: the section is shown inactive.")
    def active(self) -> bool:
        return bool(self.surveys)


# --------------------------------------------------------------------------------------------- promotions


@strawberry.type(description="A promotion (акция) with a validity period (I4).")
class Promotion(relay.Node):
    """Backed by ``models.content.Promotion`` rows."""

    is_type_of = backed_by(models.Promotion)

    id: relay.NodeID[int]
    title: str = rules.field("Title.", rules.TITLE, default=MISSING)
    body: str = rules.field("Text.", rules.LONG_TEXT, default=MISSING)
    url: str | None = strawberry.field(description="«Подробнее» link.")
    starts_on: dt.date = strawberry.field(description="First day it is valid.")
    ends_on: dt.date | None = strawberry.field(description="Last day it is valid (inclusive); null: no end.")

    @strawberry.field(description="The branch it is limited to; null: everywhere.")
    async def branch(self, info: strawberry.Info, root: strawberry.Parent[models.Promotion]) -> Branch | None:
        if root.branch_id is None:
            return None
        return (await branch_resolvers.branches_by_ids(info, [root.branch_id]))[0]  # type: ignore[return-value]

    @strawberry.field(description="A short-lived signed URL of its picture; null when it has none.")
    def image_url(self, info: strawberry.Info, root: strawberry.Parent[models.Promotion]) -> str | None:
        return _image_url(info, root.image_file_id)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Promotion | None]:
        """Promotions are public."""
        return as_node(cls, await resolvers.promotions_by_ids(info, _int_ids(node_ids)))


@strawberry.type(description="The «Акции» section (I4): inactive when no promotion is current.")
class PromotionSection:
    """Current promotions plus the section's state."""

    promotions: list[Promotion] = strawberry.field(description="Promotions valid today, newest first.")

    @strawberry.field(description="False when there is no current promotion: the section is shown inactive.")
    def active(self) -> bool:
        return bool(self.promotions)


# ----------------------------------------------------------------------------------------------- contacts


@strawberry.enum(description="Day of the week.")
class Weekday(Enum):
    """Days, Monday first."""

    MONDAY = strawberry.enum_value("MONDAY", description="Monday.")
    TUESDAY = strawberry.enum_value("TUESDAY", description="Tuesday.")
    WEDNESDAY = strawberry.enum_value("WEDNESDAY", description="Wednesday.")
    THURSDAY = strawberry.enum_value("THURSDAY", description="Thursday.")
    FRIDAY = strawberry.enum_value("FRIDAY", description="Friday.")
    SATURDAY = strawberry.enum_value("SATURDAY", description="Saturday.")
    SUNDAY = strawberry.enum_value("SUNDAY", description="Sunday.")


_DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@strawberry.type(description="A period when an office is open, local time.")
class OpeningInterval:
    """Opening and closing time, `HH:MM`."""

    opens: str = strawberry.field(description="Opening time, `HH:MM`.")
    closes: str = strawberry.field(description="Closing time, `HH:MM`.")


@strawberry.type(description="Opening hours of one weekday; no intervals means closed.")
class OpeningDay:
    """One day of the weekly schedule."""

    day: Weekday = strawberry.field(description="The weekday.")
    intervals: list[OpeningInterval] = strawberry.field(description="When it is open; empty: closed.")


@strawberry.type(description="A customer service office (I5), for the map and the list.")
class Office(relay.Node):
    """Backed by ``models.content.Office`` rows."""

    is_type_of = backed_by(models.Office)

    id: relay.NodeID[int]
    name: str = strawberry.field(description="Name of the office.")
    address: str = rules.field("Postal address.", rules.ADDRESS, default=MISSING)
    phone: str | None = strawberry.field(description="Phone of the office.")

    @strawberry.field(description="Latitude (WGS 84, degrees) for the map; null if unknown.")
    def latitude(self, root: strawberry.Parent[models.Office]) -> float | None:
        return float(root.latitude) if root.latitude is not None else None

    @strawberry.field(description="Longitude (WGS 84, degrees) for the map; null if unknown.")
    def longitude(self, root: strawberry.Parent[models.Office]) -> float | None:
        return float(root.longitude) if root.longitude is not None else None

    @strawberry.field(description="What can be done there, e.g. «Оплата без комиссии».")
    def services(self, root: strawberry.Parent[models.Office]) -> list[str]:
        return list(root.services or [])

    @strawberry.field(description="Weekly opening hours, Monday to Sunday.")
    def opening_hours(self, root: strawberry.Parent[models.Office]) -> list[OpeningDay]:
        hours = root.opening_hours or {}
        return [
            OpeningDay(
                day=weekday,
                intervals=[OpeningInterval(opens=pair[0], closes=pair[1]) for pair in hours.get(key) or []],
            )
            for weekday, key in zip(Weekday, _DAY_KEYS, strict=True)
        ]

    @strawberry.field(description="The branch the office belongs to.")
    async def branch(self, info: strawberry.Info, root: strawberry.Parent[models.Office]) -> Branch:
        return (await branch_resolvers.branches_by_ids(info, [root.branch_id]))[0]  # type: ignore[return-value]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Office | None]:
        """Offices are public."""
        return as_node(cls, await resolvers.offices_by_ids(info, _int_ids(node_ids)))


@strawberry.type(description="A bookable time slot of an office (I5).")
class OfficeSlot(relay.Node):
    """Backed by ``models.content.OfficeSlot`` rows."""

    is_type_of = backed_by(models.OfficeSlot)

    id: relay.NodeID[int]
    starts_at: dt.datetime = strawberry.field(description="Start of the appointment.")
    ends_at: dt.datetime = strawberry.field(description="End of the appointment.")

    @strawberry.field(description="Whether it can still be booked (nobody holds it).")
    async def available(self, info: strawberry.Info, root: strawberry.Parent[models.OfficeSlot]) -> bool:
        return not await resolvers.slot_booked(info, root.id)

    @strawberry.field(description="The office.")
    async def office(self, info: strawberry.Info, root: strawberry.Parent[models.OfficeSlot]) -> Office:
        return await resolvers.office(info, root.office_id)  # type: ignore[return-value]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False
    ) -> list[OfficeSlot | None]:
        """Slots are public (who booked one is not)."""
        return as_node(cls, await resolvers.slots_by_ids(info, _int_ids(node_ids)))


@strawberry.enum(description="State of an appointment.")
class AppointmentStatus(Enum):
    """Appointment states."""

    BOOKED = strawberry.enum_value("BOOKED", description="The slot is held for the user.")
    CANCELED = strawberry.enum_value("CANCELED", description="Cancelled; the slot is free again.")


@strawberry.type(description="The user's booking of an office slot (I5).")
class Appointment(relay.Node):
    """Backed by ``models.content.Appointment`` rows."""

    is_type_of = backed_by(models.Appointment)

    id: relay.NodeID[int]
    topic: str = rules.field("What the visit is about.", rules.Rule(max_length=255), default=MISSING)
    created_at: dt.datetime = strawberry.field(description="When it was booked.")
    canceled_at: dt.datetime | None = strawberry.field(description="When it was cancelled, if it was.")

    @strawberry.field(description="State.")
    def status(self, root: strawberry.Parent[models.Appointment]) -> AppointmentStatus:
        return AppointmentStatus(root.status.value)

    @strawberry.field(description="Global ID of the account the visit concerns, if given.")
    def account_id(self, root: strawberry.Parent[models.Appointment]) -> strawberry.ID | None:
        return _global("Account", root.account_id)

    @strawberry.field(description="The booked slot (time and office).")
    async def slot(self, info: strawberry.Info, root: strawberry.Parent[models.Appointment]) -> OfficeSlot:
        return await resolvers.slot(info, root.slot_id)  # type: ignore[return-value]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Appointment | None]:
        """Only the owner sees an appointment."""
        return as_node(cls, await resolvers.appointments_by_ids(info, _int_ids(node_ids)))


@strawberry.enum(description="State of a callback request.")
class CallbackStatus(Enum):
    """Callback request states."""

    NEW = strawberry.enum_value("NEW", description="Waiting for the contact centre.")
    DONE = strawberry.enum_value("DONE", description="The user was called.")
    CANCELED = strawberry.enum_value("CANCELED", description="Cancelled.")


@strawberry.type(description="A request to be called back by the contact centre (I5).")
class CallbackRequest(relay.Node):
    """Backed by ``models.content.CallbackRequest`` rows."""

    is_type_of = backed_by(models.CallbackRequest)

    id: relay.NodeID[int]
    phone: str = strawberry.field(description="Number to call, E.164.")
    preferred_from: dt.datetime | None = strawberry.field(description="Call not before this moment.")
    preferred_to: dt.datetime | None = strawberry.field(description="Call not after this moment.")
    topic: str | None = strawberry.field(description="What it is about.")
    created_at: dt.datetime = strawberry.field(description="When it was requested.")

    @strawberry.field(description="State.")
    def status(self, root: strawberry.Parent[models.CallbackRequest]) -> CallbackStatus:
        return CallbackStatus(root.status.value)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False
    ) -> list[CallbackRequest | None]:
        """Only the owner sees a callback request."""
        return as_node(cls, await resolvers.callbacks_by_ids(info, _int_ids(node_ids)))


@strawberry.type(description="The «Контакты» section's ways to reach the company (I5).")
class Contacts:
    """Hotline, video call and web consultant."""

    hotline_phone: str = strawberry.field(description="The contact centre's free phone.")
    video_call_url: str = strawberry.field(description="Where «Видеозвонок» leads (a call with an operator).")
    web_consultant_url: str = strawberry.field(description="Where the «Web-консультант» chat opens.")


# -------------------------------------------------------------------------------------- inputs, payloads


@strawberry.input(
    description="I1: ask to buy goods or a service; it reaches the operators as an application."
)
class OrderShopItemInput:
    """Input of orderShopItem."""

    item_id: strawberry.ID = strawberry.field(description="Global ID of the ShopItem.")
    account_id: strawberry.ID = strawberry.field(description="Global ID of one of the caller's accounts.")
    quantity: int = strawberry.field(default=1, description="How many, 1–100.")
    contact_phone: str | None = rules.field(
        "Phone to call about the order; default: the caller's phone.", rules.PHONE
    )
    comment: str | None = rules.field("Anything the operator should know.", rules.COMMENT)


@strawberry.type(description="Result of orderShopItem.")
class OrderShopItemPayload:
    """The application the order became."""

    application_id: strawberry.ID | None = strawberry.field(
        description="Global ID of the application (kind FREE_FORM) the operators will process."
    )
    user_errors: list[UserError] = strawberry.field(description="Why nothing was ordered, if so.")


@strawberry.input(description="ADMIN: create (no id) or change a shop category.")
class SaveShopCategoryInput:
    """Input of saveShopCategory."""

    id: strawberry.ID | None = strawberry.field(default=None, description="Category to change; null: new.")
    name: str = rules.field("Name.", rules.Rule(max_length=255), default=MISSING)
    position: int = strawberry.field(default=0, description="Display order.")


@strawberry.type(description="Result of saveShopCategory.")
class SaveShopCategoryPayload:
    """The category."""

    category: ShopCategory | None = strawberry.field(description="The saved category.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was saved, if so.")


@strawberry.input(description="ADMIN: create (no id) or change a shop item.")
class SaveShopItemInput:
    """Input of saveShopItem."""

    id: strawberry.ID | None = strawberry.field(default=None, description="Item to change; null: new.")
    category_id: strawberry.ID = strawberry.field(description="Global ID of its ShopCategory.")
    name: str = rules.field("Name.", rules.Rule(max_length=255), default=MISSING)
    description: str | None = rules.field("Description.", rules.LONG_TEXT)
    price: decimal.Decimal | None = strawberry.field(
        default=None, description="Price in RUB; null: on request."
    )
    url: str | None = strawberry.field(default=None, description="Page in the web shop.")
    image_file_id: int | None = strawberry.field(
        default=None, description="Id of an already stored file (picture); null: none."
    )
    active: bool = strawberry.field(default=True, description="On sale; false takes it off sale.")
    position: int = strawberry.field(default=0, description="Display order.")


@strawberry.type(description="Result of saveShopItem.")
class SaveShopItemPayload:
    """The item."""

    item: ShopItem | None = strawberry.field(description="The saved item.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was saved, if so.")


@strawberry.input(description="ADMIN: create (no id) or change a FAQ entry.")
class SaveFaqEntryInput:
    """Input of saveFaqEntry."""

    id: strawberry.ID | None = strawberry.field(default=None, description="Entry to change; null: new.")
    category: str = rules.field("Topic.", rules.Rule(max_length=128), default=MISSING)
    question: str = rules.field("Question.", rules.LONG_TEXT, default=MISSING)
    answer: str = rules.field("Answer.", rules.LONG_TEXT, default=MISSING)
    position: int = strawberry.field(default=0, description="Display order.")


@strawberry.type(description="Result of saveFaqEntry.")
class SaveFaqEntryPayload:
    """The entry."""

    entry: FaqEntry | None = strawberry.field(description="The saved entry.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was saved, if so.")


@strawberry.input(description="ADMIN: remove a FAQ entry.")
class DeleteFaqEntryInput:
    """Input of deleteFaqEntry."""

    id: strawberry.ID = strawberry.field(description="Global ID of the entry.")


@strawberry.type(description="Result of deleteFaqEntry.")
class DeleteFaqEntryPayload:
    """Whether it was deleted."""

    deleted: bool = strawberry.field(description="True when the entry is gone.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was deleted, if so.")


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
    user_errors: list[UserError] = strawberry.field(description="Why the answers were refused, if so.")


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
    user_errors: list[UserError] = strawberry.field(description="Why nothing was created, if so.")


@strawberry.input(description="ADMIN: stop accepting answers to a survey now.")
class EndSurveyInput:
    """Input of endSurvey."""

    survey_id: strawberry.ID = strawberry.field(description="Global ID of the Survey.")


@strawberry.type(description="Result of endSurvey.")
class EndSurveyPayload:
    """The survey."""

    survey: Survey | None = strawberry.field(description="The survey, now closed.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing changed, if so.")


@strawberry.input(description="ADMIN: create (no id) or change a promotion.")
class SavePromotionInput:
    """Input of savePromotion."""

    id: strawberry.ID | None = strawberry.field(default=None, description="Promotion to change; null: new.")
    title: str = rules.field("Title.", rules.TITLE, default=MISSING)
    body: str = rules.field("Text.", rules.LONG_TEXT, default=MISSING)
    starts_on: dt.date = strawberry.field(description="First valid day.")
    ends_on: dt.date | None = strawberry.field(default=None, description="Last valid day (inclusive).")
    branch_id: strawberry.ID | None = strawberry.field(
        default=None, description="Global ID of the Branch it is limited to; null: everywhere."
    )
    url: str | None = strawberry.field(default=None, description="«Подробнее» link.")
    image_file_id: int | None = strawberry.field(default=None, description="Id of an already stored picture.")


@strawberry.type(description="Result of savePromotion.")
class SavePromotionPayload:
    """The promotion."""

    promotion: Promotion | None = strawberry.field(description="The saved promotion.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was saved, if so.")


@strawberry.input(description="Opening hours of one weekday.")
class OpeningDayInput:
    """One day of the schedule."""

    day: Weekday = strawberry.field(description="The weekday.")
    intervals: list[str] = strawberry.field(
        description='Open periods as `"HH:MM-HH:MM"`; empty: closed that day.'
    )


@strawberry.input(description="ADMIN: create (no id) or change an office.")
class SaveOfficeInput:
    """Input of saveOffice."""

    id: strawberry.ID | None = strawberry.field(default=None, description="Office to change; null: new.")
    branch_id: strawberry.ID = strawberry.field(description="Global ID of its Branch.")
    name: str = rules.field("Name.", rules.Rule(max_length=255), default=MISSING)
    address: str = rules.field("Postal address.", rules.ADDRESS, default=MISSING)
    latitude: decimal.Decimal | None = strawberry.field(default=None, description="Latitude, degrees.")
    longitude: decimal.Decimal | None = strawberry.field(default=None, description="Longitude, degrees.")
    opening_hours: list[OpeningDayInput] | None = strawberry.field(
        default=None, description="Weekly schedule; days not listed are closed."
    )
    services: list[str] | None = strawberry.field(default=None, description="What can be done there.")
    phone: str | None = rules.field("Phone of the office.", rules.PHONE)
    active: bool = strawberry.field(default=True, description="Shown on the map; false hides it.")


@strawberry.type(description="Result of saveOffice.")
class SaveOfficePayload:
    """The office."""

    office: Office | None = strawberry.field(description="The saved office.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was saved, if so.")


@strawberry.input(description="A slot to open.")
class OfficeSlotInput:
    """Start and end."""

    starts_at: dt.datetime = strawberry.field(description="Start.")
    ends_at: dt.datetime = strawberry.field(description="End.")


@strawberry.input(description="ADMIN: open bookable slots of an office.")
class AddOfficeSlotsInput:
    """Input of addOfficeSlots."""

    office_id: strawberry.ID = strawberry.field(description="Global ID of the Office.")
    slots: list[OfficeSlotInput] = strawberry.field(description="Slots; existing start times are kept.")


@strawberry.type(description="Result of addOfficeSlots.")
class AddOfficeSlotsPayload:
    """The slots."""

    slots: list[OfficeSlot] = strawberry.field(description="The slots at the given start times.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was added, if so.")


@strawberry.input(description="I5: book an office slot.")
class BookAppointmentInput:
    """Input of bookAppointment."""

    slot_id: strawberry.ID = strawberry.field(description="Global ID of a free OfficeSlot.")
    topic: str = rules.field("What the visit is about.", rules.Rule(max_length=255), default=MISSING)
    account_id: strawberry.ID | None = strawberry.field(
        default=None, description="Global ID of the caller's account it concerns, if any."
    )


@strawberry.type(description="Result of bookAppointment and cancelAppointment.")
class AppointmentPayload:
    """The appointment."""

    appointment: Appointment | None = strawberry.field(description="The appointment.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing changed, e.g. SLOT_TAKEN.")


@strawberry.input(description="I5: cancel one's appointment (the slot becomes free).")
class CancelAppointmentInput:
    """Input of cancelAppointment."""

    appointment_id: strawberry.ID = strawberry.field(description="Global ID of the Appointment.")


@strawberry.input(description="I5: ask the contact centre to call back.")
class RequestCallbackInput:
    """Input of requestCallback."""

    phone: str | None = rules.field("Number to call; default: the caller's.", rules.PHONE)
    preferred_from: dt.datetime | None = strawberry.field(default=None, description="Not before.")
    preferred_to: dt.datetime | None = strawberry.field(default=None, description="Not after.")
    topic: str | None = rules.field("What it is about.", rules.Rule(max_length=255))


@strawberry.type(description="Result of requestCallback.")
class RequestCallbackPayload:
    """The request."""

    callback_request: CallbackRequest | None = strawberry.field(description="The stored request.")
    user_errors: list[UserError] = strawberry.field(description="Why it was refused, if so.")


def _opening_hours(days: list[OpeningDayInput] | None) -> dict[str, list[list[str]]] | None:
    if days is None:
        return None
    result: dict[str, list[list[str]]] = {key: [] for key in _DAY_KEYS}
    keys = dict(zip(Weekday, _DAY_KEYS, strict=True))
    for day in days:
        result[keys[day.day]] = [
            list(part.strip() for part in interval.split("-", 1)) for interval in day.intervals
        ]
    return result


# ---------------------------------------------------------------------------------------------- queries


@strawberry.type
class ContentQueries:
    """Queries of this module (merged into Query)."""

    @strawberry.field(description="I1: shop categories, each with its goods and services on sale (public).")
    async def shop_categories(self, info: strawberry.Info) -> list[ShopCategory]:
        return await resolvers.shop_categories(info)  # type: ignore[return-value]

    @strawberry.field(description="I1: goods and services on sale, optionally of one category (public).")
    async def shop_items(
        self,
        info: strawberry.Info,
        category_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Only this ShopCategory.")
        ] = None,
        include_inactive: Annotated[
            bool, strawberry.argument(description="ADMIN only: also items taken off sale.")
        ] = False,
    ) -> list[ShopItem]:
        return await resolvers.shop_items(  # type: ignore[return-value]
            info, _optional_id(category_id, "ShopCategory"), include_inactive
        )

    @strawberry.field(
        description=(
            "I2: questions and answers, in display order; `search` is a Russian full-text search "
            "(word forms match: «оплатить» finds «оплата»), best matches first (public)."
        )
    )
    async def faq_entries(
        self,
        info: strawberry.Info,
        search: Annotated[str | None, strawberry.argument(description="Words to look for.")] = None,
        category: Annotated[str | None, strawberry.argument(description="Only this category.")] = None,
    ) -> list[FaqEntry]:
        return await resolvers.faq_entries(info, search, category)  # type: ignore[return-value]

    @strawberry.field(description="I2: FAQ categories, in display order (public).")
    async def faq_categories(self, info: strawberry.Info) -> list[str]:
        return await resolvers.faq_categories(info)

    @strawberry.field(description="I3: the surveys sent to the caller and whether the section is active.")
    async def survey_section(self, info: strawberry.Info) -> SurveySection:
        return SurveySection(surveys=await resolvers.surveys(info))  # type: ignore[arg-type]

    @strawberry.field(
        description=(
            "I4: promotions valid today (everywhere, or in a branch of one of the caller's accounts) and "
            "whether the section is active (public)."
        )
    )
    async def promotion_section(self, info: strawberry.Info) -> PromotionSection:
        return PromotionSection(promotions=await resolvers.current_promotions(info))  # type: ignore[arg-type]

    @strawberry.field(description="ADMIN: every promotion, past and future included.")
    async def all_promotions(self, info: strawberry.Info) -> list[Promotion]:
        return await resolvers.all_promotions(info)  # type: ignore[return-value]

    @strawberry.field(description="I5: the hotline, video call and web consultant (public).")
    def contacts(self) -> Contacts:
        return Contacts(
            hotline_phone=service.HOTLINE_PHONE,
            video_call_url=service.VIDEO_CALL_URL,
            web_consultant_url=service.WEB_CONSULTANT_URL,
        )

    @strawberry.field(description="I5: customer service offices for the map and the list (public).")
    async def offices(
        self,
        info: strawberry.Info,
        branch_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Only this Branch.")
        ] = None,
    ) -> list[Office]:
        return await resolvers.offices(info, _optional_id(branch_id, "Branch"))  # type: ignore[return-value]

    @strawberry.field(
        description="I5: an office's slots from `from` for `days` days, with availability (public)."
    )
    async def office_slots(
        self,
        info: strawberry.Info,
        office_id: Annotated[strawberry.ID, strawberry.argument(description="Global ID of the Office.")],
        from_: Annotated[
            dt.datetime | None,
            strawberry.argument(name="from", description="Start of the range; default: now."),
        ] = None,
        days: Annotated[int, strawberry.argument(description="Length of the range in days, 1–31.")] = 14,
    ) -> list[OfficeSlot]:
        start = from_ or info.context.now
        end = start + dt.timedelta(days=max(1, min(days, service.MAX_SLOT_DAYS)))
        return await resolvers.office_slots(info, _id(office_id, "Office"), start, end)  # type: ignore[return-value]

    @strawberry.field(description="I5: the caller's appointments, latest first.")
    async def my_appointments(self, info: strawberry.Info) -> list[Appointment]:
        return await resolvers.my_appointments(info)  # type: ignore[return-value]

    @strawberry.field(description="I5: the caller's callback requests, newest first.")
    async def my_callback_requests(self, info: strawberry.Info) -> list[CallbackRequest]:
        return await resolvers.my_callbacks(info)  # type: ignore[return-value]


# -------------------------------------------------------------------------------------------- mutations


def _payload_id(result: Any, type_name: str) -> strawberry.ID | None:
    return _global(type_name, result.id) if result is not None else None


@strawberry.type
class ContentMutations:
    """Mutations of this module (merged into Mutation)."""

    @strawberry.mutation(description="I1: order goods or a service; operators get it as an application.")
    async def order_shop_item(
        self,
        info: strawberry.Info,
        input: Annotated[
            OrderShopItemInput,
            strawberry.argument(
                description="The item, quantity, account and contact details of the order (I1)."
            ),
        ],
    ) -> OrderShopItemPayload:
        order = service.OrderRequest(
            item_id=_id(input.item_id, "ShopItem"),
            account_id=_id(input.account_id, "Account"),
            quantity=input.quantity,
            comment=input.comment,
            contact_phone=input.contact_phone,
        )
        result, errors = await resolvers.order_shop_item(info, order)
        return OrderShopItemPayload(
            application_id=_payload_id(result, "Application"), user_errors=user_errors(errors)
        )

    @strawberry.mutation(description="ADMIN: create or change a shop category.")
    async def save_shop_category(
        self,
        info: strawberry.Info,
        input: Annotated[
            SaveShopCategoryInput,
            strawberry.argument(description="ADMIN: the category to create (no id) or rename (with its id)."),
        ],
    ) -> SaveShopCategoryPayload:
        form = service.ShopCategoryForm(
            id=_optional_id(input.id, "ShopCategory"), name=input.name, position=input.position
        )
        result, errors = await resolvers.save_shop_category(info, form)
        return SaveShopCategoryPayload(category=result, user_errors=user_errors(errors))  # type: ignore[arg-type]

    @strawberry.mutation(description="ADMIN: create or change a shop item (active=false takes it off sale).")
    async def save_shop_item(
        self,
        info: strawberry.Info,
        input: Annotated[
            SaveShopItemInput,
            strawberry.argument(description="ADMIN: the item to create (no id) or change (with its id)."),
        ],
    ) -> SaveShopItemPayload:
        form = service.ShopItemForm(
            id=_optional_id(input.id, "ShopItem"),
            category_id=_id(input.category_id, "ShopCategory"),
            name=input.name,
            description=input.description,
            price=input.price,
            url=input.url,
            image_file_id=input.image_file_id,
            active=input.active,
            position=input.position,
        )
        result, errors = await resolvers.save_shop_item(info, form)
        return SaveShopItemPayload(item=result, user_errors=user_errors(errors))  # type: ignore[arg-type]

    @strawberry.mutation(description="ADMIN: create or change a FAQ entry.")
    async def save_faq_entry(
        self,
        info: strawberry.Info,
        input: Annotated[
            SaveFaqEntryInput,
            strawberry.argument(
                description="ADMIN: the FAQ entry to create (no id) or change (with its id)."
            ),
        ],
    ) -> SaveFaqEntryPayload:
        form = service.FaqForm(
            id=_optional_id(input.id, "FaqEntry"),
            category=input.category,
            question=input.question,
            answer=input.answer,
            position=input.position,
        )
        result, errors = await resolvers.save_faq_entry(info, form)
        return SaveFaqEntryPayload(entry=result, user_errors=user_errors(errors))  # type: ignore[arg-type]

    @strawberry.mutation(description="ADMIN: remove a FAQ entry.")
    async def delete_faq_entry(
        self,
        info: strawberry.Info,
        input: Annotated[
            DeleteFaqEntryInput, strawberry.argument(description="ADMIN: the FAQ entry to delete.")
        ],
    ) -> DeleteFaqEntryPayload:
        errors = await resolvers.delete_faq_entry(info, _id(input.id, "FaqEntry"))
        return DeleteFaqEntryPayload(deleted=not errors, user_errors=user_errors(errors))

    @strawberry.mutation(description="I3: answer a survey sent to the caller; a second answer is refused.")
    async def answer_survey(
        self,
        info: strawberry.Info,
        input: Annotated[
            AnswerSurveyInput,
            strawberry.argument(description="The survey and the answers to its questions (I3)."),
        ],
    ) -> AnswerSurveyPayload:
        answers = [
            service.Answer(
                question_id=_id(answer.question_id, "SurveyQuestion"),
                option_ids=[_id(option, "SurveyOption") for option in answer.option_ids],
                text=answer.text,
            )
            for answer in input.answers
        ]
        result, errors = await resolvers.answer_survey(info, _id(input.survey_id, "Survey"), answers)
        return AnswerSurveyPayload(survey=result, user_errors=user_errors(errors))

    @strawberry.mutation(description="ADMIN: create a survey for everybody or for chosen users.")
    async def create_survey(
        self,
        info: strawberry.Info,
        input: Annotated[
            CreateSurveyInput,
            strawberry.argument(description="ADMIN: the survey's title, period, recipients and questions."),
        ],
    ) -> CreateSurveyPayload:
        form = service.SurveyForm(
            title=input.title,
            description=input.description,
            starts_at=input.starts_at,
            ends_at=input.ends_at,
            questions=[
                service.QuestionForm(
                    kind=models.QuestionKind(question.kind.value),
                    text=question.text,
                    required=question.required,
                    options=list(question.options),
                )
                for question in input.questions
            ],
            recipient_ids=(
                None if input.recipient_ids is None else [_id(user, "User") for user in input.recipient_ids]
            ),
        )
        result, errors = await resolvers.create_survey(info, form)
        return CreateSurveyPayload(survey=result, user_errors=user_errors(errors))  # type: ignore[arg-type]

    @strawberry.mutation(description="ADMIN: close a survey now.")
    async def end_survey(
        self,
        info: strawberry.Info,
        input: Annotated[
            EndSurveyInput, strawberry.argument(description="ADMIN: the survey to stop accepting answers.")
        ],
    ) -> EndSurveyPayload:
        result, errors = await resolvers.end_survey(info, _id(input.survey_id, "Survey"))
        return EndSurveyPayload(survey=result, user_errors=user_errors(errors))  # type: ignore[arg-type]

    @strawberry.mutation(description="ADMIN: create or change a promotion (a new current one is announced).")
    async def save_promotion(
        self,
        info: strawberry.Info,
        input: Annotated[
            SavePromotionInput,
            strawberry.argument(
                description="ADMIN: the promotion to create (no id) or change (with its id)."
            ),
        ],
    ) -> SavePromotionPayload:
        form = service.PromotionForm(
            id=_optional_id(input.id, "Promotion"),
            title=input.title,
            body=input.body,
            starts_on=input.starts_on,
            ends_on=input.ends_on,
            branch_id=_optional_id(input.branch_id, "Branch"),
            url=input.url,
            image_file_id=input.image_file_id,
        )
        result, errors = await resolvers.save_promotion(info, form)
        return SavePromotionPayload(promotion=result, user_errors=user_errors(errors))  # type: ignore[arg-type]

    @strawberry.mutation(description="ADMIN: create or change an office.")
    async def save_office(
        self,
        info: strawberry.Info,
        input: Annotated[
            SaveOfficeInput,
            strawberry.argument(
                description="ADMIN: the office to create (no id) or change (with its id) and its hours."
            ),
        ],
    ) -> SaveOfficePayload:
        form = service.OfficeForm(
            id=_optional_id(input.id, "Office"),
            branch_id=_id(input.branch_id, "Branch"),
            name=input.name,
            address=input.address,
            latitude=input.latitude,
            longitude=input.longitude,
            opening_hours=_opening_hours(input.opening_hours),
            services=input.services,
            phone=input.phone,
            active=input.active,
        )
        result, errors = await resolvers.save_office(info, form)
        return SaveOfficePayload(office=result, user_errors=user_errors(errors))  # type: ignore[arg-type]

    @strawberry.mutation(description="ADMIN: open bookable slots of an office.")
    async def add_office_slots(
        self,
        info: strawberry.Info,
        input: Annotated[
            AddOfficeSlotsInput,
            strawberry.argument(description="ADMIN: the office and the appointment slots to open in it."),
        ],
    ) -> AddOfficeSlotsPayload:
        slots = [(slot.starts_at, slot.ends_at) for slot in input.slots]
        result, errors = await resolvers.add_office_slots(info, _id(input.office_id, "Office"), slots)
        return AddOfficeSlotsPayload(slots=result or [], user_errors=user_errors(errors))

    @strawberry.mutation(description="I5: book a free office slot; a slot taken meanwhile gives SLOT_TAKEN.")
    async def book_appointment(
        self,
        info: strawberry.Info,
        input: Annotated[
            BookAppointmentInput,
            strawberry.argument(description="The slot to book, the topic and optionally the account (I5)."),
        ],
    ) -> AppointmentPayload:
        result, errors = await resolvers.book_appointment(
            info, _id(input.slot_id, "OfficeSlot"), input.topic, _optional_id(input.account_id, "Account")
        )
        return AppointmentPayload(appointment=result, user_errors=user_errors(errors))

    @strawberry.mutation(description="I5: cancel one's appointment; the slot is free again at once.")
    async def cancel_appointment(
        self,
        info: strawberry.Info,
        input: Annotated[
            CancelAppointmentInput, strawberry.argument(description="The appointment to cancel.")
        ],
    ) -> AppointmentPayload:
        result, errors = await resolvers.cancel_appointment(info, _id(input.appointment_id, "Appointment"))
        return AppointmentPayload(appointment=result, user_errors=user_errors(errors))

    @strawberry.mutation(description="I5: ask the contact centre to call back at a preferred time.")
    async def request_callback(
        self,
        info: strawberry.Info,
        input: Annotated[
            RequestCallbackInput,
            strawberry.argument(
                description="The phone (default: the profile's), preferred time window and topic (I5)."
            ),
        ],
    ) -> RequestCallbackPayload:
        result, errors = await resolvers.request_callback(
            info, input.phone, input.preferred_from, input.preferred_to, input.topic
        )
        return RequestCallbackPayload(callback_request=result, user_errors=user_errors(errors))


ERROR_TYPES: list[type] = []

__all__ = ["ERROR_TYPES", "ContentMutations", "ContentQueries"]
