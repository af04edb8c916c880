"""The Strawberry ASGI view: builds the request context, authenticates HTTP and websocket callers,
serves the offline GraphiQL page, and closes the database session when the operation is done."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
from graphql import OperationType
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Message, Receive
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from app.cache import operation_type
from app.context import Context, Viewer
from app.state import AppState
from services import clock
from services.limits import counters_of
from services.sessions import is_revoked
from services.tokens import verify_access_token


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

UPLOAD_TOO_LARGE_MESSAGE = "Общий объем вложенных файлов не должен превышать 100Мб."
"""The manual's message for uploads over the total limit (F2, G2, G3)."""


def media_type(request: HTTPConnection) -> str:
    """The request's content type without parameters, lower-cased."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def is_upload(request: Request) -> bool:
    """A GraphQL multipart request (files)."""
    return request.method == "POST" and media_type(request) == "multipart/form-data"


def too_large(message: str) -> JSONResponse:
    """HTTP 413 with a GraphQL error ``REQUEST_TOO_LARGE``."""
    return JSONResponse(
        {"data": None, "errors": [{"message": message, "extensions": {"code": "REQUEST_TOO_LARGE"}}]},
        status_code=413,
    )


def oversized_refusal(request: Request, max_upload_bytes: int) -> Response | None:
    """413 for a multipart POST whose declared length exceeds the upload limit: refused before a byte of it
    is parsed (files within the limit are then counted again while they are read)."""
    if not is_upload(request):
        return None
    if declared_length(request) <= max_upload_bytes + MULTIPART_OVERHEAD_BYTES:
        return None
    return too_large(UPLOAD_TOO_LARGE_MESSAGE)


def declared_length(request: Request) -> int:
    """The ``Content-Length`` of the request; 0 when absent or malformed (chunked bodies are counted while
    they are read, see :func:`capped_receive`)."""
    try:
        return max(0, int(request.headers.get("content-length", "0")))
    except ValueError:
        return 0


class BodyTooLarge(Exception):
    """The request body grew past its limit while it was being read."""


def capped_receive(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises :class:`BodyTooLarge` as soon as the body it has passed on exceeds ``limit``
    bytes, whatever ``Content-Length`` said (or whether there was one): the parser never sees more."""
    seen = 0

    async def bounded() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge()
        return message

    return bounded


UPLOAD_NEEDS_LOGIN_RESPONSE = JSONResponse(
    {
        "data": None,
        "errors": [
            {"message": "File uploads need an access token", "extensions": {"code": "UNAUTHENTICATED"}}
        ],
    },
    status_code=401,
    headers={"WWW-Authenticate": "Bearer"},
)
"""A multipart request without a token: refused before its body is read (every upload needs a user)."""

MAX_ERRORS = 10
"""Most errors one response carries; more are replaced by one ``TOO_MANY_ERRORS`` error."""

TOO_MANY_ERRORS = {
    "message": f"Too many errors; only the first {MAX_ERRORS} are reported.",
    "extensions": {"code": "TOO_MANY_ERRORS"},
}

MAX_ANONYMOUS_OPERATIONS = 2
"""Operations an anonymous websocket may run at once (a QR login waits on one); more close it with 4429."""

TOO_MANY_CLOSE_CODE = 4429
"""Websocket close code for connections over a limit (per address, or anonymous operations per socket)."""


class KabinetTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with a lower operation limit for sockets without a logged-in user."""

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        """Close an anonymous socket that starts more than :data:`MAX_ANONYMOUS_OPERATIONS` at once."""
        viewer = getattr(self.context, "viewer", None)
        if viewer is None and len(self.operations) >= MAX_ANONYMOUS_OPERATIONS:
            await self.websocket.close(code=TOO_MANY_CLOSE_CODE, reason="Too many anonymous operations")
            return
        await super().handle_subscribe(message)


class KabinetGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI app with Kabinet's context, authentication and GraphiQL."""

    def __init__(self, schema: BaseSchema, state: AppState, **kwargs: Any) -> None:
        settings = state.settings
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            allow_queries_via_get=True,
            multipart_uploads_enabled=True,  # guarded by csrf_refusal()
            max_subscriptions_per_connection=20,
            allowed_origins=settings.allowed_origins,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            **kwargs,
        )
        self.state = state
        self.sockets: Counter[str] = Counter()
        """Open websockets per client address in this process."""

    graphql_transport_ws_handler_class = KabinetTransportWSHandler

    def viewer_for(self, token: str | None) -> Viewer | None:
        """The viewer of a valid access token; None without one. Invalid tokens raise PermissionError."""
        if token is None:
            return None
        claims = verify_access_token(self.state.settings.secret_key, token, now=clock.now())
        if claims is None:
            raise PermissionError("invalid or expired access token")
        return Viewer(user_id=claims.user_id, role=claims.role, session_id=claims.session_id)

    async def active_viewer(self, viewer: Viewer | None) -> Viewer | None:
        """The viewer unless their session was ended (logout, password change, token reuse): one Redis
        EXISTS per authenticated request, no SQL (see :func:`services.sessions.flag_revoked`)."""
        if viewer is not None and await is_revoked(counters_of(self.state), viewer.session_id):
            raise PermissionError("session ended")
        return viewer

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        """A fresh context for an HTTP request, or for a websocket connection (authenticated later)."""
        viewer: Viewer | None = None
        if isinstance(request, Request):
            viewer = await self.active_viewer(
                self.viewer_for(bearer_token(request.headers.get("authorization")))
            )
        return Context(
            self.state,
            viewer=viewer,
            client_ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
            request=request,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate a websocket in ``connection_init``: ``{"authorization": "Bearer …"}`` or
        ``{"token": "…"}``. No token: anonymous (e.g. waiting for a QR login). A bad token: close 4403."""
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        token = params.get("token") or bearer_token(
            str(params.get("authorization") or params.get("Authorization") or "")
        )
        try:
            context.viewer = await self.active_viewer(self.viewer_for(str(token) if token else None))
        except PermissionError as error:
            raise ConnectionRejectionError({"reason": "invalid token"}) from error
        return UNSET

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        """Run the operation(s) of one request or websocket connection, then close its sessions."""
        if isinstance(request, WebSocket):
            return await self.run_websocket(request, context, root_value)
        if not isinstance(request, Request):
            return await super().run(request, context=context, root_value=root_value)
        settings = self.state.settings
        refused = csrf_refusal(request) or oversized_refusal(request, settings.upload_max_total_bytes)
        if refused is not None:
            return refused
        upload = is_upload(request)
        if not upload and (
            declared_length(request) > settings.max_request_bytes
            or len(request.scope.get("query_string", b"")) > settings.max_request_bytes
        ):
            return too_large(f"The request is larger than {settings.max_request_bytes} bytes")
        if context is UNSET:
            try:
                context = await self.get_context(request, response=request)
            except PermissionError:
                return UNAUTHENTICATED_RESPONSE
        if upload and context.viewer is None:
            await context.close()
            return UPLOAD_NEEDS_LOGIN_RESPONSE
        limit = settings.max_request_bytes
        if upload:
            limit = settings.upload_max_total_bytes + MULTIPART_OVERHEAD_BYTES
        # The body is read through a counter, so a chunked body (no Content-Length) is cut off at the limit.
        request = Request(request.scope, receive=capped_receive(request.receive, limit))
        context.request = request
        try:
            return await super().run(request, context=context, root_value=root_value)
        except BodyTooLarge:
            if upload:
                return too_large(UPLOAD_TOO_LARGE_MESSAGE)
            return too_large(f"The request is larger than {settings.max_request_bytes} bytes")
        finally:
            await request.close()  # the upload's temporary files, at once (success or error)
            await context.close()

    async def run_websocket(self, websocket: WebSocket, context: Any, root_value: Any) -> Any:
        """One websocket connection, refused with close code 4429 when its address already has
        ``KABINET_MAX_SOCKETS_PER_ADDRESS`` open in this process (counted per process, not per cluster)."""
        address = client_ip(websocket) or "unknown"
        if self.sockets[address] >= self.state.settings.max_sockets_per_address:
            await websocket.accept(subprotocol=await self.pick_websocket_subprotocol(websocket))
            await websocket.close(code=TOO_MANY_CLOSE_CODE, reason="Too many connections from this address")
            return websocket
        self.sockets[address] += 1
        websocket = self.bounded_websocket(websocket)
        try:
            if context is UNSET:
                context = await self.get_context(websocket, response=websocket)
            try:
                return await super().run(websocket, context=context, root_value=root_value)
            finally:
                await context.close()
        finally:
            self.sockets[address] -= 1
            if self.sockets[address] <= 0:
                del self.sockets[address]

    def bounded_websocket(self, websocket: WebSocket) -> WebSocket:
        """The same connection, closed with code 1009 when a client message is larger than
        ``KABINET_MAX_REQUEST_BYTES`` (uvicorn alone would take 16 MB): the message is never parsed."""
        limit = self.state.settings.max_request_bytes
        receive = websocket._receive  # the raw ASGI callables: the new WebSocket keeps the state

        async def bounded() -> Message:
            message = await receive()
            if message["type"] == "websocket.receive":
                size = len(message.get("text") or "") + len(message.get("bytes") or b"")
                if size > limit:
                    await bounded_socket.close(code=1009, reason="Message too big")
                    return {"type": "websocket.disconnect", "code": 1009}
            return message

        bounded_socket = WebSocket(websocket.scope, receive=bounded, send=websocket._send)
        return bounded_socket

    async def process_result(self, request: Request, result: ExecutionResult) -> Any:
        """The JSON answer, with at most :data:`MAX_ERRORS` errors (then one ``TOO_MANY_ERRORS``)."""
        response = await super().process_result(request, result)
        errors = response.get("errors")
        if errors and len(errors) > MAX_ERRORS:
            last = errors[-1].get("extensions") or {}
            already_capped = len(errors) == MAX_ERRORS + 1 and last.get("code") == "TOO_MANY_ERRORS"
            if not already_capped:  # validation caps its own errors (schema.limits)
                response["errors"] = [*errors[:MAX_ERRORS], TOO_MANY_ERRORS]
        return response

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
        cache_key = version = None
        if (
            cache is not None
            and kind is OperationType.QUERY
            and viewer is not None
            and viewer.role == "CUSTOMER"
        ):
            cache_key = cache.key(
                viewer.user_id,
                context.today.isoformat(),
                request_data.query,
                request_data.variables,
                request_data.operation_name,
            )
            version, data = await cache.lookup(viewer.user_id, cache_key)
            if data is not None:
                return ExecutionResult(data=data, errors=None)
        result = await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )
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
