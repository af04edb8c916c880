"""Issue 20: Prometheus metrics on their own port, OpenTelemetry traces, quiet and truthful start-up."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import tracing
from app.db import Database
from app.demo import DEMO_PHONE_E164
from app.main import create_app
from app.settings import Settings
from services.clock import Clock
from tests.client import Api, graphql_ws
from tests.conftest import _admin, _server_dsn, running_server

DASHBOARD = """query Dashboard {
  accounts(first: 20) { totalCount edges { node { id number balance { amount status }
    meters { id serial lastReadings { zone period value } } } } }
}"""
STREAM = "subscription Live { notifications { cursor notification { id title } } }"


ROOT = Path(__file__).resolve().parent.parent


def _kabinet(args: list[str], env: dict[str, str], *, output: bool) -> subprocess.Popen[str]:
    """``python -m app.cli ARGS`` in the project directory (stdout and stderr merged, or discarded)."""
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        stdout=subprocess.PIPE if output else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if output else subprocess.DEVNULL,
        text=True,
        cwd=str(ROOT),
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The usual test settings with the metrics endpoint on a free port and the scheduler running once."""
    return settings.model_copy(
        update={"metrics_port": _free_port(), "scheduler_enabled": True, "scheduler_interval": 3600.0}
    )


async def scrape(settings: Settings) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` over HTTP: every sample by name and sorted labels."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://{settings.metrics_host}:{settings.metrics_port}/metrics")
    assert response.status_code == 200
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 when there is none)."""
    return sum(
        found
        for (sample, sample_labels), found in samples.items()
        if sample == name and labels.items() <= dict(sample_labels).items()
    )


async def test_metrics_are_served_on_their_own_port_with_the_figures_of_the_requests(
    api: Api, settings: Settings, db: Database, customer_token: str, live_server: str, clock: Clock
) -> None:
    from sqlalchemy import select

    from models.identity import User
    from models.notifications import NotificationCategory
    from models.outbox import OutboxChannel
    from services import notifications, outbox

    for _ in range(100):  # the scheduler's first round (it may bump cache versions) ends first
        before = await scrape(settings)
        if value(before, "kabinet_scheduler_job_runs_total", job="autopay"):
            break
        await asyncio.sleep(0.1)
    requests = "kabinet_graphql_requests_total"
    ok_before = value(before, requests, operation="Dashboard", type="query", outcome="ok")
    hits_before = value(before, "kabinet_result_cache_lookups_total", result="hit")

    first = await api.data(DASHBOARD, token=customer_token)
    again = await api.data(DASHBOARD, token=customer_token)  # served from the result cache
    assert first == again and first["accounts"]["totalCount"] >= 1
    refused = await api.post("query Broken { noSuchField }", token=customer_token)
    assert refused.json()["errors"]
    unauthenticated = await api.post("{ me { id } }", token="not-a-token")
    assert unauthenticated.status_code == 401
    anonymous = await api.post("{ accounts(first: 1) { totalCount } }")
    assert anonymous.json()["errors"]

    async with db.session() as session:
        user_id = (await session.execute(select(User.id).where(User.phone == DEMO_PHONE_E164))).scalar_one()
        outbox.enqueue(session, OutboxChannel.SMS, "+70000000000", "queued")
        await session.commit()
    clock.advance(dt.timedelta(seconds=90))

    async with graphql_ws(live_server, init={"token": customer_token}) as ws:
        op = await ws.subscribe(STREAM)
        await asyncio.sleep(0.3)
        async with db.session() as session:
            await notifications.notify(
                session, user_id=user_id, category=NotificationCategory.BILLING, title="Оплата", body="Текст"
            )
            await session.commit()
        while (message := await ws.receive(10))["id"] != op:
            pass
        assert message["type"] == "next"
        during = await scrape(settings)
    after = await scrape(settings)

    assert value(after, requests, operation="Dashboard", type="query", outcome="ok") == ok_before + 2
    assert value(after, requests, operation="Broken", outcome="refused") >= 1
    assert value(after, requests, operation="anonymous", outcome="refused") >= 1  # the bad token (401)
    assert value(after, requests, operation="anonymous", type="query", outcome="user_error") >= 1
    count = value(after, "kabinet_graphql_request_duration_seconds_count", operation="Dashboard")
    total = value(after, "kabinet_graphql_request_duration_seconds_sum", operation="Dashboard")
    assert count >= 2 and 0 < total < 30 * count
    assert value(after, "kabinet_result_cache_lookups_total", result="hit") == hits_before + 1
    assert value(after, "kabinet_result_cache_lookups_total", result="miss") >= 1
    assert value(after, "kabinet_fast_executor_queries_total", path="fast") >= 1
    assert ("kabinet_fast_executor_queries_total", (("path", "fallback"),)) in after
    assert value(after, "kabinet_db_pool_size") == settings.db_pool_size
    assert 1 <= value(during, "kabinet_db_pool_checked_out") + 1 <= settings.db_pool_size * 2 + 1
    assert value(during, "kabinet_websockets_open") >= 1
    assert value(during, "kabinet_subscriptions_active") >= 1
    assert value(after, "kabinet_subscriptions_active") == 0
    assert value(after, "kabinet_events_delivered_total") >= 1
    assert value(after, "kabinet_event_bus_lag_seconds_count") >= 1
    assert value(after, "kabinet_subscription_events_sent_total", operation="Live") >= 1
    lag_count = value(after, "kabinet_subscription_event_lag_seconds_count", operation="Live")
    lag_sum = value(after, "kabinet_subscription_event_lag_seconds_sum", operation="Live")
    assert lag_count >= 1 and 0 <= lag_sum / lag_count < 5
    assert value(after, "kabinet_outbox_pending_messages") >= 1
    assert value(after, "kabinet_outbox_oldest_pending_age_seconds") >= 90
    assert value(after, "kabinet_scheduler_job_runs_total", job="reading-window-reminders") >= 1
    assert value(after, "kabinet_scheduler_job_duration_seconds_count", job="autopay") >= 1
    labels = {dict(sample_labels).get("operation") for (_, sample_labels) in after}
    assert not any(label and DEMO_PHONE_E164 in label for label in labels)

    async with httpx.AsyncClient(base_url=live_server) as client:  # the public app has no /metrics
        assert (await client.get("/metrics")).status_code == 404


def test_operation_labels_are_bounded() -> None:
    from app import metrics

    assert metrics.operation_label(None) == "anonymous"
    assert metrics.operation_label("") == "anonymous"
    assert metrics.operation_label("not a name; drop table") == "other"
    assert metrics.operation_label("x" * 200) == "other"
    for n in range(metrics.MAX_OPERATION_LABELS + 10):
        label = metrics.operation_label(f"Op{n}")
    assert label == "other"
    assert len(metrics._operation_names) <= metrics.MAX_OPERATION_LABELS


@pytest.fixture
def spans() -> Any:
    """An in-memory exporter; tracing is switched off again after the test."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    yield exporter
    tracing.shutdown()


@pytest.fixture
async def traced_server(settings: Settings, spans: Any) -> AsyncIterator[str]:
    """The app with tracing into ``spans``, behind a real uvicorn server."""
    quiet = settings.model_copy(update={"metrics_port": 0, "scheduler_enabled": False})
    application = create_app(quiet, span_exporter=spans)
    async with application.router.lifespan_context(application), running_server(application) as url:
        yield url


async def test_a_dashboard_request_is_one_trace_with_database_spans_and_the_trace_id_in_logs(
    traced_server: str, spans: Any, customer_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    from app.logging import install_record_redaction

    install_record_redaction()  # what configure_logging installs: records carry the active trace id
    caplog.set_level(logging.DEBUG, logger="kabinet.metrics")
    spans.clear()
    async with httpx.AsyncClient(base_url=traced_server) as client:
        response = await client.post(
            "/graphql", json={"query": DASHBOARD}, headers={"authorization": f"Bearer {customer_token}"}
        )
    assert response.status_code == 200 and "errors" not in response.json()
    finished = spans.get_finished_spans()
    names = [span.name for span in finished]
    operation = next((span for span in finished if span.name == "query Dashboard"), None)
    assert operation is not None, [n for n in names if n not in ("SELECT", "INSERT", "UPDATE")]
    assert operation.attributes["graphql.operation.name"] == "Dashboard"
    assert operation.attributes["graphql.operation.type"] == "query"
    trace_id = operation.context.trace_id
    children = [span for span in finished if span.parent and span.parent.span_id == operation.context.span_id]
    database = [span for span in children if span.attributes.get("db.system.name") == "postgresql"]
    assert len(database) >= 2, [span.name for span in children]  # the session check, the accounts…
    assert all(span.context.trace_id == trace_id for span in database)
    for span in database:
        assert "$1" in span.attributes["db.query.text"] or "'" not in span.attributes["db.query.text"]
        assert DEMO_PHONE_E164 not in span.attributes["db.query.text"]
    lines = [record for record in caplog.records if "graphql query Dashboard" in record.getMessage()]
    assert lines and getattr(lines[-1], "trace_id", None) == format(trace_id, "032x")


async def test_outbound_http_calls_are_child_spans_without_the_query_string(spans: Any) -> None:
    tracing.configure(None, exporter=spans)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(204)

    with tracing.TRACER.start_as_current_span("parent") as parent:  # type: ignore[union-attr]
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            await client.get("https://sms.example/send?code=123456&token=secret")
    call = next(span for span in spans.get_finished_spans() if span.name == "HTTP GET")
    assert call.parent is not None and call.parent.span_id == parent.get_span_context().span_id
    assert call.attributes["url.path"] == "/send" and call.attributes["http.response.status_code"] == 204
    assert "123456" not in str(dict(call.attributes)) and "secret" not in str(dict(call.attributes))


def test_log_lines_carry_the_trace_id_of_the_active_span(
    spans: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.logging import configure_logging

    tracing.configure(None, exporter=spans)
    configure_logging("INFO", json=True)
    try:
        with tracing.TRACER.start_as_current_span("work") as span:  # type: ignore[union-attr]
            logging.getLogger("kabinet.test").info("inside a span")
        logging.getLogger("kabinet.test").info("outside any span")
    finally:
        for handler in list(logging.getLogger().handlers):
            if getattr(handler, "_kabinet", False):
                logging.getLogger().removeHandler(handler)
    lines = capsys.readouterr().err.splitlines()
    inside = next(line for line in lines if "inside a span" in line)
    outside = next(line for line in lines if "outside any span" in line)
    assert f'"trace_id": "{format(span.get_span_context().trace_id, "032x")}"' in inside
    assert "trace_id" not in outside


async def test_a_reused_operation_id_closes_with_4409_without_a_traceback(
    live_server: str, customer_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    import websockets

    caplog.set_level(logging.DEBUG)
    subscribe = json.dumps({"id": "x" * 120, "type": "subscribe", "payload": {"query": STREAM}})
    async with graphql_ws(live_server, init={"token": customer_token}) as ws:
        await ws.socket.send(subscribe)
        await asyncio.sleep(0.2)
        await ws.socket.send(subscribe)  # the reason naming this long id used to overflow the close frame
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await ws.receive(5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4409
    await asyncio.sleep(0.3)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert not [record for record in caplog.records if record.exc_info]
    assert any("4409" in record.getMessage() and record.levelno == logging.INFO for record in caplog.records)


async def test_kabinet_serve_starts_quietly_and_truthfully(
    pg_server_url: str, redis_url: str, tmp_path: Path
) -> None:
    name = f"kabinet_serve_{uuid.uuid4().hex[:8]}"
    await _admin(pg_server_url, f'CREATE DATABASE "{name}"')
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _server_dsn(pg_server_url, name),
        "REDIS_URL": redis_url,
        "KABINET_DATA_DIR": str(tmp_path / "var"),
        "KABINET_DEMO_ON_START": "false",
        "KABINET_GRAPHIQL": "false",
        "KABINET_SCHEDULER_ENABLED": "false",
        "KABINET_OUTBOX_DISPATCH": "false",
        "KABINET_LOG_LEVEL": "INFO",
    }
    process = _kabinet(["serve", "--port", str(port)], env, output=True)
    lines: list[str] = []
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None:
                    break
                await asyncio.sleep(0.1)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
        await _admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    lines = [line for line in output.splitlines() if line.strip()]
    startup = [line for line in lines if "Shutting down" not in line and "shutdown" not in line.lower()]
    assert process.returncode is not None
    assert len(startup) <= 10, output
    assert not any("pg_ctl" in line for line in lines), output
    assert any(f"http://127.0.0.1:{port}/graphql" in line for line in lines), output
    assert not any("GraphiQL" in line for line in lines), output  # it is off
    assert not any(re.search(r"(?i)password|Demo customer", line) for line in lines), output  # no demo loaded


async def test_the_supervisor_serves_every_workers_metrics(
    settings: Settings, customer_token: str, tmp_path: Path
) -> None:
    """``kabinet serve --workers 2``: the supervisor serves /metrics merged from both workers."""
    port, metrics_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "KABINET_REDIS_PREFIX": settings.redis_prefix,
        "KABINET_SECRET_KEY": settings.secret_key,
        "KABINET_ENV": "test",
        "KABINET_DATA_DIR": str(tmp_path / "var"),
        "KABINET_DEMO_ON_START": "false",
        "KABINET_MIGRATE_ON_START": "false",
        "KABINET_SCHEDULER_ENABLED": "false",
        "KABINET_OUTBOX_DISPATCH": "false",
        "KABINET_METRICS_PORT": str(metrics_port),
        "KABINET_CLOCK_START": "",
    }
    env.pop("KABINET_CLOCK_START")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = _kabinet(["serve", "--port", str(port), "--workers", "2"], env, output=False)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(300):
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            for _ in range(8):  # new connections: the kernel spreads them over both workers
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as fresh:
                    await fresh.post("/graphql", json={"query": "query Ping { __typename }"})
            text = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
            public = await client.get(f"http://127.0.0.1:{port}/metrics")
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert public.status_code == 404
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert value(samples, "kabinet_graphql_requests_total", operation="Ping", outcome="ok") == 8
    assert value(samples, "kabinet_db_pool_size") == 2 * 10  # two live workers, 10 each
    assert "kabinet_outbox_pending_messages" in {name for name, _ in samples}


async def test_smtp_sends_are_child_spans_without_recipients(spans: Any) -> None:
    import aiosmtplib

    from services.outbox import SmtpProvider

    tracing.configure(None, exporter=spans)
    message = type("Message", (), {"destination": "ivanov@bk.ru", "subject": "Код", "body": "Код 123456"})()
    provider = SmtpProvider(host="127.0.0.1", port=_free_port(), starttls=False, timeout=2)
    with tracing.TRACER.start_as_current_span("parent"):  # type: ignore[union-attr]
        with pytest.raises((aiosmtplib.SMTPException, OSError)):
            await provider.send(message)  # type: ignore[arg-type]  # nobody listens: the call fails
    call = next(span for span in spans.get_finished_spans() if span.name == "SMTP send")
    assert call.attributes["server.address"] == "127.0.0.1" and call.parent is not None
    assert "ivanov" not in str(dict(call.attributes)) and "123456" not in str(dict(call.attributes))
    assert not call.status.is_ok
