"""Payments (D5), paying for all accounts at once (H1), autopay (J7) and the payment status (K2).

A payment is created PENDING with its allocations (per account and supplier) and handed to a gateway
(``services.gateways``); the gateway's webhook — or the periodic re-check of stuck PENDING payments —
moves it to SUCCEEDED, FAILED or CANCELED (and a SUCCEEDED one may later become REFUNDED). A final status
never moves back, so webhooks may arrive twice or out of order. Every step is stored in
``payment_status_changes``; each change notifies the user and rings ``payment:<id>`` after COMMIT (the
``paymentStatus`` subscription listens there). Billing reads SUCCEEDED payments' allocations, so the
balance and the payment history change in the same COMMIT as the status.

Money is ``Decimal`` everywhere; every allocation is at least :data:`MIN_AMOUNT`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models.accounts import Account, AccountService, UserAccount
from models.billing import Receipt
from models.branches import Service
from models.identity import User
from models.notifications import NotificationCategory
from models.outbox import OutboxChannel
from models.payments import (
    AutopayRun,
    AutopaySetting,
    Payment,
    PaymentAllocation,
    PaymentMethod,
    PaymentMethodKind,
    PaymentStatus,
    PaymentStatusChange,
    WebhookEvent,
)
from services import billing, outbox
from services.accounts import AccountNotFound, linked_account_ids, local_today
from services.errors import DomainError, FieldRequired, NotFound
from services.events import emit
from services.gateways import (
    GatewayError,
    Gateways,
    PaymentRequest,
    SavedCard,
    WebhookRejected,
)
from services.notifications import notify
from services.periods import month_start
from services.unit_of_work import Units, savepoint, touch

log = logging.getLogger("kabinet.payments")

MIN_AMOUNT = Decimal("10.00")
"""D5: no amount below 10,00 ₽ (per supplier line, advance payments included)."""

FINAL = frozenset(
    {PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.CANCELED, PaymentStatus.REFUNDED}
)

ALLOWED = {
    PaymentStatus.PENDING: frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.CANCELED}),
    PaymentStatus.SUCCEEDED: frozenset({PaymentStatus.REFUNDED}),
}
"""The only moves a payment's status makes; anything else (a late or repeated webhook) is ignored."""

CENT = Decimal("0.01")

MAX_KEY_LENGTH = 128
"""Longest idempotency key (the column's size)."""


def payment_channel(payment_id: int) -> str:
    """The event channel of one payment's status."""
    return f"payment:{payment_id}"


def rub(amount: Decimal) -> str:
    """«1 234,50 ₽»."""
    return f"{billing.display_amount(amount)} ₽"


# --- errors -------------------------------------------------------------------------------------------------


class RulesNotAccepted(DomainError):
    """D5: the payment rules must be accepted."""

    code = "PAYMENT_RULES_NOT_ACCEPTED"
    message = "Примите условия правил оплаты, установив флажок «С правилами оплаты ознакомлен(а)»"


class AmountTooSmall(DomainError):
    """D5: at least 10,00 ₽."""

    code = "AMOUNT_TOO_SMALL"
    message = "Сумма к оплате должна быть не менее 10,00 руб."


class SupplierNotOfAccount(NotFound):
    """A supplier that does not bill the account."""

    code = "SUPPLIER_NOT_FOUND"
    message = "Поставщик услуг не найден по данному лицевому счету"


class InvalidAmount(DomainError):
    """Not an amount in roubles and kopecks."""

    code = "INVALID_AMOUNT"
    message = "Укажите сумму в рублях и копейках, например 1234,50"


class DuplicateLine(DomainError):
    """The same account and supplier twice in one payment."""

    code = "DUPLICATE_LINE"
    message = "Поставщик услуг указан в платеже дважды"


class InvalidReceiptEmail(DomainError):
    """The address for the receipt is not an e-mail address."""

    code = "INVALID_EMAIL"
    message = "Некорректный адрес электронной почты"


class PayAllUnavailable(DomainError):
    """H1: only with more than one linked account."""

    code = "PAY_ALL_UNAVAILABLE"
    message = "Оплата по всем лицевым счетам доступна, если к личному кабинету подключен не один лицевой счет"


class TooManyAccounts(DomainError):
    """H1: more accounts in one checkout than allowed."""

    code = "TOO_MANY_ACCOUNTS"
    message = "Слишком много лицевых счетов в одном платеже"


class TotalTooLarge(DomainError):
    """The total of one checkout is above the limit."""

    code = "TOTAL_TOO_LARGE"
    message = "Сумма платежа превышает допустимую"


class IdempotencyKeyReused(DomainError):
    """The same idempotency key was used for a different payment."""

    code = "IDEMPOTENCY_KEY_REUSED"
    message = "Этот ключ идемпотентности уже использован для другого платежа"


class GatewayUnavailable(DomainError):
    """The gateway could not be reached; nothing was charged or stored."""

    code = "PAYMENT_GATEWAY_UNAVAILABLE"
    message = "Оплата временно недоступна. Попробуйте позже"


class PaymentNotFound(NotFound):
    """Not the caller's payment, or none at all."""

    code = "PAYMENT_NOT_FOUND"
    message = "Платеж не найден"


class CardNotFound(NotFound):
    """Not the caller's saved card."""

    code = "CARD_NOT_FOUND"
    message = "Карта не найдена"


# --- checkout (what is due) ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DueLine:
    """One supplier of an account: its balance and the amount pre-filled in the form."""

    account_id: int
    supplier_id: int
    balance: Decimal  # debt positive, overpayment negative
    due: Decimal  # max(balance, 0): what the form pre-fills

    @property
    def suggested(self) -> Decimal:
        """The pre-filled amount (the due amount, but at least the minimum: an advance otherwise)."""
        return self.due if self.due >= MIN_AMOUNT else MIN_AMOUNT


async def due_lines(session: AsyncSession, account_ids: Sequence[int]) -> dict[int, list[DueLine]]:
    """D5: per account, every supplier that bills it with its balance and due amount (two statements)."""
    balances = await billing.balances(session, account_ids)
    suppliers = await session.execute(
        select(AccountService.account_id, Service.supplier_id)
        .join(Service, Service.id == AccountService.service_id)
        .where(AccountService.account_id.in_(account_ids))
        .distinct()
    )
    by_account: dict[int, dict[int, Decimal]] = {account_id: {} for account_id in account_ids}
    for account_id, supplier_id in suppliers:
        by_account[account_id].setdefault(supplier_id, billing.ZERO)
    for balance in balances:
        for line in balance.suppliers:
            by_account[balance.account_id][line.supplier_id] = line.amount
    return {
        account_id: [
            DueLine(account_id, supplier_id, amount, max(amount, billing.ZERO))
            for supplier_id, amount in sorted(found.items())
        ]
        for account_id, found in by_account.items()
    }


# --- creating a payment -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    """One requested allocation: this much to this supplier of this account."""

    account_id: int
    supplier_id: int
    amount: Decimal
    field: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Limits:
    """H1 limits and the gateway's return URL (from settings)."""

    max_accounts: int = 10
    max_total: Decimal = Decimal("500000.00")
    return_url: str = "http://127.0.0.1:8000/"


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def fingerprint(
    lines: Sequence[Line], method: PaymentMethodKind, receipt_email: str | None, pay_all: bool
) -> str:
    """SHA-256 of the canonical request: a reused idempotency key must come with the same one."""
    canonical = {
        "lines": sorted(
            [line.account_id, line.supplier_id, str(line.amount.quantize(CENT))] for line in lines
        ),
        "method": method.value,
        "email": (receipt_email or "").lower(),
        "all": pay_all,
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


async def _existing(session: AsyncSession, user_id: int, key: str) -> Payment | None:
    return (
        await session.execute(
            select(Payment).where(Payment.user_id == user_id, Payment.idempotency_key == key)
        )
    ).scalar_one_or_none()


async def create_payment(
    session: AsyncSession,
    gateways: Gateways,
    *,
    user_id: int,
    lines: Sequence[Line],
    method: PaymentMethodKind,
    rules_accepted: bool,
    receipt_email: str | None,
    idempotency_key: str,
    now: dt.datetime,
    today: dt.date,
    pay_all: bool = False,
    save_card: bool = False,
    limits: Limits = Limits(),
) -> Payment:
    """D5 / H1: check the request, store the PENDING payment and its allocations, ask the gateway.

    The same ``idempotency_key`` with the same request returns the first payment (nothing new is
    charged); with a different request it is :class:`IdempotencyKeyReused`. Raises a list of problems as
    an :class:`ExceptionGroup` of :class:`DomainError` when several fields are wrong.
    """
    key = (idempotency_key or "").strip()
    if not key:
        raise FieldRequired(field=["input", "idempotencyKey"])
    if len(key) > MAX_KEY_LENGTH:
        raise DomainError(
            field=["input", "idempotencyKey"], message=f"Ключ длиннее {MAX_KEY_LENGTH} символов"
        )
    email = (receipt_email or "").strip().lower() or None
    digest = fingerprint(lines, method, email, pay_all)
    found = await _existing(session, user_id, key)
    if found is not None:
        if found.request_fingerprint != digest:
            raise IdempotencyKeyReused(field=["input", "idempotencyKey"])
        return found

    errors: list[DomainError] = []
    if not rules_accepted:
        errors.append(RulesNotAccepted(field=["input", "acceptRules"]))
    if email is not None and not _EMAIL.match(email):
        errors.append(InvalidReceiptEmail(field=["input", "receiptEmail"]))
    if not lines:
        errors.append(FieldRequired(field=["input", "accounts" if pay_all else "suppliers"]))
    linked = await linked_account_ids(session, user_id)
    account_ids = list(dict.fromkeys(line.account_id for line in lines))
    if pay_all:
        if len(linked) < 2:
            raise PayAllUnavailable(field=["input"])
        if len(account_ids) > limits.max_accounts:
            errors.append(
                TooManyAccounts(
                    field=["input", "accounts"],
                    message=f"{TooManyAccounts.message}: не более {limits.max_accounts}",
                    limit=limits.max_accounts,
                )
            )
    for account_id in account_ids:
        if account_id not in linked:
            field = next(line.field for line in lines if line.account_id == account_id)
            errors.append(
                AccountNotFound(field=[*field[:-2], "accountId"] if pay_all else ["input", "accountId"])
            )
    visible = [account_id for account_id in account_ids if account_id in linked]
    suppliers = await due_lines(session, visible) if visible else {}
    seen: set[tuple[int, int]] = set()
    for line in lines:
        if line.account_id not in suppliers:
            continue
        if line.supplier_id not in {due.supplier_id for due in suppliers[line.account_id]}:
            errors.append(SupplierNotOfAccount(field=[*line.field, "supplierId"]))
        elif (line.account_id, line.supplier_id) in seen:
            errors.append(DuplicateLine(field=[*line.field, "supplierId"]))
        seen.add((line.account_id, line.supplier_id))
        if line.amount != line.amount.quantize(CENT):
            errors.append(InvalidAmount(field=[*line.field, "amount"]))
        elif line.amount < MIN_AMOUNT:
            errors.append(AmountTooSmall(field=[*line.field, "amount"], minimum=MIN_AMOUNT))
    total = sum((line.amount for line in lines), billing.ZERO).quantize(CENT)
    if total > limits.max_total:
        errors.append(
            TotalTooLarge(
                field=["input"],
                message=f"{TotalTooLarge.message}: не более {rub(limits.max_total)}",
                limit=limits.max_total,
            )
        )
    if errors:
        raise ExceptionGroup("invalid payment", errors)

    gateway = gateways.current
    payment = Payment(
        user_id=user_id,
        status=PaymentStatus.PENDING,
        method=method,
        amount=total,
        currency="RUB",
        gateway=gateway.name,
        idempotency_key=key,
        request_fingerprint=digest,
        receipt_email=email,
        rules_accepted_at=now,
        is_autopay=False,
        created_at=now,
        updated_at=now,
    )
    touch(session, users=[user_id], accounts=account_ids)  # the payment shows in the accounts' history
    try:
        async with savepoint(session):  # a concurrent request with the same key may win
            session.add(payment)
            await session.flush()
    except IntegrityError:
        found = await _existing(session, user_id, key)  # a concurrent request with the same key won
        if found is None:
            raise
        if found.request_fingerprint != digest:
            raise IdempotencyKeyReused(field=["input", "idempotencyKey"]) from None
        return found
    period = month_start(today)
    for line in lines:
        session.add(
            PaymentAllocation(
                payment_id=payment.id,
                account_id=line.account_id,
                supplier_id=line.supplier_id,
                period=period,
                amount=line.amount.quantize(CENT),
            )
        )
    session.add(PaymentStatusChange(payment_id=payment.id, status=PaymentStatus.PENDING, changed_at=now))
    numbers = await _account_numbers(session, account_ids)
    request = PaymentRequest(
        payment_id=payment.id,
        amount=total,
        method=method,
        description=f"Оплата по лицевым счетам {', '.join(numbers)}",
        idempotency_key=f"kabinet-{user_id}-{key}"[:64],
        return_url=limits.return_url,
        save_card=save_card and method is PaymentMethodKind.CARD,
    )
    try:
        created = await gateway.create(session, request)
    except GatewayError as error:
        log.warning("payment %s: gateway %s failed: %s", payment.id, gateway.name, error)
        raise GatewayUnavailable() from error
    payment.gateway_payment_id = created.gateway_payment_id
    payment.confirmation_url = created.confirmation_url
    payment.sbp_payload = created.sbp_payload
    await session.flush()
    emit(session, payment_channel(payment.id), _event(payment, now))
    if created.status is not PaymentStatus.PENDING:
        await apply_status(session, payment, created.status, now=now)
    return payment


async def _account_numbers(session: AsyncSession, account_ids: Sequence[int]) -> list[str]:
    rows = dict(
        (await session.execute(select(Account.id, Account.number).where(Account.id.in_(account_ids)))).all()
    )
    return [rows[account_id] for account_id in account_ids if account_id in rows]


def _event(payment: Payment, at: dt.datetime) -> dict[str, Any]:
    return {
        "type": "payment-status",
        "paymentId": payment.id,
        "status": payment.status.value,
        "at": at.isoformat(),
    }


# --- status changes -----------------------------------------------------------------------------------------


async def lock_payment(session: AsyncSession, payment_id: int) -> Payment | None:
    """The payment row, locked until the end of the transaction (status changes are serialized)."""
    return (
        await session.execute(
            select(Payment)
            .where(Payment.id == payment_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def apply_status(
    session: AsyncSession,
    payment: Payment,
    status: PaymentStatus,
    *,
    now: dt.datetime,
    reason: str | None = None,
    saved_card: SavedCard | None = None,
) -> bool:
    """Move ``payment`` to ``status`` if that is a forward step; False (nothing done) otherwise.

    Stores the step, saves the card the gateway returned, notifies the user, queues the e-mail receipt
    and rings ``payment:<id>`` — all in the caller's transaction.
    """
    locked = await lock_payment(session, payment.id)
    assert locked is not None
    if status not in ALLOWED.get(locked.status, frozenset()):
        return False
    locked.status = status
    locked.updated_at = now
    if status is PaymentStatus.SUCCEEDED:
        locked.paid_at = now
    if status in (PaymentStatus.FAILED, PaymentStatus.CANCELED):
        locked.failure_reason = reason or (
            "Оплата отменена" if status is PaymentStatus.CANCELED else "Оплата не прошла"
        )
    session.add(PaymentStatusChange(payment_id=locked.id, status=status, changed_at=now, reason=reason))
    if saved_card is not None and status is PaymentStatus.SUCCEEDED:
        await session.execute(
            insert(PaymentMethod)
            .values(
                user_id=locked.user_id,
                gateway=locked.gateway,
                token=saved_card.token,
                card_brand=saved_card.brand,
                card_last4=saved_card.last4[-4:],
                expiry_month=saved_card.expiry_month,
                expiry_year=saved_card.expiry_year,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["gateway", "token"])
        )
    await session.flush()
    allocations = (
        await session.execute(
            select(PaymentAllocation.account_id, Account.number)
            .join(Account, Account.id == PaymentAllocation.account_id)
            .where(PaymentAllocation.payment_id == locked.id)
            .order_by(PaymentAllocation.id)
        )
    ).all()
    numbers = list(dict.fromkeys(number for _, number in allocations))
    account_ids = list(dict.fromkeys(account_id for account_id, _ in allocations))
    touch(session, users=[locked.user_id], accounts=account_ids)  # status, balances, saved cards
    title, body = _message(locked, numbers)
    await notify(
        session,
        user_id=locked.user_id,
        category=NotificationCategory.PAYMENTS,
        title=title,
        body=body,
        account_id=account_ids[0] if len(account_ids) == 1 else None,
        data={"paymentId": locked.id, "status": status.value, "amount": str(locked.amount)},
    )
    if status is PaymentStatus.SUCCEEDED and locked.receipt_email:
        outbox.enqueue(
            session,
            OutboxChannel.EMAIL,
            locked.receipt_email,
            _receipt_text(locked, numbers, now),
            subject="Квитанция об оплате",
            data={"paymentId": locked.id},
        )
    emit(session, payment_channel(locked.id), _event(locked, now))
    return True


def _message(payment: Payment, numbers: list[str]) -> tuple[str, str]:
    accounts = ("лицевому счету " if len(numbers) == 1 else "лицевым счетам ") + ", ".join(numbers)
    prefix = "Автоплатёж" if payment.is_autopay else "Платёж"
    amount = rub(payment.amount)
    match payment.status:
        case PaymentStatus.SUCCEEDED:
            return "Оплата прошла успешно", f"{prefix} на сумму {amount} по {accounts} зачислен."
        case PaymentStatus.FAILED:
            return (
                "Оплата не прошла",
                f"{prefix} на сумму {amount} по {accounts} не прошёл: {payment.failure_reason}.",
            )
        case PaymentStatus.CANCELED:
            return "Оплата отменена", f"{prefix} на сумму {amount} по {accounts} отменён."
        case _:
            return "Платёж возвращён", f"{prefix} на сумму {amount} по {accounts} возвращён."


def _receipt_text(payment: Payment, numbers: list[str], now: dt.datetime) -> str:
    return (
        f"Квитанция об оплате № {payment.id} от {now:%d.%m.%Y %H:%M} UTC.\n"
        f"Лицевые счета: {', '.join(numbers)}.\nСумма: {rub(payment.amount)}.\n"
        f"Способ оплаты: {'СБП' if payment.method is PaymentMethodKind.SBP else 'банковская карта'}."
    )


# --- webhooks -----------------------------------------------------------------------------------------------


async def handle_webhook(
    session: AsyncSession,
    gateways: Gateways,
    provider: str,
    body: bytes,
    headers: dict[str, str],
    *,
    now: dt.datetime,
) -> str:
    """Verify, de-duplicate and apply one gateway webhook in the caller's unit of work. Returns what happened.

    ``"applied"``, ``"ignored"`` (not a forward step: late or out of order), ``"duplicate"`` (event id
    seen before) or ``"unknown"`` (no such payment). Raises :class:`WebhookRejected` for forged, stale or
    malformed requests (nothing is stored then).
    """
    try:
        gateway = gateways.get(provider)
    except KeyError:
        raise WebhookRejected(f"unknown provider {provider}") from None
    event = await gateway.parse_webhook(body, headers, now=now)
    touch(session, private=WebhookEvent)
    stored = (
        await session.execute(
            insert(WebhookEvent)
            .values(provider=provider, event_id=event.event_id, payload=event.payload, received_at=now)
            .on_conflict_do_nothing(index_elements=["provider", "event_id"])
            .returning(WebhookEvent.id)
        )
    ).scalar_one_or_none()
    if stored is None:
        return "duplicate"
    payment = (
        await session.execute(
            select(Payment).where(
                Payment.gateway == provider, Payment.gateway_payment_id == event.gateway_payment_id
            )
        )
    ).scalar_one_or_none()
    outcome = "unknown"
    if payment is not None:
        changed = await apply_status(
            session, payment, event.status, now=now, reason=event.reason, saved_card=event.saved_card
        )
        outcome = "applied" if changed else "ignored"
    await session.execute(update(WebhookEvent).where(WebhookEvent.id == stored).values(processed_at=now))
    return outcome


# --- the periodic re-check ----------------------------------------------------------------------------------


async def recheck_pending(
    units: Units, gateways: Gateways, now: dt.datetime, *, older_than: dt.timedelta, limit: int = 100
) -> int:
    """Ask the gateway about PENDING payments older than ``older_than``; returns how many changed.

    Each payment is re-checked in a unit of work of its own (``units``), so one failure loses nothing else.
    A sandbox payment nobody paid within the gateway's ``pending_timeout`` is CANCELED (a real acquirer
    expires them the same way).
    """
    async with units() as uow:
        rows = (
            await uow.session.execute(
                select(Payment.id, Payment.gateway, Payment.gateway_payment_id, Payment.created_at)
                .where(
                    Payment.status == PaymentStatus.PENDING,
                    Payment.created_at < now - older_than,
                    Payment.gateway_payment_id.is_not(None),
                )
                .order_by(Payment.created_at)
                .limit(limit)
            )
        ).all()
    changed = 0
    for payment_id, gateway_name, gateway_payment_id, created_at in rows:
        async with units() as uow:
            session = uow.session
            try:
                gateway = gateways.get(gateway_name)
                status, reason = await gateway.status(session, gateway_payment_id or "")
            except (KeyError, GatewayError) as error:
                log.warning("re-check of payment %s failed: %s", payment_id, error)
                continue
            timeout = getattr(gateway, "pending_timeout", None)
            if status is PaymentStatus.PENDING and timeout is not None and now - created_at > timeout:
                status, reason = PaymentStatus.CANCELED, "Время ожидания оплаты истекло"
            if status is PaymentStatus.PENDING:
                continue
            payment = await session.get(Payment, payment_id)
            assert payment is not None
            if await apply_status(session, payment, status, now=now, reason=reason):
                changed += 1
    return changed


# --- J7 autopay ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AutopayOutcome:
    """What one autopay round did."""

    charged: int = 0
    skipped: int = 0


async def run_autopay(
    units: Units, gateways: Gateways, now: dt.datetime, *, time_zone: str = "Europe/Moscow"
) -> AutopayOutcome:
    """J7: pay each account's newest bill with its saved card, once per account and billed period.

    ``autopay_runs`` (unique account + period) is claimed first, so a second run — even a concurrent
    one — does nothing. Over the limit or nothing due: the run is recorded as skipped (the user is told
    when it was over the limit). Every charge notifies the user (success or failure). Each account is
    handled in a unit of work of its own (``units``).
    """
    today = local_today(now, time_zone)
    latest = (
        select(Receipt.account_id, func.max(Receipt.period).label("period"))
        .group_by(Receipt.account_id)
        .subquery()
    )
    async with units() as uow:
        rows = (
            await uow.session.execute(
                select(
                    AutopaySetting,
                    UserAccount.user_id,
                    UserAccount.account_id,
                    PaymentMethod,
                    latest.c.period,
                )
                .join(UserAccount, UserAccount.id == AutopaySetting.user_account_id)
                .join(PaymentMethod, PaymentMethod.id == AutopaySetting.payment_method_id)
                .join(User, User.id == UserAccount.user_id)
                .join(latest, latest.c.account_id == UserAccount.account_id)
                .where(
                    AutopaySetting.enabled.is_(True),
                    PaymentMethod.revoked_at.is_(None),
                    User.deleted_at.is_(None),
                    ~exists().where(  # bills already handled are not looked at again every round
                        AutopayRun.account_id == UserAccount.account_id, AutopayRun.period == latest.c.period
                    ),
                )
                .order_by(AutopaySetting.id)
            )
        ).all()
    charged = skipped = 0
    for row in rows:
        setting: AutopaySetting = row[0]
        user_id: int = row[1]
        account_id: int = row[2]
        card: PaymentMethod = row[3]
        period: dt.date = row[4]
        if setting.day_of_month and today.day < setting.day_of_month:
            continue
        async with units() as uow:
            session = uow.session
            touch(session, private=AutopayRun)  # the round's own bookkeeping
            run_id = (
                await session.execute(
                    insert(AutopayRun)
                    .values(account_id=account_id, period=period, created_at=now)
                    .on_conflict_do_nothing(index_elements=["account_id", "period"])
                    .returning(AutopayRun.id)
                )
            ).scalar_one_or_none()
            if run_id is None:
                continue  # this bill was handled already
            lines = [line for line in (await due_lines(session, [account_id]))[account_id] if line.due > 0]
            total = sum((line.due for line in lines), billing.ZERO)
            reason = None
            if total < MIN_AMOUNT:
                reason = "nothing due"
            elif setting.amount_limit is not None and total > setting.amount_limit:
                reason = "over the limit"
                number = (await _account_numbers(session, [account_id]))[0]
                await notify(
                    session,
                    user_id=user_id,
                    category=NotificationCategory.PAYMENTS,
                    title="Автоплатёж не выполнен",
                    body=(
                        f"Сумма к оплате {rub(total)} по лицевому счету {number} превышает лимит автоплатежа "
                        f"{rub(setting.amount_limit)}. Оплатите счёт вручную."
                    ),
                    account_id=account_id,
                    data={"accountId": account_id, "period": period.isoformat()},
                )
            if reason is not None:
                await session.execute(
                    update(AutopayRun).where(AutopayRun.id == run_id).values(skipped_reason=reason)
                )
                skipped += 1
                continue
            payment = await _autopay_payment(
                session, gateways, user_id, account_id, card, lines, total, period, today, now
            )
            await session.execute(
                update(AutopayRun)
                .where(AutopayRun.id == run_id)
                .values(
                    payment_id=payment.id if payment else None,
                    skipped_reason=None if payment else "gateway unavailable",
                )
            )
            charged += 1 if payment else 0
            skipped += 0 if payment else 1
    return AutopayOutcome(charged, skipped)


async def _autopay_payment(
    session: AsyncSession,
    gateways: Gateways,
    user_id: int,
    account_id: int,
    card: PaymentMethod,
    lines: list[DueLine],
    total: Decimal,
    period: dt.date,
    today: dt.date,
    now: dt.datetime,
) -> Payment | None:
    key = f"autopay-{account_id}-{period:%Y-%m}"
    touch(session, users=[user_id], accounts=[account_id])
    payment = Payment(
        user_id=user_id,
        status=PaymentStatus.PENDING,
        method=PaymentMethodKind.CARD,
        amount=total,
        currency="RUB",
        gateway=card.gateway,
        idempotency_key=key,
        request_fingerprint=hashlib.sha256(key.encode()).hexdigest(),
        is_autopay=True,
        payment_method_id=card.id,
        created_at=now,
        updated_at=now,
    )
    session.add(payment)
    await session.flush()
    for line in lines:
        session.add(
            PaymentAllocation(
                payment_id=payment.id,
                account_id=account_id,
                supplier_id=line.supplier_id,
                period=month_start(today),
                amount=line.due,
            )
        )
    session.add(PaymentStatusChange(payment_id=payment.id, status=PaymentStatus.PENDING, changed_at=now))
    number = (await _account_numbers(session, [account_id]))[0]
    request = PaymentRequest(
        payment_id=payment.id,
        amount=total,
        method=PaymentMethodKind.CARD,
        description=f"Автоплатёж по лицевому счету {number} за {period:%m.%Y}",
        idempotency_key=f"kabinet-{key}",
        return_url="",
    )
    try:
        created, reason = await gateways.get(card.gateway).charge_saved(session, request, card.token)
    except (KeyError, GatewayError) as error:
        log.warning("autopay of account %s failed at the gateway: %s", account_id, error)
        await session.delete(payment)
        await session.flush()
        return None
    payment.gateway_payment_id = created.gateway_payment_id
    await session.flush()
    if created.status is not PaymentStatus.PENDING:
        await apply_status(session, payment, created.status, now=now, reason=reason)
    return payment


# --- J7 settings --------------------------------------------------------------------------------------------


async def saved_cards(session: AsyncSession, user_id: int) -> list[PaymentMethod]:
    """The caller's saved cards (not revoked), newest first."""
    return list(
        (
            await session.execute(
                select(PaymentMethod)
                .where(PaymentMethod.user_id == user_id, PaymentMethod.revoked_at.is_(None))
                .order_by(PaymentMethod.created_at.desc(), PaymentMethod.id.desc())
            )
        ).scalars()
    )


async def set_autopay(
    session: AsyncSession,
    *,
    user_id: int,
    account_id: int,
    card_id: int | None,
    amount_limit: Decimal | None,
    day_of_month: int | None,
    enabled: bool,
    now: dt.datetime,
) -> AutopaySetting | None:
    """J7: connect, change or switch off autopay of one linked account (None when switched off)."""
    link = (
        await session.execute(
            select(UserAccount).where(UserAccount.user_id == user_id, UserAccount.account_id == account_id)
        )
    ).scalar_one_or_none()
    if link is None:
        raise AccountNotFound(field=["input", "accountId"])
    touch(session, users=[user_id])  # the autopay setting is on the user's own link
    current = (
        await session.execute(select(AutopaySetting).where(AutopaySetting.user_account_id == link.id))
    ).scalar_one_or_none()
    if not enabled:
        if current is not None:
            await session.delete(current)
            await session.flush()
        return None
    card = None
    if card_id is not None:
        card = (
            await session.execute(
                select(PaymentMethod).where(
                    PaymentMethod.id == card_id,
                    PaymentMethod.user_id == user_id,
                    PaymentMethod.revoked_at.is_(None),
                )
            )
        ).scalar_one_or_none()
    if card is None:
        raise CardNotFound(field=["input", "cardId"])
    if amount_limit is not None and amount_limit < MIN_AMOUNT:
        raise AmountTooSmall(field=["input", "amountLimit"], minimum=MIN_AMOUNT)
    if day_of_month is not None and not 1 <= day_of_month <= 28:
        raise DomainError(field=["input", "dayOfMonth"], message="День месяца должен быть от 1 до 28")
    if current is None:
        current = AutopaySetting(user_account_id=link.id, created_at=now)
        session.add(current)
    current.payment_method_id = card.id
    current.amount_limit = amount_limit
    current.day_of_month = day_of_month
    current.enabled = True
    current.updated_at = now
    await session.flush()
    return current


async def payments_of(
    session: AsyncSession, user_id: int | None, role: str, payment_ids: Sequence[int]
) -> dict[int, Payment]:
    """Payments by id that the caller may see: their own (OPERATOR and ADMIN see all)."""
    from services.roles import reads_customer_data

    stmt = select(Payment).where(Payment.id.in_(payment_ids))
    if not reads_customer_data(role):
        stmt = stmt.where(Payment.user_id == user_id)
    return {row.id: row for row in (await session.execute(stmt)).scalars()}


async def allocations_of(session: AsyncSession, payment_ids: Sequence[int]) -> list[PaymentAllocation]:
    """Allocations of many payments, in id order."""
    return list(
        (
            await session.execute(
                select(PaymentAllocation)
                .where(PaymentAllocation.payment_id.in_(payment_ids))
                .order_by(PaymentAllocation.id)
            )
        ).scalars()
    )


async def history_of(session: AsyncSession, payment_ids: Sequence[int]) -> list[PaymentStatusChange]:
    """Status steps of many payments, oldest first."""
    return list(
        (
            await session.execute(
                select(PaymentStatusChange)
                .where(PaymentStatusChange.payment_id.in_(payment_ids))
                .order_by(PaymentStatusChange.changed_at, PaymentStatusChange.id)
            )
        ).scalars()
    )


# --- scheduled jobs (services.scheduler.DEFAULT_JOBS) -------------------------------------------------------


async def recheck_job(units: Units, now: dt.datetime) -> int:
    """Scheduled: re-check stuck PENDING payments with their gateways."""
    from services.gateways import installed

    gateways = installed()
    return await recheck_pending(units, gateways, now, older_than=gateways.recheck_after)


async def autopay_job(units: Units, now: dt.datetime) -> int:
    """Scheduled: J7 autopay of new bills; returns the number of charges made."""
    from services.gateways import installed

    gateways = installed()
    return (await run_autopay(units, gateways, now, time_zone=gateways.time_zone)).charged
