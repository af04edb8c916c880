"""Issue 21 (K2 at scale): one execution per live event for the sockets that share its inputs, and a client
that leaves while an operation is sending is not an error of ours. Real PostgreSQL, Redis, uvicorn and
websockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.db import Database
from app.demo import DEMO_PHONE_E164
from app.event_results import FRAMES, RESULTS
from app.settings import Settings
from models.identity import User
from models.notifications import NotificationCategory
from services.notifications import notify
from tests.client import graphql_ws
from tests.test_notifications import _free_port, _kabinet_process

STREAM = "subscription { notifications { cursor notification { id title } } }"
OTHER_STREAM = "subscription { notifications { cursor notification { id title body } } }"


async def _user_id(db: Database) -> int:
    async with db.session() as session:
        return (await session.execute(select(User.id).where(User.phone == DEMO_PHONE_E164))).scalar_one()


async def _commit(db: Database, user_id: int, title: str) -> int:
    async with db.session() as session:
        row = await notify(
            session, user_id=user_id, category=NotificationCategory.BILLING, title=title, body=title
        )
        await session.commit()
    await db.drain()
    assert row is not None
    return row.id


async def _next(ws: Any, op: str) -> dict[str, Any]:
    message = await ws.receive(10)
    assert message.get("id") == op and message["type"] == "next", message
    assert not message["payload"].get("errors"), message
    return message["payload"]["data"]["notifications"]  # type: ignore[no-any-return]


async def test_issue21_sockets_of_one_user_share_one_execution_per_event(
    live_server: str, db: Database, customer_token: str
) -> None:
    """Three sockets of one user with the same document: each event is executed once for all three (and
    every socket gets it, whole); a socket with another document gets its own execution."""
    user_id = await _user_id(db)
    init = {"token": customer_token}
    async with (
        graphql_ws(live_server, init=init) as first,
        graphql_ws(live_server, init=init) as second,
        graphql_ws(live_server, init=init) as third,
        graphql_ws(live_server, init=init) as other,
    ):
        same = [(ws, await ws.subscribe(STREAM)) for ws in (first, second, third)]
        other_op = await other.subscribe(OTHER_STREAM)
        await asyncio.sleep(0.5)  # the subscriptions run (graphql-transport-ws does not acknowledge them)
        hits, misses = RESULTS.hits, RESULTS.misses
        ids = [await _commit(db, user_id, f"Общее {n}") for n in range(2)]
        for ws, op in same:
            events = [await _next(ws, op) for _ in ids]
            assert [e["notification"]["title"] for e in events] == ["Общее 0", "Общее 1"]
        others = [await _next(other, other_op) for _ in ids]
        assert [e["notification"]["body"] for e in others] == ["Общее 0", "Общее 1"]
        # per event: one execution per document (2), reused by the two other sockets of the first one
        assert RESULTS.misses - misses == 2 * len(ids)
        assert RESULTS.hits - hits == 2 * len(ids)


async def test_issue21_sockets_sharing_an_execution_share_its_encoded_frame(
    live_server: str, db: Database, customer_token: str
) -> None:
    """The ``next`` payload of a shared execution is encoded once per event for all its sockets, and each
    socket's frame is exactly what encoding the whole message gives, with its own operation id (one here
    needs JSON escaping); the payload JSON is the same text on every socket."""
    import json

    import orjson

    user_id = await _user_id(db)
    init = {"token": customer_token}
    ids_of_ops = ["1", 'quote " and \\ backslash', "Ω-3"]
    async with (
        graphql_ws(live_server, init=init) as first,
        graphql_ws(live_server, init=init) as second,
        graphql_ws(live_server, init=init) as third,
    ):
        sockets = [first, second, third]
        for ws, op in zip(sockets, ids_of_ops, strict=True):
            payload = {"query": STREAM, "variables": {}}
            await ws.socket.send(json.dumps({"id": op, "type": "subscribe", "payload": payload}))
        await asyncio.sleep(0.5)
        hits, misses = FRAMES.hits, FRAMES.misses
        ids = [await _commit(db, user_id, f"Кадр {n}") for n in range(2)]
        texts: list[list[str]] = []
        for ws, op in zip(sockets, ids_of_ops, strict=True):
            raw = [await asyncio.wait_for(ws.socket.recv(), 10) for _ in ids]
            assert all(isinstance(frame, str) for frame in raw)  # text frames, as browsers need
            messages = [json.loads(frame) for frame in raw]
            assert [m["id"] for m in messages] == [op, op] and {m["type"] for m in messages} == {"next"}
            assert [m["payload"]["data"]["notifications"]["notification"]["title"] for m in messages] == [
                "Кадр 0",
                "Кадр 1",
            ]
            assert raw == [orjson.dumps(m).decode() for m in messages]  # byte for byte the encoded message
            texts.append([orjson.dumps(m["payload"]).decode() for m in messages])
        assert texts[0] == texts[1] == texts[2]
        # per event: one encoding of the payload, reused by the two other sockets
        assert FRAMES.misses - misses == len(ids)
        assert FRAMES.hits - hits == 2 * len(ids)


async def test_issue21_client_leaving_while_an_operation_sends_is_not_an_error(
    live_server: str, db: Database, customer_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A client closes its socket while the handler is busy (here: its next ``subscribe`` waits for the
    session check) and its running subscription has an event to send. Strawberry logged that send's
    ``InvalidState``/``ClientDisconnected`` at ERROR with a traceback ("Exception in worker task"); it is
    the client's doing: INFO, no traceback."""
    caplog.set_level(logging.INFO)
    user_id = await _user_id(db)
    async with graphql_ws(live_server, init={"token": customer_token}) as ws:
        op = await ws.subscribe(STREAM)
        await asyncio.sleep(0.5)
        await _commit(db, user_id, "Первое")
        assert (await _next(ws, op))["notification"]["title"] == "Первое"
        outside = create_async_engine(db.engine.url, poolclass=NullPool)  # not the server's pool
        async with outside.connect() as blocker:
            # the session check of the next subscribe waits on this lock: the handler is busy meanwhile
            await blocker.execute(text("LOCK TABLE auth_sessions IN ACCESS EXCLUSIVE MODE"))
            await ws.subscribe(STREAM)
            async with outside.connect() as probe:
                for _ in range(200):
                    waiting = await probe.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity "
                            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                        )
                    )
                    if waiting:
                        break
                    await asyncio.sleep(0.05)
                assert waiting, "the subscribe's session check never waited for the lock"
            await ws.socket.close()  # the client leaves; the handler has not noticed yet
            await asyncio.wait_for(_commit(db, user_id, "После ухода"), 10)  # the stream sends it
            for _ in range(200):
                if any("client left" in record.getMessage() for record in caplog.records):
                    break
                await asyncio.sleep(0.05)
            await blocker.rollback()
        await outside.dispose()
    await asyncio.sleep(0.3)
    assert any(
        "client left" in record.getMessage() and record.levelno == logging.INFO for record in caplog.records
    ), [record.getMessage() for record in caplog.records]
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert not errors, [(record.name, record.getMessage()) for record in errors]


def test_issue21_servers_do_not_negotiate_permessage_deflate(settings: Settings) -> None:
    """``kabinet serve`` (app.workers, here with 2 workers) answers a client offering permessage-deflate
    (as browsers and the ``websockets`` client do) without it: a zlib compressor and decompressor per
    socket cost ~40 kB each at 10,000 sockets, for frames of ~150 bytes (bench/README.md)."""
    from websockets.sync.client import connect

    port = _free_port()
    with _kabinet_process(settings, port, workers=2) as url:
        for _ in range(4):  # connections are spread over both workers
            with connect(
                url.replace("http://", "ws://") + "/graphql", subprotocols=["graphql-transport-ws"]
            ) as ws:  # type: ignore[list-item]
                assert ws.request is not None and "permessage-deflate" in str(
                    ws.request.headers.get("Sec-WebSocket-Extensions")
                )
                assert ws.response is not None
                assert ws.response.headers.get("Sec-WebSocket-Extensions") is None


async def test_issue21_sockets_checking_their_sessions_at_once_share_one_redis_read(
    app: Any, db: Database, settings: Settings, customer_token: str
) -> None:
    """20,000 sockets connecting at once asked Redis for their revocation flags one EXISTS each and emptied
    the pool (13,112 "revocation flags unavailable" at 20,000): the checks waiting in one loop pass share
    one Redis pipeline (the counters' coalescer) and the rows one statement, and each still gets its own
    answer — a revoked session is refused without reading a row. HTTP requests ask the same way."""
    from app.revocation import SessionGuard
    from services import clock
    from services.limits import counters_of
    from services.sessions import REVOCATION_FLAG_TTL

    state = app.state.kabinet
    counters = counters_of(state)
    guard = SessionGuard(db, state.bus, counters)
    async with db.session() as session:
        live = [
            row.id
            for row in (
                await session.execute(
                    text("SELECT id FROM auth_sessions WHERE revoked_at IS NULL AND expires_at > :now"),
                    {"now": clock.now()},
                )
            ).all()
        ]
    revoked = list(range(10_000_000, 10_000_500))  # ids with a revocation flag (no row needed)
    await counters.set_flags([f"revoked-session:{sid}" for sid in revoked], REVOCATION_FLAG_TTL)
    assert live  # the customer's login
    checks = revoked + live * 3
    pipelines = counters.coalescer().batches
    with db.count_statements() as counted:
        answers = await asyncio.gather(*(guard.is_active(sid) for sid in checks))
    assert answers[: len(revoked)] == [False] * len(revoked)
    assert answers[len(revoked) :] == [True] * (len(live) * 3)
    assert 1 <= counters.coalescer().batches - pipelines <= 3  # one read per loop pass, not one per check
    assert 1 <= counted.statements <= 3  # the live sessions' rows, together
    with db.count_statements() as counted:
        assert await guard.is_active(revoked[0]) is False
    assert counted.statements == 0


async def test_issue21_subscriber_queue_is_bounded_wakes_its_consumer_and_survives_cancellation(
    redis_url: str,
) -> None:
    """The per-subscription queue (a list and a future, not an ``asyncio.Queue``, to save ~2.4 kB per
    subscription): a waiting consumer wakes on each event in order, a consumer cancelled while waiting
    leaves the subscriber usable, and a full queue drops events for one ``resync`` — over real Redis."""
    import uuid

    from app.broadcast import RESYNC, EventBus

    prefix = f"t-k2q-{uuid.uuid4().hex[:8]}"
    publisher, bus = EventBus(redis_url, prefix=prefix), EventBus(redis_url, prefix=prefix, queue_size=3)
    await publisher.connect()
    await bus.connect()
    try:
        async with bus.subscribe("user:1") as bell:
            await asyncio.sleep(0.2)  # the SUBSCRIBE reaches Redis
            waiting = asyncio.ensure_future(bell.get())
            await asyncio.sleep(0.05)
            assert not waiting.done()
            await publisher.publish("user:1", {"n": 1})
            assert await asyncio.wait_for(waiting, 5) == {"n": 1}
            cancelled = asyncio.ensure_future(bell.get())
            await asyncio.sleep(0.05)
            cancelled.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cancelled
            for n in range(2, 4):
                await publisher.publish("user:1", {"n": n})
            await asyncio.sleep(0.3)
            assert await asyncio.wait_for(bell.get(), 5) == {"n": 2}
            assert bell.drain() == [{"n": 3}]
            # a consumer slower than its events: 3 fit, the rest are dropped for one resync
            for n in range(10, 16):
                await publisher.publish("user:1", {"n": n})
            await asyncio.sleep(0.3)
            assert await asyncio.wait_for(bell.get(), 5) is RESYNC
            assert bell.drain() == []
            await publisher.publish("user:1", {"n": 20})
            assert await asyncio.wait_for(bell.get(), 5) == {"n": 20}
    finally:
        await publisher.disconnect()
        await bus.disconnect()


async def test_issue21_sockets_keep_no_handshake_objects_nor_the_finished_init_timeout(
    live_server: str, db: Database, customer_token: str
) -> None:
    """What a server keeps per open socket at 5,000 sockets per process (bench/README.md, session 6): with
    the production websocket options (``app.workers.WEBSOCKET_OPTIONS``) the protocol drops the handshake's
    request and response once it has answered, uses the list-based queue and event, and the handler drops
    Strawberry's finished ``connection_init`` timeout task — and the socket still delivers its events."""
    import gc

    from app.graphql_view import KabinetTransportWSHandler
    from app.ws_protocol import LeanEvent, LeanQueue, LeanWebSocketProtocol

    user_id = await _user_id(db)
    async with graphql_ws(live_server, init={"token": customer_token}) as ws:
        op = await ws.subscribe(STREAM)
        await asyncio.sleep(0.5)  # the subscription runs
        gc.collect()
        protocols = [
            item
            for item in gc.get_objects()
            if isinstance(item, LeanWebSocketProtocol) and item.handshake_complete and not item.disconnected
        ]
        assert protocols
        for protocol in protocols:
            assert protocol.request is None and protocol.response is None
            assert isinstance(protocol.queue, LeanQueue) and isinstance(protocol.writable, LeanEvent)
        handlers = [
            item
            for item in gc.get_objects()
            if isinstance(item, KabinetTransportWSHandler) and item.operations
        ]
        assert handlers
        assert all(handler.connection_init_timeout_task is None for handler in handlers)
        await _commit(db, user_id, "Лёгкий сокет")
        assert (await _next(ws, op))["notification"]["title"] == "Лёгкий сокет"


async def test_issue21_a_running_subscription_holds_no_operation_hooks_nor_http_middleware(
    live_server: str, db: Database, customer_token: str
) -> None:
    """A started subscription keeps no per-operation extension hooks open and no ``Schema._stream``
    generator (``app.ws_subscriptions``), and a websocket on /graphql is not held by Starlette's HTTP
    middleware and router (``app.main.KabinetApp``); its events still arrive. An extension with an
    ``on_operation`` hook of its own would keep Strawberry's way."""
    import gc
    import inspect
    from collections.abc import Iterator

    from strawberry.extensions import SchemaExtension
    from strawberry.extensions.context import OperationContextManager

    from app import ws_subscriptions
    from schema.schema import SchemaSettings, build_schema

    def running(name: str) -> list[Any]:
        return [
            item
            for item in gc.get_objects()
            if (inspect.iscoroutine(item) or inspect.isasyncgen(item)) and item.__qualname__ == name
        ]

    user_id = await _user_id(db)
    async with graphql_ws(live_server, init={"token": customer_token}) as ws:
        op = await ws.subscribe(STREAM)
        await asyncio.sleep(0.5)  # the subscription runs
        gc.collect()
        assert running("KabinetTransportWSHandler.run_operation")
        assert not running("Schema._stream")
        assert not any(isinstance(item, OperationContextManager) for item in gc.get_objects())
        assert running("KabinetGraphQL.serve_websocket")
        assert not running("ServerErrorMiddleware.__call__") and not running("Router.__call__")
        await _commit(db, user_id, "Лёгкая подписка")
        assert (await _next(ws, op))["notification"]["title"] == "Лёгкая подписка"

    class Timing(SchemaExtension):
        def on_operation(self) -> Iterator[None]:
            yield  # something after the yield would run when the operation ends

    production = build_schema(SchemaSettings(is_production=True))
    assert ws_subscriptions.lean(production.get_extensions())
    assert not ws_subscriptions.lean([*production.get_extensions(), Timing()])


async def test_issue21_lean_websocket_queue_and_event_behave_as_asyncio_s() -> None:
    """``app.ws_protocol``'s queue and event (no deque per socket) keep the behaviour uvicorn relies on: FIFO,
    a waiting ``get`` wakes on ``put_nowait``, a cancelled ``get`` takes nothing (even when woken first),
    ``wait`` returns at once when set and wakes every waiter on ``set``."""
    from app.ws_protocol import LeanEvent, LeanQueue

    queue = LeanQueue()
    assert queue.empty()
    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    queue.put_nowait(1)
    queue.put_nowait(2)
    assert await waiting == 1
    assert queue.qsize() == 1 and await queue.get() == 2 and queue.empty()
    woken_then_cancelled = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait(3)
    woken_then_cancelled.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await woken_then_cancelled
    assert await asyncio.wait_for(queue.get(), 1) == 3

    event = LeanEvent()
    assert not event.is_set()
    waiters = [asyncio.ensure_future(event.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(waiter.done() for waiter in waiters)
    event.set()
    assert await asyncio.gather(*waiters) == [True, True]
    assert await event.wait()
    event.clear()
    later = asyncio.ensure_future(event.wait())
    await asyncio.sleep(0)
    assert not later.done()
    event.set()
    assert await asyncio.wait_for(later, 1)


def test_issue21_a_server_process_does_not_load_receipt_rendering() -> None:
    """fpdf, fontTools and Pillow were ~20 MB of every server process (145 MB idle at K2 scale): the
    receipt PDF renderer is imported when a receipt is first downloaded, not with the application."""
    import subprocess
    import sys

    code = "import sys, app.main; print(sorted(m for m in ('fpdf', 'services.receipts') if m in sys.modules))"
    command = [sys.executable, "-c", code]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr
