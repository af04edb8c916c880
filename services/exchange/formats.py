"""The exchange file formats (issue 18): one CSV file per entity, versioned, keyed by billing ids.

Every file starts with a format line, then a header, then one row per record (a record never spans
lines)::

    #kabinet-exchange/1 charges
    billing_id,account,period,service,supplier,zone,volume,rate,amount,recalculation
    C-2026-10-0001,RZN-11111111,2026-10,ELECTRICITY,S6234000011,DAY,120.000,6.5200,782.40,0.00

The entity comes from the format line, not the file name; the header names the columns in any order (all of
the entity's columns, no others). Empty cells are NULL. Python reads only those two lines: the rows go to
PostgreSQL as they are (COPY … CSV into text staging columns), where every cell is checked by the SQL of
its :class:`Kind` in one pass per file; a bad cell is reported as ``file:line: column: reason`` and the
whole batch is refused. The full description with an example of each file is ``docs/exchange.md``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

FORMAT = "kabinet-exchange"
VERSION = 1
MAX_ERRORS = 50
"""Errors reported per batch; the rest are counted."""


@dataclass(frozen=True)
class Kind:
    """A column type: SQL conditions (over the text cell ``{c}``) that make a cell bad, each with its
    reason, checked in order; and the cast of a good cell."""

    checks: tuple[tuple[str, str], ...]
    cast: str = "{c}"
    ok: str | None = None  # a cheap condition true for every good cell, tried first (one regex per cell)


@dataclass(frozen=True)
class Column:
    """One column of an entity; staged as text, checked and cast in SQL."""

    name: str
    kind: Kind
    required: bool = False


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def text(limit: int, pattern: str | None = None) -> Kind:
    """A string of at most ``limit`` characters (matching ``pattern`` when given)."""
    checks = [(f"length({{c}}) > {limit}", f"longer than {limit} characters")]
    if pattern is not None:
        checks.append((f"{{c}} !~ {_quote('^(' + pattern + ')$')}", f"does not match {pattern}"))
    return Kind(tuple(checks))


def integer(low: int, high: int) -> Kind:
    """An integer in ``low..high``."""
    return Kind(
        (
            ("{c} !~ '^-?[0-9]{1,18}$'", "not an integer"),
            (f"{{c}}::bigint NOT BETWEEN {low} AND {high}", f"not within {low}..{high}"),
        ),
        "{c}::bigint",
    )  # no fast path: the range needs the cast anyway


def decimal(scale: int, *, signed: bool = False, digits: int = 14) -> Kind:
    """A decimal number (dot as separator) with at most ``scale`` fraction digits; money is never a float."""
    whole = digits - scale
    return Kind(
        (
            ("{c} !~ '^-?[0-9]+([.][0-9]+)?$'", "not a number"),
            *(() if signed else (("{c} ~ '^-'", "negative"),)),
            (
                f"{{c}} !~ '^-?[0-9]{{1,{whole}}}([.][0-9]{{1,{scale}}})?$'",
                f"more than {whole} digits before the point or {scale} after it",
            ),
        ),
        "{c}::numeric",
        f"{{c}} ~ '^{'-?' if signed else ''}[0-9]{{1,{whole}}}([.][0-9]{{1,{scale}}})?$'",
    )


date = Kind(
    (
        (
            "{c} !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' OR pg_temp.exchange_date({c}) IS NULL",
            "not a date YYYY-MM-DD",
        ),
    ),
    "{c}::date",
)
"""An ISO date, ``YYYY-MM-DD``."""

month = Kind(
    (("{c} !~ '^[0-9]{4}-(0[1-9]|1[0-2])$'", "not a period YYYY-MM"),), "({c} || '-01')::date", "true"
)
"""A billing period, ``YYYY-MM``; stored as the first day of the month."""

timestamp = Kind(
    (
        (
            "{c} !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.]+(Z|[+-][0-9]{2}(:?[0-9]{2})?)$'"
            " OR pg_temp.exchange_time({c}) IS NULL",
            "not an ISO 8601 time with a UTC offset",
        ),
    ),
    "{c}::timestamptz",
)
"""An ISO 8601 time with its UTC offset, e.g. ``2026-11-20T10:15:00+03:00``."""

boolean = Kind((("{c} NOT IN ('true', 'false')", "not true/false"),), "{c}::boolean")
"""``true`` or ``false``."""


def choice(*values: str) -> Kind:
    """One of ``values``."""
    listed = ", ".join(_quote(value) for value in values)
    return Kind(((f"{{c}} NOT IN ({listed})", f"not one of {', '.join(values)}"),), ok="false")


BILLING_ID = text(64, r"[A-Za-z0-9][A-Za-z0-9._/:-]*")
ZONES = ("SINGLE", "DAY", "NIGHT", "PEAK", "HALF_PEAK")
SCHEMES = ("SINGLE", "DAY_NIGHT", "THREE_ZONE")


REFERENCE = Kind((("length({c}) > 64", "longer than 64 characters"),), ok="false")
"""A billing id naming a row of another entity: whether it exists is checked against that entity."""


def key(name: str) -> Column:
    """A required billing id: the row's own (``billing_id``) or a reference to another entity's row."""
    return Column(name, BILLING_ID if name == "billing_id" else REFERENCE, required=True)


def col(name: str, kind: Kind, _sql: str = "", *, required: bool = False) -> Column:
    """Shorthand for :class:`Column`."""
    return Column(name, kind, required)


@dataclass(frozen=True)
class Entity:
    """One exchange file kind: its columns and the columns that identify a row."""

    name: str
    columns: tuple[Column, ...]
    identity: tuple[str, ...]
    rules: tuple[tuple[str, str], ...] = ()  # (SQL over the typed row ``s`` true when bad, reason)

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in canonical order."""
        return tuple(column.name for column in self.columns)


_BALANCE = (("s.opening + s.charged - s.paid <> s.closing", "closing is not opening + charged - paid"),)
_WINDOW = (("s.valid_to < s.valid_from", "valid_to is before valid_from"),)


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
            _WINDOW,
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
            _BALANCE,
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


@dataclass(frozen=True)
class Head:
    """A file whose format line and header are good: its entity, its columns in file order and the rows."""

    name: str
    entity: Entity
    header: tuple[str, ...]
    body: bytes


def read_head(name: str, data: bytes, problems: Problems) -> Head | None:
    """Check the format line and the header of one file (the rows are checked in the database)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    first_end = data.find(b"\n")
    first = (data if first_end < 0 else data[:first_end]).rstrip(b"\r").decode("utf-8", "replace")
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
    rest = data[first_end + 1 :] if first_end >= 0 else b""
    second_end = rest.find(b"\n")
    line = (rest if second_end < 0 else rest[:second_end]).rstrip(b"\r")
    try:
        header = next(csv.reader([line.decode("utf-8")]), [])
    except (UnicodeDecodeError, csv.Error):
        header = []
    if sorted(header) != sorted(entity.names) or len(set(header)) != len(header):
        missing = sorted(set(entity.names) - set(header))
        extra = sorted(set(header) - set(entity.names))
        problems.add(name, 2, f"header: missing {missing or 'nothing'}, unknown {extra or 'nothing'}")
        return None
    return Head(name, entity, tuple(header), rest[second_end + 1 :] if second_end >= 0 else b"")


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
    if column.kind is month:
        return f"{value:%Y-%m}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)
