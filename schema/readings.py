"""Meters and readings (E1–E3, H2): meters, the submission form, history, submitting readings."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from decimal import Decimal
from typing import Annotated, Any

import strawberry
from strawberry import relay

from models import branches as branch_models
from models import meters as meter_models
from models import readings as models
from models import tariffs as tariff_models
from resolvers import readings as resolvers
from resolvers.branches import ServiceById, ServiceRow
from resolvers.context import Info
from schema.enums import model_enum
from schema.errors import error_code_enum, error_domain
from schema.node import as_node, backed_by
from schema.scalars import YearMonthScalar as YearMonth
from services import readings as service
from services.periods import month_start

ReadingErrorCode = error_code_enum(
    "ReadingErrorCode",
    "Why a meter-reading mutation (E3, E4) failed: the `code` of `ReadingError`.",
    "services.readings",
    "services.accounts",
    "services.notifications",
    "resolvers.readings",
)


@strawberry.interface(
    description=(
        "A problem with a meter-reading mutation (E3, E4), "
        "reported in its payload's `userErrors`. "
        "`code` (`ReadingErrorCode`) is stable for programs, `message` is the text to show the user "
        "(Russian), `field` is the path of the input it concerns."
    )
)
class ReadingError:
    """Common shape of this domain's user errors; specific ones implement it and carry more data."""

    code: str = strawberry.field(
        graphql_type=ReadingErrorCode,
        description="Stable machine-readable code, one of `ReadingErrorCode`.",
    )
    message: str = strawberry.field(description="Human-readable text to show the user, in Russian.")
    field: list[str] | None = strawberry.field(
        description='Path of the input field at fault, e.g. `["input", "phone"]`; null for the whole input.'
    )


@strawberry.type(description="A `ReadingError` with no data beyond code, message and field.")
class ReadingInputError(ReadingError):
    """The default implementation of :class:`ReadingError`."""


READING_ERRORS = error_domain(ReadingError, ReadingErrorCode, ReadingInputError)
user_error = READING_ERRORS.one
user_errors = READING_ERRORS.many


model_enum(
    tariff_models.Zone,
    name="Zone",
    description="A time-of-day zone of a meter register, reading, tariff or charge.",
    values={
        tariff_models.Zone.SINGLE: "Round the clock (a single-rate meter).",
        tariff_models.Zone.DAY: "Day zone of a two-zone meter.",
        tariff_models.Zone.NIGHT: "Night zone (two- and three-zone meters).",
        tariff_models.Zone.PEAK: "Peak zone of a three-zone meter.",
        tariff_models.Zone.HALF_PEAK: "Half-peak zone of a three-zone meter.",
    },
)
Zone = tariff_models.Zone

model_enum(
    meter_models.ZoneScheme,
    name="ZoneScheme",
    description="Which zones a meter has.",
    values={
        meter_models.ZoneScheme.SINGLE: "One zone: SINGLE.",
        meter_models.ZoneScheme.DAY_NIGHT: "Two zones: DAY and NIGHT.",
        meter_models.ZoneScheme.THREE_ZONE: "Three zones: PEAK, HALF_PEAK and NIGHT.",
    },
)
ZoneScheme = meter_models.ZoneScheme

model_enum(
    models.ReadingSource,
    name="ReadingSource",
    description="Where a reading came from.",
    values={
        models.ReadingSource.CABINET: "Submitted in the web cabinet.",
        models.ReadingSource.MOBILE: "Submitted in the mobile app.",
        models.ReadingSource.OPERATOR: "Entered by the company's staff.",
        models.ReadingSource.AMI: "Sent by the automatic meter reading system (АСКУЭ).",
    },
)
ReadingSource = models.ReadingSource


@strawberry.enum(description="The channel a customer submits readings through.")
class SubmissionChannel(enum.Enum):
    """Customer-facing reading sources."""

    CABINET = strawberry.enum_value("CABINET", description="The web cabinet.")
    MOBILE = strawberry.enum_value("MOBILE", description="The mobile app.")


def account_gid(account_id: int) -> strawberry.ID:
    """The global ID of an account (the type is defined by the accounts domain)."""
    return strawberry.ID(relay.to_base64("Account", account_id))


def meter_gid(meter_id: int) -> strawberry.ID:
    """The global ID of a meter."""
    return strawberry.ID(relay.to_base64("Meter", meter_id))


# ---------------------------------------------------------------- meters


@strawberry.type(description="A service a meter measures, e.g. electricity (E1 groups meters by it).")
class MeterService:
    """Backed by ``models.branches.Service`` rows."""

    is_type_of = backed_by(branch_models.Service, ServiceRow)  # plain rows from ServiceById (issue 21)

    code: str = strawberry.field(description="Stable code, e.g. `ELECTRICITY`.")
    name: str = strawberry.field(description="Name shown to customers, e.g. «Электроэнергия».")
    unit: str = strawberry.field(description="Unit of readings and consumption, e.g. кВт·ч.")


@strawberry.type(description="A meter (прибор учета) installed on an account (E1).")
class Meter(relay.Node):
    """Backed by ``models.meters.Meter`` rows."""

    is_type_of = backed_by(meter_models.Meter, resolvers.MeterRow)  # plain rows from MetersByAccountId

    id: relay.NodeID[int]
    serial: str = strawberry.field(description="Factory (serial) number.")
    model: str | None = strawberry.field(description="Type of the meter, e.g. «Меркурий 201.8».")
    zone_scheme: ZoneScheme = strawberry.field(description="Which zones (registers) the meter has.")
    digits: int = strawberry.field(description="Digits of the display before the decimal point (capacity).")
    decimals: int = strawberry.field(description="Digits after the decimal point a reading may have.")
    location: str | None = strawberry.field(description="Where it is installed, e.g. «лестничная площадка».")
    installed_at: dt.date | None = strawberry.field(description="Installation date.")
    verified_at: dt.date | None = strawberry.field(description="Date of the last verification (поверка).")
    verification_due: dt.date | None = strawberry.field(description="When the next verification is due.")
    seal_number: str | None = strawberry.field(description="Number of the seal (пломба).")
    sealed_at: dt.date | None = strawberry.field(description="When the seal was put on.")

    @strawberry.field(description="The meter's zones, in display order; a submission needs a value for each.")
    def zones(self, root: strawberry.Parent[meter_models.Meter]) -> list[Zone]:
        return list(service.zones_of(root.zone_scheme))

    @strawberry.field(description="The service the meter measures.")
    async def service(self, root: strawberry.Parent[meter_models.Meter], info: Info) -> MeterService:
        return await info.context.loader(ServiceById).load(root.service_id)

    @strawberry.field(
        description="The latest reading of every zone (any source, any period; replaced readings excluded)."
    )
    async def last_readings(
        self, root: strawberry.Parent[meter_models.Meter], info: Info
    ) -> list[MeterReading]:
        return await info.context.loader(resolvers.LastReadingsByMeterId).load(root.id)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Meter | None]:
        """Meters of accounts the caller may see."""
        return as_node(cls, await resolvers.meters_by_ids(info, [int(node_id) for node_id in node_ids]))


@strawberry.type(description="The meters of one service of an account.")
class MeterServiceGroup:
    """One group of E1."""

    service: MeterService = strawberry.field(description="The service.")
    meters: list[Meter] = strawberry.field(description="Its installed meters.")


@strawberry.type(description="E1: the installed meters of an account, grouped by service.")
class AccountMeters:
    """An explicit answer even when the account has no meters."""

    account_id: strawberry.ID = strawberry.field(description="Global ID of the account.")
    is_empty: bool = strawberry.field(description="True when no meter is installed on the account.")
    message: str | None = strawberry.field(description="The «no data» notice to show when `isEmpty`.")
    services: list[MeterServiceGroup] = strawberry.field(description="Meters grouped by service, in order.")


# ---------------------------------------------------------------- readings


@strawberry.type(description="A meter reading of one zone, as submitted or as accepted for billing (E2).")
class MeterReading(relay.Node):
    """Backed by ``models.readings.Reading`` rows; never changed except to record what happened later."""

    is_type_of = backed_by(models.Reading, resolvers.ReadingRow)  # plain rows from LastReadingsByMeterId

    id: relay.NodeID[int]
    zone: Zone = strawberry.field(description="Zone (register) of the meter.")
    period: YearMonth = strawberry.field(description="Month the reading belongs to.")
    value: Decimal = strawberry.field(description="The value shown by the meter.")
    source: ReadingSource = strawberry.field(description="Where the reading came from.")
    submitted_at: dt.datetime = strawberry.field(description="When it was submitted.")
    accepted: bool = strawberry.field(description="Accepted for billing (принято к расчету).")
    accepted_at: dt.datetime | None = strawberry.field(description="When it was accepted for billing.")
    flagged_for_review: bool = strawberry.field(
        description="Far above the usual consumption (or otherwise implausible): an operator checks it."
    )

    @strawberry.field(description="True when a later submission in the same window replaced this reading.")
    def superseded(self, root: strawberry.Parent[models.Reading]) -> bool:
        return root.superseded_by_id is not None

    @strawberry.field(description="The meter.")
    async def meter(self, root: strawberry.Parent[models.Reading], info: Info) -> Meter:
        return await info.context.loader(resolvers.MeterById).load(root.meter_id)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[MeterReading | None]:
        """Readings of accounts the caller may see."""
        return as_node(cls, await resolvers.readings_by_ids(info, [int(node_id) for node_id in node_ids]))


@strawberry.type(description="E2: the readings of one month.")
class ReadingHistoryMonth:
    """All readings of a month and those accepted for billing."""

    period: YearMonth = strawberry.field(description="The month.")
    readings: list[MeterReading] = strawberry.field(
        description="Every reading of the month from any source, replaced ones included (see `superseded`)."
    )

    @strawberry.field(description="The readings of the month accepted for billing.")
    def accepted(self) -> list[MeterReading]:
        return [reading for reading in self.readings if reading.accepted]


@strawberry.type(description="E2: readings history of an account, by month, newest first.")
class ReadingHistory:
    """The range follows the D8 rule."""

    from_: YearMonth = strawberry.field(name="from", description="First month shown.")
    to: YearMonth = strawberry.field(description="Last month shown.")
    months: list[ReadingHistoryMonth] = strawberry.field(
        description="Every month of the range, newest first."
    )


# ---------------------------------------------------------------- the form


@strawberry.type(description="The monthly window for submitting readings, in the branch's time zone (E3).")
class ReadingWindowStatus:
    """Whether readings are accepted today and when the next window is."""

    is_open: bool = strawberry.field(description="True when readings are accepted today.")
    today: dt.date = strawberry.field(description="Today in the branch's time zone.")
    time_zone: str = strawberry.field(description="The branch's IANA time zone.")
    start_day: int = strawberry.field(description="First day of the month readings are accepted.")
    end_day: int = strawberry.field(description="Last day of the month readings are accepted (inclusive).")
    period: YearMonth = strawberry.field(
        description="Month the readings submitted in the open (or, when closed, the next) window belong to."
    )
    opens_on: dt.date | None = strawberry.field(description="First day of the open window; null when closed.")
    closes_on: dt.date | None = strawberry.field(description="Last day of the open window; null when closed.")
    next_opens_on: dt.date = strawberry.field(description="First day of the next window.")
    next_closes_on: dt.date = strawberry.field(description="Last day of the next window.")
    message: str | None = strawberry.field(description="The notice to show when the window is closed.")

    @classmethod
    def of(cls, state: service.WindowState) -> ReadingWindowStatus:
        """From the service's window state."""
        current = state.current
        return cls(
            is_open=current is not None,
            today=state.today,
            time_zone=state.time_zone,
            start_day=state.start_day,
            end_day=state.end_day,
            period=(current or state.next).period,  # type: ignore[arg-type]
            opens_on=current.opens if current else None,
            closes_on=current.closes if current else None,
            next_opens_on=state.next.opens,
            next_closes_on=state.next.closes,
            message=None if current else service.WINDOW_CLOSED_MESSAGE,
        )


@strawberry.type(description="One zone of a meter in the submission form.")
class ReadingsFormZone:
    """The previous value and this window's submitted value of a zone."""

    zone: Zone = strawberry.field(description="The zone.")
    previous: Decimal | None = strawberry.field(
        description="The last value of an earlier month (последние переданные); null when there is none."
    )
    previous_period: YearMonth | None = strawberry.field(description="Month of the previous value.")
    current: Decimal | None = strawberry.field(
        description="The value already submitted in this window (shown as the current one); null if none."
    )
    current_submitted_at: dt.datetime | None = strawberry.field(description="When `current` was submitted.")

    @strawberry.field(description="Consumption of `current`: current − previous (null without both).")
    def consumption(self) -> Decimal | None:
        if self.current is None or self.previous is None:
            return None
        return self.current - self.previous


@strawberry.type(description="One meter in the submission form.")
class ReadingsFormMeter:
    """A meter with its zones."""

    meter: Meter = strawberry.field(description="The meter.")
    zones: list[ReadingsFormZone] = strawberry.field(description="Its zones; a submission needs every one.")


@strawberry.type(description="E3: everything the «Передать показания» form of an account needs.")
class ReadingsForm:
    """The window and, per meter zone, the previous and the already submitted values."""

    account_id: strawberry.ID = strawberry.field(description="Global ID of the account.")
    account_number: str = strawberry.field(description="Number of the account (лицевой счет).")
    address: str = strawberry.field(description="Address of the account.")
    window: ReadingWindowStatus = strawberry.field(description="The reading window of the account's branch.")
    meters: list[ReadingsFormMeter] = strawberry.field(description="Installed meters; empty when none.")

    @classmethod
    def of(cls, form: service.ReadingsForm) -> ReadingsForm:
        """From the service's form."""
        return cls(
            account_id=account_gid(form.account.id),
            account_number=form.account.number,
            address=form.account.address,
            window=ReadingWindowStatus.of(form.window),
            meters=[
                ReadingsFormMeter(
                    meter=row.meter,  # type: ignore[arg-type]
                    zones=[
                        ReadingsFormZone(
                            zone=zone.zone,
                            previous=zone.previous.value if zone.previous else None,
                            previous_period=zone.previous.period if zone.previous else None,  # type: ignore[arg-type]
                            current=zone.current.value if zone.current else None,
                            current_submitted_at=zone.current.submitted_at if zone.current else None,
                        )
                        for zone in row.zones
                    ],
                )
                for row in form.meters
            ],
        )


@strawberry.type(description="H2: readings for all linked accounts at once.")
class ReadingsForAllAccounts:
    """Available only with more than one linked account; lists accounts whose window is open today."""

    available: bool = strawberry.field(description="True when more than one account is linked.")
    message: str | None = strawberry.field(
        description="The notice to show when no linked account accepts readings today."
    )
    accounts: list[ReadingsForm] = strawberry.field(description="Forms of the accounts whose window is open.")


# ---------------------------------------------------------------- submission


@strawberry.type(description="One zone's value stored by a submission, with its consumption.")
class SubmittedReading:
    """From the submission's recorded details."""

    meter_id: strawberry.Private[int]
    reading_id: strawberry.Private[int]
    zone: Zone = strawberry.field(description="The zone.")
    value: Decimal = strawberry.field(description="The value submitted.")
    previous: Decimal | None = strawberry.field(description="The previous value it was compared with.")
    consumption: Decimal | None = strawberry.field(description="Consumption: value − previous.")
    flagged_for_review: bool = strawberry.field(
        description="Far above the usual consumption: accepted, but an operator will check it."
    )
    replaced_earlier: bool = strawberry.field(
        description="True when it replaced a value submitted earlier in the same window."
    )

    @strawberry.field(description="The meter.")
    async def meter(self, info: Info) -> Meter:
        return await info.context.loader(resolvers.MeterById).load(self.meter_id)

    @strawberry.field(description="The stored reading.")
    async def reading(self, info: Info) -> MeterReading:
        return await info.context.loader(resolvers.ReadingById).load(self.reading_id)


def _decimal(value: str | None) -> Decimal | None:
    return Decimal(value) if value is not None else None


@strawberry.type(description="One accepted submission of readings of an account (E3).")
class ReadingSubmission(relay.Node):
    """Backed by ``models.readings.ReadingSubmission`` rows."""

    is_type_of = backed_by(models.ReadingSubmission)

    id: relay.NodeID[int]
    period: YearMonth = strawberry.field(description="Month the readings belong to.")
    source: ReadingSource = strawberry.field(description="Where it was submitted.")

    @strawberry.field(description="Global ID of the account.")
    def account_id(self, root: strawberry.Parent[models.ReadingSubmission]) -> strawberry.ID:
        return account_gid(root.account_id)

    @strawberry.field(description="When it was submitted.")
    def submitted_at(self, root: strawberry.Parent[models.ReadingSubmission]) -> dt.datetime:
        return root.created_at

    @strawberry.field(description="Every zone value stored, with consumption.")
    def readings(self, root: strawberry.Parent[models.ReadingSubmission]) -> list[SubmittedReading]:
        return [
            SubmittedReading(
                meter_id=item["meterId"],
                reading_id=item["readingId"],
                zone=tariff_models.Zone(item["zone"]),
                value=Decimal(item["value"]),
                previous=_decimal(item["previous"]),
                consumption=_decimal(item["consumption"]),
                flagged_for_review=item["flaggedForReview"],
                replaced_earlier=item["replaced"],
            )
            for item in (root.details or {}).get("readings", [])
        ]

    @strawberry.field(description="True when any value is flagged for review.")
    def flagged_for_review(self, root: strawberry.Parent[models.ReadingSubmission]) -> bool:
        return any(item["flaggedForReview"] for item in (root.details or {}).get("readings", []))

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[ReadingSubmission | None]:
        """Submissions of accounts the caller may see."""
        return as_node(cls, await resolvers.submissions_by_ids(info, [int(node_id) for node_id in node_ids]))


# ---------------------------------------------------------------- errors


@strawberry.type(description="E3: today is outside the monthly window; carries the next window's dates.")
class ReadingWindowClosedError(ReadingError):
    """READING_WINDOW_CLOSED."""

    next_opens_on: dt.date = strawberry.field(description="First day of the next window.")
    next_closes_on: dt.date = strawberry.field(description="Last day of the next window.")


@strawberry.type(
    description="E3: a value below the previous one; carries the meter, zone and previous value."
)
class ReadingBelowPreviousError(ReadingError):
    """READING_BELOW_PREVIOUS."""

    meter_id: strawberry.ID = strawberry.field(description="Global ID of the meter.")
    zone: Zone = strawberry.field(description="The zone.")
    previous: Decimal = strawberry.field(description="The previous value the new one may not be below.")


@strawberry.type(description="E3: a value that does not fit the meter's display (digits and decimals).")
class ReadingDoesNotFitMeterError(ReadingError):
    """READING_DOES_NOT_FIT_METER."""

    meter_id: strawberry.ID = strawberry.field(description="Global ID of the meter.")
    zone: Zone = strawberry.field(description="The zone.")
    digits: int = strawberry.field(description="Digits before the decimal point the meter shows.")
    decimals: int = strawberry.field(description="Digits after the decimal point the meter shows.")


@strawberry.type(description="E3: some zones of a meter have no value; every zone is required.")
class ReadingZonesMissingError(ReadingError):
    """READING_ZONES_MISSING."""

    meter_id: strawberry.ID = strawberry.field(description="Global ID of the meter.")
    missing_zones: list[Zone] = strawberry.field(description="The zones without a value.")


@READING_ERRORS.register(service.ReadingWindowClosed)
def _window_closed(error: Any, code: Any) -> ReadingError:
    return ReadingWindowClosedError(
        code=code,
        message=error.text,
        field=error.field,
        next_opens_on=error.data["next_opens"],
        next_closes_on=error.data["next_closes"],
    )


@READING_ERRORS.register(service.ReadingBelowPrevious)
def _below_previous(error: Any, code: Any) -> ReadingError:
    return ReadingBelowPreviousError(
        code=code,
        message=error.text,
        field=error.field,
        meter_id=meter_gid(error.data["meter_id"]),
        zone=error.data["zone"],
        previous=error.data["previous"],
    )


@READING_ERRORS.register(service.ReadingOverflow)
def _overflow(error: Any, code: Any) -> ReadingError:
    return ReadingDoesNotFitMeterError(
        code=code,
        message=error.text,
        field=error.field,
        meter_id=meter_gid(error.data["meter_id"]),
        zone=error.data["zone"],
        digits=error.data["digits"],
        decimals=error.data["decimals"],
    )


@READING_ERRORS.register(service.ReadingZonesMissing)
def _zones_missing(error: Any, code: Any) -> ReadingError:
    return ReadingZonesMissingError(
        code=code,
        message=error.text,
        field=error.field,
        meter_id=meter_gid(error.data["meter_id"]),
        missing_zones=list(error.data["zones"]),
    )


ERROR_TYPES: list[type] = [
    ReadingWindowClosedError,
    ReadingBelowPreviousError,
    ReadingDoesNotFitMeterError,
    ReadingZonesMissingError,
]
"""This domain's concrete error types (listed in the schema by ``schema.errors.error_types``)."""


# ---------------------------------------------------------------- inputs and payloads


@strawberry.input(description="The value of one zone of a meter.")
class ZoneReadingInput:
    """One field «Текущие показания»."""

    zone: Zone = strawberry.field(description="The zone (see `Meter.zones`).")
    value: Decimal = strawberry.field(description='The value shown by the meter, e.g. "12345" or "12345.6".')


@strawberry.input(description="The values of every zone of one meter.")
class MeterReadingsInput:
    """One meter row of the form."""

    meter_id: strawberry.ID = strawberry.field(description="Global ID of the meter.")
    values: list[ZoneReadingInput] = strawberry.field(
        description="One value per zone; all zones are required."
    )


@strawberry.input(description="E3: readings of an account's meters.")
class SubmitReadingsInput:
    """Values for the meters of one account."""

    account_id: strawberry.ID = strawberry.field(description="Global ID of the account.")
    meters: list[MeterReadingsInput] = strawberry.field(
        description="Meters with the values of all their zones."
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="A client-chosen key (≤128 chars): a retry with it returns the first result.",
    )
    source: SubmissionChannel = strawberry.field(
        default=SubmissionChannel.CABINET, description="The channel used: web cabinet or mobile app."
    )


@strawberry.type(description="Result of `submitReadings`.")
class SubmitReadingsPayload:
    """The stored submission, or why nothing was stored."""

    submission: ReadingSubmission | None = strawberry.field(
        description="The stored submission; null on errors."
    )
    user_errors: list[ReadingError] = strawberry.field(description="Problems; empty on success.")


@strawberry.input(description="H2: readings of one account among several.")
class AccountReadingsInput:
    """Values for the meters of one account."""

    account_id: strawberry.ID = strawberry.field(description="Global ID of the account.")
    meters: list[MeterReadingsInput] = strawberry.field(
        description="Meters with the values of all their zones."
    )


@strawberry.input(description="H2: readings of several linked accounts at once.")
class SubmitReadingsForAllAccountsInput:
    """Each account succeeds or fails on its own."""

    accounts: list[AccountReadingsInput] = strawberry.field(description="The accounts and their values.")
    idempotency_key: str | None = strawberry.field(
        default=None, description="A client-chosen key: a retry returns the first result of each account."
    )
    source: SubmissionChannel = strawberry.field(
        default=SubmissionChannel.CABINET, description="The channel used: web cabinet or mobile app."
    )


@strawberry.type(description="H2: the outcome for one account.")
class AccountReadingsResult:
    """Success with the submission, or the account's errors."""

    account_id: strawberry.ID = strawberry.field(description="Global ID of the account, as given.")
    ok: bool = strawberry.field(description="True when this account's readings were stored.")
    submission: ReadingSubmission | None = strawberry.field(
        description="The stored submission; null on errors."
    )
    user_errors: list[ReadingError] = strawberry.field(
        description="This account's problems; empty on success."
    )


@strawberry.type(description="Result of `submitReadingsForAllAccounts`.")
class SubmitReadingsForAllAccountsPayload:
    """Per-account results, in input order."""

    results: list[AccountReadingsResult] = strawberry.field(description="One result per account given.")
    user_errors: list[ReadingError] = strawberry.field(description="Problems with the request as a whole.")


def _result(result: resolvers.SubmitResult) -> AccountReadingsResult:
    return AccountReadingsResult(
        account_id=strawberry.ID(str(result.account_id)),
        ok=result.submission is not None,
        submission=result.submission,  # type: ignore[arg-type]
        user_errors=user_errors(result.errors),
    )


# ---------------------------------------------------------------- root fields


@strawberry.type
class ReadingQueries:
    """Queries of this module (merged into Query)."""

    @strawberry.field(
        description=(
            "E1: installed meters of an account grouped by service; null when the account is not yours."
        )
    )
    async def meters(
        self,
        info: Info,
        account_id: Annotated[strawberry.ID, strawberry.argument(description="Global ID of the account.")],
    ) -> AccountMeters | None:
        found = await resolvers.account_meters(info, account_id)
        if found is None:
            return None
        groups: dict[int, MeterServiceGroup] = {}
        for meter in found.meters:
            group = groups.get(meter.service_id)
            if group is None:
                group = groups[meter.service_id] = MeterServiceGroup(
                    service=found.services[meter.service_id],
                    meters=[],
                )
            group.meters.append(meter)  # type: ignore[arg-type]
        return AccountMeters(
            account_id=account_gid(found.account_id),
            is_empty=not found.meters,
            message=service.NO_METERS_MESSAGE if not found.meters else None,
            services=list(groups.values()),
        )

    @strawberry.field(
        description=(
            "E3: what the «Передать показания» form needs: the window, and per meter zone the previous value "
            "and the value already submitted in this window. Null when the account is not yours."
        )
    )
    async def readings_form(
        self,
        info: Info,
        account_id: Annotated[strawberry.ID, strawberry.argument(description="Global ID of the account.")],
    ) -> ReadingsForm | None:
        form = await resolvers.readings_form(info, account_id)
        return ReadingsForm.of(form) if form is not None else None

    @strawberry.field(
        description=(
            "E2: every reading of the account's meters from any source, and which were accepted for billing, "
            "by month. D8: from the month before the current one back to at most 3 years (default: the last "
            "12 months). Null when the account is not yours."
        )
    )
    async def reading_history(
        self,
        info: Info,
        account_id: Annotated[strawberry.ID, strawberry.argument(description="Global ID of the account.")],
        from_: Annotated[
            YearMonth | None, strawberry.argument(name="from", description="First month.")
        ] = None,
        to: Annotated[YearMonth | None, strawberry.argument(description="Last month.")] = None,
    ) -> ReadingHistory | None:
        found = await resolvers.reading_history(info, account_id, from_, to)
        if found is None:
            return None
        by_month: dict[dt.date, list[Any]] = {month: [] for month in found.range.months}
        for row in found.rows:
            by_month.setdefault(month_start(row.period), []).append(row)
        months = [
            ReadingHistoryMonth(period=month, readings=by_month[month])  # type: ignore[arg-type]
            for month in sorted(by_month, reverse=True)
        ]
        return ReadingHistory(from_=found.range.start, to=found.range.end, months=months)  # type: ignore[arg-type]

    @strawberry.field(
        description=(
            "H2: the submission forms of your linked accounts whose window is open today; available only "
            "with more than one linked account."
        )
    )
    async def readings_for_all_accounts(self, info: Info) -> ReadingsForAllAccounts:
        found = await resolvers.readings_for_all_accounts(info)
        available = found.linked > 1
        return ReadingsForAllAccounts(
            available=available,
            message=service.WINDOW_CLOSED_MESSAGE if available and not found.forms else None,
            accounts=[ReadingsForm.of(form) for form in found.forms],
        )


@strawberry.type
class ReadingMutations:
    """Mutations of this module (merged into Mutation)."""

    @strawberry.mutation(
        description=(
            "E3: submit the values of all zones of an account's meters inside the monthly window. A value "
            "below the previous one is refused; a resubmission in the same window replaces the earlier one."
        )
    )
    async def submit_readings(
        self,
        info: Info,
        input: Annotated[SubmitReadingsInput, strawberry.argument(description="The account and its values.")],
    ) -> SubmitReadingsPayload:
        result = await resolvers.submit_readings(info, input)
        return SubmitReadingsPayload(
            submission=result.submission,  # type: ignore[arg-type]
            user_errors=user_errors(result.errors),
        )

    @strawberry.mutation(
        description=(
            "H2: submit readings of several linked accounts; each account succeeds or fails on its own."
        )
    )
    async def submit_readings_for_all_accounts(
        self,
        info: Info,
        input: Annotated[
            SubmitReadingsForAllAccountsInput,
            strawberry.argument(description="The accounts and their values."),
        ],
    ) -> SubmitReadingsForAllAccountsPayload:
        results, errors = await resolvers.submit_readings_for_all_accounts(info, input)
        return SubmitReadingsForAllAccountsPayload(
            results=[_result(r) for r in results], user_errors=user_errors(errors)
        )
