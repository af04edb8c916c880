"""Schema extensions: limits that protect the API, error masking with full logs, introspection policy."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError, ValidationRule
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import MaskErrors, SchemaExtension

from schema.permissions import STAFF_ROLES

log = logging.getLogger("kabinet.graphql")


def is_unexpected(error: GraphQLError) -> bool:
    """True for errors caused by a bug (any exception that is not a GraphQLError raised on purpose)."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


class MaskUnexpectedErrors(MaskErrors):
    """Logs unexpected errors with their traceback, then replaces them with a neutral message.

    Validation errors, authentication errors and other ``GraphQLError``s raised on purpose reach the
    client unchanged; expected domain failures never get here (they are ``userErrors``).
    """

    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected, error_message="Internal server error")

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        for error in errors:
            if is_unexpected(error):
                log.error(
                    "unexpected error at %s: %s", error.path, error.message, exc_info=error.original_error
                )
        return super()._process_errors(errors)


class StaffOnlyIntrospection(SchemaExtension):
    """In production, only staff tokens (e.g. analysts in GraphiQL) may introspect the schema."""

    def on_validate(self) -> Iterator[None]:
        """Add graphql-core's no-introspection rule for everybody else."""
        context = self.execution_context.context
        viewer = getattr(context, "viewer", None)
        if viewer is None or viewer.role not in STAFF_ROLES:
            rules: list[type[ValidationRule]] = list(self.execution_context.validation_rules)
            rules.append(NoSchemaIntrospectionCustomRule)
            self.execution_context.validation_rules = tuple(rules)
        yield
