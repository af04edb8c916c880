"""Assembles the Strawberry schema from every domain's types and exports its SDL."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncGenerator

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from app.settings import Settings
from schema.branches import BranchQueries
from schema.errors import error_types
from schema.identity import IdentityQueries
from schema.scalars import SCALAR_OVERRIDES, YearMonthScalar

log = logging.getLogger("kabinet.graphql")


QUERIES: tuple[type, ...] = (IdentityQueries, BranchQueries)
"""Each domain's query class; add a domain's here (its fields join the root Query)."""

MUTATIONS: tuple[type, ...] = ()
"""Each domain's mutation class; add a domain's here (its fields join the root Mutation)."""

SUBSCRIPTIONS: tuple[type, ...] = ()
"""Each domain's subscription class; add a domain's here (its fields join the root Subscription)."""


@strawberry.type(description="Everything a client can read.")
class Query(*QUERIES):  # type: ignore[misc]
    """The root query: each domain contributes its fields by inheritance."""

    node: relay.Node | None = relay.node(
        description="Any object by its global ID, if it exists and the caller may see it."
    )


@strawberry.type(description="Streams of events over graphql-transport-ws.")
class Subscription(*SUBSCRIPTIONS):  # type: ignore[misc]
    """The root subscription type."""

    @strawberry.subscription(
        description=(
            "Server time every `intervalSeconds` (0.01–60), `count` times: checks that the websocket works."
        )
    )
    async def server_time(
        self,
        info: strawberry.Info,
        count: int = 5,
        interval_seconds: float = 1.0,
    ) -> AsyncGenerator[dt.datetime, None]:
        interval = min(max(interval_seconds, 0.01), 60.0)
        for index in range(max(0, min(count, 1000))):
            if index:
                await asyncio.sleep(interval)
            yield dt.datetime.now(dt.UTC)


class KabinetSchema(strawberry.Schema):
    """Strawberry's schema, minus its habit of logging every error with a traceback.

    Expected errors (validation, authentication, bad IDs) are the client's business; unexpected ones
    are logged in full by :class:`schema.extensions.MaskUnexpectedErrors` before being masked.
    """

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log expected errors briefly at debug level."""
        for error in errors:
            log.debug("graphql error at %s: %s", error.path, error.message)


def build_schema(settings: Settings | None = None) -> KabinetSchema:
    """The schema with the protection extensions configured from ``settings``."""
    from schema.extensions import MaskUnexpectedErrors, StaffOnlyIntrospection

    settings = settings or Settings()
    extensions: list[object] = [
        QueryDepthLimiter(max_depth=settings.max_query_depth),
        MaxTokensLimiter(max_token_count=settings.max_query_tokens),
        MaxAliasesLimiter(max_alias_count=settings.max_query_aliases),
        MaskUnexpectedErrors,
    ]
    if settings.is_production:
        from graphql.pyutils import did_you_mean

        did_you_mean.__globals__["MAX_LENGTH"] = 0  # no "Did you mean …" suggestions leak the schema
        extensions.append(StaffOnlyIntrospection)
    mutation = None
    if MUTATIONS:
        mutation = strawberry.type(
            type("Mutation", MUTATIONS, {"__doc__": "The root mutation."}),
            description="Everything a client can change.",
        )
    return KabinetSchema(
        query=Query,
        mutation=mutation,
        subscription=Subscription,
        types=[*error_types()],
        scalar_overrides=SCALAR_OVERRIDES,  # type: ignore[arg-type]
        extensions=extensions,  # type: ignore[arg-type]
        config=StrawberryConfig(auto_camel_case=True),
    )


def export_sdl() -> str:
    """The SDL of the schema, as committed in ``graphql.schema``."""
    return build_schema().as_str() + "\n"


__all__ = ["Query", "Subscription", "YearMonthScalar", "build_schema", "export_sdl"]
