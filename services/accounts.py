"""Accounts (лицевые счета) and their links to users: who may see which account.

A customer sees an account only while it is linked to them; OPERATOR and ADMIN see every account, an
ANALYST none (the role matrix is :mod:`services.roles`). Every
path to account data (fields, ``node(id:)``, mutations) asks :func:`visible_account_ids` or
:func:`require_linked_account`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.accounts import Account, LinkAttempt, UserAccount
from models.billing import Receipt
from models.branches import Branch
from models.identity import User
from models.payments import AutopaySetting
from services.branches import window_state_on
from services.errors import DomainError, NotFound
from services.roles import STAFF_ROLES as STAFF_ROLES  # re-exported for older imports
from services.roles import reads_customer_data
from services.unit_of_work import touch


class AccountNotFound(NotFound):
    """The account does not exist or is not linked to the caller (never told apart)."""

    code = "ACCOUNT_NOT_FOUND"
    message = "Данный лицевой счет не найден"


async def linked_account_ids(session: AsyncSession, user_id: int) -> list[int]:
    """Ids of the accounts linked to ``user_id``, in the order they were linked."""
    rows = await session.execute(
        select(UserAccount.account_id)
        .where(UserAccount.user_id == user_id)
        .order_by(UserAccount.linked_at, UserAccount.id)
    )
    return list(rows.scalars())


async def visible_account_ids(
    session: AsyncSession, user_id: int, role: str, account_ids: Iterable[int]
) -> set[int]:
    """The subset of ``account_ids`` the caller may see."""
    wanted = set(account_ids)
    if reads_customer_data(role):  # OPERATOR, ADMIN; an ANALYST sees no account (services.roles)
        return wanted
    return wanted & set(await linked_account_ids(session, user_id))


async def require_linked_account(session: AsyncSession, user_id: int, account_id: int) -> UserAccount:
    """The caller's link to ``account_id``; :class:`AccountNotFound` when it is not theirs."""
    link = (
        await session.execute(
            select(UserAccount).where(UserAccount.user_id == user_id, UserAccount.account_id == account_id)
        )
    ).scalar_one_or_none()
    if link is None:
        raise AccountNotFound(field=["input", "accountId"])
    return link


# ---------------------------------------------------------------------------------------------------------
# B1–B4, J5: linking, unlinking, renaming, receipt delivery, the reading-window countdown
# ---------------------------------------------------------------------------------------------------------

MAX_FAILED_LINK_ATTEMPTS = 10
"""B1: failed link attempts allowed within :data:`LINK_ATTEMPT_WINDOW` (numbers cannot be harvested)."""

LINK_ATTEMPT_WINDOW = dt.timedelta(hours=24)

DISPLAY_NAME_MAX = 100

UNLINK_NOTICE = (
    "Лицевой счет отключен от Личного кабинета. Сервис «Автоплатеж» по нему отключен автоматически. "
    "Если Вы не отменили услугу получения электронной квитанции на электронную почту, то для отключения "
    "данной услуги обратитесь в службу поддержки клиентов компании."
)
"""B2: what the user is told after unlinking (the manual's «Внимание» block of §2.5)."""


class AccountProofMismatch(DomainError):
    """B1: the account exists but the proof of ownership does not match."""

    code = "ACCOUNT_PROOF_MISMATCH"
    message = (
        "Данные для подтверждения не совпадают: укажите сумму последней квитанции (до копеек) или, если "
        "квитанций по лицевому счету еще не было, фамилию владельца"
    )


class AccountAlreadyLinked(DomainError):
    """B1: the account is already linked to this user."""

    code = "ACCOUNT_ALREADY_LINKED"
    message = "Лицевой счет уже добавлен в Личный кабинет"


class TooManyLinkAttempts(DomainError):
    """B1: too many failed attempts recently; ``retry_after`` says when the next one is accepted."""

    code = "TOO_MANY_LINK_ATTEMPTS"
    message = "Превышено количество попыток добавления лицевого счета. Повторите попытку позже"


class DisplayNameTooLong(DomainError):
    """B3: the display name is longer than the column allows."""

    code = "DISPLAY_NAME_TOO_LONG"
    message = "Наименование лицевого счета не должно превышать 100 символов"


class EReceiptNotAllowed(DomainError):
    """J5: the account does not offer electronic receipts."""

    code = "E_RECEIPT_NOT_ALLOWED"
    message = "Для данного лицевого счета получение электронной квитанции недоступно"


class EmailNotConfirmed(DomainError):
    """J5: no address given and the profile e-mail is missing or unconfirmed."""

    code = "EMAIL_NOT_CONFIRMED"
    message = "Подтвердить адрес электронной почты"


class InvalidEmail(DomainError):
    """J5: the given address is not an e-mail address."""

    code = "INVALID_EMAIL"
    message = "Некорректный адрес электронной почты"


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _normalize_name(value: str) -> str:
    return " ".join(value.strip().lower().replace("ё", "е").split())


def _parse_amount(value: str) -> Decimal | None:
    text_ = value.strip().replace(" ", "").replace("\u00a0", "").replace(",", ".").removesuffix("₽")
    try:
        parsed = Decimal(text_)
    except InvalidOperation:
        return None
    return parsed if parsed.is_finite() else None


async def link_account(
    session: AsyncSession,
    *,
    user_id: int,
    branch_id: int,
    number: str,
    proof: str,
    e_receipt: bool,
    now: dt.datetime,
    client_ip: str | None = None,
) -> UserAccount:
    """B1: link the account ``number`` of ``branch_id`` to the user after checking the proof of ownership.

    The proof is the total of the latest receipt to the kopeck, or the owner's last name when the account
    has no receipt yet. Every attempt is recorded; after :data:`MAX_FAILED_LINK_ATTEMPTS` failures within
    :data:`LINK_ATTEMPT_WINDOW` further attempts are refused without looking the number up. The caller
    commits (failed attempts too: they must count).

    The user's row is locked first (``SELECT … FOR UPDATE``, held until the caller commits), so one user's
    attempts are counted and checked one at a time: however many run at once, at most
    :data:`MAX_FAILED_LINK_ATTEMPTS` proofs are checked (issue 15, finding 9).
    """
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())
    since = now - LINK_ATTEMPT_WINDOW
    failures = (
        await session.execute(
            select(func.count(), func.min(LinkAttempt.created_at)).where(
                LinkAttempt.user_id == user_id,
                LinkAttempt.succeeded.is_(False),
                LinkAttempt.created_at > since,
            )
        )
    ).one()
    if failures[0] >= MAX_FAILED_LINK_ATTEMPTS:
        raise TooManyLinkAttempts(retry_after=failures[1] + LINK_ATTEMPT_WINDOW)

    number = number.strip()

    async def attempt(succeeded: bool) -> None:
        touch(session, users=[user_id])  # the attempt, and on success the link: the user's answers
        session.add(
            LinkAttempt(
                user_id=user_id,
                branch_id=branch_id if branch is not None else None,
                number=number[:20] or None,
                succeeded=succeeded,
                client_ip=client_ip,
                created_at=now,
            )
        )
        await session.flush()

    branch = await session.get(Branch, branch_id)
    account = None
    if branch is not None and number:
        account = (
            await session.execute(
                select(Account).where(
                    Account.branch_id == branch_id, Account.number == number, Account.closed_at.is_(None)
                )
            )
        ).scalar_one_or_none()
    if account is None:
        await attempt(False)
        raise AccountNotFound(field=["input", "number"])

    latest_total = (
        await session.execute(
            select(Receipt.total_due)
            .where(Receipt.account_id == account.id)
            .order_by(Receipt.period.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if latest_total is not None:
        amount = _parse_amount(proof)
        matches = amount is not None and amount == latest_total
    else:
        matches = bool(proof.strip()) and _normalize_name(proof) == _normalize_name(account.owner_last_name)
    if not matches:
        await attempt(False)
        raise AccountProofMismatch(field=["input", "proof"])

    existing = (
        await session.execute(
            select(UserAccount).where(UserAccount.user_id == user_id, UserAccount.account_id == account.id)
        )
    ).scalar_one_or_none()
    if existing is not None:
        raise AccountAlreadyLinked(field=["input", "number"])
    if e_receipt and not account.e_receipt_allowed:
        raise EReceiptNotAllowed(field=["input", "eReceipt"])
    await attempt(True)
    link = UserAccount(
        user_id=user_id, account_id=account.id, e_receipt_enabled=bool(e_receipt), linked_at=now
    )
    session.add(link)
    await session.flush()
    return link


@dataclass(frozen=True, slots=True)
class Unlinked:
    """B2: what unlinking did."""

    account_id: int
    autopay_disabled: bool
    e_receipt_was_enabled: bool
    notice: str = UNLINK_NOTICE


async def unlink_account(session: AsyncSession, *, user_id: int, account_id: int) -> Unlinked:
    """B2: remove the link; its autopay setting goes with it (FK cascade, deleted explicitly here too).

    The e-receipt subscription is not cancelled by unlinking: the user is told to contact support.
    """
    link = await require_linked_account(session, user_id, account_id)
    autopay = (
        await session.execute(
            delete(AutopaySetting)
            .where(AutopaySetting.user_account_id == link.id)
            .returning(AutopaySetting.id)
        )
    ).first()
    e_receipt = link.e_receipt_enabled
    await session.execute(delete(UserAccount).where(UserAccount.id == link.id))
    touch(session, users=[user_id])
    return Unlinked(
        account_id=account_id, autopay_disabled=autopay is not None, e_receipt_was_enabled=e_receipt
    )


async def rename_account(
    session: AsyncSession, *, user_id: int, account_id: int, name: str | None
) -> UserAccount:
    """B3: set the display name of a linked account; empty clears it (the number is shown then)."""
    link = await require_linked_account(session, user_id, account_id)
    cleaned = " ".join((name or "").split()) or None
    if cleaned is not None and len(cleaned) > DISPLAY_NAME_MAX:
        raise DisplayNameTooLong(field=["input", "name"])
    link.display_name = cleaned
    touch(session, users=[user_id])  # the name is the user's own (other users of the account keep theirs)
    await session.flush()
    return link


async def set_receipt_delivery(
    session: AsyncSession, *, user_id: int, account_id: int, electronic: bool, email: str | None
) -> UserAccount:
    """J5: paper or electronic receipt for one linked account.

    Electronic needs an account that allows it and an address: the one given (kept on the link only — the
    profile e-mail does not change) or else the confirmed profile e-mail.
    """
    link = await require_linked_account(session, user_id, account_id)
    touch(session, users=[user_id])  # the delivery choice is on the user's own link
    if not electronic:
        link.e_receipt_enabled = False
        link.receipt_email = None
        await session.flush()
        return link
    account = await session.get(Account, account_id)
    if account is None or not account.e_receipt_allowed:
        raise EReceiptNotAllowed(field=["input", "electronic"])
    address = (email or "").strip().lower() or None
    if address is not None and not _EMAIL.match(address):
        raise InvalidEmail(field=["input", "email"])
    user = await session.get(User, user_id)
    profile_email = user.email if user is not None and user.email_confirmed_at is not None else None
    if address is None and profile_email is None:
        raise EmailNotConfirmed(field=["input", "email"])
    link.e_receipt_enabled = True
    link.receipt_email = None if address in (None, profile_email) else address
    await session.flush()
    return link


@dataclass(frozen=True, slots=True)
class WindowCountdown:
    """B4: the reading window of the current month as seen on ``today`` (in the branch's time zone)."""

    is_open: bool
    opens_on: dt.date  # the first day of the current window, or of the next one when this one is over
    closes_on: dt.date  # the last day of that window
    days_until_opens: int  # 0 while open
    days_until_closes: int  # days from today to ``closes_on`` (0: the window closes at the end of today)


def local_today(now: dt.datetime, time_zone: str) -> dt.date:
    """The date in ``time_zone`` at the instant ``now``."""
    return now.astimezone(ZoneInfo(time_zone)).date()


def window_countdown(today: dt.date, start_day: int, end_day: int) -> WindowCountdown:
    """B4: days until the reading window opens, or until it closes, for a window of days ``start_day``..
    ``end_day`` (inclusive) of each month; ``today`` is the date in the branch's time zone.

    Days past the end of a short month are clamped to its last day.
    """
    state = window_state_on(today, start_day, end_day, time_zone="")
    window = state.current or state.next
    return WindowCountdown(
        is_open=state.is_open,
        opens_on=window.opens,
        closes_on=window.closes,
        days_until_opens=0 if state.is_open else (window.opens - today).days,
        days_until_closes=(window.closes - today).days,
    )
