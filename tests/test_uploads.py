"""Uploads through the GraphQL multipart request spec: CSRF guard, size limits counted while streaming,
content sniffing against the allowlist, storage with SHA-256, signed downloads (F2, G2)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from models.appeals import Appeal, Document
from models.files import StoredFile
from tests.client import Api

CSRF = {"x-kabinet-csrf": "1"}

CREATE_APPEAL = """
mutation($input: CreateAppealInput!) { createAppeal(input: $input) {
  message
  appeal { id status attachments { filename contentType size sha256 direction download { url } } }
  userErrors { code message field }
} }"""

UPLOAD_DOCUMENT = """
mutation($input: UploadDocumentInput!) { uploadDocument(input: $input) {
  document { id type title uploadedByCustomer file { filename contentType size } }
  userErrors { code message field }
} }"""

DRAFT = """{ appealDraft { account { id } supplier { id } fullName phone email } }"""


def pdf(size: int = 2000) -> bytes:
    """A PDF-looking file of exactly ``size`` bytes."""
    head = b"%PDF-1.4\n% test\n"
    return head + b"0" * (size - len(head))


def docx() -> bytes:
    """A minimal DOCX (a ZIP whose [Content_Types].xml names a WordprocessingML document)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<Types><Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


async def multipart(
    api: Api,
    query: str,
    variables: dict[str, Any],
    files: dict[str, tuple[str, bytes, str]],
    *,
    token: str,
    headers: dict[str, str] | None = None,
) -> Any:
    """POST per the GraphQL multipart request spec: ``files`` maps a variable path
    (``input.attachments.0``) to (filename, bytes, declared content type)."""
    mapping = {str(n): [f"variables.{path}"] for n, path in enumerate(files)}
    parts = {str(n): spec for n, spec in enumerate(files.values())}
    return await api.client.post(
        "/graphql",
        data={"operations": json.dumps({"query": query, "variables": variables}), "map": json.dumps(mapping)},
        files=parts,
        headers={"authorization": f"Bearer {token}", **(CSRF if headers is None else headers)},
    )


async def appeal_input(api: Api, token: str, count: int) -> dict[str, Any]:
    draft = (await api.data(DRAFT, token=token))["appealDraft"]
    return {
        "input": {
            "accountId": draft["account"]["id"],
            "supplierId": draft["supplier"]["id"],
            "topic": "CHARGES",
            "text": "Прошу проверить начисления.",
            "fullName": draft["fullName"],
            "phone": draft["phone"],
            "email": draft["email"],
            "attachments": [None] * count,
        }
    }


async def count(db: Any, model: Any) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


def stored_files(settings: Any) -> list[Path]:
    root = Path(settings.data_dir) / "files"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_F2_multipart_without_csrf_header_is_refused(api: Api, customer_token: str) -> None:
    variables = await appeal_input(api, customer_token, 1)
    response = await multipart(
        api,
        CREATE_APPEAL,
        variables,
        {"input.attachments.0": ("a.pdf", pdf(), "application/pdf")},
        token=customer_token,
        headers={},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "CSRF_HEADER_REQUIRED"


async def test_F2_form_and_text_posts_without_csrf_header_are_refused(api: Api) -> None:
    for content_type, body in (
        ("application/x-www-form-urlencoded", "query=%7B__typename%7D"),
        ("text/plain", '{"query": "{ __typename }"}'),
    ):
        response = await api.client.post("/graphql", content=body, headers={"content-type": content_type})
        assert response.status_code == 400, content_type


async def test_F2_appeal_with_files_stores_them_with_hash_and_signed_download(
    api: Api, customer_token: str, db: Any, settings: Any
) -> None:
    variables = await appeal_input(api, customer_token, 2)
    first, second = pdf(5000), docx()
    response = await multipart(
        api,
        CREATE_APPEAL,
        variables,
        {
            "input.attachments.0": ("../../etc/Скан счета.pdf", first, "application/pdf"),
            "input.attachments.1": ("заявление.docx", second, "application/octet-stream"),
        },
        token=customer_token,
    )
    result = response.json()["data"]["createAppeal"]
    assert result["userErrors"] == []
    assert result["message"] == "Ваше обращение принято в работу"
    files = result["appeal"]["attachments"]
    assert [(f["filename"], f["contentType"], f["size"], f["direction"]) for f in files] == [
        ("Скан счета.pdf", "application/pdf", 5000, "FROM_CUSTOMER"),
        (
            "заявление.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            len(second),
            "FROM_CUSTOMER",
        ),
    ]
    assert files[0]["sha256"] == hashlib.sha256(first).hexdigest()
    # server-generated keys: nothing of the client's name reaches the disk
    async with db.session() as session:
        keys = list(
            (await session.execute(select(StoredFile.storage_key).order_by(StoredFile.id.desc()))).scalars()
        )
    assert all("Скан" not in key and ".." not in key for key in keys[:2])
    # the signed URL downloads the same bytes with a safe Content-Disposition
    url = files[0]["download"]["url"]
    download = await api.client.get(url[url.index("/downloads/") :])
    assert download.status_code == 200
    assert download.content == first
    assert download.headers["content-disposition"].startswith("attachment; filename*=UTF-8''")
    assert "/" not in download.headers["content-disposition"].split("''", 1)[1]


async def test_F2_file_of_7MB_plus_one_byte_is_refused(
    api: Api, customer_token: str, db: Any, settings: Any
) -> None:
    before = await count(db, Appeal)
    variables = await appeal_input(api, customer_token, 1)
    response = await multipart(
        api,
        CREATE_APPEAL,
        variables,
        {"input.attachments.0": ("big.pdf", pdf(7 * 1024 * 1024 + 1), "application/pdf")},
        token=customer_token,
    )
    result = response.json()["data"]["createAppeal"]
    assert result["appeal"] is None
    assert result["userErrors"] == [
        {
            "code": "FILE_TOO_LARGE",
            "message": "Максимальный размер одного файла не должен превышать 7Мб.",
            "field": ["input", "attachments", "0"],
        }
    ]
    assert await count(db, Appeal) == before
    assert stored_files(settings) == []


async def test_F2_file_of_exactly_7MB_is_accepted(api: Api, customer_token: str) -> None:
    variables = await appeal_input(api, customer_token, 1)
    response = await multipart(
        api,
        CREATE_APPEAL,
        variables,
        {"input.attachments.0": ("ok.pdf", pdf(7 * 1024 * 1024), "application/pdf")},
        token=customer_token,
    )
    result = response.json()["data"]["createAppeal"]
    assert result["userErrors"] == []
    assert result["appeal"]["attachments"][0]["size"] == 7 * 1024 * 1024


async def test_F2_too_much_in_total_is_refused_and_nothing_kept(
    api: Api, customer_token: str, db: Any, settings: Any
) -> None:
    settings.upload_max_file_bytes = 1_000_000
    settings.upload_max_total_bytes = 2_500_000
    before = await count(db, Appeal)
    files_before = await count(db, StoredFile)
    variables = await appeal_input(api, customer_token, 3)
    response = await multipart(
        api,
        CREATE_APPEAL,
        variables,
        {f"input.attachments.{n}": (f"part{n}.pdf", pdf(900_000), "application/pdf") for n in range(3)},
        token=customer_token,
    )
    result = response.json()["data"]["createAppeal"]
    assert result["userErrors"] == [
        {
            "code": "FILES_TOO_LARGE",
            "message": "Общий объем вложенных файлов не должен превышать 100Мб.",
            "field": ["input", "attachments"],
        }
    ]
    assert await count(db, Appeal) == before
    assert await count(db, StoredFile) == files_before
    assert stored_files(settings) == []  # the two files read before the limit was hit were deleted


async def test_F2_disallowed_type_disguised_by_its_extension_is_refused(
    api: Api, customer_token: str, db: Any
) -> None:
    plain_zip = io.BytesIO()
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("payload.exe", b"MZ")
    disguised = {
        "virus.pdf": b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 500,  # a Windows executable
        "archive.docx": plain_zip.getvalue(),  # a ZIP that is no Word document
        "photo.jpg": b"<html><script>alert(1)</script></html>",  # text posing as an image
        "page.txt": b"\x7fELF\x02\x01\x01" + b"\x00" * 100,  # binary posing as text
    }
    before = await count(db, Appeal)
    for name, content in disguised.items():
        variables = await appeal_input(api, customer_token, 1)
        response = await multipart(
            api,
            CREATE_APPEAL,
            variables,
            {"input.attachments.0": (name, content, "application/pdf")},
            token=customer_token,
        )
        errors = response.json()["data"]["createAppeal"]["userErrors"]
        assert [(e["code"], e["field"]) for e in errors] == [
            ("FILE_TYPE_NOT_ALLOWED", ["input", "attachments", "0"])
        ], name
    assert await count(db, Appeal) == before


async def test_F2_allowlisted_types_are_recognised_by_content(api: Api, customer_token: str) -> None:
    samples = {
        "a.png": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "image/png"),
        "b.jpeg": (b"\xff\xd8\xff\xe0" + b"\x00" * 50, "image/jpeg"),
        "c.heic": (b"\x00\x00\x00\x18ftypheic" + b"\x00" * 50, "image/heic"),
        "d.doc": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 50, "application/msword"),
        "e.xls": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 50, "application/vnd.ms-excel"),
        "f.txt": ("Показания: 12345\n".encode(), "text/plain; charset=utf-8"),
    }
    variables = await appeal_input(api, customer_token, len(samples))
    response = await multipart(
        api,
        CREATE_APPEAL,
        variables,
        {
            f"input.attachments.{n}": (name, data, "application/octet-stream")
            for n, (name, (data, _)) in enumerate(samples.items())
        },
        token=customer_token,
    )
    result = response.json()["data"]["createAppeal"]
    assert result["userErrors"] == []
    assert [f["contentType"] for f in result["appeal"]["attachments"]] == [t for _, t in samples.values()]


async def test_G2_upload_a_document_with_its_type(api: Api, customer_token: str, db: Any) -> None:
    draft = (await api.data(DRAFT, token=customer_token))["appealDraft"]
    before = await count(db, Document)
    response = await multipart(
        api,
        UPLOAD_DOCUMENT,
        {"input": {"accountId": draft["account"]["id"], "type": "OWNERSHIP_DOCUMENT", "file": None}},
        {"input.file": ("egrn.pdf", pdf(3000), "application/pdf")},
        token=customer_token,
    )
    result = response.json()["data"]["uploadDocument"]
    assert result["userErrors"] == []
    assert result["document"]["type"] == "OWNERSHIP_DOCUMENT"
    assert result["document"]["title"] == "Документ о праве собственности"
    assert result["document"]["uploadedByCustomer"] is True
    assert result["document"]["file"] == {
        "filename": "egrn.pdf",
        "contentType": "application/pdf",
        "size": 3000,
    }
    assert await count(db, Document) == before + 1


async def test_G2_document_type_and_file_are_required(api: Api, customer_token: str) -> None:
    draft = (await api.data(DRAFT, token=customer_token))["appealDraft"]
    result = await api.data(
        UPLOAD_DOCUMENT, token=customer_token, input={"accountId": draft["account"]["id"]}
    )
    assert [(e["code"], e["message"], e["field"]) for e in result["uploadDocument"]["userErrors"]] == [
        ("REQUIRED", "Поле обязательно для заполнения", ["input", "type"]),
        ("REQUIRED", "Поле обязательно для заполнения", ["input", "file"]),
    ]


async def test_F2_request_far_over_the_total_limit_is_refused_before_it_is_parsed(
    api: Api, customer_token: str, settings: Any
) -> None:
    settings.upload_max_total_bytes = 500_000  # + 1 MB for the form parts
    variables = await appeal_input(api, customer_token, 1)
    response = await multipart(
        api,
        CREATE_APPEAL,
        variables,
        {"input.attachments.0": ("big.pdf", pdf(1_600_000), "application/pdf")},
        token=customer_token,
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"
    assert stored_files(settings) == []


SUBMIT_APPLICATION = """
mutation($input: SubmitApplicationInput!) { submitApplication(input: $input) {
  message application { kind attachments { filename contentType size } } userErrors { code field }
} }"""


async def test_G3_application_with_attachments_and_limits(
    api: Api, customer_token: str, settings: Any
) -> None:
    draft = (await api.data(DRAFT, token=customer_token))["appealDraft"]
    variables = {
        "input": {
            "kind": "RECALCULATION_TEMPORARY_ABSENCE",
            "accountId": draft["account"]["id"],
            "text": "Прошу сделать перерасчет, справка о временном отсутствии во вложении.",
            "fields": {"absenceFrom": "2026-08-01", "absenceTo": "2026-08-31"},
            "consent": True,
            "attachments": [None, None],
        }
    }
    refused = await multipart(
        api,
        SUBMIT_APPLICATION,
        variables,
        {
            "input.attachments.0": ("spravka.pdf", pdf(1000), "application/pdf"),
            "input.attachments.1": ("spravka2.pdf", b"GIF89a" + b"\x00" * 100, "application/pdf"),
        },
        token=customer_token,
    )
    assert refused.json()["data"]["submitApplication"]["userErrors"] == [
        {"code": "FILE_TYPE_NOT_ALLOWED", "field": ["input", "attachments", "1"]}
    ]
    assert stored_files(settings) == []
    accepted = await multipart(
        api,
        SUBMIT_APPLICATION,
        variables,
        {
            "input.attachments.0": ("spravka.pdf", pdf(1000), "application/pdf"),
            "input.attachments.1": ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "image/png"),
        },
        token=customer_token,
    )
    result = accepted.json()["data"]["submitApplication"]
    assert result["userErrors"] == []
    assert result["message"] == "Ваше обращение принято в работу"
    assert result["application"]["attachments"] == [
        {"filename": "spravka.pdf", "contentType": "application/pdf", "size": 1000},
        {"filename": "photo.png", "contentType": "image/png", "size": 108},
    ]
    assert len(stored_files(settings)) == 2
