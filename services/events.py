"""Events that leave the process only after the transaction that caused them has committed.

A service calls :func:`emit` with the session it writes through; the event waits in the session until
COMMIT, then goes to the event bus (``app.broadcast.EventBus``) — a rollback drops it. So a subscriber
never hears of a row it cannot read yet, and a failed transaction announces nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

PENDING_KEY = "kabinet_pending_events"


def emit(session: AsyncSession | Session, channel: str, message: dict[str, Any]) -> None:
    """Queue ``message`` for ``channel`` (e.g. ``user:42``), to be published after the next COMMIT."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    sync.info.setdefault(PENDING_KEY, []).append((channel, message))


def take_pending(session: Session) -> list[tuple[str, dict[str, Any]]]:
    """Remove and return the events queued in ``session`` (the app's commit hook calls this)."""
    return session.info.pop(PENDING_KEY, [])


def user_channel(user_id: int) -> str:
    """The channel every client of one user listens on."""
    return f"user:{user_id}"
