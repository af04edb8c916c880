"""Prometheus metrics, served on their own port (``KABINET_METRICS_PORT``), never by the public app.

Every metric is a module-level ``prometheus_client`` object that the app's hooks update:

- GraphQL over HTTP: :func:`observe_http` (``app/graphql_view.py``) counts each request by operation name,
  type and outcome and times it; websockets and subscriptions are gauges the view's websocket handler moves;
- the event bus (``app/broadcast.py``) counts events handed to local subscribers and their lag since the
  commit that published them; the websocket handler measures commit → ``next`` message sent;
- the result cache (``app/cache.py``), the fast executor (``app/execution.py``), the database pool
  (SQLAlchemy pool events, :func:`instrument_pool`), the scheduler (its ``on_run`` hook, :func:`job_ran`);
- the outbox is read from PostgreSQL at scrape time (:class:`OutboxCollector`, one cheap query).

**Labels stay bounded.** An operation label is the request's ``operationName`` only when it looks like a
GraphQL name; a request without one is ``anonymous``, and after :data:`MAX_OPERATION_LABELS` distinct
names a process reports further new ones as ``other``. No label ever carries variables, user ids, tokens
or personal data.

**Several workers.** ``kabinet serve --workers N`` (``app/workers.py``) points ``PROMETHEUS_MULTIPROC_DIR``
at a fresh temporary directory before it starts the workers; each worker then writes its samples to files
there, and the supervisor alone serves ``/metrics`` (:func:`serve_supervisor`), merging them with
``prometheus_client``'s multiprocess collector, so one scrape sees every worker. A single process serves
its own registry from the app's lifespan (:func:`serve_process`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError, OperationDefinitionNode, parse
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("kabinet.metrics")

MAX_OPERATION_LABELS = 200
"""Distinct operation names one process reports; later new names are counted as :data:`OTHER`."""
ANONYMOUS = "anonymous"
OTHER = "other"
_GRAPHQL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_operation_names: set[str] = set()

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter(
    "kabinet_graphql_requests",
    "GraphQL requests over HTTP by operation name, type and outcome (ok, user_error, error, refused).",
    ["operation", "type", "outcome"],
)
LATENCY = Histogram(
    "kabinet_graphql_request_duration_seconds",
    "Time to answer a GraphQL request over HTTP (cache hits included).",
    ["operation", "type"],
    buckets=LATENCY_BUCKETS,
)
WEBSOCKETS = Gauge("kabinet_websockets_open", "Open GraphQL websockets.", multiprocess_mode="livesum")
SUBSCRIPTIONS = Gauge(
    "kabinet_subscriptions_active", "Subscriptions running on websockets.", multiprocess_mode="livesum"
)
EVENTS_DELIVERED = Counter(
    "kabinet_events_delivered", "Events the event bus handed to local subscribers (one per subscriber)."
)
EVENT_BUS_LAG = Histogram(
    "kabinet_event_bus_lag_seconds",
    "Seconds from publishing an event (right after its commit) to handing it to local subscribers.",
    buckets=LAG_BUCKETS,
)
SUBSCRIPTION_EVENTS_SENT = Counter(
    "kabinet_subscription_events_sent",
    "Subscription results sent on websockets because of an event, by operation name.",
    ["operation"],
)
SUBSCRIPTION_EVENT_LAG = Histogram(
    "kabinet_subscription_event_lag_seconds",
    "Seconds from the commit that published an event to the websocket message it caused, by operation.",
    ["operation"],
    buckets=LAG_BUCKETS,
)
RESULT_CACHE = Counter(
    "kabinet_result_cache_lookups",
    "Result-cache lookups of customers' queries by result (hit, miss).",
    ["result"],
)
EXECUTOR = Counter(
    "kabinet_fast_executor_queries",
    "Queries run by the breadth-first executor by path: fast, or fallback to graphql-core.",
    ["path"],
)
POOL_CHECKED_OUT = Gauge(
    "kabinet_db_pool_checked_out",
    "Database connections checked out of the pool.",
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "kabinet_db_pool_size",
    "Configured database pool size (the most connections; no overflow).",
    multiprocess_mode="livesum",
)
JOB_RUNS = Counter(
    "kabinet_scheduler_job_runs", "Scheduled job runs by job and outcome (ok, error).", ["job", "outcome"]
)
JOB_DURATION = Histogram(
    "kabinet_scheduler_job_duration_seconds",
    "Duration of scheduled job runs.",
    ["job"],
    buckets=LATENCY_BUCKETS,
)

_EVENT_SLOT: contextvars.ContextVar[list[float | None] | None] = contextvars.ContextVar(
    "kabinet_event_slot", default=None
)
"""One websocket operation's slot for the publish time of the event it last took from the bus. Set by
:func:`watch_events` before the operation's task starts, so the task and every task it spawns (graphql-core
reads the source stream in helper tasks) share the slot; ``app.broadcast.Subscriber.get`` fills it
(:func:`event_taken`), the websocket handler empties it when it sends the result (commit → send)."""


def watch_events() -> None:
    """Give the websocket operation about to start its own event slot (call before creating its task)."""
    _EVENT_SLOT.set([None])


def event_taken(published_at: float | None) -> None:
    """A subscription took an event published at ``published_at`` (wall clock) from the bus."""
    slot = _EVENT_SLOT.get()
    if slot is not None:
        slot[0] = published_at


def operation_label(name: object) -> str:
    """A bounded label for an operation name: the name, ``anonymous`` or ``other`` (see the module)."""
    if not isinstance(name, str) or not name:
        return ANONYMOUS
    if name in _operation_names:
        return name
    if _GRAPHQL_NAME.fullmatch(name) is None or len(_operation_names) >= MAX_OPERATION_LABELS:
        return OTHER
    _operation_names.add(name)
    return name


# --- GraphQL over HTTP ------------------------------------------------------------------------------


@dataclass(slots=True)
class HttpObservation:
    """What the view learns about one HTTP request while it runs (operation, result)."""

    started: float
    operation: str = ANONYMOUS
    type: str = "unknown"
    outcome: str | None = None


_CURRENT: contextvars.ContextVar[HttpObservation | None] = contextvars.ContextVar(
    "kabinet_http_observation", default=None
)


@contextlib.contextmanager
def observe_http() -> Iterator[HttpObservation]:
    """Time one GraphQL HTTP request; :func:`record_result` (from ``execute_operation``) and
    :func:`record_status` fill in what it was and how it ended."""
    observation = HttpObservation(started=time.perf_counter())
    token = _CURRENT.set(observation)
    try:
        yield observation
    except BaseException:
        observation.outcome = "error"
        raise
    finally:
        _CURRENT.reset(token)
        elapsed = time.perf_counter() - observation.started
        outcome = observation.outcome or "refused"
        REQUESTS.labels(observation.operation, observation.type, outcome).inc()
        LATENCY.labels(observation.operation, observation.type).observe(elapsed)
        log.debug(
            "graphql %s %s: %s in %.1f ms", observation.type, observation.operation, outcome, elapsed * 1000
        )


@functools.lru_cache(maxsize=2048)
def document_operation_name(query: str, operation_name: str | None) -> str | None:
    """The name of the operation a request runs: ``operationName``, else the name of the document's only
    operation (None for an anonymous one or a document that does not parse)."""
    if operation_name:
        return operation_name
    try:
        document = parse(query)
    except GraphQLError:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    return operations[0].name.value if len(operations) == 1 and operations[0].name else None


def record_operation(request_data: Any, kind: Any) -> HttpObservation | None:
    """Name the current request's operation (``kind``: graphql-core's ``OperationType`` or None)."""
    observation = _CURRENT.get()
    if observation is not None:
        query = getattr(request_data, "query", None)
        name = getattr(request_data, "operation_name", None)
        if isinstance(query, str) and (name is None or isinstance(name, str)):
            name = document_operation_name(query, name)
        observation.operation = operation_label(name)
        observation.type = kind.value if kind is not None else "unknown"
    return observation


def record_result(result: Any) -> None:
    """Classify the current request's ``ExecutionResult``: ok, user_error (``userErrors`` or errors raised
    on purpose), error (a bug, masked as "Internal server error") or refused (invalid document, limits)."""
    observation = _CURRENT.get()
    if observation is not None:
        observation.outcome = outcome_of(result)


def record_status(status_code: int) -> None:
    """A request answered without executing anything: refused, unless the server failed (5xx)."""
    observation = _CURRENT.get()
    if observation is not None and observation.outcome is None and status_code >= 500:
        observation.outcome = "error"


def outcome_of(result: Any) -> str:
    """See :func:`record_result`."""
    errors = getattr(result, "errors", None)
    data = getattr(result, "data", None)
    if errors:
        for error in errors:
            original = getattr(error, "original_error", None)
            if getattr(error, "message", None) == "Internal server error" or (
                original is not None and not hasattr(original, "message")
            ):
                return "error"
        if data is None and not any(getattr(error, "path", None) for error in errors):
            return "refused"
        return "user_error"
    if isinstance(data, dict):
        for value in data.values():
            if isinstance(value, dict) and value.get("userErrors"):
                return "user_error"
    return "ok"


# --- websockets ----------------------------------------------------------------------------------------


def subscription_started(task: asyncio.Task[Any] | None) -> None:
    """Count a subscription until its task ends (completed, cancelled or failed)."""
    if task is None:
        return
    SUBSCRIPTIONS.inc()
    task.add_done_callback(lambda _task: SUBSCRIPTIONS.dec())


def subscription_message_sent(query: object, operation_name: object) -> None:
    """A ``next`` message went out: if an event caused it, count it and its lag since the commit."""
    slot = _EVENT_SLOT.get()
    if slot is None or slot[0] is None:
        return
    committed_at, slot[0] = slot[0], None
    name = operation_name
    if isinstance(query, str) and (operation_name is None or isinstance(operation_name, str)):
        name = document_operation_name(query, operation_name)
    label = operation_label(name)
    SUBSCRIPTION_EVENTS_SENT.labels(label).inc()
    SUBSCRIPTION_EVENT_LAG.labels(label).observe(max(0.0, wall_time() - committed_at))


def wall_time() -> float:
    """Seconds since the epoch of the real clock (event lags span processes; never the pinned clock)."""
    from services.clock import wall_clock

    return wall_clock().timestamp()


# --- database pool, scheduler ---------------------------------------------------------------------------


def instrument_pool(engine: Any, pool_size: int) -> None:
    """Follow checkouts of an ``AsyncEngine``'s pool (SQLAlchemy pool events)."""
    from sqlalchemy import event

    POOL_SIZE.set(pool_size)
    pool = engine.sync_engine.pool
    event.listen(pool, "checkout", lambda *_args: POOL_CHECKED_OUT.inc())
    event.listen(pool, "checkin", lambda *_args: POOL_CHECKED_OUT.dec())


def job_ran(job: str, outcome: str, seconds: float) -> None:
    """The scheduler's ``on_run`` hook."""
    JOB_RUNS.labels(job, outcome).inc()
    JOB_DURATION.labels(job).observe(seconds)


# --- the outbox, read at scrape time --------------------------------------------------------------------


class OutboxCollector(Collector):
    """Pending outbox messages and the age of the oldest, from one indexed query per scrape."""

    QUERY = "SELECT count(*), min(created_at) FROM outbox_messages WHERE status = 'PENDING'"

    def __init__(self, database_url: str, *, timeout: float = 2.0) -> None:
        from sqlalchemy.engine import make_url

        from app.db import async_url

        url = make_url(async_url(database_url)).set(drivername="postgresql")
        self.dsn = url.render_as_string(hide_password=False)
        self.timeout = timeout

    async def _read(self) -> tuple[int, Any]:
        import asyncpg

        connection = await asyncpg.connect(self.dsn, timeout=self.timeout)
        try:
            row = await connection.fetchrow(self.QUERY, timeout=self.timeout)
        finally:
            await connection.close()
        assert row is not None
        return int(row[0]), row[1]

    def collect(self) -> Iterable[GaugeMetricFamily]:
        """Runs in the scrape's thread, on an event loop of its own."""
        from services import clock

        try:
            pending, oldest = asyncio.run(self._read())
        except Exception as error:  # the scrape still shows every other metric
            log.warning("outbox metrics unavailable: %s", type(error).__name__)
            return
        yield GaugeMetricFamily(
            "kabinet_outbox_pending_messages", "Outbox messages waiting to be sent.", pending
        )
        age = max(0.0, (clock.now() - oldest).total_seconds()) if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "kabinet_outbox_oldest_pending_age_seconds", "Age of the oldest message waiting to be sent.", age
        )


class _Merged(Collector):
    """Several collectors as one (a registry of this process plus the outbox collector)."""

    def __init__(self, *parts: Any) -> None:
        self.parts = parts

    def collect(self) -> Iterable[Any]:
        for part in self.parts:
            yield from part.collect()


# --- serving /metrics -----------------------------------------------------------------------------------

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass
class MetricsServer:
    """A running ``/metrics`` HTTP server (a thread of this process)."""

    server: Any
    thread: Any

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self.server.server_address[1])

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_process(host: str, port: int, database_url: str | None) -> MetricsServer | None:
    """Serve this process's metrics on ``host:port`` (single-process server; the app's lifespan calls it).

    A worker under a supervisor (``PROMETHEUS_MULTIPROC_DIR`` set) serves nothing: the supervisor does."""
    if not port or os.environ.get(MULTIPROC_ENV):
        return None
    registry = CollectorRegistry(auto_describe=False)
    parts: list[Any] = [REGISTRY]
    if database_url:
        parts.append(OutboxCollector(database_url))
    registry.register(_Merged(*parts))
    server, thread = start_http_server(port, addr=host, registry=registry)
    log.info("metrics on http://%s:%d/metrics", host, port)
    return MetricsServer(server, thread)


def prepare_multiprocess() -> Callable[[], None]:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at an empty directory before any worker starts: the one set in
    the environment (emptied: samples of an earlier run must not count) or a new temporary one. Returns
    what to call when the workers have stopped (removes a temporary directory)."""
    given = os.environ.get(MULTIPROC_ENV)
    directory = given or tempfile.mkdtemp(prefix="kabinet-metrics-")
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)
    os.environ[MULTIPROC_ENV] = directory

    def done() -> None:
        if not given:
            shutil.rmtree(directory, ignore_errors=True)
            os.environ.pop(MULTIPROC_ENV, None)

    return done


def serve_supervisor(host: str, port: int, database_url: str | None) -> MetricsServer:
    """Serve every worker's metrics, merged from ``PROMETHEUS_MULTIPROC_DIR``, from the supervisor."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry(auto_describe=False)
    multiprocess.MultiProcessCollector(registry)
    if database_url:
        registry.register(OutboxCollector(database_url))
    server, thread = start_http_server(port, addr=host, registry=registry)
    log.info("metrics of every worker on http://%s:%d/metrics", host, port)
    return MetricsServer(server, thread)


def worker_died(pid: int | None) -> None:
    """Drop a dead worker's live gauges (websockets, subscriptions, pool) from the merged view."""
    if pid is not None and os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
