"""D8: every history covers the month before the current one back to at most three years."""

from __future__ import annotations

import datetime as dt

import pytest

from schema.scalars import parse_year_month, serialize_year_month
from services.errors import PeriodOutOfRange
from services.periods import add_months, allowed_range, history_range

pytestmark = pytest.mark.calendar  # date-dependent: CI runs it again on other days (README, Tests)

TODAY = dt.date(2026, 11, 24)


def test_D8_allowed_range_is_36_months_ending_last_month() -> None:
    allowed = allowed_range(TODAY)
    assert allowed.end == dt.date(2026, 10, 1)
    assert allowed.start == dt.date(2023, 11, 1)
    assert len(allowed.months) == 36


def test_D8_default_is_the_last_twelve_months() -> None:
    chosen = history_range(TODAY)
    assert (chosen.start, chosen.end) == (dt.date(2025, 11, 1), dt.date(2026, 10, 1))


def test_D8_current_month_is_refused_with_the_bounds_as_data() -> None:
    with pytest.raises(PeriodOutOfRange) as refused:
        history_range(TODAY, end=dt.date(2026, 11, 1))
    assert refused.value.field == ["input", "to"]
    assert refused.value.data == {"earliest": dt.date(2023, 11, 1), "latest": dt.date(2026, 10, 1)}


def test_D8_more_than_three_years_back_is_refused() -> None:
    with pytest.raises(PeriodOutOfRange):
        history_range(TODAY, start=dt.date(2023, 10, 1))
    assert history_range(TODAY, start=dt.date(2023, 11, 1)).start == dt.date(2023, 11, 1)


def test_D8_start_after_end_is_refused() -> None:
    with pytest.raises(PeriodOutOfRange):
        history_range(TODAY, start=dt.date(2026, 5, 1), end=dt.date(2026, 4, 1))


def test_D8_months_wrap_across_years() -> None:
    assert add_months(dt.date(2026, 1, 1), -1) == dt.date(2025, 12, 1)
    assert add_months(dt.date(2025, 12, 1), 1) == dt.date(2026, 1, 1)
    assert add_months(dt.date(2026, 10, 1), -35) == dt.date(2023, 11, 1)


@pytest.mark.parametrize("text", ["2026-10", "1999-01", "2026-12"])
def test_K1_year_month_round_trips(text: str) -> None:
    assert serialize_year_month(parse_year_month(text)) == text


@pytest.mark.parametrize("bad", ["2026-13", "2026-1", "26-10", "2026-00", 202610, None])
def test_K1_year_month_rejects_other_shapes(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_year_month(bad)
