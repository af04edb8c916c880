"""Which login sessions are still active — for every HTTP request and every open websocket of a process.

**PostgreSQL is the truth** (``auth_sessions.revoked_at`` / ``expires_at``); Redis and this process's
memory only make the answer cheap. :meth:`SessionGuard.is_active` asks, in order:

1. Redis's revocation flag (``services.sessions.is_revoked``, set right after the revoking commit, shared
   by every process): present means ended — final, revocations are never undone. Absent proves nothing.
2. This process's *positive* cache: "session S was active at T", trusted for :data:`ACTIVE_CACHE_SECONDS`
   on the one clock and dropped the moment a ``session-ended`` event for S arrives (the revoking process
   drops it before its client even gets the answer), and emptied whole when the event bus reconnects
   (events may have been lost while it was away).
3. Otherwise a read of the session row (``services.sessions.inactive_sessions``, together with the other
   checks of the moment).

Why this design and not "Redis flags only" (finding SEC6: a Redis restart or FLUSHALL brought logged-out
tokens back for up to 15 minutes) nor "PostgreSQL on every request": the row read is the only thing
trusted to say *active*, but reading it on every request would add a statement to result-cache hits that
otherwise run no SQL. A positive entry can be wrong only if Redis lost both the flag and the event at
the same moment, and then for at most two seconds in a process that had just seen the session active —
never after a restart, because nothing negative is ever needed to refuse.

Websockets (finding SEC5): each authenticated graphql-transport-ws connection is registered with its
session id, its access token's expiry and a ``close`` callback. A ``session-ended`` event (channel
``services.sessions.SESSIONS_CHANNEL``, through Redis pub/sub to every process) closes that session's
sockets with code 4403; a sweep that re-reads the one clock every :data:`SWEEP_SECONDS` closes sockets
whose access token has expired (4403: reconnect with a fresh token); after a bus reconnect every
registered session is re-read from PostgreSQL in one query. Every ``subscribe`` also re-reads the row
(``app.graphql_view.KabinetTransportWSHandler``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import heapq
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from app.broadcast import EventBus
from app.db import Database
from services import clock
from services.limits import Counters
from services.sessions import (
    SESSIONS_CHANNEL,
    inactive_sessions,
    is_revoked,
)

log = logging.getLogger("kabinet.revocation")

ACTIVE_CACHE_SECONDS = 2.0
"""How long this process trusts a session row it read as active (dropped at once by a session-ended
event). Short, because it is the only window in which a lost Redis could hide a revocation."""

SWEEP_SECONDS = 1.0
"""How often the expiry sweep re-reads the clock: a socket lives at most this long past its token."""

MAX_CACHED_SESSIONS = 100_000
"""Above this many positive entries the expired ones are dropped (memory bound)."""

SESSION_ENDED = 4403
"""Close code of a websocket whose session ended or whose access token expired (as for a bad token)."""

Closer = Callable[[int, str], Coroutine[Any, Any, None]]
"""Closes one websocket with a code and a reason."""


@dataclass(eq=False)
class Socket:
    """One registered websocket: which session it belongs to and until when its token is valid."""

    session_id: int
    expires_at: dt.datetime
    close: Closer
    closed: bool = False
    seq: int = field(default=0)


def _settle(batch: dict[int, list[asyncio.Future[bool]]], outcome: bool | Exception) -> None:
    """Answer every check of ``batch`` that is still waiting with ``outcome`` (a result or the error)."""
    for futures in batch.values():
        for future in futures:
            if future.done():
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


class SessionGuard:
    """Per-process answers to "is this session still active?" and the closer of ended sessions' sockets."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        counters: Counters,
        *,
        cache_seconds: float = ACTIVE_CACHE_SECONDS,
        sweep_seconds: float = SWEEP_SECONDS,
    ) -> None:
        self._db = db
        self._bus = bus
        self._counters = counters
        self._cache_for = dt.timedelta(seconds=cache_seconds)
        self._sweep_seconds = sweep_seconds
        self._active: dict[int, dt.datetime] = {}
        self._sockets: dict[int, set[Socket]] = {}
        self._expiries: list[tuple[dt.datetime, int, Socket]] = []
        self._seq = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._row_checks: dict[int, list[asyncio.Future[bool]]] = {}
        self._row_reader: asyncio.Task[None] | None = None
        self.generation = 0
        """Bumped by every session end or resync this process hears of (see :meth:`is_active`)."""

    # --- lifecycle --------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen for ended sessions (returns once subscribed) and start the expiry sweep."""
        ready = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(ready), name="kabinet-session-guard")
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({waiting, self._listener}, return_when=asyncio.FIRST_COMPLETED)
        if self._listener.done():
            waiting.cancel()
            self._listener.result()  # raises what stopped it
        self._sweeper = asyncio.create_task(self._sweep(), name="kabinet-session-expiry")

    async def stop(self) -> None:
        """Stop listening and sweeping; wait for closes already under way."""
        for task in (self._listener, self._sweeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- is a session active? ---------------------------------------------------------------------------

    async def is_active(self, session_id: int, *, fresh: bool = False) -> bool:
        """Whether the session may still act: Redis flag → positive cache (unless ``fresh``) → the row.

        HTTP requests and websockets ask the same way, and the checks of a moment are answered together:
        the flags go in the counters' shared Redis pipeline (``services.redis_client.Coalescer``), the rows
        in one plain read per loop pass (:meth:`_read_batched`) — 10,000 sockets subscribing at once, or a
        busy server's requests of users not seen in the last two seconds (issue 21)."""
        try:
            if await is_revoked(self._counters, session_id):
                return False
        except (RedisError, OSError) as error:
            log.warning("revocation flags unavailable, reading the session row: %s", error)
        now = clock.now()
        if not fresh:
            until = self._active.get(session_id)
            if until is not None and until > now:
                return True
        generation = self.generation
        active = await self._read_batched(session_id, now)
        if active and generation == self.generation:  # no end was heard while reading: safe to remember
            if len(self._active) >= MAX_CACHED_SESSIONS:
                self._active = {sid: until for sid, until in self._active.items() if until > now}
                if len(self._active) >= MAX_CACHED_SESSIONS:
                    self._active.clear()
            self._active[session_id] = now + self._cache_for
        return active

    async def _read_batched(self, session_id: int, now: dt.datetime) -> bool:
        """Whether the row says active, read together with every other check waiting in this loop pass:
        10,000 sockets subscribing at once cost a few queries instead of 10,000 (which had exhausted the
        connection pool and timed out). Each read starts after the check that waits for it was asked."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._row_checks.setdefault(session_id, []).append(future)
        if self._row_reader is None or self._row_reader.done():
            self._row_reader = asyncio.create_task(self._read_rows(now), name="kabinet-session-rows")
        return await future

    async def _read_rows(self, now: dt.datetime) -> None:
        while self._row_checks:
            await asyncio.sleep(0)  # the checks asked in this loop pass join the batch
            batch, self._row_checks = self._row_checks, {}
            try:
                async with self._fresh_session() as session:
                    ended = await inactive_sessions(session, list(batch), now=max(now, clock.now()))
            except Exception as error:
                _settle(batch, error)
                continue
            for session_id, futures in batch.items():
                _settle({session_id: futures}, session_id not in ended)

    @contextlib.asynccontextmanager
    async def _fresh_session(self) -> AsyncIterator[AsyncSession]:
        async with self._db.sessionmaker() as session:
            yield session

    # --- sessions that ended ----------------------------------------------------------------------------

    def ended(self, session_ids: Iterable[int]) -> None:
        """Forget these sessions as active and close their sockets (4403). Idempotent."""
        self.generation += 1
        for session_id in session_ids:
            self._active.pop(session_id, None)
            for socket in list(self._sockets.get(session_id, ())):
                self._close(socket, "Session ended")

    async def publish_hook(self, channel: str, message: dict[str, Any]) -> None:
        """Sees every event this process publishes after a commit (before the bus does): a session ended
        here is applied here at once, whether or not the broker is reachable."""
        if channel == SESSIONS_CHANNEL and message.get("type") == "session-ended":
            self.ended(int(sid) for sid in message.get("sessionIds", []))

    async def _listen(self, ready: asyncio.Event) -> None:
        async with self._bus.subscribe(SESSIONS_CHANNEL) as events:
            ready.set()
            async for message in events:
                try:
                    if message.get("type") == "session-ended":
                        self.ended(int(sid) for sid in message.get("sessionIds", []))
                    elif message.get("type") == "resync":  # events may have been lost: trust only the rows
                        self.generation += 1
                        self._active.clear()
                        await self.recheck()
                except Exception:
                    log.exception("handling a session-ended event failed")

    async def recheck(self) -> None:
        """Re-read every registered socket's session (one query) and close those that ended."""
        session_ids = list(self._sockets)
        if not session_ids:
            return
        async with self._fresh_session() as session:
            ended = await inactive_sessions(session, session_ids, now=clock.now())
        if ended:
            self.ended(ended)

    # --- sockets ----------------------------------------------------------------------------------------

    def register(self, session_id: int, expires_at: dt.datetime, close: Closer) -> Socket:
        """Watch one websocket of ``session_id`` whose access token expires at ``expires_at``."""
        socket = Socket(session_id, expires_at, close, seq=next(self._seq))
        self._sockets.setdefault(session_id, set()).add(socket)
        heapq.heappush(self._expiries, (expires_at, socket.seq, socket))
        return socket

    def unregister(self, socket: Socket) -> None:
        """The websocket is gone (its expiry entry is dropped by the sweep)."""
        socket.closed = True
        found = self._sockets.get(socket.session_id)
        if found is not None:
            found.discard(socket)
            if not found:
                del self._sockets[socket.session_id]

    @property
    def open_sockets(self) -> int:
        """How many authenticated websockets this process watches (metrics, tests)."""
        return sum(len(sockets) for sockets in self._sockets.values())

    def _close(self, socket: Socket, reason: str) -> None:
        if socket.closed:
            return
        self.unregister(socket)
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(socket.close(SESSION_ENDED, reason))
        self._tasks.add(task)
        task.add_done_callback(self._closed)

    def _closed(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("closing a websocket failed", exc_info=task.exception())

    def expire(self) -> None:
        """Close every socket whose access token has expired by the one clock's now."""
        now = clock.now()
        while self._expiries and self._expiries[0][0] <= now:
            _, _, socket = heapq.heappop(self._expiries)
            self._close(socket, "Access token expired")

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_seconds)
            try:
                self.expire()
            except Exception:
                log.exception("closing expired websockets failed")
