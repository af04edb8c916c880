"""Persisted (trusted) documents on the HTTP and websocket endpoints.

Clients send ``extensions: {"persistedQuery": {"version": 1, "sha256Hash": "<hex>"}}`` — Apollo's shape,
which Apollo Client, urql and Relay send — with or without the document (POST, or GET with
``?extensions=<urlencoded JSON>``). :meth:`PersistedDocuments.resolve` turns that into the document to run:

- only the hash: the document from ``KABINET_PERSISTED_DOCUMENTS_FILE`` or the ``persisted_documents``
  table, else ``PERSISTED_QUERY_NOT_FOUND``;
- hash and document: the hash must be the document's SHA-256 (else 400 ``PERSISTED_QUERY_HASH_MISMATCH``);
  an unknown one is stored when ``KABINET_PERSISTED_DOCUMENTS_AUTO_REGISTER`` allows it (Apollo's automatic
  persisted queries), else the document runs as a free-form one;
- with ``KABINET_PERSISTED_DOCUMENTS_ONLY`` anonymous and customer callers may run stored documents only
  (free-form ones get ``PERSISTED_QUERY_REQUIRED`` and they cannot register any); staff keep free-form
  documents (GraphiQL).
"""

from __future__ import annotations

from typing import Any

import orjson
from graphql import GraphQLSyntaxError, parse
from starlette.responses import Response

from app.context import Context, Viewer
from app.db import Database
from app.graphiql import STAFF_LOGIN_DOCUMENT
from app.http_negotiation import Message, mark_request_error
from app.settings import Settings
from services import persisted_documents

KNOWN_CACHE_SIZE = 10_000
"""Most documents read from the database one process keeps (a hash always names the same text)."""


class PersistedQueryError(Exception):
    """A request refused by the persisted-documents rules: ``extensions.code`` and its HTTP status.

    ``status`` 200 means "a request error": 200 for ``application/json`` clients, 400 for clients that
    prefer ``application/graphql-response+json`` (``app.http_negotiation``)."""

    def __init__(self, message: str, code: str, status: int = 200) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def payload(self) -> list[dict[str, Any]]:
        """The GraphQL ``errors`` list."""
        return [{"message": self.message, "extensions": {"code": self.code}}]

    def response(self, scope: Message) -> Response:
        """The HTTP answer: ``{"errors": [...]}`` without ``data`` (the request was never executed)."""
        mark_request_error(scope)
        return Response(
            orjson.dumps({"errors": self.payload()}), status_code=self.status, media_type="application/json"
        )


def not_found() -> PersistedQueryError:
    """Apollo's standard answer to an unknown hash (its clients then retry with the document)."""
    return PersistedQueryError("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")


def required() -> PersistedQueryError:
    """A free-form document where only persisted ones are served."""
    return PersistedQueryError(
        "Only persisted documents are accepted: send extensions.persistedQuery.sha256Hash",
        "PERSISTED_QUERY_REQUIRED",
    )


def is_staff(viewer: Viewer | None) -> bool:
    """Operators, analysts and admins (GraphiQL users) keep free-form documents."""
    return viewer is not None and viewer.role != "CUSTOMER"


class PersistedDocuments:
    """The manifest file, the ``persisted_documents`` table and the rules of one process."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.db = db
        self.only = settings.persisted_documents_only
        self.auto_register = settings.persisted_documents_auto_register_enabled
        path = settings.persisted_documents_file
        self.manifest: dict[str, str] = persisted_documents.read_manifest(path) if path else {}
        self.known: dict[str, str] = {}

    async def find(self, hash_: str, context: Context | None = None) -> str | None:
        """The document with this hash: the manifest, what this process read before, or the database —
        through the HTTP request's own session when ``context`` is given (the request may already hold a
        pooled connection: waiting for a second one could wait out the pool, issue 21)."""
        text = self.manifest.get(hash_) or self.known.get(hash_)
        if text is not None:
            return text
        opened = context.session() if context is not None else self.db.session()
        async with opened as session:
            text = await persisted_documents.lookup(session, hash_)
        if text is not None:
            if len(self.known) >= KNOWN_CACHE_SIZE:
                self.known.clear()
            self.known[hash_] = text
        return text

    async def register(self, hash_: str, text: str, context: Context | None = None) -> None:
        """Store a document sent with its hash (APQ) — only one that parses; in the HTTP request's own
        session when ``context`` is given (as :meth:`find`)."""
        try:
            parse(text, no_location=True)
        except GraphQLSyntaxError:
            return  # executing it reports the syntax error; nothing worth keeping
        document = persisted_documents.Document(hash_, text, persisted_documents.operation_name(text))
        work = context.unit_of_work() if context is not None else self.db.unit_of_work()
        async with work as uow:
            await persisted_documents.store(uow.session, [document])
        self.known[hash_] = text

    def free_form(self, query: str | None, viewer: Viewer | None) -> str | None:
        """A document sent as text: refused where only persisted ones are served."""
        if self.only and query is not None and not is_staff(viewer) and query != STAFF_LOGIN_DOCUMENT:
            raise required()  # (the production GraphiQL page's login document is let through: issue 17)
        return query

    async def resolve(
        self, query: str | None, extensions: object, viewer: Viewer | None, context: Context | None = None
    ) -> str | None:
        """The document to execute for a request's ``query`` and ``extensions`` (see the module doc); an
        HTTP request passes its ``context`` (its session is used, see :meth:`find`), a websocket does not
        (its context lives as long as the socket: a session opened there would hold a connection)."""
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        if persisted is None:
            return self.free_form(query, viewer)
        hash_ = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
        if (
            not isinstance(persisted, dict)
            or persisted.get("version") != 1
            or not isinstance(hash_, str)
            or not persisted_documents.HASH_PATTERN.match(hash_)
        ):
            raise PersistedQueryError(
                "extensions.persistedQuery must be {version: 1, sha256Hash: <64 lower-case hex digits>}",
                "PERSISTED_QUERY_INVALID",
                status=400,
            )
        if query is None:
            text = await self.find(hash_, context)
            if text is None:
                raise not_found()
            return text
        if not isinstance(query, str) or persisted_documents.document_hash(query) != hash_:
            raise PersistedQueryError(
                "provided sha256Hash does not match query", "PERSISTED_QUERY_HASH_MISMATCH", status=400
            )
        if await self.find(hash_, context) is not None:
            return query
        if self.auto_register and (is_staff(viewer) or not self.only):
            await self.register(hash_, query, context)
            return query
        return self.free_form(query, viewer)
