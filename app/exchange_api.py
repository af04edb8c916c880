"""The billing system's integration endpoint (issue 18): ``POST /exchange/import``, ``GET /exchange/changes``.

Only the billing service account may call it: its key goes in ``Authorization: Bearer <key>`` and the server
keeps only the key's SHA-256 (``KABINET_EXCHANGE_KEY_SHA256``; ``kabinet exchange-key`` makes a pair; during a
rotation it holds the old and the new key's hashes, separated by a comma). The
key opens these two routes and nothing else (role BILLING: no GraphQL, no customer data beyond the
exchange), and customer or staff tokens never open them. Unset setting: the routes answer 404.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import zipfile

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from app.state import AppState
from services import clock, storage
from services.exchange import feed
from services.exchange.importer import ImportRefused, import_batch

log = logging.getLogger("kabinet.exchange")

BILLING_ROLE = "BILLING"
"""The role of the billing service account; it exists only for these routes."""
MAX_MEMBERS = 1000
MAX_KEYS = 2
"""Keys valid at once: the current one, and the one being retired during a rotation."""
EXAMPLE_KEY = "kbx_example_do_not_use_0000000000000000000000"
"""The key the documentation's examples use; production refuses its hash (app/config_check.py)."""


def key_sha256(key: str) -> str:
    """The hex SHA-256 the server stores for a key (keys are 32+ random bytes: no slow hash needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _authenticate(request: Request, state: AppState) -> Response | None:
    """None when the caller holds the billing key; else the refusal to send."""
    expected = state.settings.exchange_key_sha256
    if not expected:
        return PlainTextResponse("Not Found", status_code=404)
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential:
        return _error(
            401, "EXCHANGE_KEY_REQUIRED", "Authorization: Bearer <billing exchange key> is required"
        )
    presented = key_sha256(credential.strip())
    known_keys = key_hashes(expected)[:MAX_KEYS]
    matches = [hmac.compare_digest(presented, known) for known in known_keys]  # each compared
    if not any(matches):
        log.warning("exchange call with a wrong key refused")
        return _error(403, "EXCHANGE_KEY_INVALID", "This key does not open the billing exchange")
    # which of the keys (its hash's first 8 hex digits, not the key): shows when an old key fell out of use
    log.info("exchange call with key %s", presented[:8])
    return None


def key_hashes(setting: str) -> list[str]:
    """The key hashes of ``KABINET_EXCHANGE_KEY_SHA256``: one, or several separated by commas while keys
    are rotated (add the new key's hash, move billing to the new key, then remove the old hash)."""
    return [part.strip().lower() for part in setting.split(",") if part.strip()]


async def _body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is larger than ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _unzip(data: bytes, limit: int) -> dict[str, bytes] | str:
    """The members of a ZIP set, or why it is refused (too many, too large, unsafe names)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return "the body is not a ZIP archive"
    members = [info for info in archive.infolist() if not info.is_dir()]
    if len(members) > MAX_MEMBERS or sum(info.file_size for info in members) > limit:
        return f"the archive holds more than {MAX_MEMBERS} files or more than {limit} bytes"
    files: dict[str, bytes] = {}
    for info in members:
        name = info.filename
        if name.startswith("/") or ".." in name.split("/"):
            return f"unsafe member name {name[:100]!r}"
        with archive.open(info) as member:
            content = member.read(info.file_size + 1)
        if len(content) > info.file_size:
            return f"member {name[:100]!r} is larger than it declares"
        files[name] = content
    return files


async def import_files(request: Request) -> Response:
    """``POST /exchange/import``: a ZIP of an exchange set (``application/zip``) or one CSV file
    (``text/csv``); 200 with what changed, 422 with ``file:line: reason`` and nothing applied."""
    state: AppState = request.app.state.kabinet
    if (refused := _authenticate(request, state)) is not None:
        return refused
    limit = state.settings.exchange_max_bytes
    data = await _body(request, limit)
    if data is None:
        return _error(413, "EXCHANGE_TOO_LARGE", f"the batch is larger than {limit} bytes")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/zip":
        files = _unzip(data, limit)
        if isinstance(files, str):
            return _error(400, "EXCHANGE_BAD_ARCHIVE", files)
    elif kind == "text/csv":
        name = storage.safe_filename(request.query_params.get("name"), "csv")
        files = {name if name.lower().endswith(".csv") else f"{name}.csv": data}
    else:
        return _error(415, "EXCHANGE_BAD_TYPE", "send application/zip (a set) or text/csv (one file)")
    async with state.db.session() as session:
        try:
            report = await import_batch(
                session, files, storage=storage.local_storage(state.settings.data_dir), now=clock.now()
            )
        except ImportRefused as refused_batch:
            await session.rollback()
            problems = refused_batch.problems
            return JSONResponse(
                {
                    "error": {"code": "EXCHANGE_REFUSED", "message": "Nothing of the batch was applied"},
                    "errors": problems.messages,
                    "errorCount": problems.count,
                },
                status_code=422,
            )
        await session.commit()
    return JSONResponse(report.as_dict())


async def changes(request: Request) -> Response:
    """``GET /exchange/changes?after=CURSOR&limit=N``: the change feed page as JSON Lines; the next cursor
    is in the first line and in the ``X-Exchange-Next-Cursor`` header."""
    state: AppState = request.app.state.kabinet
    if (refused := _authenticate(request, state)) is not None:
        return refused
    limit_text = request.query_params.get("limit", str(feed.MAX_PAGE))
    if not limit_text.isdigit():
        return _error(400, "EXCHANGE_BAD_LIMIT", "limit must be a positive integer")
    try:
        async with state.db.unit_of_work() as uow:  # reading after N acknowledges up to N
            page = await feed.changes(
                uow.session, request.query_params.get("after", feed.START), limit=int(limit_text[:6])
            )
    except feed.CursorExpired as error:
        return _error(410, "EXCHANGE_CURSOR_EXPIRED", str(error))
    except feed.BadCursor as error:
        return _error(400, "EXCHANGE_BAD_CURSOR", str(error))
    return Response(
        page.jsonl(),
        media_type="application/x-ndjson",
        headers={"x-exchange-next-cursor": page.next, "cache-control": "no-store"},
    )


def routes() -> list[Route]:
    """The integration routes, mounted by ``app.main``."""
    return [
        Route("/exchange/import", import_files, methods=["POST"]),
        Route("/exchange/changes", changes, methods=["GET"]),
    ]
