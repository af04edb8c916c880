"""Billing types: services, balances, charges, payments, events, statistics, tariffs, receipts, downloads.

Money is ``Decimal`` (a string with kopecks); debt positive, overpayment negative, neither zero.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from enum import Enum

import strawberry
from strawberry import relay

from models import billing as billing_models
from models import branches as branch_models
from models import tariffs as tariff_models
from resolvers import billing as resolvers
from resolvers.branches import ServiceById, ServiceRow, SupplierById
from resolvers.context import Info
from schema.branches import Supplier
from schema.node import as_node, backed_by
from schema.readings import Zone
from schema.scalars import YearMonthScalar as YearMonth
from services import billing, storage


def zone_of(value: tariff_models.Zone | None) -> Zone | None:
    """The GraphQL zone of a model zone."""
    return value  # the GraphQL enum wraps the model's (see schema.readings)


@strawberry.type(description="A short-lived signed link to download a file (receipt PDF, tariff document).")
class FileDownload:
    """Never a permanent link: request a new one when it has expired."""

    url: str = strawberry.field(description="Absolute URL to GET the file from; works until `expiresAt`.")
    expires_at: dt.datetime = strawberry.field(description="When the URL stops working (UTC).")

    @classmethod
    def of(cls, signed: storage.SignedUrl) -> FileDownload:
        """From the storage service's signed URL."""
        return cls(url=signed.url, expires_at=signed.expires_at)


@strawberry.type(description="A billed service (electricity, water, heating, …), billed by one supplier.")
class Service(relay.Node):
    """Reference data. Backed by ``models.branches.Service`` rows or their plain rows (``ServiceById``)."""

    is_type_of = backed_by(branch_models.Service, ServiceRow)

    id: relay.NodeID[int]
    code: str = strawberry.field(description="Stable code, e.g. `ELECTRICITY`.")
    name: str = strawberry.field(description="Name shown to customers, e.g. «Электроэнергия».")
    unit: str = strawberry.field(description="Unit of volume, e.g. «кВт·ч».")

    @strawberry.field(description="The supplier that bills this service.")
    async def supplier(self, root: strawberry.Parent[branch_models.Service], info: Info) -> Supplier:
        return await info.context.loader(SupplierById).load(root.supplier_id)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Service | None]:
        """Services are public reference data."""
        rows = await info.context.loader(ServiceById).load_many([int(node_id) for node_id in node_ids])
        return as_node(cls, rows)


async def load_service(info: Info, service_id: int | None) -> Service | None:
    """A service through the per-request loader."""
    if service_id is None:
        return None
    return await info.context.loader(ServiceById).load(service_id)


async def load_supplier(info: Info, supplier_id: int | None) -> Supplier | None:
    """A supplier through the per-request loader."""
    if supplier_id is None:
        return None
    return await info.context.loader(SupplierById).load(supplier_id)


# --- B4 balance ---------------------------------------------------------------------------------------------


@strawberry.enum(description="What a balance means (B4).")
class BalanceStatus(Enum):
    """Debt, overpayment or neither."""

    DEBT = strawberry.enum_value("DEBT", description="The customer owes: label «К оплате», amount positive.")
    OVERPAYMENT = strawberry.enum_value(
        "OVERPAYMENT", description="Overpayment: label «Переплата», amount negative (shown with «-»)."
    )
    NONE = strawberry.enum_value("NONE", description="Neither: label «Задолженность отсутствует», amount 0.")


@strawberry.type(description="The balance with one supplier, counting this period's payments.")
class SupplierBalance:
    """One line of the per-supplier breakdown."""

    supplier_id: strawberry.Private[int]
    amount: Decimal = strawberry.field(description="Debt positive, overpayment negative, neither zero.")
    closing: Decimal = strawberry.field(description="Closing balance of the last billed period.")
    paid_since: Decimal = strawberry.field(description="Payments credited after the last billed period.")

    @strawberry.field(description="Debt, overpayment or neither.")
    def status(self) -> BalanceStatus:
        return BalanceStatus(billing.balance_status(self.amount).value)

    @strawberry.field(description="The supplier.")
    async def supplier(self, info: Info) -> Supplier:
        return await load_supplier(info, self.supplier_id)  # type: ignore[return-value]


@strawberry.type(description="B4: the account's balance including payments of the current period.")
class AccountBalance:
    """The sum over suppliers with its label as the manual shows it."""

    amount: Decimal = strawberry.field(description="Debt positive, overpayment negative, neither zero.")
    billed_period: YearMonth | None = strawberry.field(
        description="The last period billing closed; payments after it are already counted."
    )
    suppliers: list[SupplierBalance] = strawberry.field(description="The breakdown by supplier.")

    @strawberry.field(description="Debt, overpayment or neither.")
    def status(self) -> BalanceStatus:
        return BalanceStatus(billing.balance_status(self.amount).value)

    @strawberry.field(
        description=(
            "The word shown next to the amount: «К оплате», «Переплата» or «Задолженность отсутствует»."
        )
    )
    def label(self) -> str:
        return billing.BALANCE_LABELS[billing.balance_status(self.amount)]

    @strawberry.field(
        description="The amount as shown, e.g. «1 234,50», «-150,00» (overpayment), «0,00» (neither)."
    )
    def display_amount(self) -> str:
        return billing.display_amount(self.amount)

    @classmethod
    def of(cls, found: billing.AccountBalance) -> AccountBalance:
        """From the billing service's balance."""
        return cls(
            amount=found.amount,
            billed_period=found.billed_period,  # type: ignore[arg-type]
            suppliers=[
                SupplierBalance(
                    supplier_id=line.supplier_id,
                    amount=line.amount,
                    closing=line.closing,
                    paid_since=line.paid_since,
                )
                for line in found.suppliers
            ],
        )


# --- receipts -----------------------------------------------------------------------------------------------


@strawberry.type(description="The receipt (квитанция) of an account for a period (D3).")
class Receipt:
    """Backed by ``models.billing.Receipt`` rows; the PDF is generated on first download and cached."""

    is_type_of = backed_by(billing_models.Receipt)

    total_due: Decimal = strawberry.field(description="Total due on the receipt (debt positive).")
    due_date: dt.date | None = strawberry.field(description="Pay by this date.")

    @strawberry.field(description="The billing period of the receipt.")
    def period(self, root: strawberry.Parent[billing_models.Receipt]) -> YearMonth:
        return root.period  # type: ignore[return-value]

    @strawberry.field(description="A short-lived signed link to the receipt's PDF (with payment QR codes).")
    def download(self, root: strawberry.Parent[billing_models.Receipt], info: Info) -> FileDownload:
        return FileDownload.of(
            resolvers.download_url(info, storage.receipt_target(root.account_id, root.period))
        )


# --- D2 charges ---------------------------------------------------------------------------------------------


@strawberry.type(description="A charge of one service (and zone) for one period (D2).")
class Charge:
    """Backed by ``models.billing.Charge`` rows, or their plain rows (``services.billing.ChargeRow``)."""

    is_type_of = backed_by(billing_models.Charge, billing.ChargeRow)

    volume: Decimal | None = strawberry.field(description="Consumed volume in the service's unit.")
    rate: Decimal | None = strawberry.field(description="Tariff rate applied, roubles per unit.")
    amount: Decimal = strawberry.field(description="Charged for the period (volume × rate).")
    recalculation: Decimal = strawberry.field(description="Recalculation (перерасчет): ± correction.")
    # read straight off the row (no resolver: a 36-month history has ~150 lines, issue 21)
    period: YearMonth = strawberry.field(description="The billing period.")
    zone: Zone | None = strawberry.field(description="Tariff zone; null for services without zones.")

    @strawberry.field(description="Amount plus recalculation: what this line adds to the balance.")
    def total(self, root: strawberry.Parent[billing_models.Charge]) -> Decimal:
        return billing.charge_total(root)

    @strawberry.field(description="The service charged.")
    def service(self, root: strawberry.Parent[billing_models.Charge], info: Info) -> Service:
        # sync when ``with_references`` attached the row (a dashboard has ~150 charge lines: one
        # coroutine each costs more than the lookup); otherwise the loader's future, awaited by graphql-core
        attached = getattr(root, ATTACHED_SERVICE, None)
        return attached if attached is not None else info.context.loader(ServiceById).load(root.service_id)  # type: ignore[return-value]

    @strawberry.field(description="The supplier billing it.")
    def supplier(self, root: strawberry.Parent[billing_models.Charge], info: Info) -> Supplier:
        attached = getattr(root, ATTACHED_SUPPLIER, None)
        return attached if attached is not None else info.context.loader(SupplierById).load(root.supplier_id)  # type: ignore[return-value]


@strawberry.type(description="The charges of one month (D2).")
class ChargeMonth:
    """A month's charges by service and zone."""

    period: YearMonth = strawberry.field(description="The month.")
    charges: list[Charge] = strawberry.field(description="Charges by service and zone.")

    @strawberry.field(description="Sum of the month's charges and recalculations.")
    def total(self) -> Decimal:
        return sum((billing.charge_total(row) for row in self.charges), billing.ZERO)  # type: ignore[arg-type]


ATTACHED_SERVICE = "_kabinet_service"
ATTACHED_SUPPLIER = "_kabinet_supplier"


async def with_references(info: Info, rows: list[billing_models.Charge]) -> list[billing_models.Charge]:
    """Attach each charge's service and supplier rows (through the request's loaders, batched with every
    other account's) so ``Charge.service`` / ``Charge.supplier`` resolve without a coroutine per line."""
    services, suppliers = await asyncio.gather(
        info.context.loader(ServiceById).load_many(sorted({row.service_id for row in rows})),
        info.context.loader(SupplierById).load_many(sorted({row.supplier_id for row in rows})),
    )
    by_service = {row.id: row for row in services if row is not None}
    by_supplier = {row.id: row for row in suppliers if row is not None}
    for row in rows:
        setattr(row, ATTACHED_SERVICE, by_service.get(row.service_id))
        setattr(row, ATTACHED_SUPPLIER, by_supplier.get(row.supplier_id))
    return rows


def charge_months(rows: list[billing_models.Charge]) -> list[ChargeMonth]:
    """Group charges (newest first) into months."""
    return [ChargeMonth(period=period, charges=items) for period, items in billing.by_month(rows)]  # type: ignore[arg-type]


# --- D4 payments --------------------------------------------------------------------------------------------


@strawberry.enum(description="How a payment was made.")
class PaymentMethod(Enum):
    """Payment methods."""

    CARD = strawberry.enum_value("CARD", description="Bank card.")
    SBP = strawberry.enum_value("SBP", description="Fast payment system (СБП) QR code.")


@strawberry.enum(description="Where a payment was made (D4).")
class PaymentChannel(Enum):
    """Payment channels."""

    CABINET = strawberry.enum_value("CABINET", description="In this cabinet (web or mobile app).")
    BANK = strawberry.enum_value("BANK", description="At a bank or in its app; billing reported it.")
    POST = strawberry.enum_value("POST", description="At a post office; billing reported it.")
    CASHIER = strawberry.enum_value("CASHIER", description="At the utility's cash desk; billing reported it.")
    OTHER = strawberry.enum_value("OTHER", description="Another way billing reported.")


@strawberry.type(description="A payment credited to the account and one supplier (D4).")
class PaymentEntry:
    """One credited part of a payment."""

    line: strawberry.Private[billing.PaymentLine]

    @strawberry.field(description="The month the payment is credited in.")
    def period(self) -> YearMonth:
        return self.line.period  # type: ignore[return-value]

    @strawberry.field(description="Amount paid (positive).")
    def amount(self) -> Decimal:
        return self.line.amount

    @strawberry.field(description="When it was paid.")
    def paid_at(self) -> dt.datetime | None:
        return self.line.paid_at

    @strawberry.field(description="How it was paid in the cabinet; null when paid elsewhere (`channel`).")
    def method(self) -> PaymentMethod | None:
        return PaymentMethod(self.line.method.value) if self.line.method is not None else None

    @strawberry.field(description="Where it was paid: in the cabinet, or a bank, post office or cash desk.")
    def channel(self) -> PaymentChannel:
        return PaymentChannel(self.line.channel.value)

    @strawberry.field(description="Whether autopay made it.")
    def is_autopay(self) -> bool:
        return self.line.is_autopay

    @strawberry.field(description="The supplier credited.")
    async def supplier(self, info: Info) -> Supplier:
        return await load_supplier(info, self.line.supplier_id)  # type: ignore[return-value]


@strawberry.type(description="The payments of one month (D4).")
class PaymentMonth:
    """A month's payments."""

    period: YearMonth = strawberry.field(description="The month.")
    payments: list[PaymentEntry] = strawberry.field(
        description="Payments credited in the month, newest first."
    )

    @strawberry.field(description="Sum paid in the month.")
    def total(self) -> Decimal:
        return sum((entry.line.amount for entry in self.payments), billing.ZERO)


def payment_months(lines: list[billing.PaymentLine]) -> list[PaymentMonth]:
    """Group payment lines (newest first) into months."""
    return [
        PaymentMonth(period=period, payments=[PaymentEntry(line=line) for line in items])  # type: ignore[arg-type]
        for period, items in billing.by_month(lines)
    ]


# --- D1 events ----------------------------------------------------------------------------------------------


@strawberry.enum(description="Kinds of account events (D1).")
class EventKind(Enum):
    """Charges, payments, recalculations."""

    CHARGE = strawberry.enum_value("CHARGE", description="A charge for a service (начисление).")
    PAYMENT = strawberry.enum_value("PAYMENT", description="A payment (оплата).")
    RECALCULATION = strawberry.enum_value("RECALCULATION", description="A recalculation (перерасчет).")


@strawberry.type(description="One operation on the account (D1).")
class AccountEvent:
    """A charge, a payment or a recalculation."""

    event: strawberry.Private[billing.Event]

    @strawberry.field(description="What happened.")
    def kind(self) -> EventKind:
        return EventKind(self.event.kind.value)

    @strawberry.field(description="The month.")
    def period(self) -> YearMonth:
        return self.event.period  # type: ignore[return-value]

    @strawberry.field(
        description="Effect on the balance: charges positive, payments negative, recalculations ±."
    )
    def amount(self) -> Decimal:
        return self.event.amount

    @strawberry.field(description="When it happened (payments); null for charges, which belong to the month.")
    def occurred_at(self) -> dt.datetime | None:
        return self.event.occurred_at

    @strawberry.field(description="The service (charges and recalculations).")
    async def service(self, info: Info) -> Service | None:
        return await load_service(info, self.event.service_id)

    @strawberry.field(description="The supplier.")
    async def supplier(self, info: Info) -> Supplier | None:
        return await load_supplier(info, self.event.supplier_id)


@strawberry.type(description="The operations of one month with its receipt (D1).")
class EventMonth:
    """A month of events."""

    account_id: strawberry.Private[int]
    period: YearMonth = strawberry.field(description="The month.")
    events: list[AccountEvent] = strawberry.field(description="Charges, recalculations and payments.")

    @strawberry.field(description="The month's receipt, to download; null when none was issued.")
    async def receipt(self, info: Info) -> Receipt | None:
        loader = info.context.loader(resolvers.ReceiptByAccountPeriod)
        return await loader.load((self.account_id, self.period))


def event_months(account_id: int, found: list[billing.Event]) -> list[EventMonth]:
    """Group events (newest first) into months."""
    return [
        EventMonth(account_id=account_id, period=period, events=[AccountEvent(event=e) for e in items])  # type: ignore[arg-type]
        for period, items in billing.by_month(found)
    ]


# --- D7 balance by month ------------------------------------------------------------------------------------


@strawberry.type(description="The balance with one supplier for one month (D7).")
class PeriodBalance:
    """Backed by ``models.billing.PeriodBalance`` rows."""

    is_type_of = backed_by(billing_models.PeriodBalance)

    opening: Decimal = strawberry.field(description="Balance at the start of the month (debt positive).")
    charged: Decimal = strawberry.field(description="Charged in the month, recalculations included.")
    paid: Decimal = strawberry.field(description="Paid in the month.")
    closing: Decimal = strawberry.field(description="Balance at the end: opening + charged − paid.")

    @strawberry.field(description="The supplier.")
    async def supplier(self, root: strawberry.Parent[billing_models.PeriodBalance], info: Info) -> Supplier:
        return await load_supplier(info, root.supplier_id)  # type: ignore[return-value]


@strawberry.type(description="One month's balance over all suppliers, with the breakdown (D7).")
class BalanceMonth:
    """A month of the balance history."""

    period: YearMonth = strawberry.field(description="The month.")
    suppliers: list[PeriodBalance] = strawberry.field(description="By supplier.")

    @strawberry.field(description="Opening balance over all suppliers.")
    def opening(self) -> Decimal:
        return sum((row.opening for row in self.suppliers), billing.ZERO)

    @strawberry.field(description="Charged over all suppliers.")
    def charged(self) -> Decimal:
        return sum((row.charged for row in self.suppliers), billing.ZERO)

    @strawberry.field(description="Paid over all suppliers.")
    def paid(self) -> Decimal:
        return sum((row.paid for row in self.suppliers), billing.ZERO)

    @strawberry.field(description="Closing balance over all suppliers.")
    def closing(self) -> Decimal:
        return sum((row.closing for row in self.suppliers), billing.ZERO)


def balance_months(rows: list[billing_models.PeriodBalance]) -> list[BalanceMonth]:
    """Group period balances (newest first) into months."""
    return [BalanceMonth(period=period, suppliers=items) for period, items in billing.by_month(rows)]  # type: ignore[arg-type]


# --- D6 statistics ------------------------------------------------------------------------------------------


@strawberry.enum(description="What a statistics series measures (D6).")
class StatisticsKind(Enum):
    """Consumption, charges or payments."""

    CONSUMPTION = strawberry.enum_value("CONSUMPTION", description="Volume by month, service and zone.")
    CHARGES = strawberry.enum_value("CHARGES", description="Roubles charged by month, service and zone.")
    PAYMENTS = strawberry.enum_value("PAYMENTS", description="Roubles paid by month and supplier.")


@strawberry.input(description="Filters of a statistics query (D6).")
class StatisticsFilter:
    """Period (D8 rule), what to measure, which services and zones."""

    kind: StatisticsKind = strawberry.field(description="What to measure.")
    from_: YearMonth | None = strawberry.field(
        default=None, name="from", description="First month; default: 12 months before `to`."
    )
    to: YearMonth | None = strawberry.field(
        default=None, description="Last month; default: the previous month."
    )
    service_ids: list[relay.GlobalID] | None = strawberry.field(
        default=None, description="Only these services (consumption and charges); null: all."
    )
    zones: list[Zone] | None = strawberry.field(default=None, description="Only these zones; null: all.")


@strawberry.type(description="A value of a series for one month.")
class StatisticsPoint:
    """One point of a chart."""

    period: YearMonth = strawberry.field(description="The month.")
    value: Decimal = strawberry.field(description="Volume (consumption) or roubles (charges, payments).")


@strawberry.type(description="One line or bar group of a chart: a value for every month of the range (D6).")
class StatisticsSeries:
    """A series by service and zone (consumption, charges) or by supplier (payments)."""

    service_id: strawberry.Private[int | None]
    supplier_id: strawberry.Private[int | None]
    zone: Zone | None = strawberry.field(description="The zone; null when not split by zone.")
    points: list[StatisticsPoint] = strawberry.field(description="Every month of the range, oldest first.")

    @strawberry.field(description="The service; null for payments.")
    async def service(self, info: Info) -> Service | None:
        return await load_service(info, self.service_id)

    @strawberry.field(description="The supplier (payments); null otherwise.")
    async def supplier(self, info: Info) -> Supplier | None:
        return await load_supplier(info, self.supplier_id)


def series_of(found: list[billing.Series]) -> list[StatisticsSeries]:
    """GraphQL series from the billing service's."""
    return [
        StatisticsSeries(
            service_id=item.service_id,
            supplier_id=item.supplier_id,
            zone=zone_of(item.zone),
            points=[StatisticsPoint(period=month, value=value) for month, value in item.points],  # type: ignore[arg-type]
        )
        for item in found
    ]


# --- C4 tariffs ---------------------------------------------------------------------------------------------


@strawberry.type(description="The document that approved a tariff (C4).")
class TariffDocument:
    """Title, number and date, with a download link when the file is on record."""

    tariff: strawberry.Private[tariff_models.Tariff]
    title: str | None = strawberry.field(description="E.g. «Постановление ГУ РЭК Рязанской области …».")
    number: str | None = strawberry.field(description="Document number.")
    date: dt.date | None = strawberry.field(description="Document date.")

    @strawberry.field(
        description="A short-lived signed link to the document; null when no file is on record."
    )
    def download(self, info: Info) -> FileDownload | None:
        if self.tariff.document_file_id is None:
            return None
        return FileDownload.of(
            resolvers.download_url(info, storage.file_target(self.tariff.document_file_id))
        )


@strawberry.type(description="A tariff rate of one service and zone over a date range (C4).")
class Tariff:
    """Backed by ``models.tariffs.Tariff`` rows."""

    is_type_of = backed_by(tariff_models.Tariff)

    rate: Decimal = strawberry.field(description="Roubles per unit, VAT included.")
    consumer_group: str | None = strawberry.field(
        description="Consumer group it applies to; null: everybody."
    )
    valid_from: dt.date = strawberry.field(description="First day in force.")
    valid_to: dt.date | None = strawberry.field(description="Last day in force; null: still in force.")

    @strawberry.field(description="The zone.")
    def zone(self, root: strawberry.Parent[tariff_models.Tariff]) -> Zone:
        return Zone(root.zone.value)

    @strawberry.field(description="Whether the tariff is in force today.")
    def is_current(self, root: strawberry.Parent[tariff_models.Tariff], info: Info) -> bool:
        return billing.tariff_is_current(root, info.context.today)

    @strawberry.field(description="The service.")
    async def service(self, root: strawberry.Parent[tariff_models.Tariff], info: Info) -> Service:
        return await load_service(info, root.service_id)  # type: ignore[return-value]

    @strawberry.field(description="The approving document; null when none is on record.")
    def document(self, root: strawberry.Parent[tariff_models.Tariff]) -> TariffDocument | None:
        if root.document_title is None and root.document_file_id is None:
            return None
        return TariffDocument(
            tariff=root, title=root.document_title, number=root.document_number, date=root.document_date
        )
