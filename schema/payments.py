"""Payments: the payment form (D5), pay for all accounts (H1), saved cards and autopay (J7), the live
payment status (K2). See the README's "Payments" section for the flow as copyable operations."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, Iterable
from dataclasses import MISSING
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry import relay

from models import payments as models
from resolvers import payments as resolvers
from resolvers.accounts import AccountById
from resolvers.branches import SupplierById
from resolvers.context import Info
from schema import rules
from schema.accounts import Account
from schema.billing import PaymentMethod
from schema.branches import Supplier
from schema.errors import error_code_enum, error_domain
from schema.node import as_node, backed_by, canonical, parse_global_id
from schema.scalars import YearMonthScalar as YearMonth
from services import payments as service
from services.errors import DomainError

PaymentErrorCode = error_code_enum(
    "PaymentErrorCode",
    "Why a payment mutation (D5, H1, J7) failed: the `code` of `PaymentError`.",
    "services.payments",
    "services.accounts",
    "services.notifications",
)


@strawberry.interface(
    description=(
        "A problem with a payment mutation (D5, H1, J7), "
        "reported in its payload's `userErrors`. "
        "`code` (`PaymentErrorCode`) is stable for programs, `message` is the text to show the user "
        "(Russian), `field` is the path of the input it concerns."
    )
)
class PaymentError:
    """Common shape of this domain's user errors; specific ones implement it and carry more data."""

    code: str = strawberry.field(
        graphql_type=PaymentErrorCode,
        description="Stable machine-readable code, one of `PaymentErrorCode`.",
    )
    message: str = strawberry.field(description="Human-readable text to show the user, in Russian.")
    field: list[str] | None = strawberry.field(
        description='Path of the input field at fault, e.g. `["input", "phone"]`; null for the whole input.'
    )


@strawberry.type(description="A `PaymentError` with no data beyond code, message and field.")
class PaymentInputError(PaymentError):
    """The default implementation of :class:`PaymentError`."""


PAYMENT_ERRORS = error_domain(PaymentError, PaymentErrorCode, PaymentInputError)
user_error = PAYMENT_ERRORS.one
user_errors = PAYMENT_ERRORS.many


@strawberry.enum(
    description="Where a payment is in its life: PENDING, then one final status (REFUNDED after SUCCEEDED)."
)
class PaymentStatus(Enum):
    """Statuses of a payment."""

    PENDING = strawberry.enum_value("PENDING", description="Waiting for the customer or the bank.")
    SUCCEEDED = strawberry.enum_value("SUCCEEDED", description="Paid: the balance already counts it.")
    FAILED = strawberry.enum_value("FAILED", description="Declined (see `failureReason`).")
    CANCELED = strawberry.enum_value("CANCELED", description="Canceled or expired unpaid.")
    REFUNDED = strawberry.enum_value("REFUNDED", description="Paid, then returned to the customer.")


@strawberry.type(description="The part of a payment credited to one account and supplier.")
class PaymentAllocation:
    """Backed by ``models.payments.PaymentAllocation`` rows."""

    is_type_of = backed_by(models.PaymentAllocation)

    amount: Decimal = strawberry.field(description="Amount credited, roubles.")
    period: YearMonth = strawberry.field(description="The month it is credited in.")

    @strawberry.field(description="The account.")
    async def account(self, root: strawberry.Parent[models.PaymentAllocation], info: Info) -> Account:
        return await info.context.loader(AccountById).load(root.account_id)

    @strawberry.field(description="The supplier.")
    async def supplier(self, root: strawberry.Parent[models.PaymentAllocation], info: Info) -> Supplier:
        return await info.context.loader(SupplierById).load(root.supplier_id)


@strawberry.type(description="One step of a payment's status, with its time.")
class PaymentStatusStep:
    """Backed by ``models.payments.PaymentStatusChange`` rows."""

    is_type_of = backed_by(models.PaymentStatusChange)

    changed_at: dt.datetime = strawberry.field(description="When the payment reached this status.")
    reason: str | None = strawberry.field(description="Why (e.g. the bank's decline reason).")

    @strawberry.field(description="The status reached.")
    def status(self, root: strawberry.Parent[models.PaymentStatusChange]) -> PaymentStatus:
        return PaymentStatus(root.status.value)


@strawberry.type(
    description=(
        "A payment: redirect to `confirmationUrl` (CARD) or show the QR of `sbpPayload` / `sbpQrImageUrl` "
        "(SBP), then follow `paymentStatus` until a final status."
    )
)
class Payment(relay.Node):
    """Backed by ``models.payments.Payment`` rows; only its payer (and staff) can see it."""

    is_type_of = backed_by(models.Payment)

    id: relay.NodeID[int]
    amount: Decimal = strawberry.field(description="Total, roubles (the sum of the allocations).")
    currency: str = strawberry.field(description="Always RUB.")
    confirmation_url: str | None = strawberry.field(
        description="CARD: the card page to send the customer to."
    )
    sbp_payload: str | None = strawberry.field(
        description="SBP: contents of the QR code to show (a banking app scans it); the sum is in kopecks."
    )
    receipt_email: str | None = strawberry.field(description="Where the receipt is e-mailed after success.")
    failure_reason: str | None = strawberry.field(description="Why it failed or was canceled.")
    is_autopay: bool = strawberry.field(description="Made by autopay with a saved card (J7).")
    created_at: dt.datetime = strawberry.field(description="When it was created.")
    paid_at: dt.datetime | None = strawberry.field(description="When it succeeded.")

    @strawberry.field(description="Current status.")
    def status(self, root: strawberry.Parent[models.Payment]) -> PaymentStatus:
        return PaymentStatus(root.status.value)

    @strawberry.field(description="CARD or SBP.")
    def method(self, root: strawberry.Parent[models.Payment]) -> PaymentMethod:
        return PaymentMethod(root.method.value)

    @strawberry.field(description="SBP: URL of a PNG image of the QR code.")
    def sbp_qr_image_url(self, root: strawberry.Parent[models.Payment], info: Info) -> str | None:
        if not root.sbp_payload or not root.gateway_payment_id:
            return None
        settings = info.context.settings
        public = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
        return f"{public}/payments/qr/{root.gateway_payment_id}.png"

    @strawberry.field(description="Amounts per account and supplier.")
    async def allocations(
        self, root: strawberry.Parent[models.Payment], info: Info
    ) -> list[PaymentAllocation]:
        return await info.context.loader(resolvers.AllocationsByPaymentId).load(root.id)

    @strawberry.field(description="Every status step with its time, oldest first.")
    async def status_history(
        self, root: strawberry.Parent[models.Payment], info: Info
    ) -> list[PaymentStatusStep]:
        return await info.context.loader(resolvers.StatusChangesByPaymentId).load(root.id)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Payment | None]:
        """Only the payer (and staff) see a payment."""
        return as_node(cls, await resolvers.payments_by_ids(info, [int(node_id) for node_id in node_ids]))


@strawberry.type(description="A card saved at the gateway for autopay (only its mask is known to Kabinet).")
class SavedCard(relay.Node):
    """Backed by ``models.payments.PaymentMethod`` rows."""

    is_type_of = backed_by(models.PaymentMethod)

    id: relay.NodeID[int]
    card_last4: str = strawberry.field(description="Last four digits.")
    card_brand: str | None = strawberry.field(description="Payment system, e.g. MIR.")
    expiry_month: int | None = strawberry.field(description="Expiry month.")
    expiry_year: int | None = strawberry.field(description="Expiry year.")

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[SavedCard | None]:
        """Only the owner sees a card."""
        viewer = info.context.viewer
        rows = await info.context.loader(resolvers.CardById).load_many([int(node_id) for node_id in node_ids])
        return as_node(
            cls,
            [
                row if row is not None and viewer is not None and row.user_id == viewer.user_id else None
                for row in rows
            ],
        )


# --- the form ---------------------------------------------------------------------------------


@strawberry.type(description="One supplier of an account in the payment form, pre-filled with what is due.")
class PaymentFormLine:
    """A row with a checkbox and an editable amount (D5)."""

    line: strawberry.Private[service.DueLine]

    @strawberry.field(description="The supplier.")
    async def supplier(self, info: Info) -> Supplier:
        return await info.context.loader(SupplierById).load(self.line.supplier_id)

    @strawberry.field(
        description="Balance with the supplier: debt positive, overpayment negative, neither zero."
    )
    def balance(self) -> Decimal:
        return self.line.balance

    @strawberry.field(description="Amount due (0 when nothing is due).")
    def due(self) -> Decimal:
        return self.line.due

    @strawberry.field(description="Amount to pre-fill: the due amount, or the 10.00 minimum as an advance.")
    def suggested_amount(self) -> Decimal:
        return self.line.suggested


@strawberry.type(description="One account in the payment form.")
class PaymentFormAccount:
    """The account and its suppliers."""

    account_id: strawberry.Private[int]

    @strawberry.field(description="The account.")
    async def account(self, info: Info) -> Account:
        return await info.context.loader(AccountById).load(self.account_id)

    @strawberry.field(description="Its suppliers with what is due to each.")
    async def lines(self, info: Info) -> list[PaymentFormLine]:
        found = await info.context.loader(resolvers.DueLinesByAccountId).load(self.account_id)
        return [PaymentFormLine(line=line) for line in found]


@strawberry.type(description="What the payment form shows (D5) and the limits it must respect (H1).")
class PaymentForm:
    """The form of one account or of all linked accounts."""

    accounts: list[PaymentFormAccount] = strawberry.field(description="The accounts, in the order linked.")
    pay_all_available: bool = strawberry.field(
        description="Whether «Оплатить по всем лицевым счетам» (H1) is offered: more than one linked account."
    )
    min_amount: Decimal = strawberry.field(description="Smallest amount of one line: 10.00.")
    max_accounts: int = strawberry.field(description="Most accounts in one H1 payment.")
    max_total: Decimal = strawberry.field(description="Largest total of one payment.")


# --- inputs and payloads ---------------------------------------------------------------------------------


@strawberry.input(description="One checked supplier and the amount to pay it.")
class PaymentLineInput:
    """An allocation request."""

    supplier_id: relay.GlobalID = strawberry.field(description="Global ID of the supplier.")
    amount: Decimal = rules.field('Roubles with kopecks, at least "10.00".', rules.MONEY, default=MISSING)


@strawberry.input(description="D5: pay for one account.")
class CreatePaymentInput:
    """Input of createPayment."""

    account_id: relay.GlobalID = strawberry.field(description="Global ID of the account.")
    lines: list[PaymentLineInput] = strawberry.field(
        description="The checked suppliers with their amounts (an advance when nothing is due)."
    )
    method: PaymentMethod = strawberry.field(description="SBP (QR code) or CARD (card page).")
    accept_rules: bool = strawberry.field(description="«С правилами оплаты ознакомлен(а)»: must be true.")
    receipt_email: str | None = rules.field(
        "«Получить квитанцию»: e-mail the receipt here after success.", rules.EMAIL
    )
    save_card: bool = strawberry.field(
        default=False, description="CARD: ask the gateway to keep the card for autopay (J7)."
    )
    idempotency_key: str = rules.field(
        "A client-made unique key (e.g. a UUID) per payment attempt: a retry with the same key "
        "and input returns the same payment instead of charging twice.",
        rules.Rule(max_length=128),
        default=MISSING,
    )


@strawberry.input(description="H1: one account's part of a payment for all accounts.")
class PayAllAccountInput:
    """The account and its checked suppliers."""

    account_id: relay.GlobalID = strawberry.field(description="Global ID of the account.")
    lines: list[PaymentLineInput] = strawberry.field(description="The checked suppliers with their amounts.")


@strawberry.input(description="H1: one payment over several linked accounts.")
class CreatePaymentForAllAccountsInput:
    """Input of createPaymentForAllAccounts."""

    accounts: list[PayAllAccountInput] = strawberry.field(description="The accounts and amounts.")
    method: PaymentMethod = strawberry.field(description="SBP (QR code) or CARD (card page).")
    accept_rules: bool = strawberry.field(description="«С правилами оплаты ознакомлен(а)»: must be true.")
    receipt_email: str | None = rules.field(
        "«Получить квитанцию»: e-mail the receipt here after success.", rules.EMAIL
    )
    idempotency_key: str = rules.field(
        "A client-made unique key per payment attempt.", rules.Rule(max_length=128), default=MISSING
    )


@strawberry.type(description="Result of createPayment / createPaymentForAllAccounts.")
class CreatePaymentPayload:
    """The PENDING payment to confirm, or why there is none."""

    payment: Payment | None = strawberry.field(description="The payment (the first one for a retried key).")
    user_errors: list[PaymentError] = strawberry.field(description="What is wrong with the input.")


@strawberry.input(description="J7: connect, change or switch off autopay of one account.")
class SetAutopayInput:
    """Input of setAutopay."""

    account_id: relay.GlobalID = strawberry.field(description="Global ID of a linked account.")
    enabled: bool = strawberry.field(description="On or off (off forgets the setting).")
    card_id: relay.GlobalID | None = strawberry.field(default=None, description="The saved card to charge.")
    amount_limit: Decimal | None = rules.field(
        "Never charge more than this per bill; null = no limit.", rules.MONEY
    )
    day_of_month: int | None = strawberry.field(
        default=None, description="Pay on this day (1–28); null = as soon as the bill is issued."
    )


@strawberry.type(description="Result of setAutopay.")
class SetAutopayPayload:
    """Whether autopay is on now."""

    enabled: bool = strawberry.field(description="Autopay of the account is on.")
    user_errors: list[PaymentError] = strawberry.field(description="What is wrong with the input.")


@strawberry.type(description="A change of a payment's status, pushed by `paymentStatus`.")
class PaymentStatusEvent:
    """One pushed status."""

    status: PaymentStatus = strawberry.field(description="The status reached.")
    changed_at: dt.datetime | None = strawberry.field(description="When.")
    reason: str | None = strawberry.field(description="Why, for FAILED and CANCELED.")
    payment: Payment = strawberry.field(description="The payment as it is now.")


@strawberry.type(description="D5: an amount below the minimum.")
class AmountTooSmallError(PaymentError):
    """Carries the minimum."""

    minimum: Decimal = strawberry.field(description='The smallest amount allowed, "10.00".')


@PAYMENT_ERRORS.register(service.AmountTooSmall)
def _too_small(error: DomainError, code: Any) -> PaymentError:
    return AmountTooSmallError(
        code=code,
        message=error.text,
        field=error.field,
        minimum=error.data.get("minimum", service.MIN_AMOUNT),
    )


ERROR_TYPES: list[type] = [AmountTooSmallError]


# --- parsing ---------------------------------------------------------------------------------


def _id_of(value: relay.GlobalID, type_name: str, field: list[str], error: type[DomainError]) -> int:
    if value.type_name != type_name:
        raise error(field=field)
    try:
        return int(canonical(value).node_id)
    except ValueError:
        raise error(field=field) from None


def _lines(account_id: int, items: list[PaymentLineInput], prefix: list[str]) -> list[service.Line]:
    out = []
    for index, item in enumerate(items):
        path = [*prefix, "lines", str(index)]
        supplier = _id_of(item.supplier_id, "Supplier", [*path, "supplierId"], service.SupplierNotOfAccount)
        out.append(service.Line(account_id, supplier, item.amount, tuple(path)))
    return out


# --- root fields ---------------------------------------------------------------------------------


@strawberry.type
class PaymentQueries:
    """Queries of this module (merged into Query)."""

    @strawberry.field(
        description="D5 / H1: the payment form — per account, each supplier with what is due. Without "
        "`accountIds`: every linked account (the «pay for all accounts» form)."
    )
    async def payment_form(
        self,
        info: Info,
        account_ids: Annotated[
            list[relay.GlobalID] | None, strawberry.argument(description="Global IDs of linked accounts.")
        ] = None,
    ) -> PaymentForm:
        ids = None
        if account_ids is not None:
            ids = [int(canonical(value).node_id) for value in account_ids if value.type_name == "Account"]
        found, pay_all = await resolvers.checkout(info, ids)
        limits = resolvers.limits(info)
        return PaymentForm(
            accounts=[PaymentFormAccount(account_id=account_id) for account_id in found],
            pay_all_available=pay_all,
            min_amount=service.MIN_AMOUNT,
            max_accounts=limits.max_accounts,
            max_total=limits.max_total,
        )

    @strawberry.field(description="J7: the caller's cards saved for autopay.")
    async def saved_cards(self, info: Info) -> list[SavedCard]:
        return await resolvers.saved_cards(info)  # type: ignore[return-value]


@strawberry.type
class PaymentMutations:
    """Mutations of this module (merged into Mutation)."""

    @strawberry.mutation(
        description="D5: pay for one account (checked suppliers, amounts ≥ 10.00, SBP or CARD, rules "
        "accepted). Returns a PENDING payment with a `confirmationUrl` (CARD) or an `sbpPayload` (SBP)."
    )
    async def create_payment(
        self,
        info: Info,
        input: Annotated[
            CreatePaymentInput,
            strawberry.argument(
                description="D5: the account, suppliers and amounts, the method and the rules' acceptance."
            ),
        ],
    ) -> CreatePaymentPayload:
        from services.accounts import AccountNotFound

        try:
            account_id = _id_of(input.account_id, "Account", ["input", "accountId"], AccountNotFound)
            lines = _lines(account_id, input.lines, ["input"])
        except DomainError as error:
            return CreatePaymentPayload(payment=None, user_errors=user_errors([error]))
        payment, errors = await resolvers.create_payment(
            info,
            lines=lines,
            method=models.PaymentMethodKind(input.method.name),
            accept_rules=input.accept_rules,
            receipt_email=input.receipt_email,
            idempotency_key=input.idempotency_key,
            pay_all=False,
            save_card=input.save_card,
        )
        return CreatePaymentPayload(payment=payment, user_errors=user_errors(errors))  # type: ignore[arg-type]

    @strawberry.mutation(
        description="H1: one payment over several linked accounts (only with more than one linked), "
        "allocated per account and supplier; same rules as createPayment."
    )
    async def create_payment_for_all_accounts(
        self,
        info: Info,
        input: Annotated[
            CreatePaymentForAllAccountsInput,
            strawberry.argument(
                description="H1: the accounts with suppliers and amounts, the method, the rules' acceptance."
            ),
        ],
    ) -> CreatePaymentPayload:
        from services.accounts import AccountNotFound

        lines: list[service.Line] = []
        try:
            for index, item in enumerate(input.accounts):
                prefix = ["input", "accounts", str(index)]
                account_id = _id_of(item.account_id, "Account", [*prefix, "accountId"], AccountNotFound)
                lines.extend(_lines(account_id, item.lines, prefix))
        except DomainError as error:
            return CreatePaymentPayload(payment=None, user_errors=user_errors([error]))
        payment, errors = await resolvers.create_payment(
            info,
            lines=lines,
            method=models.PaymentMethodKind(input.method.name),
            accept_rules=input.accept_rules,
            receipt_email=input.receipt_email,
            idempotency_key=input.idempotency_key,
            pay_all=True,
            save_card=False,
        )
        return CreatePaymentPayload(payment=payment, user_errors=user_errors(errors))  # type: ignore[arg-type]

    @strawberry.mutation(description="J7: connect, change or switch off autopay of a linked account.")
    async def set_autopay(
        self,
        info: Info,
        input: Annotated[
            SetAutopayInput,
            strawberry.argument(
                description="J7: the account, on or off, the saved card and the largest amount per bill."
            ),
        ],
    ) -> SetAutopayPayload:
        from services.accounts import AccountNotFound

        try:
            account_id = _id_of(input.account_id, "Account", ["input", "accountId"], AccountNotFound)
            card_id = (
                _id_of(input.card_id, "SavedCard", ["input", "cardId"], service.CardNotFound)
                if input.card_id is not None
                else None
            )
        except DomainError as error:
            return SetAutopayPayload(enabled=False, user_errors=user_errors([error]))
        enabled, errors = await resolvers.set_autopay(
            info,
            account_id=account_id,
            card_id=card_id,
            amount_limit=input.amount_limit,
            day_of_month=input.day_of_month,
            enabled=input.enabled,
        )
        return SetAutopayPayload(enabled=enabled, user_errors=user_errors(errors))


@strawberry.type
class PaymentSubscriptions:
    """Subscriptions of this module (merged into Subscription)."""

    @strawberry.subscription(
        description="K2: the payment's current status at once, then every change, until a final status "
        "(the stream then completes). Only the payer may subscribe; needs a token in `connection_init`."
    )
    async def payment_status(
        self,
        info: Info,
        payment_id: Annotated[strawberry.ID, strawberry.argument(description="Global ID of the payment.")],
    ) -> AsyncGenerator[PaymentStatusEvent, None]:
        global_id = parse_global_id(payment_id, expected_type="Payment")
        async for payment, step in resolvers.live_status(info, int(canonical(global_id).node_id)):
            yield PaymentStatusEvent(
                status=PaymentStatus((step.status if step else payment.status).value),
                changed_at=step.changed_at if step else None,
                reason=step.reason if step else None,
                payment=strawberry.cast(Payment, payment),  # type: ignore[arg-type]
            )
