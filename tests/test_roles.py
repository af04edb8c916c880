"""K3 / issue 17, part 1: roles as a matrix — an ANALYST reads no personal data.

The first tests are the leaks issue 17 found (each failed before services/roles.py and schema/policy.py).
Then THE test: the whole live schema, walked as ANALYST over real HTTP against the demo data set plus a
refund application with bank details — every root field and every field below it (queries generated from
introspection, bounded depth, with arguments), and ``node``/``nodes`` with real ids of every Node type. It
fails if a field classified personal (schema.policy.PERSONAL) resolves to a value, or if a text field is
not classified at all. The same walk as OPERATOR must find personal values (so the walk does reach data).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sqlalchemy import select, text

from app.db import Database
from app.demo import DEMO_PHONE_E164
from app.settings import Settings
from models.accounts import Account
from models.appeals import Application, ApplicationKind, Document
from models.payments import Payment
from schema.policy import NOT_PERSONAL, PER_CUSTOMER_TYPES, PERSONAL
from tests.client import Api
from tests.conftest import CLOCK, login_as
from tests.dates import LAST_BILLED

ANALYST_PHONE = "+73333333333"
OPERATOR_PHONE = "+72222222222"

REFUND_FIELDS = {
    "amount": "1520.40",
    "recipientName": "Петров Пётр Петрович",
    "bankName": "ПАО Сбербанк",
    "bic": "044525225",
    "bankAccount": "40817810099910004312",
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The walk sends big generated documents: lift the size limits (not the rules under test)."""
    return settings.model_copy(
        update={
            "max_query_tokens": 1_000_000,
            "max_query_cost": 100_000_000,
            "cost_budget_per_minute": 1_000_000_000,
            "max_query_aliases": 1000,
            "max_query_depth": 40,
        }
    )


def gid(type_name: str, row_id: int) -> str:
    return base64.b64encode(f"{type_name}:{row_id}".encode()).decode()


async def refund_application(db: Database) -> int:
    """A REFUND application of the demo customer with bank details (the demo set has none)."""
    async with db.session() as session:
        user_id = (
            await session.execute(text("SELECT id FROM users WHERE phone = :p"), {"p": DEMO_PHONE_E164})
        ).scalar_one()
        account_id = (
            await session.execute(
                text("SELECT account_id FROM user_accounts WHERE user_id = :u ORDER BY id LIMIT 1"),
                {"u": user_id},
            )
        ).scalar_one()
        row = Application(
            user_id=user_id,
            account_id=account_id,
            kind=ApplicationKind.REFUND,
            fields=REFUND_FIELDS,
            text="Прошу вернуть переплату",
            full_name="Иванов Иван Иванович",
            phone=DEMO_PHONE_E164,
            email="ivanov@bk.ru",
            created_at=CLOCK.now(),
            updated_at=CLOCK.now(),
        )
        session.add(row)
        await session.commit()
        return row.id


@pytest.fixture
async def analyst(db: Database, settings: Settings) -> str:
    return await login_as(db, settings, ANALYST_PHONE)


@pytest.fixture
async def operator(db: Database, settings: Settings) -> str:
    return await login_as(db, settings, OPERATOR_PHONE)


def codes(body: dict[str, Any]) -> set[str]:
    return {error.get("extensions", {}).get("code") for error in body.get("errors") or []}


# ---------------------------------------------------------------------------------------------- the leaks


async def test_k3_analyst_reads_no_contact_data_of_appeals(api: Api, analyst: str, operator: str) -> None:
    query = "{ appeals { totalCount edges { node { id fullName phone email text } } } }"
    body = await api.gql(query, token=analyst)
    assert body["data"]["appeals"]["totalCount"] == 0, body
    assert body["data"]["appeals"]["edges"] == []
    # the operator still reads them: their queue needs the customer's contact data
    seen = await api.data(query, token=operator)
    assert seen["appeals"]["totalCount"] > 0
    assert any(edge["node"]["phone"] == DEMO_PHONE_E164 for edge in seen["appeals"]["edges"])
    queue = "{ appealQueue { totalCount edges { node { fullName phone email } } } }"
    waiting = (await api.data(queue, token=operator))["appealQueue"]
    assert waiting["edges"] and all(edge["node"]["phone"] for edge in waiting["edges"])
    refused = await api.gql(queue, token=analyst)  # the analyst: the size only, no request, no contact
    assert refused["data"]["appealQueue"] == {"totalCount": waiting["totalCount"], "edges": []}, refused


async def test_k3_analyst_gets_no_account_via_node(
    api: Api, db: Database, analyst: str, operator: str
) -> None:
    async with db.session() as session:
        account_id = (await session.execute(select(Account.id).order_by(Account.id).limit(1))).scalar_one()
    query = "query($id: ID!) { node(id: $id) { id ... on Account { number ownerFullName address } } }"
    body = await api.gql(query, token=analyst, id=gid("Account", account_id))
    assert body["data"] == {"node": None}, body
    body = await api.gql(
        "query($ids: [ID!]!) { nodes(ids: $ids) { ... on Account { number } } }",
        token=analyst,
        ids=[gid("Account", account_id)],
    )
    assert body["data"] == {"nodes": [None]}, body
    assert (await api.data(query, token=operator, id=gid("Account", account_id)))["node"]["number"]


async def test_k3_analyst_reads_no_refund_bank_details(
    api: Api, db: Database, analyst: str, operator: str
) -> None:
    application_id = await refund_application(db)
    by_node = "query($id: ID!) { node(id: $id) { ... on Application { fields fullName } } }"
    assert (await api.gql(by_node, token=analyst, id=gid("Application", application_id)))["data"] == {
        "node": None
    }
    listed = await api.gql("{ applications { totalCount edges { node { fields } } } }", token=analyst)
    assert listed["data"]["applications"] == {"totalCount": 0, "edges": []}, listed
    queue = await api.gql(
        "{ applicationQueue { totalCount edges { node { fields phone } } } }", token=analyst
    )
    assert queue["data"]["applicationQueue"]["edges"] == [], queue
    assert queue["data"]["applicationQueue"]["totalCount"] >= 1  # the size of the queue is an aggregate
    found = await api.data(by_node, token=operator, id=gid("Application", application_id))
    assert found["node"]["fields"]["bankAccount"] == REFUND_FIELDS["bankAccount"]


async def test_k3_analyst_gets_no_download_link_of_a_property_extract(
    api: Api, db: Database, analyst: str, operator: str
) -> None:
    async with db.session() as session:
        document_id = (await session.execute(select(Document.id).order_by(Document.id).limit(1))).scalar_one()
    query = (
        "query($id: ID!) { node(id: $id) { ... on Document { title file { filename download { url } } } } }"
    )
    assert (await api.gql(query, token=analyst, id=gid("Document", document_id)))["data"] == {"node": None}
    assert (await api.data(query, token=operator, id=gid("Document", document_id)))["node"]["file"][
        "download"
    ]["url"]


async def test_k3_analyst_reads_no_receipt_email_of_payments(
    api: Api, db: Database, analyst: str, operator: str
) -> None:
    async with db.session() as session:
        payment_id = (
            await session.execute(
                select(Payment.id).where(Payment.receipt_email.is_not(None)).order_by(Payment.id).limit(1)
            )
        ).scalar_one()
    query = "query($id: ID!) { node(id: $id) { ... on Payment { receiptEmail amount } } }"
    assert (await api.gql(query, token=analyst, id=gid("Payment", payment_id)))["data"] == {"node": None}
    assert (await api.data(query, token=operator, id=gid("Payment", payment_id)))["node"]["receiptEmail"]


async def test_k3_personal_field_refuses_analyst_with_forbidden(api: Api, analyst: str) -> None:
    """Whatever the path, a personal field refuses the analyst like every other refusal: FORBIDDEN."""
    body = await api.gql("{ me { role fullName phone } }", token=analyst)
    assert codes(body) == {"FORBIDDEN"}, body
    assert all(error["message"] == "Forbidden" for error in body["errors"])
    assert (await api.data("{ me { role } }", token=analyst))["me"] == {"role": "ANALYST"}


async def test_k3_customer_still_reads_own_personal_data(api: Api, customer_token: str) -> None:
    found = await api.data("{ me { phone } appeals { edges { node { phone } } } }", token=customer_token)
    assert found["me"]["phone"] == DEMO_PHONE_E164
    assert found["appeals"]["edges"] and all(
        e["node"]["phone"] == DEMO_PHONE_E164 for e in found["appeals"]["edges"]
    )


# ---------------------------------------------------------------------------------------------- the walk

INTROSPECTION = """
query {
  __schema {
    queryType { name }
    types {
      kind name
      possibleTypes { name }
      inputFields { name type { ...T } defaultValue }
      enumValues { name }
      fields { name type { ...T } args { name type { ...T } defaultValue } }
    }
  }
}
fragment T on __Type {
  kind name ofType { kind name ofType { kind name ofType { kind name ofType { name kind } } } }
}
"""

TEXT_SCALARS = frozenset({"String", "JSON"})
MAX_DEPTH = 5


def named(type_ref: dict[str, Any]) -> dict[str, Any]:
    while type_ref.get("ofType"):
        type_ref = type_ref["ofType"]
    return type_ref


class Walk:
    """Generates documents from introspection and checks their results against the classification."""

    def __init__(self, schema: dict[str, Any], ids: dict[str, list[int]]) -> None:
        self.types = {t["name"]: t for t in schema["types"]}
        self.query_type = schema["queryType"]["name"]
        self.ids = ids

    # -- arguments
    def value(self, type_ref: dict[str, Any], arg_name: str) -> str | None:
        if type_ref["kind"] == "NON_NULL":
            return self.value(type_ref["ofType"], arg_name)
        if type_ref["kind"] == "LIST":
            inner = self.value(type_ref["ofType"], arg_name)
            return None if inner is None else f"[{inner}]"
        name = type_ref["name"]
        definition = self.types[name]
        if name == "ID":
            wanted = arg_name[:-2] if arg_name.endswith("Id") else arg_name
            for type_name, ids in self.ids.items():
                if type_name.lower() == wanted.lower() or type_name.lower().endswith(wanted.lower()):
                    return f'"{gid(type_name, ids[0])}"' if ids else None
            return None
        if name == "YearMonth":
            return f'"{LAST_BILLED:%Y-%m}"'
        if name in ("Date",):
            return f'"{LAST_BILLED:%Y-%m-%d}"'
        if name == "DateTime":
            return f'"{CLOCK.now().isoformat()}"'
        if name == "Int":
            return "1"
        if name == "Boolean":
            return "true"
        if name in ("String", "Decimal"):
            return '"1"'
        if definition["kind"] == "ENUM":
            return definition["enumValues"][0]["name"]
        if definition["kind"] == "INPUT_OBJECT":
            parts = []
            for field in definition["inputFields"]:
                if field["type"]["kind"] == "NON_NULL" and field["defaultValue"] is None:
                    value = self.value(field["type"], field["name"])
                    if value is None:
                        return None
                    parts.append(f"{field['name']}: {value}")
            return "{" + ", ".join(parts) + "}"
        return None

    def arguments(self, field: dict[str, Any]) -> str | None:
        """Required arguments filled in; None when one cannot be."""
        parts = []
        for arg in field["args"]:
            if arg["type"]["kind"] == "NON_NULL" and arg["defaultValue"] is None:
                value = self.value(arg["type"], arg["name"])
                if value is None:
                    return None
                parts.append(f"{arg['name']}: {value}")
        return f"({', '.join(parts)})" if parts else ""

    # -- selections
    def selection(self, type_name: str, depth: int, path: tuple[str, ...]) -> str:
        definition = self.types[type_name]
        if definition["kind"] in ("INTERFACE", "UNION"):
            inner = [
                f"... on {possible['name']} {self.selection(possible['name'], depth, path)}"
                for possible in definition["possibleTypes"]
                if possible["name"] not in path
            ]
            return "{ __typename " + " ".join(inner) + " }"
        parts = ["__typename"]
        for field in definition["fields"]:
            target = named(field["type"])
            kind = self.types[target["name"]]["kind"]
            args = self.arguments(field)
            if args is None:
                continue
            if kind in ("SCALAR", "ENUM"):
                parts.append(field["name"] + args)
            elif depth < MAX_DEPTH and target["name"] not in path:
                parts.append(
                    field["name"]
                    + args
                    + " "
                    + self.selection(target["name"], depth + 1, (*path, target["name"]))
                )
        return "{ " + " ".join(parts) + " }"

    def root_documents(self) -> dict[str, str]:
        documents = {}
        for field in self.types[self.query_type]["fields"]:
            if field["name"] in ("node", "nodes"):
                continue
            args = self.arguments(field)
            if args is None:
                continue
            target = named(field["type"])
            kind = self.types[target["name"]]["kind"]
            body = (
                ""
                if kind in ("SCALAR", "ENUM")
                else " " + self.selection(target["name"], 1, (target["name"],))
            )
            documents[field["name"]] = "{ " + field["name"] + args + body + " }"
        return documents

    def node_documents(self) -> dict[str, str]:
        documents = {}
        for type_name, ids in self.ids.items():
            if not ids:
                continue
            selection = self.selection(type_name, 1, (type_name,))
            id_list = ", ".join(f'"{gid(type_name, row_id)}"' for row_id in ids)
            documents[type_name] = (
                f'{{ node(id: "{gid(type_name, ids[0])}") {{ ... on {type_name} {selection} }} '
                f"nodes(ids: [{id_list}]) {{ ... on {type_name} {selection} }} }}"
            )
        return documents

    # -- results
    def check(self, value: Any, type_name: str, found: list[str], unclassified: set[str], path: str) -> None:
        """Record personal values in ``found`` and unclassified text fields in ``unclassified``."""
        if value is None:
            return
        if isinstance(value, list):
            for index, item in enumerate(value):
                self.check(item, type_name, found, unclassified, f"{path}[{index}]")
            return
        definition = self.types[type_name]
        if definition["kind"] in ("INTERFACE", "UNION"):
            type_name = value["__typename"]
            definition = self.types[type_name]
        if definition["kind"] != "OBJECT":
            return
        fields = {field["name"]: field for field in definition["fields"]}
        for key, item in value.items():
            if key == "__typename" or key not in fields:
                continue
            target = named(fields[key]["type"])["name"]
            if target in TEXT_SCALARS:
                if key in PERSONAL.get(type_name, {}):
                    if item not in (None, [], {}):
                        found.append(f"{path}.{key} ({type_name}.{key}) = {item!r:.60}")
                elif key not in NOT_PERSONAL.get(type_name, frozenset()):
                    unclassified.add(f"{type_name}.{key}")
            self.check(item, target, found, unclassified, f"{path}.{key}")


async def node_ids(api: Api, db: Database, admin_token: str) -> dict[str, list[int]]:
    """Up to three real row ids of every Node type (read from the tables that back them)."""
    from app.execution import BACKREF
    from schema.schema import build_schema

    schema = build_schema()._schema
    ids: dict[str, list[int]] = {}
    async with db.session() as session:
        for name in schema.get_possible_types(schema.type_map["Node"]):  # type: ignore[arg-type]
            origin = name.extensions[BACKREF].origin
            models = origin.is_type_of.__func__.__closure__[0].cell_contents
            table = models[0].__table__
            rows = await session.execute(select(table.c.id).order_by(table.c.id).limit(3))
            ids[name.name] = list(rows.scalars())
    return ids


async def walk(
    api: Api, db: Database, token: str, ids: dict[str, list[int]], answered: set[str] | None = None
) -> tuple[list[str], set[str], int]:
    """Walk every document; ``answered`` (when given) collects the root fields answered without error."""
    schema = (await api.data(INTROSPECTION, token=token))["__schema"]
    walker = Walk(schema, ids)
    found: list[str] = []
    unclassified: set[str] = set()
    values = 0
    documents = {**walker.root_documents(), **{f"node:{k}": v for k, v in walker.node_documents().items()}}
    for name, document in documents.items():
        response = await api.post(document, token=token)
        assert response.status_code in (200,), (name, response.status_code, response.text[:500])
        body = response.json()
        for error in body.get("errors") or []:
            code = error.get("extensions", {}).get("code")
            assert code not in (None, "INTERNAL_SERVER_ERROR"), (name, error)
        data = body.get("data") or {}
        if answered is not None and not body.get("errors") and data.get(name) is not None:
            answered.add(name)
        values += len(str(data))
        walker.check(data, walker.query_type, found, unclassified, name)
    return found, unclassified, values


def test_k3_every_text_field_is_classified_once() -> None:
    """Each String/JSON field of every object type is personal or not — never both, never neither."""
    from graphql import GraphQLObjectType, get_named_type

    from schema.schema import build_schema

    schema = build_schema()._schema
    missing, both, stale = [], [], []
    for type_name, type_ in schema.type_map.items():
        if type_name.startswith("__") or not isinstance(type_, GraphQLObjectType):
            continue
        for field_name, field in type_.fields.items():
            if get_named_type(field.type).name not in TEXT_SCALARS or type_name in (
                "Mutation",
                "Subscription",
            ):
                continue
            is_personal = field_name in PERSONAL.get(type_name, {})
            is_public = field_name in NOT_PERSONAL.get(type_name, frozenset())
            if is_personal and is_public:
                both.append(f"{type_name}.{field_name}")
            elif not (is_personal or is_public):
                missing.append(f"{type_name}.{field_name}")
    for registry in (PERSONAL, NOT_PERSONAL):
        for type_name, names in registry.items():
            type_ = schema.type_map.get(type_name)
            stale += [
                f"{type_name}.{n}"
                for n in names
                if not isinstance(type_, GraphQLObjectType) or n not in type_.fields
            ]
    assert not missing, f"classify these fields in schema/policy.py (PERSONAL or NOT_PERSONAL): {missing}"
    assert not both and not stale, (both, stale)
    assert PER_CUSTOMER_TYPES <= set(schema.type_map)


async def test_k3_schema_walk_as_analyst_finds_no_personal_value(
    api: Api, db: Database, settings: Settings, analyst: str, operator: str
) -> None:
    """THE test of issue 17: the whole reachable schema as ANALYST, over HTTP, against seeded data."""
    await refund_application(db)
    ids = await node_ids(api, db, operator)
    for type_name in ("Account", "Appeal", "Application", "Document", "Payment", "User", "Meter", "Branch"):
        assert ids[type_name], f"no {type_name} rows to walk"
    answered: set[str] = set()
    found, unclassified, values = await walk(api, db, analyst, ids, answered)
    # the analytics API (its required `query` filled in from introspection) is walked and answers
    assert {"analytics", "analyticsExport", "branches"} <= answered, sorted(answered)
    assert not unclassified, f"unclassified text fields reachable by ANALYST: {sorted(unclassified)}"
    assert found == [], "\n".join(found)
    assert values > 1000  # the walk did read reference data (branches, tariffs, content…)

    # The same walk as OPERATOR finds the personal values: it does reach the customers' data.
    seen, _, _ = await walk(api, db, operator, ids)
    kinds = {line.split("(")[1].split(")")[0] for line in seen}
    for expected in (
        "Appeal.fullName",
        "Account.ownerFullName",
        "Application.fields",
        "FileDownload.url",
        "Payment.receiptEmail",
    ):
        assert expected in kinds, (expected, sorted(kinds))


async def test_k3_walk_finds_a_leak_when_the_policy_is_off(
    api: Api, db: Database, analyst: str, operator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk can fail: with analysts allowed customer data (the old rule), it reports the leaks."""
    from services import roles

    monkeypatch.setattr(roles, "CUSTOMER_DATA_ROLES", frozenset({"OPERATOR", "ADMIN", "ANALYST"}))
    monkeypatch.setattr(roles, "PERSONAL_DATA_ROLES", frozenset({"CUSTOMER", "OPERATOR", "ADMIN", "ANALYST"}))
    ids = await node_ids(api, db, operator)
    found, _, _ = await walk(api, db, analyst, {"Account": ids["Account"], "Appeal": ids["Appeal"]})
    assert any("Appeal.phone" in line for line in found), found
