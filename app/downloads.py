"""``GET /downloads/{token}``: serves files behind short-lived signed URLs (receipts, tariff documents).

The token (see :mod:`services.storage`) names the file and carries its expiry and an HMAC made with the
secret key; whoever holds a valid, unexpired URL may download, nobody can forge or extend one. Receipt
PDFs are generated on the first download and cached (D3).
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from app.state import AppState
from models.files import StoredFile
from services import clock, storage
from services.errors import DomainError


async def download(request: Request) -> Response:
    """Check the signed token and send the file's bytes (403 forged/expired, 404 gone)."""
    state: AppState = request.app.state.kabinet
    now = clock.now()
    try:
        target = storage.verify_download(state.settings.secret_key, request.path_params["token"], now=now)
    except storage.InvalidDownload:
        return PlainTextResponse("Ссылка недействительна или устарела", status_code=403)
    files = storage.local_storage(state.settings.data_dir)
    kind, _, rest = target.partition(":")
    if kind == "analytics":  # issue 17: a CSV export, streamed from the analytics database
        from resolvers.analytics import stream_export

        body = await stream_export(state, rest)
        if body is None:
            return PlainTextResponse("Ссылка недействительна или устарела", status_code=403)
        return StreamingResponse(
            body,
            media_type="text/csv; charset=utf-8",
            headers={
                "content-disposition": "attachment; filename=analytics.csv",
                "cache-control": "private, no-store",
            },
        )
    async with state.db.unit_of_work() as uow:  # a receipt's PDF is generated and stored on first use
        session = uow.session
        row: StoredFile | None
        if kind == "file":
            row = await session.get(StoredFile, int(rest))
        elif kind == "receipt":
            # imported here: fpdf, fontTools and Pillow are ~40 MB of every server process otherwise, and
            # a websocket-only process never renders a receipt (bench/README.md, issue 21 session 6)
            from services import receipts

            account_id, _, period = rest.partition(":")
            try:
                row = await receipts.receipt_pdf(
                    session, files, int(account_id), dt.date.fromisoformat(f"{period}-01"), now=now
                )
            except DomainError:
                row = None
        else:
            row = None
        if row is not None and not files.exists(row.storage_key) and row.storage_key.startswith("demo/"):
            from app.demo import demo_file_bytes  # demo rows name files nobody has written yet

            files.save(row.storage_key, demo_file_bytes(row.storage_key))
        if row is None or not files.exists(row.storage_key):
            return PlainTextResponse("Файл не найден", status_code=404)
        data = storage.read_checked(files, row)
        filename, content_type = row.original_filename, row.content_type
    return Response(
        data,
        media_type=content_type,
        headers={
            "content-disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            "cache-control": "private, no-store",
        },
    )
