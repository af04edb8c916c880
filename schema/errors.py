"""Expected failures returned in a mutation's payload (``userErrors``), never as top-level errors.

Each domain types its errors (issue 19, Saleor's ``XxxErrorCode`` model): an enum of every code its
mutations can return (:func:`error_code_enum`, built from the domain errors the domain's resolvers can reach,
each value described by its class's docstring), an interface ``XxxError`` whose ``code`` is that enum, a
default type implementing it and an :class:`ErrorDomain` that turns ``DomainError``s into those types.
Every payload's ``userErrors`` is typed by its domain's interface (``tests/test_error_codes.py``).
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
    return registered


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
