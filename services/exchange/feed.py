"""Outbound exchange (issue 18): the change feed billing reads with a cursor, exactly once, in commit order.

Triggers (migration 0005) add a row to ``exchange_changes`` in the very transaction of each action billing
must act on — a submitted reading, a payment status, an application or requisites change request, an
e-receipt or autopay consent, an unlinked account, a deleted cabinet — so a rolled-back action is never
announced and no write path can forget it. Each row carries its writer's transaction id (``txid``).

The cursor is ``<txid>.<id>`` of the last row read. A page holds rows after the cursor whose transaction
is older than every transaction still running (``pg_snapshot_xmin``): a transaction that commits late
holds back everything after it instead of being skipped, so nothing is read twice or never.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.exchange.formats import FORMAT, VERSION

START = "0.0"
"""The cursor before the first change."""
MAX_PAGE = 10_000
_CURSOR = re.compile(r"(\d{1,19})\.(\d{1,19})")


class BadCursor(ValueError):
    """The cursor is not ``<txid>.<id>`` as a previous page returned it."""


def parse_cursor(cursor: str) -> tuple[int, int]:
    """``"123.45"`` → (123, 45)."""
    match = _CURSOR.fullmatch(cursor.strip())
    if match is None:
        raise BadCursor(f"cursor {cursor[:40]!r} is not <txid>.<id> (start with {START})")
    return int(match[1]), int(match[2])


@dataclass
class Page:
    """Changes after a cursor and the cursor to pass next time (equal to ``after`` when nothing is new)."""

    after: str
    next: str
    changes: list[dict[str, Any]]

    def jsonl(self) -> str:
        """The page as an exchange file: a format line, then one change per line (JSON Lines)."""
        head = {"format": f"{FORMAT}/{VERSION}", "entity": "changes", "after": self.after, "next": self.next}
        lines = [json.dumps(head, ensure_ascii=False)]
        lines += [json.dumps(change, ensure_ascii=False, default=_json) for change in self.changes]
        return "\n".join(lines) + "\n"


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(type(value).__name__)


async def changes(session: AsyncSession, after: str = START, *, limit: int = MAX_PAGE) -> Page:
    """The changes committed after ``after``, oldest first, at most ``limit`` of them."""
    txid, row_id = parse_cursor(after)
    rows = await session.execute(
        text(
            "SELECT id, txid, kind, payload, created_at FROM exchange_changes"
            " WHERE (txid, id) > (:txid, :id)"
            " AND txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
            " ORDER BY txid, id LIMIT :limit"
        ),
        {"txid": txid, "id": row_id, "limit": max(1, min(limit, MAX_PAGE))},
    )
    found = []
    cursor = f"{txid}.{row_id}"
    for row in rows:
        cursor = f"{row.txid}.{row.id}"
        found.append({"cursor": cursor, "kind": row.kind, "recordedAt": row.created_at, **row.payload})
    return Page(after=f"{txid}.{row_id}", next=cursor, changes=found)
