"""Audit of analysts' GraphQL operations (issue 17, part 6): who ran what, and when.

Every operation an ANALYST sends (GraphiQL or any other client) writes one ``audit_log`` row before it
runs — refused ones included — with action ``graphql.analyst_query``: the analyst (``actor_user_id``),
the time (``created_at``, from the one clock), the client's address and user agent, and in ``changes``
the operation name, the SHA-256 of the document, the document's text and the variables with every value
that could be personal replaced by ``"[redacted]"`` (see :func:`redact_variables`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from models.audit import AuditLogEntry
from services.unit_of_work import touch

ACTION: Final = "graphql.analyst_query"
REDACTED: Final = "[redacted]"
MAX_DOCUMENT_CHARS: Final = 100_000
"""Longer documents are stored cut (the hash is of the whole text)."""

_SAFE_TEXT = re.compile(
    r"\d{4}-\d{2}(-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?)?"  # periods, dates, timestamps
    r"|[A-Z][A-Z0-9_]{0,63}"  # enum values (measures, dimensions, statuses)
    r"|-?\d{1,18}(\.\d{1,6})?"  # numbers sent as text (Decimal)
)


def redact_variables(value: Any) -> Any:
    """``value`` with numbers, booleans, null, dates, periods and enum-like text kept; every other text
    (a name, a phone, an e-mail, an account number, an id…) replaced by ``"[redacted]"``."""
    if isinstance(value, dict):
        return {str(key)[:64]: redact_variables(item) for key, item in list(value.items())[:100]}
    if isinstance(value, list):
        return [redact_variables(item) for item in value[:100]]
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str) and _SAFE_TEXT.fullmatch(value):
        return value
    return REDACTED


def document_hash(document: str) -> str:
    """Hex SHA-256 of the document's UTF-8 text (as persisted documents are keyed)."""
    return hashlib.sha256(document.encode()).hexdigest()


def record_analyst_query(
    session: AsyncSession,
    *,
    user_id: int,
    document: str,
    operation_name: str | None,
    variables: Any,
    client_ip: str | None,
    user_agent: str | None,
    now: dt.datetime,
) -> AuditLogEntry:
    """Add the audit row of one analyst operation to ``session`` (the caller's unit of work commits)."""
    touch(session, private=AuditLogEntry)  # staff read the audit log; their answers are never cached
    row = AuditLogEntry(
        actor_user_id=user_id,
        action=ACTION,
        entity_type="graphql_document",
        entity_id=None,
        changes={
            "operationName": operation_name[:200] if isinstance(operation_name, str) else None,
            "sha256": document_hash(document),
            "document": document[:MAX_DOCUMENT_CHARS],
            "variables": redact_variables(variables or {}),
        },
        client_ip=client_ip,
        user_agent=user_agent[:500] if user_agent else None,
        created_at=now,
    )
    session.add(row)
    return row
