"""I5 contacts: offices and their opening hours, bookable slots, appointments, callback requests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from models.content import (
    Appointment,
    AppointmentStatus,
    CallbackRequest,
    Office,
    OfficeSlot,
)
from models.identity import User
from models.notifications import NotificationCategory
from services.accounts import require_linked_account
from services.content.common import BranchNotFound, PeriodInvalid, TextTooLong, optional_text, required_text
from services.errors import DomainError, FieldRequired, NotFound
from services.identity.common import normalize_phone
from services.notifications import notify
from services.unit_of_work import Reference, touch

HOTLINE_PHONE = "8 (800) 775-62-62"
"""The contact centre's free phone (the manual's help line)."""


VIDEO_CALL_URL = "https://resk.demo/video"
"""Where the «Видеозвонок» button leads (F4 hands the user to an operator there)."""


WEB_CONSULTANT_URL = "https://resk.demo/consultant"
"""Where the «Web-консультант» chat opens."""


MAX_SLOT_DAYS = 31


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
    subject = required_text(topic, ["input", "topic"])
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
    # the user's appointments, and the slot is no longer free for anybody
    touch(session, users=[user_id], accounts=[account_id], reference=Reference.OFFICES)
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
    # the user's appointments, and the slot is free again for everybody
    touch(session, users=[user_id], accounts=[appointment.account_id], reference=Reference.OFFICES)
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

    name = required_text(form.name, ["input", "name"])
    address = required_text(form.address, ["input", "address"])
    if await session.get(Branch, form.branch_id) is None:
        raise BranchNotFound(field=["input", "branchId"])
    if form.latitude is not None and not -90 <= form.latitude <= 90:
        raise DomainError(field=["input", "latitude"], message="Широта должна быть от -90 до 90")
    if form.longitude is not None and not -180 <= form.longitude <= 180:
        raise DomainError(field=["input", "longitude"], message="Долгота должна быть от -180 до 180")
    touch(session, reference=Reference.OFFICES)
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
    row.phone, row.active = optional_text(form.phone), form.active
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
    touch(session, reference=Reference.OFFICES)
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
    if optional_text(phone):
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
    subject = optional_text(topic)
    if subject is not None and len(subject) > 255:
        raise TextTooLong(field=["input", "topic"], message="Тема не должна превышать 255 символов")
    touch(session, users=[user_id])
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
