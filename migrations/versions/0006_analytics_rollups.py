"""Monthly analytics rollups (issue 17): one table of de-personalised aggregates per month and grouping set.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-02 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "analytics_rollups",
        sa.Column("family", sa.String(length=16), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("grouping", sa.SmallInteger(), nullable=False),
        sa.Column("branch_id", sa.BigInteger(), nullable=True),
        sa.Column("supplier_id", sa.BigInteger(), nullable=True),
        sa.Column("service_id", sa.BigInteger(), nullable=True),
        sa.Column("zone", sa.String(length=16), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("payment_method", sa.String(length=16), nullable=True),
        sa.Column("topic", sa.String(length=128), nullable=True),
        sa.Column("application_kind", sa.String(length=48), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("subjects", sa.Integer(), nullable=False),
        sa.Column("consumption", sa.Numeric(precision=18, scale=3), nullable=True),
        sa.Column("charged", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("paid", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("debt", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("accounts", sa.Integer(), nullable=True),
        sa.Column("debtors", sa.Integer(), nullable=True),
        sa.Column("e_receipts", sa.Integer(), nullable=True),
        sa.Column("autopay", sa.Integer(), nullable=True),
        sa.Column("active_cabinets", sa.Integer(), nullable=True),
        sa.Column("registrations", sa.Integer(), nullable=True),
        sa.Column("readings", sa.Integer(), nullable=True),
        sa.Column("readings_on_time", sa.Integer(), nullable=True),
        sa.Column("payments", sa.Integer(), nullable=True),
        sa.Column("payments_sum", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("appeals", sa.Integer(), nullable=True),
        sa.Column("applications", sa.Integer(), nullable=True),
        sa.Column("answer_seconds", postgresql.ARRAY(sa.Integer()), nullable=True),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_rollups")),
    )
    op.create_index(
        "ix_analytics_rollups_family_grouping_period", "analytics_rollups", ["family", "grouping", "period"]
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_analytics_rollups_family_grouping_period", table_name="analytics_rollups")
    op.drop_table("analytics_rollups")
