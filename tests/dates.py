"""The suite's calendar: one pinned "now" per run, and every date a test names derived from it.

``KABINET_TEST_NOW`` (ISO date or date-time; a date means 10:00 Moscow on that day) chooses the day the
whole run pretends it is; by default 2026-11-24 10:00 Moscow. The demo data is generated for that day and
the server's clock (:mod:`services.clock`) is pinned to it, so the suite's outcome does not depend on the
machine's date. CI runs the date-dependent tests again on other days (``.ci/run``), which is why no test
names a literal month: it asks for ``period(-1)`` ("last month") and the like.
"""

from __future__ import annotations

import datetime as dt
import os
from zoneinfo import ZoneInfo

from services.periods import add_months, month_start

MSK = ZoneInfo("Europe/Moscow")
DEFAULT_NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=MSK)


def _parse(raw: str | None) -> dt.datetime:
    if not raw:
        return DEFAULT_NOW
    if "T" not in raw and " " not in raw:
        return dt.datetime.combine(dt.date.fromisoformat(raw), dt.time(10, 0), tzinfo=MSK)
    parsed = dt.datetime.fromisoformat(raw)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=MSK)


NOW = _parse(os.environ.get("KABINET_TEST_NOW"))
"""The instant the run's clock is pinned to (Moscow time zone)."""

TODAY = NOW.astimezone(MSK).date()
"""The demo data's and the server's 'today' in Moscow."""

CURRENT = month_start(TODAY)
"""The current (not yet billed) month."""

LAST_BILLED = add_months(CURRENT, -1)
"""The last closed period: the month before today's."""


def month(offset: int) -> dt.date:
    """The first day of the month ``offset`` months from the current one (``-1``: last month)."""
    return add_months(CURRENT, offset)


def period(offset: int) -> str:
    """``YYYY-MM`` of the month ``offset`` months from the current one, as the API writes periods."""
    return f"{month(offset):%Y-%m}"


def mmyyyy(offset: int) -> str:
    """``MM.YYYY`` of that month, as receipts and notifications write it."""
    return f"{month(offset):%m.%Y}"


def on_day(day: int, offset: int = 0, hour: int = 10, minute: int = 0) -> dt.datetime:
    """``hour:minute`` Moscow time on ``day`` of the month ``offset`` months from now (clamped to its end)."""
    first = month(offset)
    last = (add_months(first, 1) - dt.timedelta(days=1)).day
    return dt.datetime(first.year, first.month, min(day, last), hour, minute, tzinfo=MSK)


def window_open(start: int, end: int) -> dt.datetime:
    """The first instant from NOW on when a monthly reading window of days ``start``–``end`` is open: NOW
    itself when it is open today, else 10:00 Moscow on its next first day (tests that submit readings on
    the demo data pin the clock there, whatever day the run pretends it is)."""
    if start <= TODAY.day <= end:
        return NOW
    return on_day(start, offset=0 if TODAY.day < start else 1)


SKOPIN_OPEN = window_open(15, 25)
"""When the demo flat's (11111111, Скопинское отделение) window is open, from NOW on."""
