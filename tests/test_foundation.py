"""Foundation (issue 2): the server answers over HTTP and websockets, the conventions hold."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import websockets

from tests.client import graphql_ws

ME_AND_BRANCHES = "query { me { id } branches { id name readingWindow { startDay endDay } } }"


async def test_K1_anonymous_me_is_null_and_branches_are_listed(api: Any) -> None:
    data = await api.data(ME_AND_BRANCHES)
    assert data["me"] is None
    names = [branch["name"] for branch in data["branches"]]
    assert "Скопинское отделение" in names
    window = data["branches"][0]["readingWindow"]
    assert 1 <= window["startDay"] <= window["endDay"] <= 31


async def test_K1_node_fetches_a_branch_by_its_global_id(api: Any) -> None:
    branches = (await api.data("{ branches { id name } }"))["branches"]
    first = branches[0]
    assert base64.b64decode(first["id"]).decode().startswith("Branch:")
    node = await api.data("query($id: ID!) { node(id: $id) { id ... on Branch { name } } }", id=first["id"])
    assert node["node"] == {"id": first["id"], "name": first["name"]}


async def test_K1_node_with_a_malformed_id_is_an_error_not_a_crash(api: Any) -> None:
    body = await api.gql('query { node(id: "bm9wZQ==") { id } }')
    assert body["errors"]
    assert body["errors"][0]["message"] != "Internal server error"


async def test_K1_branches_cost_one_statement(api: Any, sql_counter: Any) -> None:
    with sql_counter() as counted:
        await api.data("{ branches { id name timeZone readingWindow { startDay } } }")
    assert counted.statements == 1


async def test_K1_invalid_token_is_refused_with_401(api: Any) -> None:
    response = await api.post("{ me { id } }", token="not-a-token")
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_K1_queries_may_come_by_get_but_mutations_never(api: Any) -> None:
    response = await api.client.get("/graphql", params={"query": "{ branches { id } }"})
    assert response.status_code == 200 and response.json()["data"]["branches"]


async def test_K1_alias_limit_refuses_amplified_documents(api: Any) -> None:
    aliases = "query { " + " ".join(f"b{i}: branches {{ id }}" for i in range(40)) + " }"
    body = await api.gql(aliases)
    assert body["data"] is None
    assert "aliases" in body["errors"][0]["message"]


async def test_K1_depth_limit_refuses_deep_documents(settings: Any) -> None:
    import httpx

    from app.main import create_app

    shallow = create_app(settings.model_copy(update={"max_query_depth": 1}))
    transport = httpx.ASGITransport(app=shallow)
    async with httpx.AsyncClient(transport=transport, base_url="http://kabinet.test") as client:
        body = (
            await client.post("/graphql", json={"query": "{ branches { readingWindow { startDay } } }"})
        ).json()
    await shallow.state.kabinet.db.dispose()
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]


async def test_K3_graphiql_is_served_with_local_assets(api: Any) -> None:
    page = await api.client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    assert "unpkg.com" not in page.text
    asset = await api.client.get("/graphiql-static/" + _first_asset(page.text))
    assert asset.status_code == 200 and len(asset.content) > 1000


def _first_asset(html: str) -> str:
    marker = "/graphiql-static/"
    start = html.index(marker) + len(marker)
    end = min(i for i in (html.find('"', start), html.find("'", start)) if i > 0)
    return html[start:end]


async def test_K2_subscription_streams_over_graphql_transport_ws(
    live_server: str, customer_token: str
) -> None:
    async with graphql_ws(live_server, init={"token": customer_token}) as ws:
        op = await ws.subscribe("subscription { serverTime(count: 3, intervalSeconds: 0.01) }")
        times = [event["data"]["serverTime"] async for event in ws.events(op)]
    assert len(times) == 3 and times == sorted(times)


async def test_K2_websocket_with_a_bad_token_is_closed_with_4403(live_server: str) -> None:
    url = live_server.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as socket:  # type: ignore[list-item]
        await socket.send('{"type": "connection_init", "payload": {"token": "forged"}}')
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_K1_health_endpoints(api: Any) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    assert (await api.client.get("/readyz")).json() == {"status": "ok"}


async def test_K2_browser_websocket_from_a_foreign_origin_is_refused(live_server: str) -> None:
    url = live_server.replace("http://", "ws://") + "/graphql"
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(
            url,
            subprotocols=["graphql-transport-ws"],
            origin="https://evil.example",  # type: ignore[list-item,arg-type]
        ):
            pass
    async with graphql_ws(live_server, origin=live_server):
        pass


def test_K1_every_setting_is_documented_in_the_readme() -> None:
    from pathlib import Path

    from app.settings import Settings

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        variable = alias.choices[0] if alias is not None else f"KABINET_{name.upper()}"  # type: ignore[union-attr]
        assert f"`{variable}`" in readme, f"{variable} is missing from the README's configuration table"


async def test_K1_me_answers_for_a_logged_in_customer(api: Any, customer_token: str) -> None:
    data = await api.data("{ me { id phone fullName emailConfirmed role } }", token=customer_token)
    assert data["me"]["phone"] == "+71111111111"
    assert data["me"]["fullName"] == "Иванов Иван Иванович"
    assert data["me"]["role"] == "CUSTOMER"
    assert base64.b64decode(data["me"]["id"]).decode().startswith("User:")


async def test_K1_node_hides_other_users(api: Any, customer_token: str) -> None:
    me = (await api.data("{ me { id } }", token=customer_token))["me"]
    other = base64.b64encode(b"User:999999").decode()
    data = await api.data(
        "query($a: ID!, $b: ID!) { a: node(id: $a) { id } b: node(id: $b) { id } }",
        token=customer_token,
        a=me["id"],
        b=other,
    )
    assert data == {"a": {"id": me["id"]}, "b": None}
    assert (await api.data("query($a: ID!) { node(id: $a) { id } }", a=me["id"]))["node"] is None


def test_K1_every_type_field_argument_and_enum_value_is_documented() -> None:
    """The descriptions are the API's documentation (GraphiQL, codegen): none may be missing."""
    from graphql import (
        GraphQLEnumType,
        GraphQLInputObjectType,
        GraphQLInterfaceType,
        GraphQLObjectType,
    )

    from schema.schema import build_schema

    missing: list[str] = []
    graphql_schema = build_schema()._schema
    for name, kind in graphql_schema.type_map.items():
        if name.startswith("__"):
            continue
        if not kind.description:
            missing.append(f"type {name}")
        if isinstance(kind, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in kind.fields.items():
                if not field.description:
                    missing.append(f"field {name}.{field_name}")
                missing += [
                    f"argument {name}.{field_name}({arg})"
                    for arg, value in field.args.items()
                    if not value.description
                ]
        if isinstance(kind, GraphQLInputObjectType):
            missing += [
                f"input field {name}.{field}" for field, value in kind.fields.items() if not value.description
            ]
        if isinstance(kind, GraphQLEnumType):
            missing += [
                f"enum value {name}.{value}" for value, spec in kind.values.items() if not spec.description
            ]
    assert missing == []


def test_19_schema_settings_defaults_equal_the_apps_settings() -> None:
    """schema/ never imports app (issue 19): its stand-in for the settings must not drift from them."""
    import dataclasses

    from app.settings import Settings
    from schema.schema import SchemaSettings

    app_settings = Settings()
    for field in dataclasses.fields(SchemaSettings):
        assert getattr(SchemaSettings(), field.name) == getattr(app_settings, field.name), field.name


def test_19_import_contracts_hold() -> None:
    """The layers point one way (pyproject.toml [tool.importlinter], docs/architecture.md)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    script = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:]
