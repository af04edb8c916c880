"""OpenTelemetry traces, off unless ``KABINET_OTLP_ENDPOINT`` is set (or a test installs an exporter).

When on (:func:`configure`):

- one span per GraphQL HTTP request, named after its operation (``query Dashboard``) with the
  operation's name and type as attributes (:func:`request_span`, :func:`name_operation`);
- a child span per database statement (SQLAlchemy ``before/after_cursor_execute`` events,
  :func:`instrument_engine`): the statement text only — parameters never leave the process;
- a child span per outbound call: every ``httpx.AsyncClient`` request (payment gateways, the SMS gateway,
  VK through authlib, sandbox webhooks) with method, host and path — no query string, headers or body —
  and every ``aiosmtplib.send`` with the SMTP host (no recipients);
- the trace id in every log line while a span is active (``app/logging.py`` reads :func:`current_trace_id`).

Spans go to the OTLP/HTTP exporter in batches. Kabinet uses its own ``TracerProvider`` (the global one
stays untouched), so tests can install an in-memory exporter (:func:`configure` with ``exporter=``) and
turn tracing off again (:func:`shutdown`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from typing import Any

from opentelemetry import trace

log = logging.getLogger("kabinet.tracing")

TRACER: trace.Tracer | None = None
"""Kabinet's tracer while tracing is on; None when it is off (every hook checks it first)."""
_provider: Any = None
_patched = False


def current_trace_id() -> str | None:
    """The active span's trace id as 32 hex digits, or None outside a (recording) span."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def configure(endpoint: str | None, *, exporter: Any = None, service_name: str = "kabinet") -> bool:
    """Turn tracing on with an OTLP/HTTP exporter to ``endpoint``, or with ``exporter`` (tests: an
    ``InMemorySpanExporter``, exported synchronously). Neither: tracing stays off. True when on."""
    global TRACER, _provider
    if endpoint is None and exporter is None:
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    shutdown()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    _provider = provider
    TRACER = provider.get_tracer("kabinet")
    _patch_clients()
    log.info("tracing on (%s)", "OTLP/HTTP" if exporter is None else type(exporter).__name__)
    return True


def shutdown() -> None:
    """Flush and turn tracing off."""
    global TRACER, _provider
    if _provider is not None:
        _provider.shutdown()
    TRACER = _provider = None


# --- GraphQL --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def request_span() -> Iterator[None]:
    """The span of one GraphQL HTTP request (renamed by :func:`name_operation` once it is known)."""
    if TRACER is None:
        yield
        return
    with TRACER.start_as_current_span("graphql", kind=trace.SpanKind.SERVER):
        yield


def name_operation(label: str, kind: Any) -> None:
    """Name the current request span after its operation (``label``: the bounded metrics label)."""
    if TRACER is None:
        return
    span = trace.get_current_span()
    if not span.is_recording():
        return
    kind_name = kind.value if kind is not None else "unknown"
    span.update_name(f"{kind_name} {label}")
    span.set_attribute("graphql.operation.name", label)
    span.set_attribute("graphql.operation.type", kind_name)


# --- database -------------------------------------------------------------------------------------------

_SPAN_KEY = "_kabinet_span"


def instrument_engine(engine: Any) -> None:
    """A span per statement of an ``AsyncEngine`` while tracing is on (statement text, no parameters)."""
    from sqlalchemy import event

    sync_engine = engine.sync_engine

    def before(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
        if TRACER is None or context is None:
            return
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        span = TRACER.start_span(
            verb,
            kind=trace.SpanKind.CLIENT,
            attributes={"db.system.name": "postgresql", "db.query.text": statement},
        )
        setattr(context, _SPAN_KEY, span)

    def after(_conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool) -> None:
        span = getattr(context, _SPAN_KEY, None)
        if span is not None:
            span.end()
            setattr(context, _SPAN_KEY, None)

    def failed(exception_context: Any) -> None:
        span = getattr(exception_context.execution_context, _SPAN_KEY, None)
        if span is not None:
            span.set_status(
                trace.Status(trace.StatusCode.ERROR, type(exception_context.original_exception).__name__)
            )
            span.end()
            setattr(exception_context.execution_context, _SPAN_KEY, None)

    event.listen(sync_engine, "before_cursor_execute", before)
    event.listen(sync_engine, "after_cursor_execute", after)
    event.listen(sync_engine, "handle_error", failed)


# --- outbound calls -------------------------------------------------------------------------------------


def _patch_clients() -> None:
    """Wrap ``httpx.AsyncClient.send`` and ``aiosmtplib.send`` once; the wrappers do nothing while off."""
    global _patched
    if _patched:
        return
    _patched = True
    import httpx

    original_send = httpx.AsyncClient.send

    @functools.wraps(original_send)
    async def send(self: httpx.AsyncClient, request: httpx.Request, *args: Any, **kwargs: Any) -> Any:
        if TRACER is None:
            return await original_send(self, request, *args, **kwargs)
        attributes = {
            "http.request.method": request.method,
            "server.address": request.url.host,
            "url.path": request.url.path,  # never the query string (it may carry codes)
        }
        with TRACER.start_as_current_span(
            f"HTTP {request.method}", kind=trace.SpanKind.CLIENT, attributes=attributes
        ) as span:
            response = await original_send(self, request, *args, **kwargs)
            span.set_attribute("http.response.status_code", response.status_code)
            return response

    httpx.AsyncClient.send = send  # type: ignore[method-assign]

    try:
        import aiosmtplib
    except ImportError:  # pragma: no cover - a dependency
        return
    original_smtp = aiosmtplib.send

    @functools.wraps(original_smtp)
    async def smtp_send(*args: Any, **kwargs: Any) -> Any:
        if TRACER is None:
            return await original_smtp(*args, **kwargs)
        attributes: dict[str, str | int] = {
            "server.address": str(kwargs.get("hostname") or ""),
            "server.port": int(kwargs.get("port") or 0),
        }
        with TRACER.start_as_current_span("SMTP send", kind=trace.SpanKind.CLIENT, attributes=attributes):
            return await original_smtp(*args, **kwargs)

    aiosmtplib.send = smtp_send
