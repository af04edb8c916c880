"""File storage behind an interface (local disk by default) and short-lived signed download URLs.

Files are never exposed through permanent links: the API hands out a URL that carries what to download
(``file:<id>`` or ``receipt:<account id>:<YYYY-MM>``), an expiry time and an HMAC-SHA256 of both made with
``settings.secret_key``. ``app.downloads`` checks the signature and the expiry and serves the bytes, so a
URL works for anybody holding it, but only for :data:`DOWNLOAD_TTL`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import hmac
import io
import os
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from models.files import StoredFile
from services import clock
from services.unit_of_work import touch

DOWNLOAD_TTL = dt.timedelta(minutes=10)
"""How long a signed download URL stays valid."""

DOWNLOAD_PATH = "/downloads/"


class Storage(Protocol):
    """Where file bytes live; keys are relative paths such as ``receipts/2026/10/<uuid>.pdf``."""

    def save(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (replacing what was there)."""

    def read(self, key: str) -> bytes:
        """The bytes under ``key``; :class:`FileNotFoundError` when missing."""

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds a file."""

    def delete(self, key: str) -> None:
        """Remove the file under ``key`` (nothing when missing)."""


class LocalStorage:
    """Files under a directory of the local disk (``KABINET_DATA_DIR/files``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"storage key escapes the storage root: {key!r}")
        return path

    def save(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        temporary.write_bytes(data)
        os.replace(temporary, path)  # atomic: a reader never sees half a file

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def local_storage(data_dir: Path) -> LocalStorage:
    """The default storage of a process whose data directory is ``data_dir``."""
    return LocalStorage(Path(data_dir) / "files")


async def store_file(
    session: AsyncSession,
    storage: Storage,
    data: bytes,
    *,
    key: str,
    filename: str,
    content_type: str,
    owner_user_id: int | None = None,
) -> StoredFile:
    """Write ``data`` to ``storage`` and add its metadata row (flushed, not committed)."""
    touch(session, private=StoredFile)  # shown only through the row that refers to it (declared there)
    storage.save(key, data)
    row = StoredFile(
        storage_key=key,
        original_filename=filename,
        content_type=content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        owner_user_id=owner_user_id,
    )
    session.add(row)
    await session.flush()
    return row


def read_checked(storage: Storage, row: StoredFile) -> bytes:
    """The bytes of ``row``, verified against its recorded SHA-256 (corruption is a bug, not a 404)."""
    data = storage.read(row.storage_key)
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise ValueError(f"stored file {row.id} does not match its checksum")
    return data


@dataclass(frozen=True, slots=True)
class SignedUrl:
    """A download URL and the instant it stops working."""

    url: str
    expires_at: dt.datetime


class InvalidDownload(Exception):
    """The download token is malformed, forged or expired."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret_key: str, payload: str) -> str:
    return _b64(hmac.new(secret_key.encode(), payload.encode(), hashlib.sha256).digest())


def sign_download(
    secret_key: str, target: str, *, now: dt.datetime, base_url: str = "", ttl: dt.timedelta = DOWNLOAD_TTL
) -> SignedUrl:
    """A URL that downloads ``target`` until ``now + ttl``."""
    expires_at = (now + ttl).replace(microsecond=0)
    payload = _b64(f"{target}|{int(expires_at.timestamp())}".encode())
    return SignedUrl(
        url=f"{base_url.rstrip('/')}{DOWNLOAD_PATH}{payload}.{_signature(secret_key, payload)}",
        expires_at=expires_at,
    )


def verify_download(secret_key: str, token: str, *, now: dt.datetime) -> str:
    """The target of a download token; :class:`InvalidDownload` when forged, malformed or expired."""
    payload, _, signature = token.partition(".")
    if not payload or not hmac.compare_digest(signature, _signature(secret_key, payload)):
        raise InvalidDownload("bad signature")
    try:
        target, _, expires = _unb64(payload).decode().rpartition("|")
        expires_at = dt.datetime.fromtimestamp(int(expires), dt.UTC)
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise InvalidDownload("malformed token") from error
    if now >= expires_at:
        raise InvalidDownload("expired")
    return target


def file_target(file_id: int) -> str:
    """The download target of a stored file."""
    return f"file:{file_id}"


def receipt_target(account_id: int, period: dt.date) -> str:
    """The download target of an account's receipt for a period (generated on first download)."""
    return f"receipt:{account_id}:{period:%Y-%m}"


# ---------------------------------------------------------------- uploads (F2, G2, G3, operator answers)

MAX_FILE_BYTES = 7 * 1024 * 1024
"""Largest single uploaded file (the manual: «не должен превышать 7Мб»)."""

MAX_TOTAL_BYTES = 100 * 1024 * 1024
"""Largest total of the files of one appeal, application or document («не должен превышать 100Мб»)."""

CHUNK_BYTES = 64 * 1024

ALLOWED_TYPES: dict[str, str] = {
    "pdf": "application/pdf",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "heic": "image/heic",
    "doc": "application/msword",
    "xls": "application/vnd.ms-excel",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "odt": "application/vnd.oasis.opendocument.text",
    "txt": "text/plain; charset=utf-8",
}
"""The allowlist: kind detected from the content → the content type stored and served."""

_HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


ZIP_MAX_ENTRIES = 1000
"""Most entries an accepted ZIP container (DOCX, XLSX, ODT) may list in its central directory."""

ZIP_MAX_UNCOMPRESSED_BYTES = 50 * 1024 * 1024
"""Most bytes the entries of an accepted ZIP container may declare together, uncompressed."""

ZIP_MAX_RATIO = 100
"""Highest compression ratio of one entry (uncompressed : compressed); real documents stay far below,
zip bombs (zeros deflated ~1000:1) far above."""

ZIP_MAX_MARKER_BYTES = 256 * 1024
"""Most bytes read of ``[Content_Types].xml`` / ``mimetype`` to recognise the document type."""

_NESTED_ZIP_SUFFIXES = (".zip", ".jar", ".docx", ".xlsx", ".odt", ".7z", ".rar", ".gz")


def _zip_is_bomb(archive: zipfile.ZipFile) -> bool:
    """Whether the central directory describes an archive we refuse to open: too many entries, too many
    declared bytes, an entry compressed beyond :data:`ZIP_MAX_RATIO`, or an archive inside the archive.

    Only the central directory is consulted (what ``ZipFile`` already parsed); nothing is decompressed.
    """
    entries = archive.infolist()
    if len(entries) > ZIP_MAX_ENTRIES:
        return True
    declared = 0
    for entry in entries:
        declared += entry.file_size
        if declared > ZIP_MAX_UNCOMPRESSED_BYTES:
            return True
        if entry.file_size > ZIP_MAX_RATIO * max(entry.compress_size, 1) and entry.file_size > 1024 * 1024:
            return True
        if entry.filename.lower().endswith(_NESTED_ZIP_SUFFIXES):
            return True
    return False


def _read_marker(archive: zipfile.ZipFile, name: str) -> bytes | None:
    """At most :data:`ZIP_MAX_MARKER_BYTES` of entry ``name``; None when it is larger (no real one is)."""
    with archive.open(name) as entry:
        data = entry.read(ZIP_MAX_MARKER_BYTES + 1)
    return None if len(data) > ZIP_MAX_MARKER_BYTES else data


def _zip_kind(data: bytes) -> str | None:
    """DOCX / XLSX by ``[Content_Types].xml``, ODT by its ``mimetype`` entry; other ZIPs are refused, and so
    are zip bombs (see :func:`_zip_is_bomb`): the entries are never decompressed beyond what the marker
    needs, so a 1 MB upload declaring gigabytes costs a look at its central directory."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if _zip_is_bomb(archive):
                return None
            names = set(archive.namelist())
            if "mimetype" in names:
                mimetype = (_read_marker(archive, "mimetype") or b"").strip()
                return "odt" if mimetype == b"application/vnd.oasis.opendocument.text" else None
            if "[Content_Types].xml" in names:
                types = _read_marker(archive, "[Content_Types].xml") or b""
                if b"wordprocessingml.document.main+xml" in types:
                    return "docx"
                if b"spreadsheetml.sheet.main+xml" in types:
                    return "xlsx"
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, OSError, RuntimeError, ValueError, EOFError):
        return None
    return None


def _is_text(data: bytes) -> bool:
    """Plain text: UTF-8 (or Windows-1251) without NUL and other binary control characters."""
    if not data:
        return False
    sample = data[: 256 * 1024]
    if b"\x00" in sample:
        return False
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(sample) - 4:  # not merely a character cut at the sample's end
            try:
                text = sample.decode("cp1251")
            except UnicodeDecodeError:
                return False
        else:
            text = sample[: error.start].decode("utf-8")
    return all(ch >= " " or ch in "\t\r\n\f" for ch in text)


def sniff(data: bytes, filename: str = "") -> str | None:
    """The allowlisted kind of ``data`` judged by its content (magic numbers), or None.

    The file name is used only to tell DOC from XLS (both OLE2 compound files) and to accept plain text
    (which has no magic number) only for ``.txt`` files; it never makes a disallowed content allowed.
    """
    head = data[:16]
    suffix = filename.lower().rsplit(".", 1)[-1] if "." in filename else ""
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIC_BRANDS:
        return "heic"
    if head.startswith(_OLE2):
        return "xls" if suffix in {"xls", "xlt"} else "doc"
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(data)
    if suffix == "txt" and _is_text(data):
        return "txt"
    return None


def safe_filename(name: str | None, kind: str) -> str:
    """A display file name without directories, control or quoting characters, ≤ 120 characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable() and ch not in '"<>:|?*;').strip(" .")
    if not cleaned:
        cleaned = f"file.{kind}"
    if len(cleaned) > 120:
        stem, dot, ext = cleaned.rpartition(".")
        cleaned = f"{stem[: 110 - len(ext)]}.{ext}" if dot and len(ext) <= 8 else cleaned[:120]
    return cleaned


class UploadTooLarge(Exception):
    """One file is larger than allowed (detected while reading it)."""


class UploadsTooLarge(Exception):
    """The files together are larger than allowed (detected while reading them)."""


class UploadTypeNotAllowed(Exception):
    """The content is not of an allowlisted type, whatever its name says."""


@dataclass(slots=True)
class UploadBudget:
    """Bytes the files of one submission may still take; shared by all its files."""

    remaining: int


@dataclass(frozen=True, slots=True)
class ReceivedUpload:
    """A file read from the request, checked and hashed, not stored yet."""

    filename: str
    kind: str
    content_type: str
    data: bytes
    sha256: str

    @property
    def size(self) -> int:
        """Bytes."""
        return len(self.data)


async def receive_upload(upload: object, *, max_bytes: int, budget: UploadBudget) -> ReceivedUpload:
    """Read an uploaded file (Starlette ``UploadFile`` or anything with ``async read(n)``) chunk by chunk,
    counting and hashing as it goes: stops as soon as it passes ``max_bytes`` (:class:`UploadTooLarge`) or
    the shared ``budget`` (:class:`UploadsTooLarge`), then checks its content type
    (:class:`UploadTypeNotAllowed`).
    """
    digest = hashlib.sha256()
    chunks: list[bytes] = []
    size = 0
    read = upload.read  # type: ignore[attr-defined]
    while True:
        chunk = await read(CHUNK_BYTES)
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise UploadTooLarge()
        if size > budget.remaining:
            raise UploadsTooLarge()
        digest.update(chunk)
        chunks.append(chunk)
    budget.remaining -= size
    data = b"".join(chunks)
    name = str(getattr(upload, "filename", "") or "")
    kind = await asyncio.to_thread(sniff, data, name)  # a ZIP's directory is parsed off the event loop
    if kind is None:
        raise UploadTypeNotAllowed()
    return ReceivedUpload(
        filename=safe_filename(name, kind),
        kind=kind,
        content_type=ALLOWED_TYPES[kind],
        data=data,
        sha256=digest.hexdigest(),
    )


async def store_upload(
    session: AsyncSession,
    storage: Storage,
    received: ReceivedUpload,
    *,
    prefix: str,
    owner_user_id: int | None,
) -> StoredFile:
    """Store a checked upload under a server-generated key (``<prefix>/<yyyy>/<mm>/<uuid>.<kind>``) and add
    its metadata row (flushed, not committed). Delete the bytes with ``storage.delete`` if the transaction
    fails."""
    touch(session, private=StoredFile)  # shown only through the row that refers to it (declared there)
    today = clock.now()
    key = f"{prefix}/{today:%Y/%m}/{uuid.uuid4().hex}.{received.kind}"
    storage.save(key, received.data)
    row = StoredFile(
        storage_key=key,
        original_filename=received.filename,
        content_type=received.content_type,
        size=received.size,
        sha256=received.sha256,
        owner_user_id=owner_user_id,
    )
    session.add(row)
    await session.flush()
    return row
