"""Periodic jobs that must run in one process only, however many are started.

The process that holds a PostgreSQL advisory lock (on a connection it keeps open) is the leader and
runs the jobs; the others retry now and then and take over when the leader's connection goes away.
Each job is also idempotent on its own (``scheduled_job_runs`` rows mark what was done), so a job that
runs twice by accident still notifies once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from models.accounts import Account, UserAccount
from models.billing import Receipt
from models.branches import Branch
from models.identity import User
from models.notifications import NotificationCategory, ScheduledJobRun
from services import payments
from services.analytics.refresh import refresh_job as analytics_refresh_job
from services.branches import window_state
from services.clock import now as clock_now
from services.exchange.feed import prune_job
from services.notifications import notify, notify_many
from services.unit_of_work import Units, touch

log = logging.getLogger("kabinet.scheduler")

RECEIPT_NEWS_WINDOW = dt.timedelta(days=7)
"""Receipts issued this recently are announced (older ones were before the job existed)."""

LOCK_KEY = 0x4B61_6269  # "Kabi": the advisory lock of the scheduler leader

Job = Callable[[Units, dt.datetime], Awaitable[int]]
"""A job: given a unit-of-work factory (``db.unit_of_work``) and the time, returns how much it did."""


async def claim_run(session: AsyncSession, job: str, key: str, now: dt.datetime) -> bool:
    """Record that ``job`` ran for ``key``; False if it already had (so the caller does nothing)."""
    touch(session, private=ScheduledJobRun)
    inserted = await session.execute(
        insert(ScheduledJobRun)
        .values(job=job, key=key, ran_at=now)
        .on_conflict_do_nothing(index_elements=["job", "key"])
        .returning(ScheduledJobRun.id)
    )
    return inserted.scalar_one_or_none() is not None


async def reading_window_reminders(units: Units, now: dt.datetime) -> int:
    """Tell every customer of a branch, once per month, that its reading window is open (E3).

    One unit of work for the whole round (one branch's reminders are claimed and queued together)."""
    async with units() as uow:
        return await _reading_window_reminders(uow.session, now)


async def _reading_window_reminders(session: AsyncSession, now: dt.datetime) -> int:
    notified = 0
    for branch in (await session.execute(select(Branch))).scalars():
        state = window_state(branch, now)
        if state.current is None:
            continue
        key = f"{branch.id}:{state.current.opens.isoformat()}"
        if not await claim_run(session, "reading-window-opens", key, now):
            continue
        users = await session.execute(
            select(UserAccount.user_id)
            .join(Account, Account.id == UserAccount.account_id)
            .join(User, User.id == UserAccount.user_id)
            .where(Account.branch_id == branch.id, User.deleted_at.is_(None))
            .distinct()
        )
        closes = state.current.closes.strftime("%d.%m.%Y")
        notified += await notify_many(
            session,
            users.scalars(),
            category=NotificationCategory.READINGS,
            title="Передайте показания",
            body=f"Приём показаний приборов учёта открыт до {closes} ({branch.name}).",
            data={"branchId": branch.id, "closesOn": state.current.closes.isoformat()},
        )
    return notified


async def new_receipt_notifications(units: Units, now: dt.datetime) -> int:
    """Tell the users of an account, once per receipt, that a receipt issued in the last week is ready."""
    async with units() as uow:
        return await _new_receipt_notifications(uow.session, now)


async def _new_receipt_notifications(session: AsyncSession, now: dt.datetime) -> int:
    fresh = await session.execute(
        select(Receipt, UserAccount.user_id)
        .join(UserAccount, UserAccount.account_id == Receipt.account_id)
        .join(User, User.id == UserAccount.user_id)
        .where(Receipt.created_at >= now - RECEIPT_NEWS_WINDOW, User.deleted_at.is_(None))
        .order_by(Receipt.id)
    )
    notified = 0
    for receipt, user_id in fresh.all():
        if not await claim_run(session, "new-receipt", f"{receipt.id}:{user_id}", now):
            continue
        if await new_receipt_notice(session, user_id, receipt.account_id, receipt.period, receipt.total_due):
            notified += 1
    return notified


async def new_receipt_notice(
    session: AsyncSession, user_id: int, account_id: int, period: dt.date, total_due: Decimal
) -> bool:
    """The "new receipt" notification (this job and the billing import send it); False if opted out."""
    shown = period.strftime("%m.%Y")
    notification = await notify(
        session,
        user_id=user_id,
        category=NotificationCategory.BILLING,
        account_id=account_id,
        title=f"Квитанция за {shown}",
        body=f"Сформирована квитанция за {shown}, к оплате {_rub(total_due)} ₽.",
        data={"accountId": account_id, "period": period.isoformat()},
    )
    return notification is not None


def _rub(amount: Decimal) -> str:
    """1234.5 → «1 234,50»."""
    return f"{amount:,.2f}".replace(",", " ").replace(".", ",")


DEFAULT_JOBS: dict[str, Job] = {
    "reading-window-reminders": reading_window_reminders,
    "new-receipt-notifications": new_receipt_notifications,
    "payments-recheck": payments.recheck_job,
    "autopay": payments.autopay_job,
    "analytics-refresh": analytics_refresh_job,
    "exchange-feed-prune": prune_job,  # app.main passes KABINET_EXCHANGE_FEED_RETENTION_DAYS
}


@dataclass
class Scheduler:
    """Runs ``jobs`` every ``interval`` seconds while this process is the leader."""

    db: object
    jobs: dict[str, Job]
    interval: float = 60.0
    clock: Callable[[], dt.datetime] = clock_now
    is_leader: bool = False
    on_run: Callable[[str, str, float], None] | None = None
    """Called after every job run with the job's name, ``ok`` or ``error`` and its seconds (metrics)."""

    def __post_init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    async def run_jobs_once(self) -> dict[str, int]:
        """Run every job once (the leader's round; also what tests and the CLI call)."""
        results = {}
        for name, job in self.jobs.items():
            started = time.perf_counter()
            outcome = "ok"
            try:
                results[name] = await job(self.db.unit_of_work, self.clock())  # type: ignore[attr-defined]
            except Exception:
                outcome = "error"
                log.exception("scheduled job %s failed", name)
            if self.on_run is not None:
                self.on_run(name, outcome, time.perf_counter() - started)
        return results

    async def _lead(self) -> None:
        engine = self.db.engine  # type: ignore[attr-defined]
        while True:
            try:
                async with engine.connect() as connection:
                    got = (
                        await connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY})
                    ).scalar()
                    await connection.commit()
                    if got:
                        self.is_leader = True
                        log.info("this process runs the scheduled jobs")
                        try:
                            while True:
                                await self.run_jobs_once()
                                await asyncio.sleep(self.interval)
                                await connection.execute(text("SELECT 1"))  # still holding the lock
                                await connection.commit()
                        finally:
                            self.is_leader = False
                            # a pooled connection would keep the session-level lock: close it instead
                            await connection.invalidate()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler leadership lost; retrying")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Start competing for leadership in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._lead(), name="kabinet-scheduler")

    async def stop(self) -> None:
        """Stop (the advisory lock goes with the connection)."""
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
