"""Branches, suppliers and services: reference data every other domain points at.

A branch's monthly meter-reading window (E3, B4, H2) is computed here, once, in the branch's time zone.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.branches import Branch
from services.periods import add_months, month_start


async def list_branches(session: AsyncSession) -> list[Branch]:
    """Every branch in the order the company lists them (the B1 choice list)."""
    return list((await session.execute(select(Branch).order_by(Branch.position, Branch.name))).scalars())


@dataclass(frozen=True, slots=True)
class Window:
    """One monthly window: the dates it is open (inclusive) and the period its readings belong to."""

    opens: dt.date
    closes: dt.date

    @property
    def period(self) -> dt.date:
        """The billing month of the readings taken in this window."""
        return month_start(self.opens)


@dataclass(frozen=True, slots=True)
class WindowState:
    """Where "today" (in the branch's time zone) stands relative to the branch's windows."""

    today: dt.date
    time_zone: str
    start_day: int
    end_day: int
    current: Window | None  # the open window, if today is inside one
    next: Window  # the next window that opens after today

    @property
    def is_open(self) -> bool:
        """True while readings are accepted."""
        return self.current is not None


def _day(month: dt.date, day: int) -> dt.date:
    return month.replace(day=min(day, calendar.monthrange(month.year, month.month)[1]))


def window_of_month(month: dt.date, start_day: int, end_day: int) -> Window:
    """The window opening in ``month`` (a start day after the end day runs into the next month)."""
    opens = _day(month, start_day)
    closes = _day(month, end_day) if start_day <= end_day else _day(add_months(month, 1), end_day)
    return Window(opens, closes)


def window_state(branch: Branch, now: dt.datetime) -> WindowState:
    """The branch's window state at instant ``now``, computed in the branch's time zone."""
    today = now.astimezone(ZoneInfo(branch.time_zone)).date()
    return window_state_on(
        today, branch.reading_window_start_day, branch.reading_window_end_day, branch.time_zone
    )


def window_state_on(today: dt.date, start: int, end: int, time_zone: str) -> WindowState:
    """Where ``today`` (a date in the branch's time zone) stands relative to windows of days start..end."""
    this_month = month_start(today)
    windows = [window_of_month(add_months(this_month, delta), start, end) for delta in (-1, 0, 1, 2)]
    current = next((w for w in windows if w.opens <= today <= w.closes), None)
    upcoming = next(w for w in windows if w.opens > today)
    return WindowState(today, time_zone, start, end, current, upcoming)
