"""Events that leave the process only after the transaction that caused them has committed.

A service calls :func:`emit` with the session of its unit of work (``services.unit_of_work``); the event
waits in the unit of work until COMMIT, then goes to the event bus (``app.broadcast.EventBus``) — a
rollback drops it. So a subscriber never hears of a row it cannot read yet, and a failed transaction
announces nothing. :func:`touch` declares which cached answers a write makes stale.
"""

from __future__ import annotations

from services.unit_of_work import Reference, Touched, emit, touch


def user_channel(user_id: int) -> str:
    """The channel every client of one user listens on."""
    return f"user:{user_id}"


__all__ = ["Reference", "Touched", "emit", "touch", "user_channel"]
