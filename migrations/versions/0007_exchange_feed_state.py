"""The change feed's state (issue 18): what billing has read, and up to where the feed was pruned.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 06:30:00

One row. ``acknowledged`` is the highest cursor billing has asked for (reading "after N" says it has
everything up to N); ``pruned_through`` is the highest change id the retention job deleted: a cursor below it
is refused (410) instead of silently skipping what is gone.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "exchange_feed_state",
        sa.Column("id", sa.SmallInteger(), server_default=sa.text("1"), nullable=False),
        sa.Column("acknowledged", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("pruned_through", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_exchange_feed_state_one_row"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO exchange_feed_state (id) VALUES (1)")
    op.create_index("ix_exchange_changes_created_at", "exchange_changes", ["created_at"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_exchange_changes_created_at", table_name="exchange_changes")
    op.drop_table("exchange_feed_state")
