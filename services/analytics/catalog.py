"""What the analytics API can count: fact families, their dimensions, and the measures read from them.

A *family* is one kind of fact rolled up per month (``models.analytics``); its dimensions are the
columns it can be split by. A *measure* reads one family; asking for a dimension its family lacks is
refused (:class:`DimensionNotApplicable`), because such a split would be meaningless or would need
personal data (payments have no day zone, registrations belong to no branch, …).

The texts here are the analysts' documentation: the GraphQL enums take their descriptions from them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Dimension(enum.StrEnum):
    """A way to split a measure."""

    BRANCH = "BRANCH"
    SUPPLIER = "SUPPLIER"
    SERVICE = "SERVICE"
    ZONE = "ZONE"
    PERIOD = "PERIOD"
    CHANNEL = "CHANNEL"
    PAYMENT_METHOD = "PAYMENT_METHOD"
    APPEAL_TOPIC = "APPEAL_TOPIC"
    APPLICATION_KIND = "APPLICATION_KIND"
    STATUS = "STATUS"


DIMENSION_DOCS: dict[Dimension, str] = {
    Dimension.BRANCH: (
        "The branch (филиал) of the account. Cabinets count once in each branch where their user has a "
        "linked account."
    ),
    Dimension.SUPPLIER: "The supplier that bills the charge, balance, payment allocation or appeal.",
    Dimension.SERVICE: "The billed service (electricity, cold water, …) of a charge or of a reading's meter.",
    Dimension.ZONE: "The tariff day zone (SINGLE, DAY, NIGHT, PEAK, HALF_PEAK) of a charge or reading.",
    Dimension.PERIOD: (
        "The month (YYYY-MM), quarter (YYYY-Qn) or year (YYYY) — see `periodGranularity`. Months are "
        "calendar months in Moscow time; billing facts use their billing period."
    ),
    Dimension.CHANNEL: (
        "Where it came from: WEB (web cabinet), MOBILE (mobile app), OPERATOR (entered by staff), "
        "METER_DATA (automatic meter reading, АСКУЭ). Readings: their source; active cabinets: the client "
        "of the login session."
    ),
    Dimension.PAYMENT_METHOD: "CARD (card page or saved card) or SBP (fast payment system QR).",
    Dimension.APPEAL_TOPIC: "The topic code chosen from the appeal topic list (F2); label: its name.",
    Dimension.APPLICATION_KIND: "The kind of application (G3, C2, C3).",
    Dimension.STATUS: (
        "Current processing status: of an appeal or application (NEW, IN_PROGRESS, ANSWERED, CLOSED, "
        "REJECTED) or of a payment (PENDING, SUCCEEDED, FAILED, CANCELED, REFUNDED)."
    ),
}


class Channel(enum.StrEnum):
    """Where a reading or a login came from."""

    WEB = "WEB"
    MOBILE = "MOBILE"
    OPERATOR = "OPERATOR"
    METER_DATA = "METER_DATA"


class Granularity(enum.StrEnum):
    """Length of a PERIOD cell."""

    MONTH = "MONTH"
    QUARTER = "QUARTER"
    YEAR = "YEAR"


class Kind(enum.StrEnum):
    """What a measure's value is (which cell field carries it)."""

    MONEY = "MONEY"  # roubles, Decimal with kopecks
    QUANTITY = "QUANTITY"  # kWh, Decimal with 3 decimals
    COUNT = "COUNT"  # Int
    SHARE = "SHARE"  # 0..1, Float
    SECONDS = "SECONDS"  # Float seconds


class Temporal(enum.StrEnum):
    """How months combine inside one cell."""

    FLOW = "FLOW"  # summed over the cell's months
    STOCK = "STOCK"  # the value of the cell's last month


@dataclass(frozen=True)
class Family:
    """One kind of rolled-up fact: its dimensions (in GROUPING() bit order) and what ``subjects`` counts."""

    name: str
    dimensions: tuple[Dimension, ...]
    subjects: str  # "accounts" or "customers"


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            "charges", (Dimension.BRANCH, Dimension.SUPPLIER, Dimension.SERVICE, Dimension.ZONE), "accounts"
        ),
        Family("balances", (Dimension.BRANCH, Dimension.SUPPLIER), "accounts"),
        Family("sessions", (Dimension.BRANCH, Dimension.CHANNEL), "customers"),
        Family("registrations", (), "customers"),
        Family(
            "readings", (Dimension.BRANCH, Dimension.SERVICE, Dimension.ZONE, Dimension.CHANNEL), "accounts"
        ),
        Family(
            "payments",
            (Dimension.BRANCH, Dimension.SUPPLIER, Dimension.PAYMENT_METHOD, Dimension.STATUS),
            "accounts",
        ),
        Family(
            "appeals",
            (Dimension.BRANCH, Dimension.SUPPLIER, Dimension.APPEAL_TOPIC, Dimension.STATUS),
            "accounts",
        ),
        Family("applications", (Dimension.BRANCH, Dimension.APPLICATION_KIND, Dimension.STATUS), "accounts"),
    )
}

DIMENSION_COLUMN: dict[Dimension, str] = {
    Dimension.BRANCH: "branch_id",
    Dimension.SUPPLIER: "supplier_id",
    Dimension.SERVICE: "service_id",
    Dimension.ZONE: "zone",
    Dimension.CHANNEL: "channel",
    Dimension.PAYMENT_METHOD: "payment_method",
    Dimension.APPEAL_TOPIC: "topic",
    Dimension.APPLICATION_KIND: "application_kind",
    Dimension.STATUS: "status",
}
"""The rollup column of each dimension but PERIOD."""


class Measure(enum.StrEnum):
    """What to count."""

    CONSUMPTION_KWH = "CONSUMPTION_KWH"
    CHARGED = "CHARGED"
    PAID = "PAID"
    DEBT = "DEBT"
    DEBTORS = "DEBTORS"
    ACCOUNTS = "ACCOUNTS"
    ACTIVE_CABINETS = "ACTIVE_CABINETS"
    REGISTRATIONS = "REGISTRATIONS"
    READINGS_SUBMITTED = "READINGS_SUBMITTED"
    READINGS_ON_TIME_SHARE = "READINGS_ON_TIME_SHARE"
    PAYMENTS_COUNT = "PAYMENTS_COUNT"
    PAYMENTS_SUM = "PAYMENTS_SUM"
    E_RECEIPT_ADOPTION = "E_RECEIPT_ADOPTION"
    AUTOPAY_ADOPTION = "AUTOPAY_ADOPTION"
    APPEALS = "APPEALS"
    APPLICATIONS = "APPLICATIONS"
    FIRST_ANSWER_MEDIAN = "FIRST_ANSWER_MEDIAN"
    FIRST_ANSWER_P90 = "FIRST_ANSWER_P90"
    APPLICATION_FIRST_ANSWER_MEDIAN = "APPLICATION_FIRST_ANSWER_MEDIAN"
    APPLICATION_FIRST_ANSWER_P90 = "APPLICATION_FIRST_ANSWER_P90"


@dataclass(frozen=True)
class MeasureSpec:
    """How a measure is read from its family's rollup rows."""

    family: str
    kind: Kind
    temporal: Temporal
    column: str  # numerator column (or the samples column for SECONDS)
    denominator: str | None = None  # SHARE: the column divided by
    quantile: float | None = None  # SECONDS: which quantile of the samples
    doc: str = ""


_STOCK_NOTE = " A cell longer than a month shows its last month (months are not added)."
_FLOW_NOTE = " A cell longer than a month adds its months."

MEASURES: dict[Measure, MeasureSpec] = {
    Measure.CONSUMPTION_KWH: MeasureSpec(
        "charges",
        Kind.QUANTITY,
        Temporal.FLOW,
        "consumption",
        doc="Billed electricity consumption, kWh: the volume of charges of services measured in кВт·ч, by "
        "billing period." + _FLOW_NOTE,
    ),
    Measure.CHARGED: MeasureSpec(
        "charges",
        Kind.MONEY,
        Temporal.FLOW,
        "charged",
        doc="Charged, ₽: amount plus recalculations of every charge of the billing period." + _FLOW_NOTE,
    ),
    Measure.PAID: MeasureSpec(
        "balances",
        Kind.MONEY,
        Temporal.FLOW,
        "paid",
        doc="Paid, ₽: payments credited in the billing period as the billing import reports them (period "
        "balances), per supplier." + _FLOW_NOTE,
    ),
    Measure.DEBT: MeasureSpec(
        "balances",
        Kind.MONEY,
        Temporal.STOCK,
        "debt",
        doc="Debt at month end, ₽: the sum of positive closing balances (overpayments are not netted)."
        + _STOCK_NOTE,
    ),
    Measure.DEBTORS: MeasureSpec(
        "balances",
        Kind.COUNT,
        Temporal.STOCK,
        "debtors",
        doc="Accounts with a positive closing balance at month end (with the supplier when split by "
        "supplier)." + _STOCK_NOTE,
    ),
    Measure.ACCOUNTS: MeasureSpec(
        "balances",
        Kind.COUNT,
        Temporal.STOCK,
        "accounts",
        doc="Accounts billed in the month (that have a period balance, with the supplier when split by "
        "supplier)." + _STOCK_NOTE,
    ),
    Measure.ACTIVE_CABINETS: MeasureSpec(
        "sessions",
        Kind.COUNT,
        Temporal.STOCK,
        "active_cabinets",
        doc="Active cabinets: customers who logged in (started a login session) during the month."
        + _STOCK_NOTE,
    ),
    Measure.REGISTRATIONS: MeasureSpec(
        "registrations",
        Kind.COUNT,
        Temporal.FLOW,
        "registrations",
        doc="Customers who registered in the month. Has no dimension but PERIOD." + _FLOW_NOTE,
    ),
    Measure.READINGS_SUBMITTED: MeasureSpec(
        "readings",
        Kind.COUNT,
        Temporal.FLOW,
        "readings",
        doc="Meter readings submitted: one per meter zone value, resubmissions included, by the month "
        "they were submitted for." + _FLOW_NOTE,
    ),
    Measure.READINGS_ON_TIME_SHARE: MeasureSpec(
        "readings",
        Kind.SHARE,
        Temporal.FLOW,
        "readings_on_time",
        denominator="readings",
        doc="Share (0–1) of submitted readings that arrived inside their branch's reading window of that "
        "month (Moscow date)." + _FLOW_NOTE,
    ),
    Measure.PAYMENTS_COUNT: MeasureSpec(
        "payments",
        Kind.COUNT,
        Temporal.FLOW,
        "payments",
        doc="Payments created in the month (any status unless filtered; one payment for several accounts "
        "counts once per cell)." + _FLOW_NOTE,
    ),
    Measure.PAYMENTS_SUM: MeasureSpec(
        "payments",
        Kind.MONEY,
        Temporal.FLOW,
        "payments_sum",
        doc="Sum, ₽, of the allocations of payments created in the month (any status unless filtered: "
        "filter STATUS SUCCEEDED for money received)." + _FLOW_NOTE,
    ),
    Measure.E_RECEIPT_ADOPTION: MeasureSpec(
        "balances",
        Kind.SHARE,
        Temporal.STOCK,
        "e_receipts",
        denominator="accounts",
        doc="Share (0–1) of billed accounts with electronic receipts on for a linked user, as of the last "
        "refresh of that month's rollups." + _STOCK_NOTE,
    ),
    Measure.AUTOPAY_ADOPTION: MeasureSpec(
        "balances",
        Kind.SHARE,
        Temporal.STOCK,
        "autopay",
        denominator="accounts",
        doc="Share (0–1) of billed accounts with autopay enabled, as of the last refresh of that month's "
        "rollups." + _STOCK_NOTE,
    ),
    Measure.APPEALS: MeasureSpec(
        "appeals",
        Kind.COUNT,
        Temporal.FLOW,
        "appeals",
        doc="Appeals (обращения) created in the month." + _FLOW_NOTE,
    ),
    Measure.APPLICATIONS: MeasureSpec(
        "applications",
        Kind.COUNT,
        Temporal.FLOW,
        "applications",
        doc="Applications (заявления) created in the month." + _FLOW_NOTE,
    ),
    Measure.FIRST_ANSWER_MEDIAN: MeasureSpec(
        "appeals",
        Kind.SECONDS,
        Temporal.FLOW,
        "answer_seconds",
        quantile=0.5,
        doc="Median seconds from an appeal's creation to the first operator answer (its first ANSWER "
        "timeline event, else its answer time), over the answered appeals created in the cell's months "
        "(applications: APPLICATION_FIRST_ANSWER_MEDIAN).",
    ),
    Measure.FIRST_ANSWER_P90: MeasureSpec(
        "appeals",
        Kind.SECONDS,
        Temporal.FLOW,
        "answer_seconds",
        quantile=0.9,
        doc="90th percentile of the seconds from an appeal's creation to the first operator answer, over "
        "the answered appeals created in the cell's months (applications: APPLICATION_FIRST_ANSWER_P90).",
    ),
    Measure.APPLICATION_FIRST_ANSWER_MEDIAN: MeasureSpec(
        "applications",
        Kind.SECONDS,
        Temporal.FLOW,
        "answer_seconds",
        quantile=0.5,
        doc="Median seconds from an application's creation to the first operator answer (its first ANSWER "
        "timeline event, else its answer time), over the answered applications created in the cell's "
        "months.",
    ),
    Measure.APPLICATION_FIRST_ANSWER_P90: MeasureSpec(
        "applications",
        Kind.SECONDS,
        Temporal.FLOW,
        "answer_seconds",
        quantile=0.9,
        doc="90th percentile of the seconds from an application's creation to the first operator answer, "
        "over the answered applications created in the cell's months.",
    ),
}


def applicable(measure: Measure) -> tuple[Dimension, ...]:
    """The dimensions (besides PERIOD) a measure can be split and filtered by."""
    return FAMILIES[MEASURES[measure].family].dimensions


def measure_doc(measure: Measure) -> str:
    """The measure's description with the dimensions it accepts (GraphiQL shows it)."""
    dims = ", ".join(d.value for d in (*applicable(measure), Dimension.PERIOD))
    return f"{MEASURES[measure].doc} Dimensions: {dims}."
