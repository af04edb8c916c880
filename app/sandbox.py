"""The sandbox acquirer's pages and every gateway's webhook endpoint.

- ``GET /sandbox/pay/{id}`` — the card page a CARD payment's ``confirmationUrl`` points at: a person can
  open it in a browser and pay (optionally saving the card for autopay) or decline.
- ``GET /sandbox/sbp/{id}`` — the same for SBP: the QR payload is a link to it, so scanning the QR with a
  phone opens a page to pay or decline, as a banking app would.
- ``GET /payments/qr/{id}.png`` — the QR image of an SBP payment's payload (any gateway's; also at the old
  address ``/sandbox/qr/{id}.png`` while the sandbox exists).
- ``POST /webhooks/sandbox`` and ``POST /webhooks/yookassa`` — gateway notifications: verified, de-duplicated
  by event id, applied (``services.payments.handle_webhook``). 200 when accepted (also for duplicates),
  401 when forged or stale, 400 when malformed, 404 for a gateway this process does not have.

The sandbox pages exist only while the sandbox acquirer does (``Settings.sandbox_available``):
in production only on a staging stand with ``KABINET_SANDBOX_IN_PRODUCTION=true``; without it there are no
``/sandbox/...`` routes and ``/webhooks/sandbox`` answers 404, so nobody can mark a payment paid for free.

The page's outcome goes back to Kabinet the way a real acquirer's does: as a webhook signed with
HMAC-SHA256, POSTed to ``sandbox_webhook_url`` when set, else handed to the same webhook code in-process.
"""

from __future__ import annotations

import html
import logging
import uuid

import httpx
import segno
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from app.state import AppState
from models.payments import Payment, PaymentMethodKind, PaymentStatus
from services import clock, payments
from services import gateways as gateway_service
from services.billing import display_amount
from services.gateways import SANDBOX, SandboxGateway, SavedCard, WebhookRejected, gateways_of

log = logging.getLogger("kabinet.sandbox")


_PAGE = """<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title>
<style>body{{font-family:sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem}}
input{{font-size:1rem;padding:.3rem;width:100%;box-sizing:border-box;margin:.2rem 0 .8rem}}
button{{font-size:1rem;padding:.5rem 1rem;margin-right:.5rem}}</style></head>
<body><h1>{title}</h1>{body}<p><small>Тестовый эквайринг Kabinet (sandbox): деньги не списываются.</small></p>
</body></html>"""


async def _payment(state: AppState, gateway_payment_id: str) -> Payment | None:
    async with state.db.session() as session:
        return (
            await session.execute(
                select(Payment).where(
                    Payment.gateway == SANDBOX, Payment.gateway_payment_id == gateway_payment_id
                )
            )
        ).scalar_one_or_none()


def _sandbox_off(state: AppState) -> bool:
    """True when this process has no sandbox acquirer (production without the staging override)."""
    return SANDBOX not in gateways_of(state).by_name


async def pay_page(request: Request) -> Response:
    """The card (or SBP) page of a sandbox payment."""
    state: AppState = request.app.state.kabinet
    if _sandbox_off(state):
        return PlainTextResponse("Not found", status_code=404)
    gateway_payment_id = request.path_params["id"]
    payment = await _payment(state, gateway_payment_id)
    if payment is None:
        return HTMLResponse(_PAGE.format(title="Платёж не найден", body=""), status_code=404)
    amount = html.escape(display_amount(payment.amount))
    if payment.status is not PaymentStatus.PENDING:
        body = f"<p>Платёж на сумму {amount} ₽ уже обработан: {payment.status.value}.</p>"
        return HTMLResponse(_PAGE.format(title="Оплата", body=body))
    sbp = payment.method is PaymentMethodKind.SBP
    card_fields = (
        ""
        if sbp
        else """<label>Номер карты<input name="card" value="2200 0000 0000 4242" inputmode="numeric"></label>
<label>Срок действия<input name="expiry" value="12/30"></label>
<label>CVC<input name="cvc" value="123"></label>
<label><input type="checkbox" name="save_card" style="width:auto">
Сохранить карту для автоплатежа</label><br>"""
    )
    title = "Оплата через СБП" if sbp else "Оплата банковской картой"
    qr = (
        f'<p><img alt="QR-код СБП" src="/payments/qr/{html.escape(gateway_payment_id)}.png" width="240"></p>'
        if sbp
        else ""
    )
    body = f"""<p>К оплате: <b>{amount} ₽</b></p>{qr}
<form method="post">{card_fields}
<button name="outcome" value="pay">Оплатить</button><button name="outcome" value="decline">Отклонить</button>
</form>"""
    return HTMLResponse(_PAGE.format(title=title, body=body))


async def pay_submit(request: Request) -> Response:
    """The person chose: the acquirer records the outcome and sends its signed webhook."""
    state: AppState = request.app.state.kabinet
    gateway_payment_id = request.path_params["id"]
    form = await request.form()
    outcome = str(form.get("outcome", ""))
    if outcome not in ("pay", "decline"):
        return PlainTextResponse("outcome must be pay or decline", status_code=400)
    payment = await _payment(state, gateway_payment_id)
    if payment is None or _sandbox_off(state):
        return HTMLResponse(_PAGE.format(title="Платёж не найден", body=""), status_code=404)
    if payment.status is not PaymentStatus.PENDING:
        return HTMLResponse(
            _PAGE.format(title="Оплата", body=f"<p>Платёж уже обработан: {payment.status.value}.</p>"),
            status_code=409,
        )
    gateway = gateways_of(state).get(SANDBOX)
    assert isinstance(gateway, SandboxGateway)
    status = PaymentStatus.SUCCEEDED if outcome == "pay" else PaymentStatus.FAILED
    reason = None if status is PaymentStatus.SUCCEEDED else "Платёж отклонён банком"
    card = None
    if (
        status is PaymentStatus.SUCCEEDED
        and form.get("save_card")
        and payment.method is PaymentMethodKind.CARD
    ):
        digits = "".join(ch for ch in str(form.get("card", "")) if ch.isdigit()) or "0000"
        month, _, year = str(form.get("expiry", "")).partition("/")
        card = SavedCard(
            token=f"sbx_card_{uuid.uuid4().hex}",
            last4=digits[-4:],
            brand="MIR" if digits.startswith("2") else "VISA" if digits.startswith("4") else None,
            expiry_month=int(month) if month.isdigit() else None,
            expiry_year=2000 + int(year) if year.isdigit() and len(year) == 2 else None,
        )
    now = clock.now()
    async with state.db.unit_of_work() as uow:
        await gateway.record_outcome(
            uow.session,
            gateway_payment_id,
            {"id": gateway_payment_id, "status": status.value, "reason": reason},
        )
    body = gateway.event_body(gateway_payment_id, status, reason=reason, saved_card=card)
    headers = gateway_service.signed_headers(gateway.secret, body, now)
    delivered = await deliver_sandbox_webhook(state, body, headers)
    word = "Оплата прошла успешно" if status is PaymentStatus.SUCCEEDED else "Оплата не прошла"
    back = state.settings.payment_return_url or gateway.public_url
    page = f'<p>{word}.</p><p><a href="{html.escape(back)}">Вернуться в личный кабинет</a></p>'
    if not delivered:
        page += "<p><small>Уведомление магазину будет доставлено позже.</small></p>"
    return HTMLResponse(_PAGE.format(title=word, body=page))


async def deliver_sandbox_webhook(state: AppState, body: bytes, headers: dict[str, str]) -> bool:
    """POST the webhook to ``sandbox_webhook_url``, or run it through the webhook code in-process."""
    url = state.settings.sandbox_webhook_url
    if url:
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(url, content=body, headers=headers)
            return response.status_code == 200
        except httpx.HTTPError:
            log.warning("sandbox webhook to %s failed; the re-check job will catch up", url)
            return False
    try:
        async with state.db.unit_of_work() as uow:
            await payments.handle_webhook(
                uow.session, gateways_of(state), SANDBOX, body, headers, now=clock.now()
            )
        return True
    except WebhookRejected:
        log.exception("the sandbox's own webhook was rejected")
        return False


async def qr_image(request: Request) -> Response:
    """PNG of an SBP payment's QR payload."""
    state: AppState = request.app.state.kabinet
    async with state.db.session() as session:
        payload = (
            await session.execute(
                select(Payment.sbp_payload).where(Payment.gateway_payment_id == request.path_params["id"])
            )
        ).scalar_one_or_none()
    if not payload:
        return PlainTextResponse("QR-код не найден", status_code=404)
    import io

    buffer = io.BytesIO()
    segno.make(payload, error="m").save(buffer, kind="png", scale=6, border=2)
    return Response(buffer.getvalue(), media_type="image/png", headers={"cache-control": "no-store"})


async def webhook(request: Request) -> Response:
    """A gateway's notification (``/webhooks/{provider}``)."""
    state: AppState = request.app.state.kabinet
    provider = request.path_params["provider"]
    if provider not in gateways_of(state).by_name:
        return JSONResponse({"error": "no such gateway"}, status_code=404)
    body = await request.body()
    headers = {key.lower(): value for key, value in request.headers.items()}
    try:
        async with state.db.unit_of_work() as uow:
            outcome = await payments.handle_webhook(
                uow.session, gateways_of(state), provider, body, headers, now=clock.now()
            )
    except WebhookRejected as error:
        log.warning("webhook from %s rejected: %s", provider, error)
        malformed = "malformed" in str(error) or "unknown" in str(error)
        return JSONResponse({"error": str(error)}, status_code=400 if malformed else 401)
    return JSONResponse({"status": outcome})


def routes(state: AppState) -> list[Route]:
    """The payment routes (``app.main`` adds them); installs the gateway registry.

    The QR images and the webhooks always; the sandbox pages only when the registry has the sandbox."""
    found = [
        Route("/payments/qr/{id}.png", qr_image, methods=["GET"]),
        Route("/webhooks/{provider}", webhook, methods=["POST"]),
    ]
    if SANDBOX in gateways_of(state).by_name:
        found += [
            Route("/sandbox/pay/{id}", pay_page, methods=["GET"]),
            Route("/sandbox/pay/{id}", pay_submit, methods=["POST"]),
            Route("/sandbox/sbp/{id}", pay_page, methods=["GET"]),
            Route("/sandbox/sbp/{id}", pay_submit, methods=["POST"]),
            Route("/sandbox/qr/{id}.png", qr_image, methods=["GET"]),
        ]
    return found
