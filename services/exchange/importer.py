"""Inbound exchange (issue 18): a batch of billing files into the cabinet's tables, all or nothing.

One batch = the files of one call (``kabinet import``, ``POST /exchange/import``). Steps:

1. parse and validate every file in Python (:mod:`services.exchange.formats`); any bad cell refuses the
   batch before the database is touched, with ``file:line: reason``;
2. in ONE transaction: COPY each entity's rows into a temporary staging table (asyncpg
   ``copy_records_to_table`` on the raw connection), check duplicates and references with set queries
   (a charge of an account neither in the batch nor imported before is an error, reported with its line),
   then merge set-based, entity by entity in :data:`formats.ENTITIES` order, with
   ``INSERT … ON CONFLICT (billing id) DO UPDATE … WHERE the row differs`` — so importing the same files
   again updates nothing and touches nobody;
3. declare the effects (:func:`declare_effects`, the one place): cache versions of the users of every
   changed account, once each, in bulk; everybody's when reference data (branches, suppliers, services,
   tariffs) changed; the "new receipt" notification once per account and user.

The caller owns the transaction: it commits on success and rolls back on :class:`ImportRefused`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services import events
from services.exchange.formats import ENTITIES, Entity, ParsedFile, Problems, parse_file
from services.storage import Storage

DOCUMENT_KEY_PREFIX = "exchange/documents/"
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
IMPORT_LOCK = 0x6B62_6578  # advisory lock key: batches apply one after another


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
FROM stg_readings s JOIN meters m ON m.billing_id = s.meter
WHERE r.id = s.cabinet_reading_id AND r.meter_id = m.id AND r.zone = s.zone AND r.period = s.period
  AND r.value = s.value AND r.billing_id IS NULL
  AND NOT EXISTS (SELECT 1 FROM readings o WHERE o.billing_id = s.billing_id)
RETURNING r.account_id
"""


def merge_sql(entity: Entity, merge: Merge) -> str:
    """``WITH changed AS (INSERT … ON CONFLICT … DO UPDATE … WHERE differs RETURNING …)`` per account."""
    columns = list(merge.values)
    exprs = [merge.values[name] for name in columns]
    if merge.created:
        columns.append("created_at")
        exprs.append("$1")
    if merge.updated:
        columns.append("updated_at")
        exprs.append("$1")
    compared = [name for name in merge.values if name not in merge.conflict and name not in merge.insert_only]
    assignments = [f"{name} = EXCLUDED.{name}" for name in compared]
    if merge.updated:
        assignments.append("updated_at = EXCLUDED.updated_at")
    if merge.on_change:
        assignments.append(merge.on_change)
    return f"""
WITH changed AS (
  INSERT INTO {merge.table} AS t ({", ".join(columns)})
  SELECT {", ".join(exprs)} FROM stg_{entity.name} s {merge.joins}
  ON CONFLICT ({", ".join(merge.conflict)}) DO UPDATE SET {", ".join(assignments)}
  WHERE ({", ".join(f"t.{name}" for name in compared)}) IS DISTINCT FROM
        ({", ".join(f"EXCLUDED.{name}" for name in compared)})
  RETURNING {merge.account} AS account_id, t.id, (t.xmax = 0) AS inserted
)
SELECT account_id, count(*) AS changed, count(*) FILTER (WHERE inserted) AS inserted,
       max(id) FILTER (WHERE inserted) AS last_inserted
FROM changed GROUP BY account_id
"""


@dataclass
class EntityReport:
    """What one entity of a batch did."""

    rows: int = 0  # rows in the files
    changed: int = 0  # rows inserted or updated (0 when the same file is imported again)
    inserted: int = 0
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
    parse_seconds: float = 0.0

    @property
    def changed(self) -> int:
        """Rows inserted or updated in all."""
        return sum(report.changed for report in self.entities.values())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary (the HTTP endpoint's answer, the CLI's output)."""
        return {
            "entities": {
                name: {"rows": r.rows, "changed": r.changed, "inserted": r.inserted}
                for name, r in self.entities.items()
            },
            "accounts": len(self.accounts),
            "usersRefreshed": len(self.users),
            "notified": self.notified,
        }


def parse_batch(files: Mapping[str, bytes]) -> tuple[list[ParsedFile], Problems]:
    """Parse the ``*.csv`` members of ``files`` (name → bytes); other members are documents."""
    problems = Problems()
    parsed = [
        result
        for name in sorted(files)
        if name.lower().endswith(".csv") and (result := parse_file(name, files[name], problems)) is not None
    ]
    if not parsed and not problems:
        problems.add("batch", None, "no exchange files (*.csv) in it")
    return parsed, problems


async def import_batch(
    session: AsyncSession, files: Mapping[str, bytes], *, storage: Storage, now: dt.datetime
) -> ImportReport:
    """Apply one batch in the caller's transaction; raises :class:`ImportRefused` (roll back) on any error."""
    started = time.perf_counter()
    parsed, problems = parse_batch(files)
    if problems:
        raise ImportRefused(problems)
    report = ImportReport(parse_seconds=time.perf_counter() - started)
    # through the session first: that opens the transaction the raw connection then works in
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": IMPORT_LOCK})  # one at a time
    await session.execute(text("SET LOCAL kabinet.exchange = 'import'"))  # not echoed back by the feed
    await session.execute(text("SET LOCAL work_mem = '256MB'"))
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    assert isinstance(raw, asyncpg.Connection)
    names: dict[int, str] = {}
    by_entity: dict[str, list[tuple[int, ParsedFile]]] = {}
    for number, file in enumerate(parsed):
        names[number] = file.name
        by_entity.setdefault(file.entity.name, []).append((number, file))
    for name, entity in ENTITIES.items():
        if name not in by_entity:
            continue
        step = time.perf_counter()
        await _stage(raw, entity, by_entity[name])
        if name == "tariffs":
            await _store_documents(raw, session, storage, files, names, problems, now)
        await _check(raw, entity, MERGES[name], names, problems)
        if problems:
            raise ImportRefused(problems)
        entity_report = report.entities[name] = EntityReport(
            rows=sum(len(f.records) for _, f in by_entity[name])
        )
        if name == "readings":
            for row in await raw.fetch(ACKNOWLEDGE):
                report.accounts.add(row["account_id"])
                entity_report.changed += 1
        try:
            sql = merge_sql(entity, MERGES[name])
            rows = await raw.fetch(sql, *([now] if "$1" in sql else []))
        except asyncpg.PostgresError as error:  # a unique or check constraint the files break
            problems.add(", ".join(f.name for _, f in by_entity[name]), None, _database_reason(error))
            raise ImportRefused(problems) from None
        for row in rows:
            entity_report.changed += row["changed"]
            entity_report.inserted += row["inserted"]
            if row["account_id"] is not None:
                report.accounts.add(row["account_id"])
            if name == "receipts" and row["last_inserted"] is not None:
                report.new_receipts[row["account_id"]] = row["last_inserted"]
        if entity_report.changed and MERGES[name].reference:
            report.reference = True
        entity_report.seconds = time.perf_counter() - step
    await declare_effects(session, raw, report, now)
    return report


def _database_reason(error: asyncpg.PostgresError) -> str:
    detail = getattr(error, "detail", None)
    constraint = getattr(error, "constraint_name", None)
    return f"refused by the database ({constraint or type(error).__name__}){': ' + detail if detail else ''}"


async def _stage(raw: asyncpg.Connection, entity: Entity, files: list[tuple[int, ParsedFile]]) -> None:
    """COPY the rows of ``entity`` (from one or more files) into ``stg_<entity>``."""
    columns = ", ".join(f"{column.name} {column.sql}" for column in entity.columns)
    extra = ", document_file_id bigint" if entity.name == "tariffs" else ""
    await raw.execute(
        f"CREATE TEMP TABLE stg_{entity.name} (file smallint, line integer, {columns}{extra}) ON COMMIT DROP"
    )
    names = ["file", "line", *entity.names]
    for number, file in files:
        await raw.copy_records_to_table(
            f"stg_{entity.name}", records=((number, *record) for record in file.records), columns=names
        )
    await raw.execute(f"ANALYZE stg_{entity.name}")


async def _check(
    raw: asyncpg.Connection, entity: Entity, merge: Merge, names: dict[int, str], problems: Problems
) -> None:
    """Duplicate keys within the batch and references to rows that exist nowhere, with their lines."""
    identity = ", ".join(entity.identity)
    duplicates = await raw.fetch(
        f"SELECT {identity}, array_agg(file ORDER BY file, line) AS files,"
        f" array_agg(line ORDER BY file, line) AS lines FROM stg_{entity.name}"
        f" GROUP BY {identity} HAVING count(*) > 1 LIMIT 50"
    )
    for row in duplicates:
        first = f"{names[row['files'][0]]}:{row['lines'][0]}"
        for file, line in list(zip(row["files"], row["lines"], strict=True))[1:]:
            problems.add(names[file], line, f"the same {identity} as {first}")
    for column, table in merge.refs:
        missing = await raw.fetch(
            f"SELECT s.file, s.line, s.{column} AS value FROM stg_{entity.name} s WHERE NOT EXISTS "
            f"(SELECT 1 FROM {table} t WHERE t.billing_id = s.{column}) ORDER BY s.file, s.line LIMIT 50"
        )
        for row in missing:
            problems.add(
                names[row["file"]],
                row["line"],
                f"{column}: unknown {column} {row['value']!r} (import {table} first)",
            )


async def _store_documents(
    raw: asyncpg.Connection,
    session: AsyncSession,
    storage: Storage,
    files: Mapping[str, bytes],
    names: dict[int, str],
    problems: Problems,
    now: dt.datetime,
) -> None:
    """Store each tariff document the batch names (content-addressed, so a re-import adds nothing) and
    point the staging rows at their ``files`` row (C4 downloads it)."""
    wanted = await raw.fetch(
        "SELECT document_file AS path, min(file) AS file, min(line) AS line FROM stg_tariffs"
        " WHERE document_file IS NOT NULL GROUP BY document_file"
    )
    for row in wanted:
        data = files.get(row["path"])
        if data is None:
            problems.add(names[row["file"]], row["line"], f"document_file: {row['path']} is not in the batch")
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
    session: AsyncSession, raw: asyncpg.Connection, report: ImportReport, now: dt.datetime
) -> None:
    """THE place where an import declares what it touched (port this to the unit of work).

    - cache: every user linked to a changed account, once each, bumped in bulk after COMMIT
      (``events.touch``); everybody when reference data changed;
    - notifications: "new receipt" once per account and user, for the newest receipt the batch added;
      older receipts added by the same batch are marked as announced so the scheduler stays quiet.
    """
    accounts = sorted(report.accounts)
    if accounts:
        users = await raw.fetch(
            "SELECT DISTINCT user_id FROM user_accounts WHERE account_id = ANY($1::bigint[])", accounts
        )
        report.users = {row["user_id"] for row in users}
    events.touch(session, users=report.users, everyone=report.reference)
    if report.new_receipts:
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
