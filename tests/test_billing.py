"""Billing histories (issue 4): events (D1), charges (D2), payments (D4), statistics (D6), balance (D7),
the period rule (D8) and tariff history with document download (C4)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

import pytest

from services import storage
from services.clock import CLOCK
from tests.dates import month, period
from tests.test_accounts import gid, seed_accounts

pytestmark = pytest.mark.calendar  # date-dependent: CI runs it again on other days (README, Tests)

ACCOUNT = "query($id: ID!%s) { node(id: $id) { ... on Account { %s } } }"


async def account_field(
    api: Any, token: str, account_id: int, body: str, args: str = "", **variables: Any
) -> Any:
    data = await api.data(ACCOUNT % (args, body), token=token, id=gid("Account", account_id), **variables)
    assert data["node"] is not None
    return data["node"]


async def test_D2_charges_by_month_and_service_with_the_sign_convention(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    seeded = await seed_accounts(db, settings, months=36)
    node = await account_field(
        api,
        customer_token,
        seeded.account_ids[0],
        "charges { period total charges { period zone volume rate amount recalculation total "
        "service { name unit } supplier { inn } } }",
    )
    months = node["charges"]
    assert [month["period"] for month in months][:3] == [period(-1), period(-2), period(-3)]
    assert len(months) == 12  # default: the last 12 months
    october = months[0]
    assert october["total"] == "915.00"  # 500 + 125 + 300 − 10 recalculation
    water = next(line for line in october["charges"] if line["service"]["name"] == "Холодная вода")
    assert water == {
        "period": period(-1),
        "zone": None,
        "volume": "10.000",
        "rate": "30.0000",
        "amount": "300.00",
        "recalculation": "-10.00",
        "total": "290.00",
        "service": {"name": "Холодная вода", "unit": "м³"},
        "supplier": water["supplier"],
    }
    zones = sorted(line["zone"] for line in october["charges"] if line["zone"])
    assert zones == ["DAY", "NIGHT"]


async def test_D8_histories_refuse_periods_outside_the_rule(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    seeded = await seed_accounts(db, settings)
    for field in ("charges", "payments", "events", "balanceHistory"):
        query = ACCOUNT % (
            ", $from: YearMonth, $to: YearMonth",
            f"{field}(from: $from, to: $to) {{ period }}",
        )
        current = await api.gql(
            query, token=customer_token, id=gid("Account", seeded.account_ids[0]), to=period(0)
        )
        error = current["errors"][0]
        assert error["extensions"]["code"] == "PERIOD_OUT_OF_RANGE", field
        assert error["message"] == "Период должен быть в пределах трех лет до предыдущего месяца включительно"
        assert (error["extensions"]["earliest"], error["extensions"]["latest"]) == (period(-36), period(-1))
        too_old = await api.gql(
            query, token=customer_token, id=gid("Account", seeded.account_ids[0]), **{"from": period(-37)}
        )
        assert too_old["errors"][0]["extensions"]["code"] == "PERIOD_OUT_OF_RANGE", field
    widest = await account_field(
        api,
        customer_token,
        seeded.account_ids[0],
        "charges(from: $from, to: $to) { period }",
        ", $from: YearMonth, $to: YearMonth",
        **{"from": period(-36), "to": period(-1)},
    )
    assert len(widest["charges"]) == 12  # the seeded account has 12 months of history


async def test_D4_payment_history_by_month(api: Any, db: Any, settings: Any, customer_token: str) -> None:
    seeded = await seed_accounts(db, settings)
    node = await account_field(
        api,
        customer_token,
        seeded.account_ids[0],
        "payments { period total payments { amount paidAt method isAutopay supplier { inn } } }",
    )
    # November's 200.00 is in the current period: not history yet (D8); October's 625.00 is
    assert [month["period"] for month in node["payments"]] == [period(-1)]
    october = node["payments"][0]
    assert october["total"] == "625.00"
    assert october["payments"][0]["amount"] == "625.00" and october["payments"][0]["method"] == "SBP"


async def test_D1_events_by_month_with_receipt_download(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    seeded = await seed_accounts(db, settings)
    node = await account_field(
        api,
        customer_token,
        seeded.account_ids[0],
        "events(from: $from) { period receipt { period totalDue download { url } } "
        "events { kind amount occurredAt service { name } supplier { inn } } }",
        ", $from: YearMonth",
        **{"from": period(-2)},
    )
    assert [month["period"] for month in node["events"]] == [period(-1), period(-2)]
    october = node["events"][0]
    kinds = [event["kind"] for event in october["events"]]
    assert kinds.count("CHARGE") == 3 and kinds.count("RECALCULATION") == 1 and kinds.count("PAYMENT") == 1
    payment = next(event for event in october["events"] if event["kind"] == "PAYMENT")
    assert payment["amount"] == "-625.00" and payment["occurredAt"].startswith(f"{period(-1)}-05")
    recalculation = next(event for event in october["events"] if event["kind"] == "RECALCULATION")
    assert recalculation["amount"] == "-10.00" and recalculation["service"]["name"] == "Холодная вода"
    assert (
        october["receipt"]["period"] == period(-1) and "/downloads/" in october["receipt"]["download"]["url"]
    )


async def test_D7_balance_by_month_and_supplier(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    seeded = await seed_accounts(db, settings)
    node = await account_field(
        api,
        customer_token,
        seeded.account_ids[0],
        "balanceHistory(from: $from) { period opening charged paid closing "
        "suppliers { opening charged paid closing supplier { inn } } }",
        ", $from: YearMonth",
        **{"from": period(-1)},
    )
    [october] = node["balanceHistory"]
    assert (october["opening"], october["charged"], october["paid"], october["closing"]) == (
        "525.00",
        "915.00",
        "915.00",
        "525.00",
    )
    assert sorted(line["closing"] for line in october["suppliers"]) == ["-100.00", "625.00"]


async def test_D6_statistics_by_month_service_and_zone(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    seeded = await seed_accounts(db, settings)
    body = "statistics(filter: $filter) { zone service { name } supplier { inn } points { period value } }"
    args = ", $filter: StatisticsFilter!"
    consumption = await account_field(
        api,
        customer_token,
        seeded.account_ids[0],
        body,
        args,
        filter={"kind": "CONSUMPTION", "from": period(-3), "to": period(-1)},
    )
    series = {(s["service"]["name"], s["zone"]): s["points"] for s in consumption["statistics"]}
    assert series[("Электроэнергия", "DAY")] == [
        {"period": period(-3), "value": "100.000"},
        {"period": period(-2), "value": "100.000"},
        {"period": period(-1), "value": "100.000"},
    ]
    assert set(series) == {("Электроэнергия", "DAY"), ("Электроэнергия", "NIGHT"), ("Холодная вода", None)}
    night_only = await account_field(
        api,
        customer_token,
        seeded.account_ids[0],
        body,
        args,
        filter={
            "kind": "CONSUMPTION",
            "from": period(-1),
            "zones": ["NIGHT"],
            "serviceIds": [gid("Service", seeded.electricity_id)],
        },
    )
    assert [(s["zone"], s["points"][0]["value"]) for s in night_only["statistics"]] == [("NIGHT", "50.000")]
    paid = await account_field(
        api,
        customer_token,
        seeded.account_ids[0],
        body,
        args,
        filter={"kind": "PAYMENTS", "from": period(-2)},
    )
    [line] = paid["statistics"]
    assert line["service"] is None and line["points"] == [
        {"period": period(-2), "value": "0.00"},
        {"period": period(-1), "value": "625.00"},
    ]
    outside = await api.gql(
        ACCOUNT % (args, body),
        token=customer_token,
        id=gid("Account", seeded.account_ids[0]),
        filter={"kind": "CHARGES", "from": "2020-01"},
    )
    assert outside["errors"][0]["extensions"]["code"] == "PERIOD_OUT_OF_RANGE"


async def test_C4_tariff_history_with_downloadable_documents(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    seeded = await seed_accounts(db, settings)
    node = await account_field(
        api,
        customer_token,
        seeded.account_ids[0],
        "tariffs { zone rate validFrom validTo isCurrent service { name } "
        "document { title number date download { url expiresAt } } }",
    )
    day = [(t["rate"], t["isCurrent"]) for t in node["tariffs"] if t["zone"] == "DAY"]
    assert day == [("5.0000", True), ("4.8000", False)]  # 2020–2022 is older than three years
    old = next(t for t in node["tariffs"] if t["rate"] == "4.8000")
    assert old["document"]["title"] == "Постановление ГУ РЭК Рязанской области"
    download = old["document"]["download"]
    expires = dt.datetime.fromisoformat(download["expiresAt"])
    assert dt.timedelta(0) < expires - CLOCK.now() <= storage.DOWNLOAD_TTL
    response = await api.client.get(urlsplit(download["url"]).path)
    assert response.status_code == 200
    assert response.content == b"%PDF-1.4 tariff decision"
    assert response.headers["content-type"] == "application/pdf"


async def test_C4_download_urls_cannot_be_forged_or_reused_after_expiry(api: Any, settings: Any) -> None:
    now = CLOCK.now()
    good = storage.sign_download(settings.secret_key, storage.file_target(1), now=now)
    token = urlsplit(good.url).path.rsplit("/", 1)[1]
    payload, _, signature = token.partition(".")
    forged = storage.sign_download("another-key", storage.file_target(2), now=now)
    forged_payload = urlsplit(forged.url).path.rsplit("/", 1)[1].partition(".")[0]
    assert (await api.client.get(f"/downloads/{forged_payload}.{signature}")).status_code == 403
    expired = storage.sign_download(
        settings.secret_key, storage.file_target(1), now=now - dt.timedelta(hours=1)
    )
    assert (await api.client.get(urlsplit(expired.url).path)).status_code == 403
    with pytest.raises(storage.InvalidDownload):
        storage.verify_download(settings.secret_key, f"{payload}.x{signature[1:]}", now=now)


async def test_C4_demo_account_tariffs_name_their_approving_documents(api: Any, customer_token: str) -> None:
    data = await api.data(
        "{ accounts { edges { node { number tariffs { isCurrent zone rate document { title } } } } } }",
        token=customer_token,
    )
    demo = next(edge["node"] for edge in data["accounts"]["edges"] if edge["node"]["number"] == "11111111")
    assert {tariff["zone"] for tariff in demo["tariffs"] if tariff["isCurrent"]} >= {"DAY", "NIGHT"}
    assert all("Постановление" in tariff["document"]["title"] for tariff in demo["tariffs"])


async def test_C4_download_links_follow_the_address_the_server_serves(
    live_server: str, db: Any, settings: Any, customer_token: str
) -> None:
    """Not the configured default port: the one the client reached (issue 20); the link works."""
    import httpx

    seeded = await seed_accounts(db, settings)
    query = ACCOUNT % ("", "tariffs { document { download { url } } }")
    async with httpx.AsyncClient(base_url=live_server) as client:
        body = (
            await client.post(
                "/graphql",
                json={"query": query, "variables": {"id": gid("Account", seeded.account_ids[0])}},
                headers={"authorization": f"Bearer {customer_token}"},
            )
        ).json()
        urls = [t["document"]["download"]["url"] for t in body["data"]["node"]["tariffs"] if t["document"]]
        assert urls and all(url.startswith(f"{live_server}/downloads/") for url in urls)
        assert settings.port == 8000 and not live_server.endswith(":8000")
        assert (await client.get(urls[0])).status_code == 200


def test_C4_links_outside_a_request_use_the_served_address_unless_a_public_url_is_set(settings: Any) -> None:
    assert settings.model_copy(update={"port": 18301}).base_url == "http://127.0.0.1:18301"
    public = settings.model_copy(update={"port": 18301, "public_url": "https://lk.example.ru/"})
    assert public.base_url == "https://lk.example.ru"


def typed(row: Any, keys: list[str]) -> tuple[tuple[type, Any], ...]:
    return tuple((type(getattr(row, key)), getattr(row, key)) for key in keys)


async def test_issue21_charge_lines_read_as_plain_rows_equal_the_orm_rows(db: Any, settings: Any) -> None:
    """D2's charge lines come as plain rows (models.plain): every mapped attribute as the ORM loads it."""
    from sqlalchemy import inspect, select

    from models.billing import Charge
    from services import billing

    seeded = await seed_accounts(db, settings, accounts=2, months=3)
    start, end = month(-3), month(-1)
    keys = [attr.key for attr in inspect(Charge).column_attrs]
    async with db.session() as session:
        plain = await billing.charges(session, seeded.account_ids, start, end)
        orm = (
            await session.execute(
                select(Charge)
                .where(Charge.account_id.in_(seeded.account_ids), Charge.period.between(start, end))
                .order_by(Charge.account_id, Charge.period.desc(), Charge.service_id, Charge.zone, Charge.id)
            )
        ).scalars()
        expected = [typed(row, keys) for row in orm]
    rows = [row for account_id in seeded.account_ids for row in plain[account_id]]
    assert rows and all(type(row) is billing.ChargeRow for row in rows)
    # same values of the same types (Decimal stays Decimal, the zone stays a Zone), in the same order
    assert [typed(row, keys) for row in rows] == expected


def test_issue21_an_enum_column_is_read_by_its_lookup_without_a_python_call_per_value() -> None:
    """``models.plain``: an ``Enum`` column's values map to their members through the lookup itself (a C
    method: SQLAlchemy's processor was two Python calls per value), with the same members, ``None`` for
    NULL and a ``LookupError`` for a value that is not a member."""
    import types

    from sqlalchemy.dialects.postgresql import asyncpg

    from models.billing import Charge
    from models.plain import _faster
    from models.tariffs import Zone as ModelZone

    column = Charge.__table__.c.zone
    dialect = asyncpg.dialect()
    original = column.type._cached_result_processor(dialect, 1043)
    fast = _faster(column.type, dialect, 1043, original)
    assert isinstance(fast, types.BuiltinMethodType)
    for value in [*(member.value for member in ModelZone), None]:
        assert fast(value) is original(value)
    with pytest.raises(LookupError):
        fast("EVENING")
    amount = Charge.__table__.c.amount.type  # not an Enum: SQLAlchemy's processor is kept
    assert _faster(amount, dialect, 1700, original) is original


async def test_issue21_dashboard_loaders_read_plain_rows_equal_the_orm_rows(
    db: Any, settings: Any, sql_counter: Any
) -> None:
    """The dashboard's meters, last readings, branches, services and suppliers come as plain rows on asyncpg
    (models.plain.PlainQuery): the ORM's values of the same types, in the same order; still counted."""
    from sqlalchemy import inspect, select

    from models.branches import Branch, Service, Supplier
    from models.meters import Meter
    from models.readings import Reading
    from resolvers.branches import BranchById, ServiceById, SupplierById
    from resolvers.context import DbScope
    from resolvers.readings import LastReadingsByMeterId, MetersByAccountId
    from services import readings

    seeded = await seed_accounts(db, settings, accounts=2, months=3)
    scope = DbScope(db.sessionmaker, None)  # type: ignore[arg-type]  # these loaders need no context
    with sql_counter() as counted:
        meters = await scope.loader(MetersByAccountId).load_many(seeded.account_ids)
        meter_ids = [meter.id for rows in meters for meter in rows]
        last = await scope.loader(LastReadingsByMeterId).load_many(meter_ids)
        branches = await scope.loader(BranchById).load_many([seeded.branch_id, 0])
        services = await scope.loader(ServiceById).load_many([seeded.water_id, seeded.electricity_id])
        suppliers = await scope.loader(SupplierById).load_many(
            [seeded.energy_supplier_id, seeded.water_supplier_id]
        )
    await scope.close()
    assert counted.statements == 5
    assert meter_ids and all(rows for rows in last) and branches[1] is None

    def keys(model: Any) -> list[str]:
        return [attr.key for attr in inspect(model).column_attrs]

    async with db.session() as session:
        orm_meters = await readings.meters_by_account(session, seeded.account_ids)
        orm_last = await readings.last_readings(session, meter_ids)

        async def by_id(model: Any, ids: list[int]) -> list[Any]:
            rows = (await session.execute(select(model).where(model.id.in_(ids)))).scalars()
            found = {row.id: row for row in rows}
            return [found.get(key) for key in ids]

        expected_branches = await by_id(Branch, [seeded.branch_id])
        expected_services = await by_id(Service, [seeded.water_id, seeded.electricity_id])
        expected_suppliers = await by_id(Supplier, [seeded.energy_supplier_id, seeded.water_supplier_id])
    assert [[typed(row, keys(Meter)) for row in rows] for rows in meters] == [
        [typed(row, keys(Meter)) for row in orm_meters[key]] for key in seeded.account_ids
    ]
    assert [[typed(row, keys(Reading)) for row in rows] for rows in last] == [
        [typed(row, keys(Reading)) for row in orm_last[key]] for key in meter_ids
    ]
    assert [typed(branches[0], keys(Branch))] == [typed(row, keys(Branch)) for row in expected_branches]
    assert [typed(row, keys(Service)) for row in services] == [
        typed(row, keys(Service)) for row in expected_services
    ]
    assert [typed(row, keys(Supplier)) for row in suppliers] == [
        typed(row, keys(Supplier)) for row in expected_suppliers
    ]


async def test_issue21_statistics_series_without_filters_equal_the_filtered_statement(
    db: Any, settings: Any
) -> None:
    """D6's usual chart (no service or zone filter) runs a statement built once on asyncpg; its series equal
    those of the general statement given every service (values and types)."""
    from services import billing
    from services.periods import history_range

    seeded = await seed_accounts(db, settings, accounts=1, months=6)
    account_id = seeded.account_ids[0]
    async with db.session() as session:
        span = history_range(CLOCK.today(), month(-6), month(-1))
        for kind in (billing.StatisticsKind.CONSUMPTION, billing.StatisticsKind.CHARGES):
            plain = await billing.statistics(session, account_id, span, kind)
            general = await billing.statistics(
                session,
                account_id,
                span,
                kind,
                service_ids=[seeded.electricity_id, seeded.water_id],  # the general statement
            )
            shown = [(s.service_id, s.zone, [(m, type(v), v) for m, v in s.points]) for s in plain]
            assert plain and shown == [
                (s.service_id, s.zone, [(m, type(v), v) for m, v in s.points]) for s in general
            ]


STATISTICS_BOTH = """query($id: ID!, $from: YearMonth!, $to: YearMonth!) { node(id: $id) { ... on Account {
  consumption: statistics(filter: {kind: CONSUMPTION, from: $from, to: $to}) {
    zone service { id name } points { period value } }
  charges: statistics(filter: {kind: CHARGES, from: $from, to: $to}) {
    zone service { id name } points { period value } }
} } }"""
"""``bench/dashboard.py``'s STATISTICS: a chart page's two series of one account."""


async def test_D6_issue21_consumption_and_charges_series_come_from_one_statement(
    api: Any, db: Any, settings: Any, customer_token: str, sql_counter: Any
) -> None:
    """D6: a chart page's CONSUMPTION and CHARGES series (no filters) are summed by ONE statement for both
    (and for every account of the request), with the values, types and order each kind's own statement
    gives; the account and the viewer's link (visibility) are one statement too."""
    from resolvers.billing import ChargeSumsByAccountRange
    from resolvers.context import DbScope
    from services import billing
    from services.periods import history_range

    seeded = await seed_accounts(db, settings, accounts=2, months=6)
    account_id = seeded.account_ids[0]
    months = {"from": period(-6), "to": period(-1)}
    variables = {"id": gid("Account", account_id), **months}
    # the other account first (a new request each time: the result cache answers none of them): the session
    # check and the services are kept from it
    await api.data(
        STATISTICS_BOTH, token=customer_token, **{**variables, "id": gid("Account", seeded.account_ids[1])}
    )
    with sql_counter() as counted:
        both = (await api.data(STATISTICS_BOTH, token=customer_token, **variables))["node"]
    assert counted.statements == 1  # the account with the viewer's link and both series' sums, together
    # the same answers as each kind's general statement (a service filter naming every service)
    every = [gid("Service", seeded.electricity_id), gid("Service", seeded.water_id)]
    for alias, kind in (("consumption", "CONSUMPTION"), ("charges", "CHARGES")):
        query = (
            "query($id: ID!, $from: YearMonth!, $to: YearMonth!, $ids: [ID!]) { node(id: $id) { ... on"
            f" Account {{ statistics(filter: {{kind: {kind}, from: $from, to: $to, serviceIds: $ids}})"
            " { zone service { id name } points { period value } } } } }"
        )
        general = (await api.data(query, token=customer_token, ids=every, **variables))["node"]["statistics"]
        assert both[alias] == general
        assert both[alias] and all(len(series["points"]) == 6 for series in both[alias])
    assert both["consumption"][0]["points"][0]["value"] == "100.000"  # electricity DAY volume
    assert both["charges"][0]["points"][0]["value"] == "500.00"  # 100 × 5.0000
    # a customer still sees only linked accounts: a foreign account is null, still without a third statement
    foreign = await seed_accounts(db, settings, link_to=None, months=1)
    with sql_counter() as counted:
        hidden = await api.data(
            STATISTICS_BOTH,
            token=customer_token,
            **{**variables, "id": gid("Account", foreign.account_ids[0])},
        )
    # (its sums were read with the account and thrown away, as were the services they name)
    assert hidden["node"] is None and counted.statements == 2
    # in Python: both kinds from one statement for two accounts, values and types as each kind's statement
    span = history_range(CLOCK.today(), month(-6), month(-1))
    scope = DbScope(db.sessionmaker, None)  # type: ignore[arg-type]  # this loader needs no context
    with sql_counter() as counted:
        sums = await scope.loader(ChargeSumsByAccountRange).load_many(
            [(key, span.start, span.end) for key in seeded.account_ids]
        )
    await scope.close()
    assert counted.statements == 1
    async with db.session() as session:
        for key, found in zip(seeded.account_ids, sums, strict=True):
            for kind in billing.SUMMED:
                expected = await billing.statistics(session, key, span, kind)
                got = billing.series_of_sums(found, span, kind)

                def shown(series: list[billing.Series]) -> list[Any]:
                    return [
                        (
                            type(s.service_id),
                            s.service_id,
                            type(s.zone),
                            s.zone,
                            s.supplier_id,
                            [(type(m), m, type(v), v) for m, v in s.points],
                        )
                        for s in series
                    ]

                assert expected and shown(got) == shown(expected)


async def test_issue21_node_reads_its_key_only_fields_while_its_access_check_runs(
    api: Any, db: Any, settings: Any, customer_token: str, sql_counter: Any
) -> None:
    """``node(id:)`` asking only for an account's key-only fields (its histories, statistics, tariffs…)
    reads them in the same statement as the account and its access check, instead of after it (issue 21).
    What the check says decides, as before: a visible account gets the same answer as the usual way; a
    hidden one is null, with the early answer — data, cost and errors — thrown away."""
    seeded = await seed_accounts(db, settings, accounts=2, months=6)
    foreign = await seed_accounts(db, settings, link_to=None, months=6)
    months = {"from": period(-6), "to": period(-1)}
    early = (
        "charges(from: $from, to: $to) { period total charges { amount service { name } } } tariffs { zone }"
    )
    query = ACCOUNT % (", $from: YearMonth!, $to: YearMonth!", "id __typename " + early)
    usual = ACCOUNT % (", $from: YearMonth!, $to: YearMonth!", "number " + early)  # number: not key-only
    mine = gid("Account", seeded.account_ids[0])
    await api.data(query, token=customer_token, id=gid("Account", seeded.account_ids[1]), **months)  # warm
    with sql_counter() as counted:
        fast = await api.gql(query, token=customer_token, id=mine, **months)
    with sql_counter() as counted_usual:
        slow = await api.gql(usual, token=customer_token, id=mine, **months)
    # tariffs are ORM rows (a statement of their own either way); the charges come with the account
    assert (counted.statements, counted_usual.statements) == (2, 3)
    node = fast["data"]["node"]
    assert node == {
        "id": mine,
        "__typename": "Account",
        **{k: v for k, v in slow["data"]["node"].items() if k != "number"},
    }
    assert len(node["charges"]) == 6 and node["tariffs"]
    assert fast["extensions"]["cost"]["actualQueryCost"] == slow["extensions"]["cost"]["actualQueryCost"]

    hidden = await api.gql(query, token=customer_token, id=gid("Account", foreign.account_ids[0]), **months)
    assert hidden["data"] == {"node": None} and "errors" not in hidden
    assert hidden["extensions"]["cost"]["actualQueryCost"] == 0  # nothing of the early answer is charged

    # an error of a key-only field: where the usual way reports it for a visible account, and nowhere for
    # a hidden one (the field would not have run)
    outside = {"from": period(-6), "to": period(0)}
    failed = await api.gql(query, token=customer_token, id=mine, **outside)
    assert failed["data"] == {"node": None}  # charges is non-null: the error nulls the account
    assert [e["extensions"]["code"] for e in failed["errors"]] == ["PERIOD_OUT_OF_RANGE"]
    assert failed["errors"][0]["path"] == ["node", "charges"]
    unseen = await api.gql(query, token=customer_token, id=gid("Account", foreign.account_ids[0]), **outside)
    assert unseen["data"] == {"node": None} and "errors" not in unseen
    malformed = await api.gql(query, token=customer_token, id="not-an-id", **months)
    assert malformed["data"] == {"node": None}
    assert malformed["errors"][0]["extensions"]["code"] == "INVALID_ID"
    meter = await api.gql(query, token=customer_token, id=gid("Meter", 1), **months)  # not an Account
    assert meter["data"] == {"node": None} or meter["data"]["node"] == {}


async def test_B4_issue21_meters_and_their_last_readings_come_from_one_statement(
    db: Any, settings: Any, sql_counter: Any
) -> None:
    """B4: when a selection asks ``meters { lastReadings }`` both come from one statement (a lateral join):
    the same plain rows, values, types and order as the two loaders' statements; a meter without readings
    has none; the two loaders are primed (no further statement)."""
    from sqlalchemy import inspect

    from models.meters import Meter, ZoneScheme
    from models.readings import Reading
    from resolvers.context import DbScope
    from resolvers.readings import LastReadingsByMeterId, MetersByAccountId, MetersWithLastReadingsByAccountId

    seeded = await seed_accounts(db, settings, accounts=2, months=3)
    async with db.session() as session:
        session.add(
            Meter(
                account_id=seeded.account_ids[1],
                service_id=seeded.water_id,
                serial="NEW-1",
                zone_scheme=ZoneScheme.SINGLE,
                digits=5,
            )
        )
        await session.commit()
    keys = [*seeded.account_ids, 0]  # and an account that does not exist
    scope = DbScope(db.sessionmaker, None)  # type: ignore[arg-type]  # these loaders need no context
    with sql_counter() as counted:
        meters = await scope.loader(MetersWithLastReadingsByAccountId).load_many(keys)
        meter_ids = [meter.id for rows in meters for meter in rows]
        last = await scope.loader(LastReadingsByMeterId).load_many(meter_ids)  # primed
        again = await scope.loader(MetersByAccountId).load_many(keys)  # primed
    await scope.close()
    assert counted.statements == 1
    assert again == meters and meters[2] == []
    separate = DbScope(db.sessionmaker, None)  # type: ignore[arg-type]
    with sql_counter() as counted:
        expected_meters = await separate.loader(MetersByAccountId).load_many(keys)
        expected_last = await separate.loader(LastReadingsByMeterId).load_many(meter_ids)
    await separate.close()
    assert counted.statements == 2

    def keys_of(model: Any) -> list[str]:
        return [attr.key for attr in inspect(model).column_attrs]

    assert [[typed(row, keys_of(Meter)) for row in rows] for rows in meters] == [
        [typed(row, keys_of(Meter)) for row in rows] for rows in expected_meters
    ]
    assert [[typed(row, keys_of(Reading)) for row in rows] for rows in last] == [
        [typed(row, keys_of(Reading)) for row in rows] for rows in expected_last
    ]
    assert sum(1 for rows in last if not rows) == 1  # the new meter
    assert sum(len(rows) for rows in last) >= 4


async def test_issue21_reference_rows_are_kept_between_requests_and_never_stale(
    api: Any, db: Any, settings: Any, customer_token: str, sql_counter: Any
) -> None:
    """D2/B4: services and suppliers (reference data only the billing import writes) are read once per
    version of ``Reference.BRANCHES``, not on every request; a write that declares the kind (as the import
    does) is seen by the very next request (resolvers.loaders.ReferenceById)."""
    from sqlalchemy import update

    from models.branches import Supplier
    from services.unit_of_work import Reference, touch

    seeded = await seed_accounts(db, settings, months=1)
    asked: list[int] = []

    async def names() -> tuple[set[str], set[str]]:
        asked.append(len(asked))  # another alias each time: the result cache never answers
        body = f"c{len(asked)}: charges {{ charges {{ service {{ name }} supplier {{ name }} }} }}"
        with sql_counter() as counted:
            node = await account_field(api, customer_token, seeded.account_ids[0], body)
        lines = [line for month in node[f"c{len(asked)}"] for line in month["charges"]]
        tables = ("services", "suppliers")
        reference = {table for table in tables for sql in counted.sql if f"FROM {table} " in sql}
        return {line["supplier"]["name"] for line in lines}, reference

    first, cold = await names()
    assert len(first) == 2
    again, warm = await names()
    assert again == first
    assert cold == {"services", "suppliers"}
    assert warm == set()  # services and suppliers were not read again

    async with db.unit_of_work() as work:  # billing renames a supplier (the import declares the same kind)
        renaming = update(Supplier).where(Supplier.id == seeded.water_supplier_id)
        await work.session.execute(renaming.values(name="МУП «Новый Водоканал»"))
        touch(work.session, reference=Reference.BRANCHES)
    renamed, after = await names()
    assert "МУП «Новый Водоканал»" in renamed and renamed != first
    assert after == {"services", "suppliers"}  # read again under the new version


def shape(value: Any) -> Any:
    """A loaded value as nested plain data with every leaf's type (plain rows, dataclasses, lists)."""
    import dataclasses

    if isinstance(value, list | tuple):
        return [shape(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: shape(getattr(value, field.name)) for field in dataclasses.fields(value)}
    slots = getattr(type(value), "__slots__", None)
    if slots and hasattr(type(value), "plain_of"):
        return {name: shape(getattr(value, name)) for name in slots if not name.startswith("_")}
    return (type(value), value)


async def test_issue21_reads_of_one_level_go_to_postgresql_as_one_statement_with_the_same_values(
    db: Any, settings: Any, sql_counter: Any
) -> None:
    """The dashboard's second level (balance, meters with their last readings, charges, the branch) asked at
    the same moment: one statement (models.plain.SharedReads), and every value equal, of the same type and
    in the same order, to what each loader reads alone."""
    import asyncio

    from resolvers.billing import BalanceByAccountId, ChargesByAccountRange
    from resolvers.branches import BranchById, ServiceById
    from resolvers.context import DbScope
    from resolvers.readings import MetersWithLastReadingsByAccountId

    seeded = await seed_accounts(db, settings, accounts=3, months=4)
    ids = seeded.account_ids
    charge_keys = [(account_id, month(-4), month(-1)) for account_id in ids]

    reads: list[tuple[type, list[Any]]] = [
        (BalanceByAccountId, ids),
        (MetersWithLastReadingsByAccountId, ids),
        (ChargesByAccountRange, charge_keys),
        (BranchById, [seeded.branch_id, 0]),
        (ServiceById, [seeded.water_id, seeded.electricity_id]),
    ]
    together = DbScope(db.sessionmaker, None)  # type: ignore[arg-type]  # these loaders need no context
    with sql_counter() as counted:
        found = await asyncio.gather(*(together.loader(cls).load_many(keys) for cls, keys in reads))
    await together.close()
    assert counted.statements == 1
    assert "UNION ALL" in counted.sql[0]

    alone = []
    with sql_counter() as separately:
        for cls, keys in reads:
            scope = DbScope(db.sessionmaker, None)  # type: ignore[arg-type]
            alone.append(await scope.loader(cls).load_many(keys))
            await scope.close()
    assert separately.statements == 5 and not any("AS q(c0" in sql for sql in separately.sql)
    balances, meters, charges, branches, _ = found
    assert all(balance.suppliers for balance in balances) and branches[1] is None
    assert all(rows for rows in meters) and all(rows for rows in charges)
    assert shape(found) == shape(alone)


async def test_issue21_a_failed_shared_statement_fails_every_read_in_it_and_the_next_reads_work(
    db: Any, settings: Any
) -> None:
    """An error of the one statement reaches every read that was in it (none is left waiting), and the
    scope's next reads run as usual."""
    import asyncio

    from sqlalchemy import Float, bindparam, func, select

    from models.plain import PlainQuery
    from resolvers.context import DbScope

    root = PlainQuery(select(func.sqrt(bindparam("value", type_=Float))))
    double = PlainQuery(select(bindparam("value", type_=Float) * 2))
    scope = DbScope(db.sessionmaker, None)  # type: ignore[arg-type]
    failed = await asyncio.gather(
        root.rows(scope.reads, {"value": -1.0}),
        double.rows(scope.reads, {"value": 2.0}),
        return_exceptions=True,
    )
    assert all(isinstance(error, Exception) and "negative" in str(error) for error in failed)
    again = await asyncio.gather(
        root.rows(scope.reads, {"value": 9.0}), double.rows(scope.reads, {"value": 2.0})
    )
    await scope.close()
    assert [list(rows[0]) for rows in again] == [[3.0], [4.0]]


async def test_B4_issue21_payments_count_after_the_last_closed_period_or_all_without_one(
    db: Any, settings: Any
) -> None:
    """B4: a balance subtracts the payments credited after the account's last closed period (the seed's
    200.00 of this month, not LAST_BILLED's 625.00); an account with no closed period yet subtracts all of
    them, and one with neither has an empty balance."""
    from decimal import Decimal

    from services import billing

    closed = await seed_accounts(db, settings, accounts=1, months=3)
    unbilled = await seed_accounts(db, settings, accounts=1, months=0)
    empty = await seed_accounts(db, settings, accounts=1, months=0, link_to=None)
    ids = [closed.account_ids[0], unbilled.account_ids[0], empty.account_ids[0]]
    async with db.session() as session:
        found = await billing.balances(session, ids)

    def lines(balance: billing.AccountBalance) -> list[tuple[int, Decimal, Decimal]]:
        return [(line.supplier_id, line.paid_since, line.amount) for line in balance.suppliers]

    assert lines(found[0]) == [
        (closed.energy_supplier_id, Decimal("200.00"), Decimal("425.00")),
        (closed.water_supplier_id, Decimal("0"), Decimal("-100.00")),
    ]
    assert found[1].billed_period is None
    assert lines(found[1]) == [(unbilled.energy_supplier_id, Decimal("825.00"), Decimal("-825.00"))]
    assert found[2].billed_period is None and found[2].suppliers == []


async def test_issue21_a_loader_starts_with_what_aiodataloader_sets_without_its_per_instance_check() -> None:
    """``resolvers.loaders.Loader`` does not run ``DataLoader.__init__`` per request (an ``inspect`` check of
    the batch function each time, ~3 % of an uncached dashboard's CPU): it leaves the same attributes, and a
    loader class whose batch function is not a coroutine function fails when the class is defined."""
    from aiodataloader import DataLoader

    from resolvers.billing import BalanceByAccountId
    from resolvers.context import DbScope
    from resolvers.loaders import Loader

    scope = DbScope(None, None)  # type: ignore[arg-type]  # nothing is loaded
    ours = BalanceByAccountId(scope)
    theirs = BalanceByAccountId.__new__(BalanceByAccountId)
    DataLoader.__init__(theirs)

    def state(loader: Any) -> dict[str, Any]:
        return {name: value for name, value in vars(loader).items() if name not in ("scope", "get_cache_key")}

    assert state(ours) == state(theirs) and set(state(ours)) >= {"loop", "_cache", "_queue"}
    assert ours.get_cache_key(7) == theirs.get_cache_key(7) == 7
    assert (ours.batch, ours.cache, ours.max_batch_size) == (True, True, None)

    with pytest.raises(TypeError, match="coroutine"):

        class Blocking(Loader[int, int]):
            def batch_load_fn(self, keys: Any) -> Any:  # type: ignore[override]
                return keys
