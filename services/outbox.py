"""Outgoing SMS and e-mail: written to the outbox in the business transaction, sent by a dispatcher.

:func:`enqueue` only adds a row to the caller's session, so a message exists exactly when the change
that caused it is committed. :func:`dispatch_once` claims due rows (``FOR UPDATE SKIP LOCKED``, so
several processes can dispatch at once), hands each to the provider of its channel and records the
outcome; a failure is retried with growing back-off until :data:`MAX_ATTEMPTS`. Since every state lives
in PostgreSQL, nothing is lost when a process restarts.

Providers: :class:`ConsoleProvider` (when no real one is configured: shows the message on stdout in
development only), :class:`SmtpProvider` (aiosmtplib) and :class:`HttpSmsProvider` (POSTs JSON to an SMS
gateway with a bearer token). Production refuses to start without SMTP and an SMS gateway
(``app/config_check.py``), so codes never reach a production console. Nothing here logs a message's body
or destination.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.outbox import OutboxChannel, OutboxMessage, OutboxStatus
from services import clock
from services.unit_of_work import touch

log = logging.getLogger("kabinet.outbox")

MAX_ATTEMPTS = 8
"""Sending attempts before a message is marked FAILED."""

BATCH_SIZE = 50
"""Messages claimed by one dispatch round."""


def enqueue(
    session: AsyncSession,
    channel: OutboxChannel,
    destination: str,
    body: str,
    *,
    subject: str | None = None,
    data: dict[str, Any] | None = None,
) -> OutboxMessage:
    """Add a message to the outbox in the caller's transaction (sent after the caller commits)."""
    touch(session, private=OutboxMessage)  # the outbox is the server's own business
    message = OutboxMessage(
        channel=channel, destination=destination, subject=subject, body=body, data=data, attempts=0
    )
    session.add(message)
    return message


class Provider(Protocol):
    """Delivers one message or raises."""

    async def send(self, message: OutboxMessage) -> None: ...


@dataclass
class ConsoleProvider:
    """Stands in for a missing provider: the message counts as sent, nothing leaves the process.

    With ``show`` (only in development, see :func:`providers_from_settings`) the whole message — one-time
    codes included — is printed to stdout for the developer at the terminal; it never goes through logging,
    so log collectors do not receive it. Otherwise only the message id and channel are logged.
    """

    show: bool = False

    async def send(self, message: OutboxMessage) -> None:
        if self.show:
            subject = f" [{message.subject}]" if message.subject else ""
            head = f"[outbox {message.channel.value} → {message.destination}]{subject}"
            print(f"{head} {message.body}", flush=True)
        log.info(
            "outbox message %s (%s) has no provider: %s",
            message.id,
            message.channel.value,
            "shown on stdout (development)" if self.show else "not delivered",
        )


@dataclass
class SmtpProvider:
    """Sends e-mail through an SMTP server with aiosmtplib."""

    host: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    sender: str = "noreply@localhost"
    starttls: bool = True
    timeout: float = 30.0

    async def send(self, message: OutboxMessage) -> None:
        import aiosmtplib

        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = message.destination
        email["Subject"] = message.subject or "Личный кабинет"
        email.set_content(message.body)
        await aiosmtplib.send(
            email,
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            start_tls=self.starttls,
            timeout=self.timeout,
        )


@dataclass
class HttpSmsProvider:
    """Sends SMS through an HTTP gateway: ``POST url`` with ``{"to", "text"}`` and a bearer token."""

    url: str
    token: str | None = None
    timeout: float = 15.0

    async def send(self, message: OutboxMessage) -> None:
        import httpx

        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            response = await client.post(
                self.url, json={"to": message.destination, "text": message.body}, headers=headers
            )
            response.raise_for_status()


def providers_from_settings(settings: Any) -> dict[OutboxChannel, Provider]:
    """The provider of each channel as configured (console unless SMTP / an SMS gateway is set).

    The console shows messages only when ``settings.env`` is development."""
    console = ConsoleProvider(show=settings.env == "development")
    email: Provider = console
    sms: Provider = console
    if settings.smtp_host:
        email = SmtpProvider(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            sender=settings.smtp_sender,
            starttls=settings.smtp_starttls,
        )
    if settings.sms_gateway_url:
        sms = HttpSmsProvider(url=settings.sms_gateway_url, token=settings.sms_gateway_token)
    return {OutboxChannel.EMAIL: email, OutboxChannel.SMS: sms, OutboxChannel.PUSH: console}


def backoff(attempts: int) -> dt.timedelta:
    """Wait before the next try after ``attempts`` failures: 10 s, 20 s, 40 s … at most an hour."""
    return dt.timedelta(seconds=min(10 * 2 ** max(attempts - 1, 0), 3600))


@dataclass(frozen=True, slots=True)
class DispatchResult:
    """What one round did."""

    sent: int
    retried: int
    failed: int


async def dispatch_once(
    session: AsyncSession, providers: dict[OutboxChannel, Provider], *, now: dt.datetime
) -> DispatchResult:
    """Send the due messages once; failures are rescheduled, the last failure marks FAILED. Runs in the
    caller's unit of work (the dispatcher opens one per round)."""
    touch(session, private=OutboxMessage)
    rows = (
        (
            await session.execute(
                select(OutboxMessage)
                .where(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.next_attempt_at <= now)
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(BATCH_SIZE)
                .with_for_update(skip_locked=True)
            )
        )
        .scalars()
        .all()
    )
    sent = retried = failed = 0
    for message in rows:
        try:
            await providers[message.channel].send(message)
        except Exception as error:  # any provider failure is retried
            message.attempts += 1
            message.last_error = f"{type(error).__name__}: {error}"[:2000]
            if message.attempts >= MAX_ATTEMPTS:
                message.status = OutboxStatus.FAILED
                failed += 1
                log.error("outbox message %s failed for good: %s", message.id, message.last_error)
            else:
                message.next_attempt_at = now + backoff(message.attempts)
                retried += 1
                log.warning("outbox message %s failed, retrying: %s", message.id, message.last_error)
        else:
            message.attempts += 1
            message.status = OutboxStatus.SENT
            message.sent_at = now
            message.last_error = None
            sent += 1
    return DispatchResult(sent, retried, failed)


class Dispatcher:
    """Runs :func:`dispatch_once` every ``interval`` seconds until stopped (one per process is fine)."""

    def __init__(self, db: Any, providers: dict[OutboxChannel, Provider], interval: float = 2.0) -> None:
        self.db = db
        self.providers = providers
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            try:
                async with self.db.unit_of_work() as uow:
                    await dispatch_once(uow.session, self.providers, now=clock.now())
            except Exception:
                log.exception("outbox dispatch round failed")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Start the background loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="kabinet-outbox-dispatcher")

    async def stop(self) -> None:
        """Stop the loop (pending messages stay in the outbox for the next start)."""
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
