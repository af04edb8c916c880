"""Test clients: GraphQL over HTTP (httpx) and graphql-transport-ws over a real websocket."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import websockets


class GraphQLErrors(AssertionError):
    """The response carried top-level errors where none were expected."""


class Api:
    """``await api.gql(QUERY, token=..., **variables)`` → the whole JSON response."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST one operation and return the raw HTTP response."""
        sent = {"content-type": "application/json", **(headers or {})}
        if token:
            sent["authorization"] = f"Bearer {token}"
        return await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=sent
        )

    async def gql(self, query: str, *, token: str | None = None, **variables: Any) -> dict[str, Any]:
        """The JSON body of the response (``data`` and maybe ``errors``)."""
        response = await self.post(query, variables, token)
        return response.json()  # type: ignore[no-any-return]

    async def data(self, query: str, *, token: str | None = None, **variables: Any) -> dict[str, Any]:
        """``data`` of a response that must have no top-level errors."""
        body = await self.gql(query, token=token, **variables)
        if body.get("errors"):
            raise GraphQLErrors(json.dumps(body["errors"], ensure_ascii=False, indent=1))
        return body["data"]  # type: ignore[no-any-return]


class Subscription:
    """One graphql-transport-ws connection (the protocol GraphiQL and Apollo/urql clients speak)."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self._ids = 0

    async def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next protocol message."""
        import asyncio

        raw = await asyncio.wait_for(self.socket.recv(), timeout)
        assert isinstance(raw, str), "graphql-transport-ws messages must be text frames (not binary)"
        return json.loads(raw)  # type: ignore[no-any-return]

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        """Start an operation; returns its id."""
        self._ids += 1
        op_id = str(self._ids)
        payload = {"query": query, "variables": variables or {}}
        await self.socket.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))
        return op_id

    async def events(self, op_id: str, timeout: float = 5.0) -> AsyncIterator[dict[str, Any]]:
        """Payloads of ``next`` messages of one operation until it completes."""
        while True:
            message = await self.receive(timeout)
            if message.get("id") != op_id:
                continue
            if message["type"] == "next":
                yield message["payload"]
            elif message["type"] == "error":
                raise GraphQLErrors(json.dumps(message["payload"], ensure_ascii=False))
            elif message["type"] == "complete":
                return


@asynccontextmanager
async def graphql_ws(
    base_url: str, *, init: dict[str, Any] | None = None, origin: str | None = None
) -> AsyncIterator[Subscription]:
    """Open ``/graphql`` over graphql-transport-ws, send ``connection_init`` and expect the ack."""
    url = base_url.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"], origin=origin) as socket:  # type: ignore[arg-type]
        await socket.send(json.dumps({"type": "connection_init", "payload": init or {}}))
        subscription = Subscription(socket)
        ack = await subscription.receive()
        if ack.get("type") != "connection_ack":
            raise AssertionError(f"expected connection_ack, got {ack}")
        yield subscription
