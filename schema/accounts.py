"""Accounts (лицевые счета): the dashboard (B4), requisites (C1), history fields (C4, D1–D7), and the
mutations that link (B1), unlink (B2), rename (B3) and set receipt delivery (J5)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import MISSING
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry import relay

from models import accounts as models
from models.tariffs import Zone as ModelZone
from resolvers import accounts as resolvers
from resolvers import billing as billing_resolvers
from resolvers.context import Info
from resolvers.readings import meters_of
from schema import rules
from schema.billing import (
    AccountBalance,
    BalanceMonth,
    ChargeMonth,
    EventMonth,
    PaymentMonth,
    Receipt,
    Service,
    StatisticsFilter,
    StatisticsSeries,
    Tariff,
    Zone,
    balance_months,
    charge_months,
    event_months,
    load_service,
    payment_months,
    series_of,
    with_references,
)
from schema.branches import Branch
from schema.errors import error_code_enum, error_domain
from schema.node import as_node, backed_by, canonical, key_only
from schema.pagination import Connection, decode_cursor
from schema.readings import Meter
from schema.scalars import YearMonthScalar as YearMonth
from services import accounts as service
from services import billing
from services.errors import DomainError
from services.periods import history_range

AccountErrorCode = error_code_enum(
    "AccountErrorCode",
    "Why an account mutation (B1–B3, C1) failed: the `code` of `AccountError`.",
    "services.accounts",
    "services.codes",
    "services.identity.errors",
    "services.identity.device_keys",
    "services.identity.qr",
    "services.identity.vk",
    "services.sessions",
)


@strawberry.interface(
    description=(
        "A problem with an account mutation (B1–B3, C1), "
        "reported in its payload's `userErrors`. "
        "`code` (`AccountErrorCode`) is stable for programs, `message` is the text to show the user "
        "(Russian), `field` is the path of the input it concerns."
    )
)
class AccountError:
    """Common shape of this domain's user errors; specific ones implement it and carry more data."""

    code: str = strawberry.field(
        graphql_type=AccountErrorCode,
        description="Stable machine-readable code, one of `AccountErrorCode`.",
    )
    message: str = strawberry.field(description="Human-readable text to show the user, in Russian.")
    field: list[str] | None = strawberry.field(
        description='Path of the input field at fault, e.g. `["input", "phone"]`; null for the whole input.'
    )


@strawberry.type(description="An `AccountError` with no data beyond code, message and field.")
class AccountInputError(AccountError):
    """The default implementation of :class:`AccountError`."""


ACCOUNT_ERRORS = error_domain(AccountError, AccountErrorCode, AccountInputError)
user_error = ACCOUNT_ERRORS.one
user_errors = ACCOUNT_ERRORS.many

FromArg = Annotated[
    YearMonth | None,
    strawberry.argument(name="from", description="First month; default: 12 months before `to` (D8 range)."),
]
ToArg = Annotated[
    YearMonth | None, strawberry.argument(description="Last month; default: the previous month.")
]


@strawberry.enum(description="Kitchen stove of the dwelling (C1); it selects the tariff group.")
class StoveType(Enum):
    """Stove types."""

    GAS = strawberry.enum_value("GAS", description="Gas stove.")
    ELECTRIC = strawberry.enum_value("ELECTRIC", description="Electric stove.")
    NONE = strawberry.enum_value("NONE", description="No stove.")


@strawberry.type(description="Requisites of the dwelling as billing has them (C1).")
class AccountRequisites:
    """Changing them goes through an application (C2), never directly."""

    owner_full_name: str = strawberry.field(description="Owner's full name.")
    total_area: Decimal | None = strawberry.field(description="Total area, m².")
    living_area: Decimal | None = strawberry.field(description="Living area, m².")
    owners_count: int | None = strawberry.field(description="Number of owners.")
    registered_count: int | None = strawberry.field(description="Persons registered (прописаны).")
    residing_count: int | None = strawberry.field(description="Persons actually residing.")
    rooms: int | None = strawberry.field(description="Number of rooms.")
    stove_type: StoveType = strawberry.field(description="Kitchen stove.")
    electric_heating: bool = strawberry.field(description="Whether the dwelling has electric heating.")


@strawberry.type(description="A service delivered to the account (C1).")
class AccountService:
    """Backed by ``models.accounts.AccountService`` rows."""

    is_type_of = backed_by(models.AccountService)

    started_on: dt.date | None = strawberry.field(description="Delivered since.")
    ended_on: dt.date | None = strawberry.field(description="Delivered until; null while delivered.")

    @strawberry.field(description="The service.")
    async def service(self, root: strawberry.Parent[models.AccountService], info: Info) -> Service:
        return await load_service(info, root.service_id)  # type: ignore[return-value]

    @strawberry.field(description="Tariff zone scheme: SINGLE, DAY_NIGHT or THREE_ZONE; null without zones.")
    def zone_scheme(self, root: strawberry.Parent[models.AccountService]) -> str | None:
        return root.zone_scheme.value if root.zone_scheme is not None else None


@strawberry.type(description="B4: days until the meter-reading window opens or closes (branch's time zone).")
class ReadingWindowCountdown:
    """The current month's window, or the next one when this one is over."""

    is_open: bool = strawberry.field(description="Whether readings are accepted today.")
    opens_on: dt.date = strawberry.field(description="First day of the (current or next) window.")
    closes_on: dt.date = strawberry.field(description="Last day of that window (inclusive).")
    days_until_opens: int = strawberry.field(description="Days until it opens; 0 while open.")
    days_until_closes: int = strawberry.field(
        description="Days from today to its last day; 0 when today is the last day."
    )


@strawberry.type(description="A personal account (лицевой счет) linked to the cabinet.")
class Account(relay.Node):
    """Backed by ``models.accounts.Account`` rows; the viewer's own link adds name and e-receipt state."""

    is_type_of = backed_by(models.Account, resolvers.AccountRow)  # plain rows of the accounts page (issue 21)

    id: relay.NodeID[int]
    number: str = strawberry.field(description="Account number as printed on the receipt, e.g. `11111111`.")
    address: str = strawberry.field(description="Address of the dwelling.")
    e_receipt_allowed: bool = strawberry.field(
        description="Whether the account offers electronic receipts (J5)."
    )

    @strawberry.field(description="Owner's full name (ФИО).")
    def owner_full_name(self, root: strawberry.Parent[models.Account]) -> str:
        return " ".join(p for p in (root.owner_last_name, root.owner_first_name, root.owner_middle_name) if p)

    @strawberry.field(description="Name the user gave the account (B3); the number when none was given.")
    async def display_name(self, root: strawberry.Parent[models.Account], info: Info) -> str:
        link = await resolvers.link_of(info, root.id)
        return (link.display_name if link is not None else None) or root.number

    @strawberry.field(description="The branch (филиал) the account belongs to.")
    async def branch(self, root: strawberry.Parent[models.Account], info: Info) -> Branch:
        return await resolvers.branch_of(info, root)

    @strawberry.field(description="C1: requisites of the dwelling.")
    def requisites(self, root: strawberry.Parent[models.Account]) -> AccountRequisites:
        return AccountRequisites(
            owner_full_name=" ".join(
                p for p in (root.owner_last_name, root.owner_first_name, root.owner_middle_name) if p
            ),
            total_area=root.total_area,
            living_area=root.living_area,
            owners_count=root.owners_count,
            registered_count=root.registered_count,
            residing_count=root.residing_count,
            rooms=root.rooms,
            stove_type=StoveType(root.stove_type.value),
            electric_heating=root.electric_heating,
        )

    @strawberry.field(description="C1: services delivered to the account.")
    async def services(self, root: strawberry.Parent[models.Account], info: Info) -> list[AccountService]:
        return await resolvers.services_of(info, root.id)  # type: ignore[return-value]

    @strawberry.field(description="C1/B4: meters installed on the account (each with its last readings).")
    async def meters(self, root: strawberry.Parent[models.Account], info: Info) -> list[Meter]:
        return await meters_of(info, root.id)

    @strawberry.field(
        description="B4: balance including this period's payments, with the supplier breakdown."
    )
    async def balance(self, root: strawberry.Parent[models.Account], info: Info) -> AccountBalance:
        return AccountBalance.of(await billing_resolvers.balance(info, root.id))

    @strawberry.field(description="B4: days until the reading window opens or closes.")
    async def reading_window(
        self, root: strawberry.Parent[models.Account], info: Info
    ) -> ReadingWindowCountdown:
        found = await resolvers.reading_window(info, root)
        return ReadingWindowCountdown(
            is_open=found.is_open,
            opens_on=found.opens_on,
            closes_on=found.closes_on,
            days_until_opens=found.days_until_opens,
            days_until_closes=found.days_until_closes,
        )

    @strawberry.field(description="B4/J7: whether the viewer's autopay is on for this account.")
    async def autopay_enabled(self, root: strawberry.Parent[models.Account], info: Info) -> bool:
        return await resolvers.autopay_enabled(info, root.id)

    @strawberry.field(description="B4/J5: whether the viewer gets this account's receipts by e-mail.")
    async def e_receipt_enabled(self, root: strawberry.Parent[models.Account], info: Info) -> bool:
        link = await resolvers.link_of(info, root.id)
        return bool(link and link.e_receipt_enabled)

    @strawberry.field(
        description="J5: where e-receipts go: the address set for this account, else the confirmed profile "
        "e-mail; null for paper receipts."
    )
    async def receipt_email(self, root: strawberry.Parent[models.Account], info: Info) -> str | None:
        return await resolvers.effective_receipt_email(info, await resolvers.link_of(info, root.id))

    @strawberry.field(description="B4: the current (latest) receipt; null before the first one.")
    async def current_receipt(self, root: strawberry.Parent[models.Account], info: Info) -> Receipt | None:
        return await billing_resolvers.current_receipt(info, root.id)  # type: ignore[return-value]

    @strawberry.field(description="D3: the receipt of a period (D8 range); null when none was issued.")
    async def receipt(
        self,
        root: strawberry.Parent[models.Account],
        info: Info,
        period: Annotated[YearMonth, strawberry.argument(description="The billing month.")],
    ) -> Receipt | None:
        return await billing_resolvers.receipt(info, root.id, period)  # type: ignore[return-value]

    @strawberry.field(description="D2: charges by month and service, newest month first (D8 range).")
    async def charges(
        self,
        root: strawberry.Parent[models.Account],
        info: Info,
        from_: FromArg = None,
        to: ToArg = None,
    ) -> list[ChargeMonth]:
        period = billing_resolvers.period_range(info, from_, to)
        return charge_months(
            await with_references(info, await billing_resolvers.charges(info, root.id, period))
        )

    @strawberry.field(description="D4: payments by month, newest first (D8 range).")
    async def payments(
        self,
        root: strawberry.Parent[models.Account],
        info: Info,
        from_: FromArg = None,
        to: ToArg = None,
    ) -> list[PaymentMonth]:
        period = billing_resolvers.period_range(info, from_, to)
        return payment_months(await billing_resolvers.payments(info, root.id, period))

    @strawberry.field(description="D1: all events (charges, recalculations, payments) by month (D8 range).")
    async def events(
        self,
        root: strawberry.Parent[models.Account],
        info: Info,
        from_: FromArg = None,
        to: ToArg = None,
    ) -> list[EventMonth]:
        period = billing_resolvers.period_range(info, from_, to)
        return event_months(root.id, await billing_resolvers.events(info, root.id, period))

    @strawberry.field(
        description="D7: balance by month and supplier (opening, charged, paid, closing; D8 range)."
    )
    async def balance_history(
        self,
        root: strawberry.Parent[models.Account],
        info: Info,
        from_: FromArg = None,
        to: ToArg = None,
    ) -> list[BalanceMonth]:
        period = billing_resolvers.period_range(info, from_, to)
        return balance_months(await billing_resolvers.balance_history(info, root.id, period))

    @strawberry.field(description="D6: series for charts by month, service and zone (D8 range).")
    async def statistics(
        self,
        root: strawberry.Parent[models.Account],
        info: Info,
        filter: Annotated[
            StatisticsFilter, strawberry.argument(description="What to measure, period, services, zones.")
        ],
    ) -> list[StatisticsSeries]:
        period = billing_resolvers.period_range(info, filter.from_, filter.to)
        service_ids = None
        if filter.service_ids:
            service_ids = [
                int(canonical(gid).node_id) for gid in filter.service_ids if gid.type_name == "Service"
            ]
        zones = [ModelZone(zone.value) for zone in filter.zones] if filter.zones else None
        found = await billing_resolvers.statistics(
            info, root.id, period, billing.StatisticsKind(filter.kind.name), service_ids, zones
        )
        return series_of(found)

    @strawberry.field(
        description=(
            "C4: tariffs of the account's services, current and past (up to 3 years), by service and zone."
        )
    )
    async def tariffs(
        self,
        root: strawberry.Parent[models.Account],
        info: Info,
        zone: Annotated[Zone | None, strawberry.argument(description="Only this zone.")] = None,
    ) -> list[Tariff]:
        rows = await billing_resolvers.tariffs(info, root.id)
        if zone is not None:
            rows = [row for row in rows if row.zone.value == zone.value]
        return rows  # type: ignore[return-value]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Account | None]:
        """A customer sees only accounts linked to them; staff see every account."""
        return as_node(cls, await resolvers.accounts_by_ids(info, [int(node_id) for node_id in node_ids]))


# Read by the account's id alone, through loaders with no visibility rule of their own: ``node(id:)`` may run
# them while its access check runs (``app.execution``, issue 21); their answer is dropped when it says no.
key_only(
    Account,
    "services",
    "meters",
    "balance",
    "current_receipt",
    "receipt",
    "charges",
    "payments",
    "events",
    "balance_history",
    "statistics",
    "tariffs",
)


def account_id_of(value: relay.GlobalID, field: list[str]) -> int:
    """The database id in an Account global ID; anything else is «Данный лицевой счет не найден»."""
    if value.type_name != "Account":
        raise service.AccountNotFound(field=field)
    try:
        return int(canonical(value).node_id)
    except ValueError:
        raise service.AccountNotFound(field=field) from None


# --- errors -------------------------------------------------------------------------------------------------


@strawberry.type(description="B1: too many failed attempts to link an account; try again later.")
class TooManyLinkAttemptsError(AccountError):
    """Carries when the next attempt will be accepted."""

    retry_after: dt.datetime = strawberry.field(description="When linking may be tried again (UTC).")


@ACCOUNT_ERRORS.register(service.TooManyLinkAttempts)
def _too_many(error: DomainError, code: Any) -> AccountError:
    return TooManyLinkAttemptsError(
        code=code, message=error.text, field=error.field, retry_after=error.data["retry_after"]
    )


ERROR_TYPES: list[type] = [TooManyLinkAttemptsError]


# --- queries ------------------------------------------------------------------------------------------------


@strawberry.type
class AccountQueries:
    """Queries of this module (merged into Query)."""

    @strawberry.field(
        description="B4: the caller's linked accounts in the order they were linked (the dashboard; pages "
        "of `first`, «Все счета +»)."
    )
    async def accounts(
        self,
        info: Info,
        first: Annotated[int, strawberry.argument(description="Page size (1–100).")] = 20,
        after: Annotated[
            str | None, strawberry.argument(description="Cursor of the last account seen.")
        ] = None,
    ) -> Connection[Account]:
        page = await resolvers.linked_accounts(info, first=first, after=decode_cursor(after))
        return Connection[Account].from_page(page, lambda row: row)


# --- mutations ----------------------------------------------------------------------------------------------


@strawberry.input(description="B1: link an account to the cabinet.")
class LinkAccountInput:
    """Branch, number from the receipt and a proof of ownership."""

    branch_id: relay.GlobalID = strawberry.field(description="The branch (филиал) chosen from `branches`.")
    number: str = rules.field("Account number from the receipt.", rules.ACCOUNT_NUMBER, default=MISSING)
    proof: str = rules.field(
        'Proof of ownership: the total of the latest receipt to the kopeck (e.g. "1234.50"), or '
        "the owner's last name when the account has had no receipt yet.",
        rules.Rule(max_length=100),
        default=MISSING,
    )
    e_receipt: bool = strawberry.field(
        default=False,
        description="Consent to electronic receipts (Согласен на получение электронной квитанции).",
    )


@strawberry.type(description="Result of `linkAccount`.")
class LinkAccountPayload:
    """The linked account, or why not."""

    account: Account | None = strawberry.field(description="The linked account; null on error.")
    user_errors: list[AccountError] = strawberry.field(description="What went wrong.")


@strawberry.input(description="B2: unlink an account from the cabinet.")
class UnlinkAccountInput:
    """The account to unlink."""

    account_id: relay.GlobalID = strawberry.field(description="The account.")


@strawberry.type(description="Result of `unlinkAccount`.")
class UnlinkAccountPayload:
    """What unlinking did."""

    unlinked_account_id: relay.GlobalID | None = strawberry.field(description="The unlinked account's ID.")
    autopay_disabled: bool = strawberry.field(description="Whether autopay was on and has been switched off.")
    e_receipt_stays: bool = strawberry.field(
        description="Whether e-receipt delivery was on: it continues until support cancels it."
    )
    notice: str | None = strawberry.field(description="What to tell the user (Russian), null on error.")
    user_errors: list[AccountError] = strawberry.field(description="What went wrong.")


@strawberry.input(description="B3: rename an account in the cabinet.")
class RenameAccountInput:
    """The account and its new display name."""

    account_id: relay.GlobalID = strawberry.field(description="The account.")
    name: str | None = strawberry.field(
        description="New name (up to 100 characters); empty or null: the number."
    )


@strawberry.type(description="Result of `renameAccount` or `setReceiptDelivery`.")
class AccountPayload:
    """The changed account, or why not."""

    account: Account | None = strawberry.field(description="The account after the change; null on error.")
    user_errors: list[AccountError] = strawberry.field(description="What went wrong.")


@strawberry.input(description="J5: how the receipts of one account are delivered.")
class SetReceiptDeliveryInput:
    """Paper or electronic; the address does not change the profile e-mail."""

    account_id: relay.GlobalID = strawberry.field(description="The account.")
    electronic: bool = strawberry.field(description="True: by e-mail; false: paper.")
    email: str | None = rules.field(
        "Address for this account's receipts; null: the confirmed profile e-mail.", rules.EMAIL
    )


@strawberry.type
class AccountMutations:
    """Mutations of this module (merged into Mutation)."""

    @strawberry.mutation(description="B1: link an account by branch, number and proof of ownership.")
    async def link_account(
        self,
        info: Info,
        input: Annotated[LinkAccountInput, strawberry.argument(description="The LinkAccount input.")],
    ) -> LinkAccountPayload:
        try:
            if input.branch_id.type_name != "Branch":
                raise service.AccountNotFound(field=["input", "branchId"])
            account, _ = await resolvers.link_account(
                info,
                branch_id=int(canonical(input.branch_id).node_id),
                number=input.number,
                proof=input.proof,
                e_receipt=input.e_receipt,
            )
        except DomainError as error:
            return LinkAccountPayload(account=None, user_errors=[user_error(error)])
        return LinkAccountPayload(account=account, user_errors=[])  # type: ignore[arg-type]

    @strawberry.mutation(
        description="B2: unlink an account; autopay on it is switched off, e-receipt delivery is not."
    )
    async def unlink_account(
        self,
        info: Info,
        input: Annotated[UnlinkAccountInput, strawberry.argument(description="The UnlinkAccount input.")],
    ) -> UnlinkAccountPayload:
        try:
            result = await resolvers.unlink_account(
                info, account_id_of(input.account_id, ["input", "accountId"])
            )
        except DomainError as error:
            return UnlinkAccountPayload(
                unlinked_account_id=None,
                autopay_disabled=False,
                e_receipt_stays=False,
                notice=None,
                user_errors=[user_error(error)],
            )
        return UnlinkAccountPayload(
            unlinked_account_id=input.account_id,
            autopay_disabled=result.autopay_disabled,
            e_receipt_stays=result.e_receipt_was_enabled,
            notice=result.notice,
            user_errors=[],
        )

    @strawberry.mutation(description="B3: rename an account in the cabinet.")
    async def rename_account(
        self,
        info: Info,
        input: Annotated[RenameAccountInput, strawberry.argument(description="The RenameAccount input.")],
    ) -> AccountPayload:
        try:
            account = await resolvers.rename_account(
                info, account_id_of(input.account_id, ["input", "accountId"]), input.name
            )
        except DomainError as error:
            return AccountPayload(account=None, user_errors=[user_error(error)])
        return AccountPayload(account=account, user_errors=[])  # type: ignore[arg-type]

    @strawberry.mutation(description="J5: paper or electronic receipts for one account.")
    async def set_receipt_delivery(
        self,
        info: Info,
        input: Annotated[
            SetReceiptDeliveryInput, strawberry.argument(description="The SetReceiptDelivery input.")
        ],
    ) -> AccountPayload:
        try:
            account = await resolvers.set_receipt_delivery(
                info, account_id_of(input.account_id, ["input", "accountId"]), input.electronic, input.email
            )
        except DomainError as error:
            return AccountPayload(account=None, user_errors=[user_error(error)])
        return AccountPayload(account=account, user_errors=[])  # type: ignore[arg-type]


__all__ = ["ERROR_TYPES", "Account", "AccountMutations", "AccountQueries", "history_range"]
