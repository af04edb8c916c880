"""The Strawberry ASGI view: builds the request context, authenticates HTTP and websocket callers,
serves the offline GraphiQL page, and closes the database session when the operation is done."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import orjson
from graphql import OperationType
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.http.async_base_view import AsyncHTTPRequestAdapter
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    SubscribeMessage,
)
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from app import metrics, tracing
from app.cache import operation_type
from app.context import Context, Viewer
from app.revocation import SESSION_ENDED, SessionGuard, SessionOpener, Socket
from app.state import AppState
from services import clock
from services.tokens import verify_access_token

log = logging.getLogger("kabinet.graphql")


def bearer_token(value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value (the scheme is case-insensitive)."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def client_ip(connection: HTTPConnection) -> str | None:
    """The caller's address as the ASGI server reports it (uvicorn applies ``--forwarded-allow-ips``)."""
    return connection.client.host if connection.client else None


UNAUTHENTICATED_RESPONSE = JSONResponse(
    {
        "data": None,
        "errors": [{"message": "Invalid or expired access token", "extensions": {"code": "UNAUTHENTICATED"}}],
    },
    status_code=401,
    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
)
"""An HTTP request with a bad token is refused whole, so the client knows to refresh it."""


class BadRequest(Exception):
    """A request that is not a well-formed GraphQL request: answered with HTTP 400 and ``extensions.code``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def response(self) -> Response:
        """The 400 answer."""
        return JSONResponse(
            {"data": None, "errors": [{"message": self.message, "extensions": {"code": "BAD_REQUEST"}}]},
            status_code=400,
        )


def valid_operation_name(value: object) -> bool:
    """``operationName`` must be a string or null (it is part of cache keys and operation lookups)."""
    return value is None or isinstance(value, str)


MAX_CLOSE_REASON_BYTES = 123
"""A websocket close frame carries at most 125 bytes: the 2-byte code and 123 bytes of UTF-8 reason."""


def close_reason(reason: str) -> str:
    """``reason`` cut (at a character boundary) to what a close frame can carry."""
    encoded = reason.encode()
    if len(encoded) <= MAX_CLOSE_REASON_BYTES:
        return reason
    return encoded[: MAX_CLOSE_REASON_BYTES - 3].decode(errors="ignore") + "..."


class KabinetTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with Kabinet's session rules (finding SEC5).

    An authenticated socket is registered with the process's :class:`app.revocation.SessionGuard`, which
    closes it with 4403 when its session ends (logout, password change, ``endSession``…, in any process)
    or its access token expires; every ``subscribe`` re-reads the session row in PostgreSQL first and
    closes the socket with 4403 instead of starting the operation when the session has ended."""

    _watched: Socket | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        close = self.websocket.close

        async def bounded_close(code: int, reason: str) -> None:
            await close(code=code, reason=close_reason(reason))

        self.websocket.close = bounded_close  # type: ignore[method-assign]

    @property
    def guard(self) -> SessionGuard:
        guard = self.view.state.sessions  # type: ignore[attr-defined]
        assert guard is not None
        return guard  # type: ignore[no-any-return]

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        heard = self.guard.generation
        await super().handle_connection_init(message)
        viewer = self.context.viewer
        if not self.connection_acknowledged or viewer is None or self._watched is not None:
            return
        expires_at = viewer.expires_at or clock.now()
        self._watched = self.guard.register(viewer.session_id, expires_at, self.close_for_session)
        # a session that ended between the check in on_ws_connect and this registration
        if self.guard.generation != heard and not await self.guard.is_active(viewer.session_id, fresh=True):
            await self.close_for_session(SESSION_ENDED, "Session ended")

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        payload = message.get("payload")
        if isinstance(payload, dict) and not valid_operation_name(payload.get("operationName")):
            await self.websocket.close(code=4400, reason="operationName must be a string or null")
            return
        viewer = self.context.viewer
        if self.connection_acknowledged and viewer is not None:
            if viewer.expires_at is not None and viewer.expires_at <= clock.now():
                await self.close_for_session(SESSION_ENDED, "Access token expired")
                return
            if not await self.guard.is_active(viewer.session_id, fresh=True):
                await self.close_for_session(SESSION_ENDED, "Session ended")
                return
        if self.connection_acknowledged and message.get("id") in self.operations:
            await self.close_duplicate(str(message.get("id")))
            return
        metrics.watch_events()  # observability hook: the operation's task inherits its event slot
        await super().handle_subscribe(message)
        operation = self.operations.get(message.get("id"))  # type: ignore[arg-type]
        if operation is not None and operation_type(operation.query, operation.operation_name) is (
            OperationType.SUBSCRIPTION
        ):
            metrics.subscription_started(operation.task)  # observability hook

    async def close_duplicate(self, operation_id: str) -> None:
        """A client reused the id of a running operation: close with 4409 as the protocol says.

        A client bug, not ours: logged at INFO without a traceback. The socket's operations are stopped
        first, so none of them writes to the closed socket, and the close reason is cut to what a close
        frame holds — "Subscriber for <a long id> already exists" did not fit and failed in the websocket
        library with a traceback at ERROR ("control frame too long")."""
        log.info("websocket closed with 4409: an operation id was reused while its operation runs")
        for running in list(self.operations):
            await self.cleanup_operation(running)
        with contextlib.suppress(Exception):
            await self.websocket.close(code=4409, reason=f"Subscriber for {operation_id} already exists")

    async def send_message(self, message: Any) -> None:
        await super().send_message(message)
        if message.get("type") == "next":  # observability hook: events delivered and their lag
            operation = self.operations.get(message.get("id"))
            if operation is not None:
                metrics.subscription_message_sent(operation.query, operation.operation_name)

    async def close_for_session(self, code: int, reason: str) -> None:
        """Stop every operation of this socket, then close it (the guard calls this)."""
        if self._watched is not None:
            self.guard.unregister(self._watched)
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        with contextlib.suppress(Exception):  # already closed by the client
            await self.websocket.close(code=code, reason=reason)

    async def shutdown(self) -> None:
        if self._watched is not None:
            self.guard.unregister(self._watched)
        await super().shutdown()


CSRF_HEADERS = ("x-kabinet-csrf", "apollo-require-preflight")
"""Multipart and form POSTs must carry one of these headers (any non-empty value): a browser cannot add a
custom header to a cross-site form post without a CORS preflight, so such posts cannot be forged."""

SIMPLE_CONTENT_TYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded", "text/plain"})
"""Content types a cross-site HTML form can send without a preflight."""


def csrf_refusal(request: Request) -> Response | None:
    """A 400 response for a form-like POST without a CSRF header (uploads are multipart), else None."""
    if request.method != "POST":
        return None
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type not in SIMPLE_CONTENT_TYPES:
        return None
    if any(request.headers.get(name, "").strip() for name in CSRF_HEADERS):
        return None
    return JSONResponse(
        {
            "data": None,
            "errors": [
                {
                    "message": "Multipart and form requests need the header X-Kabinet-CSRF: 1",
                    "extensions": {"code": "CSRF_HEADER_REQUIRED"},
                }
            ],
        },
        status_code=400,
    )


MULTIPART_OVERHEAD_BYTES = 1024 * 1024
"""Room for the ``operations`` and ``map`` parts and the part headers of an upload request."""


def oversized_refusal(request: Request, max_upload_bytes: int) -> Response | None:
    """413 for a multipart POST whose declared length exceeds the upload limit: refused before a byte of it
    is parsed (files within the limit are then counted again while they are read)."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if request.method != "POST" or content_type != "multipart/form-data":
        return None
    try:
        length = int(request.headers.get("content-length", "0"))
    except ValueError:
        length = 0
    if length <= max_upload_bytes + MULTIPART_OVERHEAD_BYTES:
        return None
    return JSONResponse(
        {
            "data": None,
            "errors": [
                {
                    "message": "Общий объем вложенных файлов не должен превышать 100Мб.",
                    "extensions": {"code": "REQUEST_TOO_LARGE"},
                }
            ],
        },
        status_code=413,
    )


class KabinetGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI app with Kabinet's context, authentication and GraphiQL."""

    graphql_transport_ws_handler_class = KabinetTransportWSHandler

    def __init__(self, schema: BaseSchema, state: AppState, **kwargs: Any) -> None:
        settings = state.settings
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            allow_queries_via_get=True,
            multipart_uploads_enabled=True,  # guarded by csrf_refusal()
            max_subscriptions_per_connection=20,
            allowed_origins=settings.allowed_origins,
            # only the documented protocol: its handler enforces the session rules (the legacy
            # subscriptions-transport-ws one would not)
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            **kwargs,
        )
        self.state = state

    def viewer_for(self, token: str | None) -> Viewer | None:
        """The viewer of a valid access token; None without one. Invalid tokens raise PermissionError."""
        if token is None:
            return None
        claims = verify_access_token(self.state.settings.secret_key, token, now=clock.now())
        if claims is None:
            raise PermissionError("invalid or expired access token")
        return Viewer(
            user_id=claims.user_id,
            role=claims.role,
            session_id=claims.session_id,
            expires_at=claims.expires_at,
        )

    async def active_viewer(
        self, viewer: Viewer | None, *, fresh: bool = False, opener: SessionOpener | None = None
    ) -> Viewer | None:
        """The viewer unless their session has ended (logout, password change, token reuse…).

        PostgreSQL decides, sped up by Redis's revocation flags and a two-second per-process cache of
        active sessions (:class:`app.revocation.SessionGuard`): usually no SQL, at most one primary-key
        read; losing Redis never lets an ended session back in."""
        guard = self.state.sessions
        assert guard is not None, "the app factory sets state.sessions"
        if viewer is not None and not await guard.is_active(viewer.session_id, fresh=fresh, opener=opener):
            raise PermissionError("session ended")
        return viewer

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        """A fresh context for an HTTP request, or for a websocket connection (authenticated later)."""
        viewer: Viewer | None = None
        if isinstance(request, Request):
            viewer = self.viewer_for(bearer_token(request.headers.get("authorization")))
        context = Context(
            self.state,
            viewer=viewer,
            client_ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
            request=request,
        )
        if viewer is not None:
            try:  # the session row, if read, is read through the request's own database session
                await self.active_viewer(viewer, opener=context.session)
            except BaseException:
                await context.close()
                raise
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate a websocket in ``connection_init``: ``{"authorization": "Bearer …"}`` or
        ``{"token": "…"}``. No token: anonymous (e.g. waiting for a QR login). A bad token: close 4403."""
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        token = params.get("token") or bearer_token(
            str(params.get("authorization") or params.get("Authorization") or "")
        )
        try:
            context.viewer = await self.active_viewer(
                self.viewer_for(str(token) if token else None), fresh=True
            )
        except PermissionError as error:
            raise ConnectionRejectionError({"reason": "invalid token"}) from error
        return UNSET

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        """Observe (metrics, a trace span: ``app/metrics.py``, ``app/tracing.py``), then :meth:`serve`."""
        if not isinstance(request, Request):
            metrics.WEBSOCKETS.inc()
            try:
                return await self.serve(request, context, root_value)
            finally:
                metrics.WEBSOCKETS.dec()
        with tracing.request_span(), metrics.observe_http():
            response = await self.serve(request, context, root_value)
            metrics.record_status(getattr(response, "status_code", 200))
            return response

    async def serve(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        """Run the operation(s) of one request or websocket connection, then close its sessions."""
        if isinstance(request, Request):
            refused = csrf_refusal(request) or oversized_refusal(
                request, self.state.settings.upload_max_total_bytes
            )
            if refused is not None:
                return refused
        if context is UNSET:
            try:
                context = await self.get_context(request, response=request)
            except PermissionError:
                return UNAUTHENTICATED_RESPONSE
        try:
            return await super().run(request, context=context, root_value=root_value)
        except BadRequest as error:
            return error.response()
        finally:
            await context.close()

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        """Strawberry's parsing, plus: ``operationName`` must be a string or null (else a clean 400 rather
        than an internal error in the cache key or the operation lookup)."""
        parsed = await super().parse_http_body(request)
        for item in parsed if isinstance(parsed, list) else [parsed]:
            if not valid_operation_name(item.operation_name):
                raise BadRequest("The GraphQL operation's `operationName` must be a string or null.")
        return parsed

    async def execute_operation(  # type: ignore[override]
        self,
        request: Any,
        request_adapter: Any,
        request_data: Any,
        context: Context,
        root_value: Any,
        sub_response: Any,
    ) -> Any:
        """Serve customers' queries from the result cache when their data has not changed (``app.cache``);
        after a mutation, wait until its cache invalidations and events are out before answering."""
        cache = self.state.cache
        viewer = context.viewer
        kind = None
        if isinstance(request_data, GraphQLRequestData) and request_data.query:
            kind = operation_type(request_data.query, request_data.operation_name)
        if (observed := metrics.record_operation(request_data, kind)) is not None:
            tracing.name_operation(observed.operation, kind)  # observability hook
        cache_key = version = None
        if (
            cache is not None
            and kind is OperationType.QUERY
            and viewer is not None
            and viewer.role == "CUSTOMER"
        ):
            cache_key = cache.key(
                viewer.user_id,
                viewer.session_id,
                context.today.isoformat(),
                request_data.query,
                request_data.variables,
                request_data.operation_name,
            )
            version, data = await cache.lookup(viewer.user_id, cache_key)
            if data is not None:
                metrics.record_result(None)  # a cache hit: answered without errors
                return ExecutionResult(data=data, errors=None)
        result = await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )
        metrics.record_result(result)
        if (
            cache_key is not None
            and isinstance(result, ExecutionResult)
            and not result.errors
            and result.data
        ):
            await cache.put(cache_key, version or "", result.data)  # type: ignore[union-attr]
        if kind is OperationType.MUTATION:
            if cache is not None and viewer is not None:
                await cache.bump({viewer.user_id})  # safety net for writes no hook saw
            await self.state.db.drain()
        return result

    def encode_json(self, data: object) -> str:
        """Compact UTF-8 JSON (Cyrillic as is, not ``\\u`` escapes), encoded by orjson.

        Returned as text: Strawberry sends bytes as *binary* websocket frames, which browser
        graphql-ws clients (GraphiQL's included) reject.
        """
        return orjson.dumps(data).decode()

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL with its scripts served by Kabinet itself (works offline)."""
        from app.graphiql import render_graphiql_html

        return HTMLResponse(render_graphiql_html())
