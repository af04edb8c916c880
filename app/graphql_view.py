"""The Strawberry ASGI view: builds the request context, authenticates HTTP and websocket callers,
serves the offline GraphiQL page, and closes the database session when the operation is done."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import Any, NamedTuple

import orjson
from graphql import GraphQLError, OperationType
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketDisconnected as SendAfterClose
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.http.async_base_view import AsyncHTTPRequestAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    _OperationStreamClosed as OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    CompleteMessage,
    ConnectionInitMessage,
    SubscribeMessage,
)
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.unset import UNSET, UnsetType
from uvicorn.protocols.utils import ClientDisconnected
from websockets.exceptions import ConnectionClosed, InvalidState

from app import http_negotiation, metrics, tracing, ws_subscriptions
from app.cache import operation_type
from app.context import Context, Viewer
from app.cost import Budget, CostMeter, Reservation, actual_cost, requested_cost
from app.event_results import FRAMES
from app.persisted import PersistedDocuments, PersistedQueryError
from app.revocation import SESSION_ENDED, SessionGuard, Socket
from app.state import AppState
from schema.extensions import SERVICE_BUSY, SERVICE_BUSY_MESSAGE, SERVICE_BUSY_RETRY_SECONDS
from services import clock, query_audit
from services.limits import counters_of
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

SERVICE_BUSY_RESPONSE = JSONResponse(
    {
        "data": None,
        "errors": [
            {
                "message": SERVICE_BUSY_MESSAGE,
                "extensions": {"code": SERVICE_BUSY, "retryAfterSeconds": SERVICE_BUSY_RETRY_SECONDS},
            }
        ],
    },
    status_code=503,
    headers={"Retry-After": str(SERVICE_BUSY_RETRY_SECONDS)},
)
"""A request that could not even check its session for want of a database connection (``schema.extensions``
reports the same code when an operation's resolver waited it out)."""


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


PUBLIC_PERSISTED_MAX_AGE = 60
"""Seconds a shared cache may keep an anonymous persisted GET answer (reference data: branches, FAQ…)."""

MAX_ANONYMOUS_OPERATIONS = 2
"""Operations an anonymous websocket may run at once (a QR login waits on one); more close it with 4429."""

TOO_MANY_CLOSE_CODE = 4429
"""Websocket close code for connections over a limit (per address, or anonymous operations per socket)."""

MAX_CLOSE_REASON_BYTES = 123
"""A websocket close frame carries at most 125 bytes: the 2-byte code and 123 bytes of UTF-8 reason."""


def close_reason(reason: str) -> str:
    """``reason`` cut (at a character boundary) to what a close frame can carry."""
    encoded = reason.encode()
    if len(encoded) <= MAX_CLOSE_REASON_BYTES:
        return reason
    return encoded[: MAX_CLOSE_REASON_BYTES - 3].decode(errors="ignore") + "..."


CLIENT_GONE: tuple[type[BaseException], ...] = (
    WebSocketDisconnected,  # Strawberry's, around Starlette's WebSocketDisconnect
    WebSocketDisconnect,
    SendAfterClose,  # Starlette: a send after the socket was marked disconnected
    ClientDisconnected,  # uvicorn
    InvalidState,  # websockets: a frame sent after the client's close frame arrived
    ConnectionClosed,
)
"""Exceptions (anywhere in the cause chain) that mean the client closed or dropped the socket."""


def client_went_away(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) says the client closed or dropped the websocket."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, CLIENT_GONE):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


class KabinetTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with Kabinet's session rules (finding SEC5) and limits (issue 16).

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
        return guard

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        heard = self.guard.generation
        await super().handle_connection_init(message)
        # Strawberry cancels its connection_init timeout task here but keeps the Task for the life of the
        # socket — with its CancelledError, traceback and two frames (~1.5 kB; issue 21: 5,000 sockets per
        # process). Once it has finished, shutdown has nothing to wait for.
        timeout = self.connection_init_timeout_task
        if timeout is not None:
            if timeout.done():
                self.connection_init_timeout_task = None
            else:
                timeout.add_done_callback(self._forget_init_timeout)
        viewer = self.context.viewer
        if not self.connection_acknowledged or viewer is None or self._watched is not None:
            return
        expires_at = viewer.expires_at or clock.now()
        self._watched = self.guard.register(viewer.session_id, expires_at, self.close_for_session)
        # a session that ended between the check in on_ws_connect and this registration
        if self.guard.generation != heard and not await self.guard.is_active(viewer.session_id, fresh=True):
            await self.close_for_session(SESSION_ENDED, "Session ended")

    def _forget_init_timeout(self, task: asyncio.Task[None]) -> None:
        if self.connection_init_timeout_task is task:
            self.connection_init_timeout_task = None

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        payload = message.get("payload")
        if isinstance(payload, dict) and not valid_operation_name(payload.get("operationName")):
            await self.websocket.close(code=4400, reason="operationName must be a string or null")
            return
        # --- persisted documents (app/persisted.py) ---
        if isinstance(payload, dict) and self.connection_acknowledged:
            try:
                payload["query"] = await self.view.persisted.resolve(  # type: ignore[attr-defined]
                    payload.get("query"), payload.get("extensions"), self.context.viewer
                )
            except PersistedQueryError as error:
                await self.send_message({"id": message["id"], "type": "error", "payload": error.payload()})
                return
        # --- end persisted documents ---
        viewer = self.context.viewer
        if viewer is None and len(self.operations) >= MAX_ANONYMOUS_OPERATIONS:
            await self.websocket.close(code=TOO_MANY_CLOSE_CODE, reason="Too many anonymous operations")
            return
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
        if viewer is not None and viewer.role == "ANALYST" and isinstance(payload, dict):
            await audit_analyst(
                self.view.state,  # type: ignore[attr-defined]
                self.context,
                viewer,
                payload.get("query"),
                payload.get("operationName"),
                payload.get("variables"),
            )
        metrics.watch_events()  # observability hook: the operation's task inherits its event slot
        await super().handle_subscribe(message)
        operation = self.operations.get(message.get("id"))
        if operation is not None and operation_type(operation.query, operation.operation_name) is (
            OperationType.SUBSCRIPTION
        ):
            metrics.subscription_started(operation.task)  # observability hook

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        """Strawberry's operation task, except that a subscription, once started, holds only what its
        events need (``app.ws_subscriptions``; issue 21): same hooks, results, messages and close codes.
        Queries, mutations and documents that do not parse take the same steps as in ``Schema._stream``
        (the document is parsed once, by Strawberry's parser cache with the token limit)."""
        try:
            view: KabinetGraphQL = self.view  # type: ignore[assignment]
            requested = view.price(operation.query, operation.variables, operation.operation_name)
            admitted = await view.admit(cost_client(self.context), requested)
            if isinstance(admitted, Refusal):  # as over HTTP, before anything runs: an ``error`` message
                await operation.send_initial_errors(admitted.answer.errors or [])
                return
            try:
                started = await ws_subscriptions.start(
                    self.schema,  # type: ignore[arg-type]  # our KabinetSchema, a strawberry.Schema
                    operation.query,
                    operation.variables,
                    self.context,
                    self.root_value,
                    operation.operation_name,
                )
            except BaseException:
                view.costs.release(admitted, 0)
                raise
            if started is None:  # an extension keeps on_operation open for the stream: Strawberry's way
                await super().run_operation(operation)  # (it keeps what it requested, as a subscription)
                return
            sent, live = started
            # a subscription spends what it requested, once, when it starts: its reservation is kept
            charged = live is not None
            for result in sent:  # a query or mutation over the socket: charged what ran, as over HTTP
                if type(result) is ExecutionResult and not charged:  # (a PreExecutionError is an ``error``)
                    view.charge(admitted, result, None)
                    charged = True
            if not charged:
                view.costs.release(admitted, 0)
            try:
                await self._send_started(operation, sent, live)
            finally:
                if live is not None:
                    await live.close()
            await operation.send_operation_message(CompleteMessage(id=operation.id, type="complete"))
        except OperationStreamClosed:
            return
        except Exception as error:  # as Strawberry's run_operation
            await self.handle_task_exception(error)
            with contextlib.suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            raise

    async def _send_started(
        self, operation: Operation[Context, None], sent: list[ExecutionResult], live: Any
    ) -> None:
        """Strawberry's ``_send_result_stream`` over the results of the start, then over the live events
        (an exception while streaming ends the stream with one error result, as in ``Schema._stream``)."""
        for result in sent:
            if isinstance(result, PreExecutionError):  # only ever the first (and only) result
                await self._handle_pre_execution_error(operation, result)
                return
            if not isinstance(result, ExecutionResult):
                await self._reject_incremental_delivery(operation)
                return
            await operation.send_next(result)
        if live is None:
            return
        runner, source = live.runner, live.source
        while True:
            try:
                payload = await anext(source)
            except StopAsyncIteration:
                return
            except Exception as error:  # graphql-core does not handle exceptions raised while streaming
                await self._send_failure(operation, live, error)
                return
            try:
                result = await live.result(payload)
            except Exception as error:  # ... nor while executing an event
                await self._send_failure(operation, live, error)
                return
            if live.quiet and not result.errors:  # the per-result hooks would do nothing
                await operation.send_next(result)
                continue
            async with runner.on_stream_result(result):
                await operation.send_next(result)

    async def _send_failure(self, operation: Operation[Context, None], live: Any, error: Exception) -> None:
        """The last result of a stream that raised: the error, as ``Schema._stream`` yields it."""
        result = await live.failure(error)
        async with live.runner.on_stream_result(result):
            await operation.send_next(result)

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
        if message.get("type") != "next":
            await super().send_message(message)
            return
        payload = message["payload"]
        socket = getattr(self.websocket, "ws", None)  # Starlette's WebSocket under Strawberry's adapter
        if socket is None or len(payload) != 1 or "data" not in payload:  # errors or extensions: as is
            await super().send_message(message)
        else:
            # a result's data without errors: its JSON encoded once for every socket that shares it
            # (app.event_results), sent as text straight through Starlette (issue 21, K2 at scale)
            try:
                await socket.send(
                    {"type": "websocket.send", "text": FRAMES.next_frame(message["id"], payload["data"])}
                )
            except WebSocketDisconnect as error:
                raise WebSocketDisconnected from error
        operation = self.operations.get(message.get("id"))  # observability hook: events delivered, their lag
        if operation is not None:
            metrics.subscription_message_sent(operation.query, operation.operation_name)

    async def handle_task_exception(self, error: Exception) -> None:
        """An operation's task failed. When it failed because the client went away while it was sending
        (closed or dropped the socket before the handler stopped the operation), that is the client's
        doing: logged at INFO without a traceback, not as Strawberry's ERROR "Exception in worker task"."""
        if client_went_away(error):
            log.info(
                "websocket operation stopped: the client left while it was sending (%s)", type(error).__name__
            )
            return
        await super().handle_task_exception(error)

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


class Refusal(NamedTuple):
    """An operation refused before it runs (``app.cost``): the answer, its HTTP status, seconds to wait."""

    answer: ExecutionResult
    status: int
    wait: int | None


def cost_client(context: Context) -> str:
    """Whose budget an operation spends (``app.cost``): the user's, else the client address's."""
    viewer = context.viewer
    return f"user:{viewer.user_id}" if viewer is not None else f"address:{context.client_ip}"


async def audit_analyst(
    state: AppState, context: Context, viewer: Viewer, document: Any, operation_name: Any, variables: Any
) -> None:
    """Every analyst operation, over HTTP or a websocket, is audited before it runs (``services.query_audit``,
    issue 17) — in the request's own session: the request may already hold a pooled connection (its login
    session was read through it), and waiting for a second one could wait out the pool (issue 21)."""
    async with context.unit_of_work() as uow:
        query_audit.record_analyst_query(
            uow.session,
            user_id=viewer.user_id,
            document=document if isinstance(document, str) else "",
            operation_name=operation_name if isinstance(operation_name, str) else None,
            variables=variables,
            client_ip=context.client_ip,
            user_agent=context.user_agent,
            now=clock.now(),
        )


def valid_examples(schema: BaseSchema) -> list[tuple[str, str]]:
    """The GraphiQL example documents that validate against ``schema`` (others, e.g. of a field not
    deployed yet, are left out)."""
    from graphql import parse, validate

    from app.graphiql import example_documents

    found = []
    for name, document in example_documents():
        if not validate(schema._schema, parse(document)):  # type: ignore[attr-defined]
            found.append((name, document))
    return found


class KabinetGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI app with Kabinet's context, authentication and GraphiQL."""

    graphql_transport_ws_handler_class = KabinetTransportWSHandler

    def __init__(self, schema: BaseSchema, state: AppState, **kwargs: Any) -> None:
        settings = state.settings
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql_enabled or settings.graphiql_staff_login else None,
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
        self._graphiql_page: str | None = None
        self.costs = CostMeter(
            counters_of(state),
            budget_per_minute=settings.cost_budget_per_minute,
            max_cost=settings.max_query_cost,
        )
        self.persisted = PersistedDocuments(settings, state.db)  # persisted documents (app/persisted.py)
        self.sockets: Counter[str] = Counter()
        """Open websockets per client address in this process."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Strawberry's ASGI app, answering in the media type the client prefers (app/http_negotiation.py)."""
        await super().__call__(scope, receive, http_negotiation.negotiating_send(scope, send))

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

    async def active_viewer(self, viewer: Viewer | None, *, fresh: bool = False) -> Viewer | None:
        """The viewer unless their session has ended (logout, password change, token reuse…).

        PostgreSQL decides, sped up by Redis's revocation flags and a two-second per-process cache of
        active sessions (:class:`app.revocation.SessionGuard`): usually no SQL, at most one primary-key
        read; losing Redis never lets an ended session back in."""
        guard = self.state.sessions
        assert guard is not None, "the app factory sets state.sessions"
        if viewer is not None and not await guard.is_active(viewer.session_id, fresh=fresh):
            raise PermissionError("session ended")
        return viewer

    async def get_context(
        self, request: Request | WebSocket, response: Request | Response | WebSocket
    ) -> Context:
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
            try:
                await self.active_viewer(viewer)
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

    async def serve_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A websocket on ``/graphql``, handed over by ``app.main.KabinetApp``: what ``__call__`` → ``run``
        → ``serve`` do for a websocket, in one frame instead of four for the life of the socket."""
        metrics.WEBSOCKETS.inc()
        try:
            await self.run_websocket(WebSocket(scope, receive=receive, send=send), UNSET, UNSET)
        finally:
            metrics.WEBSOCKETS.dec()

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
            except PoolTimeout:  # the session check waited out the pool: load, not a bug (503, no traceback)
                log.warning(
                    "database pool exhausted: a request's session check waited out KABINET_DB_POOL_TIMEOUT"
                )
                return SERVICE_BUSY_RESPONSE
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
        except BadRequest as error:
            return error.response()
        except PersistedQueryError as error:  # persisted documents (app/persisted.py)
            return error.response(request.scope)
        except http_negotiation.MutationOverGet as error:
            return error.response()
        except BodyTooLarge:
            if upload:
                return too_large(UPLOAD_TOO_LARGE_MESSAGE)
            return too_large(f"The request is larger than {settings.max_request_bytes} bytes")
        finally:
            await request.close()  # the upload's temporary files, at once (success or error)
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

    async def execute_operation(
        self,
        request: Any,
        request_adapter: Any,
        request_data: Any,
        context: Context,
        root_value: Any,
        sub_response: Any,
    ) -> Any:
        """Resolve a persisted document, price the operation, refuse it when too costly or over the client's
        budget, run it, and report ``extensions.cost`` on the answer (``app.cost``)."""
        run = (request, request_adapter, request_data, context, root_value, sub_response)
        if isinstance(request_data, GraphQLRequestData):  # persisted documents (app/persisted.py)
            request_data.query = await self.persisted.resolve(
                request_data.query, request_data.extensions, context.viewer, context
            )
        if not isinstance(request_data, GraphQLRequestData) or not request_data.query:
            return await self._execute(*run)
        viewer = context.viewer
        if viewer is not None and viewer.role == "ANALYST":
            await audit_analyst(
                self.state,
                context,
                viewer,
                request_data.query,
                request_data.operation_name,
                request_data.variables,
            )
        requested = self.price(request_data.query, request_data.variables, request_data.operation_name)
        admitted = await self.admit(cost_client(context), requested)
        if isinstance(admitted, Refusal):
            sub_response.status_code = admitted.status
            if admitted.wait is not None:
                sub_response.headers["Retry-After"] = str(admitted.wait)
            return admitted.answer
        persisted = isinstance(request_data.extensions, dict) and "persistedQuery" in request_data.extensions
        context.answer_objects = None
        try:
            result = await self._execute(*run)
        except BaseException:
            self.costs.release(admitted, 0)  # nothing was answered: nothing is charged
            raise
        if (
            persisted
            and viewer is None
            and request_adapter.method == "GET"
            and isinstance(result, ExecutionResult)
            and not result.errors
        ):
            # a public read by hash: proxies and CDNs may keep it briefly (everything else is no-store)
            sub_response.headers["Cache-Control"] = f"public, max-age={PUBLIC_PERSISTED_MAX_AGE}"
        if isinstance(result, ExecutionResult):
            self.charge(admitted, result, context.answer_objects)
        else:
            self.costs.release(admitted, 0)
        return result

    def price(self, query: str, variables: dict[str, Any] | None, operation_name: str | None) -> int:
        """The requested cost of an operation (``app.cost``)."""
        return requested_cost(
            self.schema._schema,  # type: ignore[attr-defined]  # graphql-core schema of our strawberry.Schema
            query,
            variables,
            operation_name,
        )

    async def admit(self, client: str, requested: int) -> Reservation | Refusal:
        """Reserve the operation's requested cost from the client's minute (``app.cost``), or the answer
        refusing it before it runs: above the maximum cost (HTTP 400) or above what is left of the minute
        (429, and the seconds to wait). Over HTTP and over websockets alike."""
        if requested > self.costs.max_cost:
            budget = await self.costs.budget(client)
            error = GraphQLError(
                f"The query costs {requested}, more than the {self.costs.max_cost} one query may cost: "
                "ask for smaller pages (first:) or fewer fields.",
                extensions={"code": "QUERY_TOO_COSTLY", "cost": requested, "maximum": self.costs.max_cost},
            )
            return Refusal(self._refused(error, requested, budget), 400, None)
        reservation = await self.costs.reserve(client, requested)
        if not reservation.over:
            return reservation
        budget = self.costs.release(reservation, 0)
        wait = max(int((budget.reset_at - clock.now()).total_seconds() + 0.999), 1)
        error = GraphQLError(
            f"The query costs {requested}; {budget.remaining} of this minute's budget is left.",
            extensions={"code": "RATE_LIMITED", "retryAfterSeconds": wait},
        )
        return Refusal(self._refused(error, requested, budget), 429, wait)

    def _refused(self, error: GraphQLError, requested: int, budget: Budget) -> ExecutionResult:
        return ExecutionResult(
            data=None, errors=[error], extensions={"cost": self.costs.report(requested, 0, budget)}
        )

    def charge(self, reservation: Reservation, result: ExecutionResult, counted: int | None) -> None:
        """Charge the client what ran (the objects of ``result``'s data, ``counted`` by the fast executor or
        else walked; never more than requested): the rest of the reservation is given back. Reports
        ``extensions.cost`` on the result."""
        requested = reservation.requested
        actual = min(actual_cost(result.data) if counted is None else counted, requested)
        budget = self.costs.release(reservation, actual)
        result.extensions = {
            **(result.extensions or {}),
            "cost": self.costs.report(requested, actual, budget),
        }

    async def _execute(
        self,
        request: Any,
        request_adapter: Any,
        request_data: Any,
        context: Context,
        root_value: Any,
        sub_response: Any,
    ) -> Any:
        """The operation itself, through the result cache for customers' queries."""
        cache = self.state.cache
        viewer = context.viewer
        kind = None
        if isinstance(request_data, GraphQLRequestData) and request_data.query:
            kind = operation_type(request_data.query, request_data.operation_name)
        if kind is OperationType.MUTATION and request_adapter.method == "GET":
            raise http_negotiation.MutationOverGet
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
            version, data = await cache.lookup(
                viewer.user_id, cache_key, cache.depends_on(request_data.query)
            )
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
            await self.state.db.drain()
        return result

    async def process_result(self, request: Request, result: ExecutionResult) -> Any:
        """Strawberry's response body with at most :data:`MAX_ERRORS` errors (then one ``TOO_MANY_ERRORS``),
        shaped by content negotiation (``app.http_negotiation``): a request that failed before execution has
        no ``data`` for ``application/graphql-response+json`` clients."""
        response: dict[str, Any] = dict(await super().process_result(request, result))
        errors = response.get("errors")
        if errors and len(errors) > MAX_ERRORS:
            last = errors[-1].get("extensions") or {}
            already_capped = len(errors) == MAX_ERRORS + 1 and last.get("code") == "TOO_MANY_ERRORS"
            if not already_capped:  # validation caps its own errors (schema.limits)
                response["errors"] = [*errors[:MAX_ERRORS], TOO_MANY_ERRORS]
        return http_negotiation.shape(request.scope, result, response)

    def encode_json(self, data: object) -> str:
        """Compact UTF-8 JSON (Cyrillic as is, not ``\\u`` escapes), encoded by orjson.

        Returned as text: Strawberry sends bytes as *binary* websocket frames, which browser
        graphql-ws clients (GraphiQL's included) reject.
        """
        return orjson.dumps(data).decode()

    def should_render_graphql_ide(self, request: Any) -> bool:
        """GraphiQL for a browser's plain GET, not for a GET of a persisted document (``?extensions=``)."""
        return super().should_render_graphql_ide(request) and "extensions" not in request.query_params

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL with its scripts served by Kabinet itself (works offline); in production behind a staff
        login, with the example documents that validate against the schema as tabs."""
        from app.graphiql import render_graphiql_html

        if self._graphiql_page is None:
            self._graphiql_page = render_graphiql_html(
                staff_login=self.state.settings.graphiql_staff_login, examples=valid_examples(self.schema)
            )
        return HTMLResponse(self._graphiql_page)
