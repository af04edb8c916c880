"""Run alembic from code: ``upgrade(url)`` / ``downgrade(url)`` without an ``alembic.ini``.

The functions are synchronous. ``env.py`` drives its own event loop (in a separate thread when the
calling thread already runs one), so they can be called from a CLI, from a worker thread of an async
application (``await asyncio.to_thread(upgrade, url)``) or from tests.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent


def alembic_config(database_url: str) -> Config:
    """An alembic ``Config`` for this package's migrations and ``database_url`` (any PostgreSQL driver)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(MIGRATIONS_DIR / "versions"))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))  # ConfigParser interpolation
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database up to ``revision``."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    """Migrate the database down to ``revision`` (``base`` drops every table)."""
    command.downgrade(alembic_config(database_url), revision)


def current(database_url: str) -> None:
    """Print the database's current revision (for the CLI)."""
    command.current(alembic_config(database_url))
