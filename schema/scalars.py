"""Custom scalars: ``YearMonth`` for billing periods and ``Decimal`` for money and volumes (strings)."""

from __future__ import annotations

import datetime as dt
import decimal
import re
from typing import NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

_YEAR_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class InvalidScalarValue(ValueError):
    """A client's value that is not of the scalar's form: reported to the client as a validation error,
    never masked or logged as a bug (``schema.extensions.is_unexpected``)."""


YearMonth = NewType("YearMonth", dt.date)
"""A billing period in Python: the first day of its month."""


def parse_year_month(value: object) -> dt.date:
    """``"2026-10"`` → ``date(2026, 10, 1)``; anything else is a GraphQL input error."""
    if not isinstance(value, str) or not (match := _YEAR_MONTH.match(value)):
        raise InvalidScalarValue(f'YearMonth must look like "2026-10", got {value!r}')
    try:
        return dt.date(int(match.group(1)), int(match.group(2)), 1)
    except ValueError as error:  # year 0000, month 13: the right form, but no such month
        raise InvalidScalarValue(f"No such month: {value!r}") from error


def serialize_year_month(value: dt.date) -> str:
    """``date(2026, 10, 1)`` → ``"2026-10"``."""
    return f"{value.year:04d}-{value.month:02d}"


serialize_year_month.kabinet_memo_by_value = dt.date  # type: ignore[attr-defined]  # a pure function of a date: app.execution remembers its results per value


YEAR_MONTH = strawberry.scalar(
    name="YearMonth",
    description='A calendar month, e.g. "2026-10": the billing period of charges, readings and receipts.',
    serialize=serialize_year_month,
    parse_value=parse_year_month,
)


def _parse_decimal(value: object) -> decimal.Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidScalarValue('Decimal must be given as a string such as "1234.50"')
    try:
        parsed = decimal.Decimal(str(value).strip().replace(",", "."))
    except decimal.InvalidOperation as error:
        raise InvalidScalarValue(f"Not a decimal number: {value!r}") from error
    if not parsed.is_finite():
        raise InvalidScalarValue("Decimal must be a finite number")
    return parsed


DECIMAL = strawberry.scalar(
    name="Decimal",
    description=(
        'An exact decimal number as a string: money in roubles with kopecks ("1234.50", currency RUB; debt '
        'positive, overpayment negative) or a volume ("152.000"). Never a float. Inputs accept a string '
        "(a comma is read as the decimal point) or an integer."
    ),
    serialize=str,
    parse_value=_parse_decimal,
)

YearMonthScalar = YearMonth
"""Annotate fields and arguments with this (or ``YearMonth``): the schema maps it to the scalar."""

SCALAR_MAP: dict[object, ScalarDefinition] = {YearMonth: YEAR_MONTH, decimal.Decimal: DECIMAL}
"""Python types → GraphQL scalars, given to ``StrawberryConfig(scalar_map=...)``."""
