"""I5 contacts: offices and their opening hours, bookable slots, appointments, callback requests."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable
from dataclasses import MISSING
from enum import Enum
from typing import Annotated

import strawberry
from strawberry import relay

from models import content as models
from resolvers import branches as branch_resolvers
from resolvers.content import offices as offices_resolvers
from schema import rules
from schema.branches import Branch
from schema.content.common import decode_id, decode_optional_id, encode_id, int_ids
from schema.errors import UserError, user_errors
from schema.node import as_node, backed_by
from services.content import offices as offices_service


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
        return as_node(cls, await offices_resolvers.offices_by_ids(info, int_ids(node_ids)))


@strawberry.type(description="A bookable time slot of an office (I5).")
class OfficeSlot(relay.Node):
    """Backed by ``models.content.OfficeSlot`` rows."""

    is_type_of = backed_by(models.OfficeSlot)

    id: relay.NodeID[int]
    starts_at: dt.datetime = strawberry.field(description="Start of the appointment.")
    ends_at: dt.datetime = strawberry.field(description="End of the appointment.")

    @strawberry.field(description="Whether it can still be booked (nobody holds it).")
    async def available(self, info: strawberry.Info, root: strawberry.Parent[models.OfficeSlot]) -> bool:
        return not await offices_resolvers.slot_booked(info, root.id)

    @strawberry.field(description="The office.")
    async def office(self, info: strawberry.Info, root: strawberry.Parent[models.OfficeSlot]) -> Office:
        return await offices_resolvers.office(info, root.office_id)  # type: ignore[return-value]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False
    ) -> list[OfficeSlot | None]:
        """Slots are public (who booked one is not)."""
        return as_node(cls, await offices_resolvers.slots_by_ids(info, int_ids(node_ids)))


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
        return encode_id("Account", root.account_id)

    @strawberry.field(description="The booked slot (time and office).")
    async def slot(self, info: strawberry.Info, root: strawberry.Parent[models.Appointment]) -> OfficeSlot:
        return await offices_resolvers.slot(info, root.slot_id)  # type: ignore[return-value]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Appointment | None]:
        """Only the owner sees an appointment."""
        return as_node(cls, await offices_resolvers.appointments_by_ids(info, int_ids(node_ids)))


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
        return as_node(cls, await offices_resolvers.callbacks_by_ids(info, int_ids(node_ids)))


@strawberry.type(description="The «Контакты» section's ways to reach the company (I5).")
class Contacts:
    """Hotline, video call and web consultant."""

    hotline_phone: str = strawberry.field(description="The contact centre's free phone.")
    video_call_url: str = strawberry.field(description="Where «Видеозвонок» leads (a call with an operator).")
    web_consultant_url: str = strawberry.field(description="Where the «Web-консультант» chat opens.")


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


@strawberry.type
class OfficesQueries:
    """Queries of I5 (offices); merged into Query."""

    @strawberry.field(description="I5: the hotline, video call and web consultant (public).")
    def contacts(self) -> Contacts:
        return Contacts(
            hotline_phone=offices_service.HOTLINE_PHONE,
            video_call_url=offices_service.VIDEO_CALL_URL,
            web_consultant_url=offices_service.WEB_CONSULTANT_URL,
        )

    @strawberry.field(description="I5: customer service offices for the map and the list (public).")
    async def offices(
        self,
        info: strawberry.Info,
        branch_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Only this Branch.")
        ] = None,
    ) -> list[Office]:
        return await offices_resolvers.offices(info, decode_optional_id(branch_id, "Branch"))  # type: ignore[return-value]

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
        end = start + dt.timedelta(days=max(1, min(days, offices_service.MAX_SLOT_DAYS)))
        return await offices_resolvers.office_slots(info, decode_id(office_id, "Office"), start, end)  # type: ignore[return-value]

    @strawberry.field(description="I5: the caller's appointments, latest first.")
    async def my_appointments(self, info: strawberry.Info) -> list[Appointment]:
        return await offices_resolvers.my_appointments(info)  # type: ignore[return-value]

    @strawberry.field(description="I5: the caller's callback requests, newest first.")
    async def my_callback_requests(self, info: strawberry.Info) -> list[CallbackRequest]:
        return await offices_resolvers.my_callbacks(info)  # type: ignore[return-value]


@strawberry.type
class OfficesMutations:
    """Mutations of I5 (offices); merged into Mutation."""

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
        form = offices_service.OfficeForm(
            id=decode_optional_id(input.id, "Office"),
            branch_id=decode_id(input.branch_id, "Branch"),
            name=input.name,
            address=input.address,
            latitude=input.latitude,
            longitude=input.longitude,
            opening_hours=_opening_hours(input.opening_hours),
            services=input.services,
            phone=input.phone,
            active=input.active,
        )
        result, errors = await offices_resolvers.save_office(info, form)
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
        result, errors = await offices_resolvers.add_office_slots(
            info, decode_id(input.office_id, "Office"), slots
        )
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
        result, errors = await offices_resolvers.book_appointment(
            info,
            decode_id(input.slot_id, "OfficeSlot"),
            input.topic,
            decode_optional_id(input.account_id, "Account"),
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
        result, errors = await offices_resolvers.cancel_appointment(
            info, decode_id(input.appointment_id, "Appointment")
        )
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
        result, errors = await offices_resolvers.request_callback(
            info, input.phone, input.preferred_from, input.preferred_to, input.topic
        )
        return RequestCallbackPayload(callback_request=result, user_errors=user_errors(errors))
