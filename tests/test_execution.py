"""K1: the breadth-first executor (app/execution.py) answers exactly as graphql-core does.

Two apps share one database: one runs queries with ``KABINET_FAST_EXECUTION`` on (the default), the
other with graphql-core's executor. Queries generated from the schema itself — every root query field
and every field below it down to a depth, with fragments on every possible type of an interface or
union — are sent to both as a customer and as an operator; the HTTP bodies must be byte-for-byte equal,
and the fast path must really have answered them (not fallen back).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from graphql import (
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    Undefined,
    get_named_type,
    is_leaf_type,
)
from strawberry import relay

from app import execution
from app.db import Database
from app.main import create_app
from app.settings import Settings
from schema.schema import build_schema
from tests.client import Api
from tests.conftest import login_as
from tests.dates import period

OPERATOR_PHONE = "+72222222222"
SKIPPED_ROOTS = {"node", "nodes", "qrLoginRequest", "askAssistant", "videoCall", "officeSlots"}
"""Root fields needing inputs the generator cannot invent; `node` is covered by hand below."""

DASHBOARD = """query Dashboard {
  accounts(first: 20) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      id number address displayName ownerFullName
      balance { amount status label displayAmount billedPeriod
        suppliers { amount status supplier { id name } } }
      readingWindow { isOpen opensOn closesOn daysUntilOpens daysUntilCloses }
      meters { id serial zoneScheme zones service { code name unit } lastReadings { zone period value } }
      charges { period total charges { zone volume rate amount recalculation total service { id name } } }
    } }
  }
}"""


def _arguments(field: GraphQLField, values: dict[str, str]) -> str | None:
    """Arguments for a generated field: known IDs for required ones; None when one cannot be filled."""
    parts = []
    for name, argument in field.args.items():
        required = isinstance(argument.type, GraphQLNonNull) and argument.default_value is Undefined
        if name in values and str(get_named_type(argument.type)) == "ID":
            parts.append(f'{name}: "{values[name]}"')
        elif required:
            return None
    return f"({', '.join(parts)})" if parts else ""


def _field(
    schema: GraphQLSchema, name: str, field: GraphQLField, depth: int, values: dict[str, str]
) -> str | None:
    """``name(args) { … }`` selecting everything below down to ``depth`` levels; None when not possible."""
    arguments = _arguments(field, values)
    if arguments is None:
        return None
    named = get_named_type(field.type)
    if is_leaf_type(named):
        return f"{name}{arguments}"
    if depth < 0:
        return None
    return f"{name}{arguments} {{ {_selection(schema, named, depth, values)} }}"


def _selection(schema: GraphQLSchema, named: Any, depth: int, values: dict[str, str]) -> str:
    """Every field of ``named`` that needs no invented input; fragments on every type of an abstract one."""
    if isinstance(named, GraphQLInterfaceType | GraphQLUnionType):
        fragments = " ".join(
            f"... on {possible.name} {{ {_selection(schema, possible, depth, values)} }}"
            for possible in schema.get_possible_types(named)
        )
        return f"__typename {fragments}"
    assert isinstance(named, GraphQLObjectType)
    chosen = (_field(schema, name, field, depth - 1, values) for name, field in named.fields.items())
    return " ".join(["__typename", *(text for text in chosen if text is not None)])


def generated_queries(values: dict[str, str], depth: int = 4) -> dict[str, str]:
    """One query per root query field of the schema (except SKIPPED_ROOTS)."""
    schema = build_schema()._schema
    assert schema.query_type is not None
    queries = {}
    for name, field in schema.query_type.fields.items():
        text = None if name in SKIPPED_ROOTS else _field(schema, name, field, depth, values)
        if text is not None:
            queries[name] = f"query {{ {text} }}"
    return queries


@dataclass
class Pair:
    """Clients (and databases) of two apps on one database and clock: fast executor and graphql-core's."""

    fast: Api
    slow: Api
    fast_db: Database
    slow_db: Database


@pytest.fixture
async def both(settings: Settings) -> AsyncIterator[Pair]:
    """The fast app and the graphql-core app."""
    common = {
        "result_cache": False,
        "max_query_depth": 40,
        "max_query_tokens": 200_000,
        "max_query_aliases": 200,
    }
    # each app spends its own cost budget (extensions.cost), so the answers stay byte-identical
    fast_app = create_app(
        settings.model_copy(
            update={**common, "fast_execution": True, "redis_prefix": f"{settings.redis_prefix}-fast"}
        )
    )
    slow_app = create_app(
        settings.model_copy(
            update={**common, "fast_execution": False, "redis_prefix": f"{settings.redis_prefix}-slow"}
        )
    )
    async with fast_app.router.lifespan_context(fast_app), slow_app.router.lifespan_context(slow_app):
        clients = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=application, client=("203.0.113.10", 40000)),
                base_url="http://kabinet.test",
            )
            for application in (fast_app, slow_app)
        ]
        async with clients[0] as fast, clients[1] as slow:
            yield Pair(Api(fast), Api(slow), fast_app.state.kabinet.db, slow_app.state.kabinet.db)


async def _same(both: Pair, query: str, token: str, variables: dict[str, Any] | None = None) -> bytes:
    slow_body = (await both.slow.post(query, variables, token)).content
    fast_body = (await both.fast.post(query, variables, token)).content
    assert fast_body == slow_body, f"{query}\nfast: {fast_body[:3000]!r}\ngraphql-core: {slow_body[:3000]!r}"
    return fast_body


async def test_K1_fast_executor_answers_every_generated_query_like_graphql_core(
    both: Pair, db: Any, settings: Settings, customer_token: str
) -> None:
    operator_token = await login_as(db, settings, OPERATOR_PHONE)
    values = {"accountId": relay.to_base64("Account", 1)}
    queries = generated_queries(values)
    assert len(queries) > 25
    before = dict(execution.STATS)
    for token in (customer_token, operator_token):
        for name, query in queries.items():
            body = await _same(both, query, token)
            assert body.startswith(b'{"data"'), (name, body[:300])
    fast = execution.STATS["fast"] - before["fast"]
    fallback = execution.STATS["fallback"] - before["fallback"]
    answered_with_errors = fallback  # only answers with errors may fall back
    assert fast >= len(queries), (fast, fallback)
    assert answered_with_errors < len(queries) // 2


async def test_K1_fast_executor_dashboard_is_identical_and_uses_no_more_sql(
    both: Pair, customer_token: str
) -> None:
    body = await _same(both, DASHBOARD, customer_token)
    assert b'"charges":[{"period"' in body
    before = dict(execution.STATS)
    with both.fast_db.count_statements() as fast:
        await both.fast.post(DASHBOARD, None, customer_token)
    with both.slow_db.count_statements() as slow:
        await both.slow.post(DASHBOARD, None, customer_token)
    assert execution.STATS["fast"] == before["fast"] + 1
    assert execution.STATS["fallback"] == before["fallback"]
    assert 0 < fast.statements <= slow.statements, (fast.statements, slow.statements)


async def test_K1_errors_and_partial_results_are_graphql_cores(both: Pair, customer_token: str) -> None:
    """A resolver error, a bad ID, an unknown node: the fast path gives up and graphql-core answers."""
    before = dict(execution.STATS)
    foreign = relay.to_base64("Account", 10_000_000)
    cases = [
        (
            "query($id: ID!) { node(id: $id) { id ... on Account { number } } }",
            {"id": foreign},
            b'"node":null',
        ),
        ("query($id: ID!) { node(id: $id) { id } }", {"id": "not-a-global-id"}, b'"INVALID_ID"'),
        (
            "query($id: ID!) { meters(accountId: $id) { isEmpty } accounts { totalCount } }",
            {"id": foreign},
            b'{"data":{"meters":null,"accounts":{"totalCount":3}},',
        ),
        ('query { me { phone } accounts(after: "garbage") { totalCount } }', None, b'"INVALID_CURSOR"'),
    ]
    for query, variables, expected in cases:
        body = await _same(both, query, customer_token, variables)
        assert expected in body, body[:300]
    assert execution.STATS["fallback"] == before["fallback"] + 2  # the two answers with errors


@pytest.mark.calendar
async def test_K1_fragments_aliases_directives_and_typename_match(both: Pair, customer_token: str) -> None:
    account = relay.to_base64("Account", 1)
    query = """
      fragment Money on AccountBalance { amount label }
      query($id: ID!, $withMeters: Boolean!, $skipCharges: Boolean!, $from: YearMonth, $to: YearMonth) {
        a: node(id: $id) { __typename id ... on Account { number balance { ...Money } } }
        b: nodes(ids: [$id, $id]) { ... on Account { displayName } }
        accounts(first: 2) { edges { node {
          first: number second: number
          meters @include(if: $withMeters) { serial service { name } }
          charges(from: $from, to: $to) @skip(if: $skipCharges) { period }
          ...on Account { balance { ...Money suppliers { supplier { __typename name } } } }
        } } }
      }"""
    for with_meters in (True, False):
        for skip_charges in (True, False):
            variables = {
                "id": account,
                "withMeters": with_meters,
                "skipCharges": skip_charges,
                "from": period(-10),
                "to": period(-1),
            }
            await _same(both, query, customer_token, variables)


async def test_K1_directives_inside_fragments_follow_each_requests_variables(
    both: Pair, customer_token: str
) -> None:
    """A plan may be reused across requests only when no variable can change it."""
    query = """
      fragment Meters on Account { number meters @include(if: $withMeters) { serial } }
      query($withMeters: Boolean!) { accounts(first: 1) { edges { node { ...Meters } } } }"""
    bodies = [
        await _same(both, query, customer_token, {"withMeters": with_meters})
        for with_meters in (True, False, True)
    ]
    data = [orjson.loads(body)["data"] for body in bodies]  # extensions.cost's budget moves on
    assert b'"meters"' in bodies[0] and b'"meters"' not in bodies[1] and data[2] == data[0]


@pytest.mark.calendar
async def test_K1_fields_with_arguments_are_converted_and_called_like_strawberry(
    both: Pair, customer_token: str
) -> None:
    """Resolvers with arguments run on the fast path (arguments converted by the executor's own converter,
    issue 21): literal and variable inputs, input objects with lists of IDs and enums, defaults, aliases
    of one field with different arguments over several accounts — the same answers as graphql-core's."""
    service = relay.to_base64("Service", 1)
    query = """
      query($from: YearMonth, $to: YearMonth, $filter: StatisticsFilter!, $zone: Zone, $period: YearMonth!) {
        accounts(first: 5) { edges { node {
          number
          charges { period total }
          recent: charges(from: $from, to: $to) { period charges { zone amount service { name } } }
          payments(from: $from) { period }
          events(to: $to) { period }
          balanceHistory(from: $from, to: $to) { period }
          receipt(period: $period) { __typename }
          tariffs(zone: $zone) { __typename }
          consumption: statistics(filter: {kind: CONSUMPTION, from: $from, to: $to}) {
            zone service { id name } points { period value }
          }
          chosen: statistics(filter: $filter) { zone service { name } points { period value } }
          paid: statistics(filter: {kind: PAYMENTS, from: $from}) { supplier { name } points { value } }
        } } }
      }"""
    filters = [
        {"kind": "CHARGES", "from": period(-14), "to": period(-1)},
        {"kind": "CONSUMPTION", "serviceIds": [service], "zones": ["DAY", "NIGHT"]},
        {"kind": "CHARGES", "serviceIds": [], "zones": None, "to": None},
    ]
    before = dict(execution.STATS)
    for filter_, zone in zip(filters, ("DAY", None, "SINGLE"), strict=True):
        variables = {
            "from": period(-12),
            "to": period(-1),
            "filter": filter_,
            "zone": zone,
            "period": period(-1),
        }
        body = await _same(both, query, customer_token, variables)
        assert b'"points":[{"period"' in body, body[:300]
    assert execution.STATS["fast"] == before["fast"] + len(filters)
    assert execution.STATS["fallback"] == before["fallback"]


async def test_K1_a_bad_id_inside_an_input_object_gives_graphql_cores_error(
    both: Pair, customer_token: str
) -> None:
    """The converter raises where Strawberry's conversion raises: the fast path gives up, the error is
    graphql-core's (located, with its code)."""
    query = """query($ids: [ID!]) { accounts(first: 2) { edges { node {
        statistics(filter: {kind: CHARGES, serviceIds: $ids}) { zone } } } } }"""
    before = dict(execution.STATS)
    body = await _same(both, query, customer_token, {"ids": ["not-a-global-id"]})
    assert b'"errors"' in body, body[:300]
    assert execution.STATS["fallback"] == before["fallback"] + 1


def test_K1_argument_converter_equals_strawberrys_conversion_and_builds_fresh_objects() -> None:
    """The compiled conversion returns what Strawberry's ``convert_arguments`` returns, and new input
    objects and lists on every call (a resolver may change what it was given)."""
    import datetime as dt

    from strawberry.types.arguments import convert_arguments

    from schema.billing import StatisticsKind

    strawberry_schema = build_schema()
    graphql_schema = strawberry_schema._schema
    registry = strawberry_schema.schema_converter.scalar_registry
    account = graphql_schema.get_type("Account")
    assert isinstance(account, GraphQLObjectType)
    zone_type = graphql_schema.get_type("Zone")
    day = zone_type.values["DAY"].value  # type: ignore[union-attr]
    cases = {
        "statistics": [
            {"filter": {"kind": StatisticsKind.CONSUMPTION, "from": dt.date(2025, 1, 1), "to": None}},
            {"filter": {"kind": StatisticsKind.CHARGES, "serviceIds": ["U2VydmljZTox"], "zones": [day]}},
            {"filter": {"kind": StatisticsKind.PAYMENTS, "serviceIds": [], "zones": None}},
        ],
        "charges": [{}, {"from": dt.date(2025, 1, 1)}, {"from": None, "to": dt.date(2025, 3, 1)}],
        "tariffs": [{}, {"zone": None}, {"zone": day}],
    }
    for name, values in cases.items():
        definition = account.fields[name].extensions[execution.BACKREF]
        convert = execution._arguments_converter(definition, registry, strawberry_schema.config)
        assert convert is not None, name
        for arguments in values:
            expected = convert_arguments(
                arguments, definition.arguments, scalar_registry=registry, config=strawberry_schema.config
            )
            first, second = convert(arguments), convert(arguments)
            assert first == expected == second, (name, arguments, first, expected)
            if "filter" in first:
                assert first["filter"] is not second["filter"]
                assert type(first["filter"]) is type(expected["filter"])
                if first["filter"].zones is not None:
                    assert first["filter"].zones is not arguments["filter"]["zones"]
                    assert first["filter"].zones is not second["filter"].zones


REQUEST_TYPES = {
    ("resolvers.context", "Context"),
    ("resolvers.context", "DbScope"),
    ("models.plain", "SharedReads"),
    ("app.db", "KabinetSession"),
    ("sqlalchemy.orm.session", "SessionTransaction"),
    ("app.execution", "KabinetExecutor"),
    ("starlette.requests", "Request"),
}
"""Objects every GraphQL request makes on the server (``sharing.<locals>.SharedEventExecutor`` included
by its module below)."""


async def test_issue21_a_request_leaves_no_reference_cycles_behind(api: Api, customer_token: str) -> None:
    """Everything an uncached query made — its context, database scope, session, executor, request — is
    freed by reference counting when the request ends, not left for the cyclic garbage collector. Three
    cycles (context ↔ scope, session ↔ its transaction through ``session.info``, and graphql-core's executor
    ↔ its resolver helpers) kept ~150 objects a request and everything they held; collecting them took
    20–30 ms every few seconds, stalling every request in flight (issue 21)."""
    import gc

    fields = "number balance { amount } meters { serial } charges { period total }"
    await api.data(f"{{ accounts(first: 20) {{ edges {{ node {{ {fields} }} }} }} }}", token=customer_token)
    gc.collect()
    gc.disable()
    try:
        for index in range(3):  # distinct documents: none is answered from the result cache
            query = f"{{ a{index}: accounts(first: 20) {{ edges {{ node {{ {fields} }} }} }} }}"
            assert (await api.data(query, token=customer_token))[f"a{index}"]["edges"]
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = sorted(
            f"{type(found).__module__}.{type(found).__qualname__}"
            for found in gc.garbage
            if (type(found).__module__, type(found).__qualname__) in REQUEST_TYPES
            or type(found).__module__ == "app.event_results"
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []


async def test_issue21_graphql_over_http_skips_starlettes_stack_and_keeps_its_answers(
    app: Any, api: Api, customer_token: str
) -> None:
    """``app.main.KabinetApp`` hands a GET or POST on ``/graphql`` to the view inside the security headers:
    Starlette's error and exception middleware and its router are not entered (they were ~5 % of a small
    query's CPU). Other paths, and other methods on ``/graphql`` (405 with ``Allow``), go through them."""
    entered: list[str] = []
    stack = app.build_middleware_stack()

    async def counted(scope: Any, receive: Any, send: Any) -> None:
        entered.append(f"{scope.get('method')} {scope['path']}")
        await stack(scope, receive, send)

    app.middleware_stack = counted
    answer = await api.gql("{ me { phone } }", token=customer_token)
    assert answer["data"]["me"]["phone"]
    by_get = await api.client.get("/graphql", params={"query": "{ __typename }"})
    assert by_get.status_code == 200 and by_get.json()["data"] == {"__typename": "Query"}
    for response in (answer_response := await api.post("{ __typename }"), by_get):
        assert response.headers["x-frame-options"] == "DENY"  # the security headers, as before
        assert response.headers["cache-control"] == "no-store"
    assert answer_response.json()["data"] == {"__typename": "Query"}
    assert entered == []
    refused = await api.client.put("/graphql", content=b"{}")
    assert refused.status_code == 405 and set(refused.headers["allow"].split(", ")) >= {"GET", "POST"}
    assert (await api.client.get("/healthz")).status_code == 200
    assert entered == ["PUT /graphql", "GET /healthz"]
