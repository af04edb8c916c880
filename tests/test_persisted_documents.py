"""Persisted (trusted) documents (issue 20): registered with ``kabinet documents register`` or from a
manifest file, sent by hash in Apollo's ``extensions.persistedQuery`` over POST and GET, Apollo's
automatic registration (APQ) where allowed, and the persisted-only mode of production."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from app import cli
from app.main import create_app
from app.settings import Settings, get_settings
from services.persisted_documents import document_hash
from tests.client import Api
from tests.conftest import login_as, production

ME = "query Me { me { role } }"
TYPENAME = "query Typename { __typename }"
ADMIN_PHONE = "+75555555555"


def data_of(response: Any) -> dict[str, Any]:
    """The body without ``extensions`` (every answer carries ``extensions.cost``, tests/test_cost.py)."""
    body = dict(response.json())
    body.pop("extensions", None)
    return body


def persisted(hash_: str) -> dict[str, Any]:
    """Apollo's extensions of a request sent by hash."""
    return {"persistedQuery": {"version": 1, "sha256Hash": hash_}}


async def post(api: Api, body: dict[str, Any], token: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await api.client.post("/graphql", json=body, headers=headers)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo the CLI's logging set-up after the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.fixture
def run_cli(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    restore_logging: None,
    capsys: pytest.CaptureFixture[str],
) -> Any:
    """``await run_cli(args)`` → (exit code, stdout) of ``kabinet`` against this test's database."""
    monkeypatch.setenv("DATABASE_URL", database_url)

    async def run(args: list[str]) -> tuple[int, str]:
        get_settings.cache_clear()
        try:
            code = await asyncio.to_thread(cli.main, args)
        finally:
            get_settings.cache_clear()
        return code, capsys.readouterr().out

    return run


async def test_registered_documents_are_served_by_hash_over_post_and_get(
    api: Api, run_cli: Any, customer_token: str, tmp_path: Path
) -> None:
    # a manifest as Relay / GraphQL Codegen write it, and a .graphql file with one operation
    manifest = tmp_path / "persisted-documents.json"
    manifest.write_text(json.dumps({document_hash(ME): ME}), encoding="utf-8")
    operations = tmp_path / "operations.graphql"
    operations.write_text(
        "query Typename { ...Root }\nfragment Root on Query { __typename }\n", encoding="utf-8"
    )
    code, out = await run_cli(["documents", "register", str(manifest), str(operations)])
    assert code == 0
    printed = dict(line.split()[::-1] for line in out.splitlines())
    assert printed["Me"] == document_hash(ME)
    typename_hash = printed["Typename"]

    code, out = await run_cli(["documents", "list"])
    assert code == 0 and document_hash(ME) in out and typename_hash in out

    # POST by hash, as a customer and anonymously
    response = await post(api, {"extensions": persisted(document_hash(ME))}, customer_token)
    assert response.status_code == 200
    assert data_of(response) == {"data": {"me": {"role": "CUSTOMER"}}}
    response = await post(api, {"extensions": persisted(typename_hash)})
    assert data_of(response) == {"data": {"__typename": "Query"}}

    # GET by hash (CDN-friendly: no body), with operationName and variables
    params = {
        "extensions": json.dumps(persisted(typename_hash)),
        "operationName": "Typename",
        "variables": "{}",
    }
    response = await api.client.get("/graphql", params=params)
    assert response.status_code == 200
    assert data_of(response) == {"data": {"__typename": "Query"}}
    assert response.headers["cache-control"] == "public, max-age=60"  # a public read a CDN may keep
    private = await api.client.get(
        "/graphql",
        params={"extensions": json.dumps(persisted(document_hash(ME)))},
        headers={"authorization": f"Bearer {customer_token}"},
    )
    assert private.headers["cache-control"] == "no-store"  # never a customer's answer
    post_answer = await post(api, {"extensions": persisted(typename_hash)})
    assert post_answer.headers["cache-control"] == "no-store"

    # the same document sent with its hash is accepted; a wrong hash is a 400
    response = await post(api, {"query": ME, "extensions": persisted(document_hash(ME))}, customer_token)
    assert data_of(response) == {"data": {"me": {"role": "CUSTOMER"}}}
    response = await post(api, {"query": TYPENAME, "extensions": persisted(document_hash(ME))})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"


async def test_a_manifest_with_a_wrong_hash_is_refused(run_cli: Any, tmp_path: Path) -> None:
    manifest = tmp_path / "bad.json"
    manifest.write_text(json.dumps({"0" * 64: ME}), encoding="utf-8")
    code, _ = await run_cli(["documents", "register", str(manifest)])
    assert code == 2


async def test_unknown_hash_is_persisted_query_not_found(api: Api) -> None:
    response = await post(api, {"extensions": persisted("a" * 64)})
    assert response.status_code == 200
    assert response.json() == {
        "errors": [{"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]
    }
    response = await api.client.get("/graphql", params={"extensions": json.dumps(persisted("b" * 64))})
    assert response.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    # a client preferring the spec's media type gets a 400 for it
    response = await api.client.post(
        "/graphql",
        json={"extensions": persisted("a" * 64)},
        headers={"accept": "application/graphql-response+json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/graphql-response+json")


async def test_apq_registers_then_serves_by_hash_in_development(
    api: Api, settings: Settings, customer_token: str
) -> None:
    assert settings.persisted_documents_auto_register_enabled  # on outside production
    hash_ = document_hash(ME)
    first = await post(api, {"extensions": persisted(hash_)}, customer_token)
    assert first.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    registered = await post(api, {"query": ME, "extensions": persisted(hash_)}, customer_token)
    assert data_of(registered) == {"data": {"me": {"role": "CUSTOMER"}}}
    again = await post(api, {"extensions": persisted(hash_)}, customer_token)
    assert data_of(again) == {"data": {"me": {"role": "CUSTOMER"}}}


@pytest.fixture
def prod_settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """This test's settings as production has them (``request.param``: extra settings)."""
    return production(settings, **getattr(request, "param", {}))


@pytest.fixture
async def prod_api(prod_settings: Settings) -> AsyncIterator[Api]:
    """A client of the app in production configuration."""
    application = create_app(prod_settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("203.0.113.10", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="https://kabinet.test") as client:
            yield Api(client)


async def test_apq_is_refused_when_auto_register_is_off(prod_api: Api, prod_settings: Settings) -> None:
    assert not prod_settings.persisted_documents_auto_register_enabled  # off in production
    hash_ = document_hash(TYPENAME)
    sent = await post(prod_api, {"query": TYPENAME, "extensions": persisted(hash_)})
    assert data_of(sent) == {"data": {"__typename": "Query"}}  # runs as a free-form document…
    after = await post(prod_api, {"extensions": persisted(hash_)})  # …but was not registered
    assert after.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize("prod_settings", [{"persisted_documents_only": True}], indirect=True)
async def test_persisted_only_refuses_free_form_customer_queries_and_allows_staff(
    prod_api: Api, db: Any, prod_settings: Settings, run_cli: Any, tmp_path: Path
) -> None:
    prod = prod_settings
    customer = await login_as(db, prod, "+71111111111")
    admin = await login_as(db, prod, ADMIN_PHONE)
    for token in (customer, None):
        refused = await post(prod_api, {"query": ME}, token)
        assert refused.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"
        assert "data" not in refused.json()
    # nor can they register one by sending it with its hash
    apq = await post(prod_api, {"query": ME, "extensions": persisted(document_hash(ME))}, customer)
    assert apq.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"
    # staff keep free-form documents (GraphiQL)
    staff = await post(prod_api, {"query": ME}, admin)
    assert data_of(staff) == {"data": {"me": {"role": "ADMIN"}}}
    # a registered document works for the customer by hash
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({document_hash(ME): ME}), encoding="utf-8")
    assert (await run_cli(["documents", "register", str(manifest)]))[0] == 0
    served = await post(prod_api, {"extensions": persisted(document_hash(ME))}, customer)
    assert data_of(served) == {"data": {"me": {"role": "CUSTOMER"}}}


async def test_manifest_file_setting_serves_its_documents(settings: Settings, tmp_path: Path) -> None:
    manifest = tmp_path / "apollo.json"
    manifest.write_text(
        json.dumps(
            {
                "format": "apollo-persisted-query-manifest",
                "version": 1,
                "operations": [
                    {"id": document_hash(TYPENAME), "name": "Typename", "type": "query", "body": TYPENAME}
                ],
            }
        ),
        encoding="utf-8",
    )
    application = create_app(settings.model_copy(update={"persisted_documents_file": manifest}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://kabinet.test") as client:
            response = await post(Api(client), {"extensions": persisted(document_hash(TYPENAME))})
    assert data_of(response) == {"data": {"__typename": "Query"}}
