"""Query cost (issue 20): a static price before the operation runs, a maximum, a budget per client per
minute, and `extensions.cost` on every HTTP answer."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import pytest

from app.cost import DEFAULT_LIST_SIZE, MUTATION_COST, actual_cost, requested_cost
from app.main import create_app
from app.settings import Settings
from schema.schema import build_schema
from services.clock import Clock
from tests.client import Api

SCHEMA = build_schema()._schema


def cost(query: str, variables: dict[str, Any] | None = None, name: str | None = None) -> int:
    return requested_cost(SCHEMA, query, variables, name)


def test_cost_model_prices_objects_lists_pages_fragments_and_directives() -> None:
    assert cost("{ __typename me { phone fullName } }") == 1  # one object, scalars are free
    assert cost("{ branches { id name } }") == DEFAULT_LIST_SIZE  # a list of objects, size undeclared
    # a connection passes its page size to its edges: 1 (connection) + 5 × (1 edge + 1 node)
    assert cost("{ accounts(first: 5) { edges { node { number } } } }") == 1 + 5 * (1 + 1)
    paged = "query($n: Int!) { accounts(first: $n) { edges { node { number } } } }"
    assert cost(paged, {"n": 2}) == 1 + 2 * 2
    assert cost('{ nodes(ids: ["a", "b", "c"]) { id } }') == 3
    with_fragment = (
        "fragment A on Account { number meters { serial } } "
        "{ accounts(first: 1) { edges { node { ...A } } } }"
    )
    assert cost(with_fragment) == 1 + 1 * (1 + (1 + 4 * 1))  # meters: declared size 4
    skipped = "query($s: Boolean!) { me { phone } branches @skip(if: $s) { id } }"
    assert (cost(skipped, {"s": True}), cost(skipped, {"s": False})) == (1, 1 + DEFAULT_LIST_SIZE)
    assert cost("mutation { logout { ok } }") == MUTATION_COST + 1
    assert cost("{ __schema { types { name } } }") == 100
    assert cost("{ not valid") == 0  # the parser reports it when the request runs
    huge = cost(f"{{ accounts(first: {10**400}) {{ edges {{ node {{ meters {{ serial }} }} }} }} }}")
    assert 0 < huge <= 2**53 - 1  # still a JSON number
    two = "query A { me { phone } } query B { branches { id } }"
    assert (cost(two, name="A"), cost(two, name="B")) == (1, DEFAULT_LIST_SIZE)


def test_actual_cost_counts_the_objects_of_the_answer() -> None:
    assert actual_cost(None) == 0
    assert actual_cost({"me": {"phone": "+7"}, "branches": [{"id": 1}, {"id": 2}], "n": [1, 2]}) == 3


async def test_every_answer_carries_extensions_cost(api: Api, customer_token: str) -> None:
    query = "{ accounts(first: 5) { edges { node { number } } } }"
    answers = [
        await api.gql(query, token=customer_token),  # computed
        await api.gql(query, token=customer_token),  # from the result cache
        await api.gql("{ branches { name } }"),  # anonymous
        await api.gql("mutation { logout { ok } }", token=customer_token),
        await api.gql("{ nope }"),  # a validation error still reports its cost
    ]
    for body in answers:
        report = body["extensions"]["cost"]
        assert set(report) == {"requestedQueryCost", "actualQueryCost", "maximumQueryCost", "budget"}
        assert set(report["budget"]) == {"limit", "remaining", "resetAt"}
    first, cached = answers[0]["extensions"]["cost"], answers[1]["extensions"]["cost"]
    assert first["requestedQueryCost"] == cached["requestedQueryCost"] == 1 + 5 * 2
    assert first["actualQueryCost"] == cached["actualQueryCost"] == 1 + 3 * 2  # three accounts
    assert cached["budget"]["remaining"] == first["budget"]["remaining"] - cached["actualQueryCost"]


@pytest.fixture
async def tight(settings: Settings) -> Any:
    """An app whose clients may spend 100 per minute, at most 60 per query."""
    tight_settings = settings.model_copy(update={"cost_budget_per_minute": 100, "max_query_cost": 60})
    application = create_app(tight_settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("203.0.113.20", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://kabinet.test") as client:
            yield Api(client)


async def test_too_costly_queries_are_refused_before_they_run(tight: Api) -> None:
    seven = " ".join(f"{alias}: branches {{ id }}" for alias in "abcdefg")
    response = await tight.post(f"{{ {seven} }}")
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": 70, "maximum": 60}
    assert response.json()["extensions"]["cost"]["budget"]["remaining"] == 100  # nothing was charged


async def test_the_budget_per_minute_refuses_with_retry_after_then_recovers(tight: Api, clock: Clock) -> None:
    clock.pin(clock.now().replace(second=0, microsecond=0) + dt.timedelta(seconds=30))
    query = "{ branches { id } b: branches { id } c: branches { id } d: branches { id } }"  # 40, demo has 6
    spent = [(await tight.post(query)).json()["extensions"]["cost"] for _ in range(3)]
    assert [report["actualQueryCost"] for report in spent] == [24, 24, 24]  # charged what ran, not 40
    assert spent[-1]["budget"]["remaining"] == 28  # less than the next query's 40
    refused = await tight.post(query)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "30"
    assert refused.json()["errors"][0]["extensions"] == {"code": "RATE_LIMITED", "retryAfterSeconds": 30}
    clock.advance(dt.timedelta(seconds=31))
    again = await tight.post(query)
    assert again.status_code == 200 and again.json()["extensions"]["cost"]["budget"]["remaining"] == 76


async def test_issue21_concurrent_requests_share_their_redis_round_trips(
    app: Any, api: Api, customer_token: str
) -> None:
    """An uncached request asks Redis for its session's revocation flag, reads its budget and spends it:
    sixteen at once used to be 48 round trips through the pool, one after the other per request. Through
    the process's coalescer (``services.redis_client.Coalescer``) the ones asked meanwhile share one
    pipeline — and every request still gets its own budget, spent exactly once."""
    from services.limits import counters_of

    coalescer = counters_of(app.state.kabinet).coalescer()
    before = coalescer.batches
    queries = [
        f"{{ a{index}: accounts(first: 1) {{ totalCount }} }}" for index in range(16)
    ]  # distinct: no cache
    answers = await asyncio.gather(*(api.gql(query, token=customer_token) for query in queries))
    sent = coalescer.batches - before
    assert all("errors" not in answer for answer in answers)
    assert 1 <= sent < 16 * 3 // 2  # shared: fewer pipelines than half the operations asked
    remaining = sorted(answer["extensions"]["cost"]["budget"]["remaining"] for answer in answers)
    spent = [answer["extensions"]["cost"]["actualQueryCost"] for answer in answers]
    assert len(set(remaining)) == 16  # each spend was counted on its own, atomically
    assert remaining[-1] - remaining[0] == sum(spent[1:])


async def test_issue21_coalescer_keeps_order_and_gives_every_caller_its_error(redis_url: str) -> None:
    """Increments go before reads in a batch and batches go one after the other, so a read asked after an
    increment sees it; each caller gets its own values; with Redis unreachable every caller of the batch
    gets the error (as with single commands), and the next batch is tried again."""
    import uuid

    from redis.exceptions import ConnectionError as RedisConnectionError

    from services.redis_client import Coalescer, connect

    key = f"t-coalesce-{uuid.uuid4().hex[:8]}"
    client = connect(redis_url)
    try:
        coalescer = Coalescer(client)
        first, missing, total, seen, both = await asyncio.gather(
            coalescer.get(key),
            coalescer.get(f"{key}:none"),
            coalescer.increment(key, 5, 60),
            coalescer.get(key),
            coalescer.get_many([f"{key}:none", key]),
        )
        assert (first, missing, total, seen, both) == (b"5", None, 5, b"5", [None, b"5"])
        assert coalescer.batches == 1
        assert await coalescer.increment(key, 2, 60) == 7
        assert 0 < await client.ttl(key) <= 60
        await client.delete(key)
    finally:
        await client.aclose()
    dead = connect("redis://127.0.0.1:9/0")  # nothing listens on the discard port
    try:
        coalescer = Coalescer(dead)
        outcomes = await asyncio.gather(
            coalescer.get("a"), coalescer.increment("b", 1, 60), return_exceptions=True
        )
        assert all(isinstance(outcome, RedisConnectionError) for outcome in outcomes)
        with pytest.raises(RedisConnectionError):
            await coalescer.get("c")
    finally:
        await dead.aclose()


async def test_issue21_coalescer_keeps_one_connection_and_recovers_from_errors_and_restarts(
    redis_url: str,
) -> None:
    """The coalescer's batches go on one connection it keeps (not a pool checkout per batch). An error
    reply fails only the callers of its batch, and the next batch reads its own replies (none left over
    from the failed one); a connection Redis closed while it was idle (a restart) is opened again and the
    batch still answered."""
    import uuid

    from redis.exceptions import ResponseError

    from services.redis_client import Coalescer, connect

    name = f"t-coalesce-{uuid.uuid4().hex[:8]}"
    key = f"{name}:n"
    client = connect(redis_url, name=name)
    admin = connect(redis_url)
    try:
        coalescer = Coalescer(client)
        await admin.set(f"{key}:text", "not a number")
        for _ in range(5):
            assert await coalescer.increment(key, 1, 60) >= 1
        mine = [entry for entry in await admin.client_list() if entry["name"] == name]
        assert len(mine) == 1  # one connection for every batch

        failed = await asyncio.gather(
            coalescer.increment(f"{key}:text", 1, 60), coalescer.get(key), return_exceptions=True
        )
        assert all(isinstance(outcome, ResponseError) for outcome in failed)  # the batch's callers
        assert await coalescer.get(key) == b"5"  # its own reply, not one left from the failed batch

        for entry in await admin.client_list():
            if entry["name"] == name:
                await admin.client_kill_filter(_id=entry["id"])
        assert await coalescer.increment(key, 2, 60) == 7  # reconnected, sent once more
        assert await coalescer.get_many([key, f"{key}:none"]) == [b"7", None]
    finally:
        await admin.delete(key, f"{key}:text")
        await admin.aclose()
        await client.aclose()


async def test_issue21_operations_over_a_websocket_are_priced_and_budgeted_as_over_http(
    settings: Settings, customer_token: str, clock: Clock
) -> None:
    """A query, mutation or subscription sent over graphql-transport-ws is priced and charged like one
    over HTTP, against the same budget (per user): too costly or over the minute's budget, it gets an
    ``error`` message with the code before anything runs; a query's ``next`` reports ``extensions.cost``.
    (Over the socket, operations used to run unpriced: a client could spend without limit.)"""
    from tests.client import graphql_ws
    from tests.conftest import running_server

    clock.pin(clock.now().replace(second=0, microsecond=0) + dt.timedelta(seconds=30))
    tight_settings = settings.model_copy(update={"cost_budget_per_minute": 100, "max_query_cost": 60})
    application = create_app(tight_settings)
    seven = " ".join(f"{alias}: branches {{ id }}" for alias in "abcdefg")
    query = "{ branches { id } b: branches { id } c: branches { id } d: branches { id } }"  # 40, demo has 6
    async with application.router.lifespan_context(application), running_server(application) as url:
        async with graphql_ws(url, init={"token": customer_token}) as ws:
            op = await ws.subscribe(f"{{ {seven} }}")
            message = await ws.receive()
            assert message["id"] == op and message["type"] == "error", message
            assert message["payload"][0]["extensions"] == {
                "code": "QUERY_TOO_COSTLY",
                "cost": 70,
                "maximum": 60,
            }
            spent = []
            for _ in range(3):
                op = await ws.subscribe(query)
                [event] = [event async for event in ws.events(op)]
                spent.append(event["extensions"]["cost"])
            assert [report["actualQueryCost"] for report in spent] == [24, 24, 24]
            assert spent[-1]["budget"]["remaining"] == 28
            op = await ws.subscribe(query)
            message = await ws.receive()
            assert message["id"] == op and message["type"] == "error", message
            assert message["payload"][0]["extensions"] == {"code": "RATE_LIMITED", "retryAfterSeconds": 30}
            op = await ws.subscribe("subscription { serverTime(count: 1) }")  # cost 1: still allowed
            assert len([event async for event in ws.events(op)]) == 1
        async with httpx.AsyncClient(base_url=url) as client:  # the same budget over HTTP
            refused = await client.post(
                "/graphql", json={"query": query}, headers={"authorization": f"Bearer {customer_token}"}
            )
        assert refused.status_code == 429


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "memory"])
async def test_issue21_an_operation_reserves_its_requested_cost_and_gives_back_what_it_did_not_use(
    redis_url: str, clock: Clock, shared: bool
) -> None:
    """One Redis round trip both checks and charges: the requested cost is taken before the operation runs
    (so operations running at once cannot together spend more than is left), and the part it did not use
    goes back without a round trip of its own, ahead of the next read."""
    import uuid

    from app.cost import CostMeter
    from services.limits import Counters

    clock.pin(clock.now().replace(second=0, microsecond=0) + dt.timedelta(seconds=10))
    counters = Counters(redis_url if shared else None, f"t-reserve-{uuid.uuid4().hex[:8]}")
    meter = CostMeter(counters, budget_per_minute=100, max_cost=60)
    client = "user:1"
    try:
        first = await meter.reserve(client, 60)
        assert not first.over
        second = await meter.reserve(client, 60)  # 120 > 100 while the first still runs: refused
        assert second.over
        assert meter.release(second, 0).remaining == 40  # given back whole: only the first's 60 held
        left = meter.release(first, 15)  # the first ran 15 of its 60
        assert (left.limit, left.remaining) == (100, 85)
        assert (await meter.budget(client)).remaining == 85  # the give-back went ahead of this read
        third = await meter.reserve(client, 60)
        assert not third.over and meter.release(third, 60).remaining == 25  # used whole: nothing back
        assert (await meter.budget(client)).remaining == 25
        if shared:
            batches = counters.coalescer().batches
            meter.release(await meter.reserve(client, 10), 0)
            assert counters.coalescer().batches == batches + 1  # the give-back has not waited
            assert (await meter.budget(client)).remaining == 25
    finally:
        await counters.close()
