"""ASGI app factory: Starlette with GraphQL (HTTP + graphql-transport-ws) on /graphql."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import text
from starlette._utils import get_route_path
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from app import metrics, tracing
from app.broadcast import EventBus
from app.cache import References, ResultCache, run_bumps
from app.config_check import UnsafeConfiguration, problems
from app.db import Database
from app.downloads import download
from app.event_results import sharing
from app.exchange_api import routes as exchange_routes
from app.execution import KabinetExecutor
from app.graphiql import GRAPHIQL_STATIC_DIR, GRAPHIQL_STATIC_PREFIX
from app.graphql_view import KabinetGraphQL
from app.logging import configure_logging
from app.revocation import SessionGuard
from app.sandbox import routes as sandbox_routes
from app.security_headers import SecurityHeaders
from app.settings import Environment, Settings, get_settings
from app.state import AppState
from schema.cache_tags import REFERENCE_TYPES
from services import clock
from services.events import Touched
from services.limits import counters_of

log = logging.getLogger(__name__)


GRAPHQL_PATH = "/graphql"

GRAPHQL_METHODS = ("GET", "POST")
"""The methods the GraphQL route takes (``Route(GRAPHQL_PATH, …, methods=…)``)."""


class KabinetApp(Starlette):
    """Starlette, except that ``/graphql`` goes straight to the GraphQL view: a websocket, and a GET or POST
    (inside the security headers, :attr:`graphql_http`).

    Starlette's middleware stack and router are HTTP concerns for that socket: the error middleware, the
    security headers and the exception middleware pass a websocket through untouched, and the router
    only matches the path. Each of them stayed suspended for the whole life of every socket (a coroutine
    frame each, issue 21: 5,000 sockets per process). Proxy headers (the client's address) are uvicorn's,
    applied before the app; the origin check, the per-address limit and everything else of the socket
    are the view's. For a GraphQL request over HTTP they cost ~5 % of a small query's CPU (session 10).
    Every other path and method goes through Starlette. A middleware added to ``create_app``'s list does
    not see ``/graphql``: wrap :attr:`graphql_http` in it as well."""

    graphql: KabinetGraphQL | None = None
    graphql_http: ASGIApp | None = None
    """The GraphQL view as HTTP requests reach it: inside the security headers, and nothing else."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        graphql = self.graphql
        if graphql is None or scope["type"] == "lifespan" or get_route_path(scope) != GRAPHQL_PATH:
            await super().__call__(scope, receive, send)
        elif scope["type"] == "websocket":
            self._routed(scope, graphql)
            await graphql.serve_websocket(scope, receive, send)
        elif scope["method"] in GRAPHQL_METHODS and self.graphql_http is not None:
            # The same for a GraphQL request over HTTP: Starlette's error middleware, exception middleware
            # and router add nothing to it (the view answers its own errors; an unexpected exception reaches
            # uvicorn, which answers 500 and logs it, as after Starlette's error middleware) and cost ~5 % of
            # a small query's CPU (issue 21). The security headers are applied as before.
            self._routed(scope, graphql)
            await self.graphql_http(scope, receive, send)
        else:  # HEAD, OPTIONS, other methods: Starlette's answers (405 and Allow)
            await super().__call__(scope, receive, send)

    def _routed(self, scope: Scope, graphql: KabinetGraphQL) -> None:
        """What Starlette and its router would have set in the scope for the ``/graphql`` route."""
        scope["app"] = self
        scope.setdefault("router", self.router)
        scope["endpoint"] = graphql
        scope["path_params"] = {}


def create_app(settings: Settings | None = None, *, span_exporter: Any = None) -> Starlette:
    """Build the application. ``settings.database_url`` must be set (the CLI resolves embedded ones).

    ``span_exporter`` (tests, benchmarks) turns tracing on with that exporter instead of OTLP/HTTP to
    ``KABINET_OTLP_ENDPOINT`` (``app/tracing.py``).

    In production it raises :class:`app.config_check.UnsafeConfiguration` (listing every problem) instead
    of building an app with unsafe settings, whichever entry point calls it.
    """
    from schema.schema import build_schema

    settings = settings or get_settings()
    if settings.is_production and (found := problems(settings)):
        raise UnsafeConfiguration(found)
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set; `kabinet serve` starts an embedded PostgreSQL for you")
    if settings.clock_start is not None:
        clock.CLOCK.start_at(settings.clock_start, anchored_at=settings.clock_anchored_at)
    db = Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        pool_timeout=settings.db_pool_timeout,
        echo=settings.db_echo,
        hide_parameters=settings.env is not Environment.DEVELOPMENT,
    )
    metrics.instrument_pool(db.engine, settings.db_pool_size)  # observability hooks
    analytics_db = (
        Database(
            settings.analytics_database_url,
            pool_size=max(2, settings.db_pool_size // 2),
            pool_timeout=settings.db_pool_timeout,
            server_settings={},  # aggregations: the server's parallel query and JIT settings (app.db)
        )
        if settings.analytics_database_url
        else None
    )
    if tracing.configure(settings.otlp_endpoint, exporter=span_exporter) or tracing.TRACER is not None:
        tracing.instrument_engine(db.engine)
    state = AppState(settings=settings, db=db, bus=EventBus(settings.redis_url, prefix=settings.redis_prefix))
    state.analytics_db = analytics_db
    # Versions are bumped by every process that shares Redis, even one that serves nothing from the cache
    # (KABINET_RESULT_CACHE=false), so processes with it on next to it never serve stale results.
    versions = (
        ResultCache(
            settings.redis_url,
            prefix=settings.redis_prefix,
            ttl=settings.result_cache_ttl,
            reads=counters_of(state).coalescer() if settings.redis_url else None,
        )
        if settings.result_cache or settings.redis_url
        else None
    )
    state.cache = versions if settings.result_cache else None
    if versions is not None:  # what reference rows kept in memory are checked against (ReferenceById)
        state.extras["reference_version"] = versions.reference_version
    guard = state.sessions = SessionGuard(db, state.bus, counters_of(state))

    async def publish(channel: str, message: dict[str, Any]) -> None:
        await guard.publish_hook(channel, message)  # sessions ended here end here at once, broker or not
        await state.bus.publish(channel, message)

    strict = settings.env is Environment.TEST if settings.strict_writes is None else settings.strict_writes
    if versions is not None:

        async def touched(what: Touched) -> None:
            await run_bumps(versions, db, what)

        db.publish_after_commit(publish, touched, strict=strict)
    else:
        db.publish_after_commit(publish, strict=strict)
    # one execution of a live event for all the sockets that receive it with the same inputs (issue 21)
    executor = sharing(KabinetExecutor if settings.fast_execution else None)
    graphql = KabinetGraphQL(build_schema(settings, execution_context_class=executor), state)
    if state.cache is not None:
        state.cache.references = References(graphql.schema._schema, dict(REFERENCE_TYPES))  # type: ignore[attr-defined]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await state.bus.connect()
        await guard.start()
        scheduler = None
        if settings.scheduler_enabled:
            from services.gateways import gateways_of
            from services.scheduler import DEFAULT_JOBS, Scheduler

            gateways_of(state)  # the payment jobs use the installed registry (services.gateways.installed)
            from services.exchange.feed import prune_job

            retention = dt.timedelta(days=settings.exchange_feed_retention_days)
            scheduler = Scheduler(
                db,
                {**DEFAULT_JOBS, "exchange-feed-prune": functools.partial(prune_job, keep=retention)},
                interval=settings.scheduler_interval,
                clock=clock.now,
                on_run=metrics.job_ran,
            )
            scheduler.start()
        dispatcher = None
        if settings.outbox_dispatch:
            from services.outbox import Dispatcher, providers_from_settings

            dispatcher = Dispatcher(db, providers_from_settings(settings))
            dispatcher.start()
        metrics_server = metrics.serve_process(
            settings.metrics_host, settings.metrics_port, settings.database_url
        )
        if settings.gc_freeze:
            # Everything alive now lives as long as the process; scanning it on every full collection
            # paused a worker for ~150 ms (the uncached dashboard's p99), frozen it is ~20 ms.
            gc.collect()
            gc.freeze()
        # Requests free almost everything by reference counting (issue 21: rows are plain, loaders dropped
        # at the end of the request), so Python's 700-allocation trigger only re-scanned live request
        # objects: 1.8 ms of collections per uncached dashboard, 0.3 ms at 10,000 (bench/README.md).
        gc.set_threshold(*settings.gc_threshold)
        try:
            yield
        finally:
            if metrics_server is not None:
                metrics_server.stop()
            if dispatcher is not None:
                await dispatcher.stop()
            if scheduler is not None:
                await scheduler.stop()
            await db.drain()
            await guard.stop()
            await counters_of(state).close()
            await state.bus.disconnect()
            if versions is not None:
                await versions.close()
            await db.dispose()
            if analytics_db is not None:
                await analytics_db.dispose()

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        try:
            async with db.session() as session:
                await session.execute(text("SELECT 1"))
        except Exception:
            log.exception("readiness check failed")
            return JSONResponse({"status": "database unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def root(_request: Request) -> Response:
        return RedirectResponse("/graphql")

    headers: dict[str, Any] = {
        "hsts_max_age": settings.hsts_max_age,
        "static_prefixes": (GRAPHIQL_STATIC_PREFIX,),
    }
    app = KabinetApp(
        routes=[
            Route("/", root),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/downloads/{token}", download, methods=["GET"]),
            *exchange_routes(),  # the billing system's integration endpoint (issue 18)
            *sandbox_routes(state),  # sandbox card/SBP pages, QR images, /webhooks/{provider}
            Route(GRAPHQL_PATH, graphql, methods=list(GRAPHQL_METHODS)),  # served by KabinetApp directly
            WebSocketRoute(GRAPHQL_PATH, graphql),  # served by KabinetApp directly; kept for url_for
            Mount(GRAPHIQL_STATIC_PREFIX, StaticFiles(directory=GRAPHIQL_STATIC_DIR), name="graphiql-static"),
        ],
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeaders, **headers)],
    )
    app.state.kabinet = state
    app.graphql = graphql
    app.graphql_http = SecurityHeaders(graphql, **headers)
    return app


def app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory app.main:app_from_env`` (each worker process calls it)."""
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return create_app(settings)
