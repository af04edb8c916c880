"""Write the billing-owned data of a database as an exchange set (what billing would send to build it).

Used to publish the sample set, by ``kabinet demo`` (the demo data goes back in through the import) and by
tests. ``accounts`` limits the set to some account numbers, ``since`` drops older periods.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.exchange.formats import render
from services.storage import Storage

BACKFILL = (
    "UPDATE suppliers SET billing_id = 'S' || inn WHERE billing_id IS NULL",
    "UPDATE branches SET billing_id = 'B' || code WHERE billing_id IS NULL",
    "UPDATE services SET billing_id = code WHERE billing_id IS NULL",
    "UPDATE tariffs SET billing_id = 'T' || id WHERE billing_id IS NULL",
    "UPDATE accounts a SET billing_id = b.code || '-' || a.number FROM branches b"
    " WHERE b.id = a.branch_id AND a.billing_id IS NULL",
    "UPDATE meters SET billing_id = 'M' || id WHERE billing_id IS NULL",
    "UPDATE charges SET billing_id = 'C' || id WHERE billing_id IS NULL",
    "UPDATE readings SET billing_id = 'R' || id WHERE billing_id IS NULL AND accepted",
)
"""Billing ids for rows created outside the exchange (the same rule as migration 0005's)."""


async def assign_billing_ids(session: AsyncSession) -> None:
    """Give rows without a billing id their deterministic one (:data:`BACKFILL`)."""
    await session.execute(text("SET LOCAL kabinet.exchange = 'import'"))
    for statement in BACKFILL:
        await session.execute(text(statement))


_ACCOUNTS = "a.billing_id IS NOT NULL AND (CAST(:numbers AS text[]) IS NULL OR a.number = ANY(:numbers))"
_SINCE = "CAST(:since AS date) IS NULL OR {column} >= :since"

QUERIES: dict[str, str] = {
    "suppliers": "SELECT * FROM suppliers ORDER BY id",
    "branches": "SELECT * FROM branches ORDER BY id",
    "services": "SELECT s.*, sup.billing_id AS supplier FROM services s"
    " JOIN suppliers sup ON sup.id = s.supplier_id ORDER BY s.id",
    "tariffs": "SELECT t.*, b.billing_id AS branch, sv.billing_id AS service, f.storage_key, f.sha256"
    " FROM tariffs t JOIN branches b ON b.id = t.branch_id JOIN services sv ON sv.id = t.service_id"
    " LEFT JOIN files f ON f.id = t.document_file_id"
    " WHERE CAST(:since AS date) IS NULL OR t.valid_to IS NULL OR t.valid_to >= :since ORDER BY t.id",
    "accounts": "SELECT a.*, b.billing_id AS branch,"
    " (a.closed_at AT TIME ZONE b.time_zone)::date AS closed_on"
    f" FROM accounts a JOIN branches b ON b.id = a.branch_id WHERE {_ACCOUNTS} ORDER BY a.id",
    "account_services": "SELECT x.*, a.billing_id AS account, sv.billing_id AS service"
    " FROM account_services x"
    " JOIN accounts a ON a.id = x.account_id JOIN services sv ON sv.id = x.service_id"
    f" WHERE {_ACCOUNTS} ORDER BY x.id",
    "meters": "SELECT m.*, a.billing_id AS account, sv.billing_id AS service, m.installed_at AS installed_on,"
    " m.verified_at AS verified_on, m.sealed_at AS sealed_on, m.removed_at AS removed_on FROM meters m"
    " JOIN accounts a ON a.id = m.account_id JOIN services sv ON sv.id = m.service_id"
    f" WHERE {_ACCOUNTS} ORDER BY m.id",
    "charges": "SELECT c.*, a.billing_id AS account, sv.billing_id AS service, sup.billing_id AS supplier"
    " FROM charges c JOIN accounts a ON a.id = c.account_id JOIN services sv ON sv.id = c.service_id"
    " JOIN suppliers sup ON sup.id = c.supplier_id"
    f" WHERE {_ACCOUNTS} AND c.billing_id IS NOT NULL AND ({_SINCE.format(column='c.period')}) ORDER BY c.id",
    "balances": "SELECT p.*, a.billing_id AS account, sup.billing_id AS supplier FROM period_balances p"
    " JOIN accounts a ON a.id = p.account_id JOIN suppliers sup ON sup.id = p.supplier_id"
    f" WHERE {_ACCOUNTS} AND ({_SINCE.format(column='p.period')}) ORDER BY p.id",
    "payments": "SELECT p.*, a.billing_id AS account, sup.billing_id AS supplier FROM external_payments p"
    " JOIN accounts a ON a.id = p.account_id JOIN suppliers sup ON sup.id = p.supplier_id"
    f" WHERE {_ACCOUNTS} AND ({_SINCE.format(column='p.period')}) ORDER BY p.id",
    "receipts": "SELECT r.*, a.billing_id AS account FROM receipts r JOIN accounts a ON a.id = r.account_id"
    f" WHERE {_ACCOUNTS} AND ({_SINCE.format(column='r.period')}) ORDER BY r.id",
    "readings": "SELECT r.billing_id, m.billing_id AS meter, r.zone, r.period, r.value, r.source,"
    " coalesce(r.accepted_at, r.submitted_at) AS accepted_at"
    " FROM readings r JOIN meters m ON m.id = r.meter_id"
    " JOIN accounts a ON a.id = r.account_id"
    f" WHERE {_ACCOUNTS} AND r.accepted AND r.billing_id IS NOT NULL"
    f" AND ({_SINCE.format(column='r.period')}) ORDER BY r.id",
}


async def exchange_set(
    session: AsyncSession,
    *,
    storage: Storage | None = None,
    accounts: Sequence[str] | None = None,
    since: dt.date | None = None,
    documents: Callable[[dict[str, Any]], tuple[str, bytes] | None] | None = None,
) -> dict[str, bytes]:
    """The set as ``{relative path: bytes}``: ``<entity>.csv`` per entity, ``documents/*.pdf`` (tariff
    documents, read from ``storage``; for a tariff without a stored document, ``documents(row)`` may give
    its ``(relative path, bytes)``)."""
    params: dict[str, Any] = {"numbers": list(accounts) if accounts is not None else None, "since": since}
    out: dict[str, bytes] = {}
    for entity, query in QUERIES.items():
        rows = [dict(row) for row in (await session.execute(text(query), params)).mappings()]
        if entity == "tariffs":
            for row in rows:
                if row["storage_key"] and storage is not None and storage.exists(row["storage_key"]):
                    row["document_file"] = f"documents/{row['sha256'][:16]}.pdf"
                    out[row["document_file"]] = storage.read(row["storage_key"])
                elif documents is not None and (made := documents(row)) is not None:
                    row["document_file"], out[made[0]] = made
        out[f"{entity}.csv"] = render(entity, rows).encode()
    return out
