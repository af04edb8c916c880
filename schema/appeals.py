"""Appeals (F1, F2), applications (G3, C2, C3), documents (G1, G2), the operator's side, the virtual
assistant (F3) and the video call (F4).

Files are sent with the GraphQL multipart request spec (``Upload`` scalar): a ``multipart/form-data``
POST with ``operations``, ``map`` and one part per file, carrying the ``X-Kabinet-CSRF: 1`` header.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from decimal import Decimal
from typing import Annotated, Any

import strawberry
from strawberry import relay
from strawberry.file_uploads import Upload
from strawberry.scalars import JSON

from models import appeals as models
from models.files import StoredFile
from resolvers import appeals as resolvers
from resolvers.accounts import AccountById
from resolvers.billing import download_url
from resolvers.branches import SupplierById
from resolvers.context import Info
from resolvers.readings import MeterById
from schema import rules
from schema.accounts import Account
from schema.billing import FileDownload
from schema.branches import Supplier
from schema.enums import model_enum
from schema.errors import error_code_enum, error_domain
from schema.node import as_node, backed_by
from schema.pagination import Connection
from schema.readings import Meter, ZoneScheme
from schema.scalars import YearMonthScalar as YearMonth
from services import appeals as service
from services import storage
from services.periods import month_of

AppealErrorCode = error_code_enum(
    "AppealErrorCode",
    "Why an appeals mutation (F1–F4, G1–G3, C2, C3) failed: the `code` of `AppealError`.",
    "services.appeals",
    "services.accounts",
    "services.readings",
    "services.codes",
    "services.identity.errors",
    "services.notifications",
)


@strawberry.interface(
    description=(
        "A problem with an appeals mutation (F1–F4, G1–G3, C2, C3), "
        "reported in its payload's `userErrors`. "
        "`code` (`AppealErrorCode`) is stable for programs, `message` is the text to show the user "
        "(Russian), `field` is the path of the input it concerns."
    )
)
class AppealError:
    """Common shape of this domain's user errors; specific ones implement it and carry more data."""

    code: str = strawberry.field(
        graphql_type=AppealErrorCode,
        description="Stable machine-readable code, one of `AppealErrorCode`.",
    )
    message: str = strawberry.field(description="Human-readable text to show the user, in Russian.")
    field: list[str] | None = strawberry.field(
        description='Path of the input field at fault, e.g. `["input", "phone"]`; null for the whole input.'
    )


@strawberry.type(description="An `AppealError` with no data beyond code, message and field.")
class AppealInputError(AppealError):
    """The default implementation of :class:`AppealError`."""


APPEAL_ERRORS = error_domain(AppealError, AppealErrorCode, AppealInputError)
user_error = APPEAL_ERRORS.one
user_errors = APPEAL_ERRORS.many


model_enum(
    models.RequestStatus,
    name="RequestStatus",
    description="State of an appeal or application.",
    values={
        models.RequestStatus.NEW: "Sent by the customer; nobody works on it yet.",
        models.RequestStatus.IN_PROGRESS: "An operator works on it.",
        models.RequestStatus.ANSWERED: "The operator answered (the answer and its files are attached).",
        models.RequestStatus.CLOSED: "Finished without an answer being needed.",
        models.RequestStatus.REJECTED: "Refused; the reason is in the timeline.",
    },
)
RequestStatus = models.RequestStatus

model_enum(
    models.RequestEventKind,
    name="RequestEventKind",
    description="What happened on a timeline.",
    values={
        models.RequestEventKind.CREATED: "The customer sent it.",
        models.RequestEventKind.STATUS_CHANGED: "Its status changed.",
        models.RequestEventKind.COMMENT: "A note was added.",
        models.RequestEventKind.ANSWER: "The operator answered.",
    },
)
RequestEventKind = models.RequestEventKind

model_enum(
    models.AttachmentDirection,
    name="AttachmentDirection",
    description="Who attached a file.",
    values={
        models.AttachmentDirection.FROM_CUSTOMER: "The customer, with the appeal or application.",
        models.AttachmentDirection.FROM_OPERATOR: "An operator, with the answer.",
    },
)
AttachmentDirection = models.AttachmentDirection

_K = models.ApplicationKind

APPLICATION_KIND_NAMES: dict[models.ApplicationKind, str] = {
    _K.RECONCILIATION_ACT: "Заявление на получение акта сверки",
    _K.NO_DEBT_CERTIFICATE: "Заявление на получение справки об отсутствии задолженности",
    _K.DEBT_RESTRUCTURING_AGREEMENT: "Заявление на заключение соглашения о реструктуризации",
    _K.OPEN_ACCOUNT: "Заявление на открытие лицевого счета",
    _K.CLOSE_ACCOUNT: "Заявление на закрытие лицевого счета",
    _K.CHANGE_OF_OWNER: "Заявление на смену собственника",
    _K.CHANGE_OF_ACCOUNT_DATA: "Заявление на изменение данных лицевого счета",
    _K.FREE_FORM: "Заявление в свободной форме",
    _K.METER_SEALING: "Заявление на опломбировку прибора учета",
    _K.CONTROL_READING: "Заявление на контрольное снятие показаний прибора учета",
    _K.METER_CHECK: "Заявление на проверку прибора учета",
    _K.CHARGES_CORRECTION_BY_READINGS: "Заявление на корректировку начислений по показаниям",
    _K.REFUND: "Заявление на возврат денежных средств",
    _K.PAYMENT_REDIRECT: "Заявление на перенаправление платежа",
    _K.RECEIVABLES_RESTRUCTURING: "Заявление на реструктуризацию дебиторской задолженности",
    _K.RECALCULATION_TEMPORARY_ABSENCE: "Заявление на перерасчет за временное отсутствие",
    _K.TARIFF_CHANGE_DAY_ZONES: "Заявление на смену тарифа (по зонам суток)",
    _K.TARIFF_CHANGE_REDUCTION_COEFFICIENT: ("Заявление на смену тарифа (понижающий коэффициент)"),
}

model_enum(
    models.ApplicationKind,
    name="ApplicationKind",
    description="G3: the 18 kinds of application (заявление); see `applicationKinds` for names and fields.",
    values=APPLICATION_KIND_NAMES,
)
ApplicationKind = models.ApplicationKind

model_enum(
    models.DocumentType,
    name="DocumentType",
    description="G1/G2: type of a document.",
    values=service.DOCUMENT_TITLES,
)
DocumentType = models.DocumentType


@strawberry.enum(description="C2: a requisite of the account a customer may ask to change.")
class RequisiteField(enum.Enum):
    """The fields of «Реквизиты» (C1)."""

    OWNER_FULL_NAME = strawberry.enum_value("OWNER_FULL_NAME", description="Owner's full name.")
    TOTAL_AREA = strawberry.enum_value("TOTAL_AREA", description="Total area, m².")
    LIVING_AREA = strawberry.enum_value("LIVING_AREA", description="Living area, m².")
    OWNERS_COUNT = strawberry.enum_value("OWNERS_COUNT", description="Number of owners.")
    REGISTERED_COUNT = strawberry.enum_value("REGISTERED_COUNT", description="Persons registered.")
    RESIDING_COUNT = strawberry.enum_value("RESIDING_COUNT", description="Persons residing.")
    ROOMS = strawberry.enum_value("ROOMS", description="Number of rooms.")
    STOVE_TYPE = strawberry.enum_value("STOVE_TYPE", description="Stove type.")
    ELECTRIC_HEATING = strawberry.enum_value("ELECTRIC_HEATING", description="Electric heating yes/no.")


def _gid(type_name: str, value: int | None) -> strawberry.ID | None:
    return strawberry.ID(relay.to_base64(type_name, value)) if value is not None else None


# ---------------------------------------------------------------- files and timelines


@strawberry.type(description="A stored file attached to an appeal, application or document.")
class AttachedFile:
    """Metadata of a file and a short-lived download link."""

    file: strawberry.Private[StoredFile]
    direction: AttachmentDirection | None = strawberry.field(
        description="Who attached it (null for documents)."
    )

    @strawberry.field(description="The file's name as uploaded (cleaned of paths and control characters).")
    def filename(self) -> str:
        return self.file.original_filename

    @strawberry.field(description="Content type detected from the file's content, e.g. `application/pdf`.")
    def content_type(self) -> str:
        return self.file.content_type

    @strawberry.field(description="Size in bytes.")
    def size(self) -> int:
        return int(self.file.size)

    @strawberry.field(description="SHA-256 of the content, hex.")
    def sha256(self) -> str:
        return self.file.sha256

    @strawberry.field(description="When it was uploaded.")
    def uploaded_at(self) -> dt.datetime:
        return self.file.created_at

    @strawberry.field(description="A short-lived signed link to download the file.")
    def download(self, info: Info) -> FileDownload:
        return FileDownload.of(download_url(info, storage.file_target(self.file.id)))


def _files(pairs: list[Any], direction: models.AttachmentDirection | None = None) -> list[AttachedFile]:
    return [
        AttachedFile(file=file, direction=attachment.direction)
        for attachment, file in pairs
        if direction is None or attachment.direction is direction
    ]


@strawberry.type(description="One row of the timeline of an appeal or application.")
class TimelineEvent:
    """Backed by ``models.appeals.RequestEvent`` rows."""

    is_type_of = backed_by(models.RequestEvent)

    kind: RequestEventKind = strawberry.field(description="What happened.")
    status: RequestStatus | None = strawberry.field(description="The status it moved to, if it changed.")
    text: str | None = strawberry.field(description="The answer, the reason of a rejection, or a comment.")
    created_at: dt.datetime = strawberry.field(description="When it happened.")

    @strawberry.field(description="True when an operator did it (false for the customer's own actions).")
    def by_operator(self, root: strawberry.Parent[models.RequestEvent]) -> bool:
        return root.kind is not models.RequestEventKind.CREATED

    @strawberry.field(description="False for operators' internal notes (customers never see those).")
    def visible_to_customer(self, root: strawberry.Parent[models.RequestEvent]) -> bool:
        return root.visible_to_customer


# ---------------------------------------------------------------- appeals


@strawberry.type(description="F2: a topic of an appeal, from the list.")
class AppealTopic:
    """Code and name."""

    code: str = strawberry.field(description="Stable code to send as `topic`.")
    name: str = strawberry.field(description="Name shown in the list.")


TOPIC_LIST = [AppealTopic(code=code, name=name) for code, name in service.TOPICS.items()]


@strawberry.interface(
    description=(
        "F1/G3: what an appeal and an application share — status, answer, account, supplier, timeline and "
        "files. Query the common fields once with `... on CustomerRequest`."
    )
)
class CustomerRequest(relay.Node):
    """Backed by ``models.appeals.Appeal`` or ``models.appeals.Application`` rows; every shared field is
    resolved once, here, through :mod:`resolvers.appeals` (its loaders are picked by the row's model)."""

    id: relay.NodeID[int]
    text: str | None = strawberry.field(description="Text of the appeal or application.")
    full_name: str | None = strawberry.field(description="Full name given in it.")
    phone: str | None = strawberry.field(description="Contact phone given in it (E.164).")
    email: str | None = strawberry.field(description="Contact e-mail given in it.")
    status: RequestStatus = strawberry.field(description="Current status.")
    answer: str | None = strawberry.field(description="The operator's answer; null until answered.")
    answered_at: dt.datetime | None = strawberry.field(description="When it was answered.")
    closed_at: dt.datetime | None = strawberry.field(description="When it was closed or rejected.")
    created_at: dt.datetime = strawberry.field(description="When it was sent.")

    @strawberry.field(description="The month it belongs to in the history.")
    def period(self, root: strawberry.Parent[resolvers.RequestRow]) -> YearMonth:
        return month_of(root.created_at)  # type: ignore[return-value]

    @strawberry.field(description="The account it concerns.")
    async def account(self, root: strawberry.Parent[resolvers.RequestRow], info: Info) -> Account:
        return await info.context.loader(AccountById).load(root.account_id)

    @strawberry.field(description="The supplier it is addressed to.")
    async def supplier(self, root: strawberry.Parent[resolvers.RequestRow], info: Info) -> Supplier | None:
        if root.supplier_id is None:
            return None
        return await info.context.loader(SupplierById).load(root.supplier_id)

    @strawberry.field(description="Timeline, oldest first.")
    async def timeline(
        self, root: strawberry.Parent[resolvers.RequestRow], info: Info
    ) -> list[TimelineEvent]:
        return await resolvers.timeline(info, root)

    @strawberry.field(description="Files the customer attached.")
    async def attachments(
        self, root: strawberry.Parent[resolvers.RequestRow], info: Info
    ) -> list[AttachedFile]:
        return _files(await resolvers.attachments(info, root), models.AttachmentDirection.FROM_CUSTOMER)

    @strawberry.field(description="Files the operator attached to the answer.")
    async def answer_attachments(
        self, root: strawberry.Parent[resolvers.RequestRow], info: Info
    ) -> list[AttachedFile]:
        return _files(await resolvers.attachments(info, root), models.AttachmentDirection.FROM_OPERATOR)


@strawberry.type(description="F1: an appeal (обращение) with its status, timeline, answer and files.")
class Appeal(CustomerRequest):
    """Backed by ``models.appeals.Appeal`` rows; the shared fields come from :class:`CustomerRequest`."""

    is_type_of = backed_by(models.Appeal)

    topic: str = strawberry.field(description="Topic code (see `appealTopics`).")
    text: str = strawberry.field(description="Text of the appeal.")
    full_name: str = strawberry.field(description="Full name given in the appeal.")
    phone: str | None = strawberry.field(description="Phone given in the appeal (E.164).")
    email: str | None = strawberry.field(description="E-mail given in the appeal.")

    @strawberry.field(description="Name of the topic.")
    def topic_name(self, root: strawberry.Parent[models.Appeal]) -> str:
        return service.TOPICS.get(root.topic, root.topic)

    @strawberry.field(description="F1: the month the appeal belongs to in the history.")
    def period(self, root: strawberry.Parent[models.Appeal]) -> YearMonth:
        return month_of(root.created_at)  # type: ignore[return-value]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Appeal | None]:
        """Appeals the caller filed (staff: all)."""
        return as_node(cls, await resolvers.appeals_by_ids(info, [int(node_id) for node_id in node_ids]))


@strawberry.interface(
    description="F2/G3 (§2.11): the contact block a new appeal or application is pre-filled with."
)
class RequestDraft:
    """Full name of the owner, the account, its suppliers, the profile's phone and e-mail."""

    full_name: str = strawberry.field(description="Owner's full name (editable).")
    account: Account = strawberry.field(description="The account (the first linked unless chosen).")
    accounts: list[Account] = strawberry.field(description="Linked accounts to choose from.")
    suppliers: list[Supplier] = strawberry.field(description="Suppliers of the account to choose from.")
    supplier: Supplier | None = strawberry.field(description="The pre-selected supplier.")
    phone: str | None = strawberry.field(description="Phone from the profile (E.164).")
    email: str | None = strawberry.field(description="E-mail from the profile.")


@strawberry.type(description="F2: the new-appeal form, pre-filled.")
class AppealDraft(RequestDraft):
    """The contact block and the topics."""

    topics: list[AppealTopic] = strawberry.field(description="Topics to choose from.")


# ---------------------------------------------------------------- applications


@strawberry.type(description="G3: a kind of application, its name and the form fields it needs.")
class ApplicationKindInfo:
    """From ``services.appeals.KINDS``."""

    kind: ApplicationKind = strawberry.field(description="The kind.")
    name: str = strawberry.field(description="Name shown in the list.")
    required_fields: list[str] = strawberry.field(
        description="Required fields of `ApplicationFieldsInput` (and `meterId`); `text` and `consent` always"
    )


@strawberry.type(
    description="G3 (§2.11): the new-application form, pre-filled like an appeal's (F2); all editable."
)
class ApplicationDraft(RequestDraft):
    """The contact block and the kinds."""

    kinds: list[ApplicationKindInfo] = strawberry.field(description="Kinds of application to choose from.")


@strawberry.type(description="G3: an application (заявление) with its fields, status, timeline and files.")
class Application(CustomerRequest):
    """Backed by ``models.appeals.Application`` rows; the shared fields come from :class:`CustomerRequest`."""

    is_type_of = backed_by(models.Application)

    kind: ApplicationKind = strawberry.field(description="The kind.")
    text: str | None = strawberry.field(description="Text of the application.")
    full_name: str | None = strawberry.field(description="Full name given in the application (§2.11).")
    phone: str | None = strawberry.field(description="Contact phone given in the application (E.164).")
    email: str | None = strawberry.field(description="Contact e-mail given in the application.")

    @strawberry.field(description="Name of the kind.")
    def kind_name(self, root: strawberry.Parent[models.Application]) -> str:
        return APPLICATION_KIND_NAMES[root.kind]

    @strawberry.field(
        description=(
            "The kind's form fields as sent (camelCase keys as in `ApplicationFieldsInput`); for a change of "
            'account data (C2): `{"changes": [{"field", "name", "oldValue", "newValue"}]}`.'
        )
    )
    def fields(self, root: strawberry.Parent[models.Application]) -> JSON:
        return root.fields or {}  # type: ignore[return-value]

    @strawberry.field(description="The month the application belongs to in the history.")
    def period(self, root: strawberry.Parent[models.Application]) -> YearMonth:
        return month_of(root.created_at)  # type: ignore[return-value]

    @strawberry.field(description="True when the 152-FZ consent was recorded with it.")
    def consent_given(self, root: strawberry.Parent[models.Application]) -> bool:
        return root.consent_id is not None

    @strawberry.field(description="The meter it concerns (meter kinds, C3).")
    async def meter(self, root: strawberry.Parent[models.Application], info: Info) -> Meter | None:
        if root.meter_id is None:
            return None
        return await info.context.loader(MeterById).load(root.meter_id)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Application | None]:
        """Applications the caller filed (staff: all)."""
        return as_node(cls, await resolvers.applications_by_ids(info, [int(node_id) for node_id in node_ids]))


# ---------------------------------------------------------------- documents


@strawberry.type(
    description="G1: a document of an account, issued by the company or uploaded by the customer."
)
class Document(relay.Node):
    """Backed by ``models.appeals.Document`` rows."""

    is_type_of = backed_by(models.Document)

    id: relay.NodeID[int]
    type: DocumentType = strawberry.field(description="Type of the document.")
    title: str = strawberry.field(description="Title shown in the list.")
    uploaded_by_customer: bool = strawberry.field(description="True when the customer uploaded it (G2).")
    created_at: dt.datetime = strawberry.field(description="When it was issued or uploaded.")

    @strawberry.field(description="The file, with a short-lived download link.")
    async def file(self, root: strawberry.Parent[models.Document], info: Info) -> AttachedFile:
        row = await info.context.loader(resolvers.StoredFileById).load(root.file_id)
        return AttachedFile(file=row, direction=None)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Document | None]:
        """Documents of accounts the caller may see."""
        return as_node(cls, await resolvers.documents_by_ids(info, [int(node_id) for node_id in node_ids]))


# ---------------------------------------------------------------- F3, F4


@strawberry.type(description="F3: a FAQ entry that matches the question.")
class AssistantFaqAnswer:
    """From the questions-and-answers section (I2)."""

    question: str = strawberry.field(description="The FAQ question.")
    answer: str = strawberry.field(description="Its answer.")


@strawberry.type(description="F3: the virtual assistant's answer.")
class AssistantAnswer:
    """Facts from the customer's accounts and/or FAQ answers; or a plain «I don't know» and an offer to
    write an appeal."""

    known: bool = strawberry.field(description="False when the assistant does not know the answer.")
    text: str = strawberry.field(description="The answer to show (Russian).")
    facts: list[str] = strawberry.field(description="Facts from the account data used in the answer.")
    faq: list[AssistantFaqAnswer] = strawberry.field(description="Matching FAQ entries, best first.")
    suggest_appeal: bool = strawberry.field(description="True when the customer should write an appeal.")
    user_errors: list[AppealError] = strawberry.field(
        description="Problems with the question; empty on success."
    )


@strawberry.type(description="F4: a link to the branch's video consultation room.")
class VideoCallLink:
    """The link carries a signed token that expires."""

    url: str = strawberry.field(description="Open it to join the operator's room.")
    expires_at: dt.datetime = strawberry.field(description="When the link's token stops working (UTC).")
    branch_name: str = strawberry.field(description="The branch whose operators answer.")


# ---------------------------------------------------------------- inputs and payloads


@strawberry.input(description="F2: a new appeal. Every field except attachments is required.")
class CreateAppealInput:
    """Missing fields are reported one by one at their paths («Поле обязательно для заполнения»)."""

    account_id: strawberry.ID | None = strawberry.field(default=None, description="Global ID of the account.")
    supplier_id: strawberry.ID | None = strawberry.field(
        default=None, description="Global ID of the supplier."
    )
    topic: str | None = rules.field("Topic code from `appealTopics`.", rules.Rule(max_length=128))
    text: str | None = rules.field("Text of the appeal.", rules.LONG_TEXT)
    full_name: str | None = rules.field("Full name (pre-filled, editable).", rules.FULL_NAME)
    phone: str | None = rules.field(
        "Contact phone (pre-filled), any common form; stored as E.164.", rules.PHONE
    )
    email: str | None = rules.field("Contact e-mail (pre-filled).", rules.EMAIL)
    attachments: list[Upload] | None = strawberry.field(
        default=None,
        description=(
            "Files (PDF, JPEG, PNG, HEIC, DOC, DOCX, XLS, XLSX, ODT, TXT): each ≤ 7 MB, together ≤ 100 MB."
        ),
    )


@strawberry.type(description="Result of `createAppeal`.")
class CreateAppealPayload:
    """The appeal and the notice, or why nothing was stored."""

    appeal: Appeal | None = strawberry.field(description="The stored appeal; null on errors.")
    message: str | None = strawberry.field(description="«Ваше обращение принято в работу» on success.")
    user_errors: list[AppealError] = strawberry.field(description="Problems; empty on success.")


@strawberry.input(description="C2: one requisite and the value it should have.")
class RequisiteChangeInput:
    """The current value is taken from the account."""

    field: RequisiteField = strawberry.field(description="The requisite.")
    new_value: str | None = rules.field(
        "The value it should have: ROOMS an integer 1–50; TOTAL_AREA and LIVING_AREA m², more than 0 and at "
        "most 10000 (living at most total); OWNERS_COUNT an integer 1–100; REGISTERED_COUNT and "
        "RESIDING_COUNT integers 0–100; STOVE_TYPE one of GAS, ELECTRIC, NONE; ELECTRIC_HEATING true or "
        "false; OWNER_FULL_NAME at most 100 characters.",
        rules.Rule(max_length=100),
    )


@strawberry.input(
    description="G3: the form fields of an application; which are required depends on the kind."
)
class ApplicationFieldsInput:
    """See `applicationKinds.requiredFields`."""

    period_from: YearMonth | None = strawberry.field(
        default=None, description="First month (reconciliation act, correction of charges)."
    )
    period_to: YearMonth | None = strawberry.field(
        default=None, description="Last month (reconciliation act)."
    )
    absence_from: dt.date | None = strawberry.field(default=None, description="First day of absence.")
    absence_to: dt.date | None = strawberry.field(default=None, description="Last day of absence.")
    date: dt.date | None = strawberry.field(
        default=None, description="Desired date (sealing, control reading, closing) or the payment's date."
    )
    amount: Decimal | None = rules.field("Amount, RUB (refund, redirect).", rules.MONEY)
    recipient_name: str | None = rules.field("Refund: recipient's full name.", rules.FULL_NAME)
    bank_name: str | None = rules.field("Refund: bank.", rules.TITLE)
    bic: str | None = rules.field("Refund: bank's BIC, 9 digits.", rules.Rule(max_length=9))
    bank_account: str | None = rules.field("Refund: account, 20 digits.", rules.Rule(max_length=20))
    target_account_number: str | None = rules.field(
        "Payment redirect: the account number to move the payment to.", rules.ACCOUNT_NUMBER
    )
    owner_full_name: str | None = rules.field(
        "Open account / change of owner: the (new) owner's full name.", rules.FULL_NAME
    )
    address: str | None = rules.field("Open account: address of the dwelling.", rules.ADDRESS)
    installments: int | None = strawberry.field(
        default=None, description="Restructuring: number of monthly installments (2–36)."
    )
    zone_scheme: ZoneScheme | None = strawberry.field(
        default=None, description="Tariff change (day zones): the wanted zone scheme."
    )
    reason: str | None = rules.field(
        "Tariff change (reduction coefficient): the ground, e.g. electric stove.", rules.COMMENT
    )
    changes: list[RequisiteChangeInput] | None = strawberry.field(
        default=None, description="Change of account data (C2): the requisites and their wanted values."
    )

    def as_json(self) -> dict[str, Any]:
        """The given fields as JSON values with camelCase keys (``changes`` goes through C2's checks)."""
        result: dict[str, Any] = {}
        for name, value in vars(self).items():
            if value is None or name == "changes":
                continue
            key = name.split("_")[0] + "".join(part.title() for part in name.split("_")[1:])
            if isinstance(value, enum.Enum):
                value = value.value
            elif key in {"periodFrom", "periodTo"}:
                value = value.strftime("%Y-%m")
            elif isinstance(value, dt.date):
                value = value.isoformat()
            elif isinstance(value, Decimal):
                value = str(value)
            elif isinstance(value, str):
                value = value.strip()
            result[key] = value
        return result


@strawberry.input(description="G3: submit an application.")
class SubmitApplicationInput:
    """Missing fields are reported at their paths; the 152-FZ consent is required."""

    kind: ApplicationKind = strawberry.field(description="The kind.")
    account_id: strawberry.ID | None = strawberry.field(default=None, description="Global ID of the account.")
    supplier_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Global ID of the supplier, one of the account's (default: the first, as the draft).",
    )
    full_name: str | None = rules.field(
        "Full name (default: the account owner's, as `applicationDraft` pre-fills it).", rules.FULL_NAME
    )
    phone: str | None = rules.field(
        "Contact phone, any common form, stored as E.164 (default: the profile's).", rules.PHONE
    )
    email: str | None = rules.field("Contact e-mail (default: the profile's).", rules.EMAIL)
    text: str | None = rules.field("Text of the application.", rules.LONG_TEXT)
    fields: ApplicationFieldsInput | None = strawberry.field(
        default=None, description="The kind's form fields."
    )
    meter_id: strawberry.ID | None = strawberry.field(
        default=None, description="Global ID of the meter (sealing, control reading, check)."
    )
    consent: bool = strawberry.field(
        default=False, description="Consent to personal-data processing under 152-FZ (required)."
    )
    attachments: list[Upload] | None = strawberry.field(
        default=None, description="Files: each ≤ 7 MB, together ≤ 100 MB."
    )


@strawberry.input(
    description="C2: ask to change requisites (sent as a «change of account data» application)."
)
class RequestRequisitesChangeInput:
    """The data does not change until an operator processes the application."""

    account_id: strawberry.ID | None = strawberry.field(default=None, description="Global ID of the account.")
    changes: list[RequisiteChangeInput] | None = strawberry.field(
        default=None, description="The requisites to change (at least one)."
    )
    text: str | None = rules.field("A comment (default: generated).", rules.LONG_TEXT)
    consent: bool = strawberry.field(default=False, description="Consent under 152-FZ (required).")
    attachments: list[Upload] | None = strawberry.field(
        default=None, description="Supporting files: each ≤ 7 MB, together ≤ 100 MB."
    )


@strawberry.input(description="C3: report a meter malfunction (sent as a meter-check application).")
class ReportMeterMalfunctionInput:
    """The account is the meter's."""

    meter_id: strawberry.ID | None = strawberry.field(default=None, description="Global ID of the meter.")
    description: str | None = rules.field("What is wrong.", rules.LONG_TEXT)
    consent: bool = strawberry.field(default=False, description="Consent under 152-FZ (required).")
    attachments: list[Upload] | None = strawberry.field(
        default=None, description="Photos etc.: each ≤ 7 MB, together ≤ 100 MB."
    )


@strawberry.type(
    description="Result of `submitApplication`, `requestRequisitesChange`, `reportMeterMalfunction`."
)
class SubmitApplicationPayload:
    """The application and the notice, or why nothing was stored."""

    application: Application | None = strawberry.field(description="The stored application; null on errors.")
    message: str | None = strawberry.field(description="«Ваше обращение принято в работу» on success.")
    user_errors: list[AppealError] = strawberry.field(description="Problems; empty on success.")


@strawberry.input(description="G2: upload a document of a type from the list.")
class UploadDocumentInput:
    """One file, same limits as attachments."""

    account_id: strawberry.ID | None = strawberry.field(default=None, description="Global ID of the account.")
    type: DocumentType | None = strawberry.field(default=None, description="Type of the document.")
    title: str | None = rules.field("Title (default: the type's name).", rules.TITLE)
    file: Upload | None = strawberry.field(default=None, description="The file (≤ 7 MB).")


@strawberry.type(description="Result of `uploadDocument`.")
class UploadDocumentPayload:
    """The document, or why nothing was stored."""

    document: Document | None = strawberry.field(description="The stored document; null on errors.")
    user_errors: list[AppealError] = strawberry.field(description="Problems; empty on success.")


@strawberry.input(description="Operator: an appeal or application to act on.")
class RequestRefInput:
    """Take into work or close."""

    id: strawberry.ID = strawberry.field(description="Global ID of an `Appeal` or `Application`.")


@strawberry.input(description="Operator: the answer to an appeal or application.")
class AnswerRequestInput:
    """The customer is notified."""

    id: strawberry.ID = strawberry.field(description="Global ID of an `Appeal` or `Application`.")
    text: str | None = rules.field(
        "The answer (required); copied into the customer's notification.", rules.LONG_TEXT
    )
    attachments: list[Upload] | None = strawberry.field(
        default=None, description="Files: each ≤ 7 MB; all files of the request together ≤ 100 MB."
    )


@strawberry.input(description="Operator: reject an appeal or application.")
class RejectRequestInput:
    """The reason goes to the timeline and to the customer."""

    id: strawberry.ID = strawberry.field(description="Global ID of an `Appeal` or `Application`.")
    reason: str | None = rules.field("Why it is rejected (required).", rules.LONG_TEXT)


@strawberry.type(description="Result of an operator's action on an appeal or application.")
class RequestActionPayload:
    """Exactly one of `appeal` and `application` is set on success."""

    appeal: Appeal | None = strawberry.field(description="The appeal acted on.")
    application: Application | None = strawberry.field(description="The application acted on.")
    user_errors: list[AppealError] = strawberry.field(description="Problems; empty on success.")


def _action_payload(outcome: resolvers.Outcome) -> RequestActionPayload:
    row = outcome.row
    return RequestActionPayload(
        appeal=row if isinstance(row, models.Appeal) else None,  # type: ignore[arg-type]
        application=row if isinstance(row, models.Application) else None,  # type: ignore[arg-type]
        user_errors=user_errors(outcome.errors),
    )


def _application_payload(outcome: resolvers.Outcome) -> SubmitApplicationPayload:
    return SubmitApplicationPayload(
        application=outcome.row,
        message=service.ACCEPTED_MESSAGE if outcome.row is not None else None,
        user_errors=user_errors(outcome.errors),
    )


ERROR_TYPES: list[type] = []
"""This domain reports every problem as an ``AppealInputError`` (code, message, field)."""

PageSize = Annotated[int, strawberry.argument(description="Page size (1–100).")]
After = Annotated[
    str | None, strawberry.argument(description="Cursor of the last item of the previous page.")
]


def _contact_block(draft: service.AppealDraft) -> dict[str, Any]:
    """The fields of :class:`RequestDraft` from the service's pre-filled draft (F2, G3 §2.11)."""
    return {
        "full_name": draft.full_name,
        "account": draft.account,
        "accounts": draft.accounts,
        "suppliers": draft.suppliers,
        "supplier": draft.suppliers[0] if draft.suppliers else None,
        "phone": draft.phone,
        "email": draft.email,
    }


def _kinds() -> list[ApplicationKindInfo]:
    return [
        ApplicationKindInfo(kind=kind, name=APPLICATION_KIND_NAMES[kind], required_fields=list(spec.required))
        for kind, spec in service.KINDS.items()
    ]


AccountArg = Annotated[
    strawberry.ID | None,
    strawberry.argument(description="Global ID of one account; default: all your linked accounts."),
]


# ---------------------------------------------------------------- root fields


@strawberry.type
class AppealQueries:
    """Queries of this module (merged into Query)."""

    @strawberry.field(description="F2: topics of a new appeal.")
    def appeal_topics(self) -> list[AppealTopic]:
        return TOPIC_LIST

    @strawberry.field(
        description=(
            "F2: the new-appeal form pre-filled for an account (default: the first linked); null when "
            "the account is not yours."
        )
    )
    async def appeal_draft(self, info: Info, account_id: AccountArg = None) -> AppealDraft | None:
        draft = await resolvers.appeal_draft(info, account_id)
        if draft is None:
            return None
        return AppealDraft(**_contact_block(draft), topics=TOPIC_LIST)

    @strawberry.field(
        description=(
            "F1: your appeals, newest first (staff: everybody's); D8: from the month before the current "
            "one back to at most 3 years (default: the whole range)."
        )
    )
    async def appeals(
        self,
        info: Info,
        account_id: AccountArg = None,
        from_: Annotated[
            YearMonth | None, strawberry.argument(name="from", description="First month.")
        ] = None,
        to: Annotated[YearMonth | None, strawberry.argument(description="Last month.")] = None,
        first: PageSize = 20,
        after: After = None,
    ) -> Connection[Appeal]:
        page = await resolvers.appeals(info, account_id, from_, to, first, after)
        return Connection[Appeal].from_page(page, lambda row: row)

    @strawberry.field(description="G3: the kinds of application, their names and required fields.")
    def application_kinds(self) -> list[ApplicationKindInfo]:
        return _kinds()

    @strawberry.field(
        description=(
            "G3 (§2.11): the new-application form pre-filled for an account (default: the first linked); "
            "null when the account is not yours."
        )
    )
    async def application_draft(self, info: Info, account_id: AccountArg = None) -> ApplicationDraft | None:
        draft = await resolvers.appeal_draft(info, account_id)  # the same pre-filled contact block
        if draft is None:
            return None
        return ApplicationDraft(**_contact_block(draft), kinds=_kinds())

    @strawberry.field(description="G3: your applications, newest first (staff: everybody's); D8 range.")
    async def applications(
        self,
        info: Info,
        account_id: AccountArg = None,
        from_: Annotated[
            YearMonth | None, strawberry.argument(name="from", description="First month.")
        ] = None,
        to: Annotated[YearMonth | None, strawberry.argument(description="Last month.")] = None,
        first: PageSize = 20,
        after: After = None,
    ) -> Connection[Application]:
        page = await resolvers.applications(info, account_id, from_, to, first, after)
        return Connection[Application].from_page(page, lambda row: row)

    @strawberry.field(
        description="G1: documents of an account, newest first; null when the account is not yours."
    )
    async def documents(
        self,
        info: Info,
        account_id: Annotated[strawberry.ID, strawberry.argument(description="Global ID of the account.")],
        first: PageSize = 20,
        after: After = None,
    ) -> Connection[Document] | None:
        page = await resolvers.documents(info, account_id, first, after)
        return Connection[Document].from_page(page, lambda row: row) if page is not None else None

    @strawberry.field(
        description=(
            "Operator: appeals waiting, oldest first, by status (default NEW and IN_PROGRESS), branch "
            "and age. ANALYST: only `totalCount` (the edges are empty: no per-customer objects)."
        )
    )
    async def appeal_queue(
        self,
        info: Info,
        statuses: Annotated[
            list[RequestStatus] | None,
            strawberry.argument(description="Statuses to include."),
        ] = None,
        branch_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Only this branch.")
        ] = None,
        older_than_hours: Annotated[
            int | None, strawberry.argument(description="Only those waiting at least this many hours.")
        ] = None,
        first: PageSize = 20,
        after: After = None,
    ) -> Connection[Appeal]:
        page = await resolvers.queue(info, models.Appeal, statuses, branch_id, older_than_hours, first, after)
        return Connection[Appeal].from_page(page, lambda row: row)

    @strawberry.field(
        description=(
            "Operator: applications waiting, oldest first, by status (default NEW and IN_PROGRESS), "
            "branch and age. ANALYST: only `totalCount` (the edges are empty: no per-customer objects)."
        )
    )
    async def application_queue(
        self,
        info: Info,
        statuses: Annotated[
            list[RequestStatus] | None,
            strawberry.argument(description="Statuses to include."),
        ] = None,
        branch_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Only this branch.")
        ] = None,
        older_than_hours: Annotated[
            int | None, strawberry.argument(description="Only those waiting at least this many hours.")
        ] = None,
        first: PageSize = 20,
        after: After = None,
    ) -> Connection[Application]:
        page = await resolvers.queue(
            info, models.Application, statuses, branch_id, older_than_hours, first, after
        )
        return Connection[Application].from_page(page, lambda row: row)

    @strawberry.field(
        description=(
            "F3: ask the virtual assistant (Russian). It answers from your account data (balance, "
            "reading window, last payment) and the FAQ, or says it does not know and suggests an appeal."
        )
    )
    async def ask_assistant(
        self,
        info: Info,
        question: Annotated[str, strawberry.argument(description="The question, in Russian.")],
        account_id: AccountArg = None,
    ) -> AssistantAnswer:
        reply = await resolvers.ask_assistant(info, question, account_id)
        if isinstance(reply, resolvers.Outcome):
            return AssistantAnswer(
                known=False,
                text="",
                facts=[],
                faq=[],
                suggest_appeal=False,
                user_errors=user_errors(reply.errors),
            )
        return AssistantAnswer(
            known=reply.known,
            text=reply.text,
            facts=reply.facts,
            faq=[AssistantFaqAnswer(question=hit.question, answer=hit.answer) for hit in reply.faq],
            suggest_appeal=reply.suggest_appeal,
            user_errors=[],
        )

    @strawberry.field(
        description=(
            "F4: the video-consultation link of the account's branch with a short-lived token; null "
            "when the account is not yours or the branch has no video consultations."
        )
    )
    async def video_call(
        self,
        info: Info,
        account_id: Annotated[strawberry.ID, strawberry.argument(description="Global ID of the account.")],
    ) -> VideoCallLink | None:
        found = await resolvers.video_call(info, account_id)
        if isinstance(found, resolvers.Outcome):
            return None
        return VideoCallLink(url=found.url, expires_at=found.expires_at, branch_name=found.branch_name)


@strawberry.type
class AppealMutations:
    """Mutations of this module (merged into Mutation)."""

    @strawberry.mutation(
        description="F2: send an appeal with attachments (multipart request with the X-Kabinet-CSRF header)."
    )
    async def create_appeal(
        self,
        info: Info,
        input: Annotated[CreateAppealInput, strawberry.argument(description="The appeal.")],
    ) -> CreateAppealPayload:
        outcome = await resolvers.create_appeal(info, input)
        return CreateAppealPayload(
            appeal=outcome.row,
            message=service.ACCEPTED_MESSAGE if outcome.row is not None else None,
            user_errors=user_errors(outcome.errors),
        )

    @strawberry.mutation(
        description="G3: send an application of one of the 18 kinds, with the 152-FZ consent."
    )
    async def submit_application(
        self,
        info: Info,
        input: Annotated[SubmitApplicationInput, strawberry.argument(description="The application.")],
    ) -> SubmitApplicationPayload:
        kind = models.ApplicationKind(input.kind.value)
        if kind is models.ApplicationKind.CHANGE_OF_ACCOUNT_DATA:  # C2's checks and old/new values
            changes = input.fields.changes if input.fields is not None else None
            outcome = await resolvers.request_requisites_change(info, input, changes, in_fields=True)
            return _application_payload(outcome)
        fields = input.fields.as_json() if input.fields is not None else {}
        outcome = await resolvers.create_application(info, input, kind, fields)
        return _application_payload(outcome)

    @strawberry.mutation(
        description=(
            "C2: ask to change requisites; sent as a «change of account data» application with the old "
            "and new values (the data itself does not change)."
        )
    )
    async def request_requisites_change(
        self,
        info: Info,
        input: Annotated[RequestRequisitesChangeInput, strawberry.argument(description="The changes.")],
    ) -> SubmitApplicationPayload:
        return _application_payload(await resolvers.request_requisites_change(info, input, input.changes))

    @strawberry.mutation(description="C3: report a meter malfunction (a meter-check application about it).")
    async def report_meter_malfunction(
        self,
        info: Info,
        input: Annotated[ReportMeterMalfunctionInput, strawberry.argument(description="The report.")],
    ) -> SubmitApplicationPayload:
        return _application_payload(await resolvers.report_meter_malfunction(info, input))

    @strawberry.mutation(description="G2: upload a document of a type from the list.")
    async def upload_document(
        self,
        info: Info,
        input: Annotated[UploadDocumentInput, strawberry.argument(description="The document.")],
    ) -> UploadDocumentPayload:
        outcome = await resolvers.upload_document(info, input)
        return UploadDocumentPayload(document=outcome.row, user_errors=user_errors(outcome.errors))

    @strawberry.mutation(description="Operator: take an appeal or application into work (IN_PROGRESS).")
    async def take_request(
        self,
        info: Info,
        input: Annotated[RequestRefInput, strawberry.argument(description="Which.")],
    ) -> RequestActionPayload:
        async def action(session: Any, sink: Any, row: Any, operator_id: int) -> None:
            await service.take_into_work(session, row, operator_id=operator_id, now=info.context.now)

        return _action_payload(await resolvers.operator_action(info, input.id, action))

    @strawberry.mutation(description="Operator: answer an appeal or application, with files (ANSWERED).")
    async def answer_request(
        self,
        info: Info,
        input: Annotated[AnswerRequestInput, strawberry.argument(description="The answer.")],
    ) -> RequestActionPayload:
        async def action(session: Any, sink: Any, row: Any, operator_id: int) -> None:
            await service.answer(
                session,
                sink,
                row,
                operator_id=operator_id,
                text_=input.text,
                attachments=list(input.attachments or []),
                now=info.context.now,
            )

        return _action_payload(await resolvers.operator_action(info, input.id, action))

    @strawberry.mutation(description="Operator: close an appeal or application (CLOSED).")
    async def close_request(
        self,
        info: Info,
        input: Annotated[RequestRefInput, strawberry.argument(description="Which.")],
    ) -> RequestActionPayload:
        async def action(session: Any, sink: Any, row: Any, operator_id: int) -> None:
            await service.close(session, row, operator_id=operator_id, now=info.context.now)

        return _action_payload(await resolvers.operator_action(info, input.id, action))

    @strawberry.mutation(description="Operator: reject an appeal or application with a reason (REJECTED).")
    async def reject_request(
        self,
        info: Info,
        input: Annotated[RejectRequestInput, strawberry.argument(description="Which and why.")],
    ) -> RequestActionPayload:
        async def action(session: Any, sink: Any, row: Any, operator_id: int) -> None:
            await service.reject(
                session, row, operator_id=operator_id, reason=input.reason, now=info.context.now
            )

        return _action_payload(await resolvers.operator_action(info, input.id, action))
