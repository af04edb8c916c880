"""Events that leave the process only after the transaction that caused them has committed.

A service calls :func:`emit` with the session it writes through; the event waits in the session until
COMMIT, then goes to the event bus (``app.broadcast.EventBus``) — a rollback drops it. So a subscriber
never hears of a row it cannot read yet, and a failed transaction announces nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

PENDING_KEY = "kabinet_pending_events"
TOUCHED_KEY = "kabinet_touched"


def emit(session: AsyncSession | Session, channel: str, message: dict[str, Any]) -> None:
    """Queue ``message`` for ``channel`` (e.g. ``user:42``), to be published after the next COMMIT."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    sync.info.setdefault(PENDING_KEY, []).append((channel, message))


def take_pending(session: Session) -> list[tuple[str, dict[str, Any]]]:
    """Remove and return the events queued in ``session`` (the app's commit hook calls this)."""
    return session.info.pop(PENDING_KEY, [])


def touch(
    session: AsyncSession | Session,
    *,
    users: Iterable[int] = (),
    accounts: Iterable[int] = (),
    everyone: bool = False,
) -> None:
    """Mark cached query results stale once this transaction commits: of ``users``, of every user of
    ``accounts``, or of everybody (``everyone``: reference data such as branches or tariffs changed).

    ORM rows and events on user channels are tracked automatically; call this for plain SQL writes.
    """
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    touched = sync.info.setdefault(TOUCHED_KEY, Touched())
    touched.users.update(users)
    touched.accounts.update(accounts)
    touched.everyone = touched.everyone or everyone


class Touched:
    """What one transaction changed, as far as cached query results are concerned."""

    def __init__(self) -> None:
        self.users: set[int] = set()
        self.accounts: set[int] = set()
        self.everyone = False

    def __bool__(self) -> bool:
        return bool(self.users or self.accounts or self.everyone)


def take_touched(session: Session) -> Touched:
    """Remove and return what ``session`` touched."""
    return session.info.pop(TOUCHED_KEY, None) or Touched()  # type: ignore[no-any-return]


def user_channel(user_id: int) -> str:
    """The channel every client of one user listens on."""
    return f"user:{user_id}"
