"""One clock for the whole system (issue 14): no rule reads the wall clock on its own, a clock started
elsewhere runs forward in real time, and a server started on another day logs in, serves and takes
readings in that day's window with tokens that live their whole lifetime."""

from __future__ import annotations

import ast
import asyncio
import datetime as dt
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.cli import anchor_clock
from app.demo import DEMO_PASSWORD, DEMO_PHONE
from app.main import create_app
from app.settings import Settings
from services.clock import CLOCK, Clock
from services.tokens import ACCESS_TOKEN_TTL
from tests.conftest import running_server
from tests.dates import SKOPIN_OPEN, on_day
from tests.test_readings import above_previous

pytestmark = pytest.mark.calendar  # date-dependent: CI runs it again on other days (README, Tests)

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("app", "services", "resolvers", "schema", "models")
CLOCK_MODULE = ROOT / "services" / "clock.py"

WALL_CLOCK_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
    ("func", "now"),
    ("func", "current_timestamp"),
    ("func", "current_date"),
    ("func", "localtimestamp"),
    ("func", "clock_timestamp"),
}
SQL_NOW = re.compile(
    r"\b(now\(\)|current_timestamp|current_date|localtimestamp|clock_timestamp\(\)|transaction_timestamp\(\))",
    re.IGNORECASE,
)


def _wall_clock_reads(path: Path) -> list[str]:
    """Calls of the wall clock in one module, and SQL text that asks PostgreSQL for the time.

    ``server_default=`` arguments are allowed: they back plain-SQL inserts only; the ORM and Core
    statements fill those columns from the clock (``default=clock_now``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "server_default":
            allowed.update(id(child) for child in ast.walk(node.value))
    found = []
    for node in ast.walk(tree):
        if id(node) in allowed:
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
            if (name, node.func.attr) in WALL_CLOCK_CALLS:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}.{node.func.attr}()")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_NOW.search(node.value):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: SQL asks PostgreSQL for the time")
    return found


def test_clock_no_module_outside_the_clock_reads_the_wall_clock() -> None:
    offenders = [
        line
        for layer in LAYERS
        for path in sorted((ROOT / layer).rglob("*.py"))
        if path != CLOCK_MODULE and "versions" not in path.parts
        for line in _wall_clock_reads(path)
    ]
    assert offenders == []


def test_clock_the_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    """The grep above can fail: each forbidden form in a scratch module is reported."""
    module = ROOT / "services" / "_scratch_clock_probe.py"
    module.write_text(
        "import datetime as dt, time\nfrom sqlalchemy import func, text\n"
        "a = dt.datetime.now(dt.UTC)\nb = dt.date.today()\nc = time.time()\nd = func.now()\n"
        "e = text('SELECT now()')\nf = mapped_column(server_default=func.now())\n",
        encoding="utf-8",
    )
    try:
        found = _wall_clock_reads(module)
    finally:
        module.unlink()
    assert [line.split(": ", 1)[1] for line in found] == [
        "datetime.now()",
        "date.today()",
        "time.time()",
        "func.now()",
        "SQL asks PostgreSQL for the time",
    ]


async def test_clock_started_elsewhere_runs_forward_in_real_time() -> None:
    clock = Clock()
    start = dt.datetime(2027, 1, 20, 9, 0, tzinfo=dt.UTC)
    clock.start_at(start)
    first = clock.now()
    await asyncio.sleep(0.05)
    second = clock.now()
    assert start <= first < second < start + dt.timedelta(seconds=5)
    assert clock.mode == "shifted"
    clock.advance(dt.timedelta(hours=1))
    assert clock.now() - second >= dt.timedelta(hours=1)
    clock.pin(start)
    assert clock.now() == clock.now() == start and clock.mode == "pinned"
    clock.reset()
    assert clock.mode == "system"


def test_clock_processes_of_one_server_share_the_anchor(monkeypatch: Any) -> None:
    """`kabinet serve` anchors the clock once; its workers read the anchor and agree to the microsecond."""
    start = on_day(20)
    monkeypatch.setenv("KABINET_NOW_OVERRIDE", start.isoformat())  # the old name keeps working
    monkeypatch.delenv("KABINET_CLOCK_ANCHORED_AT", raising=False)
    anchor_clock(Settings())
    worker = Settings()
    assert worker.clock_start == start and worker.clock_anchored_at is not None
    one, two = Clock(), Clock()
    one.start_at(start, anchored_at=worker.clock_anchored_at)
    two.start_at(start, anchored_at=worker.clock_anchored_at)
    assert abs((one.now() - two.now()).total_seconds()) < 0.01
    assert dt.timedelta(0) <= one.now() - start < dt.timedelta(minutes=1)


LOGIN = """mutation($input: LoginWithPasswordInput!) { loginWithPassword(input: $input) {
  tokens { accessToken } userErrors { code message } } }"""
ACCOUNTS = "{ accounts { edges { node { id number } } } }"
FORM = """query($id: ID!) { readingsForm(accountId: $id) { window { isOpen today }
  meters { meter { id } zones { zone previous } } } }"""
SUBMIT = """mutation($input: SubmitReadingsInput!) { submitReadings(input: $input) {
  submission { period } userErrors { code message } } }"""


async def test_clock_a_server_started_on_another_day_logs_in_and_takes_readings(settings: Settings) -> None:
    """E3 on a server started with KABINET_CLOCK_START inside the Скопинское window: tokens it issues work
    for their whole lifetime on its clock (issue 14), readings go in, and the token expires on time."""
    start = SKOPIN_OPEN
    application = create_app(settings.model_copy(update={"clock_start": start}))
    assert CLOCK.mode == "shifted"
    async with application.router.lifespan_context(application), running_server(application) as url:
        async with httpx.AsyncClient(base_url=url) as client:

            async def post(query: str, token: str | None = None, **variables: Any) -> httpx.Response:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                return await client.post(
                    "/graphql", json={"query": query, "variables": variables}, headers=headers
                )

            async def gql(query: str, token: str | None = None, **variables: Any) -> dict[str, Any]:
                response = await post(query, token, **variables)
                assert response.status_code == 200, response.text
                return response.json()  # type: ignore[no-any-return]

            login = await gql(LOGIN, input={"login": DEMO_PHONE, "password": DEMO_PASSWORD})
            token = login["data"]["loginWithPassword"]["tokens"]["accessToken"]
            CLOCK.advance(ACCESS_TOKEN_TTL - dt.timedelta(minutes=1))  # 14 minutes later: still valid
            accounts = (await gql(ACCOUNTS, token))["data"]["accounts"]["edges"]
            flat = next(edge["node"] for edge in accounts if edge["node"]["number"] == "11111111")
            form = (await gql(FORM, token, id=flat["id"]))["data"]["readingsForm"]
            assert form["window"] == {"isOpen": True, "today": start.date().isoformat()}
            values = above_previous(form, 5)
            submitted = await gql(SUBMIT, token, input={"accountId": flat["id"], "meters": values})
            assert submitted["data"]["submitReadings"] == {
                "submission": {"period": f"{start:%Y-%m}"},
                "userErrors": [],
            }
            CLOCK.advance(dt.timedelta(minutes=2))  # 16 minutes after login: expired on this clock
            expired = await post("{ me { phone } }", token)
            assert expired.status_code == 401
            assert expired.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
