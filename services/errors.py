"""The base of every expected, user-facing failure of a domain rule."""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """An expected failure: GraphQL returns it as a ``userErrors`` entry, not as a top-level error.

    ``code`` is stable English for programs; ``message`` is the manual's Russian text for people;
    ``field`` is the input path it concerns (e.g. ``["input", "phone"]``); ``data`` carries extra values
    that the matching GraphQL error type exposes (e.g. the previous reading).
    """

    code: ClassVar[str] = "INVALID"
    message: ClassVar[str] = "Некорректные данные"

    def __init__(self, *, field: list[str] | None = None, message: str | None = None, **data: Any) -> None:
        self.field = field
        self.text = message or self.message
        self.data = data
        super().__init__(self.text)


class FieldRequired(DomainError):
    """A required input is empty."""

    code = "REQUIRED"
    message = "Поле обязательно для заполнения"


class NotFound(DomainError):
    """The object does not exist or is not visible to the caller (the two are never told apart)."""

    code = "NOT_FOUND"
    message = "Объект не найден"


class PeriodOutOfRange(DomainError):
    """D8: histories cover the month before the current one back to at most three years."""

    code = "PERIOD_OUT_OF_RANGE"
    message = "Период должен быть в пределах трех лет до предыдущего месяца включительно"
