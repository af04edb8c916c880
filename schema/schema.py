"""Assembles the Strawberry schema from every domain's types and exports its SDL."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.extensions import (
    MaxAliasesLimiter,
    QueryDepthLimiter,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from resolvers.context import Info
from resolvers.permissions import require_viewer
from schema import accounts, appeals, content, identity, notifications, payments, readings
from schema.accounts import AccountMutations, AccountQueries
from schema.analytics import AnalyticsQueries
from schema.appeals import AppealMutations, AppealQueries
from schema.branches import BranchQueries
from schema.identity import (
    AltLoginMutations,
    ExternalLoginMutations,
    ExternalLoginQueries,
    IdentityMutations,
    IdentityQueries,
    IdentitySubscriptions,
)
from schema.node import node_guess, parse_global_id, resolve_global_id, speculative
from schema.notifications import NotificationMutations, NotificationQueries, NotificationSubscriptions
from schema.payments import PaymentMutations, PaymentQueries, PaymentSubscriptions
from schema.policy import apply_policy
from schema.readings import ReadingMutations, ReadingQueries
from schema.rules import document_text_limits, enforce_on
from schema.scalars import SCALAR_MAP
from services import clock

log = logging.getLogger("kabinet.graphql")

SERVER_TIME_MAX_COUNT = 100
"""Most events of one ``serverTime`` stream."""

SERVER_TIME_MIN_INTERVAL = 0.1
"""Shortest interval between ``serverTime`` events, seconds."""


QUERIES: tuple[type, ...] = (
    IdentityQueries,
    ExternalLoginQueries,
    BranchQueries,
    ReadingQueries,
    AccountQueries,
    NotificationQueries,
    AppealQueries,
    *content.QUERIES,
    PaymentQueries,
    AnalyticsQueries,
)
"""Each domain's query class; add a domain's here (its fields join the root Query)."""

MUTATIONS: tuple[type, ...] = (
    IdentityMutations,
    AltLoginMutations,
    ExternalLoginMutations,
    ReadingMutations,
    AccountMutations,
    NotificationMutations,
    AppealMutations,
    *content.MUTATIONS,
    PaymentMutations,
)
"""Each domain's mutation class; add a domain's here (its fields join the root Mutation)."""

ERROR_TYPES: tuple[type, ...] = (
    readings.ReadingInputError,
    *readings.ERROR_TYPES,
    accounts.AccountInputError,
    *accounts.ERROR_TYPES,
    identity.IdentityInputError,
    *identity.ERROR_TYPES,
    payments.PaymentInputError,
    *payments.ERROR_TYPES,
    appeals.AppealInputError,
    notifications.NotificationInputError,
    *content.ERROR_TYPES,
)
"""Every concrete user-error type, so the schema lists each one before a field returns it; a domain with
its own error types exports them as ``ERROR_TYPES`` and joins here (schema.errors knows no domain)."""

SUBSCRIPTIONS: tuple[type, ...] = (IdentitySubscriptions, NotificationSubscriptions, PaymentSubscriptions)
"""Each domain's subscription class; add a domain's here (its fields join the root Subscription)."""


@strawberry.type(description="Everything a client can read.")
class Query(*QUERIES):  # type: ignore[misc]
    """The root query: each domain contributes its fields by inheritance."""

    @strawberry.field(
        description="Any object by its global ID; null if it does not exist or you may not see it."
    )
    @speculative(node_guess)
    async def node(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global ID.")],
    ) -> relay.Node | None:
        return await resolve_global_id(info, id)

    @strawberry.field(
        description="Several objects by global ID, in the same order; null for each one not visible."
    )
    async def nodes(
        self,
        info: Info,
        ids: Annotated[list[strawberry.ID], strawberry.argument(description="Global IDs.")],
    ) -> list[relay.Node | None]:
        # Every ID is parsed before any is looked up: a malformed one fails the field while no lookup is
        # still running on the request's database session (issue 16).
        parsed = [parse_global_id(value) for value in ids]
        return list(await asyncio.gather(*(resolve_global_id(info, global_id) for global_id in parsed)))


@strawberry.type(description="Streams of events over graphql-transport-ws.")
class Subscription(*SUBSCRIPTIONS):  # type: ignore[misc]
    """The root subscription type."""

    @strawberry.subscription(
        description=(
            "Server time every `intervalSeconds` (0.1–60), `count` times (at most 100): checks that the "
            "websocket works. Logged-in users only (anonymous sockets get UNAUTHENTICATED)."
        )
    )
    async def server_time(
        self,
        info: Info,
        count: Annotated[int, strawberry.argument(description="How many messages to send (0–1000).")] = 5,
        interval_seconds: Annotated[
            float, strawberry.argument(description="Seconds between two messages (0.01–60).")
        ] = 1.0,
    ) -> AsyncGenerator[dt.datetime, None]:
        require_viewer(info)  # an anonymous stream cost CPU for nothing (issue 16)
        interval = min(max(interval_seconds, SERVER_TIME_MIN_INTERVAL), 60.0)
        for index in range(max(0, min(count, SERVER_TIME_MAX_COUNT))):
            if index:
                await asyncio.sleep(interval)
            yield clock.now()


@dataclass(frozen=True)
class SchemaSettings:
    """What the schema needs of the settings. The app passes its ``app.settings.Settings`` (same names);
    these defaults equal those settings' defaults (a test compares them) and serve the SDL export."""

    max_query_depth: int = 12
    max_query_aliases: int = 30
    max_query_tokens: int = 4000
    is_production: bool = False


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


def build_schema(settings: Any = None, *, execution_context_class: Any = None) -> KabinetSchema:
    """The schema with the protection extensions configured from ``settings`` (a :class:`SchemaSettings`
    or the app's settings); the app passes its executor (``app.execution.KabinetExecutor``, a graphql-core
    execution context class; typed Any because Strawberry's stubs name that class differently by version)."""
    from schema.extensions import RequestRules
    from schema.limits import document_list_limits

    settings = settings or SchemaSettings()
    # The limit rules are built once, so every request validates with the same rule classes and
    # ValidationCache can serve a document it has validated before (clients repeat a few documents).
    limit_rules = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_query_aliases).validation_rules,
    ]
    max_tokens = settings.max_query_tokens
    # One extension for every per-operation rule (schema.extensions.RequestRules): the limits, masking,
    # the parse cache, the introspection rule (production: in place before validation caches by rule set,
    # or an anonymous introspection query would be validated without it, issue 15), bounded validation
    # (at most 10 errors, then TOO_MANY_ERRORS) and LIST_TOO_LONG before anything is resolved.
    rules = tuple(limit_rules)
    staff_only = settings.is_production
    extensions: list[object] = [lambda: RequestRules(rules, max_tokens, staff_only)]
    # The same input rules guard query arguments: no U+0000 or lone surrogate (PostgreSQL refuses them
    # mid-transaction) and no unbounded string reaches a resolver (issue 16).
    enforce_on(Query)
    mutation = None
    if MUTATIONS:
        mutation = strawberry.type(
            type("Mutation", MUTATIONS, {"__doc__": "The root mutation."}),
            description="Everything a client can change.",
        )
        enforce_on(mutation)  # input rules (schema.rules) are checked before any mutation resolver runs
    schema = KabinetSchema(
        query=Query,
        mutation=mutation,
        subscription=Subscription,
        types=list(ERROR_TYPES),
        extensions=extensions,  # type: ignore[arg-type]
        execution_context_class=execution_context_class,
        config=StrawberryConfig(
            auto_camel_case=True,
            scalar_map=SCALAR_MAP,
            disable_field_suggestions=settings.is_production,  # "Did you mean …" would leak the schema
        ),
    )
    document_list_limits(schema._schema)
    document_text_limits(schema._schema)
    apply_policy(schema._schema)  # personal fields refuse ANALYST (schema.policy, issue 17)
    return schema


def export_sdl() -> str:
    """The SDL of the schema, as committed in ``graphql.schema``."""
    return build_schema().as_str() + "\n"


__all__ = ["Query", "Subscription", "build_schema", "export_sdl"]
