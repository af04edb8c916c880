"""Inbound exchange (issue 18): a batch of billing files into the cabinet's tables, all or nothing.

One batch = the files of one call (``kabinet import``, ``POST /exchange/import``). Steps:

1. check each file's format line and header in Python (:mod:`services.exchange.formats`);
2. in ONE transaction: COPY each file's rows as they are into a temporary staging table of text columns
   (asyncpg ``copy_to_table`` … CSV on the raw connection: PostgreSQL parses the CSV), check every cell
   against its column's kind, the rules across a row, duplicates and references with set queries (a
   charge of an account neither in the batch nor imported before is an error), each reported as
   ``file:line: reason`` (up to 50), and refuse the batch on any;
   then merge set-based, entity by entity in :data:`formats.ENTITIES` order (:func:`merge_sql`): update
   the stored rows (same key) that differ, insert the new ones — so importing the same files again
   updates nothing and touches nobody;
3. declare the effects (:func:`declare_effects`, the one place): cache versions of the users of every
   changed account, once each, in bulk; everybody's when reference data (branches, suppliers, services,
   tariffs) changed; the "new receipt" notification once per account and user.

The caller owns the transaction: it commits on success and rolls back on :class:`ImportRefused`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services import analytics, events
from services.exchange.formats import ENTITIES, MAX_ERRORS, Entity, Head, Problems, read_head
from services.storage import Storage
from services.unit_of_work import Reference

DOCUMENT_KEY_PREFIX = "exchange/documents/"
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
IMPORT_LOCK = 0x6B62_6578  # advisory lock key: batches apply one after another
ANALYZE_ROWS = 10_000
"""A table the batch changed this many rows of is analyzed at once, in the batch's transaction: a new month
is then known to the planner of the statements that follow (superseding readings, the analytics rollups),
which otherwise estimate it at a few rows and pick nested loops; autovacuum would only do it after COMMIT,
and not at all when the month is under a tenth of the table."""


class ImportRefused(Exception):
    """The batch was refused; nothing of it was applied. ``problems.messages`` are ``file:line: reason``."""

    def __init__(self, problems: Problems) -> None:
        super().__init__("; ".join(problems.messages))
        self.problems = problems


@dataclass(frozen=True)
class Merge:
    """How one entity's staging rows become rows of its table."""

    table: str
    conflict: tuple[str, ...]
    values: dict[str, str]  # target column → SQL over the staging row ``s`` and the joined rows
    joins: str = ""
    refs: tuple[tuple[str, str], ...] = ()  # (staging column, referenced table with billing_id)
    insert_only: frozenset[str] = frozenset()  # set on insert, never compared nor updated
    on_change: str = ""  # extra assignments when a row changes
    account: str = "NULL::bigint"  # the changed row's account id (RETURNING)
    reference: bool = False  # reference data every user sees
    created: bool = True  # has created_at
    updated: bool = False  # has updated_at


def _plain(*names: str) -> dict[str, str]:
    return {name: f"s.{name}" for name in names}


_ACCOUNT = "JOIN accounts a ON a.billing_id = s.account"
_SERVICE = "JOIN services sv ON sv.billing_id = s.service"
_SUPPLIER = "JOIN suppliers sup ON sup.billing_id = s.supplier"

MERGES: dict[str, Merge] = {
    "suppliers": Merge(
        "suppliers",
        ("billing_id",),
        _plain(
            "billing_id",
            "inn",
            "kpp",
            "name",
            "short_name",
            "bank_name",
            "bic",
            "correspondent_account",
            "settlement_account",
            "address",
            "phone",
            "email",
        ),
        reference=True,
        updated=True,
    ),
    "branches": Merge(
        "branches",
        ("billing_id",),
        {
            **_plain("billing_id", "code", "name", "reading_window_start_day", "reading_window_end_day"),
            **_plain("address", "phone", "video_consultation_url"),
            "time_zone": "coalesce(s.time_zone, 'Europe/Moscow')",
            "position": "coalesce(s.position, 0)",
        },
        reference=True,
        updated=True,
    ),
    "services": Merge(
        "services",
        ("billing_id",),
        {
            **_plain("billing_id", "code", "name", "unit"),
            "supplier_id": "sup.id",
            "position": "coalesce(s.position, 0)",
        },
        joins=_SUPPLIER,
        refs=(("supplier", "suppliers"),),
        reference=True,
        created=False,
    ),
    "tariffs": Merge(
        "tariffs",
        ("billing_id",),
        {
            **_plain("billing_id", "zone", "consumer_group", "rate", "valid_from", "valid_to"),
            **_plain("document_title", "document_number", "document_date", "document_file_id"),
            "branch_id": "b.id",
            "service_id": "sv.id",
        },
        joins=f"JOIN branches b ON b.billing_id = s.branch {_SERVICE}",
        refs=(("branch", "branches"), ("service", "services")),
        reference=True,
    ),
    "accounts": Merge(
        "accounts",
        ("billing_id",),
        {
            **_plain("billing_id", "number", "owner_last_name", "owner_first_name", "owner_middle_name"),
            **_plain("address", "total_area", "living_area", "owners_count", "registered_count"),
            **_plain("residing_count", "rooms"),
            "branch_id": "b.id",
            "stove_type": "coalesce(s.stove_type, 'NONE')",
            "electric_heating": "coalesce(s.electric_heating, false)",
            "e_receipt_allowed": "coalesce(s.e_receipt_allowed, true)",
            "closed_at": "(s.closed_on::timestamp AT TIME ZONE b.time_zone)",
        },
        joins="JOIN branches b ON b.billing_id = s.branch",
        refs=(("branch", "branches"),),
        account="t.id",
        updated=True,
    ),
    "account_services": Merge(
        "account_services",
        ("account_id", "service_id"),
        {**_plain("zone_scheme", "started_on", "ended_on"), "account_id": "a.id", "service_id": "sv.id"},
        joins=f"{_ACCOUNT} {_SERVICE}",
        refs=(("account", "accounts"), ("service", "services")),
        account="t.account_id",
        created=False,
    ),
    "meters": Merge(
        "meters",
        ("billing_id",),
        {
            **_plain(
                "billing_id", "serial", "model", "zone_scheme", "digits", "location", "verification_due"
            ),
            **_plain("seal_number"),
            "decimals": "coalesce(s.decimals, 0)",
            "installed_at": "s.installed_on",
            "verified_at": "s.verified_on",
            "sealed_at": "s.sealed_on",
            "removed_at": "s.removed_on",
            "account_id": "a.id",
            "service_id": "sv.id",
        },
        joins=f"{_ACCOUNT} {_SERVICE}",
        refs=(("account", "accounts"), ("service", "services")),
        account="t.account_id",
        updated=True,
    ),
    "charges": Merge(
        "charges",
        ("billing_id",),
        {
            **_plain("billing_id", "period", "zone", "volume", "rate", "amount"),
            "recalculation": "coalesce(s.recalculation, 0)",
            "account_id": "a.id",
            "service_id": "sv.id",
            "supplier_id": "sup.id",
        },
        joins=f"{_ACCOUNT} {_SERVICE} {_SUPPLIER}",
        refs=(("account", "accounts"), ("service", "services"), ("supplier", "suppliers")),
        account="t.account_id",
    ),
    "balances": Merge(
        "period_balances",
        ("account_id", "period", "supplier_id"),
        {
            **_plain("period", "opening", "charged", "paid", "closing"),
            "account_id": "a.id",
            "supplier_id": "sup.id",
        },
        joins=f"{_ACCOUNT} {_SUPPLIER}",
        refs=(("account", "accounts"), ("supplier", "suppliers")),
        account="t.account_id",
    ),
    "payments": Merge(
        "external_payments",
        ("billing_id",),
        {
            **_plain("billing_id", "period", "paid_on", "amount", "channel"),
            "account_id": "a.id",
            "supplier_id": "sup.id",
        },
        joins=f"{_ACCOUNT} {_SUPPLIER}",
        refs=(("account", "accounts"), ("supplier", "suppliers")),
        account="t.account_id",
    ),
    "receipts": Merge(
        "receipts",
        ("account_id", "period"),
        {**_plain("period", "total_due", "due_date"), "account_id": "a.id"},
        joins=_ACCOUNT,
        refs=(("account", "accounts"),),
        on_change="file_id = NULL, generated_at = NULL",  # the cached PDF shows the old amounts
        account="t.account_id",
    ),
    "readings": Merge(
        "readings",
        ("billing_id",),
        {
            **_plain("billing_id", "zone", "period", "value", "accepted_at"),
            "meter_id": "m.id",
            "account_id": "m.account_id",
            "accepted": "true",
            "source": "coalesce(s.source, 'OPERATOR')",
            "submitted_at": "s.accepted_at",
        },
        joins="JOIN meters m ON m.billing_id = s.meter",
        refs=(("meter", "meters"),),
        insert_only=frozenset({"account_id", "source", "submitted_at"}),
        account="t.account_id",
        created=False,
    ),
}

# Billing acknowledges readings submitted in the cabinet (E2 shows them as accepted): the row the feed
# announced (``cabinet_reading_id``) is marked accepted and takes the billing id, when billing accepted
# the submitted value; a different value becomes a row of its own (the INSERT that follows).
ACKNOWLEDGE = """
UPDATE readings r SET accepted = true, accepted_at = s.accepted_at, billing_id = s.billing_id
FROM ({typed}) s JOIN meters m ON m.billing_id = s.meter
WHERE r.id = s.cabinet_reading_id AND r.meter_id = m.id AND r.zone = s.zone AND r.period = s.period
  AND r.value = s.value AND r.billing_id IS NULL
  AND NOT EXISTS (SELECT 1 FROM readings o WHERE o.billing_id = s.billing_id)
RETURNING r.account_id
"""

# E2 shows one current value per meter, zone and period: the reading billing accepted supersedes every
# other reading of its meter zone and period submitted no later than it was accepted (a cabinet value that
# billing corrected, an older accepted one). A reading submitted after billing accepted one is newer news
# and stays current; the cabinet's next submission supersedes the accepted one the same way (E3).
SUPERSEDE = """
WITH incoming AS (
  SELECT DISTINCT ON (r.meter_id, r.zone, r.period) r.id, r.meter_id, r.zone, r.period, r.submitted_at
  FROM readings r JOIN stg_readings s ON s.billing_id = r.billing_id
  WHERE r.superseded_by_id IS NULL
  ORDER BY r.meter_id, r.zone, r.period, r.submitted_at DESC, r.id DESC
)
UPDATE readings o SET superseded_by_id = i.id FROM incoming i
WHERE o.meter_id = i.meter_id AND o.zone = i.zone AND o.period = i.period AND o.id <> i.id
  AND o.superseded_by_id IS NULL AND o.submitted_at <= i.submitted_at
RETURNING o.account_id
"""


def merge_sql(entity: Entity, merge: Merge) -> tuple[str, str]:
    """The two statements that merge ``entity``'s staging rows into its table (``$1``: the batch's time).

    1. ``CREATE TEMP TABLE mrg_<entity>``: every incoming row cast, its references resolved, the id of the
       stored row with its key (one join on the table's unique key) and whether a compared column differs
       from it; analyzed, so the planner of the next statement knows how many rows are new or changed;
    2. one statement that ``UPDATE``s the stored rows that differ (re-checked against the row as it is
       then; an equal row is neither written nor locked, so importing the same files again changes
       nothing) and ``INSERT``s the new ones, and returns the changes per account.

    That is ``INSERT … ON CONFLICT DO UPDATE … WHERE differs`` without its speculative insertion (a
    unique-index probe and a token per row) and with one pass over the stored rows instead of two. Only
    the import writes these keys, one batch at a time (:data:`IMPORT_LOCK`), so no other transaction adds
    a key between the two statements; if one did, the unique constraint would refuse the batch."""
    columns = list(merge.values)
    compared = [name for name in columns if name not in merge.conflict and name not in merge.insert_only]
    sources = ", ".join(f"{merge.values[name]} AS {name}" for name in columns)
    stored_key = " AND ".join(f"t.{name} = {merge.values[name]}" for name in merge.conflict)
    stage = f"""
CREATE TEMP TABLE mrg_{entity.name} ON COMMIT DROP AS
SELECT {sources}, t.id AS stored_id,
       t.id IS NOT NULL AND ({", ".join(f"t.{name}" for name in compared)}) IS DISTINCT FROM
       ({", ".join(merge.values[name] for name in compared)}) AS differs
FROM ({typed(entity)}) s {merge.joins} LEFT JOIN {merge.table} t ON {stored_key}
"""
    assignments = [f"{name} = m.{name}" for name in compared]
    if merge.updated:
        assignments.append("updated_at = $1")
    if merge.on_change:
        assignments.append(merge.on_change)
    inserted = list(columns)
    if merge.created:
        inserted.append("created_at")
    if merge.updated:
        inserted.append("updated_at")
    stamps = ", $1" * (merge.created + merge.updated)
    apply = f"""
WITH updated AS (
  UPDATE {merge.table} AS t SET {", ".join(assignments)}
  FROM mrg_{entity.name} m
  WHERE m.differs AND t.id = m.stored_id
    AND ({", ".join(f"t.{name}" for name in compared)}) IS DISTINCT FROM
        ({", ".join(f"m.{name}" for name in compared)})
  RETURNING {merge.account} AS account_id, t.id, false AS inserted
), added AS (
  INSERT INTO {merge.table} AS t ({", ".join(inserted)})
  SELECT {", ".join(columns)}{stamps} FROM mrg_{entity.name} WHERE stored_id IS NULL
  RETURNING {merge.account} AS account_id, t.id, true AS inserted
)
SELECT account_id, count(*) AS changed, count(*) FILTER (WHERE inserted) AS inserted,
       max(id) FILTER (WHERE inserted) AS last_inserted
FROM (SELECT * FROM updated UNION ALL SELECT * FROM added) AS changed GROUP BY account_id
"""
    return stage, apply


@dataclass
class EntityReport:
    """What one entity of a batch did."""

    rows: int = 0  # rows in the files
    changed: int = 0  # rows inserted or updated (0 when the same file is imported again)
    inserted: int = 0
    superseded: int = 0  # readings: other readings of the same meter zone and period it replaced (E2)
    seconds: float = 0.0


@dataclass
class ImportReport:
    """The outcome of an applied batch."""

    entities: dict[str, EntityReport] = field(default_factory=dict)
    accounts: set[int] = field(default_factory=set)  # accounts whose data changed
    reference: bool = False  # branches, suppliers, services or tariffs changed
    new_receipts: dict[int, int] = field(default_factory=dict)  # account id → its newest inserted receipt id
    users: set[int] = field(default_factory=set)  # users whose cached answers were made stale
    notified: int = 0
    periods: list[dt.date] = field(default_factory=list)  # months whose analytics rollups were recomputed
    parse_seconds: float = 0.0
    analytics_seconds: float = 0.0

    @property
    def changed(self) -> int:
        """Rows inserted or updated in all."""
        return sum(report.changed for report in self.entities.values())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary (the HTTP endpoint's answer, the CLI's output)."""
        return {
            "entities": {
                name: {"rows": r.rows, "changed": r.changed, "inserted": r.inserted}
                | ({"superseded": r.superseded} if name == "readings" else {})
                for name, r in self.entities.items()
            },
            "accounts": len(self.accounts),
            "usersRefreshed": len(self.users),
            "notified": self.notified,
            "analyticsPeriods": [period.strftime("%Y-%m") for period in self.periods],
        }


def typed(entity: Entity) -> str:
    """The staging rows of ``entity`` with every cell cast to its type (after :func:`_check_cells`)."""
    casts = [f"{column.kind.cast.replace('{c}', column.name)} AS {column.name}" for column in entity.columns]
    if entity.name == "tariffs":
        casts.append("document_file_id")
    return f"SELECT seq, {', '.join(casts)} FROM stg_{entity.name}"


def read_batch(files: Mapping[str, bytes]) -> tuple[list[Head], Problems]:
    """The format line and header of the ``*.csv`` members of ``files``; other members are documents."""
    problems = Problems()
    heads = [
        head
        for name in sorted(files)
        if name.lower().endswith(".csv") and (head := read_head(name, files[name], problems)) is not None
    ]
    if not heads and not problems:
        problems.add("batch", None, "no exchange files (*.csv) in it")
    return heads, problems


_HELPERS = (
    "CREATE OR REPLACE FUNCTION pg_temp.exchange_date(value text) RETURNS date LANGUAGE plpgsql IMMUTABLE AS"
    " $$ BEGIN RETURN value::date; EXCEPTION WHEN others THEN RETURN NULL; END $$",
    "CREATE OR REPLACE FUNCTION pg_temp.exchange_time(value text) RETURNS timestamptz LANGUAGE plpgsql"
    " IMMUTABLE AS $$ BEGIN RETURN value::timestamptz; EXCEPTION WHEN others THEN RETURN NULL; END $$",
)


@dataclass
class _Lines:
    """Where the staged rows of one entity came from: ``seq`` ranges per file (line = seq - start + 3)."""

    starts: list[tuple[int, str]] = field(default_factory=list)  # (first seq, file name), ascending
    broken: bool = False  # some row spans lines (its line numbers would be off): find and refuse it

    def locate(self, seq: int) -> tuple[str, int]:
        """The file and line of staged row ``seq``."""
        start, name = max((item for item in self.starts if item[0] <= seq), key=lambda item: item[0])
        return name, seq - start + 3


async def import_batch(
    session: AsyncSession,
    files: Mapping[str, bytes],
    *,
    storage: Storage,
    now: dt.datetime,
    announce: bool = True,
) -> ImportReport:
    """Apply one batch in the caller's transaction; raises :class:`ImportRefused` (roll back) on any error.

    ``announce=False`` (a history load, e.g. ``kabinet demo``): the batch notifies nobody of its receipts
    (:func:`declare_effects`); the new-receipt job still announces those created in its window."""
    started = time.perf_counter()
    heads, problems = read_batch(files)
    if problems:
        raise ImportRefused(problems)
    report = ImportReport(parse_seconds=time.perf_counter() - started)
    # through the session first: that opens the transaction the raw connection then works in
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": IMPORT_LOCK})  # one at a time
    await session.execute(text("SET LOCAL kabinet.exchange = 'import'"))  # not echoed back by the feed
    await session.execute(text("SET LOCAL work_mem = '256MB'"))
    # No ``session_replication_role = replica`` (superuser only): the foreign-key checks and every trigger
    # run for any role, so what the tests (a superuser) exercise is what production's role does.
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    assert isinstance(raw, asyncpg.Connection)
    for statement in _HELPERS:
        await raw.execute(statement)
    by_entity: dict[str, list[Head]] = {}
    for head in heads:
        by_entity.setdefault(head.entity.name, []).append(head)
    for name, entity in ENTITIES.items():
        if name not in by_entity:
            continue
        step = time.perf_counter()
        lines = await _stage(raw, entity, by_entity[name], problems)
        if not problems:
            await _check_cells(raw, entity, lines, problems)
        if not problems and name == "tariffs":
            await _store_documents(raw, storage, files, lines, problems, now)
        if not problems:
            await _check_rows(raw, entity, MERGES[name], lines, problems)
        if problems:
            raise ImportRefused(problems)
        rows_in_files = await raw.fetchval(f"SELECT count(*) FROM stg_{name}")
        entity_report = report.entities[name] = EntityReport(rows=rows_in_files)
        if name == "readings":
            for row in await raw.fetch(ACKNOWLEDGE.format(typed=typed(entity))):
                report.accounts.add(row["account_id"])
                entity_report.changed += 1
        try:
            stage, apply = merge_sql(entity, MERGES[name])
            await raw.execute(stage)
            await raw.execute(f"ANALYZE mrg_{name}")
            rows = await raw.fetch(apply, *([now] if "$1" in apply else []))
        except asyncpg.PostgresError as error:  # a unique or check constraint the files break
            problems.add(", ".join(head.name for head in by_entity[name]), None, _database_reason(error))
            raise ImportRefused(problems) from None
        for row in rows:
            entity_report.changed += row["changed"]
            entity_report.inserted += row["inserted"]
            if row["account_id"] is not None:
                report.accounts.add(row["account_id"])
            if name == "receipts" and row["last_inserted"] is not None:
                report.new_receipts[row["account_id"]] = row["last_inserted"]
        if entity_report.changed >= ANALYZE_ROWS:  # before the statements that read what it wrote
            await raw.execute(f"ANALYZE {MERGES[name].table}")
        if name == "readings":
            for row in await raw.fetch(SUPERSEDE):
                report.accounts.add(row["account_id"])
                entity_report.superseded += 1
        if entity_report.changed and MERGES[name].reference:
            report.reference = True
        entity_report.seconds = time.perf_counter() - step
    report.periods = await _touched_periods(raw, report)
    if report.periods:  # in the batch's transaction: the rollups commit (or roll back) with the rows
        step = time.perf_counter()
        await analytics.refresh(session, periods=report.periods)
        report.analytics_seconds = time.perf_counter() - step
    await declare_effects(session, raw, report, now, announce=announce)
    return report


PERIOD_ENTITIES = ("charges", "balances", "readings")
"""Entities the analytics rollups are computed from (``services.analytics.refresh.SOURCES``)."""


async def _touched_periods(raw: asyncpg.Connection, report: ImportReport) -> list[dt.date]:
    """The months whose rollups the batch changed: the periods of the changed charges, balances and
    readings in the files; every month of an account that moved (its branch groups its facts) and every
    month when a service changed (its unit decides what counts as kWh)."""
    entities = report.entities
    services = entities.get("services")
    if services is not None and services.changed > services.inserted:
        rows = await raw.fetch(
            "SELECT period FROM charges UNION SELECT period FROM period_balances"
            " UNION SELECT period FROM readings"
        )
        return sorted(row["period"] for row in rows)
    periods: set[dt.date] = set()
    for name in PERIOD_ENTITIES:
        if name in entities and entities[name].changed:
            rows = await raw.fetch(f"SELECT DISTINCT period FROM mrg_{name}")  # cast once, by the merge
            periods.update(row["period"] for row in rows)
    moved = entities.get("accounts")
    if moved is not None and moved.changed > moved.inserted and report.accounts:
        rows = await raw.fetch(
            "SELECT period FROM charges WHERE account_id = ANY($1::bigint[])"
            " UNION SELECT period FROM period_balances WHERE account_id = ANY($1::bigint[])"
            " UNION SELECT period FROM readings WHERE account_id = ANY($1::bigint[])",
            sorted(report.accounts),
        )
        periods.update(row["period"] for row in rows)
    return sorted(periods)


def _database_reason(error: asyncpg.PostgresError) -> str:
    detail = getattr(error, "detail", None)
    constraint = getattr(error, "constraint_name", None)
    return f"refused by the database ({constraint or type(error).__name__}){': ' + detail if detail else ''}"


_COPY_LINE = re.compile(r"line (\d+)")


async def _stage(raw: asyncpg.Connection, entity: Entity, heads: list[Head], problems: Problems) -> _Lines:
    """COPY the rows of ``entity`` (from one or more files) as they are into ``stg_<entity>`` (text)."""
    columns = ", ".join(f"{column.name} text" for column in entity.columns)
    extra = ", document_file_id bigint" if entity.name == "tariffs" else ""
    await raw.execute(
        f"CREATE TEMP TABLE stg_{entity.name} (seq bigint GENERATED ALWAYS AS IDENTITY, {columns}{extra})"
        " ON COMMIT DROP"
    )
    lines = _Lines()
    for head in heads:
        first = await raw.fetchval(f"SELECT coalesce(max(seq), 0) + 1 FROM stg_{entity.name}")
        lines.starts.append((first, head.name))
        try:
            await raw.copy_to_table(
                f"stg_{entity.name}", source=io.BytesIO(head.body), columns=list(head.header), format="csv"
            )
        except asyncpg.PostgresError as error:  # a row with too few or too many cells, bad UTF-8, ...
            where = _COPY_LINE.search(str(error.as_dict().get("context", "")))
            problems.add(head.name, int(where[1]) + 2 if where else None, str(error).split("\n")[0])
            return lines
        staged = await raw.fetchval(f"SELECT count(*) FROM stg_{entity.name} WHERE seq >= $1", first)
        lines.broken |= staged != head.body.count(b"\n") + (
            0 if head.body.endswith(b"\n") or not head.body else 1
        )
    await raw.execute(f"ANALYZE stg_{entity.name}")
    return lines


async def _check_cells(raw: asyncpg.Connection, entity: Entity, lines: _Lines, problems: Problems) -> None:
    """Every cell against its column's kind, in one pass: the first reason of each bad cell, with its line."""
    cases = []
    for column in entity.columns:
        branches = [f"WHEN {column.name} IS NULL THEN NULL"]
        if column.required:
            branches[0] = f"WHEN {column.name} IS NULL THEN {_sql_text(column.name + ': required')}"
        if lines.broken:  # only then: the check costs a regex per cell
            broken = _sql_text(column.name + ": line break in a cell")
            branches.append(f"WHEN {column.name} ~ '[\\r\\n]' THEN {broken}")
        ok = column.kind.ok
        if ok is not None and ok not in ("true", "false"):
            branches.append(f"WHEN {ok.replace('{c}', column.name)} THEN NULL")
        for condition, reason in column.kind.checks:
            branches.append(
                f"WHEN {condition.replace('{c}', column.name)} THEN {_sql_text(column.name + ': ' + reason)}"
            )
        cases.append(f"CASE {' '.join(branches)} END")
    bad = await raw.fetch(
        f"SELECT seq, reason FROM (SELECT seq, unnest(ARRAY[{', '.join(cases)}]) AS reason"
        f" FROM stg_{entity.name}) cells WHERE reason IS NOT NULL ORDER BY seq LIMIT {MAX_ERRORS}"
    )
    for row in bad:
        problems.add(*lines.locate(row["seq"]), row["reason"])


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def _check_rows(
    raw: asyncpg.Connection, entity: Entity, merge: Merge, lines: _Lines, problems: Problems
) -> None:
    """Rules across the cells of a row, duplicate keys within the batch and references to rows that exist
    nowhere (neither earlier in this batch nor imported before), with their lines."""
    for condition, reason in entity.rules:
        for row in await raw.fetch(
            f"SELECT seq FROM ({typed(entity)}) s WHERE {condition} ORDER BY seq LIMIT {MAX_ERRORS}"
        ):
            problems.add(*lines.locate(row["seq"]), reason)
    identity = ", ".join(entity.identity)
    grouped = f"FROM stg_{entity.name} GROUP BY {identity} HAVING count(*) > 1"
    # a hashed count first; the sorted lines of each duplicate only when there is one
    duplicates = []
    if await raw.fetchval(f"SELECT EXISTS (SELECT 1 {grouped})"):
        duplicates = await raw.fetch(
            f"SELECT {identity}, array_agg(seq ORDER BY seq) AS seqs {grouped} LIMIT {MAX_ERRORS}"
        )
    for row in duplicates:
        first = "{}:{}".format(*lines.locate(row["seqs"][0]))
        for seq in row["seqs"][1:]:
            problems.add(*lines.locate(seq), f"the same {identity} as {first}")
    if merge.refs:  # one pass over the staged rows for all references
        joins = " ".join(
            f"LEFT JOIN {table} r{n} ON r{n}.billing_id = s.{column}"
            for n, (column, table) in enumerate(merge.refs)
        )
        flags = ", ".join(f"r{n}.id IS NULL AS missing{n}" for n in range(len(merge.refs)))
        values = ", ".join(f"s.{column} AS value{n}" for n, (column, _table) in enumerate(merge.refs))
        missing = " OR ".join(f"r{n}.id IS NULL" for n in range(len(merge.refs)))
        for row in await raw.fetch(
            f"SELECT s.seq, {flags}, {values} FROM stg_{entity.name} s {joins}"
            f" WHERE {missing} ORDER BY s.seq LIMIT {MAX_ERRORS}"
        ):
            for n, (column, table) in enumerate(merge.refs):
                if row[f"missing{n}"]:
                    problems.add(
                        *lines.locate(row["seq"]),
                        f"{column}: unknown {column} {row[f'value{n}']!r} (import {table} first)",
                    )


async def _store_documents(
    raw: asyncpg.Connection,
    storage: Storage,
    files: Mapping[str, bytes],
    lines: _Lines,
    problems: Problems,
    now: dt.datetime,
) -> None:
    """Store each tariff document the batch names (content-addressed, so a re-import adds nothing) and
    point the staging rows at their ``files`` row (C4 downloads it)."""
    wanted = await raw.fetch(
        "SELECT document_file AS path, min(seq) AS seq FROM stg_tariffs"
        " WHERE document_file IS NOT NULL GROUP BY document_file"
    )
    for row in wanted:
        data = files.get(row["path"])
        if data is None:
            problems.add(*lines.locate(row["seq"]), f"document_file: {row['path']} is not in the batch")
            continue
        if not data.startswith(b"%PDF-") or len(data) > MAX_DOCUMENT_BYTES:
            problems.add(row["path"], None, "not a PDF document (or larger than 20 MB)")
            continue
        digest = hashlib.sha256(data).hexdigest()
        key = f"{DOCUMENT_KEY_PREFIX}{digest}.pdf"
        file_id = await raw.fetchval("SELECT id FROM files WHERE storage_key = $1", key)
        if file_id is None:
            storage.save(key, data)
            file_id = await raw.fetchval(
                "INSERT INTO files (storage_key, original_filename, content_type, size, sha256, created_at)"
                " VALUES ($1, $2, 'application/pdf', $3, $4, $5) RETURNING id",
                key,
                row["path"].rsplit("/", 1)[-1],
                len(data),
                digest,
                now,
            )
        await raw.execute(
            "UPDATE stg_tariffs SET document_file_id = $1 WHERE document_file = $2", file_id, row["path"]
        )


async def declare_effects(
    session: AsyncSession,
    raw: asyncpg.Connection,
    report: ImportReport,
    now: dt.datetime,
    *,
    announce: bool = True,
) -> None:
    """THE place where an import declares what it touched (port this to the unit of work).

    - cache: every user linked to a changed account, once each, bumped in bulk after COMMIT
      (``events.touch``); everybody when reference data changed;
    - notifications: "new receipt" once per account and user, for the newest receipt the batch added;
      older receipts added by the same batch are marked as announced so the scheduler stays quiet;
      not with ``announce=False`` (history, not news).
    """
    accounts = sorted(report.accounts)
    if accounts:
        users = await raw.fetch(
            "SELECT DISTINCT user_id FROM user_accounts WHERE account_id = ANY($1::bigint[])", accounts
        )
        report.users = {row["user_id"] for row in users}
    # reference data (suppliers, branches, services, tariffs) shows in the answers of Reference.BRANCHES
    events.touch(session, users=report.users, reference=Reference.BRANCHES if report.reference else ())
    if announce and report.new_receipts:
        report.notified = await _announce_receipts(session, raw, report, now)


async def _announce_receipts(
    session: AsyncSession, raw: asyncpg.Connection, report: ImportReport, now: dt.datetime
) -> int:
    from services.scheduler import new_receipt_notice  # the scheduler's wording, one source

    accounts = sorted(report.new_receipts)
    claimed = await raw.fetch(
        """
        WITH fresh AS (
          SELECT r.id, r.account_id, ua.user_id FROM receipts r
          JOIN user_accounts ua ON ua.account_id = r.account_id
          JOIN users u ON u.id = ua.user_id AND u.deleted_at IS NULL
          WHERE r.account_id = ANY($1::bigint[]) AND r.created_at = $2
        )
        INSERT INTO scheduled_job_runs (job, key, ran_at)
        SELECT 'new-receipt', id || ':' || user_id, $2 FROM fresh
        ON CONFLICT (job, key) DO NOTHING
        RETURNING key
        """,
        accounts,
        now,
    )
    newest = set(report.new_receipts.values())
    pairs = [tuple(int(part) for part in row["key"].split(":")) for row in claimed]
    notified = 0
    for receipt_id, user_id in sorted(pair for pair in pairs if pair[0] in newest):
        row = await raw.fetchrow(
            "SELECT account_id, period, total_due FROM receipts WHERE id = $1", receipt_id
        )
        assert row is not None
        if await new_receipt_notice(session, user_id, row["account_id"], row["period"], row["total_due"]):
            notified += 1
    return notified
