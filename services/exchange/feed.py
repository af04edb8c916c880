"""Outbound exchange (issue 18): the change feed billing reads with a cursor, exactly once, in commit order.

Triggers (migration 0005) add a row to ``exchange_changes`` in the very transaction of each action billing
must act on — a submitted reading, a payment status, an application or requisites change request, an
e-receipt or autopay consent, an unlinked account, a deleted cabinet — so a rolled-back action is never
announced and no write path can forget it.

Each trigger takes one transaction-level advisory lock before its row gets an id and holds it until COMMIT
(the triggers fire at COMMIT, so the lock is short): ids are therefore handed out in commit order, and the
cursor is simply the id of the last change read. A reader never sees id N+1 before N has committed, so
"every change after the cursor" reads each change exactly once.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.exchange.formats import FORMAT, VERSION

START = "0"
"""The cursor before the first change."""
MAX_PAGE = 10_000


class BadCursor(ValueError):
    """The cursor is not an id a previous page returned."""


def parse_cursor(cursor: str) -> int:
    """``"123"`` → 123."""
    value = cursor.strip()
    if not value.isdigit() or len(value) > 19:
        raise BadCursor(f"cursor {cursor[:40]!r} is not a change id (start with {START})")
    return int(value)


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
    last = parse_cursor(after)
    rows = await session.execute(
        text(
            "SELECT id, kind, payload, created_at FROM exchange_changes"
            " WHERE id > :after ORDER BY id LIMIT :limit"
        ),
        {"after": last, "limit": max(1, min(limit, MAX_PAGE))},
    )
    found = []
    cursor = last
    for row in rows:
        cursor = row.id
        found.append({"cursor": str(row.id), "kind": row.kind, "recordedAt": row.created_at, **row.payload})
    return Page(after=str(last), next=str(cursor), changes=found)
