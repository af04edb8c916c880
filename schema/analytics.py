"""The analytics API (issue 17): de-personalised aggregates for analysts, explored in GraphiQL.

Only ANALYST and ADMIN may call it. Answers come from the monthly rollups (``services.analytics``), never
from per-customer rows, and small cells are suppressed. The enum descriptions below say exactly what each
measure counts and which dimensions it accepts: they are the analysts' documentation.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Annotated, Any

import strawberry
from strawberry import relay

from resolvers import analytics as resolvers
from schema import rules
from schema.appeals import ApplicationKind
from schema.enums import model_enum
from schema.node import parse_global_id
from schema.readings import Zone
from schema.scalars import YearMonth
from services.analytics import catalog
from services.analytics import query as analytics
from services.analytics.catalog import Dimension, Granularity, Measure

model_enum(
    Measure,
    name="AnalyticsMeasure",
    description=(
        "What an analytics query counts. Money is `Decimal` roubles, consumption `Decimal` kWh, "
        "counts `Int`, "
        "shares (0–1) and durations (seconds) `Float`; each value's description names the dimensions it "
        "accepts (others are refused with `ANALYTICS_DIMENSION_NOT_APPLICABLE`)."
    ),
    values={m: catalog.measure_doc(m) for m in Measure},
)

model_enum(
    Dimension,
    name="AnalyticsDimension",
    description="A way to split analytics measures into rows.",
    values=catalog.DIMENSION_DOCS,
)

AnalyticsMeasure = Measure
"""The GraphQL enum AnalyticsMeasure is the catalogue's own (registered above)."""
AnalyticsDimension = Dimension
"""The GraphQL enum AnalyticsDimension is the catalogue's own (registered above)."""


@strawberry.enum(description="Length of a PERIOD cell.")
class AnalyticsGranularity(enum.Enum):
    MONTH = strawberry.enum_value("MONTH", description="Calendar months: `YYYY-MM`.")
    QUARTER = strawberry.enum_value("QUARTER", description="Quarters: `YYYY-Qn`.")
    YEAR = strawberry.enum_value("YEAR", description="Years: `YYYY`.")


@strawberry.enum(description="Which earlier range an analytics query compares with.")
class AnalyticsComparison(enum.Enum):
    PREVIOUS_PERIOD = strawberry.enum_value(
        "PREVIOUS_PERIOD", description="The range of the same length right before (e.g. the previous month)."
    )
    YEAR_EARLIER = strawberry.enum_value("YEAR_EARLIER", description="The same months one year earlier.")


@strawberry.enum(description="Why a cell has no value.")
class AnalyticsSuppression(enum.Enum):
    FEW_SUBJECTS = strawberry.enum_value(
        "FEW_SUBJECTS",
        description=f"The cell describes fewer than {analytics.MIN_SUBJECTS} accounts (or customers).",
    )
    COMPLEMENTARY = strawberry.enum_value(
        "COMPLEMENTARY",
        description="Hidden so that a suppressed neighbour cannot be recovered by subtracting from a total.",
    )


@strawberry.enum(description="A source channel (see the CHANNEL dimension).")
class AnalyticsChannel(enum.Enum):
    WEB = strawberry.enum_value("WEB", description="The web cabinet.")
    MOBILE = strawberry.enum_value("MOBILE", description="The mobile app.")
    OPERATOR = strawberry.enum_value("OPERATOR", description="Entered by staff.")
    METER_DATA = strawberry.enum_value("METER_DATA", description="Automatic meter reading (АСКУЭ).")


@strawberry.enum(description="A payment method (see the PAYMENT_METHOD dimension).")
class AnalyticsPaymentMethod(enum.Enum):
    CARD = strawberry.enum_value("CARD", description="Card page or a saved card (autopay).")
    SBP = strawberry.enum_value("SBP", description="Fast payment system (QR code).")


@strawberry.enum(
    description="A status (see the STATUS dimension): of appeals and applications, or of payments."
)
class AnalyticsStatus(enum.Enum):
    NEW = strawberry.enum_value("NEW", description="Appeal/application: not yet taken.")
    IN_PROGRESS = strawberry.enum_value("IN_PROGRESS", description="Appeal/application: being handled.")
    ANSWERED = strawberry.enum_value("ANSWERED", description="Appeal/application: answered.")
    CLOSED = strawberry.enum_value("CLOSED", description="Appeal/application: closed.")
    REJECTED = strawberry.enum_value("REJECTED", description="Appeal/application: rejected.")
    PENDING = strawberry.enum_value("PENDING", description="Payment: waiting for the gateway.")
    SUCCEEDED = strawberry.enum_value("SUCCEEDED", description="Payment: money received.")
    FAILED = strawberry.enum_value("FAILED", description="Payment: failed.")
    CANCELED = strawberry.enum_value("CANCELED", description="Payment: canceled.")
    REFUNDED = strawberry.enum_value("REFUNDED", description="Payment: refunded.")


@strawberry.input(description="Restrict an analytics query to one value of some dimensions (all optional).")
class AnalyticsFilters:
    branch_id: strawberry.ID | None = strawberry.field(default=None, description="Only this Branch.")
    supplier_id: strawberry.ID | None = strawberry.field(default=None, description="Only this Supplier.")
    service_id: strawberry.ID | None = strawberry.field(default=None, description="Only this Service.")
    zone: Zone | None = strawberry.field(default=None, description="Only this day zone.")
    channel: AnalyticsChannel | None = strawberry.field(default=None, description="Only this channel.")
    payment_method: AnalyticsPaymentMethod | None = strawberry.field(
        default=None, description="Only this payment method."
    )
    appeal_topic: str | None = rules.field(
        "Only appeals of this topic code.", rules.Rule(max_length=128), default=None
    )
    application_kind: ApplicationKind | None = strawberry.field(
        default=None, description="Only applications of this kind."
    )
    status: AnalyticsStatus | None = strawberry.field(default=None, description="Only this status.")


@strawberry.input(description="An analytics question: measures split by dimensions over a range of months.")
class AnalyticsQueryInput:
    measures: list[AnalyticsMeasure] = strawberry.field(
        description="What to count (one cell per measure in every row), at least one."
    )
    period_from: YearMonth = strawberry.field(description="First month of the range (`YYYY-MM`).")
    period_to: YearMonth = strawberry.field(
        description=f"Last month of the range (`YYYY-MM`); at most {analytics.MAX_MONTHS} months in all."
    )
    dimensions: list[AnalyticsDimension] = strawberry.field(
        default_factory=list, description="How to split into rows; none: one row of totals only."
    )
    period_granularity: AnalyticsGranularity = strawberry.field(
        default=AnalyticsGranularity.MONTH, description="Cell length when PERIOD is a dimension."
    )
    filters: AnalyticsFilters | None = strawberry.field(default=None, description="Restrictions.")
    compare_with: AnalyticsComparison | None = strawberry.field(
        default=None, description="Also answer for an earlier range: each cell's `comparison`."
    )


@strawberry.type(description="One dimension value of an analytics row.")
class AnalyticsKey:
    dimension: AnalyticsDimension = strawberry.field(description="Which dimension.")
    value: str | None = strawberry.field(
        description=(
            "The value: a global ID (branch, supplier, service), a period label or a code; null: none."
        )
    )
    label: str | None = strawberry.field(description="The value's name for people (branch name, topic…).")


@strawberry.type(description="One measure's value in one analytics row (or in the totals).")
class AnalyticsCell:
    measure: AnalyticsMeasure = strawberry.field(description="Which measure.")
    money: Decimal | None = strawberry.field(description="Roubles (money measures).")
    quantity: Decimal | None = strawberry.field(description="kWh (CONSUMPTION_KWH).")
    count: int | None = strawberry.field(description="Counts (accounts, payments, appeals, …).")
    share: float | None = strawberry.field(description="Shares 0–1 (on-time readings, adoption).")
    seconds: float | None = strawberry.field(description="Durations in seconds (time to first answer).")
    suppressed: bool = strawberry.field(description="True when the value is hidden for privacy.")
    suppression_reason: AnalyticsSuppression | None = strawberry.field(description="Why it is hidden.")
    comparison: AnalyticsCell | None = strawberry.field(
        description="The same cell in the comparison range (when `compareWith` was given)."
    )

    @classmethod
    def of(cls, cell: analytics.Cell | None, measure: Measure) -> AnalyticsCell:
        """Map a service cell (None: no data) to its GraphQL type."""
        kind = catalog.MEASURES[measure].kind
        value = cell.value if cell is not None else None
        reason = cell.suppression if cell is not None else None
        return cls(
            measure=measure,
            money=value if kind is catalog.Kind.MONEY else None,  # type: ignore[arg-type]
            quantity=value if kind is catalog.Kind.QUANTITY else None,  # type: ignore[arg-type]
            count=value if kind is catalog.Kind.COUNT else None,  # type: ignore[arg-type]
            share=value if kind is catalog.Kind.SHARE else None,  # type: ignore[arg-type]
            seconds=value if kind is catalog.Kind.SECONDS else None,  # type: ignore[arg-type]
            suppressed=reason is not None,
            suppression_reason=AnalyticsSuppression[reason.name] if reason is not None else None,
            comparison=(
                cls.of(cell.comparison, measure) if cell is not None and cell.comparison is not None else None
            ),
        )


@strawberry.type(description="One row of an analytics answer: its dimension values and a cell per measure.")
class AnalyticsRow:
    keys: list[AnalyticsKey] = strawberry.field(description="Dimension values, in the order asked.")
    cells: list[AnalyticsCell] = strawberry.field(description="One cell per measure, in the order asked.")


@strawberry.type(description="The answer to an analytics query.")
class AnalyticsResult:
    rows: list[AnalyticsRow] = strawberry.field(description="One row per combination of dimension values.")
    totals: list[AnalyticsCell] = strawberry.field(
        description="Each measure over the whole range and filters (suppressed like any cell)."
    )
    minimum_accounts: int = strawberry.field(
        description="Cells describing fewer accounts (customers) than this are suppressed."
    )
    period_from: YearMonth = strawberry.field(description="First month answered.")
    period_to: YearMonth = strawberry.field(description="Last month answered.")
    comparison_from: YearMonth | None = strawberry.field(description="First month of the comparison range.")
    comparison_to: YearMonth | None = strawberry.field(description="Last month of the comparison range.")


@strawberry.type(description="A short-lived signed link to an analytics query's answer as CSV.")
class AnalyticsExport:
    url: str = strawberry.field(
        description="GET it within the lifetime: CSV (UTF-8) in long form, one line per row and measure."
    )
    expires_at: dt.datetime = strawberry.field(description="When the link stops working.")


def _id(value: strawberry.ID | None, type_name: str) -> int | None:
    return None if value is None else int(parse_global_id(str(value), expected_type=type_name).node_id)


def to_query(data: AnalyticsQueryInput) -> analytics.AnalyticsQuery:
    """The service's query from the GraphQL input (global IDs decoded)."""
    filters: dict[Dimension, int | str] = {}
    given = data.filters
    if given is not None:
        for dimension, value in (
            (Dimension.BRANCH, _id(given.branch_id, "Branch")),
            (Dimension.SUPPLIER, _id(given.supplier_id, "Supplier")),
            (Dimension.SERVICE, _id(given.service_id, "Service")),
            (Dimension.ZONE, given.zone.value if given.zone is not None else None),
            (Dimension.CHANNEL, str(given.channel.value) if given.channel is not None else None),
            (Dimension.PAYMENT_METHOD, str(given.payment_method.value) if given.payment_method else None),
            (Dimension.APPEAL_TOPIC, given.appeal_topic),
            (Dimension.APPLICATION_KIND, given.application_kind.value if given.application_kind else None),
            (Dimension.STATUS, str(given.status.value) if given.status is not None else None),
        ):
            if value is not None:
                filters[dimension] = value
    return analytics.AnalyticsQuery(
        measures=tuple(dict.fromkeys(Measure(m.value) for m in data.measures)),
        dimensions=tuple(dict.fromkeys(Dimension(d.value) for d in data.dimensions)),
        first=data.period_from,
        last=data.period_to,
        granularity=Granularity(str(data.period_granularity.value)),
        filters=filters,
        compare=analytics.Comparison(str(data.compare_with.value)) if data.compare_with is not None else None,
    )


_NODE_TYPES = {Dimension.BRANCH: "Branch", Dimension.SUPPLIER: "Supplier", Dimension.SERVICE: "Service"}


def to_result(result: analytics.Result, names: dict[Dimension, dict[Any, str]]) -> AnalyticsResult:
    """Map the service's answer to the GraphQL types."""
    query = result.query
    offset = query.comparison_offset()

    def key(dimension: Dimension, value: Any) -> AnalyticsKey:
        node_type = _NODE_TYPES.get(dimension)
        shown = None if value is None else relay.to_base64(node_type, value) if node_type else str(value)
        label = names.get(dimension, {}).get(value, shown) if value is not None else None
        return AnalyticsKey(dimension=dimension, value=shown, label=label)

    return AnalyticsResult(
        rows=[
            AnalyticsRow(
                keys=[key(d, v) for d, v in zip(result.key_dimensions, values, strict=True)],
                cells=[AnalyticsCell.of(c, c.measure) for c in cells],
            )
            for values, cells in result.rows
        ],
        totals=[AnalyticsCell.of(c, c.measure) for c in result.totals],
        minimum_accounts=analytics.MIN_SUBJECTS,
        period_from=YearMonth(query.first),
        period_to=YearMonth(query.last),
        comparison_from=None if offset is None else YearMonth(_shift(query.first, -offset)),
        comparison_to=None if offset is None else YearMonth(_shift(query.last, -offset)),
    )


def _shift(month: dt.date, months: int) -> dt.date:
    from services.periods import add_months

    return add_months(month, months)


@strawberry.type
class AnalyticsQueries:
    """Queries of this module (merged into Query)."""

    @strawberry.field(
        description=(
            "ANALYST and ADMIN only (others: FORBIDDEN). Measures split by dimensions over a range of "
            "months, with totals and an optional comparison, answered from monthly rollups refreshed every "
            "15 minutes (current and previous month) and after billing imports. Cells describing fewer "
            f"than {analytics.MIN_SUBJECTS} accounts are suppressed, and so are complementary cells. Refused "
            "queries get an error with `extensions.code` (ANALYTICS_DIMENSION_NOT_APPLICABLE, "
            "ANALYTICS_FILTER_NOT_APPLICABLE, ANALYTICS_BAD_PERIOD_RANGE, ANALYTICS_NO_MEASURES, "
            "ANALYTICS_TOO_MANY_ROWS)."
        )
    )
    async def analytics(
        self,
        info: strawberry.Info,
        query: Annotated[AnalyticsQueryInput, strawberry.argument(description="The question.")],
    ) -> AnalyticsResult:
        result, names = await resolvers.run_analytics(info, to_query(query))
        return to_result(result, names)

    @strawberry.field(
        description=(
            "ANALYST and ADMIN only. The same query as CSV through a signed link valid for "
            f"{resolvers.EXPORT_TTL_MINUTES} minutes; the download streams however many rows there are "
            "(no row limit), suppressed exactly like `analytics`."
        )
    )
    async def analytics_export(
        self,
        info: strawberry.Info,
        query: Annotated[AnalyticsQueryInput, strawberry.argument(description="The question.")],
    ) -> AnalyticsExport:
        link = await resolvers.export_link(info, to_query(query))
        return AnalyticsExport(url=link.url, expires_at=link.expires_at)
