"""What the information sections share."""

from __future__ import annotations

from services.errors import DomainError, FieldRequired, NotFound

MAX_TEXT = 2000


class PeriodInvalid(DomainError):
    """An end before its start, or a time in the past where the future is expected."""

    code = "PERIOD_INVALID"
    message = "Некорректный период"


class TextTooLong(DomainError):
    """A free text over :data:`MAX_TEXT` characters."""

    code = "TEXT_TOO_LONG"
    message = f"Текст не должен превышать {MAX_TEXT} символов"


class FileNotFound(NotFound):
    """An image file id that names no stored file."""

    code = "FILE_NOT_FOUND"
    message = "Файл не найден"


class BranchNotFound(NotFound):
    """A branch id that names no branch."""

    code = "BRANCH_NOT_FOUND"
    message = "Отделение не найдено"


def required_text(value: str | None, field_path: list[str]) -> str:
    cleaned = (value or "").strip()
    if not cleaned:
        raise FieldRequired(field=field_path)
    return cleaned


def limited_text(value: str | None, field_path: list[str]) -> str | None:
    if value is not None and len(value) > MAX_TEXT:
        raise TextTooLong(field=field_path)
    return value


def optional_text(value: str | None) -> str | None:
    cleaned = (value or "").strip()
    return cleaned or None
