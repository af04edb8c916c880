"""Issue 17: the analytics API — correct numbers from rollups, suppression, roles, CSV export, replica."""

from __future__ import annotations

import csv
import datetime as dt
import io
import tracemalloc
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.db import Database
from app.main import create_app
from app.settings import Settings
from services import analytics
from services.analytics import query as analytics_query
from services.analytics.catalog import Dimension, Measure
from tests.client import Api
from tests.conftest import _admin, _with_database, login_as
from tests.dates import month, period

ANALYST = "+73333333333"
OPERATOR = "+72222222222"

QUERY = """query($q: AnalyticsQueryInput!) { analytics(query: $q) {
  rows { keys { dimension value label } cells { measure money quantity count share seconds suppressed
    suppressionReason comparison { money count suppressed } } }
  totals { measure money quantity count share seconds suppressed suppressionReason
    comparison { money count } } } }"""

EXPORT = """query($q: AnalyticsQueryInput!) { analyticsExport(query: $q) { url expiresAt } }"""

SYNTHETIC_ACCOUNTS = 72


async def _load_and_refresh(db: Database, accounts: int = SYNTHETIC_ACCOUNTS) -> None:
    from app import demo  # the synthetic loader

    await demo.load(db, extra_accounts=accounts, months=3, today=month(0).replace(day=1))
    async with db.session() as session:
        await analytics.refresh(session)
        await session.commit()


@pytest.fixture
async def loaded(db: Database) -> Database:
    """The demo data plus synthetic accounts (≥10 per branch), rollups built."""
    await _load_and_refresh(db)
    return db


@pytest.fixture
async def analyst(db: Database, settings: Settings) -> str:
    return await login_as(db, settings, ANALYST)


def _q(**changes: Any) -> dict[str, Any]:
    return {"periodFrom": period(-1), "periodTo": period(-1), **changes}


async def _scalar(db: Database, sql: str, **params: Any) -> Any:
    async with db.session() as session:
        return (await session.execute(text(sql), params)).scalar_one()


@pytest.mark.calendar
async def test_17_cells_match_raw_rows(api: Api, loaded: Database, analyst: str) -> None:
    """A few cells recomputed straight from charges, balances and payments equal the rollup answers."""
    body = await api.data(
        QUERY,
        token=analyst,
        q=_q(
            measures=["CHARGED", "CONSUMPTION_KWH", "DEBTORS", "DEBT", "PAYMENTS_COUNT"],
            dimensions=["BRANCH"],
        ),
    )
    rows = body["analytics"]["rows"]
    assert rows, "the synthetic accounts were billed last month"
    branch_ids = await _branch_ids(loaded)
    checked = 0
    for row in rows:
        branch = branch_ids[row["keys"][0]["label"]]
        charged, kwh, debtors, debt, payments = row["cells"]
        if charged["suppressed"]:
            continue
        raw_charged = await _scalar(
            loaded,
            "SELECT sum(c.amount + c.recalculation) FROM charges c JOIN accounts a ON a.id = c.account_id "
            "WHERE a.branch_id = :b AND c.period = :p",
            b=branch,
            p=month(-1),
        )
        raw_kwh = await _scalar(
            loaded,
            "SELECT sum(c.volume) FROM charges c JOIN accounts a ON a.id = c.account_id "
            "JOIN services s ON s.id = c.service_id "
            "WHERE a.branch_id = :b AND c.period = :p AND s.unit = 'кВт·ч'",
            b=branch,
            p=month(-1),
        )
        raw_debtors = await _scalar(
            loaded,
            "SELECT count(DISTINCT pb.account_id) FROM period_balances pb "
            "JOIN accounts a ON a.id = pb.account_id "
            "WHERE a.branch_id = :b AND pb.period = :p AND pb.closing > 0",
            b=branch,
            p=month(-1),
        )
        raw_debt = await _scalar(
            loaded,
            "SELECT coalesce(sum(pb.closing), 0) FROM period_balances pb "
            "JOIN accounts a ON a.id = pb.account_id "
            "WHERE a.branch_id = :b AND pb.period = :p AND pb.closing > 0",
            b=branch,
            p=month(-1),
        )
        assert Decimal(charged["money"]) == raw_charged
        assert Decimal(kwh["quantity"]) == raw_kwh
        if not debtors["suppressed"]:
            assert debtors["count"] == raw_debtors
            assert Decimal(debt["money"]) == raw_debt
        if not payments["suppressed"]:
            raw_payments = await _scalar(
                loaded,
                "SELECT count(DISTINCT p.id) FROM payments p "
                "JOIN payment_allocations pa ON pa.payment_id = p.id "
                "JOIN accounts a ON a.id = pa.account_id WHERE a.branch_id = :b "
                "AND date_trunc('month', p.created_at AT TIME ZONE 'Europe/Moscow') = :p",
                b=branch,
                p=month(-1),
            )
            assert payments["count"] == raw_payments
        checked += 1
    assert checked >= 2
    totals = body["analytics"]["totals"]
    assert Decimal(totals[0]["money"]) == await _scalar(
        loaded, "SELECT sum(amount + recalculation) FROM charges WHERE period = :p", p=month(-1)
    )


async def _branch_ids(db: Database) -> dict[str, int]:
    async with db.session() as session:
        return {
            name: id_ for id_, name in (await session.execute(text("SELECT id, name FROM branches"))).all()
        }


async def _shrink_a_branch(db: Database, keep: int) -> int:
    """Leave ``keep`` billed accounts in the branch with the most, moving its others to the next branch."""
    async with db.session() as session:
        branches = [
            row[0]
            for row in await session.execute(
                text(
                    "SELECT a.branch_id FROM accounts a JOIN period_balances pb ON pb.account_id = a.id "
                    "WHERE pb.period = :p GROUP BY a.branch_id ORDER BY count(DISTINCT a.id) DESC"
                ),
                {"p": month(-1)},
            )
        ]
        small, other = branches[0], branches[1]
        await session.execute(
            text(
                "UPDATE accounts SET branch_id = :other, number = number || 'm' WHERE id IN ("
                "SELECT a.id FROM accounts a "
                "JOIN period_balances pb ON pb.account_id = a.id AND pb.period = :p "
                "WHERE a.branch_id = :small GROUP BY a.id ORDER BY a.id OFFSET :keep)"
            ),
            {"other": other, "small": small, "p": month(-1), "keep": keep},
        )
        await analytics.refresh(session)
        await session.commit()
    return small


@pytest.mark.calendar
async def test_17_small_cells_are_suppressed_with_a_complement(
    api: Api, loaded: Database, analyst: str
) -> None:
    small = await _shrink_a_branch(loaded, keep=4)
    body = await api.data(QUERY, token=analyst, q=_q(measures=["ACCOUNTS", "CHARGED"], dimensions=["BRANCH"]))
    rows = body["analytics"]["rows"]
    by_branch = {row["keys"][0]["value"]: row["cells"] for row in rows}
    from strawberry import relay

    accounts, charged = by_branch[relay.to_base64("Branch", small)]
    assert accounts == {**accounts, "count": None, "suppressed": True, "suppressionReason": "FEW_SUBJECTS"}
    assert charged["money"] is None and charged["suppressionReason"] == "FEW_SUBJECTS"
    # the total is shown, so one other branch is hidden too: the small one cannot be recovered
    reasons = [row["cells"][0]["suppressionReason"] for row in rows]
    assert reasons.count("COMPLEMENTARY") == 1, reasons
    assert body["analytics"]["totals"][0]["count"] is not None
    visible = sum(row["cells"][0]["count"] for row in rows if not row["cells"][0]["suppressed"])
    assert body["analytics"]["totals"][0]["count"] - visible >= 10  # what is hidden covers ≥ 10 accounts


@pytest.mark.calendar
async def test_17_no_line_has_a_lone_suppressed_cell(api: Api, loaded: Database, analyst: str) -> None:
    await _shrink_a_branch(loaded, keep=6)
    body = await api.data(QUERY, token=analyst, q=_q(measures=["DEBTORS"], dimensions=["BRANCH", "SUPPLIER"]))
    cells = {(r["keys"][0]["value"], r["keys"][1]["value"]): r["cells"][0] for r in body["analytics"]["rows"]}
    assert any(c["suppressionReason"] == "FEW_SUBJECTS" for c in cells.values())
    for axis in (0, 1):
        lines: dict[str, list[dict[str, Any]]] = {}
        for key, cell in cells.items():
            lines.setdefault(key[1 - axis], []).append(cell)
        for line in lines.values():
            hidden = sum(c["suppressed"] for c in line)
            assert hidden != 1 or len(line) == 1, line


@pytest.mark.calendar
async def test_17_statements_do_not_grow_with_measures_or_rows(
    api: Api, loaded: Database, analyst: str, sql_counter: Any
) -> None:
    """All measures, their totals and the comparison are answered in one statement per range."""
    await api.data(QUERY, token=analyst, q=_q(measures=["APPEALS"]))  # the login session is checked once
    counts, analytics_statements = [], []
    for measures, dimensions in (
        (["CHARGED"], []),
        (["CHARGED", "DEBT", "ACCOUNTS", "READINGS_SUBMITTED", "APPEALS"], ["PERIOD"]),
    ):
        with sql_counter() as counted:
            await api.data(
                QUERY,
                token=analyst,
                q=_q(
                    measures=measures,
                    dimensions=dimensions,
                    periodFrom=period(-3),
                    compareWith="YEAR_EARLIER",
                ),
            )
        counts.append(counted.statements)
        analytics_statements.append(sum("analytics_rollups" in sql for sql in counted.sql))
    assert counts[0] == counts[1]
    assert analytics_statements == [2, 2]  # the range and the comparison range


async def test_17_forbidden_for_customers_and_operators(
    api: Api, db: Database, settings: Settings, customer_token: str
) -> None:
    operator = await login_as(db, settings, OPERATOR)
    for token in (customer_token, operator):
        for document in (QUERY, EXPORT):
            body = await api.gql(document, token=token, q=_q(measures=["ACCOUNTS"]))
            assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
            assert body.get("data") is None
    body = await api.gql(QUERY, q=_q(measures=["ACCOUNTS"]))
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_17_meaningless_combinations_are_refused(api: Api, db: Database, analyst: str) -> None:
    for q, code in (
        (_q(measures=["PAYMENTS_SUM"], dimensions=["ZONE"]), "ANALYTICS_DIMENSION_NOT_APPLICABLE"),
        (_q(measures=["REGISTRATIONS"], filters={"channel": "WEB"}), "ANALYTICS_FILTER_NOT_APPLICABLE"),
        (_q(measures=["ACCOUNTS"], periodFrom=period(0), periodTo=period(-1)), "ANALYTICS_BAD_PERIOD_RANGE"),
        (_q(measures=[]), "ANALYTICS_NO_MEASURES"),
    ):
        body = await api.gql(QUERY, token=analyst, q=q)
        assert body["errors"][0]["extensions"]["code"] == code, body


@pytest.mark.calendar
async def test_17_comparison_is_the_earlier_answer(api: Api, loaded: Database, analyst: str) -> None:
    now = await api.data(
        QUERY, token=analyst, q=_q(measures=["CHARGED"], dimensions=["BRANCH"], compareWith="PREVIOUS_PERIOD")
    )
    before = await api.data(
        QUERY,
        token=analyst,
        q={
            "periodFrom": period(-2),
            "periodTo": period(-2),
            "measures": ["CHARGED"],
            "dimensions": ["BRANCH"],
        },
    )
    earlier = {r["keys"][0]["value"]: r["cells"][0]["money"] for r in before["analytics"]["rows"]}
    compared = 0
    for row in now["analytics"]["rows"]:
        comparison = row["cells"][0]["comparison"]
        if row["keys"][0]["value"] in earlier:
            assert comparison["money"] == earlier[row["keys"][0]["value"]]
            compared += 1
    assert compared >= 1
    assert now["analytics"]["totals"][0]["comparison"]["money"] == before["analytics"]["totals"][0]["money"]


@pytest.mark.calendar
async def test_17_export_csv_through_a_short_lived_link(
    api: Api, loaded: Database, analyst: str, clock: Any
) -> None:
    await _shrink_a_branch(loaded, keep=4)  # suppressed cells too: the export hides the same ones
    q = _q(measures=["CHARGED", "ACCOUNTS"], dimensions=["PERIOD", "BRANCH"], periodFrom=period(-3))
    answer = await api.data(QUERY, token=analyst, q=q)
    link = (await api.data(EXPORT, token=analyst, q=q))["analyticsExport"]
    path = link["url"].removeprefix("http://kabinet.test")
    response = await api.client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(response.text)))
    hidden = [
        (line["period"], line["branch"], line["suppression_reason"])
        for line in lines
        if line["suppressed"] == "true"
    ]
    assert {reason for *_, reason in hidden} == {"FEW_SUBJECTS", "COMPLEMENTARY"}
    assert len(hidden) == sum(c["suppressed"] for r in answer["analytics"]["rows"] for c in r["cells"])
    expected = [
        (row["keys"][0]["value"], row["keys"][1]["label"], cell["measure"], cell["money"] or cell["count"])
        for row in answer["analytics"]["rows"]
        for cell in row["cells"]
        if cell["money"] is not None or cell["count"] is not None
    ]
    got = [
        (line["period"], line["branch"], line["measure"], line["value"] or None)
        for line in lines
        if line["total"] == "false"
    ]
    assert sorted((p, b, m, str(v)) for p, b, m, v in expected) == sorted(
        (p, b, m, str(v)) for p, b, m, v in got if v is not None
    )
    totals = {line["measure"]: line["value"] for line in lines if line["total"] == "true"}
    assert totals == {
        cell["measure"]: str(cell["money"] or cell["count"]) for cell in answer["analytics"]["totals"]
    }
    assert all(line["period"] == line["branch"] == "" for line in lines if line["total"] == "true")
    clock.advance(dt.timedelta(minutes=6))
    assert (await api.client.get(path)).status_code == 403


@pytest.mark.calendar
async def test_17_export_csv_carries_totals_and_comparison(api: Api, loaded: Database, analyst: str) -> None:
    """Issue 17 gap: with `compareWith` every CSV line (totals too) has the earlier range's cell, the same
    values and suppression as `analytics` returns."""
    q = _q(
        measures=["DEBT", "DEBTORS"],  # one family: every row has both cells
        dimensions=["BRANCH"],
        periodFrom=period(-1),
        periodTo=period(-1),
        compareWith="PREVIOUS_PERIOD",
    )
    answer = (await api.data(QUERY, token=analyst, q=q))["analytics"]
    link = (await api.data(EXPORT, token=analyst, q=q))["analyticsExport"]
    response = await api.client.get(link["url"].removeprefix("http://kabinet.test"))
    assert response.status_code == 200
    lines = list(csv.DictReader(io.StringIO(response.text)))
    assert lines and {"comparison_value", "comparison_suppressed", "total"} <= set(lines[0])

    def shown(cell: dict[str, Any] | None) -> str:
        if cell is None:
            return ""
        value = cell.get("money") or cell.get("count")
        return "" if value is None else str(value)

    expected = {
        (row["keys"][0]["label"], cell["measure"]): (shown(cell), shown(cell["comparison"]))
        for row in answer["rows"]
        for cell in row["cells"]
    }
    got = {
        (line["branch"], line["measure"]): (line["value"], line["comparison_value"])
        for line in lines
        if line["total"] == "false"
    }
    assert got == expected
    assert any(before for _, before in got.values()), "the previous month was billed too"
    totals = {
        line["measure"]: (line["value"], line["comparison_value"])
        for line in lines
        if line["total"] == "true"
    }
    assert totals == {c["measure"]: (shown(c), shown(c["comparison"])) for c in answer["totals"]}


async def test_17_export_streams_in_chunks_with_bounded_memory(db: Database) -> None:
    """300,000 cells are exported through a server-side cursor: many chunks, small peak memory."""
    cells = 300_000
    async with db.session() as session:
        # only this test's rows (the demo's billing import built the rollups of its months)
        await session.execute(text("DELETE FROM analytics_rollups"))
        await session.execute(
            text(
                "INSERT INTO analytics_rollups (family, period, grouping, topic, subjects, appeals) "
                "SELECT 'appeals', :p, 13, 'T' || lpad(i::text, 7, '0'), 10 + i % 50, 10 + i % 50 "
                "FROM generate_series(1, :n) AS i"
            ),
            {"p": month(-1), "n": cells},
        )
        await session.commit()
    q = analytics_query.AnalyticsQuery(
        measures=(Measure.APPEALS,), first=month(-1), last=month(-1), dimensions=(Dimension.APPEAL_TOPIC,)
    )
    chunks = lines = size = 0
    tracemalloc.start()
    try:
        async with db.engine.connect() as connection:
            async for chunk in analytics_query.export_csv(connection, q):
                chunks += 1
                lines += chunk.count(b"\n")
                size += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines == cells + 2  # the header and the totals line
    assert chunks >= cells // analytics_query.EXPORT_CHUNK_ROWS
    assert peak < size / 2, (peak, size)  # never the whole export (nor its rows) in memory at once


@pytest.fixture
async def replica_url(pg_server_url: str, template_database: str, database_url: str) -> AsyncIterator[str]:
    """A second database standing in for a read replica (a copy of the demo data)."""
    name = database_url.rsplit("/", 1)[1] + "_replica"
    await _admin(pg_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    yield _with_database(pg_server_url, name)
    await _admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.calendar
async def test_17_analytics_reads_go_to_the_replica(settings: Settings, replica_url: str) -> None:
    """With KABINET_ANALYTICS_DATABASE_URL the answer (and the export) comes from that database."""
    replica = Database(replica_url, pool_size=1)
    try:
        async with replica.session() as session:
            await session.execute(
                text(
                    "INSERT INTO analytics_rollups (family, period, grouping, subjects, registrations) "
                    "VALUES ('registrations', :p, 0, 777, 777)"
                ),
                {"p": month(-1)},
            )
            await session.commit()
    finally:
        await replica.dispose()
    routed = settings.model_copy(update={"analytics_database_url": replica_url})
    for config, expected in ((routed, 777), (settings, None)):
        application = create_app(config)
        async with application.router.lifespan_context(application):
            db = application.state.kabinet.db
            async with db.session() as session:  # the primary's own rollups: different
                await analytics.refresh(session, periods=[month(-1)])
                await session.commit()
            token = await login_as(db, config, ANALYST)
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://kabinet.test") as client:
                api = Api(client)
                body = await api.data(QUERY, token=token, q=_q(measures=["REGISTRATIONS"]))
                total = body["analytics"]["totals"][0]["count"]
                link = (await api.data(EXPORT, token=token, q=_q(measures=["REGISTRATIONS"])))[
                    "analyticsExport"
                ]
                exported = (await client.get(link["url"].removeprefix("http://kabinet.test"))).text
            if expected is not None:
                assert total == expected
                assert "777" in exported
            else:
                assert total != 777
                assert "777" not in exported


async def test_17_refresh_job_runs_once_per_slot(db: Database, clock: Any) -> None:
    """The scheduled refresh recomputes the current and previous month at most once per 15 minutes."""
    from services.analytics.refresh import refresh_job

    async with db.session() as session:  # the demo's billing import built the rollups of its months
        await session.execute(text("DELETE FROM analytics_rollups"))
        await session.commit()
    first = await refresh_job(db.unit_of_work, clock.now())
    again = await refresh_job(db.unit_of_work, clock.now())
    assert first > 0 and again == 0
    assert await _scalar(db, "SELECT count(DISTINCT period) FROM analytics_rollups") == 2


@pytest.mark.calendar
async def test_17_refresh_by_accounts_recomputes_their_months(
    api: Api, loaded: Database, analyst: str
) -> None:
    """A billing correction for one account shows up after ``refresh(account_ids=…)``, not before."""
    q = _q(measures=["CHARGED"])
    before = Decimal((await api.data(QUERY, token=analyst, q=q))["analytics"]["totals"][0]["money"])
    async with loaded.session() as session:
        account = (
            await session.execute(
                text(
                    "UPDATE charges SET recalculation = recalculation + 1000 WHERE id = ("
                    "SELECT min(id) FROM charges WHERE period = :p) RETURNING account_id"
                ),
                {"p": month(-1)},
            )
        ).scalar_one()
        await session.commit()
    stale = Decimal((await api.data(QUERY, token=analyst, q=q))["analytics"]["totals"][0]["money"])
    async with loaded.session() as session:
        result = await analytics.refresh(session, account_ids=[account])
        await session.commit()
    assert month(-1) in result.periods
    after = Decimal((await api.data(QUERY, token=analyst, q=q))["analytics"]["totals"][0]["money"])
    assert (stale, after) == (before, before + 1000)


@pytest.mark.calendar
async def test_17_first_answer_time_of_applications_and_appeals(
    api: Api, loaded: Database, analyst: str
) -> None:
    """Issue 17 gap: median/p90 time to the first operator answer for applications as well as appeals,
    each equal to the percentile over the raw rows (first ANSWER event, else the answer time)."""
    created = dt.datetime.combine(month(-1), dt.time(7, 0), tzinfo=dt.UTC) + dt.timedelta(days=9)
    async with loaded.session() as session:
        pairs = (
            await session.execute(
                text(
                    "SELECT DISTINCT ON (ua.account_id) ua.account_id, ua.user_id FROM user_accounts ua "
                    "ORDER BY ua.account_id LIMIT 24"
                )
            )
        ).all()
        assert len(pairs) >= 2 * analytics_query.MIN_SUBJECTS
        for index, (account_id, user_id) in enumerate(pairs):
            answered = created + dt.timedelta(hours=3 * index + 1)
            for table in ("applications", "appeals"):
                extra = (
                    ("kind", "'RECONCILIATION_ACT'")
                    if table == "applications"
                    else ("topic, text, full_name", "'OTHER', 'Тест', 'Тестов Тест'")
                )
                row_id = (
                    await session.execute(
                        text(
                            f"INSERT INTO {table} (user_id, account_id, {extra[0]}, status, answered_at, "
                            "created_at, updated_at) "
                            f"VALUES (:u, :a, {extra[1]}, 'ANSWERED', :answered, :created, :created) "
                            "RETURNING id"
                        ),
                        {"u": user_id, "a": account_id, "answered": answered, "created": created},
                    )
                ).scalar_one()
                if index % 2:  # the first ANSWER event comes before the (later) answer time
                    parent = "application_id" if table == "applications" else "appeal_id"
                    await session.execute(
                        text(
                            f"INSERT INTO request_events ({parent}, kind, status, created_at) "
                            "VALUES (:id, 'ANSWER', 'ANSWERED', :at)"
                        ),
                        {"id": row_id, "at": answered - dt.timedelta(minutes=30)},
                    )
        await analytics.refresh(session, periods=[month(-1)])
        await session.commit()
    measures = [
        "APPLICATIONS",
        "APPLICATION_FIRST_ANSWER_MEDIAN",
        "APPLICATION_FIRST_ANSWER_P90",
        "FIRST_ANSWER_MEDIAN",
        "FIRST_ANSWER_P90",
    ]
    body = await api.data(QUERY, token=analyst, q=_q(measures=measures))
    totals = {cell["measure"]: cell for cell in body["analytics"]["totals"]}
    for table, parent, median, p90 in (
        ("applications", "application_id", "APPLICATION_FIRST_ANSWER_MEDIAN", "APPLICATION_FIRST_ANSWER_P90"),
        ("appeals", "appeal_id", "FIRST_ANSWER_MEDIAN", "FIRST_ANSWER_P90"),
    ):
        raw = (
            "SELECT percentile_cont(CAST(:q AS float8)) WITHIN GROUP (ORDER BY s) FROM ("
            "SELECT CAST(extract(epoch FROM coalesce((SELECT min(e.created_at) FROM request_events e "
            f"WHERE e.{parent} = x.id AND e.kind = 'ANSWER'), x.answered_at) - x.created_at) AS integer) "
            "AS s "
            f"FROM {table} x WHERE date_trunc('month', x.created_at AT TIME ZONE 'Europe/Moscow') = :p) AS t "
            "WHERE s IS NOT NULL"
        )
        for name, q in ((median, 0.5), (p90, 0.9)):
            expected = await _scalar(loaded, raw, q=q, p=month(-1))
            assert totals[name]["suppressed"] is False, totals[name]
            assert totals[name]["seconds"] == pytest.approx(expected), name
    assert totals["APPLICATION_FIRST_ANSWER_MEDIAN"]["seconds"] > 0


async def test_17_graphiql_analytics_examples_run_for_an_analyst(
    api: Api, loaded: Database, analyst: str
) -> None:
    """The analysts' example tabs over `analytics` answer without errors (not only validate)."""
    from app.graphiql import example_documents

    examples = [(name, text) for name, text in example_documents() if "analytics(" in text]
    assert len(examples) >= 4
    for name, document in examples:
        body = await api.gql(document, token=analyst)
        assert not body.get("errors"), (name, body.get("errors"))
        assert body["data"]["analytics"]["totals"], name
