"""GraphQL over HTTP conformance: graphql-http's ``serverAudits`` (the spec's reference audits) against a
live server — every MUST, SHOULD and MAY passes — plus Kabinet's content negotiation rules directly.

The audit is a Node script (``tests/audit/graphql_http_audit.mjs``, ``graphql-http`` pinned by
``tests/audit/package-lock.json``); its dependencies are installed with ``npm ci`` into
``tests/audit/node_modules`` (gitignored) on first use. Skipped only when ``node`` is not installed.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.http_negotiation import prefers_graphql_response_json

AUDIT_DIR = Path(__file__).parent / "audit"
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"


def data_of(response: Any) -> dict[str, Any]:
    """The body without ``extensions`` (every answer carries ``extensions.cost``, tests/test_cost.py)."""
    body = dict(response.json())
    body.pop("extensions", None)
    return body


async def _run(*command: str, timeout: float) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode or 0, output.decode()


async def _install_audit() -> None:
    """``npm ci`` (the lockfile's exact versions) unless node_modules already holds graphql-http."""
    if (AUDIT_DIR / "node_modules" / "graphql-http" / "package.json").exists():
        return
    npm = shutil.which("npm")
    assert npm is not None, "node is installed but npm is not: install npm to run the audit"
    command = "ci" if (AUDIT_DIR / "package-lock.json").exists() else "install"
    code, output = await _run(
        npm, command, "--prefix", str(AUDIT_DIR), "--no-audit", "--no-fund", timeout=300
    )
    assert code == 0, f"npm {command} failed:\n{output}"


async def test_graphql_over_http_audit_passes_every_must_should_and_may(live_server: str) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the graphql-http audit needs Node.js")
    await _install_audit()
    code, output = await _run(
        node, str(AUDIT_DIR / "graphql_http_audit.mjs"), f"{live_server}/graphql", timeout=300
    )
    print(output)
    summary = [line for line in output.splitlines() if line.startswith("summary:")]
    assert code == 0 and summary, output
    assert "0 failing" in summary[0], output


def test_accept_header_decides_the_media_type() -> None:
    assert not prefers_graphql_response_json(None)
    assert not prefers_graphql_response_json("*/*")
    assert not prefers_graphql_response_json("application/json")
    assert prefers_graphql_response_json(GRAPHQL_RESPONSE_JSON)
    assert prefers_graphql_response_json(f"{GRAPHQL_RESPONSE_JSON}, application/json;q=0.9")
    assert prefers_graphql_response_json(f"application/json, {GRAPHQL_RESPONSE_JSON}")
    assert not prefers_graphql_response_json(f"application/json, {GRAPHQL_RESPONSE_JSON};q=0.5")
    assert not prefers_graphql_response_json(f"{GRAPHQL_RESPONSE_JSON};q=0")


async def test_request_errors_are_400_without_data_only_for_the_new_media_type(live_server: str) -> None:
    async with httpx.AsyncClient(base_url=live_server) as client:
        for accept, status, media in [
            (GRAPHQL_RESPONSE_JSON, 400, GRAPHQL_RESPONSE_JSON),
            ("application/json", 200, "application/json"),
            (None, 200, "application/json"),
        ]:
            headers = {"accept": accept} if accept else {}
            for query in ["{", "{ noSuchField }"]:
                response = await client.post("/graphql", json={"query": query}, headers=headers)
                assert response.status_code == status, (accept, query, response.text)
                assert response.headers["content-type"].startswith(media)
                body = response.json()
                assert body["errors"]
                assert ("data" in body) is (status == 200)
            # a successful query: 200 in the negotiated type
            response = await client.get("/graphql", params={"query": "{ __typename }"}, headers=headers)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith(media)
            assert data_of(response) == {"data": {"__typename": "Query"}}


async def test_kabinet_refusals_keep_their_status_under_the_new_media_type(live_server: str) -> None:
    headers = {"accept": GRAPHQL_RESPONSE_JSON}
    async with httpx.AsyncClient(base_url=live_server) as client:
        bad_token = await client.post(
            "/graphql", json={"query": "{ __typename }"}, headers={**headers, "authorization": "Bearer nope"}
        )
        assert bad_token.status_code == 401
        assert bad_token.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        csrf = await client.post(
            "/graphql", content=b"query={__typename}", headers={**headers, "content-type": "text/plain"}
        )
        assert csrf.status_code == 400
        assert csrf.json()["errors"][0]["extensions"]["code"] == "CSRF_HEADER_REQUIRED"
        mutation = await client.get(
            "/graphql", params={"query": "mutation { logout { ok } }"}, headers=headers
        )
        assert mutation.status_code == 405
