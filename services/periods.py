"""D8: the period rule every history shares (events, charges, payments, statistics, readings, ...)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from services.clock import MOSCOW
from services.errors import PeriodOutOfRange

HISTORY_MONTHS = 36
"""The month before the current one and 35 before it: three years."""

DEFAULT_MONTHS = 12


def month_start(day: dt.date) -> dt.date:
    """The first day of ``day``'s month."""
    return day.replace(day=1)


def month_of(instant: dt.datetime, zone: ZoneInfo = MOSCOW) -> dt.date:
    """The month (first day) an instant belongs to in the company's time zone: an appeal written at 00:30 on
    1 January in Moscow belongs to January, though it is still 31 December in UTC."""
    return month_start(instant.astimezone(zone).date())


def month_bounds(first: dt.date, last: dt.date, zone: ZoneInfo = MOSCOW) -> tuple[dt.datetime, dt.datetime]:
    """The instants ``[start, end)`` covering the months ``first`` … ``last`` in the company's time zone."""
    end = add_months(month_start(last), 1)
    return (
        dt.datetime.combine(month_start(first), dt.time(0), tzinfo=zone),
        dt.datetime.combine(end, dt.time(0), tzinfo=zone),
    )


def add_months(month: dt.date, months: int) -> dt.date:
    """The first day of the month ``months`` after (or before, if negative) ``month``."""
    index = month.year * 12 + month.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def months_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every month from ``first`` to ``last`` inclusive (first days)."""
    out = []
    current = month_start(first)
    while current <= last:
        out.append(current)
        current = add_months(current, 1)
    return out


@dataclass(frozen=True, slots=True)
class PeriodRange:
    """An inclusive range of billing months, both given as their first days."""

    start: dt.date
    end: dt.date

    @property
    def months(self) -> list[dt.date]:
        """Every month of the range, oldest first."""
        return months_between(self.start, self.end)


def allowed_range(today: dt.date) -> PeriodRange:
    """The widest range D8 allows: three years up to the month before ``today``'s."""
    end = add_months(month_start(today), -1)
    return PeriodRange(add_months(end, -(HISTORY_MONTHS - 1)), end)


def history_range(
    today: dt.date,
    start: dt.date | None = None,
    end: dt.date | None = None,
    *,
    default_months: int = DEFAULT_MONTHS,
) -> PeriodRange:
    """Validate a requested range against D8; missing ends default to the last ``default_months`` months.

    Raises :class:`PeriodOutOfRange` (with the allowed bounds as data) when a bound falls outside the
    allowed range or the start is after the end.
    """
    allowed = allowed_range(today)
    end = month_start(end) if end else allowed.end
    if not allowed.start <= end <= allowed.end:  # before counting months back from it (year 1, issue 16)
        raise PeriodOutOfRange(field=["input", "to"], earliest=allowed.start, latest=allowed.end)
    start = month_start(start) if start else max(allowed.start, add_months(end, -(default_months - 1)))
    for value, name in ((start, "from"), (end, "to")):
        if not allowed.start <= value <= allowed.end:
            raise PeriodOutOfRange(field=["input", name], earliest=allowed.start, latest=allowed.end)
    if start > end:
        raise PeriodOutOfRange(field=["input", "from"], earliest=allowed.start, latest=allowed.end)
    return PeriodRange(start, end)
