"""Expected failures returned in a mutation's payload (``userErrors``), never as top-level errors.

Each domain types its errors (issue 19, Saleor's ``XxxErrorCode`` model): an enum of every code its
mutations can return (:func:`error_code_enum`, built from the domain errors the domain's resolvers can reach,
each value described by its class's docstring), an interface ``XxxError`` whose ``code`` is that enum, a
default type implementing it and an :class:`ErrorDomain` that turns ``DomainError``s into those types.
``UserError`` (``code: String``) is the untyped shape, kept for payloads not typed by a domain yet.
"""

from __future__ import annotations

import enum
import importlib
import inspect
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any, Protocol

import strawberry

from services import errors as common_errors
from services import pagination as pagination_service
from services.errors import DomainError


@strawberry.interface(
    description=(
        "An expected problem with the input or the state of things, reported in a payload's `userErrors`. "
        "`code` is stable for programs, `message` is the text to show to the user (Russian), `field` is the "
        "path of the input it concerns. Specific errors implement this interface and carry more data."
    )
)
class UserError:
    """Common shape of every user-facing error."""

    code: str = strawberry.field(description="Stable machine-readable code, e.g. `READING_BELOW_PREVIOUS`.")
    message: str = strawberry.field(description="Human-readable text to show the user, in Russian.")
    field: list[str] | None = strawberry.field(
        description='Path of the input field at fault, e.g. `["input", "phone"]`; null for the whole input.'
    )


@strawberry.type(description="A user error with no data beyond code, message and field.")
class InputError(UserError):
    """The default implementation of :class:`UserError`."""


ErrorFactory = Callable[[DomainError], UserError]
_factories: dict[type[DomainError], ErrorFactory] = {}


def register_user_error(domain_error: type[DomainError]) -> Callable[[ErrorFactory], ErrorFactory]:
    """Map a domain error class (and its subclasses) to a GraphQL error type with extra fields."""

    def decorator(factory: ErrorFactory) -> ErrorFactory:
        _factories[domain_error] = factory
        return factory

    return decorator


def user_error(error: DomainError) -> UserError:
    """The GraphQL error for a domain error: its registered type, else :class:`InputError`."""
    for cls in type(error).__mro__:
        factory = _factories.get(cls)  # type: ignore[arg-type]
        if factory is not None:
            return factory(error)
    return InputError(code=error.code, message=error.text, field=error.field)


def user_errors(errors: Iterable[DomainError]) -> list[UserError]:
    """Map several domain errors at once (validation that reports every bad field)."""
    return [user_error(error) for error in errors]


# --- typed per domain (issue 19) ---------------------------------------------------------------------------


def domain_errors_in(module: ModuleType) -> list[type[DomainError]]:
    """The ``DomainError`` classes a module defines (not those it imports)."""
    return [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, DomainError) and value.__module__ == module.__name__
    ]


def _summary(cls: type) -> str:
    if cls is DomainError:
        return "The input is invalid (no more specific code applies)."
    doc = inspect.cleandoc(cls.__doc__ or "").replace("``", "`")
    return " ".join(doc.split("\n\n")[0].split())


def error_code_enum(name: str, description: str, *modules: str) -> type[enum.Enum]:
    """A GraphQL enum of the codes of every ``DomainError`` defined in ``modules`` (dotted names) plus the
    codes every mutation may return (``services.errors``, ``services.pagination``, the input rules of
    ``schema.rules``). Each value is described by the first paragraph of its class's docstring (the first
    class found for a code); member values equal their names, so clients see the same strings as before."""
    from schema import rules  # schema.rules reaches this module only inside functions

    described: dict[str, str] = {}
    for module in (common_errors, pagination_service, rules, *map(importlib.import_module, modules)):
        for cls in domain_errors_in(module):
            described.setdefault(cls.code, _summary(cls))
    missing = sorted(code for code, text in described.items() if not text)
    if missing:
        raise TypeError(f"{name}: no docstring to describe {', '.join(missing)}")
    codes = enum.Enum(name, [(code, code) for code in sorted(described)], type=str)  # type: ignore[misc]
    registered = strawberry.enum(codes, name=name, description=description)
    for value in registered.__strawberry_definition__.values:  # type: ignore[attr-defined]
        value.description = described[value.name]
    return registered  # type: ignore[no-any-return]


class DomainUserError(Protocol):
    """What a domain's error types are built with (code, message, field)."""

    def __init__(self, *, code: Any, message: str, field: list[str] | None, **data: Any) -> None: ...


class ErrorDomain:
    """Turns ``DomainError``s into one domain's GraphQL error types (its ``XxxError`` interface's)."""

    def __init__(self, codes: type[enum.Enum], default: type[Any]) -> None:
        self.codes = codes
        self.default = default
        self._factories: dict[type[DomainError], Callable[[DomainError, Any], Any]] = {}

    def code(self, error: DomainError) -> Any:
        """The enum member of ``error``'s code (a ``ValueError`` when the domain does not declare it: the
        tests prove that every reachable code is declared)."""
        return self.codes(error.code)

    def register(
        self, domain_error: type[DomainError]
    ) -> Callable[[Callable[[DomainError, Any], Any]], Callable[[DomainError, Any], Any]]:
        """Map a domain error class (and its subclasses) to an error type with extra fields; the factory
        gets the error and its code's enum member."""

        def decorator(factory: Callable[[DomainError, Any], Any]) -> Callable[[DomainError, Any], Any]:
            self._factories[domain_error] = factory
            return factory

        return decorator

    def one(self, error: DomainError) -> Any:
        """The GraphQL error for a domain error: its registered type, else the domain's default type."""
        code = self.code(error)
        for cls in type(error).__mro__:
            factory = self._factories.get(cls)
            if factory is not None:
                return factory(error, code)
        return self.default(code=code, message=error.text, field=error.field)

    def many(self, errors: Iterable[DomainError]) -> list[Any]:
        """Map several domain errors at once (validation that reports every bad field)."""
        return [self.one(error) for error in errors]


_domains: dict[type, ErrorDomain] = {}


def error_domain(interface: type, codes: type[enum.Enum], default: type[Any]) -> ErrorDomain:
    """The :class:`ErrorDomain` of a domain's ``XxxError`` interface (``schema.rules`` finds it from a
    payload's ``userErrors`` type to report input-rule errors)."""
    found = _domains[interface] = ErrorDomain(codes, default)
    return found


def domain_of(interface: Any) -> ErrorDomain | None:
    """The :class:`ErrorDomain` registered for an interface, if any."""
    return _domains.get(interface)
