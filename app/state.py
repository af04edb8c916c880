"""Process-wide state shared by every request: settings, database, event bus."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.broadcast import EventBus
from app.cache import ResultCache
from app.db import Database
from app.settings import Settings

if TYPE_CHECKING:
    from app.revocation import SessionGuard


@dataclass
class AppState:
    """Long-lived objects of one server process, created by the app factory."""

    settings: Settings
    db: Database
    bus: EventBus
    cache: ResultCache | None = None
    analytics_db: Database | None = None
    """The read replica analytics reads go to (``KABINET_ANALYTICS_DATABASE_URL``); None: ``db``."""
    sessions: SessionGuard | None = None
    """Which login sessions are active; closes ended sessions' websockets (``app.revocation``)."""
    extras: dict[str, object] = field(default_factory=dict)
