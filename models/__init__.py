"""SQLAlchemy models, one module per domain. Importing this package registers every table on Base.metadata."""

from models import (
    accounts,
    appeals,
    audit,
    billing,
    branches,
    content,
    exchange,
    files,
    idempotency,
    identity,
    meters,
    notifications,
    outbox,
    payments,
    persisted,
    readings,
    tariffs,
)
from models.base import Base

__all__ = [
    "Base",
    "accounts",
    "appeals",
    "audit",
    "billing",
    "branches",
    "content",
    "exchange",
    "files",
    "idempotency",
    "identity",
    "meters",
    "notifications",
    "outbox",
    "payments",
    "persisted",
    "readings",
    "tariffs",
]
