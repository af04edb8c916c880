"""``UserError``: expected failures returned in a mutation's payload, never as top-level errors."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import strawberry

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
