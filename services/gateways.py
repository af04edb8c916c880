"""Payment gateways: one interface, the built-in sandbox acquirer and the YooKassa adapter.

A gateway creates a payment (a card-page URL to redirect to, or an SBP QR payload), reports a payment's
status when asked (the periodic re-check of stuck PENDING payments), charges a saved card (autopay, J7)
and turns its webhook request into a :class:`GatewayEvent` — or refuses it (:class:`WebhookRejected`).

- :class:`SandboxGateway` behaves like a real acquirer: the card page and the SBP QR are served by
  Kabinet itself (``app/sandbox.py``); the outcome chosen on the page comes back as a webhook signed with
  HMAC-SHA256 over ``timestamp + "." + body`` (headers ``X-Sandbox-Timestamp``, ``X-Sandbox-Signature``),
  refused when badly signed or older than :data:`WEBHOOK_TOLERANCE`. Its ledger of outcomes (what the
  "acquirer" knows) is kept in ``webhook_events`` under the provider name ``sandbox-acquirer``.
- :class:`YooKassaGateway` speaks YooKassa's HTTP API v3 (``POST /payments`` with ``Idempotence-Key``,
  basic auth ``shopId:secretKey``, ``GET /payments/{id}``). Its notifications are not signed, so, as
  YooKassa recommends, the adapter trusts only the payment id in a notification and reads the status back
  from the API.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import httpx
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from models.payments import PaymentMethodKind, PaymentStatus, WebhookEvent
from services.unit_of_work import touch

WEBHOOK_TOLERANCE = dt.timedelta(minutes=5)
"""A webhook whose timestamp is further than this from now is refused (replays of captured requests)."""

SANDBOX = "sandbox"
YOOKASSA = "yookassa"
SANDBOX_LEDGER = "sandbox-acquirer"

SANDBOX_DECLINED_TOKEN_PREFIX = "declined-"
"""A saved sandbox card whose token starts with this is always declined (for autopay tests and demos)."""


def kopecks(amount: Decimal) -> int:
    """An amount in roubles as whole kopecks (what QR codes and many gateway APIs want)."""
    return int((amount * 100).to_integral_exact())


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """What Kabinet asks a gateway to collect."""

    payment_id: int
    amount: Decimal
    method: PaymentMethodKind
    description: str
    idempotency_key: str
    return_url: str
    save_card: bool = False


@dataclass(frozen=True, slots=True)
class Created:
    """The gateway's answer to a new payment."""

    gateway_payment_id: str
    status: PaymentStatus = PaymentStatus.PENDING
    confirmation_url: str | None = None
    sbp_payload: str | None = None


@dataclass(frozen=True, slots=True)
class SavedCard:
    """A card the gateway keeps for recurring payments (Kabinet stores only this)."""

    token: str
    last4: str
    brand: str | None = None
    expiry_month: int | None = None
    expiry_year: int | None = None


@dataclass(frozen=True, slots=True)
class GatewayEvent:
    """A verified notification: which payment, its new status, and an id to de-duplicate by."""

    event_id: str
    gateway_payment_id: str
    status: PaymentStatus
    reason: str | None = None
    saved_card: SavedCard | None = None
    payload: dict[str, Any] = field(default_factory=dict)


class WebhookRejected(Exception):
    """A webhook that is forged, stale or malformed (answered with HTTP 400/401, never processed)."""


class GatewayError(Exception):
    """The gateway could not be reached or refused the request."""


class Gateway(Protocol):
    """What every payment gateway offers Kabinet."""

    name: str

    async def create(self, session: AsyncSession, request: PaymentRequest) -> Created:
        """Register a payment; the answer carries the card-page URL or the SBP payload."""
        ...

    async def status(
        self, session: AsyncSession, gateway_payment_id: str
    ) -> tuple[PaymentStatus, str | None]:
        """The payment's status at the gateway now (and a failure reason)."""
        ...

    async def charge_saved(
        self, session: AsyncSession, request: PaymentRequest, token: str
    ) -> tuple[Created, str | None]:
        """Charge a saved card without the customer (autopay); returns the result and a failure reason."""
        ...

    async def parse_webhook(self, body: bytes, headers: dict[str, str], *, now: dt.datetime) -> GatewayEvent:
        """Verify a webhook request and read it; raises :class:`WebhookRejected`."""
        ...


# --- sandbox ------------------------------------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 (hex) of ``timestamp + "." + body`` with ``secret``."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, now: dt.datetime) -> dict[str, str]:
    """The headers the sandbox acquirer sends with a webhook ``body``."""
    timestamp = str(int(now.timestamp()))
    return {
        "content-type": "application/json",
        "x-sandbox-timestamp": timestamp,
        "x-sandbox-signature": sign(secret, timestamp, body),
    }


@dataclass
class SandboxGateway:
    """The built-in acquirer: card page and SBP QR served by Kabinet, outcomes as signed webhooks."""

    public_url: str
    secret: str
    pending_timeout: dt.timedelta = dt.timedelta(minutes=15)
    name: str = SANDBOX

    def card_page_url(self, gateway_payment_id: str) -> str:
        """Where the customer enters (or declines) a card."""
        return f"{self.public_url}/sandbox/pay/{gateway_payment_id}"

    def sbp_payload(self, gateway_payment_id: str, amount: Decimal) -> str:
        """The QR contents: the NSPK link format (``type=02`` dynamic QR, ``sum`` in kopecks).

        It points at Kabinet's sandbox page, so scanning it with a phone opens a page to pay or decline.
        """
        return f"{self.public_url}/sandbox/sbp/{gateway_payment_id}?type=02&sum={kopecks(amount)}&cur=RUB"

    async def create(self, session: AsyncSession, request: PaymentRequest) -> Created:
        gateway_payment_id = f"sbx_{uuid.uuid4().hex}"
        if request.method is PaymentMethodKind.SBP:
            return Created(
                gateway_payment_id, sbp_payload=self.sbp_payload(gateway_payment_id, request.amount)
            )
        return Created(gateway_payment_id, confirmation_url=self.card_page_url(gateway_payment_id))

    async def record_outcome(
        self, session: AsyncSession, gateway_payment_id: str, event: dict[str, Any]
    ) -> None:
        """Write the acquirer's own record of an outcome (what :meth:`status` reports later)."""
        touch(session, private=WebhookEvent)
        await session.execute(
            insert(WebhookEvent)
            .values(provider=SANDBOX_LEDGER, event_id=gateway_payment_id, payload=event)
            .on_conflict_do_nothing(index_elements=["provider", "event_id"])
        )

    async def status(
        self, session: AsyncSession, gateway_payment_id: str
    ) -> tuple[PaymentStatus, str | None]:
        row = (
            await session.execute(
                select(WebhookEvent).where(
                    WebhookEvent.provider == SANDBOX_LEDGER, WebhookEvent.event_id == gateway_payment_id
                )
            )
        ).scalar_one_or_none()
        if row is None:
            return PaymentStatus.PENDING, None
        return PaymentStatus(row.payload["status"]), row.payload.get("reason")

    async def charge_saved(
        self, session: AsyncSession, request: PaymentRequest, token: str
    ) -> tuple[Created, str | None]:
        gateway_payment_id = f"sbx_{uuid.uuid4().hex}"
        if token.startswith(SANDBOX_DECLINED_TOKEN_PREFIX):
            status, reason = PaymentStatus.FAILED, "Платёж отклонён банком"
        else:
            status, reason = PaymentStatus.SUCCEEDED, None
        await self.record_outcome(
            session,
            gateway_payment_id,
            {"id": gateway_payment_id, "status": status.value, "reason": reason},
        )
        return Created(gateway_payment_id, status=status), reason

    def event_body(
        self,
        gateway_payment_id: str,
        status: PaymentStatus,
        *,
        reason: str | None = None,
        saved_card: SavedCard | None = None,
        event_id: str | None = None,
    ) -> bytes:
        """The JSON body of a sandbox webhook."""
        event: dict[str, Any] = {
            "id": event_id or f"evt_{uuid.uuid4().hex}",
            "type": f"payment.{status.value.lower()}",
            "payment": {"id": gateway_payment_id, "status": status.value, "reason": reason},
        }
        if saved_card is not None:
            event["payment"]["card"] = {
                "token": saved_card.token,
                "last4": saved_card.last4,
                "brand": saved_card.brand,
                "expiryMonth": saved_card.expiry_month,
                "expiryYear": saved_card.expiry_year,
            }
        return json.dumps(event, ensure_ascii=False).encode()

    async def parse_webhook(self, body: bytes, headers: dict[str, str], *, now: dt.datetime) -> GatewayEvent:
        timestamp = headers.get("x-sandbox-timestamp", "")
        signature = headers.get("x-sandbox-signature", "")
        if not timestamp.isdigit() or not signature:
            raise WebhookRejected("missing signature")
        if not hmac.compare_digest(sign(self.secret, timestamp, body), signature):
            raise WebhookRejected("bad signature")
        sent = dt.datetime.fromtimestamp(int(timestamp), dt.UTC)
        if abs(now - sent) > WEBHOOK_TOLERANCE:
            raise WebhookRejected("stale webhook")
        try:
            event = json.loads(body)
            payment = event["payment"]
            status = PaymentStatus(payment["status"])
            card = payment.get("card")
            saved = (
                SavedCard(
                    token=str(card["token"]),
                    last4=str(card["last4"]),
                    brand=card.get("brand"),
                    expiry_month=card.get("expiryMonth"),
                    expiry_year=card.get("expiryYear"),
                )
                if card
                else None
            )
            return GatewayEvent(
                event_id=str(event["id"]),
                gateway_payment_id=str(payment["id"]),
                status=status,
                reason=payment.get("reason"),
                saved_card=saved,
                payload=event,
            )
        except (ValueError, KeyError, TypeError) as error:
            raise WebhookRejected("malformed webhook") from error


# --- YooKassa -----------------------------------------------------------------------------------------------

YOOKASSA_STATUS = {
    "pending": PaymentStatus.PENDING,
    "waiting_for_capture": PaymentStatus.PENDING,
    "succeeded": PaymentStatus.SUCCEEDED,
    "canceled": PaymentStatus.CANCELED,
}


@dataclass
class YooKassaGateway:
    """YooKassa API v3 (cards by redirect, SBP by QR), checked against a local server in the tests."""

    shop_id: str
    secret_key: str
    api_url: str = "https://api.yookassa.ru/v3"
    timeout: float = 30.0
    name: str = YOOKASSA
    transport: httpx.AsyncBaseTransport | None = None

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.api_url.rstrip("/"),
            auth=(self.shop_id, self.secret_key),
            timeout=self.timeout,
            transport=self.transport,
        )

    async def _call(
        self, method: str, path: str, *, body: dict[str, Any] | None = None, key: str | None = None
    ) -> dict[str, Any]:
        headers = {"Idempotence-Key": key} if key else {}
        try:
            async with self._client() as client:
                response = await client.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as error:
            raise GatewayError(f"YooKassa unreachable: {error}") from error
        if response.status_code >= 400:
            raise GatewayError(f"YooKassa answered {response.status_code}: {response.text[:300]}")
        return response.json()

    @staticmethod
    def _amount(amount: Decimal) -> dict[str, str]:
        return {"value": f"{amount.quantize(Decimal('0.01'))}", "currency": "RUB"}

    @staticmethod
    def _status(answer: dict[str, Any]) -> tuple[PaymentStatus, str | None]:
        status = YOOKASSA_STATUS.get(str(answer.get("status")), PaymentStatus.PENDING)
        reason = None
        details = answer.get("cancellation_details")
        if status is PaymentStatus.CANCELED and isinstance(details, dict):
            reason = str(details.get("reason") or "") or None
        if answer.get("refunded_amount") and status is PaymentStatus.SUCCEEDED:
            refunded = Decimal(str(answer["refunded_amount"].get("value", "0")))
            if refunded >= Decimal(str(answer["amount"]["value"])):
                status = PaymentStatus.REFUNDED
        return status, reason

    async def create(self, session: AsyncSession, request: PaymentRequest) -> Created:
        body: dict[str, Any] = {
            "amount": self._amount(request.amount),
            "capture": True,
            "description": request.description[:128],
            "metadata": {"kabinet_payment_id": str(request.payment_id)},
        }
        if request.method is PaymentMethodKind.SBP:
            body["payment_method_data"] = {"type": "sbp"}
            body["confirmation"] = {"type": "qr"}
        else:
            body["payment_method_data"] = {"type": "bank_card"}
            body["confirmation"] = {"type": "redirect", "return_url": request.return_url}
            if request.save_card:
                body["save_payment_method"] = True
        answer = await self._call("POST", "/payments", body=body, key=request.idempotency_key)
        confirmation = answer.get("confirmation") or {}
        status, _ = self._status(answer)
        return Created(
            gateway_payment_id=str(answer["id"]),
            status=status,
            confirmation_url=confirmation.get("confirmation_url"),
            sbp_payload=confirmation.get("confirmation_data"),
        )

    async def status(
        self, session: AsyncSession, gateway_payment_id: str
    ) -> tuple[PaymentStatus, str | None]:
        return self._status(await self._call("GET", f"/payments/{gateway_payment_id}"))

    async def charge_saved(
        self, session: AsyncSession, request: PaymentRequest, token: str
    ) -> tuple[Created, str | None]:
        body = {
            "amount": self._amount(request.amount),
            "capture": True,
            "description": request.description[:128],
            "payment_method_id": token,
            "metadata": {"kabinet_payment_id": str(request.payment_id)},
        }
        answer = await self._call("POST", "/payments", body=body, key=request.idempotency_key)
        status, reason = self._status(answer)
        return Created(gateway_payment_id=str(answer["id"]), status=status), reason

    async def parse_webhook(self, body: bytes, headers: dict[str, str], *, now: dt.datetime) -> GatewayEvent:
        """A notification ``{"type": "notification", "event": "payment.succeeded", "object": {...}}``.

        Only the payment id is taken from it; the status is read back from the API (notifications are
        not signed), so a forged notification can at most make Kabinet ask about a real payment.
        """
        try:
            notification = json.loads(body)
            event_name = str(notification["event"])
            gateway_payment_id = str(notification["object"]["id"])
        except (ValueError, KeyError, TypeError) as error:
            raise WebhookRejected("malformed notification") from error
        if notification.get("type") != "notification" or not event_name.startswith("payment."):
            raise WebhookRejected("not a payment notification")
        try:
            answer = await self._call("GET", f"/payments/{gateway_payment_id}")
        except GatewayError as error:
            raise WebhookRejected(f"payment unknown to YooKassa: {error}") from error
        status, reason = self._status(answer)
        method = answer.get("payment_method") or {}
        saved = None
        if method.get("saved") and method.get("type") == "bank_card":
            card = method.get("card") or {}
            saved = SavedCard(
                token=str(method["id"]),
                last4=str(card.get("last4", "0000")),
                brand=card.get("card_type"),
                expiry_month=int(card["expiry_month"]) if card.get("expiry_month") else None,
                expiry_year=int(card["expiry_year"]) if card.get("expiry_year") else None,
            )
        return GatewayEvent(
            event_id=f"{event_name}:{gateway_payment_id}:{answer.get('status')}",
            gateway_payment_id=gateway_payment_id,
            status=status,
            reason=reason,
            saved_card=saved,
            payload=notification,
        )


# --- the registry -------------------------------------------------------------------------------------------


@dataclass
class Gateways:
    """The gateways of one process: ``default`` takes new payments; every known one handles its webhooks."""

    by_name: dict[str, Gateway]
    default: str = SANDBOX
    recheck_after: dt.timedelta = dt.timedelta(minutes=5)  # PENDING longer than this: ask the gateway
    time_zone: str = "Europe/Moscow"  # for the autopay job's "today"

    def get(self, name: str) -> Gateway:
        """The gateway called ``name`` (payments made through a since-replaced gateway still resolve)."""
        return self.by_name[name]

    @property
    def current(self) -> Gateway:
        """The gateway new payments go through."""
        return self.by_name[self.default]


def from_settings(settings: Any) -> Gateways:
    """YooKassa when its shop id and key are configured; the sandbox when ``settings.sandbox_available``.

    The sandbox acquirer marks payments paid on a button press, so in production it does not exist (no
    payment can be created through it, ``/webhooks/sandbox`` is refused) unless a staging stand keeps it
    with ``KABINET_SANDBOX_IN_PRODUCTION=true``.
    """
    found: dict[str, Gateway] = {}
    if settings.sandbox_available:
        public = settings.base_url
        found[SANDBOX] = SandboxGateway(
            public_url=public,
            secret=settings.payment_webhook_secret or settings.secret_key,
            pending_timeout=dt.timedelta(seconds=settings.payment_pending_timeout_seconds),
        )
    if settings.yookassa_shop_id and settings.yookassa_secret_key:
        found[YOOKASSA] = YooKassaGateway(
            settings.yookassa_shop_id, settings.yookassa_secret_key, api_url=settings.yookassa_api_url
        )
    default = settings.payment_gateway
    if default not in found:
        why = (
            " (production has no sandbox acquirer; KABINET_SANDBOX_IN_PRODUCTION=true keeps it on staging)"
            if default == SANDBOX
            else ""
        )
        raise RuntimeError(f"payment gateway {default!r} is not configured{why}")
    return Gateways(
        found,
        default,
        recheck_after=dt.timedelta(seconds=settings.payment_recheck_after_seconds),
        time_zone=settings.time_zone,
    )


_installed: Gateways | None = None


def install(gateways: Gateways) -> Gateways:
    """Make ``gateways`` the process's registry (the app factory does; scheduled jobs use it)."""
    global _installed
    _installed = gateways
    return gateways


def installed() -> Gateways:
    """The process's registry, installed by the app (:func:`gateways_of` at start-up); services never
    read the settings themselves (issue 19: settings are passed in)."""
    if _installed is None:
        raise RuntimeError("no payment gateways installed: the app installs them with gateways_of(state)")
    return _installed


def gateways_of(state: Any) -> Gateways:
    """The app's gateway registry: built from ``state.settings`` once, kept in ``state.extras`` and
    installed for the scheduled jobs."""
    found = state.extras.get("gateways")
    if found is None:
        found = state.extras["gateways"] = install(from_settings(state.settings))
    return found
