"""Payments: thin resolvers, loaders and the live status loop (D5, H1, J7, K2)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from models.payments import Payment, PaymentAllocation, PaymentMethod, PaymentMethodKind, PaymentStatusChange
from resolvers.context import Info
from resolvers.loaders import Loader, grouped
from resolvers.permissions import require_viewer
from services import payments
from services.accounts import linked_account_ids
from services.errors import DomainError
from services.gateways import gateways_of
from services.roles import reads_customer_data


class PaymentById(Loader[int, Payment | None]):
    """Payments by id (visibility is applied by the callers)."""

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[Payment | None]:
        found = await payments.payments_of(session, None, "ADMIN", keys)
        return [found.get(key) for key in keys]


class AllocationsByPaymentId(Loader[int, list[PaymentAllocation]]):
    """A payment's allocations per account and supplier."""

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[list[PaymentAllocation]]:
        return grouped(await payments.allocations_of(session, keys), keys, "payment_id")


class StatusChangesByPaymentId(Loader[int, list[PaymentStatusChange]]):
    """A payment's status steps, oldest first."""

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[list[PaymentStatusChange]]:
        return grouped(await payments.history_of(session, keys), keys, "payment_id")


class DueLinesByAccountId(Loader[int, list[payments.DueLine]]):
    """What is due per supplier, for many accounts at once."""

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[list[payments.DueLine]]:
        found = await payments.due_lines(session, keys)
        return [found[key] for key in keys]


class CardById(Loader[int, PaymentMethod | None]):
    """Saved cards by id."""

    async def load_batch(self, session: AsyncSession, keys: list[int]) -> list[PaymentMethod | None]:
        from sqlalchemy import select

        rows = (await session.execute(select(PaymentMethod).where(PaymentMethod.id.in_(keys)))).scalars()
        found = {row.id: row for row in rows}
        return [found.get(key) for key in keys]


def _visible(info: Info, payment: Payment | None) -> Payment | None:
    viewer = info.context.viewer
    if payment is None or viewer is None:
        return None
    if payment.user_id == viewer.user_id or reads_customer_data(viewer.role):
        return payment
    return None


async def payments_by_ids(info: Info, ids: list[int]) -> list[Payment | None]:
    """Payments by id; None where missing or someone else's (staff see all)."""
    rows = await info.context.loader(PaymentById).load_many(ids)
    return [_visible(info, row) for row in rows]


async def checkout(info: Info, account_ids: list[int] | None) -> tuple[list[int], bool]:
    """The accounts to show in the payment form (all linked ones when None) and whether H1 is offered."""
    viewer = require_viewer(info)
    async with info.context.session() as session:
        linked = await linked_account_ids(session, viewer.user_id)
    wanted = linked if account_ids is None else [i for i in dict.fromkeys(account_ids) if i in linked]
    return wanted, len(linked) > 1


def limits(info: Info) -> payments.Limits:
    """H1 limits and the return URL from the settings."""
    settings = info.context.settings
    public = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    return payments.Limits(
        max_accounts=settings.pay_all_max_accounts,
        max_total=settings.pay_all_max_total,
        return_url=settings.payment_return_url or f"{public}/",
    )


async def create_payment(
    info: Info,
    *,
    lines: Sequence[payments.Line],
    method: PaymentMethodKind,
    accept_rules: bool,
    receipt_email: str | None,
    idempotency_key: str,
    pay_all: bool,
    save_card: bool,
) -> tuple[Payment | None, list[DomainError]]:
    """D5 / H1: create (or, for a retried key, return) a payment."""
    viewer = require_viewer(info)
    context = info.context
    try:
        async with context.unit_of_work() as uow:
            payment = await payments.create_payment(
                uow.session,
                gateways_of(context.state),
                user_id=viewer.user_id,
                lines=lines,
                method=method,
                rules_accepted=accept_rules,
                receipt_email=receipt_email,
                idempotency_key=idempotency_key,
                now=context.now,
                today=context.today,
                pay_all=pay_all,
                save_card=save_card,
                limits=limits(info),
            )
    except DomainError as error:
        return None, [error]
    except ExceptionGroup as group:
        return None, [error for error in group.exceptions if isinstance(error, DomainError)]
    return payment, []


async def saved_cards(info: Info) -> list[PaymentMethod]:
    """J7: the caller's saved cards."""
    viewer = require_viewer(info)
    async with info.context.session() as session:
        return await payments.saved_cards(session, viewer.user_id)


async def set_autopay(
    info: Info,
    *,
    account_id: int,
    card_id: int | None,
    amount_limit: Decimal | None,
    day_of_month: int | None,
    enabled: bool,
) -> tuple[bool, list[DomainError]]:
    """J7: connect, change or switch off autopay of one account."""
    viewer = require_viewer(info)
    try:
        async with info.context.unit_of_work() as uow:
            found = await payments.set_autopay(
                uow.session,
                user_id=viewer.user_id,
                account_id=account_id,
                card_id=card_id,
                amount_limit=amount_limit,
                day_of_month=day_of_month,
                enabled=enabled,
                now=info.context.now,
            )
    except DomainError as error:
        return False, [error]
    return found is not None, []


async def live_status(
    info: Info, payment_id: int
) -> AsyncIterator[tuple[Payment, PaymentStatusChange | None]]:
    """K2: the payment's current state at once, then every status change, until a final status.

    The bus subscription opens before the first read, and each event (or resync) re-reads the payment's
    steps after the last one delivered, so no change is missed or repeated.
    """
    viewer = require_viewer(info)
    context = info.context
    async with context.state.bus.subscribe(payments.payment_channel(payment_id)) as bell:
        delivered = 0
        while True:
            await context.new_event_scope()
            async with context.reading() as session:
                found = await payments.payments_of(session, viewer.user_id, viewer.role, [payment_id])
                payment = found.get(payment_id)
                if payment is None:
                    raise payments.PaymentNotFound()
                steps = await payments.history_of(session, [payment_id])
            fresh = steps[delivered:] if delivered else steps[-1:]
            delivered = len(steps)
            for step in fresh:
                yield payment, step
            if payment.status in payments.FINAL:
                return  # nothing more will change (a refund, much later, is a new subscription)
            await bell.get()
            bell.drain()
