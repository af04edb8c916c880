"""Schema extensions: limits that protect the API, error masking with full logs, introspection policy."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from graphql import ASTValidationRule, GraphQLError, parse
from graphql.execution import ExecutionResult as GraphQLExecutionResult
from graphql.validation import NoSchemaIntrospectionCustomRule
from sqlalchemy.exc import TimeoutError as PoolTimeout
from strawberry.extensions import MaskErrors

from resolvers.permissions import STAFF_ROLES
from schema.limits import first_list_too_long, validate_cached
from schema.scalars import InvalidScalarValue
from services.errors import DomainError

log = logging.getLogger("kabinet.graphql")


def is_unexpected(error: GraphQLError) -> bool:
    """True for errors caused by a bug (any exception that is not a GraphQLError raised on purpose).

    A value our scalars refuse (``InvalidScalarValue``) is the client's mistake: graphql-core reports it as
    a validation error ("Expected value of type 'Decimal', …") carrying the parser's exception."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError | InvalidScalarValue)


SERVICE_BUSY = "SERVICE_BUSY"
"""Top-level code of an operation that found every pooled database connection busy for longer than
``KABINET_DB_POOL_TIMEOUT``: the server's load, not a bug nor the client's mistake — retry shortly."""
SERVICE_BUSY_MESSAGE = "The service is busy; try again in a second."
SERVICE_BUSY_RETRY_SECONDS = 1


def service_busy(error: GraphQLError) -> GraphQLError:
    """An exhausted database pool as the client's error (``SERVICE_BUSY``), logged at WARNING, once."""
    log.warning(
        "database pool exhausted: an operation waited out KABINET_DB_POOL_TIMEOUT (at %s)", error.path
    )
    return GraphQLError(
        SERVICE_BUSY_MESSAGE,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": SERVICE_BUSY, "retryAfterSeconds": SERVICE_BUSY_RETRY_SECONDS},
    )


def domain_error(error: GraphQLError) -> GraphQLError:
    """A domain refusal that reached the top level (a query's or subscription's, which have no
    ``userErrors``) as the client's error: its message and ``extensions.code``, not a masked bug; an
    exhausted database pool as :data:`SERVICE_BUSY`."""
    original = error.original_error
    if isinstance(original, PoolTimeout):
        return service_busy(error)
    if not isinstance(original, DomainError):
        return error
    extensions: dict[str, Any] = {"code": original.code}
    if original.field:
        extensions["field"] = original.field
    return GraphQLError(
        original.text,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


class MaskUnexpectedErrors(MaskErrors):
    """Logs unexpected errors with their traceback, then replaces them with a neutral message.

    Validation errors, authentication errors and other ``GraphQLError``s raised on purpose reach the
    client unchanged; expected domain failures never get here (they are ``userErrors``).
    """

    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected, error_message="Internal server error")

    def _process_result(self, result: object) -> None:
        # Nothing to mask without errors. Strawberry's check is an isinstance of a runtime-checkable
        # Protocol, ~10 µs: at 10,000 subscribers it was 8 % of a server's CPU (every streamed result).
        if getattr(result, "errors", None):
            super()._process_result(result)

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        errors = [domain_error(error) for error in errors]
        for error in errors:
            if is_unexpected(error):
                log.error(
                    "unexpected error at %s: %s", error.path, error.message, exc_info=error.original_error
                )
        return super()._process_errors(errors)


_PARSE = lru_cache(maxsize=512)(parse)
"""Parsed documents by text and parse options (Strawberry's ``ParserCache``: the same document object for
the same text, which the validation cache keys by identity)."""


class RequestRules(MaskUnexpectedErrors):
    """Every per-operation rule of the schema, as ONE extension (issue 21):

    - the depth and alias limits added to validation (Strawberry's ``AddValidationRules``) and the token
      limit set for parsing (``MaxTokensLimiter``), before anything else;
    - errors masked and unexpected ones logged afterwards (:class:`MaskUnexpectedErrors`, which this is);
    - parsing through a shared cache (``ParserCache``);
    - in production, introspection for staff only (graphql-core's no-introspection rule for everybody
      else), then validation through :func:`schema.limits.validate_cached` (once per document and rule
      set, at most 10 errors, then ``TOO_MANY_ERRORS``);
    - ``LIST_TOO_LONG`` before anything is resolved (``ListLengthLimiter``).

    The same hooks in the same order as the six extensions it replaces (five of them Strawberry's), which
    Strawberry instantiated and wrapped hook by hook on every request: 28 hook lookups and 7 generator
    context managers per operation."""

    def __init__(
        self, limit_rules: tuple[type[ASTValidationRule], ...], max_tokens: int, staff_introspection: bool
    ) -> None:
        super().__init__()
        self.limit_rules = limit_rules
        self.max_tokens = max_tokens
        self.staff_introspection = staff_introspection

    def on_operation(self) -> Iterator[None]:
        """The limits for parsing and validation; then, around the operation, error masking."""
        context = self.execution_context
        context.validation_rules = context.validation_rules + self.limit_rules
        context.parse_options["max_tokens"] = self.max_tokens
        yield from super().on_operation()

    def on_parse(self) -> Iterator[None]:
        """Parse once per text (and options)."""
        context = self.execution_context
        context.graphql_document = _PARSE(context.query, **context.parse_options)
        yield

    def on_validate(self) -> Iterator[None]:
        """Introspection for staff only (production), then the cached, bounded validation."""
        context = self.execution_context
        if self.staff_introspection:
            viewer = getattr(context.context, "viewer", None)
            if viewer is None or viewer.role not in STAFF_ROLES:
                context.validation_rules = (*context.validation_rules, NoSchemaIntrospectionCustomRule)
        assert context.graphql_document is not None
        context.pre_execution_errors = validate_cached(
            context.schema._schema,
            context.graphql_document,
            tuple(context.validation_rules),
        )
        yield

    def on_execute(self) -> Iterator[None]:
        """Answer ``LIST_TOO_LONG`` instead of executing."""
        context = self.execution_context
        if context.graphql_document is not None:
            found = first_list_too_long(
                context.schema._schema,
                context.graphql_document,
                context.variables,
            )
            if found is not None:
                context.result = GraphQLExecutionResult(data=None, errors=[found])
        yield
