"""Query cost: a static price for every operation, a maximum per operation and a budget per client per minute,
reported on every HTTP answer as ``extensions.cost`` (issue 20; the model follows Shopify's and Kraken's).

**Requested cost** is computed from the document before it runs (fragments expanded, ``@skip``/``@include``
honoured, variables applied):

- a scalar or enum field costs 0; an object field costs 1 plus its selection;
- a list field costs its *size* × (1 + its selection), where the size is the field's ``first``/``last``
  argument (a Relay connection passes it on to its ``edges``), the number of ``ids`` of ``nodes``, the
  size declared in :data:`DECLARED_SIZES`, or :data:`DEFAULT_LIST_SIZE`;
- a mutation's root field costs :data:`MUTATION_COST` more (writes are dearer than reads);
- introspection (``__schema``, ``__type``) costs a flat :data:`INTROSPECTION_COST`.

**Actual cost** is counted from the answer: one per object in ``data`` (what really ran), never more than
the requested cost. A cached answer costs the same as a fresh one (the cache is ours, not the client's).

**Budget**: each client — the user when logged in, else the client address — may spend
``KABINET_COST_BUDGET_PER_MINUTE`` per fixed minute of the one clock. The requested cost is reserved
before the operation runs (one atomic INCRBY both checks and charges, so operations running at the same
time cannot together overspend) and what it did not use is given back after: the actual cost is what
stays charged. An operation whose requested cost exceeds ``KABINET_MAX_QUERY_COST`` is refused before it
runs (HTTP 400, ``QUERY_TOO_COSTLY``); one that exceeds what is left of the budget is refused with HTTP
429, ``RATE_LIMITED``, ``retryAfterSeconds`` and a ``Retry-After`` header.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    parse,
    value_from_ast_untyped,
)

from services import clock
from services.limits import Counters, Hit

DEFAULT_LIST_SIZE = 10
"""The size assumed for a list field that declares none and takes no ``first``."""

MUTATION_COST = 10
MAX_PAGE = 1_000_000
"""A ``first:`` above this counts as this (the argument itself is refused by the field's own limit)."""
MAX_REPORTED_COST = 2**53 - 1
"""Costs are reported as JSON numbers: no larger than a double holds exactly."""
INTROSPECTION_COST = 100
WINDOW_SECONDS = 60

DECLARED_SIZES: Mapping[str, int] = {
    "Account.charges": 12,  # months: the default range (D8 allows up to 36 with from/to)
    "Account.payments": 12,
    "Account.events": 12,
    "Account.balanceHistory": 12,
    "Account.statistics": 3,
    "Account.tariffs": 6,
    "Account.meters": 4,
    "Meter.lastReadings": 3,  # zones
    "ChargeMonth.charges": 8,
    "AccountBalance.suppliers": 3,
    "Query.nodes": 10,
}
"""Realistic sizes of lists whose length the client does not choose ("Type.field")."""


@dataclass(frozen=True, slots=True)
class Budget:
    """What is left of a client's minute."""

    limit: int
    remaining: int
    reset_at: dt.datetime


@lru_cache(maxsize=512)
def _parse(query: str) -> DocumentNode | None:
    try:
        return parse(query)
    except GraphQLError:
        return None  # graphql-core reports the syntax error when it runs the request


REQUESTED_CACHE_SIZE = 1024
_REQUESTED: dict[tuple[Any, ...], tuple[GraphQLSchema, int]] = {}
"""Static costs already computed, per process: (schema id, query, operation name, variables as sorted JSON)
→ (schema, cost). The cost is a pure function of those; the dashboard's walk of ~50 fields was ~5 % of an
uncached request (issue 21)."""


def requested_cost(
    schema: GraphQLSchema, query: str, variables: Mapping[str, Any] | None, operation_name: str | None
) -> int:
    """The static cost of the operation (0 when the document does not parse or names no operation)."""
    try:
        shown = orjson.dumps(variables, option=orjson.OPT_SORT_KEYS) if variables else b""
    except TypeError:  # not JSON (a caller's own values): no memo
        return _requested_cost(schema, query, variables, operation_name)
    key = (id(schema), query, operation_name, shown)
    found = _REQUESTED.get(key)
    if found is not None and found[0] is schema:
        return found[1]
    cost = _requested_cost(schema, query, variables, operation_name)
    if len(_REQUESTED) >= REQUESTED_CACHE_SIZE:
        _REQUESTED.pop(next(iter(_REQUESTED)))
    _REQUESTED[key] = (schema, cost)
    return cost


def _requested_cost(
    schema: GraphQLSchema, query: str, variables: Mapping[str, Any] | None, operation_name: str | None
) -> int:
    document = _parse(query)
    if document is None:
        return 0
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = next(
        (op for op in operations if operation_name is None or (op.name and op.name.value == operation_name)),
        None,
    )
    if chosen is None:
        return 0
    root = {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }[chosen.operation]
    if root is None:
        return 0
    walker = _Walker(schema, fragments, dict(variables or {}))
    extra = MUTATION_COST if chosen.operation is OperationType.MUTATION else 0
    return min(walker.selection(root, chosen.selection_set, root_extra=extra), MAX_REPORTED_COST)


class _Walker:
    def __init__(
        self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode], variables: dict[str, Any]
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    def _value(self, node: Any) -> Any:
        return value_from_ast_untyped(node, self.variables)

    def _included(self, node: Any) -> bool:
        for directive in node.directives or ():
            condition = next((a for a in directive.arguments or () if a.name.value == "if"), None)
            value = bool(self._value(condition.value)) if condition is not None else True
            if directive.name.value == "skip" and value:
                return False
            if directive.name.value == "include" and not value:
                return False
        return True

    def _fields(self, selection_set: SelectionSetNode, seen: frozenset[str] = frozenset()) -> list[FieldNode]:
        out: list[FieldNode] = []
        for selection in selection_set.selections:
            if not self._included(selection):
                continue
            if isinstance(selection, FieldNode):
                out.append(selection)
            elif isinstance(selection, InlineFragmentNode):
                out += self._fields(selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is not None and name not in seen:  # a cycle is a validation error anyway
                    out += self._fields(fragment.selection_set, seen | {name})
        return out

    def selection(
        self, parent: Any, selection_set: SelectionSetNode | None, *, root_extra: int = 0, inherited: int = 0
    ) -> int:
        if selection_set is None:
            return 0
        total = 0
        possible = (
            self.schema.get_possible_types(parent)
            if isinstance(parent, GraphQLInterfaceType | GraphQLUnionType)
            else [parent]
        )
        for node in self._fields(selection_set):
            name = node.name.value
            if name in {"__schema", "__type"}:
                total += INTROSPECTION_COST
                continue
            if name == "__typename":
                continue
            field = None
            owner = parent
            for candidate in possible:
                fields = getattr(candidate, "fields", {})
                if name in fields:
                    field, owner = fields[name], candidate
                    break
            if field is None and isinstance(parent, GraphQLInterfaceType) and name in parent.fields:
                field = parent.fields[name]
            if field is None:
                continue  # unknown field: validation refuses the document
            total += root_extra + self._field(owner, name, field, node, inherited)
        return total

    def _field(self, owner: Any, name: str, field: Any, node: FieldNode, inherited: int) -> int:
        kind = field.type
        while isinstance(kind, GraphQLNonNull):
            kind = kind.of_type
        named = get_named_type(kind)
        if not isinstance(named, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType):
            return 0
        args = {a.name.value: self._value(a.value) for a in node.arguments or ()}
        page = next((args[k] for k in ("first", "last") if isinstance(args.get(k), int)), None)
        if isinstance(kind, GraphQLList):
            size = (
                len(args["ids"])
                if name == "nodes" and isinstance(args.get("ids"), list)
                else inherited or DECLARED_SIZES.get(f"{owner.name}.{name}", DEFAULT_LIST_SIZE)
            )
            if page is not None:
                size = min(page, MAX_PAGE)
            return max(size, 0) * (1 + self.selection(named, node.selection_set))
        # an object (e.g. a Relay connection) passes its page size on to its edges
        return 1 + self.selection(named, node.selection_set, inherited=min(max(page or 0, 0), MAX_PAGE))


def count_objects(data: Any) -> int:
    """JSON objects (dicts) in ``data``, itself included."""
    count, stack = 0, [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            count += 1
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def actual_cost(data: Any) -> int:
    """Objects in an answer's ``data`` (the root itself not counted). The fast executor counts them while
    it builds the answer (``Context.answer_objects``); this walk is for graphql-core's answers."""
    return max(count_objects(data) - 1, 0)


@dataclass(frozen=True, slots=True)
class Reservation:
    """An operation's requested cost, taken from its client's minute while it runs (``CostMeter.reserve``)."""

    hit: Hit
    requested: int
    over: bool
    """The reservation took the client past its budget: the operation is refused (and it is given back)."""


class CostMeter:
    """Checks and charges operations against the per-client budget (one per process, counters shared in
    Redis like the rate limits)."""

    def __init__(self, counters: Counters, *, budget_per_minute: int, max_cost: int) -> None:
        self.counters = counters
        self.limit = budget_per_minute
        self.max_cost = max_cost

    def _key(self, client: str) -> str:
        return f"cost:{client}"

    async def budget(self, client: str, spend: int = 0) -> Budget:
        """Charge ``spend`` (0: just look) and return what is left of the current minute."""
        hit = await self.counters.spend(self._key(client), spend, WINDOW_SECONDS)
        return self._left(hit, hit.count)

    def _left(self, hit: Hit, spent: int) -> Budget:
        reset_at = (clock.now() + dt.timedelta(seconds=hit.retry_after_seconds)).replace(microsecond=0)
        return Budget(self.limit, max(self.limit - spent, 0), reset_at)

    async def reserve(self, client: str, requested: int) -> Reservation:
        """Take ``requested`` from the client's minute before the operation runs — one Redis round trip that
        both checks and charges (a look before and a charge after were two, ~5 % of a small query's CPU,
        issue 21) — and so that operations running at the same time cannot together spend more than is
        left. :meth:`release` gives back what the operation did not use."""
        hit = await self.counters.spend(self._key(client), requested, WINDOW_SECONDS)
        return Reservation(hit, requested, over=hit.count > self.limit)

    def release(self, reservation: Reservation, used: int) -> Budget:
        """Settle a reservation: the part of it not ``used`` goes back to the client's minute (without
        waiting for Redis); returns what is left after."""
        unused = reservation.requested - used
        self.counters.give_back(reservation.hit, unused)
        return self._left(reservation.hit, reservation.hit.count - max(unused, 0))

    def report(self, requested: int, actual: int | None, budget: Budget) -> dict[str, Any]:
        """The ``extensions.cost`` object of an answer."""
        return {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "maximumQueryCost": self.max_cost,
            "budget": {
                "limit": budget.limit,
                "remaining": budget.remaining,
                "resetAt": budget.reset_at.isoformat(),
            },
        }
