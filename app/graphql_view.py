"""The Strawberry ASGI view: builds the request context, authenticates HTTP and websocket callers,
serves the offline GraphiQL page, and closes the database session when the operation is done."""

from __future__ import annotations

from typing import Any

import orjson
from graphql import OperationType
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.schema import BaseSchema
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

    def __init__(self, schema: BaseSchema, state: AppState, **kwargs: Any) -> None:
        settings = state.settings
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            allow_queries_via_get=True,
            multipart_uploads_enabled=True,  # guarded by csrf_refusal()
            max_subscriptions_per_connection=20,
            allowed_origins=settings.allowed_origins,
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
        finally:
            await context.close()

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
