"""The exchange file formats (issue 18): one CSV file per entity, versioned, keyed by billing ids.

Every file starts with a format line, then a header, then one row per record::

    #kabinet-exchange/1 charges
    billing_id,account,period,service,supplier,zone,volume,rate,amount,recalculation
    C-2026-10-0001,RZN-11111111,2026-10,ELECTRICITY,S6234000011,DAY,120.000,6.5200,782.40,0.00

The entity comes from the format line, not the file name; the header names the columns in any order (all of
the entity's columns, no others). Empty cells are NULL. Parsing is pure Python (no database): a bad cell is
reported as ``file:line: reason`` and the whole batch is refused before anything is written. The full
description with an example of each file is ``docs/exchange.md``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

FORMAT = "kabinet-exchange"
VERSION = 1
MAX_ERRORS = 50
"""Errors reported per batch; the rest are counted."""


class Invalid(ValueError):
    """A cell that does not fit its column."""


@dataclass(frozen=True)
class Column:
    """One column of an entity: how to parse a cell and the staging table's SQL type."""

    name: str
    parse: Callable[[str], Any]
    sql: str
    required: bool = False


def text(limit: int, pattern: str | None = None) -> Callable[[str], str]:
    """A string of at most ``limit`` characters (matching ``pattern`` when given)."""
    compiled = re.compile(pattern) if pattern else None

    def parse(cell: str) -> str:
        if len(cell) > limit:
            raise Invalid(f"longer than {limit} characters")
        if compiled is not None and not compiled.fullmatch(cell):
            raise Invalid(f"does not match {pattern}")
        return cell

    return parse


def integer(low: int, high: int) -> Callable[[str], int]:
    """An integer in ``low..high``."""

    def parse(cell: str) -> int:
        try:
            value = int(cell)
        except ValueError:
            raise Invalid("not an integer") from None
        if not low <= value <= high:
            raise Invalid(f"not within {low}..{high}")
        return value

    return parse


def decimal(scale: int, *, signed: bool = False, digits: int = 14) -> Callable[[str], Decimal]:
    """A decimal number (dot as separator) with at most ``scale`` fraction digits; money is never a float."""
    limit = Decimal(10) ** (digits - scale)

    def parse(cell: str) -> Decimal:
        try:
            value = Decimal(cell)
        except InvalidOperation:
            raise Invalid("not a number") from None
        if not value.is_finite():
            raise Invalid("not a number")
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > scale:
            raise Invalid(f"more than {scale} digits after the point")
        if not signed and value < 0:
            raise Invalid("negative")
        if abs(value) >= limit:
            raise Invalid("too large")
        return value

    return parse


def date(cell: str) -> dt.date:
    """An ISO date, ``YYYY-MM-DD``."""
    try:
        return dt.date.fromisoformat(cell) if len(cell) == 10 else _bad_date()
    except ValueError:
        raise Invalid("not a date YYYY-MM-DD") from None


def _bad_date() -> dt.date:
    raise ValueError


def month(cell: str) -> dt.date:
    """A billing period, ``YYYY-MM``; stored as the first day of the month."""
    if len(cell) != 7 or cell[4] != "-":
        raise Invalid("not a period YYYY-MM")
    try:
        return dt.date(int(cell[:4]), int(cell[5:]), 1)
    except ValueError:
        raise Invalid("not a period YYYY-MM") from None


def timestamp(cell: str) -> dt.datetime:
    """An ISO 8601 time with its UTC offset, e.g. ``2026-11-20T10:15:00+03:00``."""
    try:
        value = dt.datetime.fromisoformat(cell)
    except ValueError:
        raise Invalid("not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise Invalid("time without a UTC offset")
    return value


def boolean(cell: str) -> bool:
    """``true`` or ``false``."""
    if cell == "true":
        return True
    if cell == "false":
        return False
    raise Invalid("not true/false")


def choice(*values: str) -> Callable[[str], str]:
    """One of ``values``."""
    allowed = frozenset(values)

    def parse(cell: str) -> str:
        if cell not in allowed:
            raise Invalid(f"not one of {', '.join(values)}")
        return cell

    return parse


BILLING_ID = text(64, r"[A-Za-z0-9][A-Za-z0-9._/:-]*")
ZONES = ("SINGLE", "DAY", "NIGHT", "PEAK", "HALF_PEAK")
SCHEMES = ("SINGLE", "DAY_NIGHT", "THREE_ZONE")


def key(name: str) -> Column:
    """A required billing id column (the row's own key or a reference to another entity's)."""
    return Column(name, BILLING_ID, "text", required=True)


def ref(name: str) -> Column:
    """An optional reference to another entity's billing id."""
    return Column(name, BILLING_ID, "text")


def col(name: str, parse: Callable[[str], Any], sql: str, *, required: bool = False) -> Column:
    """Shorthand for :class:`Column`."""
    return Column(name, parse, sql, required)


@dataclass(frozen=True)
class Entity:
    """One exchange file kind: its columns and the columns that identify a row."""

    name: str
    columns: tuple[Column, ...]
    identity: tuple[str, ...]
    check: Callable[[dict[str, Any]], str | None] | None = None  # a rule across cells of one row

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in canonical order."""
        return tuple(column.name for column in self.columns)


def _balance_adds_up(row: dict[str, Any]) -> str | None:
    if row["opening"] + row["charged"] - row["paid"] != row["closing"]:
        return "closing is not opening + charged - paid"
    return None


def _window(row: dict[str, Any]) -> str | None:
    if row["valid_to"] is not None and row["valid_to"] < row["valid_from"]:
        return "valid_to is before valid_from"
    return None


ENTITIES: dict[str, Entity] = {
    entity.name: entity
    for entity in (
        Entity(
            "suppliers",
            (
                key("billing_id"),
                col("inn", text(12, r"\d{10}|\d{12}"), "text", required=True),
                col("kpp", text(9, r"\d{9}"), "text"),
                col("name", text(255), "text", required=True),
                col("short_name", text(128), "text"),
                col("bank_name", text(255), "text", required=True),
                col("bic", text(9, r"\d{9}"), "text", required=True),
                col("correspondent_account", text(20, r"\d{20}"), "text", required=True),
                col("settlement_account", text(20, r"\d{20}"), "text", required=True),
                col("address", text(1000), "text"),
                col("phone", text(32), "text"),
                col("email", text(254), "text"),
            ),
            ("billing_id",),
        ),
        Entity(
            "branches",
            (
                key("billing_id"),
                col("code", text(32), "text", required=True),
                col("name", text(255), "text", required=True),
                col("time_zone", text(64, r"[A-Za-z_]+(/[A-Za-z_+-]+)*"), "text"),
                col("reading_window_start_day", integer(1, 31), "smallint", required=True),
                col("reading_window_end_day", integer(1, 31), "smallint", required=True),
                col("address", text(1000), "text"),
                col("phone", text(32), "text"),
                col("video_consultation_url", text(1000, r"https://\S+"), "text"),
                col("position", integer(0, 32767), "smallint"),
            ),
            ("billing_id",),
        ),
        Entity(
            "services",
            (
                key("billing_id"),
                col("code", text(32), "text", required=True),
                col("name", text(255), "text", required=True),
                col("unit", text(16), "text", required=True),
                key("supplier"),
                col("position", integer(0, 32767), "smallint"),
            ),
            ("billing_id",),
        ),
        Entity(
            "tariffs",
            (
                key("billing_id"),
                key("branch"),
                key("service"),
                col("zone", choice(*ZONES), "text", required=True),
                col("consumer_group", text(128), "text"),
                col("rate", decimal(4, digits=12), "numeric", required=True),
                col("valid_from", date, "date", required=True),
                col("valid_to", date, "date"),
                col("document_title", text(500), "text"),
                col("document_number", text(64), "text"),
                col("document_date", date, "date"),
                col("document_file", text(255, r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*\.pdf"), "text"),
            ),
            ("billing_id",),
            _window,
        ),
        Entity(
            "accounts",
            (
                key("billing_id"),
                key("branch"),
                col("number", text(20, r"[0-9A-Za-z-]+"), "text", required=True),
                col("owner_last_name", text(50), "text", required=True),
                col("owner_first_name", text(50), "text", required=True),
                col("owner_middle_name", text(50), "text"),
                col("address", text(1000), "text", required=True),
                col("total_area", decimal(2, digits=8), "numeric"),
                col("living_area", decimal(2, digits=8), "numeric"),
                col("owners_count", integer(0, 999), "smallint"),
                col("registered_count", integer(0, 999), "smallint"),
                col("residing_count", integer(0, 999), "smallint"),
                col("rooms", integer(0, 999), "smallint"),
                col("stove_type", choice("GAS", "ELECTRIC", "NONE"), "text"),
                col("electric_heating", boolean, "boolean"),
                col("e_receipt_allowed", boolean, "boolean"),
                col("closed_on", date, "date"),
            ),
            ("billing_id",),
        ),
        Entity(
            "account_services",
            (
                key("account"),
                key("service"),
                col("zone_scheme", choice(*SCHEMES), "text"),
                col("started_on", date, "date"),
                col("ended_on", date, "date"),
            ),
            ("account", "service"),
        ),
        Entity(
            "meters",
            (
                key("billing_id"),
                key("account"),
                key("service"),
                col("serial", text(64), "text", required=True),
                col("model", text(128), "text"),
                col("zone_scheme", choice(*SCHEMES), "text", required=True),
                col("digits", integer(1, 12), "smallint", required=True),
                col("decimals", integer(0, 3), "smallint"),
                col("location", text(255), "text"),
                col("installed_on", date, "date"),
                col("verified_on", date, "date"),
                col("verification_due", date, "date"),
                col("seal_number", text(64), "text"),
                col("sealed_on", date, "date"),
                col("removed_on", date, "date"),
            ),
            ("billing_id",),
        ),
        Entity(
            "charges",
            (
                key("billing_id"),
                key("account"),
                col("period", month, "date", required=True),
                key("service"),
                key("supplier"),
                col("zone", choice(*ZONES), "text"),
                col("volume", decimal(3), "numeric"),
                col("rate", decimal(4, digits=12), "numeric"),
                col("amount", decimal(2, signed=True), "numeric", required=True),
                col("recalculation", decimal(2, signed=True), "numeric"),
            ),
            ("billing_id",),
        ),
        Entity(
            "balances",
            (
                key("account"),
                key("supplier"),
                col("period", month, "date", required=True),
                col("opening", decimal(2, signed=True), "numeric", required=True),
                col("charged", decimal(2, signed=True), "numeric", required=True),
                col("paid", decimal(2, signed=True), "numeric", required=True),
                col("closing", decimal(2, signed=True), "numeric", required=True),
            ),
            ("account", "supplier", "period"),
            _balance_adds_up,
        ),
        Entity(
            "payments",
            (
                key("billing_id"),
                key("account"),
                key("supplier"),
                col("period", month, "date", required=True),
                col("paid_on", date, "date", required=True),
                col("amount", decimal(2), "numeric", required=True),
                col("channel", choice("BANK", "POST", "CASHIER", "OTHER"), "text", required=True),
            ),
            ("billing_id",),
        ),
        Entity(
            "receipts",
            (
                key("account"),
                col("period", month, "date", required=True),
                col("total_due", decimal(2, signed=True), "numeric", required=True),
                col("due_date", date, "date"),
            ),
            ("account", "period"),
        ),
        Entity(
            "readings",
            (
                key("billing_id"),
                key("meter"),
                col("zone", choice(*ZONES), "text", required=True),
                col("period", month, "date", required=True),
                col("value", decimal(3), "numeric", required=True),
                col("accepted_at", timestamp, "timestamptz", required=True),
                col("source", choice("AMI", "OPERATOR", "CABINET", "MOBILE"), "text"),
                col("cabinet_reading_id", integer(1, 2**62), "bigint"),
            ),
            ("billing_id",),
        ),
    )
}
"""Every entity, in the order a batch applies them (references point backwards)."""


@dataclass
class ParsedFile:
    """The valid rows of one file: ``(line, *values in canonical column order)``."""

    name: str
    entity: Entity
    records: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass
class Problems:
    """Errors found in a batch: ``file:line: reason``, capped at :data:`MAX_ERRORS`."""

    messages: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, file: str, line: int | None, reason: str) -> None:
        """Record one error."""
        self.count += 1
        if len(self.messages) < MAX_ERRORS:
            self.messages.append(f"{file}:{line}: {reason}" if line is not None else f"{file}: {reason}")

    def __bool__(self) -> bool:
        return self.count > 0


def parse_file(name: str, data: bytes, problems: Problems) -> ParsedFile | None:
    """Parse and validate one exchange file; errors go to ``problems`` (None: the file is unusable)."""
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        problems.add(name, None, "not UTF-8 text")
        return None
    lines = io.StringIO(content, newline="")
    first = lines.readline().rstrip("\r\n")
    match = re.fullmatch(rf"#{FORMAT}/(\d+) ([a-z_]+)", first)
    if match is None:
        problems.add(name, 1, f"the first line must be '#{FORMAT}/{VERSION} <entity>'")
        return None
    if int(match[1]) != VERSION:
        problems.add(name, 1, f"format version {match[1]} is not supported (this server reads {VERSION})")
        return None
    entity = ENTITIES.get(match[2])
    if entity is None:
        problems.add(name, 1, f"unknown entity {match[2]!r}; known: {', '.join(ENTITIES)}")
        return None
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        problems.add(name, 2, "the header line is missing")
        return None
    if sorted(header) != sorted(entity.names) or len(set(header)) != len(header):
        missing = sorted(set(entity.names) - set(header))
        extra = sorted(set(header) - set(entity.names))
        problems.add(name, 2, f"header: missing {missing or 'nothing'}, unknown {extra or 'nothing'}")
        return None
    positions = [header.index(column.name) for column in entity.columns]
    parsed = ParsedFile(name, entity)
    width = len(header)
    line = 2
    try:
        for cells in reader:
            line = reader.line_num + 1  # the format line was read before the reader started
            if len(cells) != width:
                problems.add(name, line, f"{len(cells)} cells, the header has {width}")
                continue
            values: list[Any] = [line]
            bad = False
            for column, position in zip(entity.columns, positions, strict=True):
                cell = cells[position]
                if cell == "":
                    if column.required:
                        problems.add(name, line, f"{column.name}: required")
                        bad = True
                    values.append(None)
                    continue
                try:
                    values.append(column.parse(cell))
                except Invalid as error:
                    problems.add(name, line, f"{column.name}: {error}")
                    bad = True
                    values.append(None)
            if bad:
                continue
            if entity.check is not None:
                reason = entity.check(dict(zip(entity.names, values[1:], strict=True)))
                if reason:
                    problems.add(name, line, reason)
                    continue
            parsed.records.append(tuple(values))
    except csv.Error as error:
        problems.add(name, line + 1, f"not valid CSV ({error})")
        return None
    return parsed


def render(entity: str, rows: Iterable[dict[str, Any]]) -> str:
    """One exchange file of ``entity`` with ``rows`` (dicts by column name; None → empty cell)."""
    spec = ENTITIES[entity]
    out = io.StringIO()
    out.write(f"#{FORMAT}/{VERSION} {entity}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(spec.names)
    for row in rows:
        writer.writerow([_cell(row.get(column.name), column) for column in spec.columns])
    return out.getvalue()


def _cell(value: Any, column: Column) -> str:
    if value is None:
        return ""
    if column.parse is month:
        return f"{value:%Y-%m}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)
