"""Appeals, applications, documents, operator side, assistant and video call: loaders and thin resolvers.

Visibility: a customer sees appeals and applications they filed (on accounts still linked to them) and the
documents of their linked accounts; staff see everything. Every path (lists, ``node(id:)``, mutations) goes
through :func:`visible_appeals`, :func:`visible_applications` or :func:`visible_documents`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from models.appeals import Appeal, Application, ApplicationKind, Document, DocumentType, RequestStatus
from models.files import StoredFile
from resolvers.context import Info
from resolvers.loaders import ById, Loader
from resolvers.pagination import decode_cursor
from resolvers.permissions import require_role, require_viewer
from resolvers.readings import parse_id, require_customer, visible_account_ids
from services import accounts, storage
from services import appeals as service
from services.errors import DomainError, FieldRequired, PeriodOutOfRange
from services.pagination import Page
from services.periods import PeriodRange, allowed_range, history_range, month_start
from services.roles import reads_customer_data

T = TypeVar("T")

# ---------------------------------------------------------------- loaders


class AppealById(ById):
    """Appeals by id (callers apply visibility)."""

    model = Appeal


class ApplicationById(ById):
    """Applications by id (callers apply visibility)."""

    model = Application


class DocumentById(ById):
    """Documents by id (callers apply visibility)."""

    model = Document


class StoredFileById(ById):
    """File metadata by id."""

    model = StoredFile


def _customer_view(loader: Loader[Any, Any]) -> bool:
    viewer = loader.scope.context.viewer
    return viewer is None or not reads_customer_data(viewer.role)


RequestRow = Appeal | Application
"""A row behind ``schema.appeals.CustomerRequest``: an appeal or an application."""


class EventsByRequestId(Loader[int, list[Any]]):
    """Timeline of each appeal or application (by ``column``), oldest first (internal notes only for
    staff)."""

    column: ClassVar[str]

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[list[Any]]:
        customer_view = _customer_view(self)
        found = await service.events_by_request(session, self.column, keys, customer_view=customer_view)
        return [found[key] for key in keys]


class EventsByAppealId(EventsByRequestId):
    """Timeline of each appeal."""

    column = "appeal_id"


class EventsByApplicationId(EventsByRequestId):
    """Timeline of each application."""

    column = "application_id"


class AttachmentsByRequestId(Loader[int, list[Any]]):
    """(attachment, file) pairs of each appeal or application (by ``column``), both directions."""

    column: ClassVar[str]

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[list[Any]]:
        found = await service.attachments_by_request(session, self.column, keys)
        return [found[key] for key in keys]


class AttachmentsByAppealId(AttachmentsByRequestId):
    """Attachments of each appeal."""

    column = "appeal_id"


class AttachmentsByApplicationId(AttachmentsByRequestId):
    """Attachments of each application."""

    column = "application_id"


_REQUEST_LOADERS: dict[type, tuple[type[EventsByRequestId], type[AttachmentsByRequestId]]] = {
    Appeal: (EventsByAppealId, AttachmentsByAppealId),
    Application: (EventsByApplicationId, AttachmentsByApplicationId),
}


async def timeline(info: Info, row: RequestRow) -> list[Any]:
    """The timeline of an appeal or application (one batched statement per kind per request)."""
    events, _ = _REQUEST_LOADERS[type(row)]
    return await info.context.loader(events).load(row.id)


async def attachments(info: Info, row: RequestRow) -> list[Any]:
    """(attachment, file) pairs of an appeal or application, both directions."""
    _, files = _REQUEST_LOADERS[type(row)]
    return await info.context.loader(files).load(row.id)


# ---------------------------------------------------------------- helpers


def _period(today: dt.date, start: dt.date | None, end: dt.date | None) -> PeriodRange:
    """D8 for appeals and applications, with one addition: the current month is always allowed (and shown
    by default), since requests sent this month are still being handled."""
    from graphql import GraphQLError

    current = month_start(today)
    allowed = allowed_range(today)
    if start is None and end is None:
        return PeriodRange(allowed.start, current)
    through_current = end is None or month_start(end) == current
    try:
        found = history_range(today, start, allowed.end if through_current else end)
    except PeriodOutOfRange as error:
        if start is not None and month_start(start) == current and through_current:
            return PeriodRange(current, current)
        raise GraphQLError(
            error.text,
            extensions={
                "code": error.code,
                "earliest": error.data["earliest"].strftime("%Y-%m"),
                "latest": error.data["latest"].strftime("%Y-%m"),
            },
        ) from None
    return PeriodRange(found.start, current if through_current else found.end)


def _sink(info: Info, prefix: str) -> service.FileSink:
    settings = info.context.settings
    return service.FileSink(
        storage=storage.local_storage(settings.data_dir),
        limits=service.UploadLimits(settings.upload_max_file_bytes, settings.upload_max_total_bytes),
        owner_user_id=require_viewer(info).user_id,
        prefix=prefix,
    )


@dataclass(slots=True)
class Outcome:
    """A mutation's result: the row, or why nothing was stored."""

    row: Any
    errors: list[DomainError]


@contextlib.contextmanager
def _files(info: Info, prefix: str) -> Iterator[service.FileSink]:
    """Where a write's uploaded files go; they are deleted again when the write fails (its unit of work
    rolled back or its COMMIT failed)."""
    sink = _sink(info, prefix)
    try:
        yield sink
    except BaseException:
        sink.discard()
        raise


def _refused(error: service.Rejected | DomainError) -> Outcome:
    return Outcome(None, error.errors if isinstance(error, service.Rejected) else [error])


async def _account_ids(info: Info, account_global_id: Any) -> list[int] | None:
    """None: every account the caller may see (staff: all); else the one account if visible (else [])."""
    if account_global_id is None:
        return None
    account_id = parse_id(account_global_id, "Account")
    if account_id is None:
        return []
    return sorted(await visible_account_ids(info, [account_id]))


async def _linked_filter(info: Info, account_global_id: Any) -> list[int] | None:
    viewer = require_viewer(info)
    chosen = await _account_ids(info, account_global_id)
    if reads_customer_data(viewer.role):
        return chosen
    if chosen is not None:
        return chosen
    async with info.context.session() as session:
        return await accounts.linked_account_ids(session, viewer.user_id)


# ---------------------------------------------------------------- F1, F2 appeals


async def appeal_draft(info: Info, account_global_id: Any) -> service.AppealDraft | None:
    """F2 pre-filled form; None when the chosen account is not the caller's."""
    viewer = require_customer(info)
    account_id = parse_id(account_global_id, "Account") if account_global_id is not None else None
    if account_global_id is not None and account_id is None:
        return None
    async with info.context.session() as session:
        try:
            return await service.appeal_draft(session, viewer.user_id, account_id)
        except accounts.AccountNotFound:
            return None


async def create_appeal(info: Info, data: Any) -> Outcome:
    """F2."""
    viewer = require_customer(info)
    values = service.NewAppeal(
        account_id=parse_id(data.account_id, "Account") if data.account_id else None,
        supplier_id=parse_id(data.supplier_id, "Supplier") if data.supplier_id else None,
        topic=data.topic,
        text=data.text,
        full_name=data.full_name,
        phone=data.phone,
        email=data.email,
        attachments=list(data.attachments or []),
    )

    try:
        with _files(info, "appeals") as sink:
            async with info.context.unit_of_work() as uow:
                row = await service.create_appeal(
                    uow.session, sink, user_id=viewer.user_id, data=values, now=info.context.now
                )
    except (service.Rejected, DomainError) as error:
        return _refused(error)
    return Outcome(row, [])


async def appeals(
    info: Info,
    account_global_id: Any,
    start: dt.date | None,
    end: dt.date | None,
    first: int,
    after: str | None,
) -> Page[Appeal]:
    """F1: appeals of the caller (of one account or all linked), inside the D8 range."""
    viewer = require_viewer(info)
    period = _period(info.context.today, start, end)
    account_ids = await _linked_filter(info, account_global_id)
    async with info.context.session() as session:
        return await service.appeal_page(
            session,
            user_id=viewer.user_id,
            role=viewer.role,
            account_ids=account_ids,
            period=period,
            first=first,
            after=decode_cursor(after),
        )


async def _visible(info: Info, rows: list[Any]) -> list[Any]:
    viewer = info.context.viewer
    if viewer is None:
        return [None for _ in rows]
    linked = await visible_account_ids(info, [row.account_id for row in rows if row is not None])
    return [
        row
        if row is not None
        and service.may_see_request(row, viewer.user_id, viewer.role)
        and row.account_id in linked
        else None
        for row in rows
    ]


async def appeals_by_ids(info: Info, ids: list[int]) -> list[Appeal | None]:
    """Appeals by id, None where missing or not visible."""
    return await _visible(info, await info.context.loader(AppealById).load_many(ids))


async def applications_by_ids(info: Info, ids: list[int]) -> list[Application | None]:
    """Applications by id, None where missing or not visible."""
    return await _visible(info, await info.context.loader(ApplicationById).load_many(ids))


async def documents_by_ids(info: Info, ids: list[int]) -> list[Document | None]:
    """Documents by id, None where missing or on an account the caller may not see."""
    rows = await info.context.loader(DocumentById).load_many(ids)
    visible = await visible_account_ids(info, [row.account_id for row in rows if row is not None])
    return [row if row is not None and row.account_id in visible else None for row in rows]


# ---------------------------------------------------------------- G3, C2, C3 applications


def _consent_context(info: Info) -> service.ConsentContext:
    return service.ConsentContext(
        policy_version=info.context.settings.personal_data_policy_version,
        client_ip=info.context.client_ip,
        user_agent=info.context.user_agent,
    )


async def _create_application(info: Info, values: service.NewApplication) -> Outcome:
    viewer = require_customer(info)

    try:
        with _files(info, "applications") as sink:
            async with info.context.unit_of_work() as uow:
                row = await service.create_application(
                    uow.session,
                    sink,
                    user_id=viewer.user_id,
                    data=values,
                    consent_context=_consent_context(info),
                    now=info.context.now,
                )
    except (service.Rejected, DomainError) as error:
        return _refused(error)
    return Outcome(row, [])


async def create_application(info: Info, data: Any, kind: ApplicationKind, fields: dict[str, Any]) -> Outcome:
    """G3."""
    return await _create_application(
        info,
        service.NewApplication(
            account_id=parse_id(data.account_id, "Account") if data.account_id else None,
            kind=kind,
            text=data.text,
            fields=fields,
            meter_id=parse_id(data.meter_id, "Meter") if getattr(data, "meter_id", None) else None,
            consent=bool(data.consent),
            attachments=list(data.attachments or []),
            **_contacts(data),
        ),
    )


def _contacts(data: Any) -> dict[str, Any]:
    """§2.11's contact block of an application input (absent on C2/C3 inputs: the defaults apply)."""
    supplier = getattr(data, "supplier_id", None)
    return {
        "full_name": getattr(data, "full_name", None),
        "supplier_id": parse_id(supplier, "Supplier") if supplier else None,
        "phone": getattr(data, "phone", None),
        "email": getattr(data, "email", None),
    }


async def request_requisites_change(
    info: Info, data: Any, changes: Any, *, in_fields: bool = False
) -> Outcome:
    """C2: a «change of account data» application with the old and new values (``requestRequisitesChange``,
    or ``submitApplication`` of that kind with ``fields.changes``: ``in_fields`` puts the errors there)."""
    viewer = require_customer(info)
    account_id = parse_id(data.account_id, "Account") if data.account_id else None
    async with info.context.session() as session:
        try:
            fields = await service.requisites_change_fields(
                session,
                viewer.user_id,
                account_id,
                [(change.field.value, change.new_value) for change in changes or []],
            )
        except service.Rejected as rejected:
            for error in rejected.errors:
                if in_fields and error.field is not None and error.field[:2] == ["input", "changes"]:
                    error.field = ["input", "fields", *error.field[1:]]
            return Outcome(row=None, errors=rejected.errors)
    names = ", ".join(change["name"] for change in fields["changes"])
    text = data.text or (f"Прошу изменить данные лицевого счета: {names}." if names else None)
    return await _create_application(
        info,
        service.NewApplication(
            account_id=account_id,
            kind=ApplicationKind.CHANGE_OF_ACCOUNT_DATA,
            text=text,
            fields=fields if fields["changes"] else {},
            meter_id=None,
            consent=bool(data.consent),
            attachments=list(data.attachments or []),
            **_contacts(data),
        ),
    )


async def report_meter_malfunction(info: Info, data: Any) -> Outcome:
    """C3: a meter-check application about that meter (its account is the meter's)."""
    viewer = require_customer(info)
    meter_id = parse_id(data.meter_id, "Meter") if data.meter_id else None
    description = data.description.strip() if data.description and data.description.strip() else None
    errors: list[DomainError] = []
    if data.meter_id is None:
        errors.append(FieldRequired(field=["input", "meterId"]))
    if description is None:
        errors.append(FieldRequired(field=["input", "description"]))
    if not data.consent:
        errors.append(service.ConsentRequired(field=["input", "consent"]))
    account_id = None
    if data.meter_id is not None:
        from models.meters import Meter

        async with info.context.session() as session:
            meter = await session.get(Meter, meter_id) if meter_id is not None else None
            if meter is not None and meter.account_id in await accounts.linked_account_ids(
                session, viewer.user_id
            ):
                account_id = meter.account_id
        if account_id is None:
            errors.append(service.MeterNotFound(field=["input", "meterId"]))
    if errors:
        return Outcome(None, errors)
    return await _create_application(
        info,
        service.NewApplication(
            account_id=account_id,
            kind=ApplicationKind.METER_CHECK,
            text=f"Неисправность прибора учета: {description}",
            fields={"malfunction": description},
            meter_id=meter_id,
            consent=True,
            attachments=list(data.attachments or []),
        ),
    )


async def applications(
    info: Info,
    account_global_id: Any,
    start: dt.date | None,
    end: dt.date | None,
    first: int,
    after: str | None,
) -> Page[Application]:
    """G3: applications of the caller, inside the D8 range."""
    viewer = require_viewer(info)
    period = _period(info.context.today, start, end)
    account_ids = await _linked_filter(info, account_global_id)
    async with info.context.session() as session:
        return await service.application_page(
            session,
            user_id=viewer.user_id,
            role=viewer.role,
            account_ids=account_ids,
            period=period,
            first=first,
            after=decode_cursor(after),
        )


# ---------------------------------------------------------------- G1, G2 documents


async def documents(
    info: Info, account_global_id: Any, first: int, after: str | None
) -> Page[Document] | None:
    """G1: documents of a visible account; None when not visible."""
    require_viewer(info)
    cursor = decode_cursor(after)  # a malformed cursor is INVALID_CURSOR whoever's account it names
    account_ids = await _account_ids(info, account_global_id)
    if not account_ids:
        return None
    async with info.context.session() as session:
        return await service.document_page(session, account_ids, first=first, after=cursor)


async def upload_document(info: Info, data: Any) -> Outcome:
    """G2."""
    viewer = require_customer(info)
    account_id = parse_id(data.account_id, "Account") if data.account_id else None
    doc_type = DocumentType(data.type.value) if data.type is not None else None

    try:
        with _files(info, "documents") as sink:
            async with info.context.unit_of_work() as uow:
                row = await service.upload_document(
                    uow.session,
                    sink,
                    user_id=viewer.user_id,
                    account_id=account_id,
                    doc_type=doc_type,
                    title=data.title,
                    file=data.file,
                    now=info.context.now,
                )
    except (service.Rejected, DomainError) as error:
        return _refused(error)
    return Outcome(row, [])


# ---------------------------------------------------------------- operator side


def require_operator(info: Info) -> Any:
    """Operators (and admins) handle appeals and applications."""
    return require_role(info, "OPERATOR", "ADMIN")


async def queue(
    info: Info,
    model: type[Appeal] | type[Application],
    statuses: list[RequestStatus] | None,
    branch_global_id: Any,
    older_than_hours: int | None,
    first: int,
    after: str | None,
) -> Page[Any]:
    """Operators' queue of appeals or applications, oldest first; analysts get its size only."""
    viewer = require_role(info, "OPERATOR", "ADMIN", "ANALYST")
    where = service.QueueFilter(
        statuses=tuple(statuses) if statuses else service.OPEN_STATUSES,
        branch_id=parse_id(branch_global_id, "Branch") if branch_global_id else None,
        older_than=dt.timedelta(hours=older_than_hours) if older_than_hours else None,
    )
    if branch_global_id and where.branch_id is None:
        where = service.QueueFilter(statuses=where.statuses, branch_id=-1, older_than=where.older_than)
    async with info.context.session() as session:
        page = await service.queue_page(
            session, model, where, now=info.context.now, first=first, after=decode_cursor(after)
        )
    if not reads_customer_data(viewer.role):  # ANALYST: the queue's size, no per-customer object
        return Page(items=[], keys=[], has_next=False, total=page.total)
    return page


def _request_ref(value: Any) -> tuple[type[Appeal] | type[Application], int] | None:
    for type_name, model in (("Appeal", Appeal), ("Application", Application)):
        found = parse_id(value, type_name)
        if found is not None:
            return model, found
    return None


async def operator_action(
    info: Info,
    request_global_id: Any,
    action: Callable[[AsyncSession, service.FileSink, Any, int], Awaitable[None]],
) -> Outcome:
    """Lock the appeal or application and apply ``action`` in one unit of work (the customer is
    notified)."""
    operator = require_operator(info)
    ref = _request_ref(request_global_id)
    if ref is None:
        return Outcome(None, [service.AppealNotFound(field=["input", "id"])])
    model, request_id = ref

    try:
        with _files(info, "answers") as sink:
            async with info.context.unit_of_work() as uow:
                row = await service.lock_request(uow.session, model, request_id)
                await action(uow.session, sink, row, operator.user_id)
    except (service.Rejected, DomainError) as error:
        return _refused(error)
    return Outcome(row, [])


# ---------------------------------------------------------------- F3, F4


async def ask_assistant(
    info: Info, question: str, account_global_id: Any
) -> service.AssistantReply | Outcome:
    """F3."""
    viewer = require_customer(info)
    account_id = parse_id(account_global_id, "Account") if account_global_id else None
    if account_global_id and account_id is None:
        return Outcome(None, [accounts.AccountNotFound(field=["accountId"])])
    async with info.context.session() as session:
        try:
            return await service.ask_assistant(
                session,
                user_id=viewer.user_id,
                question=question,
                account_id=account_id,
                now=info.context.now,
            )
        except service.Rejected as rejected:
            return Outcome(None, rejected.errors)


async def video_call(info: Info, account_global_id: Any) -> service.VideoCall | Outcome:
    """F4."""
    viewer = require_customer(info)
    account_id = parse_id(account_global_id, "Account")
    if account_id is None:
        return Outcome(None, [accounts.AccountNotFound(field=["accountId"])])
    settings = info.context.settings
    async with info.context.session() as session:
        try:
            return await service.video_call(
                session,
                user_id=viewer.user_id,
                account_id=account_id,
                secret_key=settings.secret_key,
                ttl=dt.timedelta(seconds=settings.video_token_ttl_seconds),
                now=info.context.now,
            )
        except DomainError as error:
            if isinstance(error, accounts.AccountNotFound):
                error.field = ["accountId"]
            return Outcome(None, [error])
