"""Resource limits (issue 16): every request is bounded in the memory, CPU and connections it may take.

Each test is named after the review finding it pins down (``test_LIM_…``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import struct
import threading
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import psutil
import pytest
import websockets

from app import execution
from tests.client import Api, graphql_ws
from tests.test_uploads import CREATE_APPEAL, CSRF, appeal_input, multipart, pdf, stored_files

# --- helpers ---------------------------------------------------------------------------------------


def zip_bomb_docx(declared_mib: int = 1024) -> bytes:
    """A ~1 MB DOCX whose ``[Content_Types].xml`` names a Word document and then inflates to
    ``declared_mib`` MiB of zeros (deflate of zeros, ~1000:1; a full flush after every MiB makes the
    compressed blocks identical, so the bomb is built without compressing a gigabyte)."""
    marker = (
        b'<Types><Override PartName="/word/document.xml" ContentType="application/'
        b'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
    )
    zeros = bytes(1 << 20)
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = head.compress(marker) + head.flush(zlib.Z_FULL_FLUSH)
    block_maker = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = block_maker.compress(zeros) + block_maker.flush(zlib.Z_FULL_FLUSH)
    stream += block * declared_mib + zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    crc = zlib.crc32(marker)
    for _ in range(declared_mib):
        crc = zlib.crc32(zeros, crc)
    name = b"[Content_Types].xml"
    size = len(marker) + declared_mib * len(zeros)
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(stream), size, len(name), 0)
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(stream), size, len(name), 0, 0, 0,
        0, 0, 0,
    )  # fmt: skip
    body = local + name + stream
    directory = central + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(directory), len(body), 0)
    return body + directory + end


@contextmanager
def peak_rss_growth() -> Iterator[list[int]]:
    """Samples this process's RSS every few milliseconds while the block runs; yields a list that holds
    the peak growth in bytes afterwards (sampling, because a freed gigabyte leaves RSS again at once)."""
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            done.wait(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    growth: list[int] = []
    try:
        yield growth
    finally:
        done.set()
        sampler.join()
        growth.append(peak[0] - baseline)


def open_temporary_files() -> list[str]:
    """Deleted-but-open files of this process (spooled upload parts). ``psutil.Process().open_files()``
    skips deleted files, so the descriptors are read from /proc."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.endswith("(deleted)"):
            found.append(target)
    return found


class CountingBody:
    """An async (chunked: no Content-Length) request body that records how much of it was consumed."""

    def __init__(self, head: bytes, filler: int, tail: bytes, chunk: int = 64 * 1024) -> None:
        self.head, self.filler, self.tail, self.chunk = head, filler, tail, chunk
        self.consumed = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.consumed += len(self.head)
        yield self.head
        sent = 0
        while sent < self.filler:
            piece = b"0" * min(self.chunk, self.filler - sent)
            sent += len(piece)
            self.consumed += len(piece)
            yield piece
        self.consumed += len(self.tail)
        yield self.tail


def chunked_upload(variables: dict[str, Any], file_bytes: int) -> tuple[CountingBody, str]:
    """A GraphQL multipart body with one PDF of ``file_bytes`` bytes at ``input.attachments.0``."""
    boundary = "kabinetboundary"
    operations = json.dumps({"query": CREATE_APPEAL, "variables": variables})
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{operations}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n'
        f'{{"0": ["variables.input.attachments.0"]}}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="0"; filename="a.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n%PDF-1.4\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return CountingBody(head, file_bytes, tail), f"multipart/form-data; boundary={boundary}"


# --- 1. zip bombs ----------------------------------------------------------------------------------


async def test_LIM_zip_bomb_docx_is_refused_without_inflating_it(api: Api, customer_token: str) -> None:
    bomb = zip_bomb_docx(1024)  # ~1 MB declaring 1 GiB
    assert len(bomb) < 2 * 1024 * 1024
    variables = await appeal_input(api, customer_token, 1)
    with peak_rss_growth() as growth:
        response = await multipart(
            api,
            CREATE_APPEAL,
            variables,
            {"input.attachments.0": ("report.docx", bomb, "application/octet-stream")},
            token=customer_token,
        )
    result = response.json()["data"]["createAppeal"]
    assert [(e["code"], e["field"]) for e in result["userErrors"]] == [
        ("FILE_TYPE_NOT_ALLOWED", ["input", "attachments", "0"])
    ]
    assert result["appeal"] is None
    assert growth[0] < 200 * 1024 * 1024, f"RSS grew by {growth[0] // (1024 * 1024)} MB"


def test_LIM_zip_central_directory_limits() -> None:
    import io
    import zipfile

    from services.storage import sniff

    def docx(extra: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(
                "[Content_Types].xml",
                '<Types><Override ContentType="application/'
                'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
            )
            for name, data in extra.items():
                archive.writestr(name, data)
        return buffer.getvalue()

    assert sniff(docx({"word/document.xml": b"<w:document>" + b"text " * 1000 + b"</w:document>"})) == "docx"
    assert sniff(docx({f"word/media/{n}.xml": b"x" for n in range(1001)})) is None  # too many entries
    assert sniff(docx({"word/media/inner.zip": b"PK"})) is None  # an archive inside the archive
    assert sniff(docx({"word/document.xml": bytes(5 * 1024 * 1024)})) is None  # 5 MB of zeros: > 100:1


# --- 2. list arguments -----------------------------------------------------------------------------


async def test_LIM_nodes_with_more_than_100_ids_is_refused(api: Api, customer_token: str) -> None:
    ids = ["QWNjb3VudDox"] * 50_000  # ~800 KB: within the body limit
    body = await api.gql("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", token=customer_token, ids=ids)
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["LIST_TOO_LONG"]
    literal = ", ".join('"QWNjb3VudDox"' for _ in range(101))
    body = await api.gql(f"{{ nodes(ids: [{literal}]) {{ id }} }}", token=customer_token)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["LIST_TOO_LONG"]
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
    body = await api.gql(query, token=customer_token, ids=ids[:100])
    assert "errors" not in body and len(body["data"]["nodes"]) == 100


async def test_LIM_list_inside_a_mutation_input_is_capped(api: Api, customer_token: str) -> None:
    meters = [{"meterId": "TWV0ZXI6MQ==", "values": [{"zone": "DAY", "value": "1"}]}] * 101
    body = await api.gql(
        "mutation($input: SubmitReadingsInput!) { submitReadings(input: $input) { userErrors { code } } }",
        token=customer_token,
        input={"accountId": "QWNjb3VudDox", "meters": meters},
    )
    assert [e["extensions"]["code"] for e in body["errors"]] == ["LIST_TOO_LONG"]
    assert body["errors"][0]["extensions"]["maximum"] == 100


def test_LIM_every_list_argument_documents_its_maximum() -> None:
    from graphql import GraphQLInputObjectType, GraphQLObjectType, get_nullable_type, is_list_type

    from schema.schema import build_schema

    graphql_schema = build_schema()._schema
    undocumented = []
    for name, type_ in graphql_schema.type_map.items():
        places: list[tuple[str, Any]] = []
        if isinstance(type_, GraphQLInputObjectType):
            places = [(f"{name}.{field}", value) for field, value in type_.fields.items()]
        elif isinstance(type_, GraphQLObjectType) and not name.startswith("__"):
            places = [
                (f"{name}.{field}({arg})", value)
                for field, definition in type_.fields.items()
                for arg, value in definition.args.items()
            ]
        for where, value in places:
            if is_list_type(get_nullable_type(value.type)) and "At most" not in (value.description or ""):
                undocumented.append(where)
    assert undocumented == []


# --- 3. request bodies -----------------------------------------------------------------------------


async def test_LIM_json_body_over_1MB_is_refused_before_parsing(api: Api, settings: Any) -> None:
    big = json.dumps({"query": "{ __typename }", "variables": {"x": "a" * (2 * 1024 * 1024)}})
    response = await api.client.post("/graphql", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"

    consumed = 0

    async def chunked() -> AsyncIterator[bytes]:
        nonlocal consumed
        for index in range(0, len(big), 64 * 1024):
            consumed += 64 * 1024
            yield big[index : index + 64 * 1024].encode()

    json_type = {"content-type": "application/json"}
    response = await api.client.post("/graphql", content=chunked(), headers=json_type)
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"
    assert consumed <= settings.max_request_bytes + 128 * 1024  # stopped reading at the limit
    ok = await api.client.post("/graphql", json={"query": "{ __typename }"})
    assert ok.status_code == 200 and ok.json()["data"] == {"__typename": "Query"}


async def test_LIM_long_get_query_string_is_refused(api: Api, settings: Any) -> None:
    settings.max_request_bytes = 10_000
    response = await api.client.get("/graphql", params={"query": "{ __typename }", "x": "a" * 20_000})
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"


# --- 4. chunked uploads ----------------------------------------------------------------------------


async def test_LIM_chunked_upload_without_token_is_refused_before_its_body_is_read(
    api: Api, customer_token: str, settings: Any
) -> None:
    variables = await appeal_input(api, customer_token, 1)
    body, content_type = chunked_upload(variables, 3 * 1024 * 1024)
    response = await api.client.post("/graphql", content=body, headers={"content-type": content_type, **CSRF})
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert body.consumed <= 64 * 1024  # at most the first chunk the transport had in hand
    assert stored_files(settings) == []


async def test_LIM_chunked_upload_over_the_limit_is_cut_off_and_leaves_no_temporary_file(
    api: Api, customer_token: str, settings: Any
) -> None:
    settings.upload_max_total_bytes = 200_000  # + 1 MB for the form parts
    variables = await appeal_input(api, customer_token, 1)
    before = open_temporary_files()
    body, content_type = chunked_upload(variables, 4 * 1024 * 1024)
    response = await api.client.post(
        "/graphql",
        content=body,
        headers={"content-type": content_type, "authorization": f"Bearer {customer_token}", **CSRF},
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"
    assert body.consumed < 2 * 1024 * 1024
    assert open_temporary_files() == before
    assert stored_files(settings) == []


async def test_LIM_successful_upload_leaves_no_temporary_file_open(
    api: Api, customer_token: str, settings: Any
) -> None:
    variables = await appeal_input(api, customer_token, 1)
    before = open_temporary_files()
    response = await multipart(
        api,
        CREATE_APPEAL,
        variables,
        {"input.attachments.0": ("big.pdf", pdf(3 * 1024 * 1024), "application/pdf")},  # spooled to disk
        token=customer_token,
    )
    assert response.json()["data"]["createAppeal"]["userErrors"] == []
    assert open_temporary_files() == before


# --- 5. the fast executor's fallback ---------------------------------------------------------------


async def test_LIM_failing_query_runs_through_the_fast_path_at_most_once(
    api: Api, customer_token: str
) -> None:
    query = '{ a: accounts(first: 1) { totalCount } b: node(id: "bm90IGEgbm9kZQ") { id } }'
    first = await api.gql(query, token=customer_token)
    assert first.get("errors"), first
    fast, fallback, skipped = (execution.STATS[k] for k in ("fast", "fallback", "skipped"))
    for _ in range(5):
        again = await api.gql(query, token=customer_token)
        assert again["data"] == first["data"] and again["errors"] == first["errors"]  # the budget moves
    assert execution.STATS["fallback"] == fallback  # no second fast attempt
    assert execution.STATS["fast"] == fast
    assert execution.STATS["skipped"] == skipped + 5


# --- 6. websockets ---------------------------------------------------------------------------------


async def test_LIM_websockets_per_address_are_capped_with_4429(live_server: str, settings: Any) -> None:
    settings.max_sockets_per_address = 3
    url = live_server.replace("http://", "ws://") + "/graphql"
    async with graphql_ws(live_server), graphql_ws(live_server), graphql_ws(live_server):
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as socket:  # type: ignore[list-item]
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
    async with graphql_ws(live_server):  # the others are closed: room again
        pass


async def test_LIM_websocket_message_over_the_request_limit_closes_the_socket(
    live_server: str, customer_token: str, settings: Any
) -> None:
    async with graphql_ws(live_server, init={"token": customer_token}) as ws:
        query = "subscription { serverTime(count: 1) }" + " " * (2 * settings.max_request_bytes)
        await ws.socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await ws.receive()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    async with graphql_ws(live_server, init={"token": customer_token}) as ws:  # the server is fine
        op = await ws.subscribe("subscription { serverTime(count: 1) }")
        assert [event async for event in ws.events(op)]


START_QR = "mutation { startQrLogin { qrLogin { webSecret } } }"
QR_SUB = "subscription($s: String!) { qrLogin(webSecret: $s) { status } }"


async def test_LIM_anonymous_socket_may_run_two_operations(api: Api, live_server: str) -> None:
    secrets = [(await api.data(START_QR))["startQrLogin"]["qrLogin"]["webSecret"] for _ in range(3)]
    async with graphql_ws(live_server) as ws:
        for secret in secrets[:2]:
            op = await ws.subscribe(QR_SUB, {"s": secret})
            async for event in ws.events(op):
                assert event["data"]["qrLogin"]["status"] == "PENDING"
                break
        await ws.subscribe(QR_SUB, {"s": secrets[2]})
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await ws.receive()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429


async def test_LIM_server_time_is_bounded_for_anonymous_sockets(live_server: str) -> None:
    async with graphql_ws(live_server) as ws:
        op = await ws.subscribe("subscription { serverTime(count: 5, intervalSeconds: 0.01) }")
        message = await ws.receive()
        assert message["id"] == op
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["UNAUTHENTICATED"]


# --- 7. error amplification ------------------------------------------------------------------------


async def test_LIM_unknown_directives_produce_at_most_ten_errors(api: Api) -> None:
    directives = " ".join(f"@d{n}" for n in range(50))
    body = await api.gql(f"{{ __typename {directives} }}")
    assert len(body["errors"]) == 11
    assert body["errors"][-1]["extensions"]["code"] == "TOO_MANY_ERRORS"
    assert body["errors"][-1]["message"].startswith("Too many validation errors")  # validation stopped


async def test_LIM_execution_errors_are_capped_too(api: Api, customer_token: str) -> None:
    fields = " ".join(f'n{n}: node(id: "bm90IGEgbm9kZQ{n}") {{ id }}' for n in range(25))
    body = await api.gql(f"{{ {fields} }}", token=customer_token)
    assert len(body["errors"]) == 11
    assert body["errors"][-1]["extensions"]["code"] == "TOO_MANY_ERRORS"


async def test_issue21_a_subscription_is_still_refused_at_subscribe_time_by_every_limit(
    live_server: str, customer_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Running subscriptions leave Strawberry's operation hooks once their stream starts
    (``app.ws_subscriptions``): the limits those hooks set up still refuse a subscription before it runs,
    as an ``error`` message or a 4400 close, and a valid one still streams and completes."""
    async with graphql_ws(live_server, init={"token": customer_token}) as ws:
        # aliases (MaxAliasesLimiter, a validation rule added in on_operation): an ``error`` message
        aliases = " ".join(f"c{n}: cursor" for n in range(31))
        op = await ws.subscribe(f"subscription {{ notifications {{ {aliases} }} }}")
        message = await ws.receive()
        assert message["id"] == op and message["type"] == "error", message
        assert [error["message"] for error in message["payload"]] == ["31 aliases found. Allowed: 30"]
        # an unknown field (validation): an ``error`` message, the socket stays open
        op = await ws.subscribe("subscription { notifications { nope } }")
        message = await ws.receive()
        assert message["id"] == op and message["type"] == "error", message
        # a query over the socket: one ``next`` (with its cost, as over HTTP), then ``complete``
        op = await ws.subscribe("query { __typename }")
        events = [event async for event in ws.events(op)]
        assert [(event["data"], event["extensions"]["cost"]["actualQueryCost"]) for event in events] == [
            ({"__typename": "Query"}, 0)
        ]
        # a valid subscription streams its events, then completes
        op = await ws.subscribe("subscription { serverTime(count: 2, intervalSeconds: 0.01) }")
        events = [event async for event in ws.events(op)]
        assert len(events) == 2 and all(set(event) == {"data"} for event in events)
    # tokens (a parse option RequestRules sets in on_operation): refused before anything runs, as every
    # document that does not parse is over graphql-transport-ws (Strawberry's handler: close 4400 with the
    # parser's message), and nothing logged at ERROR. The parse happens in RequestRules' on_parse hook,
    # outside Strawberry's parse-error handling: the operation used to end with ``complete`` alone and a
    # traceback at ERROR.
    caplog.set_level(logging.ERROR)
    reasons = []
    for document in (
        f"subscription {{ notifications {{ {' '.join(['cursor'] * 4001)} }} }}",
        "subscription {",
    ):
        async with graphql_ws(live_server, init={"token": customer_token}) as ws:
            await ws.subscribe(document)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.receive()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
        reasons.append(closed.value.rcvd.reason)
    assert reasons == [
        "Syntax Error: Document contains more than 4000 tokens. Parsing aborted.",
        "Syntax Error: Expected Name, found <EOF>.",
    ]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR], caplog.text


async def test_issue21_every_operation_rule_is_one_extension(
    api: Api, customer_token: str, settings: Any
) -> None:
    """The per-operation rules — depth and alias limits, the token limit, the parse and validation caches,
    at most ten validation errors, ``LIST_TOO_LONG``, error masking — are one extension
    (``schema.extensions.RequestRules``): Strawberry instantiates and wraps every extension's hooks on
    every request, and six of them cost a small query a few per cent of its CPU. Each rule still holds,
    and a document is parsed once for all the requests that send it."""
    from schema.extensions import _PARSE
    from schema.schema import build_schema

    assert len(build_schema(settings).extensions) == 1
    aliases = " ".join(f"a{n}: __typename" for n in range(settings.max_query_aliases + 1))
    assert "aliases" in (await api.gql(f"{{ {aliases} }}"))["errors"][0]["message"]
    deep = "{ me { " + "accounts(first: 1) { edges { node { " * 5 + "id" + " } } }" * 5 + " } }"
    assert "depth" in (await api.gql(deep, token=customer_token))["errors"][0]["message"]
    tokens = "{ " + "__typename " * settings.max_query_tokens + "}"
    assert f"more than {settings.max_query_tokens} tokens" in (await api.gql(tokens))["errors"][0]["message"]
    literal = ", ".join('"QWNjb3VudDox"' for _ in range(101))
    listed = await api.gql(f"{{ nodes(ids: [{literal}]) {{ id }} }}", token=customer_token)
    assert [e["extensions"]["code"] for e in listed["errors"]] == ["LIST_TOO_LONG"]
    unknown = await api.gql("{ " + " ".join(f"f{n}" for n in range(20)) + " }")
    assert len(unknown["errors"]) == 11 and unknown["errors"][-1]["extensions"]["code"] == "TOO_MANY_ERRORS"
    before = _PARSE.cache_info()
    for _ in range(3):
        assert (await api.gql("{ __typename }"))["data"] == {"__typename": "Query"}
    after = _PARSE.cache_info()
    assert after.hits - before.hits >= 2 and after.misses - before.misses <= 1
