"""Resource limits (issue 16): every request is bounded in the memory, CPU and connections it may take.

Each test is named after the review finding it pins down (``test_LIM_…``).
"""

from __future__ import annotations

import json
import os
import struct
import threading
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import psutil

from tests.client import Api
from tests.test_uploads import CREATE_APPEAL, appeal_input, multipart

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
