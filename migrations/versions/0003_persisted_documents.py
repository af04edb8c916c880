"""Persisted documents (issue 20): trusted GraphQL documents of first-party apps, keyed by SHA-256.

One row per document: its lower-case hex SHA-256 (the key clients send in
``extensions.persistedQuery.sha256Hash``), the text, the operation's name and when it was stored.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "persisted_documents",
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_persisted_documents")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("persisted_documents")
