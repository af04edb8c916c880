"""Outbound exchange (issue 18): the change feed billing reads with a cursor, exactly once, in commit order.

Triggers (migration 0005) add a row to ``exchange_changes`` in the very transaction of each action billing
must act on — a submitted reading, a payment status, an application or requisites change request, an
e-receipt or autopay consent, an unlinked account, a deleted cabinet — so a rolled-back action is never
announced and no write path can forget it.

Each trigger takes one transaction-level advisory lock before its row gets an id and holds it until COMMIT
(the triggers fire at COMMIT, so the lock is short): ids are therefore handed out in commit order, and the
cursor is simply the id of the last change read. A reader never sees id N+1 before N has committed, so
"every change after the cursor" reads each change exactly once.

Reading "after N" also acknowledges everything up to N (billing asks for the next page only once it has
stored the previous one). Changes billing acknowledged and older than the retention
(``KABINET_EXCHANGE_FEED_RETENTION_DAYS``) are deleted by the scheduler (:func:`prune_job`); a cursor
below what was deleted is refused (:class:`CursorExpired`), never answered with a silent gap, and a cursor
beyond the last change handed out is refused as well (it would skip changes still to come).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from models.exchange import ExchangeChange, ExchangeFeedState
from services.exchange.formats import FORMAT, VERSION
from services.unit_of_work import Units, touch

START = "0"
"""The cursor before the first change."""
MAX_PAGE = 10_000
DEFAULT_RETENTION = dt.timedelta(days=30)
"""How long read changes are kept (``KABINET_EXCHANGE_FEED_RETENTION_DAYS``): time to re-read after a
restore of billing's side."""
PRUNE_BATCH = 50_000
"""Changes deleted per statement (a scheduler round deletes until done)."""


class BadCursor(ValueError):
    """The cursor is not an id a previous page returned."""


class CursorExpired(BadCursor):
    """The changes after this cursor were read and then pruned: billing must reconcile in full."""

    def __init__(self, cursor: int, pruned_through: int) -> None:
        super().__init__(
            f"changes up to {pruned_through} were read and then pruned; cursor {cursor} is older: "
            f"continue from {pruned_through} after reconciling"
        )
        self.pruned_through = pruned_through


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
    """The changes committed after ``after``, oldest first, at most ``limit`` of them; records that billing
    has read everything up to ``after`` (the caller commits)."""
    last = parse_cursor(after)
    state = (
        await session.execute(
            text(
                "SELECT pruned_through, greatest(pruned_through, (SELECT coalesce(max(id), 0)"
                " FROM exchange_changes)) FROM exchange_feed_state WHERE id = 1"
            )
        )
    ).one()
    pruned_through: int = state[0]
    latest: int = state[1]
    if last < pruned_through:
        raise CursorExpired(last, pruned_through)
    if last > latest:
        raise BadCursor(f"cursor {last} is beyond the last change ({latest}): it was not handed out")
    touch(session, private=ExchangeFeedState)
    await session.execute(
        text(
            "UPDATE exchange_feed_state SET acknowledged = :after, updated_at = now()"
            " WHERE id = 1 AND acknowledged < :after"
        ),
        {"after": last},
    )
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


async def prune(session: AsyncSession, before: dt.datetime, *, batch: int = PRUNE_BATCH) -> int:
    """Delete up to ``batch`` changes billing has acknowledged that were recorded before ``before``, oldest
    first; moves ``pruned_through`` to the highest id deleted. Returns how many were deleted."""
    condition = (
        " FROM exchange_changes c, exchange_feed_state s"
        " WHERE s.id = 1 AND c.id <= s.acknowledged AND c.created_at < :before"
    )
    bound: int | None = (
        await session.execute(
            text(f"SELECT max(id) FROM (SELECT c.id{condition} ORDER BY c.id LIMIT :batch) oldest"),
            {"before": before, "batch": batch},
        )
    ).scalar_one()
    if bound is None:
        return 0
    touch(session, private=(ExchangeChange, ExchangeFeedState))
    deleted = await session.execute(
        text(f"DELETE FROM exchange_changes WHERE id IN (SELECT c.id{condition} AND c.id <= :bound)"),
        {"before": before, "bound": bound},
    )
    await session.execute(
        text(
            "UPDATE exchange_feed_state SET pruned_through = :bound, updated_at = now()"
            " WHERE id = 1 AND pruned_through < :bound"
        ),
        {"bound": bound},
    )
    return int(deleted.rowcount)  # type: ignore[attr-defined]


async def prune_job(units: Units, now: dt.datetime, *, keep: dt.timedelta = DEFAULT_RETENTION) -> int:
    """The scheduler's retention round: prune read changes older than ``keep``, a batch per transaction."""
    total = 0
    while True:
        async with units() as uow:
            deleted = await prune(uow.session, now - keep)
        total += deleted
        if deleted < PRUNE_BATCH:
            return total
