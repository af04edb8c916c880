"""Applications carry the form's contact block (G3, manual §2.11): full name, supplier, phone, e-mail.

Pre-filled from the account's owner, its supplier and the profile like an appeal's (F2); older rows keep
NULLs (their contacts are the profile's).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column("applications", sa.Column("full_name", sa.String(length=160), nullable=True))
    op.add_column("applications", sa.Column("supplier_id", sa.BigInteger(), nullable=True))
    op.add_column("applications", sa.Column("phone", sa.String(length=16), nullable=True))
    op.add_column("applications", sa.Column("email", sa.String(length=254), nullable=True))
    op.create_foreign_key(
        op.f("fk_applications_supplier_id_suppliers"), "applications", "suppliers", ["supplier_id"], ["id"]
    )
    op.create_index(op.f("ix_applications_supplier_id"), "applications", ["supplier_id"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(op.f("ix_applications_supplier_id"), table_name="applications")
    op.drop_constraint(op.f("fk_applications_supplier_id_suppliers"), "applications", type_="foreignkey")
    for column in ("email", "phone", "supplier_id", "full_name"):
        op.drop_column("applications", column)
