"""Issue 16: property-based fuzzing of every root field of the live schema.

For each query, mutation and subscription field, hypothesis-graphql generates documents — valid ones and,
with ``Mode.NEGATIVE``, ones that break the schema — with our own strategies for every scalar that mix
well-formed values with hostile ones (malformed global IDs, cursors that decode to the wrong shape,
strings with NUL, huge numbers, impossible dates). Every document runs as an anonymous caller and as the
demo customer, over HTTP (queries, mutations) or the websocket (subscriptions) of the real app on a real
database. A document fails the test when the answer is a 5xx, carries "Internal server error", the
websocket closes with 1011, or anything is logged at ERROR.

``KABINET_FUZZ_EXAMPLES`` (default 20) sets the examples per field; ``KABINET_FUZZ_SEED`` picks another
seed (the default run is derandomized, so CI is reproducible; the seed is printed).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import graphql
import pytest
import websockets
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes, queries
from hypothesis_graphql._strategies.negative_sites import enumerate_violation_sites  # pinned <0.14
from hypothesis_graphql.types import CustomScalarStrategies
from strawberry import relay

from app.demo import DEMO_PHONE_E164
from app.settings import Settings
from schema.schema import build_schema
from tests.client import Api, graphql_ws
from tests.conftest import login_as

EXAMPLES = int(os.environ.get("KABINET_FUZZ_EXAMPLES", "20"))
SEED = os.environ.get("KABINET_FUZZ_SEED")
MASKED = "Internal server error"

# --- hostile and ordinary values, shared by the scalar strategies ---------------------------------------


def b64(raw: str, *, pad: bool = False) -> str:
    encoded = base64.b64encode(raw.encode()).decode()
    return encoded if pad else encoded.rstrip("=")


BAD_CURSOR_SHAPES = [
    '["x"]',
    "[1e20]",
    "[]",
    "[null]",
    "{}",
    '"x"',
    "1",
    "[[1]]",
    "[true]",
    '[{"t": "x"}]',
    '[{"d": "2026-99-99"}]',
    '[{"t": 5}]',
    '[{"d": null}]',
    "[1, 2, 3, 4, 5, 6]",
    '["x", "y"]',
    '[{"t": "2026-01-01T00:00:00+03:00"}, "x"]',
    '[{"t": "2026-01-01T00:00:00+03:00"}, 1e300]',
    '[{"d": "2026-01-01"}, 99999999999999999999]',
    '["\\u0000"]',
    "[-1]",
    "[1.5]",
]
CURSORS = [b64(shape) for shape in BAD_CURSOR_SHAPES] + ["!!!", "", "=", "a", "\x00"]
NUMBERS_AS_TEXT = ["1e400", "-1e400", "NaN", "Infinity", "1" * 80, "-0", "0.0000000001", "9" * 30 + ".99"]
HOSTILE_TEXT = [
    "\x00",
    "a\x00b",
    "x" * 5000,
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "'; DROP TABLE users; --",
    "%s%n",
    "../../etc/passwd",
    " ",
    "+7 (111) 111-11-11",
    "ivanov@bk.ru",
    "2026-10",
    "2026-13-45",
    *NUMBERS_AS_TEXT,
    *CURSORS,
]
TEXT = st.one_of(st.text(max_size=40), st.sampled_from(HOSTILE_TEXT))


def node_ids(type_names: list[str]) -> st.SearchStrategy[str]:
    """Global IDs: real-looking ones of every Node type (demo rows have small ids) and malformed ones."""
    local = st.one_of(
        st.integers(min_value=1, max_value=40).map(str),
        st.sampled_from(
            ["abc", "", "-1", "0", "1e20", "1.5", str(2**31), str(2**63), "9" * 40, "1\x00", " 1"]
        ),
    )
    typed = st.builds(lambda name, key: f"{name}:{key}", st.sampled_from([*type_names, "Nope", ""]), local)
    return st.one_of(
        typed.map(b64),
        typed.map(lambda raw: b64(raw, pad=True)),
        typed,
        st.text(max_size=20).map(b64),
        st.sampled_from(["", "!!!", "=", "QQ", "\x00", b64(":"), b64("Account"), b64("Account:")]),
        TEXT,
    )


def json_values() -> st.SearchStrategy[graphql.ValueNode]:
    leaves = st.one_of(
        st.just(nodes.Null),
        st.booleans().map(nodes.Boolean),
        st.integers().map(nodes.Int),
        TEXT.map(nodes.String),
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=3).map(nodes.List),
            st.dictionaries(st.sampled_from(["a", "b", "value"]), children, max_size=3).map(
                lambda fields: nodes.Object(
                    [
                        graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=v)
                        for k, v in fields.items()
                    ]
                )
            ),
        ),
        max_leaves=5,
    )


def well_typed(type_names: list[str]) -> CustomScalarStrategies:
    """Values every scalar accepts, so the document passes validation and its resolvers run; strings and
    IDs are still hostile in content (cursors of the wrong shape, NUL, malformed global IDs)."""
    return {
        "ID": node_ids(type_names).map(nodes.String),
        "String": TEXT.map(nodes.String),
        "Int": st.one_of(st.integers(-5, 200), st.integers(-(2**31), 2**31 - 1)).map(nodes.Int),
        "Float": st.floats(-1e6, 1e6).map(nodes.Float),
        "Date": st.dates().map(lambda d: nodes.String(d.isoformat())),
        "DateTime": st.datetimes(timezones=st.just(dt.UTC)).map(lambda d: nodes.String(d.isoformat())),
        "YearMonth": st.builds(lambda y, m: f"{y:04d}-{m:02d}", st.integers(1, 9999), st.integers(1, 12)).map(
            nodes.String
        ),
        "Decimal": st.one_of(
            st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
            st.sampled_from(["1500.00", "10.00", "0", "-10", "0,5", "1e6", "1E-7", "1e999999", "9" * 40]),
        ).map(nodes.String),
        "JSON": json_values(),
        "Upload": st.just(nodes.Null),
    }


def scalar_strategies(type_names: list[str]) -> CustomScalarStrategies:
    """Value nodes for every scalar of the schema, well-formed and hostile."""
    huge_ints = st.sampled_from([2**31, -(2**31) - 1, 10**20, -(10**20), 10**400])
    ints = st.one_of(st.integers(min_value=-5, max_value=200), st.integers(-(2**31), 2**31 - 1), huge_ints)
    dates = st.one_of(
        st.dates().map(lambda d: d.isoformat()),
        st.sampled_from(["2026-13-45", "0000-01-01", "2026-02-30", "20261101", "2026-11", "today", ""]),
        TEXT,
    )
    datetimes = st.one_of(
        st.datetimes().map(lambda d: d.isoformat()),
        st.sampled_from(["2026-11-24T10:00:00+03:00", "2026-11-24T25:00:00", "9999-12-31T23:59:59-23:59"]),
        dates,
    )
    year_months = st.one_of(
        st.builds(lambda y, m: f"{y:04d}-{m:02d}", st.integers(1, 9999), st.integers(1, 12)),
        st.sampled_from(["2026-10", "2026-11", "2026-00", "2026-13", "0000-01", "26-10", "2026-1"]),
        TEXT,
    )
    decimals = st.one_of(
        st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
        st.sampled_from(
            ["1500.00", "10.00", "0", "-10", "0,5", "1e6", "1E-7", "99999999999.99", *NUMBERS_AS_TEXT]
        ),
        TEXT,
    )
    strings = TEXT.map(nodes.String)
    return {
        "ID": st.one_of(node_ids(type_names).map(nodes.String), ints.map(nodes.Int)),
        "String": strings,
        "Int": ints.map(nodes.Int),
        "Float": st.one_of(
            st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
            st.sampled_from(["1e308", "-1e308", "1e-320", "0.0", "1e400"]).map(
                lambda v: graphql.FloatValueNode(value=v)
            ),
            ints.map(nodes.Int),
        ),
        "Date": st.one_of(dates.map(nodes.String), ints.map(nodes.Int)),
        "DateTime": st.one_of(datetimes.map(nodes.String), ints.map(nodes.Int)),
        "YearMonth": st.one_of(year_months.map(nodes.String), ints.map(nodes.Int)),
        "Decimal": st.one_of(
            decimals.map(nodes.String),
            ints.map(nodes.Int),
            st.floats()
            .map(str)
            .map(lambda v: graphql.FloatValueNode(value=v) if v[-1].isdigit() else nodes.String(v)),
        ),
        "JSON": json_values(),
        "Upload": st.one_of(st.just(nodes.Null), strings, ints.map(nodes.Int)),
    }


# --- documents per root field ------------------------------------------------------------------------


def _as_subscription(document: graphql.DocumentNode) -> str:
    operation = document.definitions[0]
    assert isinstance(operation, graphql.OperationDefinitionNode)
    return graphql.print_ast(
        graphql.DocumentNode(
            definitions=(
                graphql.OperationDefinitionNode(
                    operation=graphql.OperationType.SUBSCRIPTION,
                    selection_set=operation.selection_set,
                    variable_definitions=(),
                    directives=(),
                ),
            )
        )
    )


@dataclass
class Field:
    """One root field and the documents that exercise it."""

    kind: str  # "query" | "mutation" | "subscription"
    name: str
    documents: st.SearchStrategy[str]


def violable(schema: graphql.GraphQLSchema, name: str, root: graphql.GraphQLObjectType | None = None) -> bool:
    """Whether hypothesis-graphql's NEGATIVE mode finds an argument of the field (or below it) to break."""
    root = root or schema.query_type
    assert root is not None
    return any(site.path[0].field_name == name for site in enumerate_violation_sites(schema, root))


def root_fields(settings: Settings) -> list[Field]:
    """Every root field of the live schema with a strategy of valid and schema-breaking documents."""
    sdl = build_schema(settings).as_str()
    schema = graphql.build_schema(sdl)
    node = schema.type_map["Node"]
    assert isinstance(node, graphql.GraphQLInterfaceType)
    type_names = sorted(t.name for t in schema.get_possible_types(node))
    scalars = scalar_strategies(type_names)
    typed = well_typed(type_names)
    fields: list[Field] = []
    for kind, root in (("query", schema.query_type), ("mutation", schema.mutation_type)):
        assert root is not None
        for name in root.fields:
            documents = from_schema(sdl, fields=[name], custom_scalars=typed)
            documents |= from_schema(sdl, fields=[name], custom_scalars=scalars)
            if violable(schema, name, root):
                documents |= from_schema(sdl, fields=[name], custom_scalars=scalars, mode=Mode.NEGATIVE)
            fields.append(Field(kind, name, documents))
    # hypothesis-graphql builds queries and mutations only: generate the subscription field's selection as
    # a query of a schema whose query type is Subscription, then send it as a subscription.
    subscription = schema.subscription_type
    assert subscription is not None
    as_query = graphql.GraphQLSchema(query=subscription, types=list(schema.type_map.values()))
    for name in subscription.fields:
        documents = queries(as_query, fields=[name], custom_scalars=typed, print_ast=_as_subscription)
        documents |= queries(as_query, fields=[name], custom_scalars=scalars, print_ast=_as_subscription)
        if violable(as_query, name):
            documents |= queries(
                as_query,
                fields=[name],
                custom_scalars=scalars,
                print_ast=_as_subscription,
                mode=Mode.NEGATIVE,
            )
        fields.append(Field("subscription", name, documents))
    return fields


# --- running documents against the app ------------------------------------------------------------


@dataclass
class Findings:
    """Documents that broke a rule, with what happened."""

    failures: list[str] = field(default_factory=list)
    runs: int = 0

    def add(self, kind: str, name: str, who: str, document: str, what: str) -> None:
        self.failures.append(f"[{kind} {name} as {who}] {what}\n  document: {document}")


class ErrorRecords(logging.Handler):
    """Collects every record at ERROR or above from the whole process (uvicorn's thread included)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Runner:
    """Sends one document as anonymous and as the customer, over HTTP or the websocket."""

    api: Api
    live_server: str
    db: Any
    settings: Settings
    token: str
    errors: ErrorRecords
    caplog: pytest.LogCaptureFixture
    findings: Findings

    def _logged_errors(self, mark: tuple[int, int]) -> list[str]:
        own = self.errors.records[mark[0] :]
        captured = [r for r in self.caplog.records[mark[1] :] if r.levelno >= logging.ERROR]
        seen = {id(r) for r in own}
        records = own + [r for r in captured if id(r) not in seen]
        return [f"{r.name}: {r.getMessage()}" for r in records]

    def _mark(self) -> tuple[int, int]:
        return len(self.errors.records), len(self.caplog.records)

    async def run(self, kind: str, name: str, document: str) -> None:
        """Both callers at once (half the wall time); an ERROR record is charged to the document."""
        mark = self._mark()
        send = self._subscribe if kind == "subscription" else self._post
        callers = ("anonymous", "customer")
        problems = await asyncio.gather(*(send(document, who) for who in callers))
        self.findings.runs += len(callers)
        for who, problem in zip(callers, problems, strict=True):
            if problem:
                self.findings.add(kind, name, who, document, problem)
        logged = self._logged_errors(mark)
        if logged:
            self.findings.add(kind, name, "either", document, "logged at ERROR: " + " | ".join(logged))

    async def _post(self, document: str, who: str) -> str | None:
        token = self.token if who == "customer" else None
        try:
            response = await self.api.post(document, token=token)
        except Exception as error:  # the ASGI app raised instead of answering
            return f"the app raised {error!r}"
        if response.status_code == 401 and token:
            # the document ended the customer's session (logout, endOtherSessions…): log in again
            self.token = await login_as(self.db, self.settings, DEMO_PHONE_E164)
            response = await self.api.post(document, token=self.token)
        if response.status_code >= 500:
            return f"HTTP {response.status_code}: {response.text[:500]}"
        if MASKED in response.text:
            return f"masked error: {response.text[:800]}"
        return None

    async def _subscribe(self, document: str, who: str) -> str | None:
        url = self.live_server.replace("http://", "ws://") + "/graphql"
        init = {"token": self.token} if who == "customer" else {}
        messages: list[str] = []
        try:
            async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as socket:  # type: ignore[list-item]
                await socket.send(json.dumps({"type": "connection_init", "payload": init}))
                ack = json.loads(await asyncio.wait_for(socket.recv(), 5))
                if ack.get("type") != "connection_ack":
                    return None if who == "customer" and ack else f"no ack: {ack}"
                payload = {"query": document, "variables": {}}
                await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
                try:
                    # the first answer: an error, a complete, or the stream's first event
                    messages.append(str(await asyncio.wait_for(socket.recv(), 0.5)))
                except TimeoutError:
                    pass  # a live stream with nothing to say yet
                await socket.send(json.dumps({"id": "1", "type": "complete"}))
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            if code == 1011 or (code is not None and code >= 1011 and code < 4000):
                return f"websocket closed with {code}: {closed.rcvd.reason if closed.rcvd else ''}"
        text = "\n".join(messages)
        if MASKED in text:
            return f"masked error: {text[:800]}"
        return None


def run_field(loop: asyncio.AbstractEventLoop, runner: Runner, target: Field) -> None:
    """Run hypothesis for one field (in a worker thread; documents execute on the test's event loop)."""

    def execute(coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=60)

    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=SEED is None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],  # every finding is reported, unshrunk
        suppress_health_check=list(HealthCheck),
    )
    @given(document=target.documents)
    def check(document: str) -> None:
        execute(runner.run(target.kind, target.name, document))

    test: Callable[[], None] = check
    if SEED is not None:
        test = seed(int(SEED))(check)
    test()


async def test_issue16_fuzz_every_root_field(
    api: Api,
    live_server: str,
    db: Any,
    settings: Settings,
    customer_token: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No generated document — valid or not, anonymous or the customer's — gets a 5xx, a masked error, a
    websocket closed as an internal error, or an ERROR log record."""
    caplog.set_level(logging.ERROR)
    errors = ErrorRecords()
    logging.getLogger().addHandler(errors)
    findings = Findings()
    runner = Runner(api, live_server, db, settings, customer_token, errors, caplog, findings)
    fields = root_fields(settings)
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    print(f"\nfuzz: {len(fields)} root fields × {EXAMPLES} examples, seed {SEED or 'derandomized'}")
    try:
        for target in fields:
            await asyncio.to_thread(run_field, loop, runner, target)
    finally:
        logging.getLogger().removeHandler(errors)
    print(f"fuzz: {findings.runs} requests in {time.monotonic() - started:.1f} s")
    assert not findings.failures, f"{len(findings.failures)} failing documents:\n" + "\n".join(
        findings.failures[:60]
    )


# --- regressions: what the fuzz test found, one test each ------------------------------------------------

BAD_CURSORS = [b64(shape) for shape in ('["x"]', "[1e20]", "[]", '[{"t": 5}]', '["x", "y"]', "[1, 2, 3]")]
CONNECTIONS = [
    "{ accounts(first: 2, after: $after) { edges { node { id } } } }",
    "{ notifications(first: 2, after: $after) { edges { node { id } } } }",
    "{ appeals(first: 2, after: $after) { edges { node { id } } } }",
    "{ applications(first: 2, after: $after) { edges { node { id } } } }",
    '{ documents(accountId: "ACCOUNT", first: 2, after: $after) { edges { node { id } } } }',
]
"""Every connection taking ``after`` (ACCOUNT: the customer's own account: the cursor is judged)."""


def assert_clean(body: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    assert MASKED not in json.dumps(body, ensure_ascii=False), body
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


@pytest.mark.parametrize("cursor", BAD_CURSORS)
async def test_issue16_cursor_of_the_wrong_shape_is_invalid_cursor(
    api: Api, customer_token: str, cursor: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    mine = await api.gql("{ accounts(first: 1) { edges { node { id } } } }", token=customer_token)
    account = mine["data"]["accounts"]["edges"][0]["node"]["id"]
    for connection in CONNECTIONS:
        query = "query($after: String) " + connection.replace("ACCOUNT", account)
        body = await api.gql(query, token=customer_token, after=cursor)
        assert_clean(body, caplog)
        assert body["errors"][0]["extensions"]["code"] == "INVALID_CURSOR", (connection, body)


@pytest.mark.parametrize(
    "raw", ["Account:abc", "Account:99999999999999999999", "Account:-1", "Account: 1", "Service:1e5"]
)
async def test_issue16_malformed_global_id_in_node(
    api: Api, customer_token: str, raw: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    for token in (None, customer_token):
        body = await api.gql("query($id: ID!) { node(id: $id) { id } }", token=token, id=b64(raw))
        assert_clean(body, caplog)
        body = await api.gql(
            "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
            token=token,
            ids=[b64(raw), b64("Account:1")] * 3,
        )
        assert_clean(body, caplog)


async def test_issue16_query_argument_with_nul(
    api: Api, settings: Settings, customer_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    sdl = graphql.build_schema(build_schema(settings).as_str())
    assert sdl.query_type is not None
    for name, field_ in sdl.query_type.fields.items():
        strings = [
            a for a, arg in field_.args.items() if graphql.get_named_type(arg.type).name in ("String", "ID")
        ]
        if not strings:
            continue
        args = ", ".join(f'{a}: "a\\u0000b"' for a in strings)
        leaf = "" if graphql.is_leaf_type(graphql.get_named_type(field_.type)) else " { __typename }"
        body = await api.gql(f"{{ {name}({args}){leaf} }}", token=customer_token)
        assert_clean(body, caplog)


@pytest.mark.parametrize(
    "payment", ["Payment:999999", "Payment:abc", "Payment:99999999999999999999", "Account:1"]
)
async def test_issue16_payment_status_of_unknown_payment_is_not_found(
    live_server: str, customer_token: str, payment: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    query = "subscription($id: ID!) { paymentStatus(paymentId: $id) { status } }"
    async with graphql_ws(live_server, init={"token": customer_token}) as ws:
        op = await ws.subscribe(query, {"id": b64(payment)})
        message = await ws.receive()
    text = json.dumps(message, ensure_ascii=False)
    assert MASKED not in text, text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert message["id"] == op and message["type"] in ("error", "next"), message
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] in ("NOT_FOUND", "INVALID_ID", "PAYMENT_NOT_FOUND"), message


@pytest.mark.parametrize("cursor", BAD_CURSORS)
async def test_issue16_notifications_subscription_with_bad_cursor(
    live_server: str, customer_token: str, cursor: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    async with graphql_ws(live_server, init={"token": customer_token}) as ws:
        await ws.subscribe("subscription($a: String) { notifications(after: $a) { cursor } }", {"a": cursor})
        message = await ws.receive()
    text = json.dumps(message, ensure_ascii=False)
    assert MASKED not in text, text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "INVALID_CURSOR" in text, text


async def test_issue16_appeals_period_in_year_one_is_out_of_range(
    api: Api, customer_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    for field_ in ("appeals", "applications"):
        body = await api.gql(f'{{ {field_}(to: "0001-01") {{ totalCount }} }}', token=customer_token)
        assert_clean(body, caplog)
        assert body["errors"][0]["extensions"]["code"] == "PERIOD_OUT_OF_RANGE", body


async def test_issue16_callback_time_without_offset(
    api: Api, customer_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    body = await api.gql(
        """mutation { requestCallback(input: { preferredFrom: "2001-01-01T10:00:00" }) {
          userErrors { code field } } }""",
        token=customer_token,
    )
    assert_clean(body, caplog)
    assert body["data"]["requestCallback"]["userErrors"][0]["code"] == "PERIOD_INVALID", body


@pytest.mark.parametrize("node_id", ["abc", "-1", "99999999999999999999"])
async def test_issue16_global_id_inputs_of_mutations_that_name_no_row_are_not_found(
    api: Any, customer_token: str, node_id: str
) -> None:
    """Mutation inputs typed as global IDs: an id part that cannot be a row is "not found", never a 500."""
    session_id = relay.to_base64("LoginSession", node_id)
    ended = await api.gql(
        "mutation($input: EndSessionInput!) { endSession(input: $input) { endedCount } }",
        token=customer_token,
        input={"sessionId": session_id},
    )
    assert "Internal server error" not in str(ended), ended
    card = relay.to_base64("SavedCard", node_id)
    account = relay.to_base64("Account", node_id)
    autopay = await api.gql(
        "mutation($input: SetAutopayInput!) { setAutopay(input: $input) { enabled userErrors { code } } }",
        token=customer_token,
        input={"accountId": account, "enabled": True, "cardId": card},
    )
    assert "Internal server error" not in str(autopay), autopay
