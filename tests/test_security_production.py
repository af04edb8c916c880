"""Issue 15, the production profile: what production refuses, through real HTTP, the CLI and the app factory.

- SEC1: no sandbox acquirer in production (no ``/sandbox/...`` pages, ``/webhooks/sandbox`` refused, no
  payment can be created through it) unless a staging stand keeps it with ``KABINET_SANDBOX_IN_PRODUCTION``.
- SEC2: production never loads the demo data; demo staff have no known password outside development.
- SEC7: no one-time code in any log line; production refuses the console SMS / e-mail providers.
- SEC8: production refuses a weak or missing ``KABINET_SECRET_KEY``.
- ``kabinet check-config`` and ``create_app`` list every unsafe setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import structlog
from sqlalchemy import select

from app import cli, demo
from app.config_check import UnsafeConfiguration, problems, secret_weakness
from app.logging import configure_logging, redact_text
from app.main import app_from_env, create_app
from app.settings import Environment, Settings, get_settings
from models.identity import User, UserRole
from models.outbox import OutboxChannel, OutboxMessage
from models.payments import Payment, PaymentStatus
from services import gateways
from services.clock import CLOCK
from services.outbox import ConsoleProvider, dispatch_once, providers_from_settings
from services.passwords import verify_password
from tests.client import Api
from tests.conftest import RUN_ID, _admin, _free_port, _server_dsn, _with_database, login_as
from tests.test_payments import account_form, card_input, create

ROOT = Path(__file__).resolve().parent.parent
"""The repository (where ``python -m app.cli`` runs)."""

STRONG_SECRET = secrets.token_urlsafe(48)

SAFE_PRODUCTION: dict[str, Any] = {
    "env": Environment.PRODUCTION,
    "secret_key": STRONG_SECRET,
    "payment_gateway": "yookassa",
    "yookassa_shop_id": "shop-1",
    "yookassa_secret_key": "live_key",
    "yookassa_api_url": "http://127.0.0.1:9/v3",  # nothing listens: a payment attempt fails, never fakes
    "smtp_host": "smtp.example.invalid",
    "sms_gateway_url": "https://sms.example.invalid/send",
    "migrate_on_start": False,
    "scheduler_enabled": False,
    "outbox_dispatch": False,
    "gc_freeze": False,
}
"""Production settings that pass every check (plus the per-test database, Redis and data dir)."""

SAFE_PRODUCTION_ENV: dict[str, str] = {
    "KABINET_ENV": "production",
    "KABINET_SECRET_KEY": STRONG_SECRET,
    "KABINET_PAYMENT_GATEWAY": "yookassa",
    "KABINET_YOOKASSA_SHOP_ID": "shop-1",
    "KABINET_YOOKASSA_SECRET_KEY": "live_key",
    "KABINET_SMTP_HOST": "smtp.example.invalid",
    "KABINET_SMS_GATEWAY_URL": "https://sms.example.invalid/send",
}
"""The same as environment variables (for the CLI and the uvicorn factory)."""


def production(database_url: str, redis_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    """Production settings for the test's database; ``overrides`` change (or, with ``None``, unset) fields."""
    values: dict[str, Any] = {
        **SAFE_PRODUCTION,
        "database_url": database_url,
        "redis_url": redis_url,
        "redis_prefix": f"test-{RUN_ID}-prod-{uuid.uuid4().hex[:6]}",
        "data_dir": tmp_path / "var",
    }
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[Any, Api]]:
    """An app built by ``create_app`` with its lifespan running, and a GraphQL client over HTTP to it."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("203.0.113.10", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://kabinet.test") as client:
            yield application, Api(client)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A clean ``KABINET_*`` environment (restored afterwards) and fresh cached settings."""
    for name in [name for name in os.environ if name.startswith("KABINET_")] + ["REDIS_URL"]:
        monkeypatch.delenv(name, raising=False)
    # the CLI writes these itself; set-then-delete makes monkeypatch remove them again afterwards
    for name in ("KABINET_CLOCK_ANCHORED_AT", "DATABASE_URL", "KABINET_SECRET_KEY"):
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo :func:`configure_logging` (root handlers, level, structlog) after the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


async def sandbox_payment(api: Api, db: Any, token: str) -> tuple[str, str]:
    """A PENDING CARD payment through the sandbox acquirer: (global id, the sandbox's payment id)."""
    account = await account_form(api, token, "11111111")
    created = await create(api, token, card_input(account))
    assert created["userErrors"] == [], created
    payment = created["payment"]
    assert payment["status"] == "PENDING" and "/sandbox/pay/" in payment["confirmationUrl"]
    return payment["id"], payment["confirmationUrl"].rsplit("/", 1)[1]


async def payment_status(db: Any, gateway_payment_id: str) -> PaymentStatus:
    async with db.session() as session:
        return (
            await session.execute(
                select(Payment.status).where(Payment.gateway_payment_id == gateway_payment_id)
            )
        ).scalar_one()


# --- SEC1: the sandbox acquirer -----------------------------------------------------------------------------


async def test_SEC1_production_has_no_sandbox_pages_and_refuses_sandbox_webhooks(
    api: Api, db: Any, customer_token: str, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    # a PENDING sandbox payment made earlier (e.g. before the switch to production)
    _gid, sandbox_id = await sandbox_payment(api, db, customer_token)
    settings = production(database_url, redis_url, tmp_path)
    async with serving(settings) as (application, prod):
        assert gateways.SANDBOX not in application.state.kabinet.extras["gateways"].by_name
        for method, path in [
            ("GET", f"/sandbox/pay/{sandbox_id}"),
            ("POST", f"/sandbox/pay/{sandbox_id}"),
            ("GET", f"/sandbox/sbp/{sandbox_id}"),
            ("POST", f"/sandbox/sbp/{sandbox_id}"),
            ("GET", f"/sandbox/qr/{sandbox_id}.png"),
        ]:
            response = await prod.client.request(method, path, data={"outcome": "pay"})
            assert response.status_code == 404, (method, path, response.status_code)
        # a webhook signed exactly as the sandbox acquirer would sign it (with production's own key)
        body = json.dumps(
            {
                "id": f"evt_{uuid.uuid4().hex}",
                "type": "payment.succeeded",
                "payment": {"id": sandbox_id, "status": "SUCCEEDED"},
            }
        ).encode()
        headers = gateways.signed_headers(settings.secret_key, body, CLOCK.now())
        refused = await prod.client.post("/webhooks/sandbox", content=body, headers=headers)
        assert refused.status_code == 404
        # new payments go to the real gateway (unreachable here: an error, never a sandbox page)
        token = await login_as(application.state.kabinet.db, settings, demo.DEMO_PHONE_E164)
        account = await account_form(prod, token, "11111111")
        attempt = await create(prod, token, card_input(account))
        assert [error["code"] for error in attempt["userErrors"]] == ["PAYMENT_GATEWAY_UNAVAILABLE"]
    assert await payment_status(db, sandbox_id) is PaymentStatus.PENDING


async def test_SEC1_production_refuses_the_sandbox_gateway(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    # what finding 1 ran with: only KABINET_ENV=production and a secret
    unsafe = production(database_url, redis_url, tmp_path, payment_gateway="sandbox")
    with pytest.raises(UnsafeConfiguration) as refused:
        create_app(unsafe)
    assert "KABINET_PAYMENT_GATEWAY is sandbox" in str(refused.value)
    with pytest.raises(RuntimeError, match="production has no sandbox acquirer"):
        gateways.from_settings(unsafe)  # no code path can create a sandbox payment in production
    no_keys = production(database_url, redis_url, tmp_path, yookassa_shop_id=None, yookassa_secret_key=None)
    with pytest.raises(UnsafeConfiguration, match="KABINET_YOOKASSA_SHOP_ID"):
        create_app(no_keys)


async def test_SEC1_staging_override_keeps_the_sandbox_in_production(
    db: Any, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    staging = production(
        database_url, redis_url, tmp_path, payment_gateway="sandbox", sandbox_in_production=True
    )
    assert problems(staging) == []
    async with serving(staging) as (application, prod):
        token = await login_as(application.state.kabinet.db, staging, demo.DEMO_PHONE_E164)
        _gid, sandbox_id = await sandbox_payment(prod, db, token)
        page = await prod.client.get(f"/sandbox/pay/{sandbox_id}")
        assert page.status_code == 200 and "Оплатить" in page.text
        paid = await prod.client.post(f"/sandbox/pay/{sandbox_id}", data={"outcome": "pay"})
        assert paid.status_code == 200
    assert await payment_status(db, sandbox_id) is PaymentStatus.SUCCEEDED


async def test_SEC1_sbp_qr_images_are_served_without_the_sandbox(
    api: Api, db: Any, customer_token: str, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    account = await account_form(api, customer_token, "11111111")
    created = await create(api, customer_token, card_input(account, method="SBP"))
    url = created["payment"]["sbpQrImageUrl"]
    assert "/payments/qr/" in url
    async with serving(production(database_url, redis_url, tmp_path)) as (_application, prod):
        image = await prod.client.get("/" + url.split("/", 3)[3])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"


# --- SEC2: demo data ----------------------------------------------------------------------------------------


async def test_SEC2_demo_staff_have_no_known_password_outside_development(api: Api, db: Any) -> None:
    # the suite's database was loaded the way `kabinet demo` loads it outside development
    login = """mutation($input: LoginWithPasswordInput!) { loginWithPassword(input: $input) {
      tokens { accessToken } userErrors { code } } }"""
    for _role, phone, _email, password in demo.DEMO_STAFF:
        result = (await api.data(login, input={"login": phone, "password": password}))["loginWithPassword"]
        assert result["tokens"] is None and result["userErrors"], phone
    customer = {"login": demo.DEMO_PHONE, "password": demo.DEMO_PASSWORD}  # the README's login still works
    assert (await api.data(login, input=customer))["loginWithPassword"]["tokens"] is not None
    async with db.session() as session:
        staff = (await session.execute(select(User).where(User.role != UserRole.CUSTOMER))).scalars().all()
    assert {user.role for user in staff} >= {UserRole.ADMIN, UserRole.OPERATOR, UserRole.ANALYST}
    developer = demo.staff_password_hashes(True)
    for role, _phone, _email, password in demo.DEMO_STAFF:
        assert verify_password(developer[role], password)  # only `kabinet serve` in development uses these


async def test_SEC2_production_never_loads_demo_data(
    environment: pytest.MonkeyPatch,
    pg_server_url: str,
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    # asking for it is refused, by the CLI and by the app factory
    for name, value in SAFE_PRODUCTION_ENV.items():
        environment.setenv(name, value)
    environment.setenv("DATABASE_URL", pg_server_url)
    environment.setenv("KABINET_DEMO_ON_START", "true")
    get_settings.cache_clear()
    assert cli.main(["serve"]) == 2
    output = capsys.readouterr()
    assert "KABINET_DEMO_ON_START" in output.err and demo.DEMO_PASSWORD not in output.out + output.err
    get_settings.cache_clear()
    assert cli.main(["demo"]) == 2

    # `kabinet serve` in production on an empty database: migrated, serving, and still no users
    name = f"kabinet_t_{RUN_ID}_empty_{uuid.uuid4().hex[:6]}"
    await _admin(pg_server_url, f'CREATE DATABASE "{name}"')
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("KABINET_")}
    env.update(SAFE_PRODUCTION_ENV)
    env.update(
        DATABASE_URL=_with_database(pg_server_url, name),
        REDIS_URL=redis_url,
        KABINET_REDIS_PREFIX=f"test-{RUN_ID}-serve",
        KABINET_SCHEDULER_ENABLED="false",
        KABINET_OUTBOX_DISPATCH="false",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "serve",
        "--port",
        str(port),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    reading = asyncio.create_task(process.stdout.read())  # drained all along, so the pipe never fills
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                assert process.returncode is None, await reading
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("kabinet serve did not become ready")
        connection = await asyncpg.connect(_server_dsn(pg_server_url, name))
        try:
            assert await connection.fetchval("SELECT count(*) FROM alembic_version") == 1  # migrated
            assert await connection.fetchval("SELECT count(*) FROM users") == 0
        finally:
            await connection.close()
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), 30)
        output_text = (await reading).decode("utf-8", "replace")
        await _admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert "Kabinet GraphQL" in output_text
    assert "Demo customer" not in output_text and demo.DEMO_PASSWORD not in output_text


# --- SEC7: codes in logs ------------------------------------------------------------------------------------


async def test_SEC7_no_code_reaches_any_log_line(
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    configure_logging("DEBUG")  # as `kabinet serve` and the uvicorn factory do
    caplog.set_level(logging.DEBUG)
    settings = Settings(
        env=Environment.DEVELOPMENT,
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=f"test-{RUN_ID}-dev-{uuid.uuid4().hex[:6]}",
        data_dir=tmp_path / "var",
        secret_key=STRONG_SECRET,
        db_echo=True,  # every statement and (in development) its parameters are logged
        migrate_on_start=False,
        scheduler_enabled=False,
        outbox_dispatch=False,
        gc_freeze=False,
    )
    admin_phone = demo.e164(next(phone for role, phone, *_ in demo.DEMO_STAFF if role is UserRole.ADMIN))
    async with serving(settings) as (application, dev):
        db = application.state.kabinet.db
        request = """mutation($login: String!) { requestLoginCode(input: { login: $login }) {
          codeSent { channel } userErrors { code } } }"""
        reset = """mutation($login: String!) { requestPasswordReset(input: { login: $login }) {
          codeSent { channel } userErrors { code } } }"""
        sent = await dev.data(request, login=demo.DEMO_PHONE)
        assert sent["requestLoginCode"]["userErrors"] == []
        sent = await dev.data(reset, login=admin_phone)
        assert sent["requestPasswordReset"]["userErrors"] == []
        async with (
            db.unit_of_work() as uow
        ):  # the dispatcher's round, with the configured (console) providers
            result = await dispatch_once(uow.session, providers_from_settings(settings), now=CLOCK.now())
        assert result.sent == 2
        async with db.session() as session:
            bodies = (
                (await session.execute(select(OutboxMessage.body).order_by(OutboxMessage.id.desc()).limit(2)))
                .scalars()
                .all()
            )
    codes = [re.search(r"\b(\d{6})\b", body).group(1) for body in bodies]  # type: ignore[union-attr]
    assert len(codes) == 2
    logged = [record.getMessage() for record in caplog.records]
    assert any("has no provider: shown on stdout" in line for line in logged)  # the capture works
    assert any("outbox_messages" in line for line in logged)  # and the SQL echo was captured
    output = capsys.readouterr()
    for code in codes:
        assert all(code not in line for line in logged), code
        assert code not in caplog.text and code not in output.err  # what our handler wrote
        assert code in output.out  # shown to the developer at the terminal, by print, in development only


async def test_SEC7_console_provider_shows_nothing_outside_development(
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    message = OutboxMessage(
        id=7,
        channel=OutboxChannel.PUSH,
        destination="ExponentPushToken[secret-device]",
        subject="Код",
        body="Код для входа в личный кабинет: 482913",
        attempts=0,
    )
    for env in (Environment.TEST, Environment.PRODUCTION):
        staging = production(database_url, redis_url, tmp_path, env=env, smtp_host=None, sms_gateway_url=None)
        providers = providers_from_settings(staging)
        for channel in OutboxChannel:
            provider = providers[channel]
            assert isinstance(provider, ConsoleProvider) and not provider.show
            await provider.send(message)
    output = capsys.readouterr()
    for secret in ("482913", "secret-device"):
        assert secret not in output.out + output.err + caplog.text
    # and production refuses to start with them at all
    console = production(database_url, redis_url, tmp_path, smtp_host=None, sms_gateway_url=None)
    with pytest.raises(UnsafeConfiguration) as refused:
        create_app(console)
    assert "KABINET_SMTP_HOST" in str(refused.value) and "KABINET_SMS_GATEWAY_URL" in str(refused.value)
    with pytest.raises(UnsafeConfiguration, match="KABINET_DB_ECHO"):
        create_app(production(database_url, redis_url, tmp_path, db_echo=True))


def test_SEC7_redaction_masks_secrets_in_text() -> None:
    line = (
        "refresh_token=r-123 access_token: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl "
        "{'code': '123456', 'password': 'Ivanov#2026', 'push_token': 'ExponentPushToken[x]'} "
        "Authorization: Bearer abcdefghijkl secret=s3cr3t Код для входа: 654321."
    )
    masked = redact_text(line)
    for secret in (
        "r-123",
        "eyJhbGci",
        "123456",
        "Ivanov#2026",
        "ExponentPushToken",
        "abcdefghijkl",
        "s3cr3t",
        "654321",
    ):
        assert secret not in masked, secret
    kept = "status_code=200 amount 123456.00 at 2026-11-24T10:00:00.123456+03:00 account 11111111"
    assert redact_text(kept) == kept


# --- SEC8: the secret ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "weak",
    [
        "short",
        "x" * 64,
        "test-secret-key-" + "x" * 32,
        "changeme-changeme-changeme-changeme-changeme",
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS",
        "0123456789" * 5,
        "Qw9xZ7pL" * 6,
        "",
    ],
)
async def test_SEC8_production_refuses_a_weak_secret(
    weak: str, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    with pytest.raises(UnsafeConfiguration, match="KABINET_SECRET_KEY"):
        create_app(production(database_url, redis_url, tmp_path, secret_key=weak))
    assert secret_weakness(weak) is not None


def test_SEC8_generated_secrets_are_accepted() -> None:
    for _ in range(200):
        for value in (secrets.token_urlsafe(32), secrets.token_urlsafe(48), secrets.token_hex(32)):
            assert secret_weakness(value) is None, value


async def test_SEC8_production_app_starts_with_a_strong_secret(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    settings = production(database_url, redis_url, tmp_path)
    assert problems(settings) == []
    async with serving(settings) as (_application, prod):
        assert (await prod.client.get("/healthz")).json() == {"status": "ok"}
        assert (await prod.client.get("/readyz")).status_code == 200


# --- the whole check: create_app, the uvicorn factory, kabinet check-config ---------------------------------

UNSAFE_ENV = {
    "KABINET_ENV": "production",
    "KABINET_SECRET_KEY": "short",
    "KABINET_DEMO_ON_START": "true",
    "KABINET_GRAPHIQL": "true",
    "KABINET_CLOCK_START": "2026-11-20T10:00:00+03:00",
    "KABINET_DB_ECHO": "true",
    "KABINET_PAYMENT_WEBHOOK_SECRET": "hook",
}
"""Everything production refuses at once (with the sandbox gateway and console providers by default)."""

UNSAFE_NAMES = [
    "DATABASE_URL",
    "KABINET_PAYMENT_GATEWAY",
    "KABINET_SMTP_HOST",
    "KABINET_SMS_GATEWAY_URL",
    "KABINET_DB_ECHO",
    "KABINET_DEMO_ON_START",
    "KABINET_SECRET_KEY",
    "KABINET_GRAPHIQL",
    "KABINET_CLOCK_START",
    "KABINET_PAYMENT_WEBHOOK_SECRET",
    "2 workers without REDIS_URL",
]


def test_SEC_check_config_lists_every_unsafe_setting(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    for name, value in UNSAFE_ENV.items():
        environment.setenv(name, value)
    get_settings.cache_clear()
    assert cli.main(["check-config", "--workers", "2"]) == 1
    out = capsys.readouterr().out
    for name in UNSAFE_NAMES:
        assert name in out, name
    assert f"{len(UNSAFE_NAMES)} unsafe setting(s)" in out


def test_SEC_check_config_passes_a_safe_production_environment(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    for name, value in SAFE_PRODUCTION_ENV.items():
        environment.setenv(name, value)
    environment.setenv("DATABASE_URL", "postgresql://kabinet@db.internal/kabinet")
    get_settings.cache_clear()
    assert cli.main(["check-config"]) == 0
    assert "safe for production" in capsys.readouterr().out
    environment.setenv("KABINET_YOOKASSA_SECRET_KEY", "")
    get_settings.cache_clear()
    assert cli.main(["check-config"]) == 1
    assert "KABINET_YOOKASSA_SHOP_ID" in capsys.readouterr().out


def test_SEC_serve_refuses_with_one_message_listing_every_problem(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    for name, value in UNSAFE_ENV.items():
        environment.setenv(name, value)
    get_settings.cache_clear()
    assert cli.main(["serve", "--workers", "2"]) == 2
    output = capsys.readouterr()
    assert output.err.count("Refusing to run in production") == 1
    for name in UNSAFE_NAMES:
        assert name in output.err, name
    assert demo.DEMO_PASSWORD not in output.out + output.err


async def test_SEC_create_app_and_the_uvicorn_factory_refuse_unsafe_production(
    environment: pytest.MonkeyPatch, database_url: str, redis_url: str, tmp_path: Path, restore_logging: None
) -> None:
    with pytest.raises(UnsafeConfiguration) as refused:
        create_app(
            Settings(env=Environment.PRODUCTION, database_url=database_url, graphiql=True, db_echo=True)
        )
    message = str(refused.value)
    for name in (
        "KABINET_PAYMENT_GATEWAY",
        "KABINET_SMTP_HOST",
        "KABINET_SMS_GATEWAY_URL",
        "KABINET_SECRET_KEY is not set",
        "KABINET_GRAPHIQL",
        "KABINET_DB_ECHO",
    ):
        assert name in message, name
    assert len(refused.value.problems) == 6
    for name, value in UNSAFE_ENV.items():
        environment.setenv(name, value)
    environment.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    with pytest.raises(UnsafeConfiguration):
        app_from_env()
