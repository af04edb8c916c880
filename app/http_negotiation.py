"""GraphQL over HTTP content negotiation (the spec's ``application/graphql-response+json`` watershed).

A client whose ``Accept`` prefers ``application/graphql-response+json`` gets that media type, and a request
that fails before execution (document parsing or validation, variable coercion, an unknown persisted
document…) is answered with HTTP 400 and without ``data``. Every other client — no ``Accept``, ``*/*``,
``application/json`` — keeps the legacy behaviour: ``application/json`` and 200 for any GraphQL result.

Two hooks in :class:`app.graphql_view.KabinetGraphQL`: ``process_result`` calls :func:`shape` (drops
``data`` and marks the request when it failed before execution) and ``__call__`` wraps ASGI ``send`` with
:func:`negotiating_send` (rewrites the content type and, for a marked request, the status).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import JSONResponse, Response
from strawberry.types import ExecutionResult

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
"""The GraphQL over HTTP spec's own media type."""

REQUEST_ERROR_KEY = "kabinet.graphql_request_error"
"""ASGI scope key set when the request failed before execution (answered 400 under the new media type)."""

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


def _quality(parameters: list[str]) -> float:
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "q":
            try:
                return max(0.0, min(1.0, float(value.strip())))
            except ValueError:
                return 0.0
    return 1.0


def prefers_graphql_response_json(accept: str | None) -> bool:
    """True when ``Accept`` lists ``application/graphql-response+json`` with a quality at least that of
    ``application/json`` (or of the wildcards covering it); a missing header or ``*/*`` alone: False."""
    if not accept:
        return False
    ours = legacy = 0.0
    for item in accept.split(","):
        media, *parameters = item.split(";")
        media = media.strip().lower()
        if media == GRAPHQL_RESPONSE_JSON:
            ours = max(ours, _quality(parameters))
        elif media in ("application/json", "application/*", "*/*"):
            legacy = max(legacy, _quality(parameters))
    return ours > 0 and ours >= legacy


def _accept(scope: Message) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == b"accept":
            return bytes(value).decode("latin-1")
    return None


def is_request_error(result: ExecutionResult) -> bool:
    """A result without execution: no data, and errors none of which belongs to a field (no ``path``)."""
    return (
        result.data is None
        and bool(result.errors)
        and all(getattr(error, "path", None) is None for error in result.errors or ())
    )


def mark_request_error(scope: Message) -> None:
    """Record that this HTTP request failed before execution (see :func:`negotiating_send`)."""
    scope[REQUEST_ERROR_KEY] = True


def shape(scope: Message, result: ExecutionResult, response: dict[str, Any]) -> dict[str, Any]:
    """The response body of one result: without ``data`` for a request error under the new media type."""
    if is_request_error(result):
        mark_request_error(scope)
        if prefers_graphql_response_json(_accept(scope)):
            response.pop("data", None)
    return response


def negotiating_send(scope: Message, send: Send) -> Send:
    """``send`` for one HTTP request: when the client prefers ``application/graphql-response+json``, JSON
    answers get that content type, and requests marked by :func:`mark_request_error` get status 400."""
    if scope.get("type") != "http" or not prefers_graphql_response_json(_accept(scope)):
        return send

    async def negotiated(message: Message) -> None:
        if message.get("type") == "http.response.start":
            headers = list(message.get("headers") or ())
            for index, (key, value) in enumerate(headers):
                if key.lower() == b"content-type" and bytes(value).startswith(b"application/json"):
                    headers[index] = (key, f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8".encode())
                    if scope.get(REQUEST_ERROR_KEY) and message.get("status") == 200:
                        message = {**message, "status": 400}
                    message = {**message, "headers": headers}
                    break
        await send(message)

    return negotiated


class MutationOverGet(Exception):
    """A mutation sent with GET: the spec's 405 Method Not Allowed (GET is for queries, so caches and
    prefetching browsers never change anything)."""

    def response(self) -> Response:
        """The 405 answer with ``Allow: POST``."""
        body = {
            "errors": [
                {
                    "message": "Mutations are accepted over POST only",
                    "extensions": {"code": "METHOD_NOT_ALLOWED"},
                }
            ]
        }
        return JSONResponse(body, status_code=405, headers={"Allow": "POST"})
