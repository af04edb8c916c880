"""Billing exchange (issue 18): stable billing ids on billing-owned rows, payments from other channels,
and the outbound change feed filled by triggers.

- ``billing_id`` (unique) on suppliers, branches, services, tariffs, accounts, meters, charges and readings
  (accepted ones); existing rows get deterministic ids (see ``BACKFILL``).
- ``external_payments``: payments billing received through banks, post offices and cashiers.
- ``exchange_changes``: the change feed. Triggers on the tables customers write add a row per action in
  the writing transaction, under a lock that makes ids follow commit order (see
  ``services/exchange/feed.py``). Writes made by the import itself (``SET LOCAL kabinet.exchange =
  'import'``) are not echoed back to billing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


BILLING_ID_TABLES = (
    "suppliers",
    "branches",
    "services",
    "tariffs",
    "accounts",
    "meters",
    "charges",
    "readings",
)

# existing rows get deterministic billing ids (what a first export to billing would tell it)
BACKFILL = (
    "UPDATE suppliers SET billing_id = 'S' || inn WHERE billing_id IS NULL",
    "UPDATE branches SET billing_id = 'B' || code WHERE billing_id IS NULL",
    "UPDATE services SET billing_id = code WHERE billing_id IS NULL",
    "UPDATE tariffs SET billing_id = 'T' || id WHERE billing_id IS NULL",
    "UPDATE accounts a SET billing_id = b.code || '-' || a.number FROM branches b"
    " WHERE b.id = a.branch_id AND a.billing_id IS NULL",
    "UPDATE meters SET billing_id = 'M' || id WHERE billing_id IS NULL",
    "UPDATE charges SET billing_id = 'C' || id WHERE billing_id IS NULL",
    "UPDATE readings SET billing_id = 'R' || id WHERE billing_id IS NULL AND accepted",
)

_SKIP = "coalesce(current_setting('kabinet.exchange', true), '') = 'import'"
# Writers of the feed take this transaction-level lock before their row gets its id, and keep it until
# COMMIT: ids are handed out in commit order, so "every row after id N" never skips a late commit.
_LOCK = "PERFORM pg_advisory_xact_lock(7021849361);"
_FEED_FUNCTIONS = {
    # a reading a customer (or an operator) submitted
    "readings": f"""
  IF {_SKIP} OR NEW.accepted THEN RETURN NULL; END IF;
  {_LOCK}
  INSERT INTO exchange_changes (kind, account_id, payload)
  SELECT 'reading.submitted', NEW.account_id, jsonb_build_object(
    'readingId', NEW.id, 'account', a.billing_id, 'meter', m.billing_id, 'serial', m.serial,
    'zone', NEW.zone, 'period', to_char(NEW.period, 'YYYY-MM'), 'value', NEW.value::text, 'source', NEW.source,
    'submittedAt', NEW.submitted_at)
  FROM accounts a JOIN meters m ON m.id = NEW.meter_id WHERE a.id = NEW.account_id;
  RETURN NULL;""",
    # a payment's status changed (created PENDING, SUCCEEDED, FAILED, ...) with its allocations
    "payment_status_changes": f"""
  IF {_SKIP} THEN RETURN NULL; END IF;
  {_LOCK}
  INSERT INTO exchange_changes (kind, account_id, payload)
  SELECT 'payment.status', NULL, jsonb_build_object(
    'paymentId', p.id, 'status', NEW.status, 'changedAt', NEW.changed_at, 'amount', p.amount::text,
    'method', p.method, 'gateway', p.gateway, 'autopay', p.is_autopay,
    'allocations', coalesce((SELECT jsonb_agg(jsonb_build_object('account', a.billing_id,
        'supplier', s.billing_id, 'period', to_char(pa.period, 'YYYY-MM'), 'amount', pa.amount::text) ORDER BY pa.id)
      FROM payment_allocations pa JOIN accounts a ON a.id = pa.account_id
      JOIN suppliers s ON s.id = pa.supplier_id WHERE pa.payment_id = p.id), '[]'::jsonb))
  FROM payments p WHERE p.id = NEW.payment_id;
  RETURN NULL;""",
    # applications, requisites change requests (C2) and meter checks (C3) included; each status change too
    "applications": f"""
  IF {_SKIP} THEN RETURN NULL; END IF;
  IF TG_OP = 'UPDATE' AND OLD.status IS NOT DISTINCT FROM NEW.status THEN RETURN NULL; END IF;
  {_LOCK}
  INSERT INTO exchange_changes (kind, account_id, payload)
  SELECT 'application', NEW.account_id, jsonb_build_object(
    'applicationId', NEW.id, 'kind', NEW.kind, 'status', NEW.status, 'account', a.billing_id,
    'meter', (SELECT m.billing_id FROM meters m WHERE m.id = NEW.meter_id), 'fields', NEW.fields,
    'createdAt', NEW.created_at, 'updatedAt', NEW.updated_at)
  FROM accounts a WHERE a.id = NEW.account_id;
  RETURN NULL;""",
    # e-receipt consent (J5) switched; an account unlinked (B2)
    "user_accounts": f"""
  IF {_SKIP} THEN RETURN NULL; END IF;
  IF TG_OP = 'DELETE' THEN
    {_LOCK}
  INSERT INTO exchange_changes (kind, account_id, payload)
    SELECT 'account.unlinked', OLD.account_id, jsonb_build_object('account', a.billing_id, 'userId', OLD.user_id)
    FROM accounts a WHERE a.id = OLD.account_id;
  ELSIF OLD.e_receipt_enabled IS DISTINCT FROM NEW.e_receipt_enabled THEN
    {_LOCK}
  INSERT INTO exchange_changes (kind, account_id, payload)
    SELECT 'e_receipt.consent', NEW.account_id, jsonb_build_object(
      'account', a.billing_id, 'userId', NEW.user_id, 'enabled', NEW.e_receipt_enabled)
    FROM accounts a WHERE a.id = NEW.account_id;
  END IF;
  RETURN NULL;""",
    # autopay consent given, changed or withdrawn (D6)
    "autopay_settings": f"""
  IF {_SKIP} THEN RETURN NULL; END IF;
  {_LOCK}
  INSERT INTO exchange_changes (kind, account_id, payload)
  SELECT 'autopay.consent', ua.account_id, jsonb_build_object(
    'account', a.billing_id, 'userId', ua.user_id,
    'enabled', CASE WHEN TG_OP = 'DELETE' THEN false ELSE NEW.enabled END,
    'amountLimit', CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE NEW.amount_limit::text END,
    'dayOfMonth', CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE NEW.day_of_month END)
  FROM user_accounts ua JOIN accounts a ON a.id = ua.account_id
  WHERE ua.id = CASE WHEN TG_OP = 'DELETE' THEN OLD.user_account_id ELSE NEW.user_account_id END;
  RETURN NULL;""",
    # a cabinet deleted (J10)
    "users": f"""
  IF {_SKIP} THEN RETURN NULL; END IF;
  IF OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN
    {_LOCK}
  INSERT INTO exchange_changes (kind, account_id, payload)
    VALUES ('cabinet.deleted', NULL, jsonb_build_object('userId', NEW.id, 'deletedAt', NEW.deleted_at));
  END IF;
  RETURN NULL;""",
}
_FEED_EVENTS = {
    "readings": "AFTER INSERT",
    "payment_status_changes": "AFTER INSERT",
    "applications": "AFTER INSERT OR UPDATE OF status",
    "user_accounts": "AFTER UPDATE OF e_receipt_enabled OR DELETE",
    "autopay_settings": "AFTER INSERT OR UPDATE OR DELETE",
    "users": "AFTER UPDATE OF deleted_at",
}


def upgrade() -> None:
    """Apply this revision."""
    for table in BILLING_ID_TABLES:
        op.add_column(table, sa.Column("billing_id", sa.String(length=64), nullable=True))
        op.create_unique_constraint(f"uq_{table}_billing_id", table, ["billing_id"])
    for statement in BACKFILL:
        op.execute(statement)
    op.create_table(
        "external_payments",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("billing_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.BigInteger(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("supplier_id", sa.BigInteger(), sa.ForeignKey("suppliers.id"), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("billing_id", name="uq_external_payments_billing_id"),
    )
    op.create_index("ix_external_payments_account_id_period", "external_payments", ["account_id", "period"])
    op.execute(
        "CREATE TABLE exchange_changes ("
        " id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
        " kind varchar(32) NOT NULL,"
        " account_id bigint,"
        " payload jsonb NOT NULL,"
        " created_at timestamptz NOT NULL DEFAULT now())"
    )
    for table, body in _FEED_FUNCTIONS.items():
        op.execute(
            f"CREATE FUNCTION exchange_feed_{table}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN{body}\nEND $$"
        )
        # at COMMIT (the feed lock is then held only while committing; a payment's allocations are there);
        # autopay settings fire at once: a cascade from an unlink would leave nothing to join at COMMIT
        deferred = table != "autopay_settings"
        op.execute(
            f"CREATE {'CONSTRAINT ' if deferred else ''}TRIGGER exchange_feed_{table} {_FEED_EVENTS[table]} "
            f"ON {table} {'DEFERRABLE INITIALLY DEFERRED ' if deferred else ''}"
            f"FOR EACH ROW EXECUTE FUNCTION exchange_feed_{table}()"
        )


def downgrade() -> None:
    """Revert this revision."""
    for table in _FEED_FUNCTIONS:
        op.execute(f"DROP TRIGGER exchange_feed_{table} ON {table}")
        op.execute(f"DROP FUNCTION exchange_feed_{table}()")
    op.drop_table("exchange_changes")
    op.drop_table("external_payments")
    for table in reversed(BILLING_ID_TABLES):
        op.drop_constraint(f"uq_{table}_billing_id", table, type_="unique")
        op.drop_column(table, "billing_id")
