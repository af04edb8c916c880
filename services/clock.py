"""The one clock of the whole system: every rule that depends on "now" or "today" reads it here.

Nothing else in ``app/``, ``services/``, ``resolvers/``, ``schema/`` or ``models/`` reads the wall clock
(``tests/test_clock.py`` greps for it). Three modes:

- **system** (default): the wall clock, UTC.
- **shifted** (``KABINET_CLOCK_START``, old name ``KABINET_NOW_OVERRIDE``): the clock *starts* at a given
  instant and then runs forward in real time, so a demo server on "the 20th of November" keeps working for
  hours: codes and tokens expire normally, and tokens it issues are checked against the same clock.
- **pinned** (tests): frozen at an instant until moved with :meth:`Clock.pin` or :meth:`Clock.advance`.

The clock is per process (one object, :data:`CLOCK`) because "now" is a property of the process, not of
a request: jobs, the outbox, ORM column defaults and request handlers must all agree. Durations (timeouts,
latency) keep using ``time.monotonic()``: they measure elapsed time, not the calendar.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

MOSCOW = ZoneInfo("Europe/Moscow")


def _aware(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


def wall_clock() -> dt.datetime:
    """The real time, UTC. Only the clock (and the CLI that anchors a shifted clock) may call this."""
    return dt.datetime.now(dt.UTC)


class Clock:
    """The process's source of "now" (see the module docstring)."""

    __slots__ = ("_offset", "_pinned")

    def __init__(self) -> None:
        self._pinned: dt.datetime | None = None
        self._offset = dt.timedelta(0)

    def now(self) -> dt.datetime:
        """The current instant, timezone-aware UTC."""
        if self._pinned is not None:
            return self._pinned
        return wall_clock() + self._offset

    def today(self, time_zone: str | ZoneInfo = MOSCOW) -> dt.date:
        """Today's date in ``time_zone`` (Moscow by default: the company's)."""
        zone = ZoneInfo(time_zone) if isinstance(time_zone, str) else time_zone
        return self.now().astimezone(zone).date()

    def timestamp(self) -> float:
        """:meth:`now` as POSIX seconds."""
        return self.now().timestamp()

    def start_at(self, start: dt.datetime, *, anchored_at: dt.datetime | None = None) -> None:
        """Run forward in real time from ``start``, which corresponds to the real instant ``anchored_at``
        (default: now). Processes of one server share ``anchored_at`` so they agree to the microsecond."""
        self._pinned = None
        self._offset = _aware(start) - _aware(anchored_at or wall_clock())

    def pin(self, instant: dt.datetime) -> None:
        """Freeze the clock at ``instant`` (tests)."""
        self._pinned = _aware(instant)

    def advance(self, delta: dt.timedelta) -> None:
        """Move the clock forward by ``delta`` (pinned or shifted)."""
        if self._pinned is not None:
            self._pinned += delta
        else:
            self._offset += delta

    def reset(self) -> None:
        """Back to the wall clock."""
        self._pinned = None
        self._offset = dt.timedelta(0)

    @property
    def mode(self) -> str:
        """``system``, ``shifted`` or ``pinned`` (for the start-up banner and logs)."""
        if self._pinned is not None:
            return "pinned"
        return "shifted" if self._offset else "system"


CLOCK = Clock()
"""The clock of this process."""


def now() -> dt.datetime:
    """The current instant, UTC, from :data:`CLOCK` (also the ORM's default for timestamp columns)."""
    return CLOCK.now()


def today(time_zone: str | ZoneInfo = MOSCOW) -> dt.date:
    """Today's date in ``time_zone``, from :data:`CLOCK`."""
    return CLOCK.today(time_zone)
