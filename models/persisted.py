"""Persisted (trusted) GraphQL documents of first-party apps.

Choice: the SHA-256 of the document text (lower-case hex, what Apollo's, Relay's and GraphQL Codegen's
manifest generators produce) is the primary key, so a document is immutable once stored and every
process may cache what it read for ever. Documents come from ``kabinet documents register`` or, where
``KABINET_PERSISTED_DOCUMENTS_AUTO_REGISTER`` allows it, from Apollo's automatic registration (APQ).
"""

from __future__ import annotations

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedMixin


class PersistedDocument(CreatedMixin, Base):
    """One GraphQL document clients may send by its hash."""

    __tablename__ = "persisted_documents"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of `document`
    document: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(String(200))  # the operation's name, when it has one
