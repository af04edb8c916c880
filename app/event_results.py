"""One execution per live event, however many sockets of the user receive it (issue 21, K2 at scale).

A subscription's selection set is executed by graphql-core once per event *and per socket*: with 100
sockets of one user listening, one notification was executed (resolvers, field guards, serialisation
into ``data``) 100 times with identical inputs. The event bus hands the same message object to every
subscriber of a channel in a process, and the subscription resolvers build their payload from it once
(``resolvers.notifications.shared_row``, ``schema.notifications``), so every socket's per-event
execution gets the *same* root value; :func:`sharing` wraps the executor so that the first socket's
result is reused by the others that run the same document with the same variables for the same viewer.

Only results without errors are shared; anything else (another document, other variables, another
viewer, a payload read from the database for one stream) is executed as before.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from typing import Any

import orjson
from graphql import ExecutionResult, OperationType
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.utils.await_maybe import await_maybe

SHARED_RESULTS = 4096
"""Results remembered per process (per payload × document × variables × viewer): a few events' worth."""


class SharedResults:
    """The last :data:`SHARED_RESULTS` per-event results, keyed by payload identity and inputs.

    Each entry keeps its payload alive, so ``id(payload)`` cannot be reused by another object while the
    entry exists."""

    def __init__(self, size: int = SHARED_RESULTS) -> None:
        self.size = size
        self.entries: OrderedDict[tuple[Any, ...], tuple[Any, ExecutionResult]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...], payload: Any) -> Any:
        """The result (or the future of the execution in flight) of ``key``, if it is ``payload``'s."""
        entry = self.entries.get(key)
        if entry is None or entry[0] is not payload:
            return None
        return entry[1]

    def put(self, key: tuple[Any, ...], payload: Any, result: Any) -> None:
        self.entries[key] = (payload, result)
        if len(self.entries) > self.size:
            self.entries.popitem(last=False)

    def forget(self, key: tuple[Any, ...], result: Any) -> None:
        entry = self.entries.get(key)
        if entry is not None and entry[1] is result:
            del self.entries[key]


RESULTS = SharedResults()


class SharedFrames:
    """The encoded ``next`` payload of the last :data:`SHARED_RESULTS` result ``data`` objects.

    Sockets that share an execution get the *same* ``data`` dict (Strawberry wraps it in a new
    ``ExecutionResult`` per socket, but keeps the dict), so its JSON is encoded once, and each socket's
    frame is that text with the socket's own operation id around it (:meth:`next_frame`). Each entry keeps
    its ``data`` alive, so ``id(data)`` cannot be reused by another object while the entry exists."""

    def __init__(self, size: int = SHARED_RESULTS) -> None:
        self.size = size
        self.entries: OrderedDict[int, tuple[Any, str]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def payload(self, data: Any) -> str:
        """``{"data": data}`` as compact JSON (orjson, as ``KabinetGraphQL.encode_json``), encoded once."""
        key = id(data)
        entry = self.entries.get(key)
        if entry is not None and entry[0] is data:
            self.hits += 1
            return entry[1]
        self.misses += 1
        encoded = '{"data":' + orjson.dumps(data).decode() + "}"
        self.entries[key] = (data, encoded)
        if len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return encoded

    def next_frame(self, operation_id: str, data: Any) -> str:
        """The graphql-transport-ws ``next`` message of ``operation_id`` carrying ``{"data": data}``: the
        same text ``orjson.dumps({"id": …, "type": "next", "payload": {"data": data}})`` gives."""
        return (
            '{"id":'
            + orjson.dumps(operation_id).decode()
            + ',"type":"next","payload":'
            + self.payload(data)
            + "}"
        )


FRAMES = SharedFrames()


def _key(executor: Any) -> tuple[Any, ...] | None:
    viewer = getattr(executor.context_value, "viewer", None)
    if viewer is None:
        return None
    operation = executor.operation
    source = operation.loc.source.body if operation.loc is not None else None
    if source is None:
        return None
    try:
        variables = json.dumps(executor.variable_values, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return None
    name = operation.name.value if operation.name is not None else None
    return (id(executor.root_value), source, name, variables, viewer.user_id, viewer.role, viewer.session_id)


def sharing(base: type[Any] | None) -> type[Any]:
    """``base`` (an executor class, Strawberry's when None) whose per-event subscription results are
    shared between the sockets that execute the same event with the same inputs."""
    parent = base or StrawberryGraphQLCoreExecutionContext

    class SharedEventExecutor(parent):  # type: ignore[misc, valid-type]
        """Per-event executions of subscriptions go through :data:`RESULTS`."""

        def execute_operation(self, serially: bool | None = None) -> Any:
            if self.operation.operation is not OperationType.SUBSCRIPTION:
                return super().execute_operation(serially)
            key = _key(self)
            if key is None:
                return super().execute_operation(serially)
            payload = self.root_value
            found = RESULTS.get(key, payload)
            if isinstance(found, ExecutionResult):
                RESULTS.hits += 1
                return found
            if found is not None:  # another socket is executing this event: wait for its result
                RESULTS.hits += 1
                return self._share(found, serially, own=False)
            RESULTS.misses += 1
            result = super().execute_operation(serially)
            if self.is_awaitable(result):
                pending = asyncio.ensure_future(result)
                RESULTS.put(key, payload, pending)
                pending.add_done_callback(lambda done: _settle(key, payload, done))
                # shielded: this socket closing must not cancel the execution the others wait for
                return self._share(pending, serially, own=True)
            if isinstance(result, ExecutionResult) and not result.errors:
                RESULTS.put(key, payload, result)
            return result

        async def _share(self, pending: asyncio.Future[Any], serially: bool | None, *, own: bool) -> Any:
            if own:
                return await asyncio.shield(pending)
            try:
                result = await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this socket's stream is being cancelled
                result = None
            except Exception:  # the other socket's execution failed: this one executes its own
                result = None
            if isinstance(result, ExecutionResult) and not result.errors:
                return result
            return await await_maybe(super().execute_operation(serially))  # errors are not shared

    SharedEventExecutor.__name__ = f"Shared{parent.__name__}"
    return SharedEventExecutor


def _settle(key: tuple[Any, ...], payload: Any, done: asyncio.Future[Any]) -> None:
    """An execution in flight finished: keep its result for the sockets still to come, unless it failed."""
    RESULTS.forget(key, done)
    if done.cancelled() or done.exception() is not None:
        return
    result = done.result()
    if isinstance(result, ExecutionResult) and not result.errors:
        RESULTS.put(key, payload, result)
