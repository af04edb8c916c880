"""Persisted (trusted) documents: hashing, reading manifests and ``.graphql`` files, storing, looking up.

A document is identified by the lower-case hex SHA-256 of its exact UTF-8 text — the ``sha256Hash`` that
Apollo Client's persisted-queries link, urql's ``persistedExchange`` and Relay send. Manifests are JSON
objects ``{hash: document}`` (Relay's ``persisted_queries.json``, GraphQL Codegen's
``persisted-documents.json``) or Apollo's ``{"format": "apollo-persisted-query-manifest", "operations":
[{"id", "name", "body"}]}``; every hash is checked against its document.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    Visitor,
    parse,
    print_ast,
    visit,
)
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from models.persisted import PersistedDocument
from services.unit_of_work import touch

HASH_PATTERN = re.compile(r"^[0-9a-f]{64}$")
"""A SHA-256 in lower-case hex."""


class ManifestError(ValueError):
    """A manifest or ``.graphql`` file that cannot be registered (its message says why)."""


@dataclass(frozen=True, slots=True)
class Document:
    """A document to persist: its hash, text and the name of its (first) operation."""

    hash: str
    text: str
    name: str | None


def document_hash(text: str) -> str:
    """The SHA-256 of a document's UTF-8 text, lower-case hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def operation_name(text: str) -> str | None:
    """The name of the document's first named operation, or None (also for text that does not parse)."""
    try:
        ast = parse(text, no_location=True)
    except GraphQLSyntaxError:
        return None
    for definition in ast.definitions:
        if isinstance(definition, OperationDefinitionNode) and definition.name is not None:
            return definition.name.value
    return None


def _checked(hash_: str, text: object) -> Document:
    if not isinstance(text, str) or not isinstance(hash_, str):
        raise ManifestError("a manifest maps hashes (strings) to documents (strings)")
    if document_hash(text) != hash_.lower():
        raise ManifestError(f"hash {hash_} is not the SHA-256 of its document")
    try:
        parse(text, no_location=True)
    except GraphQLSyntaxError as error:
        raise ManifestError(f"document {hash_} does not parse: {error.message}") from error
    return Document(hash_.lower(), text, operation_name(text))


def from_manifest(data: Any) -> list[Document]:
    """The documents of a parsed JSON manifest (``{hash: document}`` or Apollo's operations format)."""
    if isinstance(data, dict) and data.get("format") == "apollo-persisted-query-manifest":
        operations = data.get("operations")
        if not isinstance(operations, list):
            raise ManifestError("an Apollo manifest needs a list of operations")
        return [
            _checked(str(item.get("id")), item.get("body")) for item in operations if isinstance(item, dict)
        ]
    if not isinstance(data, dict):
        raise ManifestError("a manifest is a JSON object {sha256 hash: document}")
    return [_checked(key, value) for key, value in data.items()]


def _fragments_used(node: Any, fragments: dict[str, FragmentDefinitionNode]) -> list[str]:
    """Names of the fragments ``node`` spreads, transitively, in first-use order."""
    found: list[str] = []

    class Spreads(Visitor):
        def enter_fragment_spread(self, spread: FragmentSpreadNode, *_: Any) -> None:
            name = spread.name.value
            if name not in found:
                found.append(name)

    pending = [node]
    while pending:
        before = len(found)
        visit(pending.pop(), Spreads())
        pending.extend(fragments[name] for name in found[before:] if name in fragments)
    return found


def from_graphql(text: str) -> list[Document]:
    """One document per operation of a ``.graphql`` file: the operation and the fragments it uses,
    printed canonically (graphql-core's printer) — the text a client must send for that hash."""
    try:
        ast: DocumentNode = parse(text, no_location=True)
    except GraphQLSyntaxError as error:
        raise ManifestError(f"does not parse: {error.message}") from error
    fragments = {d.name.value: d for d in ast.definitions if isinstance(d, FragmentDefinitionNode)}
    documents = []
    for definition in ast.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        used = _fragments_used(definition, fragments)
        missing = [name for name in used if name not in fragments]
        if missing:
            raise ManifestError(f"unknown fragment(s): {', '.join(missing)}")
        printed = print_ast(DocumentNode(definitions=(definition, *(fragments[name] for name in used))))
        name = definition.name.value if definition.name else None
        documents.append(Document(document_hash(printed), printed, name))
    if not documents:
        raise ManifestError("has no operation")
    return documents


def read_files(paths: Iterable[Path]) -> list[Document]:
    """The documents of manifests (``.json``) and ``.graphql``/``.gql`` files."""
    documents: list[Document] = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix.lower() == ".json":
                try:
                    documents.extend(from_manifest(json.loads(text)))
                except json.JSONDecodeError as error:
                    raise ManifestError(f"is not JSON: {error}") from error
            else:
                documents.extend(from_graphql(text))
        except ManifestError as error:
            raise ManifestError(f"{path}: {error}") from error
    return documents


def read_manifest(path: Path) -> dict[str, str]:
    """``{hash: document}`` of a manifest file (``KABINET_PERSISTED_DOCUMENTS_FILE``), hashes checked."""
    return {document.hash: document.text for document in read_files([path])}


async def store(session: AsyncSession, documents: Sequence[Document]) -> None:
    """Insert documents not stored yet (a stored hash always holds the same text). The caller commits."""
    if not documents:
        return
    touch(session, private=PersistedDocument)  # documents are served, never shown in an answer
    rows = [
        {"hash": d.hash, "document": d.text, "name": d.name} for d in {d.hash: d for d in documents}.values()
    ]
    await session.execute(
        insert(PersistedDocument).values(rows).on_conflict_do_nothing(index_elements=["hash"])
    )


async def lookup(session: AsyncSession, hash_: str) -> str | None:
    """The stored document with this hash, or None."""
    return (
        await session.execute(select(PersistedDocument.document).where(PersistedDocument.hash == hash_))
    ).scalar_one_or_none()


async def listing(session: AsyncSession) -> list[PersistedDocument]:
    """Every stored document, oldest first."""
    rows = await session.execute(
        select(PersistedDocument).order_by(PersistedDocument.created_at, PersistedDocument.hash)
    )
    return list(rows.scalars())
