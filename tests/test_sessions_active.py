"""``services.sessions.inactive_sessions`` (SEC6's truth about a session) as a plain read (issue 21):
one statement for any number of sessions, no ORM instance, no transaction of its own, and always the
committed row."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update

from app.db import Database
from app.demo import DEMO_PHONE_E164
from models.identity import AuthSession, User
from services.clock import CLOCK
from services.sessions import inactive_sessions, start_session


async def is_session_active(session: Any, session_id: int, *, now: dt.datetime) -> bool:
    return session_id not in await inactive_sessions(session, [session_id], now=now)


async def _session_id(db: Database, settings: Any) -> int:
    async with db.session() as session:
        user = (await session.execute(select(User).where(User.phone == DEMO_PHONE_E164))).scalar_one()
        tokens = await start_session(session, settings.secret_key, user, now=CLOCK.now())
        await session.commit()
    return tokens.session_id


async def test_issue21_session_check_is_one_plain_read_without_a_transaction(
    db: Database, settings: Any
) -> None:
    session_id = await _session_id(db, settings)
    now = CLOCK.now()
    async with db.session() as session:
        with db.count_statements() as counted:
            assert await is_session_active(session, session_id, now=now) is True
        assert counted.statements == 1
        assert len(session.identity_map) == 0  # no ORM instance
        raw: Any = (await (await session.connection()).get_raw_connection()).driver_connection
        assert not raw.is_in_transaction()  # no BEGIN was sent for it
        assert await is_session_active(session, 0, now=now) is False  # no such row
        assert await is_session_active(session, session_id, now=now + dt.timedelta(days=31)) is False
        with db.count_statements() as counted:  # many sessions: still one statement
            assert await inactive_sessions(session, [session_id, 0, -1], now=now) == {0, -1}
        assert counted.statements == 1


async def test_issue21_session_check_sees_a_revocation_committed_elsewhere(
    db: Database, settings: Any
) -> None:
    session_id = await _session_id(db, settings)
    now = CLOCK.now()
    async with db.session() as reader:
        assert await is_session_active(reader, session_id, now=now) is True
        async with db.session() as writer:
            revoke = update(AuthSession).where(AuthSession.id == session_id).values(revoked_at=now)
            await writer.execute(revoke)
            await writer.commit()
        assert await is_session_active(reader, session_id, now=now) is False  # the same reader, at once


async def test_issue21_plain_reads_follow_the_sessions_transaction_to_its_next_connection(
    database_url: str, db: Database, settings: Any
) -> None:
    session_id = await _session_id(db, settings)
    now = CLOCK.now()
    own = Database(database_url, pool_size=2)
    try:
        async with own.session() as first, own.session() as second:
            assert await is_session_active(first, session_id, now=now) is True  # connection A
            await first.commit()  # A goes back to the pool ...
            await second.connection()  # ... and another session takes it
            revoke = update(AuthSession).where(AuthSession.id == session_id).values(revoked_at=now)
            await first.execute(revoke)  # the first session's next transaction: connection B, uncommitted
            assert await is_session_active(first, session_id, now=now) is False  # read in that transaction
            assert await is_session_active(second, session_id, now=now) is True  # not committed
            await first.rollback()
            assert await is_session_active(first, session_id, now=now) is True
    finally:
        await own.dispose()
