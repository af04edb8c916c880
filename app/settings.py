"""Settings from the environment (pydantic-settings). Every field is documented in the README's table.

Variables without a ``KABINET_`` prefix (``DATABASE_URL``, ``REDIS_URL``) follow the common twelve-factor
names so hosting platforms can inject them as they are.
"""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal
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
    demo_on_start: bool | None = Field(
        None,
        description=(
            "Load demo data on first start when the database is empty. Default: on except in production, "
            "which refuses to start when it is set."
        ),
    )
    migrate_on_start: bool = Field(True, description="Apply migrations when `kabinet serve` starts.")
    log_level: str = Field("INFO", description="Logging level.")
    log_json: bool = Field(False, description="Log JSON lines (production) instead of console text.")
    db_pool_size: int = Field(
        10,
        description="Database connections per process: opened as needed, then kept (no overflow).",
        ge=1,
    )
    db_pool_timeout: float = Field(
        10.0,
        description="Seconds a request waits for one of the pool's connections when all are in use.",
        gt=0,
    )
    analytics_database_url: str | None = Field(
        None,
        description="PostgreSQL URL of a read replica for analytics reads (queries and CSV exports). "
        "Unset: the "
        "primary database.",
    )
    db_echo: bool = Field(False, description="Log every SQL statement.")
    allowed_origins: list[str] = Field(
        default_factory=list,
        description=(
            'Other origins whose pages may open browser websockets, as JSON, e.g. ["https://lk.example.ru"]; '
            "the server's own origin is always allowed."
        ),
    )
    hsts_max_age: int = Field(
        0,
        description=(
            "Strict-Transport-Security max-age in seconds (e.g. 31536000) when a TLS-terminating proxy "
            "serves Kabinet over HTTPS; 0: no HSTS header (plain HTTP in development)."
        ),
    )
    max_query_cost: int = Field(
        50_000, description="Most a single operation may cost (app/cost.py); above it: QUERY_TOO_COSTLY."
    )
    cost_budget_per_minute: int = Field(
        500_000, description="Query cost one client (user, else address) may spend per minute."
    )
    max_query_depth: int = Field(12, description="Deepest nesting of a GraphQL operation.")
    max_query_tokens: int = Field(4000, description="Most tokens in one GraphQL document.")
    max_query_aliases: int = Field(30, description="Most aliases in one GraphQL document.")
    max_request_bytes: int = Field(
        1024 * 1024,
        description=(
            "Largest body (and query string) of a GraphQL request that is not a file upload, and largest "
            "websocket message: 1 MB. "
            "Bigger ones get HTTP 413 REQUEST_TOO_LARGE before they are parsed; uploads have own limits."
        ),
    )
    max_sockets_per_address: int = Field(
        20,
        description=(
            "Most websocket connections open at once from one client address, counted per process; "
            "one more is closed with code 4429."
        ),
    )
    graphiql: bool | None = Field(
        None, description="Serve GraphiQL at /graphql. Default: on in development, off in production."
    )
    graphiql_staff: bool = Field(
        True,
        description=(
            "Production: serve GraphiQL at /graphql behind a staff login (OPERATOR, ANALYST, ADMIN); the "
            "page runs nothing before the login, and the API keeps refusing introspection to others."
        ),
    )
    time_zone: str = Field("Europe/Moscow", description="Company's default time zone for 'today'.")
    gc_freeze: bool = Field(
        True,
        description="After startup, exempt the objects alive then (modules, schema) from garbage collection.",
    )
    gc_threshold: tuple[int, int, int] = Field(
        (10_000, 20, 100),
        description=(
            "gc.set_threshold after startup, e.g. [700,10,10] (Python's default): a young-generation "
            "collection after 10,000 net allocations instead of 700 (bench/README.md, issue 21)."
        ),
    )
    fast_execution: bool = Field(
        True, description="Run queries breadth-first (app/execution.py); false: graphql-core's executor."
    )
    result_cache: bool = Field(
        True, description="Cache customers' query results per user, invalidated by every write they can see."
    )
    strict_writes: bool | None = Field(
        None,
        description=(
            "A unit of work that writes rows but declares nothing it touches fails its COMMIT (a forgotten "
            "cache invalidation is an error). Unset: on in the test environment; off elsewhere, where such "
            "a write is logged as an error and makes every cached answer stale."
        ),
    )
    result_cache_ttl: float = Field(300.0, description="Seconds a cached query result may live at most.")
    scheduler_enabled: bool = Field(
        True, description="Compete to run scheduled jobs (reminders); one process wins via an advisory lock."
    )
    scheduler_interval: float = Field(60.0, description="Seconds between rounds of scheduled jobs.")
    clock_start: dt.datetime | None = Field(
        None,
        validation_alias=AliasChoices("KABINET_CLOCK_START", "KABINET_NOW_OVERRIDE", "clock_start"),
        description=(
            "Where the clock starts (ISO 8601 with offset) instead of the wall clock; it then runs forward "
            "in real time, for demos and manual tests of date rules such as reading windows. "
            "Old name: KABINET_NOW_OVERRIDE. Never set in production."
        ),
    )
    clock_anchored_at: dt.datetime | None = Field(
        None,
        description=(
            "The real instant that clock_start corresponds to (set by `kabinet serve` for its workers, so "
            "every process of one server reads the same time). Default: when the process starts."
        ),
    )
    persisted_documents_file: Path | None = Field(
        None,
        description=(
            "Manifest of persisted documents: a JSON object {sha256 hex: document} (Relay, GraphQL Codegen) "
            "or Apollo's persisted-query manifest, read at start. Unset: only the database's documents."
        ),
    )
    persisted_documents_auto_register: bool | None = Field(
        None,
        description=(
            "Store documents clients send with their hash (Apollo's automatic persisted queries). "
            "Default: on except in production."
        ),
    )
    persisted_documents_only: bool = Field(
        False,
        description=(
            "Anonymous and customer callers may run persisted documents only (PERSISTED_QUERY_REQUIRED); "
            "staff keep free-form documents. Recommended in production with first-party apps."
        ),
    )
    upload_max_file_bytes: int = Field(
        7 * 1024 * 1024, description="Largest uploaded file (F2, G2, G3): 7 MB as the manual says."
    )
    upload_max_total_bytes: int = Field(
        100 * 1024 * 1024,
        description="Largest total of the files of one appeal, application or document: 100 MB.",
    )
    video_token_ttl_seconds: int = Field(
        900, description="F4: how long the signed token of a video-consultation link stays valid."
    )

    smtp_host: str | None = Field(None, description="SMTP server for e-mail. Unset: e-mails are printed.")
    smtp_port: int = Field(587, description="SMTP port.")
    smtp_username: str | None = Field(None, description="SMTP login (unset: no authentication).")
    smtp_password: str | None = Field(None, description="SMTP password.")
    smtp_sender: str = Field("noreply@kabinet.local", description="From address of e-mails.")
    smtp_starttls: bool = Field(True, description="Use STARTTLS with the SMTP server.")
    sms_gateway_url: str | None = Field(
        None, description='HTTP SMS gateway: POST {"to", "text"} JSON. Unset: SMS are printed.'
    )
    sms_gateway_token: str | None = Field(None, description="Bearer token of the SMS gateway.")
    outbox_dispatch: bool = Field(
        True, description="Run the outbox dispatcher (sends SMS and e-mail) inside the server process."
    )
    personal_data_policy_version: str = Field(
        "2024-01", description="Version of the personal-data policy recorded with each consent (A1)."
    )
    vk_client_id: str | None = Field(None, description="VK ID OAuth client id (A5). Unset: VK login is off.")
    vk_client_secret: str | None = Field(None, description="VK ID OAuth client secret.")
    vk_authorize_url: str = Field("https://id.vk.com/authorize", description="VK OAuth authorize endpoint.")
    vk_token_url: str = Field("https://id.vk.com/oauth2/auth", description="VK OAuth token endpoint.")
    vk_userinfo_url: str = Field("https://id.vk.com/oauth2/user_info", description="VK user info endpoint.")
    payment_gateway: str = Field(
        "sandbox", description="Gateway of new payments: `sandbox` (built-in acquirer) or `yookassa`."
    )
    payment_webhook_secret: str | None = Field(
        None, description="HMAC-SHA256 key of sandbox webhooks. Unset: the secret key."
    )
    exchange_key_sha256: str | None = Field(
        None,
        description=(
            "Hex SHA-256 of the billing system's exchange key (`kabinet exchange-key` makes one); only the "
            "hash is kept. While rotating keys: the old and the new hash, comma-separated. Unset: the "
            "/exchange endpoints answer 404."
        ),
    )
    exchange_feed_retention_days: int = Field(
        30,
        ge=1,
        le=3650,
        description=(
            "Days the change feed keeps changes billing has already read (reading after cursor N "
            "acknowledges up to N); the scheduler deletes older ones. Unread changes are never deleted."
        ),
    )
    exchange_max_bytes: int = Field(
        512 * 1024 * 1024, description="Largest batch POST /exchange/import accepts (a ZIP set or one CSV)."
    )
    payment_return_url: str | None = Field(
        None, description="Where the card page sends the customer back after paying. Default: public URL."
    )
    payment_recheck_after_seconds: int = Field(
        300, description="A PENDING payment older than this is re-checked with its gateway by a periodic job."
    )
    payment_pending_timeout_seconds: int = Field(
        900, description="A sandbox payment nobody paid within this many seconds is canceled."
    )
    sandbox_webhook_url: str | None = Field(
        None,
        description=(
            "Where the sandbox acquirer POSTs its signed webhooks. Unset: delivered inside the process, "
            "through the same signature check as /webhooks/sandbox."
        ),
    )
    pay_all_max_accounts: int = Field(10, description="H1: most accounts in one «pay for all accounts».")
    pay_all_max_total: Decimal = Field(
        Decimal("500000.00"), description="Largest total of one payment, in roubles (D5, H1)."
    )
    sandbox_in_production: bool = Field(
        False,
        description=(
            "Staging stands only: keep the sandbox acquirer (its pay pages and /webhooks/sandbox) in "
            "production. Without it production has no sandbox and refuses KABINET_PAYMENT_GATEWAY=sandbox."
        ),
    )
    metrics_port: int = Field(
        0,
        description=(
            "Port of the Prometheus /metrics endpoint, served apart from the public app (by the supervisor "
            "with several workers). 0: no metrics endpoint."
        ),
    )
    metrics_host: str = Field("127.0.0.1", description="Address the /metrics endpoint binds to.")
    otlp_endpoint: str | None = Field(
        None,
        description=("OTLP/HTTP traces endpoint (e.g. http://collector:4318/v1/traces). Unset: no tracing."),
    )
    yookassa_shop_id: str | None = Field(None, description="YooKassa shop id (basic-auth login). Unset: off.")
    yookassa_secret_key: str | None = Field(None, description="YooKassa secret key (basic-auth password).")
    yookassa_api_url: str = Field(
        "https://api.yookassa.ru/v3", description="Base URL of the YooKassa API (a test server in tests)."
    )

    @property
    def graphiql_enabled(self) -> bool:
        """GraphiQL is served unless switched off; in production only when switched on."""
        if self.graphiql is not None:
            return self.graphiql
        return self.env is not Environment.PRODUCTION

    @property
    def graphiql_staff_login(self) -> bool:
        """Production's GraphiQL: served, but usable only after a staff login (issue 17)."""
        return self.env is Environment.PRODUCTION and self.graphiql_staff and not self.graphiql_enabled

    @property
    def persisted_documents_auto_register_enabled(self) -> bool:
        """Automatic registration (APQ) unless switched off; in production only when switched on."""
        if self.persisted_documents_auto_register is not None:
            return self.persisted_documents_auto_register
        return not self.is_production

    @property
    def demo_on_start_enabled(self) -> bool:
        """Demo data is loaded into an empty database unless switched off, and never in production."""
        if self.is_production:
            return False
        return self.demo_on_start is not False

    @property
    def sandbox_available(self) -> bool:
        """The sandbox acquirer exists outside production, and in production only on a staging stand."""
        return not self.is_production or self.sandbox_in_production

    @property
    def base_url(self) -> str:
        """Where links outside a request point (e-mails, the sandbox acquirer): ``public_url``, else the
        address this server serves (`kabinet serve --host/--port` exports them to its workers)."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def is_production(self) -> bool:
        """True in production: field suggestions and introspection for anonymous callers are off."""
        return self.env is Environment.PRODUCTION


@lru_cache
def get_settings() -> Settings:
    """Settings of this process, read once from the environment."""
    return Settings()
