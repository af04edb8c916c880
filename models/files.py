"""Stored files: attachments, documents, receipts, tariff documents, shop and promotion images."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedMixin, IdMixin


class StoredFile(IdMixin, CreatedMixin, Base):
    """Metadata of one file whose bytes live in the storage backend (local disk by default)."""

    __tablename__ = "files"

    storage_key: Mapped[str] = mapped_column(String(512), unique=True)  # path/key inside the storage
    original_filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)  # bytes
    sha256: Mapped[str] = mapped_column(String(64))  # hex digest, checked on download
    owner_user_id: Mapped[int | None] = mapped_column(  # uploader; null for system-generated files
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )

    __table_args__ = (CheckConstraint("size >= 0", name="size_not_negative"),)
