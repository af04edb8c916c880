"""I5 contacts: offices and their opening hours, bookable slots, appointments, callback requests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from models.content import (
    Appointment,
    CallbackRequest,
    Office,
    OfficeSlot,
)
from resolvers.content.common import owned_only, read, require_admin, write
from resolvers.loaders import ById, Loader
from schema.permissions import require_viewer
from services.content import offices as offices_service
from services.errors import DomainError


class OfficeById(ById):
    """Offices by id."""

    model = Office


class OfficeSlotById(ById):
    """Office slots by id."""

    model = OfficeSlot


class SlotBookedBySlotId(Loader[int, bool]):
    """Whether each slot holds a BOOKED appointment, for many slots in one statement."""

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[bool]:
        booked = await offices_service.booked_slot_ids(session, keys)
        return [key in booked for key in keys]


class AppointmentById(ById):
    """Appointments by id."""

    model = Appointment


class CallbackRequestById(ById):
    """Callback requests by id."""

    model = CallbackRequest


async def offices(info: Any, branch_id: int | None) -> list[Office]:
    """I5: open offices (public)."""
    return await read(info, lambda s: offices_service.offices(s, branch_id=branch_id))


async def offices_by_ids(info: Any, ids: list[int]) -> list[Office | None]:
    """Offices by id (public)."""
    return await info.context.loader(OfficeById).load_many(ids)  # type: ignore[no-any-return]


async def office(info: Any, office_id: int) -> Office:
    """An office (batched)."""
    return await info.context.loader(OfficeById).load(office_id)  # type: ignore[no-any-return]


async def office_slots(info: Any, office_id: int, start: dt.datetime, end: dt.datetime) -> list[OfficeSlot]:
    """I5: an office's slots in a time range (public)."""
    return await read(info, lambda s: offices_service.office_slots(s, office_id, start=start, end=end))


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
    return await read(info, lambda s: offices_service.appointments_of(s, viewer.user_id))


async def appointments_by_ids(info: Any, ids: list[int]) -> list[Appointment | None]:
    """Appointments by id: only the owner's."""
    return owned_only(info, await info.context.loader(AppointmentById).load_many(ids))


async def book_appointment(
    info: Any, slot_id: int, topic: str | None, account_id: int | None
) -> tuple[Any, list[DomainError]]:
    """I5: book a slot."""
    viewer = require_viewer(info)
    return await write(
        info,
        lambda s: offices_service.book_appointment(
            s, viewer.user_id, slot_id, topic=topic, account_id=account_id, now=info.context.now
        ),
    )


async def cancel_appointment(info: Any, appointment_id: int) -> tuple[Any, list[DomainError]]:
    """I5: cancel one's booking."""
    viewer = require_viewer(info)
    return await write(
        info,
        lambda s: offices_service.cancel_appointment(s, viewer.user_id, appointment_id, now=info.context.now),
    )


async def save_office(info: Any, form: offices_service.OfficeForm) -> tuple[Any, list[DomainError]]:
    """ADMIN."""
    require_admin(info)
    return await write(info, lambda s: offices_service.save_office(s, form))


async def add_office_slots(
    info: Any, office_id: int, slots: list[tuple[dt.datetime, dt.datetime]]
) -> tuple[Any, list[DomainError]]:
    """ADMIN."""
    require_admin(info)
    return await write(info, lambda s: offices_service.add_office_slots(s, office_id, slots))


async def request_callback(
    info: Any,
    phone: str | None,
    preferred_from: dt.datetime | None,
    preferred_to: dt.datetime | None,
    topic: str | None,
) -> tuple[Any, list[DomainError]]:
    """I5: ask to be called back."""
    viewer = require_viewer(info)
    return await write(
        info,
        lambda s: offices_service.request_callback(
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
    return await read(info, lambda s: offices_service.callbacks_of(s, viewer.user_id))


async def callbacks_by_ids(info: Any, ids: list[int]) -> list[CallbackRequest | None]:
    """Callback requests by id: only the owner's."""
    return owned_only(info, await info.context.loader(CallbackRequestById).load_many(ids))
