"""Appeals (F1, F2), applications (G3, C2, C3), documents (G1, G2), the operator's side, the virtual
assistant (F3) and the video call (F4).

Customers see only appeals, applications and documents of accounts linked to them (and only appeals and
applications they filed themselves); operators see all. Every status change is a timeline row
(``request_events``) and a notification to the customer in the same transaction. Uploaded files are
checked and stored by :mod:`services.storage` while the request is read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from models.accounts import Account, AccountService
from models.appeals import (
    Appeal,
    Application,
    ApplicationKind,
    Attachment,
    AttachmentDirection,
    Document,
    DocumentType,
    RequestEvent,
    RequestEventKind,
    RequestStatus,
)
from models.branches import Branch, Service, Supplier
from models.files import StoredFile
from models.identity import Consent, ConsentKind, User
from models.meters import Meter
from models.notifications import NotificationCategory
from models.payments import Payment, PaymentAllocation, PaymentStatus
from services import accounts, billing, branches, readings, storage
from services.errors import DomainError, FieldRequired, NotFound
from services.identity import common
from services.notifications import notify
from services.pagination import Page, keyset_page
from services.periods import PeriodRange, month_bounds
from services.roles import reads_customer_data
from services.unit_of_work import touch

ACCEPTED_MESSAGE = "Ваше обращение принято в работу"
"""G3 / F2: what the customer is told after a successful submission."""

TOPICS: dict[str, str] = {
    "CHARGES": "Начисления и перерасчеты",
    "PAYMENTS": "Оплата",
    "READINGS": "Показания приборов учета",
    "METERS": "Приборы учета",
    "RECEIPTS": "Квитанции",
    "ACCOUNT": "Лицевой счет",
    "CABINET": "Работа личного кабинета",
    "POWER_SUPPLY": "Качество электроснабжения",
    "OTHER": "Другое",
}
"""F2: the topic list of a new appeal (code → name shown)."""


# ---------------------------------------------------------------- errors


class Rejected(Exception):
    """Several problems found at once (every missing field is reported); nothing was stored."""

    def __init__(self, errors: list[DomainError]) -> None:
        self.errors = errors
        super().__init__("; ".join(error.text for error in errors))


class AppealNotFound(NotFound):
    """Not existing, or not visible to the caller."""

    code = "APPEAL_NOT_FOUND"
    message = "Обращение не найдено"


class ApplicationNotFound(NotFound):
    """Not existing, or not visible to the caller."""

    code = "APPLICATION_NOT_FOUND"
    message = "Заявление не найдено"


class MeterNotFound(NotFound):
    """The meter is not on the chosen account."""

    code = "METER_NOT_FOUND"
    message = "Прибор учета не найден"


class SupplierNotOfAccount(DomainError):
    """F2: the supplier must be one of the account's."""

    code = "SUPPLIER_NOT_OF_ACCOUNT"
    message = "Выберите поставщика из списка поставщиков лицевого счета"


class UnknownTopic(DomainError):
    """F2: the topic is chosen from the list."""

    code = "UNKNOWN_TOPIC"
    message = "Выберите тему обращения из списка"


class ConsentRequired(DomainError):
    """G3: the 152-FZ consent box must be ticked."""

    code = "CONSENT_REQUIRED"
    message = (
        "Необходимо согласие на обработку персональных данных в соответствии с Федеральным законом № 152-ФЗ "
        "«О персональных данных»"
    )


class FileTooLarge(DomainError):
    """One file above the per-file limit."""

    code = "FILE_TOO_LARGE"
    message = "Максимальный размер одного файла не должен превышать 7Мб."


class FilesTooLarge(DomainError):
    """The files together above the total limit."""

    code = "FILES_TOO_LARGE"
    message = "Общий объем вложенных файлов не должен превышать 100Мб."


class FileTypeNotAllowed(DomainError):
    """The content is not one of the allowed formats (whatever the file's name says)."""

    code = "FILE_TYPE_NOT_ALLOWED"
    message = (
        "Недопустимый формат файла. Допустимые форматы: PDF, JPEG, PNG, HEIC, DOC, DOCX, XLS, XLSX, ODT, TXT."
    )


class InvalidValue(DomainError):
    """A value of the wrong shape (dates in the wrong order, a negative amount, a malformed BIC)."""

    code = "INVALID_VALUE"
    message = "Проверьте правильность заполнения поля"


class RequestFinished(DomainError):
    """Operators cannot change a closed or rejected request."""

    code = "REQUEST_FINISHED"
    message = "Обращение уже закрыто"


class NoVideoConsultation(DomainError):
    """F4: the branch has no video-consultation room."""

    code = "VIDEO_CALL_UNAVAILABLE"
    message = "Видеозвонок недоступен для отделения лицевого счета"


# ---------------------------------------------------------------- uploads


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """Per-file and per-submission limits (settings; 7 MB and 100 MB by default)."""

    max_file_bytes: int = storage.MAX_FILE_BYTES
    max_total_bytes: int = storage.MAX_TOTAL_BYTES


@dataclass(slots=True)
class FileSink:
    """Stores the uploads of one submission and forgets them again if the transaction fails."""

    storage: storage.Storage
    limits: UploadLimits
    owner_user_id: int | None
    prefix: str
    keys: list[str] = field(default_factory=list)

    async def store_all(
        self, session: AsyncSession, uploads: Sequence[Any], path: list[str], *, used: int = 0
    ) -> list[StoredFile]:
        """Check and store every file (counting bytes while reading); any problem raises :class:`Rejected`
        with the file's input path, e.g. ``["input", "attachments", "2"]``."""
        budget = storage.UploadBudget(self.limits.max_total_bytes - used)
        rows: list[StoredFile] = []
        for index, upload in enumerate(uploads):
            at = [*path, str(index)]
            try:
                received = await storage.receive_upload(
                    upload, max_bytes=self.limits.max_file_bytes, budget=budget
                )
            except storage.UploadTooLarge:
                raise Rejected([FileTooLarge(field=at)]) from None
            except storage.UploadsTooLarge:
                raise Rejected([FilesTooLarge(field=path)]) from None
            except storage.UploadTypeNotAllowed:
                raise Rejected([FileTypeNotAllowed(field=at)]) from None
            row = await storage.store_upload(
                session, self.storage, received, prefix=self.prefix, owner_user_id=self.owner_user_id
            )
            self.keys.append(row.storage_key)
            rows.append(row)
        return rows

    def discard(self) -> None:
        """Delete what was stored (call when the transaction is rolled back)."""
        for key in self.keys:
            self.storage.delete(key)
        self.keys.clear()


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def _clean(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


# ---------------------------------------------------------------- F2 draft


@dataclass(slots=True)
class AppealDraft:
    """F2: what the new-appeal form shows pre-filled."""

    account: Account
    accounts: list[Account]
    suppliers: list[Supplier]
    full_name: str
    phone: str | None
    email: str | None


def owner_full_name(account: Account) -> str:
    """The account owner's «Фамилия Имя Отчество»."""
    return " ".join(
        part
        for part in (account.owner_last_name, account.owner_first_name, account.owner_middle_name)
        if part
    )


async def suppliers_of_accounts(
    session: AsyncSession, account_ids: Sequence[int]
) -> dict[int, list[Supplier]]:
    """Suppliers of the services of each account, by name, in one statement."""
    rows = await session.execute(
        select(AccountService.account_id, Supplier)
        .join(Service, Service.id == AccountService.service_id)
        .join(Supplier, Supplier.id == Service.supplier_id)
        .where(AccountService.account_id.in_(account_ids))
        .distinct()
        .order_by(AccountService.account_id, Supplier.id)
    )
    found: dict[int, list[Supplier]] = {account_id: [] for account_id in account_ids}
    for account_id, supplier in rows:
        found[account_id].append(supplier)
    return found


async def appeal_draft(session: AsyncSession, user_id: int, account_id: int | None) -> AppealDraft:
    """F2: owner's name, the account (the first linked unless chosen), its suppliers, phone and e-mail."""
    linked = await accounts.linked_account_ids(session, user_id)
    if not linked or (account_id is not None and account_id not in linked):
        raise accounts.AccountNotFound(field=["accountId"])
    rows = {a.id: a for a in (await session.execute(select(Account).where(Account.id.in_(linked)))).scalars()}
    chosen = rows[account_id if account_id is not None else linked[0]]
    user = await session.get(User, user_id)
    assert user is not None
    suppliers = (await suppliers_of_accounts(session, [chosen.id]))[chosen.id]
    return AppealDraft(
        account=chosen,
        accounts=[rows[i] for i in linked],
        suppliers=suppliers,
        full_name=owner_full_name(chosen),
        phone=user.phone,
        email=user.email,
    )


# ---------------------------------------------------------------- F2 create


@dataclass(slots=True)
class NewAppeal:
    """F2 input as plain values (ids already decoded; None where not given)."""

    account_id: int | None
    supplier_id: int | None
    topic: str | None
    text: str | None
    full_name: str | None
    phone: str | None
    email: str | None
    attachments: list[Any]


def _path(*names: str) -> list[str]:
    return ["input", *names]


def _contact(
    phone: str | None, email: str | None, errors: list[DomainError]
) -> tuple[str | None, str | None]:
    """F2/G3: the contact phone as E.164 and the e-mail normalized, with the profile's own rules (A1);
    problems are added to ``errors``; blank values stay None (the caller reports them if required)."""
    values: list[str | None] = []
    for name, value, normalize in (
        ("phone", phone, common.normalize_phone),
        ("email", email, common.normalize_email),
    ):
        if _blank(value):
            values.append(None)
            continue
        try:
            values.append(normalize(value, _path(name)))
        except DomainError as error:
            errors.append(error)
            values.append(None)
    return values[0], values[1]


async def create_appeal(
    session: AsyncSession, sink: FileSink, *, user_id: int, data: NewAppeal, now: dt.datetime
) -> Appeal:
    """F2: store the appeal, its first timeline row and its attachments; :class:`Rejected` lists every
    problem (each missing field at its path)."""
    errors: list[DomainError] = [
        FieldRequired(field=_path(name))
        for name, value in (
            ("accountId", data.account_id),
            ("supplierId", data.supplier_id),
            ("topic", data.topic),
            ("text", data.text),
            ("fullName", data.full_name),
            ("phone", data.phone),
            ("email", data.email),
        )
        if _blank(value)
    ]
    if data.topic and data.topic.strip() and data.topic.strip() not in TOPICS:
        errors.append(UnknownTopic(field=_path("topic")))
    phone, email = _contact(data.phone, data.email, errors)
    if data.account_id is not None:
        if data.account_id not in await accounts.linked_account_ids(session, user_id):
            errors.append(accounts.AccountNotFound(field=_path("accountId")))
        elif data.supplier_id is not None:
            suppliers = (await suppliers_of_accounts(session, [data.account_id]))[data.account_id]
            if data.supplier_id not in {s.id for s in suppliers}:
                errors.append(SupplierNotOfAccount(field=_path("supplierId")))
    if errors:
        raise Rejected(errors)
    assert data.account_id is not None and data.topic and data.text and data.full_name
    appeal = Appeal(
        user_id=user_id,
        account_id=data.account_id,
        supplier_id=data.supplier_id,
        topic=data.topic.strip(),
        text=data.text.strip(),
        full_name=data.full_name.strip()[:160],
        phone=phone,
        email=email,
        status=RequestStatus.NEW,
        created_at=now,
        updated_at=now,
    )
    touch(session, users=[user_id], accounts=[appeal.account_id])
    session.add(appeal)
    await session.flush()
    await _record_submission(session, sink, data.attachments, user_id, now, appeal_id=appeal.id)
    return appeal


async def _record_submission(
    session: AsyncSession,
    sink: FileSink,
    attachments: Sequence[Any],
    user_id: int,
    now: dt.datetime,
    **parent: int,
) -> None:
    """The customer's files and the CREATED timeline event of a new appeal or application (``parent``
    is ``appeal_id=…`` or ``application_id=…``)."""
    files = await sink.store_all(session, attachments, _path("attachments"))
    session.add(
        RequestEvent(
            kind=RequestEventKind.CREATED,
            status=RequestStatus.NEW,
            actor_user_id=user_id,
            created_at=now,
            **parent,
        )
    )
    for row in files:
        session.add(
            Attachment(file_id=row.id, direction=AttachmentDirection.FROM_CUSTOMER, created_at=now, **parent)
        )
    await session.flush()


# ---------------------------------------------------------------- G3, C2, C3 applications


@dataclass(frozen=True, slots=True)
class KindSpec:
    """The form fields an application kind needs (camelCase names of ``ApplicationFieldsInput``)."""

    required: tuple[str, ...] = ()
    meter: bool = False  # needs a meter of the account


KINDS: dict[ApplicationKind, KindSpec] = {
    ApplicationKind.RECONCILIATION_ACT: KindSpec(("periodFrom", "periodTo")),
    ApplicationKind.NO_DEBT_CERTIFICATE: KindSpec(),
    ApplicationKind.DEBT_RESTRUCTURING_AGREEMENT: KindSpec(("installments",)),
    ApplicationKind.OPEN_ACCOUNT: KindSpec(("ownerFullName", "address")),
    ApplicationKind.CLOSE_ACCOUNT: KindSpec(("date",)),
    ApplicationKind.CHANGE_OF_OWNER: KindSpec(("ownerFullName",)),
    ApplicationKind.CHANGE_OF_ACCOUNT_DATA: KindSpec(("changes",)),
    ApplicationKind.FREE_FORM: KindSpec(),
    ApplicationKind.METER_SEALING: KindSpec(("meterId", "date"), meter=True),
    ApplicationKind.CONTROL_READING: KindSpec(("meterId", "date"), meter=True),
    ApplicationKind.METER_CHECK: KindSpec(("meterId",), meter=True),
    ApplicationKind.CHARGES_CORRECTION_BY_READINGS: KindSpec(("periodFrom",)),
    ApplicationKind.REFUND: KindSpec(("amount", "recipientName", "bic", "bankAccount")),
    ApplicationKind.PAYMENT_REDIRECT: KindSpec(("amount", "date", "targetAccountNumber")),
    ApplicationKind.RECEIVABLES_RESTRUCTURING: KindSpec(("installments",)),
    ApplicationKind.RECALCULATION_TEMPORARY_ABSENCE: KindSpec(("absenceFrom", "absenceTo")),
    ApplicationKind.TARIFF_CHANGE_DAY_ZONES: KindSpec(("zoneScheme",)),
    ApplicationKind.TARIFF_CHANGE_REDUCTION_COEFFICIENT: KindSpec(("reason",)),
}
"""G3: each kind's required fields (the text and the consent are required for every kind)."""

REQUISITE_FIELDS: dict[str, str] = {
    "OWNER_FULL_NAME": "ФИО собственника",
    "TOTAL_AREA": "Общая площадь",
    "LIVING_AREA": "Жилая площадь",
    "OWNERS_COUNT": "Количество собственников",
    "REGISTERED_COUNT": "Количество зарегистрированных",
    "RESIDING_COUNT": "Количество проживающих",
    "ROOMS": "Количество комнат",
    "STOVE_TYPE": "Тип плиты",
    "ELECTRIC_HEATING": "Электроотопление",
}
"""C2: the requisites a customer may ask to change (code → name shown)."""


def requisite_value(account: Account, code: str) -> str | None:
    """C2: the current value of a requisite, as text."""
    value: Any = {
        "OWNER_FULL_NAME": owner_full_name(account),
        "TOTAL_AREA": account.total_area,
        "LIVING_AREA": account.living_area,
        "OWNERS_COUNT": account.owners_count,
        "REGISTERED_COUNT": account.registered_count,
        "RESIDING_COUNT": account.residing_count,
        "ROOMS": account.rooms,
        "STOVE_TYPE": account.stove_type.value if account.stove_type else None,
        "ELECTRIC_HEATING": "да" if account.electric_heating else "нет",
    }[code]
    return None if value is None else str(value)


class RequisiteOutOfRange(DomainError):
    """C2: a requested requisite value of the wrong type or outside its range."""

    code = "OUT_OF_RANGE"
    message = "Проверьте правильность заполнения поля"


_INTEGER = re.compile(r"[0-9]{1,4}")
_AREA = re.compile(r"[0-9]{1,5}([.,][0-9]{1,2})?")
_STOVE_TYPES = {"GAS", "ELECTRIC", "NONE"}
_YES = {"true", "да", "yes"}
_NO = {"false", "нет", "no"}
REQUISITE_RANGES: dict[str, tuple[int, int]] = {
    "ROOMS": (1, 50),
    "OWNERS_COUNT": (1, 100),
    "REGISTERED_COUNT": (0, 100),
    "RESIDING_COUNT": (0, 100),
}
"""C2: integer requisites and their ranges."""
MAX_AREA = Decimal(10000)
"""C2: largest area, m² (areas are more than 0)."""


def _requisite_error(code: str, value: str, at: list[str]) -> tuple[DomainError | None, Any]:
    """The error of one requested value (or None) and the value normalized."""
    if code in REQUISITE_RANGES:
        low, high = REQUISITE_RANGES[code]
        if not _INTEGER.fullmatch(value) or not low <= int(value) <= high:
            return RequisiteOutOfRange(field=at, message=f"Введите целое число от {low} до {high}."), None
        return None, int(value)
    if code in {"TOTAL_AREA", "LIVING_AREA"}:
        area = Decimal(value.replace(",", ".")) if _AREA.fullmatch(value) else None
        if area is None or not 0 < area <= MAX_AREA:
            return RequisiteOutOfRange(
                field=at, message="Введите площадь в м²: число больше 0 и не больше 10000."
            ), None
        return None, area
    if code == "STOVE_TYPE":
        if value.upper() not in _STOVE_TYPES:
            return RequisiteOutOfRange(field=at, message="Выберите тип плиты: GAS, ELECTRIC или NONE."), None
        return None, value.upper()
    if code == "ELECTRIC_HEATING":
        if value.lower() not in _YES | _NO:
            return RequisiteOutOfRange(field=at, message="Укажите «да» (true) или «нет» (false)."), None
        return None, value.lower() in _YES
    return None, value


def check_requisite_changes(
    changes: list[tuple[str, str | None]], account: Account | None
) -> tuple[list[DomainError], list[tuple[str, str | None]]]:
    """C2: every requested value has its requisite's type and range; living area ≤ total area (the new
    total when it is asked for too, else the current one). Returns the errors and the values normalized."""
    errors: list[DomainError] = []
    normalized: list[tuple[str, str | None]] = []
    areas: dict[str, tuple[Decimal, list[str]]] = {}
    for index, (code, raw) in enumerate(changes):
        at = _path("changes", str(index), "newValue")
        value = (raw or "").strip()
        if not value:
            errors.append(FieldRequired(field=at))
            continue
        error, parsed = _requisite_error(code, value, at)
        if error is not None:
            errors.append(error)
            continue
        if isinstance(parsed, Decimal):
            areas[code] = (parsed, at)
        if isinstance(parsed, bool):
            value = "да" if parsed else "нет"
        elif parsed is not None:
            value = str(parsed)
        normalized.append((code, value))
    total = areas["TOTAL_AREA"][0] if "TOTAL_AREA" in areas else (account.total_area if account else None)
    if "LIVING_AREA" in areas and total is not None and areas["LIVING_AREA"][0] > total:
        errors.append(
            RequisiteOutOfRange(
                field=areas["LIVING_AREA"][1], message="Жилая площадь не может быть больше общей."
            )
        )
    return errors, normalized


@dataclass(slots=True)
class NewApplication:
    """G3 input as plain values; ``fields`` holds the kind's form fields (camelCase, JSON-ready values)."""

    account_id: int | None
    kind: ApplicationKind
    text: str | None
    fields: dict[str, Any]
    meter_id: int | None
    consent: bool
    attachments: list[Any]
    full_name: str | None = None
    supplier_id: int | None = None
    phone: str | None = None
    email: str | None = None


def _check_fields(kind: ApplicationKind, fields: dict[str, Any], meter_id: int | None) -> list[DomainError]:
    spec = KINDS[kind]
    errors: list[DomainError] = []
    for name in spec.required:
        value = meter_id if name == "meterId" else fields.get(name)
        if _blank(value):
            at = _path("meterId") if name == "meterId" else _path("fields", name)
            errors.append(FieldRequired(field=at))
    for start, end in (("periodFrom", "periodTo"), ("absenceFrom", "absenceTo")):
        if fields.get(start) and fields.get(end) and str(fields[start]) > str(fields[end]):
            errors.append(InvalidValue(field=_path("fields", end)))
    amount = fields.get("amount")
    if amount is not None and Decimal(str(amount)) <= 0:
        errors.append(InvalidValue(field=_path("fields", "amount")))
    if fields.get("bic") and not re.fullmatch(r"\d{9}", str(fields["bic"])):
        errors.append(InvalidValue(field=_path("fields", "bic")))
    if fields.get("bankAccount") and not re.fullmatch(r"\d{20}", str(fields["bankAccount"])):
        errors.append(InvalidValue(field=_path("fields", "bankAccount")))
    installments = fields.get("installments")
    if installments is not None and not 2 <= int(installments) <= 36:
        errors.append(InvalidValue(field=_path("fields", "installments")))
    return errors


async def record_consent(
    session: AsyncSession,
    user_id: int,
    *,
    policy_version: str,
    now: dt.datetime,
    client_ip: str | None,
    user_agent: str | None,
) -> Consent:
    """G3: the 152-FZ consent given with an application, as a row of its own."""
    consent = Consent(
        user_id=user_id,
        kind=ConsentKind.PERSONAL_DATA,
        policy_version=policy_version,
        accepted_at=now,
        client_ip=client_ip,
        user_agent=(user_agent or "")[:500] or None,
    )
    touch(session, users=[user_id])
    session.add(consent)
    await session.flush()
    return consent


@dataclass(frozen=True, slots=True)
class ConsentContext:
    """Where a consent was given: policy version and the caller's address and agent."""

    policy_version: str
    client_ip: str | None
    user_agent: str | None


async def create_application(
    session: AsyncSession,
    sink: FileSink,
    *,
    user_id: int,
    data: NewApplication,
    consent_context: ConsentContext,
    now: dt.datetime,
) -> Application:
    """G3 (and C2, C3): store the application with its fields, the consent, the first timeline row and the
    attachments; :class:`Rejected` lists every problem."""
    errors: list[DomainError] = []
    if data.account_id is None:
        errors.append(FieldRequired(field=_path("accountId")))
    if _blank(data.text):
        errors.append(FieldRequired(field=_path("text")))
    errors.extend(_check_fields(data.kind, data.fields, data.meter_id))
    if not data.consent:
        errors.append(ConsentRequired(field=_path("consent")))
    phone, email = _contact(data.phone, data.email, errors)
    suppliers: list[Any] = []
    if data.account_id is not None:
        if data.account_id not in await accounts.linked_account_ids(session, user_id):
            errors.append(accounts.AccountNotFound(field=_path("accountId")))
        else:
            suppliers = (await suppliers_of_accounts(session, [data.account_id]))[data.account_id]
            if data.supplier_id is not None and data.supplier_id not in {s.id for s in suppliers}:
                errors.append(SupplierNotOfAccount(field=_path("supplierId")))
            if data.meter_id is not None:
                meter = await session.get(Meter, data.meter_id)
                if meter is None or meter.account_id != data.account_id:
                    errors.append(MeterNotFound(field=_path("meterId")))
    if errors:
        raise Rejected(errors)
    assert data.account_id is not None and data.text
    # §2.11: what the form was pre-filled with (appeal_draft) stands where the customer sent nothing
    account = await session.get(Account, data.account_id)
    user = await session.get(User, user_id)
    assert account is not None and user is not None
    consent = await record_consent(
        session,
        user_id,
        policy_version=consent_context.policy_version,
        now=now,
        client_ip=consent_context.client_ip,
        user_agent=consent_context.user_agent,
    )
    application = Application(
        user_id=user_id,
        account_id=data.account_id,
        kind=data.kind,
        fields=data.fields,
        text=data.text.strip(),
        meter_id=data.meter_id if KINDS[data.kind].meter else None,
        full_name=(data.full_name or "").strip()[:160] or owner_full_name(account),
        supplier_id=data.supplier_id or (suppliers[0].id if suppliers else None),
        phone=phone or user.phone,
        email=email or user.email,
        status=RequestStatus.NEW,
        consent_id=consent.id,
        created_at=now,
        updated_at=now,
    )
    touch(session, users=[user_id], accounts=[application.account_id])
    session.add(application)
    await session.flush()
    await _record_submission(session, sink, data.attachments, user_id, now, application_id=application.id)
    return application


async def requisites_change_fields(
    session: AsyncSession, user_id: int, account_id: int | None, changes: list[tuple[str, str | None]]
) -> dict[str, Any]:
    """C2: the «change of account data» fields: each requisite with its current (old) and requested value.
    Unknown accounts give empty old values (the application is then refused for the account)."""
    account = await session.get(Account, account_id) if account_id is not None else None
    linked = account is not None and account.id in await accounts.linked_account_ids(session, user_id)
    errors, changes = check_requisite_changes(changes, account if linked else None)
    if errors:
        raise Rejected(errors)
    return {
        "changes": [
            {
                "field": code,
                "name": REQUISITE_FIELDS[code],
                "oldValue": requisite_value(account, code) if linked and account else None,
                "newValue": new_value,
            }
            for code, new_value in changes
        ]
    }


# ---------------------------------------------------------------- F1, G3 lists and cards


def _range_filter(column: Any, period: PeriodRange | None) -> list[Any]:
    if period is None:
        return []
    start, end = month_bounds(period.start, period.end)  # Moscow months, not the database session's zone
    return [column >= start, column < end]


def _customer_scope(model: Any, user_id: int, role: str, account_ids: Sequence[int] | None) -> list[Any]:
    conditions: list[Any] = []
    if not reads_customer_data(role):
        conditions.append(model.user_id == user_id)
    if account_ids is not None:
        conditions.append(model.account_id.in_(account_ids))
    return conditions


async def _request_page(
    session: AsyncSession,
    model: type[Appeal] | type[Application],
    *,
    user_id: int,
    role: str,
    account_ids: Sequence[int] | None,
    period: PeriodRange | None,
    first: int,
    after: tuple[Any, ...] | None,
) -> Page[Any]:
    """Appeals or applications the caller may see, newest first, inside the D8 range."""
    stmt = select(model).where(
        *_customer_scope(model, user_id, role, account_ids), *_range_filter(model.created_at, period)
    )
    return await keyset_page(
        session,
        stmt,
        order_by=[model.created_at, model.id],
        key=lambda row: (row.created_at, row.id),
        first=first,
        after=after,
        count_total=True,
    )


async def appeal_page(session: AsyncSession, **scope: Any) -> Page[Appeal]:
    """F1: the caller's appeals (of visible accounts), newest first, inside the D8 range."""
    return await _request_page(session, Appeal, **scope)


async def application_page(session: AsyncSession, **scope: Any) -> Page[Application]:
    """G3: the caller's applications, newest first, inside the D8 range."""
    return await _request_page(session, Application, **scope)


def may_see_request(row: Appeal | Application, user_id: int, role: str) -> bool:
    """Customers see what they filed; OPERATOR and ADMIN see everything; an ANALYST nothing."""
    return reads_customer_data(role) or row.user_id == user_id


async def events_by_request(
    session: AsyncSession, column: str, ids: Sequence[int], *, customer_view: bool
) -> dict[int, list[RequestEvent]]:
    """Timelines of many appeals (``column="appeal_id"``) or applications, oldest first, in one statement."""
    col = getattr(RequestEvent, column)
    stmt = select(RequestEvent).where(col.in_(ids))
    if customer_view:
        stmt = stmt.where(RequestEvent.visible_to_customer.is_(True))
    rows = await session.execute(stmt.order_by(RequestEvent.created_at, RequestEvent.id))
    found: dict[int, list[RequestEvent]] = {key: [] for key in ids}
    for row in rows.scalars():
        found[getattr(row, column)].append(row)
    return found


async def attachments_by_request(
    session: AsyncSession, column: str, ids: Sequence[int]
) -> dict[int, list[tuple[Attachment, StoredFile]]]:
    """Attachments (with their files) of many appeals or applications, oldest first, in one statement."""
    col = getattr(Attachment, column)
    rows = await session.execute(
        select(Attachment, StoredFile)
        .join(StoredFile, StoredFile.id == Attachment.file_id)
        .where(col.in_(ids))
        .order_by(Attachment.created_at, Attachment.id)
    )
    found: dict[int, list[tuple[Attachment, StoredFile]]] = {key: [] for key in ids}
    for attachment, file in rows:
        found[getattr(attachment, column)].append((attachment, file))
    return found


# ---------------------------------------------------------------- G1, G2 documents


async def document_page(
    session: AsyncSession, account_ids: Sequence[int], *, first: int, after: tuple[Any, ...] | None
) -> Page[Document]:
    """G1: documents of visible accounts, newest first."""
    stmt = select(Document).where(Document.account_id.in_(account_ids))
    return await keyset_page(
        session,
        stmt,
        order_by=[Document.created_at, Document.id],
        key=lambda row: (row.created_at, row.id),
        first=first,
        after=after,
        count_total=True,
    )


DOCUMENT_TITLES: dict[DocumentType, str] = {
    DocumentType.ENERGY_SUPPLY_CONTRACT: "Договор энергоснабжения",
    DocumentType.RESTRUCTURING_AGREEMENT: "Соглашение о реструктуризации задолженности",
    DocumentType.COURT_DOCUMENT: "Судебный документ",
    DocumentType.RECONCILIATION_ACT: "Акт сверки",
    DocumentType.NO_DEBT_CERTIFICATE: "Справка об отсутствии задолженности",
    DocumentType.OWNERSHIP_DOCUMENT: "Документ о праве собственности",
    DocumentType.IDENTITY_DOCUMENT: "Документ, удостоверяющий личность",
    DocumentType.OTHER: "Документ",
}


async def upload_document(
    session: AsyncSession,
    sink: FileSink,
    *,
    user_id: int,
    account_id: int | None,
    doc_type: DocumentType | None,
    title: str | None,
    file: Any,
    now: dt.datetime,
) -> Document:
    """G2: a customer's document of a type from the list with its file (same limits as attachments)."""
    errors: list[DomainError] = []
    if account_id is None:
        errors.append(FieldRequired(field=_path("accountId")))
    if doc_type is None:
        errors.append(FieldRequired(field=_path("type")))
    if file is None:
        errors.append(FieldRequired(field=_path("file")))
    if account_id is not None and account_id not in await accounts.linked_account_ids(session, user_id):
        errors.append(accounts.AccountNotFound(field=_path("accountId")))
    if errors:
        raise Rejected(errors)
    assert account_id is not None and doc_type is not None
    budget = storage.UploadBudget(sink.limits.max_total_bytes)
    try:
        received = await storage.receive_upload(file, max_bytes=sink.limits.max_file_bytes, budget=budget)
    except storage.UploadTooLarge:
        raise Rejected([FileTooLarge(field=_path("file"))]) from None
    except storage.UploadsTooLarge:
        raise Rejected([FilesTooLarge(field=_path("file"))]) from None
    except storage.UploadTypeNotAllowed:
        raise Rejected([FileTypeNotAllowed(field=_path("file"))]) from None
    stored = await storage.store_upload(
        session, sink.storage, received, prefix=sink.prefix, owner_user_id=user_id
    )
    sink.keys.append(stored.storage_key)
    document = Document(
        account_id=account_id,
        user_id=user_id,
        type=doc_type,
        title=(_clean(title) or DOCUMENT_TITLES[doc_type])[:255],
        file_id=stored.id,
        uploaded_by_customer=True,
        created_at=now,
    )
    touch(session, users=[user_id], accounts=[account_id])  # the account's documents
    session.add(document)
    await session.flush()
    return document


# ---------------------------------------------------------------- operator side


OPEN_STATUSES = (RequestStatus.NEW, RequestStatus.IN_PROGRESS)
"""What an operator's queue shows by default."""


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """Operators' queue: by status, branch and age (created at least ``older_than`` ago)."""

    statuses: tuple[RequestStatus, ...] = OPEN_STATUSES
    branch_id: int | None = None
    older_than: dt.timedelta | None = None


async def queue_page(
    session: AsyncSession,
    model: type[Appeal] | type[Application],
    where: QueueFilter,
    *,
    now: dt.datetime,
    first: int,
    after: tuple[Any, ...] | None,
) -> Page[Any]:
    """Oldest first, so the longest-waiting request is at the top."""
    stmt: Select[Any] = select(model).where(model.status.in_(where.statuses))
    if where.branch_id is not None:
        stmt = stmt.join(Account, Account.id == model.account_id).where(Account.branch_id == where.branch_id)
    if where.older_than is not None:
        stmt = stmt.where(model.created_at <= now - where.older_than)
    return await keyset_page(
        session,
        stmt,
        order_by=[model.created_at, model.id],
        key=lambda row: (row.created_at, row.id),
        first=first,
        after=after,
        descending=False,
        count_total=True,
    )


FINISHED = frozenset({RequestStatus.CLOSED, RequestStatus.REJECTED})

STATUS_NAMES = {
    RequestStatus.NEW: "новое",
    RequestStatus.IN_PROGRESS: "в работе",
    RequestStatus.ANSWERED: "дан ответ",
    RequestStatus.CLOSED: "закрыто",
    RequestStatus.REJECTED: "отклонено",
}


async def lock_request(
    session: AsyncSession, model: type[Appeal] | type[Application], request_id: int
) -> Appeal | Application:
    """The request row locked for update; NotFound when missing."""
    row = (
        await session.execute(select(model).where(model.id == request_id).with_for_update())
    ).scalar_one_or_none()
    if row is None:
        raise (AppealNotFound if model is Appeal else ApplicationNotFound)(field=_path("id"))
    return row  # type: ignore[return-value]


def _parent(row: Appeal | Application) -> dict[str, int]:
    return {"appeal_id": row.id} if isinstance(row, Appeal) else {"application_id": row.id}


async def _notify_customer(session: AsyncSession, row: Appeal | Application, title: str, body: str) -> None:
    key = "appealId" if isinstance(row, Appeal) else "applicationId"
    await notify(
        session,
        user_id=row.user_id,
        category=NotificationCategory.REQUESTS,
        title=title,
        body=body,
        account_id=row.account_id,
        data={key: row.id, "status": row.status.value},
    )


def _noun(row: Appeal | Application) -> str:
    return "Обращение" if isinstance(row, Appeal) else "Заявление"


async def change_status(
    session: AsyncSession,
    row: Appeal | Application,
    *,
    operator_id: int,
    status: RequestStatus,
    now: dt.datetime,
    note: str | None = None,
    kind: RequestEventKind = RequestEventKind.STATUS_CHANGED,
) -> RequestEvent:
    """Move a request to ``status``, record the timeline row and notify the customer."""
    if row.status in FINISHED:
        raise RequestFinished(field=_path("id"))
    touch(session, users=[row.user_id], accounts=[row.account_id])  # the customer's request and timeline
    row.status = status
    row.operator_id = operator_id
    row.updated_at = now
    if status in FINISHED:
        row.closed_at = now
    event = RequestEvent(
        **_parent(row), kind=kind, status=status, text=note, actor_user_id=operator_id, created_at=now
    )
    session.add(event)
    await session.flush()
    title = f"{_noun(row)} № {row.id}: {STATUS_NAMES[status]}"
    await _notify_customer(session, row, title, note or f"Статус изменен: {STATUS_NAMES[status]}.")
    return event


async def take_into_work(
    session: AsyncSession, row: Appeal | Application, *, operator_id: int, now: dt.datetime
) -> None:
    """The operator takes the request (status IN_PROGRESS)."""
    await change_status(session, row, operator_id=operator_id, status=RequestStatus.IN_PROGRESS, now=now)


async def answer(
    session: AsyncSession,
    sink: FileSink,
    row: Appeal | Application,
    *,
    operator_id: int,
    text_: str | None,
    attachments: list[Any],
    now: dt.datetime,
) -> None:
    """The operator's answer with files (status ANSWERED); the customer is notified."""
    if _blank(text_):
        raise Rejected([FieldRequired(field=_path("text"))])
    assert text_ is not None
    if row.status in FINISHED:
        raise Rejected([RequestFinished(field=_path("id"))])
    column = "appeal_id" if isinstance(row, Appeal) else "application_id"
    used = (
        await session.execute(
            select(func.coalesce(func.sum(StoredFile.size), 0))
            .join(Attachment, Attachment.file_id == StoredFile.id)
            .where(getattr(Attachment, column) == row.id)
        )
    ).scalar_one()
    files = await sink.store_all(session, attachments, _path("attachments"), used=int(used))
    row.answer = text_.strip()
    row.answered_at = now
    event = await change_status(
        session,
        row,
        operator_id=operator_id,
        status=RequestStatus.ANSWERED,
        now=now,
        note=text_.strip(),
        kind=RequestEventKind.ANSWER,
    )
    for file in files:
        session.add(
            Attachment(
                file_id=file.id,
                request_event_id=event.id,
                direction=AttachmentDirection.FROM_OPERATOR,
                created_at=now,
                **_parent(row),
            )
        )
    await session.flush()


async def close(
    session: AsyncSession, row: Appeal | Application, *, operator_id: int, now: dt.datetime
) -> None:
    """The operator closes the request."""
    await change_status(session, row, operator_id=operator_id, status=RequestStatus.CLOSED, now=now)


async def reject(
    session: AsyncSession,
    row: Appeal | Application,
    *,
    operator_id: int,
    reason: str | None,
    now: dt.datetime,
) -> None:
    """The operator rejects the request with a reason (required)."""
    if _blank(reason):
        raise Rejected([FieldRequired(field=_path("reason"))])
    assert reason is not None
    await change_status(
        session, row, operator_id=operator_id, status=RequestStatus.REJECTED, now=now, note=reason.strip()
    )


# ---------------------------------------------------------------- F3 virtual assistant

NOT_KNOWN = (
    "К сожалению, я не знаю ответа на этот вопрос. Вы можете написать обращение — оператор ответит Вам "
    "в личном кабинете."
)

_WORD = re.compile(r"[0-9a-zа-яё]+", re.IGNORECASE)
_BALANCE = re.compile(r"баланс|задолж|долг|переплат|сколько.*(плат|должен)|к оплате", re.IGNORECASE)
_WINDOW = re.compile(
    r"(когда|период|срок|окн).*(показан|счетчик|счётчик)|(показан).*(когда|период|срок)", re.IGNORECASE
)
_LAST_PAYMENT = re.compile(
    r"последн\w* (платеж|платёж|оплат)|когда.*оплатил|(платеж|платёж).*(прошел|прошёл|поступил)",
    re.IGNORECASE,
)


@dataclass(slots=True)
class FaqHit:
    """A FAQ entry matching the question."""

    id: int
    question: str
    answer: str
    rank: float


@dataclass(slots=True)
class AssistantReply:
    """F3: an answer from the account data and/or the FAQ, or a plain «I don't know» offering an appeal."""

    known: bool
    text: str
    facts: list[str]
    faq: list[FaqHit]
    suggest_appeal: bool


async def search_faq(session: AsyncSession, question: str, *, limit: int = 3) -> list[FaqHit]:
    """FAQ entries matching any word of ``question`` (PostgreSQL full text, Russian configuration), best
    first."""
    words = [word.lower() for word in _WORD.findall(question) if len(word) >= 3][:20]
    if not words:
        return []
    query = func.to_tsquery(text("'russian'::regconfig"), " | ".join(words))
    from models.content import FaqEntry

    rank = func.ts_rank_cd(FaqEntry.search_vector, query)
    rows = await session.execute(
        select(FaqEntry.id, FaqEntry.question, FaqEntry.answer, rank)
        .where(FaqEntry.search_vector.op("@@")(query))
        .order_by(rank.desc(), FaqEntry.position)
        .limit(limit)
    )
    return [FaqHit(int(row[0]), str(row[1]), str(row[2]), float(row[3])) for row in rows]


async def _account_facts(
    session: AsyncSession, question: str, account_ids: list[int], now: dt.datetime
) -> list[str]:
    facts: list[str] = []
    if not account_ids:
        return facts
    rows = await session.execute(select(Account.id, Account.number).where(Account.id.in_(account_ids)))
    numbers: dict[int, str] = {account_id: number for account_id, number in rows}
    if _BALANCE.search(question):
        for balance in await billing.balances(session, account_ids):
            status = billing.balance_status(balance.amount)
            facts.append(
                f"Лицевой счет {numbers[balance.account_id]}: {billing.BALANCE_LABELS[status]}"
                + (
                    ""
                    if status is billing.BalanceStatus.NONE
                    else f" {billing.display_amount(balance.amount)} ₽"
                )
                + " ."
            )
    if _WINDOW.search(question):
        for account_id, (_, branch) in (await readings.accounts_with_branches(session, account_ids)).items():
            state = branches.window_state(branch, now)
            if state.current is not None:
                facts.append(
                    f"Лицевой счет {numbers[account_id]}: показания принимаются сейчас, до "
                    f"{state.current.closes:%d.%m.%Y} включительно."
                )
            else:
                facts.append(
                    f"Лицевой счет {numbers[account_id]}: показания принимаются "
                    f"с {state.next.opens:%d.%m.%Y} по {state.next.closes:%d.%m.%Y}."
                )
    if _LAST_PAYMENT.search(question):
        payments = await session.execute(
            select(PaymentAllocation.account_id, Payment.created_at, func.sum(PaymentAllocation.amount))
            .join(Payment, Payment.id == PaymentAllocation.payment_id)
            .where(PaymentAllocation.account_id.in_(account_ids), Payment.status == PaymentStatus.SUCCEEDED)
            .group_by(PaymentAllocation.account_id, Payment.id, Payment.created_at)
            .order_by(PaymentAllocation.account_id, Payment.created_at.desc())
            .ext(distinct_on(PaymentAllocation.account_id))
        )
        paid = {row[0]: (row[1], row[2]) for row in payments}
        for account_id in account_ids:
            if account_id in paid:
                at, amount = paid[account_id]
                facts.append(
                    f"Лицевой счет {numbers[account_id]}: последний платеж "
                    f"{billing.display_amount(amount)} ₽ от {at:%d.%m.%Y}."
                )
            else:
                facts.append(f"Лицевой счет {numbers[account_id]}: платежей не найдено.")
    return [fact.replace(" .", ".") for fact in facts]


async def ask_assistant(
    session: AsyncSession, *, user_id: int, question: str, account_id: int | None, now: dt.datetime
) -> AssistantReply:
    """F3: facts from the selected account (or all linked accounts) when the question is about the balance,
    the reading window or the last payment, plus the best FAQ answers; else says it does not know."""
    if _blank(question):
        raise Rejected([FieldRequired(field=["question"])])
    linked = await accounts.linked_account_ids(session, user_id)
    if account_id is not None:
        if account_id not in linked:
            raise Rejected([accounts.AccountNotFound(field=["accountId"])])
        linked = [account_id]
    facts = await _account_facts(session, question, linked, now)
    hits = await search_faq(session, question)
    if facts:
        text_ = "\n".join(facts)
    elif hits:
        text_ = hits[0].answer
    else:
        return AssistantReply(False, NOT_KNOWN, [], [], True)
    return AssistantReply(True, text_, facts, hits, False)


# ---------------------------------------------------------------- F4 video call


@dataclass(frozen=True, slots=True)
class VideoCall:
    """F4: the room link (with a signed token naming the customer and account) and its expiry."""

    url: str
    expires_at: dt.datetime
    branch_name: str


def video_token(secret_key: str, user_id: int, account_id: int, expires_at: dt.datetime) -> str:
    """``<user>.<account>.<expires>.<hmac>``: the video service checks it with the shared secret."""
    payload = f"{user_id}.{account_id}.{int(expires_at.timestamp())}"
    signature = hmac.new(secret_key.encode(), f"video:{payload}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{payload}.{signature}"


async def video_call(
    session: AsyncSession,
    *,
    user_id: int,
    account_id: int,
    secret_key: str,
    ttl: dt.timedelta,
    now: dt.datetime,
) -> VideoCall:
    """F4: the account branch's video-consultation room with a short-lived token."""
    await accounts.require_linked_account(session, user_id, account_id)
    branch = (
        await session.execute(
            select(Branch).join(Account, Account.branch_id == Branch.id).where(Account.id == account_id)
        )
    ).scalar_one()
    if not branch.video_consultation_url:
        raise NoVideoConsultation(field=["accountId"])
    expires_at = (now + ttl).replace(microsecond=0)
    separator = "&" if "?" in branch.video_consultation_url else "?"
    token = video_token(secret_key, user_id, account_id, expires_at)
    return VideoCall(f"{branch.video_consultation_url}{separator}token={token}", expires_at, branch.name)
