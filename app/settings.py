"""Settings from the environment (pydantic-settings). Every field is documented in the README's table.

Variables without a ``KABINET_`` prefix (``DATABASE_URL``, ``REDIS_URL``) follow the common twelve-factor
names so hosting platforms can inject them as they are.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    """Where the server runs: development turns on GraphiQL and introspection for everybody."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"
    TEST = "test"


class Settings(BaseSettings):
    """All configuration of one Kabinet process."""

    model_config = SettingsConfigDict(env_prefix="KABINET_", extra="ignore", populate_by_name=True)

    env: Environment = Field(Environment.DEVELOPMENT, description="development, production or test.")
    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("DATABASE_URL", "KABINET_DATABASE_URL"),
        description="PostgreSQL URL. Unset: an embedded PostgreSQL (pgserver) under data_dir/pg.",
    )
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "KABINET_REDIS_URL"),
        description="Redis URL for broadcast between processes and rate limits. Unset: in-process.",
    )
    redis_prefix: str = Field(
        "kabinet", description="Prefix of Redis keys and channels (lets deployments share one)."
    )
    data_dir: Path = Field(Path("var"), description="Embedded database, local file storage, caches.")
    host: str = Field("127.0.0.1", description="Address `kabinet serve` binds to.")
    port: int = Field(8000, description="Port `kabinet serve` listens on.")
    public_url: str | None = Field(
        None, description="External base URL (links in e-mails, sandbox pages). Default http://host:port."
    )
    secret_key: str = Field(
        default_factory=lambda: secrets.token_urlsafe(32),
        description=(
            "Signs access tokens and download URLs; the same on every process. `kabinet serve` keeps a "
            "generated one in data_dir/secret_key when unset (required in production)."
        ),
    )
    demo_on_start: bool = Field(True, description="Load demo data on first start when the database is empty.")
    migrate_on_start: bool = Field(True, description="Apply migrations when `kabinet serve` starts.")
    log_level: str = Field("INFO", description="Logging level.")
    log_json: bool = Field(False, description="Log JSON lines (production) instead of console text.")
    db_pool_size: int = Field(10, description="SQLAlchemy pool size per process.")
    db_echo: bool = Field(False, description="Log every SQL statement.")
    allowed_origins: list[str] = Field(
        default_factory=list,
        description=(
            'Other origins whose pages may open browser websockets, as JSON, e.g. ["https://lk.example.ru"]; '
            "the server's own origin is always allowed."
        ),
    )
    max_query_depth: int = Field(12, description="Deepest nesting of a GraphQL operation.")
    max_query_tokens: int = Field(4000, description="Most tokens in one GraphQL document.")
    max_query_aliases: int = Field(30, description="Most aliases in one GraphQL document.")
    graphiql: bool | None = Field(
        None, description="Serve GraphiQL at /graphql. Default: on in development, off in production."
    )
    time_zone: str = Field("Europe/Moscow", description="Company's default time zone for 'today'.")

    @property
    def graphiql_enabled(self) -> bool:
        """GraphiQL is served unless switched off; in production only when switched on."""
        if self.graphiql is not None:
            return self.graphiql
        return self.env is not Environment.PRODUCTION

    @property
    def is_production(self) -> bool:
        """True in production: field suggestions and introspection for anonymous callers are off."""
        return self.env is Environment.PRODUCTION


@lru_cache
def get_settings() -> Settings:
    """Settings of this process, read once from the environment."""
    return Settings()
