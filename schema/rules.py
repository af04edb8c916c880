"""Input rules declared once, next to the input types, and enforced before any resolver or service runs.

A rule (length, pattern, range) is attached to an input field with :func:`field` (or to a top-level
argument with :func:`argument`); the same call appends the rule in words to the field's description, so
GraphiQL shows it. :class:`EnforceInputRules` — put on every mutation by ``schema.schema`` — walks the
arguments of a call against their types' rules and answers with the payload's ``userErrors`` (code, the
field path, the Russian message) when anything breaks one; the resolver is then not called, so nothing is
stored. Every string anywhere in an input is also checked for characters PostgreSQL (or UTF-8) refuses
(U+0000, lone surrogates) and held to :data:`DEFAULT_MAX_LENGTH` when it declares no rule of its own.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.types.base import StrawberryList, StrawberryOptional, has_object_definition
from strawberry.types.field import StrawberryField
from strawberry.utils.str_converters import to_camel_case

from services.errors import DomainError

RULE = "kabinet.rule"
"""Key of a :class:`Rule` in a field's or argument's ``metadata``."""

DEFAULT_MAX_LENGTH = 2000
"""Longest string accepted where no rule says otherwise (tokens, keys, URLs)."""

_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def _plural(count: int, one: str, few: str, many: str) -> str:
    if count % 10 == 1 and count % 100 != 11:
        return one
    if 2 <= count % 10 <= 4 and not 12 <= count % 100 <= 14:
        return few
    return many


def _number(value: Decimal) -> str:
    return format(value.normalize(), "f").replace(".", ",")


class TooLong(DomainError):
    """A string longer than its rule allows."""

    code = "TOO_LONG"
    message = "Слишком длинное значение."


class TooShort(DomainError):
    """A string shorter than its rule requires."""

    code = "TOO_SHORT"
    message = "Слишком короткое значение."


class InvalidFormat(DomainError):
    """A string that does not match its rule's pattern."""

    code = "INVALID_FORMAT"
    message = "Неверный формат значения."


class InvalidCharacter(DomainError):
    """A string with a character that cannot be stored (U+0000, a lone surrogate)."""

    code = "INVALID_CHARACTER"
    message = "Поле содержит недопустимый символ."


class OutOfRange(DomainError):
    """A number outside its rule's range."""

    code = "OUT_OF_RANGE"
    message = "Значение вне допустимого диапазона."


@dataclass(frozen=True, slots=True)
class Rule:
    """What one input value must satisfy; ``None`` parts are not checked.

    ``pattern`` must match the whole string; ``format_hint`` says in English what it means (for the
    description) and ``format_message`` in Russian (for the user). ``minimum``/``maximum`` bound numbers;
    ``minimum_exclusive`` makes the minimum itself invalid (areas: more than 0).
    """

    max_length: int | None = None
    min_length: int | None = None
    pattern: str | None = None
    format_hint: str | None = None
    format_message: str | None = None
    minimum: Decimal | int | None = None
    maximum: Decimal | int | None = None
    minimum_exclusive: bool = False

    def describe(self) -> str:
        """The rule in words, appended to the description."""
        parts: list[str] = []
        if self.max_length is not None:
            parts.append(f"At most {self.max_length} characters.")
        if self.min_length is not None:
            parts.append(f"At least {self.min_length} characters.")
        if self.format_hint:
            parts.append(self.format_hint)
        if self.minimum is not None or self.maximum is not None:
            low = "" if self.minimum is None else f"{'more than' if self.minimum_exclusive else 'from'} "
            low += "" if self.minimum is None else str(self.minimum)
            high = "" if self.maximum is None else f"at most {self.maximum}"
            parts.append(f"Range: {', '.join(part for part in (low, high) if part)}.")
        return " ".join(parts)

    def check_text(self, value: str, path: list[str]) -> DomainError | None:
        """The first rule a string breaks, or None."""
        if _BAD_CHARACTER.search(value):
            return InvalidCharacter(field=path)
        limit = self.max_length if self.max_length is not None else DEFAULT_MAX_LENGTH
        if len(value) > limit:
            word = _plural(limit, "символа", "символов", "символов")
            return TooLong(field=path, message=f"Не более {limit} {word}.", maximum=limit)
        if self.min_length is not None and len(value.strip()) < self.min_length:
            word = _plural(self.min_length, "символа", "символов", "символов")
            return TooShort(field=path, message=f"Не менее {self.min_length} {word}.")
        if self.pattern is not None and value and not re.fullmatch(self.pattern, value.strip()):
            return InvalidFormat(field=path, message=self.format_message)
        return None

    def check_number(self, value: Decimal | int, path: list[str]) -> DomainError | None:
        """The range a number breaks, or None."""
        low, high = self.minimum, self.maximum
        too_low = low is not None and (value <= low if self.minimum_exclusive else value < low)
        too_high = high is not None and value > high
        if not (too_low or too_high):
            return None
        return OutOfRange(field=path, message=range_message(self))


def range_message(rule: Rule) -> str:
    """«Значение должно быть от 1 до 50.» and the like, from a rule's range."""
    low = None if rule.minimum is None else Decimal(rule.minimum)
    high = None if rule.maximum is None else Decimal(rule.maximum)
    if low is not None and high is not None:
        if rule.minimum_exclusive:
            return f"Значение должно быть больше {_number(low)} и не больше {_number(high)}."
        return f"Значение должно быть от {_number(low)} до {_number(high)}."
    if low is not None:
        return f"Значение должно быть {'больше' if rule.minimum_exclusive else 'не меньше'} {_number(low)}."
    assert high is not None
    return f"Значение должно быть не больше {_number(high)}."


def _with_rule(description: str, rule: Rule) -> str:
    extra = rule.describe()
    return f"{description} {extra}" if extra else description


def field(description: str, rule: Rule, *, default: Any = None) -> Any:
    """An input field with its rule: enforced by :class:`EnforceInputRules`, stated in the description.

    ``default=MISSING`` declares a field without a default (the client must send it, maybe as null).
    """
    return strawberry.field(default=default, description=_with_rule(description, rule), metadata={RULE: rule})


def argument(description: str, rule: Rule) -> Any:
    """A top-level argument with its rule (use inside ``Annotated[...]``)."""
    return strawberry.argument(description=_with_rule(description, rule), metadata={RULE: rule})


NO_RULE = Rule()

# The vocabulary shared by the domains' input types (column sizes in ``models/``).
EMAIL = Rule(max_length=254)
PHONE = Rule(max_length=32)
FULL_NAME = Rule(max_length=100)
DEVICE_NAME = Rule(max_length=128)
TITLE = Rule(max_length=200)
LONG_TEXT = Rule(max_length=5000)
"""Appeals, applications, operators' answers and reasons (they reach the customer's notifications)."""
COMMENT = Rule(max_length=1000)
ADDRESS = Rule(max_length=500)
ACCOUNT_NUMBER = Rule(max_length=20)
MONEY = Rule(minimum=Decimal("-999999999999.99"), maximum=Decimal("999999999999.99"))
"""Roubles: what a NUMERIC(14, 2) column holds; the domains keep their own minimums and totals."""


def _rule_of(metadata: Mapping[Any, Any] | None) -> Rule:
    rule = (metadata or {}).get(RULE)
    return rule if isinstance(rule, Rule) else NO_RULE


def check_value(value: Any, rule: Rule, path: list[str]) -> list[DomainError]:
    """Every rule broken by ``value`` (a string, number, list or Strawberry input object) and inside it."""
    if value is None or isinstance(value, bool | enum.Enum):
        return []
    if isinstance(value, str):
        error = rule.check_text(value, path)
        return [error] if error else []
    if isinstance(value, Decimal | int):
        error = rule.check_number(value, path)
        return [error] if error else []
    if isinstance(value, list | tuple):
        errors: list[DomainError] = []
        for index, item in enumerate(value):
            errors.extend(check_value(item, rule, [*path, str(index)]))
        return errors
    if has_object_definition(value):
        errors = []
        for item in value.__strawberry_definition__.fields:
            name = item.graphql_name or to_camel_case(item.python_name)
            errors.extend(
                check_value(getattr(value, item.python_name, None), _rule_of(item.metadata), [*path, name])
            )
        return errors
    return []  # uploads, dates, IDs: checked by their own scalars and the services


def check_arguments(strawberry_field: StrawberryField, kwargs: Mapping[str, Any]) -> list[DomainError]:
    """Every rule broken by the arguments of one call of ``strawberry_field``."""
    errors: list[DomainError] = []
    for arg in strawberry_field.arguments:
        name = arg.graphql_name or to_camel_case(arg.python_name)
        errors.extend(check_value(kwargs.get(arg.python_name), _rule_of(arg.metadata), [name]))
    return errors


def _payload_type(strawberry_field: StrawberryField) -> type | None:
    kind: Any = strawberry_field.type
    if isinstance(kind, StrawberryOptional):
        kind = kind.of_type
    if isinstance(kind, StrawberryList) or not has_object_definition(kind):
        return None
    names = {item.python_name for item in kind.__strawberry_definition__.fields}
    return kind if "user_errors" in names else None


_EMPTY: dict[type, Any] = {bool: False, int: 0, str: ""}


def error_payload(payload: type, errors: list[DomainError]) -> Any:
    """An instance of a mutation's payload carrying only ``userErrors`` (everything else empty), typed by
    the domain of its ``userErrors`` field (``schema.errors.ErrorDomain``)."""
    from schema.errors import domain_of

    values: dict[str, Any] = {}
    domain = None
    for item in payload.__strawberry_definition__.fields:  # type: ignore[attr-defined]
        if item.python_name == "user_errors":
            domain = domain_of(getattr(item.type, "of_type", None))
            continue
        if item.base_resolver is not None:
            continue
        kind: Any = item.type
        if isinstance(kind, StrawberryOptional):
            values[item.python_name] = None
        elif isinstance(kind, StrawberryList):
            values[item.python_name] = []
        else:
            values[item.python_name] = _EMPTY.get(kind)
    if domain is None:
        raise TypeError(f"{payload.__name__}.userErrors is not typed by a domain's XxxError")
    return payload(**values, user_errors=domain.many(errors))


class InvalidInput(Exception):
    """Raised for fields without a payload: graphql-core turns it into an error with a code."""


class EnforceInputRules(FieldExtension):
    """Checks a field's arguments against their rules before its resolver runs.

    A payload with ``userErrors`` gets the errors there; any other field gets one GraphQL error with
    ``extensions.code`` ``BAD_USER_INPUT`` (still no resolver call).
    """

    def apply(self, field: StrawberryField) -> None:
        """Remember the field (its arguments carry the rules)."""
        self.field = field
        self.payload = _payload_type(field)

    def _refusal(self, errors: list[DomainError]) -> Any:
        if self.payload is not None:
            return error_payload(self.payload, errors)
        from graphql import GraphQLError

        first = errors[0]
        raise GraphQLError(
            first.text, extensions={"code": "BAD_USER_INPUT", "reason": first.code, "field": first.field}
        )

    def resolve(self, next_: Callable[..., Any], source: Any, info: Any, **kwargs: Any) -> Any:
        """Sync resolvers."""
        errors = check_arguments(self.field, kwargs)
        if errors:
            return self._refusal(errors)
        return next_(source, info, **kwargs)

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Any, **kwargs: Any
    ) -> Any:
        """Async resolvers."""
        errors = check_arguments(self.field, kwargs)
        if errors:
            return self._refusal(errors)
        return await next_(source, info, **kwargs)


def enforce_on(root: type) -> None:
    """Put :class:`EnforceInputRules` on every field of a root type (once, however often it is called)."""
    for item in root.__strawberry_definition__.fields:  # type: ignore[attr-defined]
        if not item.arguments or any(isinstance(ext, EnforceInputRules) for ext in item.extensions):
            continue
        item.extensions = [*item.extensions, EnforceInputRules()]


def document_text_limits(schema: Any) -> None:
    """Append "At most N characters." to every String argument and input field of queries and mutations
    that declares no rule of its own, so the default limit (:data:`DEFAULT_MAX_LENGTH`) is in the API docs
    like every declared one (subscription arguments are parsed or hashed, not stored)."""
    from graphql import GraphQLInputObjectType, GraphQLObjectType, GraphQLString, get_named_type

    note = f"At most {DEFAULT_MAX_LENGTH} characters."
    places: list[Any] = []
    for name, kind in schema.type_map.items():
        if name.startswith("__"):
            continue
        if isinstance(kind, GraphQLInputObjectType):
            places += kind.fields.values()
        elif isinstance(kind, GraphQLObjectType) and kind is not schema.subscription_type:
            places += [arg for field in kind.fields.values() for arg in field.args.values()]
    for value in places:
        if get_named_type(value.type) is GraphQLString and "At most" not in (value.description or ""):
            value.description = f"{value.description} {note}" if value.description else note
