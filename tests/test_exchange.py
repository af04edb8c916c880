"""The billing exchange (issue 18): files from billing in, the cabinet's actions out, over real HTTP.

The demo database (account 11111111 of the demo customer is ``SKP-11111111`` for billing, its branch
``BSKP``, suppliers ``S<ИНН>``) receives batches through ``POST /exchange/import`` with the billing key;
the customer sees them through GraphQL, acts, and ``GET /exchange/changes`` shows exactly those actions.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select, text

from app.demo import DEMO_PHONE_E164, DEMO_STAFF
from app.demo.data import e164
from app.exchange_api import EXAMPLE_KEY, key_sha256
from models.notifications import Notification
from services.clock import MOSCOW
from services.exchange import feed
from services.exchange.formats import Problems, read_head, render
from tests.conftest import login_as
from tests.dates import period
from tests.test_accounts import gid
from tests.test_payments import account_form, card_input, create, gateway_id, post_webhook
from tests.test_readings import FORM, SUBMIT

pytestmark = pytest.mark.calendar  # periods are relative to the run's day (README, Tests)

KEY = "kbx_test_" + "k3y" * 12
DEMO_ACCOUNT = "SKP-11111111"


@pytest.fixture
def keyed(settings: Any) -> Any:
    """The server knows the billing key's hash (and only that)."""
    settings.exchange_key_sha256 = key_sha256(KEY)
    return settings


def as_zip(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


async def post_set(api: Any, files: dict[str, str | bytes], key: str = KEY) -> Any:
    return await api.client.post(
        "/exchange/import",
        content=as_zip(files),
        headers={"content-type": "application/zip", "authorization": f"Bearer {key}"},
    )


async def changes(api: Any, after: str) -> tuple[list[dict[str, Any]], str]:
    response = await api.client.get(
        "/exchange/changes", params={"after": after}, headers={"authorization": f"Bearer {KEY}"}
    )
    assert response.status_code == 200, response.text
    head, *rows = [json.loads(line) for line in response.text.splitlines()]
    assert (
        head["format"] == "kabinet-exchange/1" and head["next"] == response.headers["x-exchange-next-cursor"]
    )
    return rows, head["next"]


async def supplier_of(db: Any, service: str) -> str:
    async with db.session() as session:
        return (
            await session.execute(
                text(
                    "SELECT sup.billing_id FROM services s JOIN suppliers sup ON sup.id = s.supplier_id "
                    "WHERE s.code = :c"
                ),
                {"c": service},
            )
        ).scalar_one()


async def monthly_set(db: Any) -> dict[str, str | bytes]:
    """What billing sends after closing a month: an extra charge of last month, this month's receipt, and
    the branch's reading window widened to the whole month (so the test runs on any day)."""
    supplier = await supplier_of(db, "WASTE")
    async with db.session() as session:
        branch = dict(
            (await session.execute(text("SELECT * FROM branches WHERE billing_id = 'BSKP'"))).mappings().one()
        )
    branch.update(reading_window_start_day=1, reading_window_end_day=31)
    last = dict(zip(("year", "month"), map(int, period(-1).split("-")), strict=True))
    return {
        "branches.csv": render("branches", [branch]),
        "charges.csv": render(
            "charges",
            [
                {
                    "billing_id": f"EXC-{period(-1)}-1",
                    "account": DEMO_ACCOUNT,
                    "period": dt.date(last["year"], last["month"], 1),
                    "service": "WASTE",
                    "supplier": supplier,
                    "amount": Decimal("123.45"),
                    "recalculation": Decimal("-3.45"),
                }
            ],
        ),
        "receipts.csv": "#kabinet-exchange/1 receipts\naccount,period,total_due,due_date\n"
        f"{DEMO_ACCOUNT},{period(0)},4321.00,\n",
    }


async def submit_every_meter(api: Any, token: str, account: str, plus: Decimal) -> int:
    """The customer submits every zone of every meter of the account at ``plus`` above the last value (the
    reading window must be open); returns how many zone values were submitted."""
    form = (await api.data(FORM, token=token, id=account))["readingsForm"]
    assert form["window"]["isOpen"]
    meters = [
        {
            "meterId": meter["meter"]["id"],
            "values": [
                {"zone": zone["zone"], "value": str(Decimal(zone["previous"] or "0") + plus)}
                for zone in meter["zones"]
            ],
        }
        for meter in form["meters"]
    ]
    submitted = (await api.data(SUBMIT, token=token, input={"accountId": account, "meters": meters}))[
        "submitReadings"
    ]
    assert submitted["userErrors"] == []
    return sum(len(meter["values"]) for meter in meters)


CHARGES = """query($id: ID!) { node(id: $id) { ... on Account {
  charges { period total charges { amount recalculation service { name } } } } } }"""


async def demo_account_id(db: Any) -> int:
    async with db.session() as session:
        return (
            await session.execute(text("SELECT id FROM accounts WHERE billing_id = :b"), {"b": DEMO_ACCOUNT})
        ).scalar_one()


async def receipt_notices(db: Any) -> int:
    async with db.session() as session:
        return (
            await session.execute(
                select(func.count())
                .select_from(Notification)
                .where(Notification.title == f"Квитанция за {period(0)[5:]}.{period(0)[:4]}")
            )
        ).scalar_one()


async def test_issue18_round_trip_import_customer_sees_acts_and_export_shows_it_once(
    api: Any, db: Any, keyed: Any, customer_token: str
) -> None:
    account = gid("Account", await demo_account_id(db))
    before = (await api.data(CHARGES, token=customer_token, id=account))["node"]["charges"][0]
    assert before["period"] == period(-1)  # cached now: the import must make it stale

    imported = await post_set(api, await monthly_set(db))
    assert imported.status_code == 200, imported.text
    report = imported.json()
    assert report["entities"]["charges"] == {"rows": 1, "changed": 1, "inserted": 1}
    assert report["entities"]["receipts"]["inserted"] == 1 and report["usersRefreshed"] >= 1

    after = (await api.data(CHARGES, token=customer_token, id=account))["node"]["charges"][0]
    assert Decimal(after["total"]) == Decimal(before["total"]) + Decimal("120.00")
    assert {"amount": "123.45", "recalculation": "-3.45"}.items() <= next(
        line for line in after["charges"] if line["amount"] == "123.45"
    ).items()
    assert await receipt_notices(db) == 1  # the new receipt, announced once (the account has one user)

    _, cursor = await changes(api, feed.START)  # billing has read everything up to now

    # the customer submits readings and pays through the sandbox
    zones = await submit_every_meter(api, customer_token, account, Decimal(7))
    payment = (
        await create(api, customer_token, card_input(await account_form(api, customer_token, "11111111")))
    )["payment"]
    assert (
        await post_webhook(api, keyed, await gateway_id(db, payment["id"]), "SUCCEEDED")
    ).status_code == 200

    actions, next_cursor = await changes(api, cursor)
    kinds = sorted(change["kind"] for change in actions)
    assert kinds == sorted(["reading.submitted"] * zones + ["payment.status", "payment.status"])
    readings = [change for change in actions if change["kind"] == "reading.submitted"]
    assert {change["account"] for change in readings} == {DEMO_ACCOUNT}
    assert {change["source"] for change in readings} == {"CABINET"}
    statuses = [change["status"] for change in actions if change["kind"] == "payment.status"]
    assert statuses == ["PENDING", "SUCCEEDED"]
    paid = next(c for c in actions if c["kind"] == "payment.status" and c["status"] == "SUCCEEDED")
    assert Decimal(paid["amount"]) == Decimal(payment["amount"])
    assert {allocation["account"] for allocation in paid["allocations"]} == {DEMO_ACCOUNT}
    assert (await changes(api, next_cursor))[0] == []  # read exactly once

    # billing accepts the readings (E2 shows them accepted); the acknowledgement is not echoed back
    ack = render(
        "readings",
        [
            {
                "billing_id": f"ACK-{change['readingId']}",
                "meter": change["meter"],
                "zone": change["zone"],
                "period": dt.date.fromisoformat(change["period"] + "-01"),
                "value": Decimal(str(change["value"])),
                "accepted_at": dt.datetime.fromisoformat(change["submittedAt"]),
                "cabinet_reading_id": change["readingId"],
            }
            for change in readings
        ],
    )
    acked = await post_set(api, {"readings.csv": ack})
    assert acked.status_code == 200 and acked.json()["entities"]["readings"]["changed"] == zones
    ids = [change["readingId"] for change in readings]
    async with db.session() as session:  # readingHistory shows periods up to last month (D8)
        accepted = (
            await session.execute(
                text("SELECT accepted, billing_id FROM readings WHERE id = ANY(:ids) ORDER BY id"),
                {"ids": ids},
            )
        ).all()
    assert accepted == [(True, f"ACK-{reading_id}") for reading_id in sorted(ids)]
    again = await post_set(api, {"readings.csv": ack})
    assert again.json()["entities"]["readings"]["changed"] == 0
    assert (await changes(api, next_cursor))[0] == []


async def snapshot(db: Any) -> list[Any]:
    """Count and checksum of every row of the tables a batch may write."""
    found = []
    async with db.session() as session:
        for table in ("branches", "charges", "receipts", "notifications", "exchange_changes", "accounts"):
            query = (
                f"SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t.id), '')) FROM {table} t"
            )
            found.append((await session.execute(text(query))).one())
    return found


async def test_issue18_importing_the_same_files_twice_changes_nothing(
    api: Any, db: Any, keyed: Any, customer_token: str
) -> None:
    files = await monthly_set(db)
    first = await post_set(api, files)
    assert first.status_code == 200 and first.json()["entities"]["charges"]["changed"] == 1
    state = await snapshot(db)
    second = await post_set(api, files)
    assert second.status_code == 200
    body = second.json()
    assert all(entity["changed"] == 0 for entity in body["entities"].values())
    assert body["usersRefreshed"] == 0 and body["notified"] == 0
    assert await snapshot(db) == state


async def test_issue18_a_corrected_row_is_updated_in_place_and_nothing_else_is_written(
    api: Any, db: Any, keyed: Any
) -> None:
    """A row billing corrects keeps its id and takes the new values (a receipt's cached PDF is dropped);
    the rows that did not change are neither updated nor counted."""
    files = await monthly_set(db)
    assert (await post_set(api, files)).status_code == 200
    query = (
        "SELECT c.id, c.amount, r.id, r.total_due, r.generated_at FROM charges c, receipts r"
        " WHERE c.billing_id = :charge AND r.account_id = c.account_id AND r.period = :period"
    )
    params = {"charge": f"EXC-{period(-1)}-1", "period": dt.date.fromisoformat(period(0) + "-01")}
    async with db.session() as session:
        charge_id, _, receipt_id, _, _ = (await session.execute(text(query), params)).one()
        await session.execute(
            text("UPDATE receipts SET generated_at = now() WHERE id = :id"), {"id": receipt_id}
        )
        await session.commit()
    corrected = dict(files)
    corrected["charges.csv"] = str(files["charges.csv"]).replace("123.45", "120.00")
    corrected["receipts.csv"] = str(files["receipts.csv"]).replace("4321.00", "4300.00")
    response = await post_set(api, corrected)
    assert response.status_code == 200, response.text
    entities = response.json()["entities"]
    assert entities["charges"] == {"rows": 1, "changed": 1, "inserted": 0}
    assert entities["receipts"] == {"rows": 1, "changed": 1, "inserted": 0}
    assert entities["branches"]["changed"] == 0
    async with db.session() as session:
        row = (await session.execute(text(query), params)).one()
    assert row == (charge_id, Decimal("120.00"), receipt_id, Decimal("4300.00"), None)
    again = (await post_set(api, corrected)).json()["entities"]
    assert all(entity["changed"] == 0 for entity in again.values())


async def test_issue18_a_bad_file_is_refused_with_its_lines_and_nothing_changes(
    api: Any, db: Any, keyed: Any
) -> None:
    files = await monthly_set(db)
    good_line = files["charges.csv"].splitlines()[2]  # type: ignore[union-attr]
    files["charges.csv"] = (
        f"{files['charges.csv']}"
        + good_line.replace("EXC-", "BAD1-").replace("123.45", "12.5x")
        + "\n"
        + good_line.replace("EXC-", "BAD2-").replace(period(-1), "2026-13")
        + "\n"
    )
    state = await snapshot(db)
    refused = await post_set(api, files)
    assert refused.status_code == 422
    body = refused.json()
    assert body["error"]["code"] == "EXCHANGE_REFUSED"
    assert body["errors"] == [
        "charges.csv:4: amount: not a number",
        "charges.csv:5: period: not a period YYYY-MM",
    ]
    assert await snapshot(db) == state
    one_file = await api.client.post(  # the same file alone, as text/csv
        "/exchange/import",
        params={"name": "charges.csv"},
        content=files["charges.csv"],
        headers={"content-type": "text/csv", "authorization": f"Bearer {KEY}"},
    )
    assert one_file.status_code == 422 and one_file.json()["errors"] == body["errors"]
    assert await snapshot(db) == state


async def test_issue18_charges_of_an_unknown_account_are_an_error_not_a_crash(
    api: Any, db: Any, keyed: Any
) -> None:
    files = await monthly_set(db)
    files["charges.csv"] = files["charges.csv"].replace(DEMO_ACCOUNT, "SKP-99999999")  # type: ignore[union-attr]
    state = await snapshot(db)
    refused = await post_set(api, files)
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        "charges.csv:3: account: unknown account 'SKP-99999999' (import accounts first)"
    ]
    assert await snapshot(db) == state  # the branch file of the same batch was not applied either


async def test_issue18_the_endpoint_refuses_customer_and_staff_tokens_and_wrong_keys(
    api: Any, db: Any, keyed: Any, customer_token: str
) -> None:
    staff_token = await login_as(db, keyed, e164(DEMO_STAFF[2][1]))  # an ADMIN
    files = await monthly_set(db)
    for credential in (customer_token, staff_token, "kbx_wrong_" + "x" * 30, EXAMPLE_KEY):
        response = await post_set(api, files, key=credential)
        assert response.status_code == 403 and response.json()["error"]["code"] == "EXCHANGE_KEY_INVALID"
        feed_response = await api.client.get(
            "/exchange/changes", headers={"authorization": f"Bearer {credential}"}
        )
        assert feed_response.status_code == 403
    anonymous = await api.client.post(
        "/exchange/import", content=as_zip(files), headers={"content-type": "application/zip"}
    )
    assert anonymous.status_code == 401
    keyed.exchange_key_sha256 = None  # no key configured: the endpoint does not exist
    assert (await post_set(api, files)).status_code == 404
    # and the billing key opens nothing else: GraphQL sees an anonymous (or invalid) caller
    graphql = await api.post("{ me { id } }", token=KEY)
    assert not (graphql.json().get("data") or {}).get("me")


async def test_C4_issue18_tariff_documents_download_after_an_import(
    api: Any, db: Any, keyed: Any, customer_token: str
) -> None:
    pdf = b"%PDF-1.4 exchange test: tariff decision 77/1\n%%EOF\n"
    tariff = {
        "billing_id": "T-EXC-1",
        "branch": "BSKP",
        "service": "WASTE",
        "zone": "SINGLE",
        "rate": Decimal("9.8700"),
        "valid_from": dt.date.fromisoformat(f"{period(-24)}-01"),
        "valid_to": dt.date.fromisoformat(f"{period(-23)}-01"),
        "document_title": "Постановление ГУ РЭК Рязанской области",
        "document_number": "77/1",
        "document_date": dt.date(2019, 12, 20),
        "document_file": "documents/rek-77-1.pdf",
    }
    missing = await post_set(api, {"tariffs.csv": render("tariffs", [tariff])})
    assert missing.status_code == 422
    assert missing.json()["errors"] == [
        "tariffs.csv:3: document_file: documents/rek-77-1.pdf is not in the batch"
    ]
    imported = await post_set(
        api, {"tariffs.csv": render("tariffs", [tariff]), "documents/rek-77-1.pdf": pdf}
    )
    assert imported.status_code == 200, imported.text
    account = gid("Account", await demo_account_id(db))
    data = await api.data(
        "query($id: ID!) { node(id: $id) { ... on Account { tariffs { rate "
        "document { number download { url } } } } } }",
        token=customer_token,
        id=account,
    )
    found = [t for t in data["node"]["tariffs"] if t["rate"] == "9.8700"]
    assert found and found[0]["document"]["number"] == "77/1"
    response = await api.client.get(urlsplit(found[0]["document"]["download"]["url"]).path)
    assert response.status_code == 200 and response.content == pdf


def test_issue18_formats_are_versioned_and_their_headers_checked_before_the_database() -> None:
    problems = Problems()
    assert read_head("a.csv", b"#kabinet-exchange/2 charges\n", problems) is None
    assert read_head("b.csv", b"billing_id\n", problems) is None
    assert read_head("c.csv", b"#kabinet-exchange/1 charges\nbilling_id,account\n", problems) is None
    good = read_head(
        "d.csv", b"#kabinet-exchange/1 receipts\ntotal_due,account,period,due_date\nA,1,2,\n", problems
    )
    assert good is not None and good.header == ("total_due", "account", "period", "due_date")
    assert good.body == b"A,1,2,\n"
    assert problems.messages == [
        "a.csv:1: format version 2 is not supported (this server reads 1)",
        "b.csv:1: the first line must be '#kabinet-exchange/1 <entity>'",
        "c.csv:2: header: missing ['amount', 'period', 'rate', 'recalculation', 'service', 'supplier',"
        " 'volume', 'zone'], unknown nothing",
    ]


async def test_issue18_cells_and_rows_are_checked_with_their_lines(api: Any, db: Any, keyed: Any) -> None:
    supplier = await supplier_of(db, "WASTE")
    balances = (
        "#kabinet-exchange/1 balances\naccount,supplier,period,opening,charged,paid,closing\n"
        f"{DEMO_ACCOUNT},{supplier},2026-10,100.00,50.00,30.00,120.00\n"
        f"{DEMO_ACCOUNT},{supplier},2026-09,100.00,50.00,30.00,999.00\n"
        f"{DEMO_ACCOUNT},{supplier},2026-08,-1.005,50.00,30.00,\n"
        f"{DEMO_ACCOUNT},{supplier},2026-10,100.00,50.00,30.00,120.00\n"
        f"{DEMO_ACCOUNT},{supplier},2026-07,1,2\n"
    )
    refused = await post_set(api, {"balances.csv": balances})
    assert refused.status_code == 422
    assert refused.json()["errors"] == ['balances.csv:7: missing data for column "paid"']
    balances = "\n".join(balances.splitlines()[:-1]) + "\n"
    refused = await post_set(api, {"balances.csv": balances})
    assert refused.json()["errors"] == [
        "balances.csv:5: opening: more than 12 digits before the point or 2 after it",
        "balances.csv:5: closing: required",
    ]
    balances = balances.replace("-1.005,50.00,30.00,", "-1.00,50.00,30.00,19.00")
    refused = await post_set(api, {"balances.csv": balances})
    assert refused.json()["errors"] == [
        "balances.csv:4: closing is not opening + charged - paid",
        "balances.csv:6: the same account, supplier, period as balances.csv:3",
    ]


async def test_issue18_demo_customer_phone_is_linked_for_the_round_trip(db: Any) -> None:
    """The fixture data the round trip relies on: the demo account has its billing id and one user."""
    async with db.session() as session:
        users = (
            (
                await session.execute(
                    text(
                        "SELECT u.phone FROM users u JOIN user_accounts ua ON ua.user_id = u.id "
                        "JOIN accounts a ON a.id = ua.account_id WHERE a.billing_id = :b"
                    ),
                    {"b": DEMO_ACCOUNT},
                )
            )
            .scalars()
            .all()
        )
    assert users == [DEMO_PHONE_E164]


def test_issue18_production_ships_no_default_exchange_key(settings: Any) -> None:
    from app.config_check import problems
    from tests.conftest import production

    def refused(**changes: Any) -> list[str]:
        found = problems(production(settings, **changes))
        return [problem for problem in found if "KABINET_EXCHANGE_KEY_SHA256" in problem]

    assert refused() == []  # unset: the endpoint does not exist
    assert refused(exchange_key_sha256=key_sha256(EXAMPLE_KEY))  # the docs' example key
    assert refused(exchange_key_sha256="not-a-hash")
    assert refused(exchange_key_sha256=key_sha256(KEY)) == []
    rotating = f"{key_sha256(KEY)}, {key_sha256('kbx_next_' + 'n' * 30)}"
    assert refused(exchange_key_sha256=rotating) == []  # old and new while rotating
    assert refused(exchange_key_sha256=f"{rotating},{key_sha256('third_' + 't' * 30)}")  # at most two
    assert refused(exchange_key_sha256=f"{key_sha256(KEY)},{key_sha256(EXAMPLE_KEY)}")
    assert refused(exchange_key_sha256=f"{key_sha256(KEY)},") == []  # a trailing comma is harmless
    assert refused(exchange_key_sha256=",")


async def test_issue18_keys_rotate_without_downtime(api: Any, db: Any, keyed: Any) -> None:
    """Old and new key both open the exchange while both hashes are configured; then only the new one."""
    new = "kbx_next_" + "n" * 30
    keyed.exchange_key_sha256 = f"{key_sha256(KEY)},{key_sha256(new)}"
    for key in (KEY, new):
        response = await api.client.get("/exchange/changes", headers={"authorization": f"Bearer {key}"})
        assert response.status_code == 200, response.text
    keyed.exchange_key_sha256 = key_sha256(new)  # the old hash removed
    old = await api.client.get("/exchange/changes", headers={"authorization": f"Bearer {KEY}"})
    assert old.status_code == 403 and old.json()["error"]["code"] == "EXCHANGE_KEY_INVALID"
    assert (await api.client.get("/exchange/changes", headers={"authorization": f"Bearer {new}"})).is_success


async def test_issue18_the_feed_prunes_only_what_billing_read_and_refuses_cursors_into_the_gap(
    api: Any, db: Any, keyed: Any, customer_token: str
) -> None:
    """Reading after N acknowledges up to N; the retention job deletes acknowledged old changes only; a
    cursor into what was deleted is 410, one beyond the last change 400 — never a silent gap."""
    from services.exchange.feed import DEFAULT_RETENTION, prune_job

    _, start = await changes(api, feed.START)
    form = await account_form(api, customer_token, "11111111")
    for _ in range(3):  # three changes: a PENDING payment each
        assert (await create(api, customer_token, card_input(form)))["userErrors"] == []
    first, middle = await changes(api, start)
    assert len(first) == 3
    # the feed records changes with the database's time: the job's "now" is judged against that
    async with db.session() as session:
        recorded = (await session.execute(text("SELECT max(created_at) FROM exchange_changes"))).scalar_one()
    later = recorded + DEFAULT_RETENTION + dt.timedelta(days=1)
    # billing read them but has not asked past `start` yet: nothing acknowledged, nothing pruned
    assert await prune_job(db.unit_of_work, later) == 0
    middle = first[1]["cursor"]
    assert len((await changes(api, middle))[0]) == 1  # acknowledges the first two
    assert await prune_job(db.unit_of_work, recorded + dt.timedelta(days=1)) == 0  # too recent to prune
    assert await prune_job(db.unit_of_work, later) >= 2
    async with db.session() as session:
        kept = (await session.execute(text("SELECT min(id) FROM exchange_changes"))).scalar_one()
    assert kept == int(first[2]["cursor"])  # the unread change is kept, however old

    gone = await api.client.get(
        "/exchange/changes", params={"after": start}, headers={"authorization": f"Bearer {KEY}"}
    )
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "EXCHANGE_CURSOR_EXPIRED"
    assert middle in gone.json()["error"]["message"]  # where to continue from
    rows, _ = await changes(api, middle)  # the oldest valid cursor still reads on
    assert [row["cursor"] for row in rows] == [first[2]["cursor"]]
    beyond = await api.client.get(
        "/exchange/changes",
        params={"after": str(int(first[2]["cursor"]) + 1000)},
        headers={"authorization": f"Bearer {KEY}"},
    )
    assert beyond.status_code == 400 and beyond.json()["error"]["code"] == "EXCHANGE_BAD_CURSOR"


ANALYST = "+73333333333"
CHARGED = """query($q: AnalyticsQueryInput!) { analytics(query: $q) {
  totals { measure money count suppressed } } }"""


async def test_issue18_17_an_import_refreshes_the_analytics_rollups_of_its_months(
    api: Any, db: Any, keyed: Any, settings: Any
) -> None:
    """Charges of a month nobody has charged yet show in ``analytics`` right after the import commits."""
    analyst = await login_as(db, settings, ANALYST)
    query = {"measures": ["CHARGED"], "periodFrom": period(0), "periodTo": period(0)}
    before = (await api.data(CHARGED, token=analyst, q=query))["analytics"]["totals"]
    assert not before or before[0]["money"] in (None, "0", "0.00")  # nothing charged this month yet
    service, supplier = "ELECTRICITY", await supplier_of(db, "ELECTRICITY")
    accounts = [  # 12 new accounts (≥10, so the cell is not suppressed as FEW_SUBJECTS)
        {
            "billing_id": f"AN-{n}",
            "branch": "BSKP",
            "number": f"9900{n:04d}",
            "owner_last_name": "Аналитиков",
            "owner_first_name": "Пётр",
            "address": f"г. Скопин, ул. Новая, д. {n}",
        }
        for n in range(12)
    ]
    year, month = map(int, period(0).split("-"))
    charges = render(
        "charges",
        [
            {
                "billing_id": f"AN-{period(0)}-{n}",
                "account": account["billing_id"],
                "period": dt.date(year, month, 1),
                "service": service,
                "supplier": supplier,
                "amount": Decimal("100.25"),
                "recalculation": Decimal("-0.25"),
            }
            for n, account in enumerate(accounts)
        ],
    )
    batch = {"accounts.csv": render("accounts", accounts), "charges.csv": charges}
    refused = await post_set(api, {**batch, "charges.csv": charges.replace("100.25", "1x")})
    assert refused.status_code == 422  # a refused batch leaves the rollups as they were
    assert (await api.data(CHARGED, token=analyst, q=query))["analytics"]["totals"] == before
    imported = await post_set(api, batch)
    assert imported.status_code == 200, imported.text
    assert imported.json()["analyticsPeriods"] == [period(0)]
    after = (await api.data(CHARGED, token=analyst, q=query))["analytics"]["totals"]
    assert after[0]["measure"] == "CHARGED" and not after[0]["suppressed"]
    assert Decimal(after[0]["money"]) == Decimal("1200.00")  # 12 × (100.25 − 0.25)
    assert (await post_set(api, batch)).json()["analyticsPeriods"] == []  # nothing changed: no refresh


PAYMENTS = """query($id: ID!) { node(id: $id) { ... on Account {
  payments { period total payments { amount paidAt method channel isAutopay supplier { inn } } } } } }"""


async def test_D4_issue18_payments_from_other_channels_show_in_the_history_with_their_channel(
    api: Any, db: Any, keyed: Any, customer_token: str
) -> None:
    account = gid("Account", await demo_account_id(db))
    before = (await api.data(PAYMENTS, token=customer_token, id=account))["node"]["payments"]
    last = next((month for month in before if month["period"] == period(-1)), None)
    total_before = Decimal(last["total"]) if last else Decimal("0")
    count_before = len(last["payments"]) if last else 0
    supplier = await supplier_of(db, "ELECTRICITY")
    year, month = map(int, period(-1).split("-"))
    rows = [
        {
            "billing_id": f"EXT-{channel}",
            "account": DEMO_ACCOUNT,
            "supplier": supplier,
            "period": dt.date(year, month, 1),
            "paid_on": dt.date(year, month, day),
            "amount": Decimal(amount),
            "channel": channel,
        }
        for channel, day, amount in (("BANK", 3, "100.10"), ("POST", 4, "200.20"), ("CASHIER", 5, "300.30"))
    ]
    imported = await post_set(api, {"payments.csv": render("payments", rows)})
    assert imported.status_code == 200, imported.text
    assert imported.json()["usersRefreshed"] >= 1  # the customer's cached history is stale now

    after = (await api.data(PAYMENTS, token=customer_token, id=account))["node"]["payments"]
    last = next(month for month in after if month["period"] == period(-1))
    assert Decimal(last["total"]) == total_before + Decimal("600.60")
    assert len(last["payments"]) == count_before + 3
    external = [entry for entry in last["payments"] if entry["channel"] != "CABINET"]
    assert [
        (entry["channel"], entry["amount"], entry["method"], entry["isAutopay"]) for entry in external
    ] == [
        ("CASHIER", "300.30", None, False),  # newest first
        ("POST", "200.20", None, False),
        ("BANK", "100.10", None, False),
    ]
    paid_at = dt.datetime.fromisoformat(external[0]["paidAt"]).astimezone(MOSCOW)  # the day, in Moscow
    assert paid_at.isoformat().startswith(f"{period(-1)}-05T00:00:00")
    cabinet = [entry for entry in last["payments"] if entry["channel"] == "CABINET"]
    assert all(entry["method"] in ("CARD", "SBP") for entry in cabinet)


BALANCE_AND_PAID = """query($id: ID!, $filter: StatisticsFilter!) { node(id: $id) { ... on Account {
  balance { amount billedPeriod suppliers { amount supplier { inn } } }
  statistics(filter: $filter) { supplier { inn } points { period value } } } } }"""


async def test_B4_D6_issue18_payments_from_other_channels_count_in_the_balance_and_the_chart(
    api: Any, db: Any, keyed: Any, customer_token: str
) -> None:
    """A bank payment billing credits after its last closed period lowers the balance at once (B4) like a
    cabinet payment does; one in a closed period is already in billing's closing balance and changes
    nothing there but shows in the PAYMENTS chart (D6) next to cabinet payments."""
    account = gid("Account", await demo_account_id(db))
    supplier = await supplier_of(db, "ELECTRICITY")
    inn = supplier.removeprefix("S")
    chart = {"kind": "PAYMENTS", "from": period(-2), "to": period(-1)}  # D8: charts end at last month

    async def read() -> tuple[Decimal, Decimal, dict[str, Decimal]]:
        node = (await api.data(BALANCE_AND_PAID, token=customer_token, id=account, filter=chart))["node"]
        line = next(s for s in node["balance"]["suppliers"] if s["supplier"]["inn"] == inn)
        [series] = [s for s in node["statistics"] if s["supplier"]["inn"] == inn] or [{"points": []}]
        points = {p["period"]: Decimal(p["value"]) for p in series["points"]}
        return Decimal(node["balance"]["amount"]), Decimal(line["amount"]), points

    total, electricity, paid = await read()
    billed = (await api.data(BALANCE_AND_PAID, token=customer_token, id=account, filter=chart))["node"]
    assert billed["balance"]["billedPeriod"] == period(-1)  # the demo's last closed period

    def row(billing_id: str, month: int, amount: str) -> dict[str, Any]:
        year, number = map(int, period(month).split("-"))
        return {
            "billing_id": billing_id,
            "account": DEMO_ACCOUNT,
            "supplier": supplier,
            "period": dt.date(year, number, 1),
            "paid_on": dt.date(year, number, 1),
            "amount": Decimal(amount),
            "channel": "BANK",
        }

    rows = [row("EXT-B4-OPEN", 0, "250.50"), row("EXT-B4-CLOSED", -1, "99.99")]
    imported = await post_set(api, {"payments.csv": render("payments", rows)})
    assert imported.status_code == 200, imported.text

    total_after, electricity_after, paid_after = await read()
    assert total_after == total - Decimal("250.50")
    assert electricity_after == electricity - Decimal("250.50")
    assert paid_after[period(-1)] == paid.get(period(-1), Decimal("0")) + Decimal("99.99")


async def current_readings(db: Any, ids: list[int]) -> list[Any]:
    """(meter, zone, period, value, accepted, source) of the readings of those meter zones and periods that
    nothing superseded."""
    async with db.session() as session:
        return (
            await session.execute(
                text(
                    "SELECT r.meter_id, r.zone, r.period, r.value, r.accepted, r.source FROM readings r"
                    " JOIN readings c ON c.meter_id = r.meter_id AND c.zone = r.zone AND c.period = r.period"
                    " WHERE c.id = ANY(:ids) AND r.superseded_by_id IS NULL ORDER BY r.meter_id, r.zone"
                ),
                {"ids": ids},
            )
        ).all()


async def test_E2_issue18_a_reading_billing_accepted_with_another_value_supersedes_the_cabinet_one(
    api: Any, db: Any, keyed: Any, customer_token: str
) -> None:
    account = gid("Account", await demo_account_id(db))
    assert (await post_set(api, {"branches.csv": (await monthly_set(db))["branches.csv"]})).status_code == 200
    _, cursor = await changes(api, feed.START)
    await submit_every_meter(api, customer_token, account, Decimal(10))  # the window spans the month now
    readings = [change for change in (await changes(api, cursor))[0] if change["kind"] == "reading.submitted"]
    ids = [change["readingId"] for change in readings]
    assert len(ids) >= 2
    first, rest = readings[0], readings[1:]

    def accepted_row(change: dict[str, Any], value: Decimal, billing_id: str) -> dict[str, Any]:
        return {
            "billing_id": billing_id,
            "meter": change["meter"],
            "zone": change["zone"],
            "period": dt.date.fromisoformat(change["period"] + "-01"),
            "value": value,
            "accepted_at": dt.datetime.fromisoformat(change["submittedAt"]) + dt.timedelta(hours=1),
            "cabinet_reading_id": change["readingId"],
        }

    # billing corrects the first zone (7 less) and accepts the others as submitted
    corrected = Decimal(str(first["value"])) - 7
    rows = [accepted_row(first, corrected, "SUP-1")] + [
        accepted_row(change, Decimal(str(change["value"])), f"SUP-{n + 2}") for n, change in enumerate(rest)
    ]
    imported = await post_set(api, {"readings.csv": render("readings", rows)})
    assert imported.status_code == 200, imported.text
    assert imported.json()["entities"]["readings"] == {
        "rows": len(ids),
        "changed": len(ids),  # one new row, the others acknowledged
        "inserted": 1,
        "superseded": 1,  # the cabinet's value billing corrected
    }
    current = await current_readings(db, ids)
    assert len(current) == len(ids)  # one current value per meter, zone and period
    assert all(row.accepted for row in current)
    by_zone = {(row.meter_id, row.zone): row for row in current}
    async with db.session() as session:
        cabinet = (
            await session.execute(
                text("SELECT meter_id, zone, value, superseded_by_id FROM readings WHERE id = :id"),
                {"id": first["readingId"]},
            )
        ).one()
    replaced_by = by_zone[(cabinet.meter_id, cabinet.zone)]
    assert replaced_by.value == corrected and replaced_by.source == "OPERATOR"
    assert cabinet.superseded_by_id is not None and cabinet.value == Decimal(str(first["value"]))

    # the form's current value is the accepted one; importing the same file again changes nothing
    form = (await api.data(FORM, token=customer_token, id=account))["readingsForm"]
    values = {
        zone["current"] for meter in form["meters"] for zone in meter["zones"] if zone["current"] is not None
    }
    assert str(corrected.quantize(Decimal("0.001"))) in values
    again = await post_set(api, {"readings.csv": render("readings", rows)})
    assert again.json()["entities"]["readings"] == {
        "rows": len(ids),
        "changed": 0,
        "inserted": 0,
        "superseded": 0,
    }
    assert await current_readings(db, ids) == current
