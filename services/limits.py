"""Counters with expiry for rate limits, and a short-lived revocation list of login sessions.

Redis (``settings.redis_url``, keys prefixed with ``settings.redis_prefix``) when configured, so every
process shares the counts; otherwise in this process's memory (one process: ``kabinet serve``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services import clock


@dataclass(frozen=True, slots=True)
class Hit:
    """The result of counting one attempt: how many in the window so far and when the window ends."""

    count: int
    retry_after_seconds: int
    window: str = ""
    """The counter of the window that was counted in (what :meth:`Counters.give_back` takes)."""


class Counters:
    """Fixed-window counters and flags with a time to live."""

    def __init__(self, redis_url: str | None, prefix: str) -> None:
        self.prefix = prefix
        self._redis_url = redis_url
        self._redis: Any = None
        self._coalescer: Any = None
        self._memory: dict[str, tuple[int, float]] = {}

    def _client(self) -> Any:
        if self._redis is None:
            from services.redis_client import connect

            if self._redis_url is None:
                raise RuntimeError("counters without a Redis URL keep to memory")
            self._redis = connect(self._redis_url)
        return self._redis

    def coalescer(self) -> Any:
        """The process's :class:`services.redis_client.Coalescer` of these counters: every read and
        increment below shares a pipeline with the others asked meanwhile (issue 21)."""
        if self._coalescer is None:
            from services.redis_client import Coalescer

            self._coalescer = Coalescer(self._client())
        return self._coalescer

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    async def hit(self, key: str, window_seconds: int) -> Hit:
        """Count one attempt under ``key`` in the current fixed window of ``window_seconds``.

        Windows are aligned on the one clock (:mod:`services.clock`), so a test that pins or moves the clock
        moves the windows too; the Redis key expires a little after its window ends (garbage collection
        only, never the rule). INCRBY is atomic, so concurrent attempts are counted exactly."""
        return await self.spend(key, 1, window_seconds)

    async def spend(self, key: str, amount: int, window_seconds: int) -> Hit:
        """Add ``amount`` to the counter of ``key`` in the current fixed window (0: read it); :meth:`hit`
        is ``spend(key, 1, …)``, budgets spent in variable steps (query cost) use it directly."""
        now = clock.now().timestamp()
        bucket = int(now // window_seconds)
        ends = (bucket + 1) * window_seconds
        retry_after = max(int(ends - now + 0.999), 1)
        name = f"{key}:{window_seconds}:{bucket}"
        if self._redis_url:
            if amount == 0:  # just look (a missing counter is 0 and needs no expiry)
                return Hit(int(await self.coalescer().get(self._key(name)) or 0), retry_after, name)
            # INCRBY is atomic on its own (no MULTI/EXEC), and EXPIRE after it only refreshes the counter's
            # garbage collection; both go in the coalescer's next pipeline
            total = await self.coalescer().increment(self._key(name), amount, window_seconds + 60)
            return Hit(total, retry_after, name)
        if len(self._memory) > 100_000:  # one process without Redis: drop windows that have ended
            self._memory = {k: v for k, v in self._memory.items() if v[1] > now}
        total = int(self._memory.get(name, (0, 0.0))[0]) + amount
        self._memory[name] = (total, float(ends))
        return Hit(total, retry_after, name)

    def give_back(self, hit: Hit, amount: int) -> None:
        """Take ``amount`` off the window ``hit`` counted in (what a reservation did not use), without
        waiting: with Redis the decrement goes in the coalescer's next pipeline, ahead of any read asked
        after it in this process; an error there is logged, not raised (the client keeps the charge)."""
        if amount <= 0 or not hit.window:
            return
        if self._redis_url:
            window_seconds = int(hit.window.rsplit(":", 2)[1])
            self.coalescer().adjust(self._key(hit.window), -amount, window_seconds + 60)
            return
        total, ends = self._memory.get(hit.window, (0, 0.0))
        if ends > clock.now().timestamp():
            self._memory[hit.window] = (int(total) - amount, ends)

    async def set_flags(self, keys: list[str], ttl_seconds: int) -> None:
        """Set flags that disappear after ``ttl_seconds``."""
        if not keys:
            return
        if self._redis_url:
            pipe = self._client().pipeline(transaction=False)
            for key in keys:
                pipe.set(self._key(key), b"1", ex=ttl_seconds)
            await pipe.execute()
            return
        until = clock.now().timestamp() + ttl_seconds
        for key in keys:
            self._memory[key] = (1, until)

    async def has_flag(self, key: str) -> bool:
        """Whether a flag set by :meth:`set_flags` is still there."""
        if self._redis_url:  # a flag's value is b"1": present exactly when EXISTS would say so
            return await self.coalescer().get(self._key(key)) is not None
        found = self._memory.get(key)
        return found is not None and found[1] > clock.now().timestamp()

    async def flags_present(self, keys: list[str]) -> set[str]:
        """Which of ``keys`` have a flag set by :meth:`set_flags` (one MGET however many)."""
        if not keys:
            return set()
        if self._redis_url:
            values = await self.coalescer().get_many([self._key(key) for key in keys])
            return {key for key, value in zip(keys, values, strict=True) if value is not None}
        return {key for key in keys if await self.has_flag(key)}

    async def close(self) -> None:
        """Close the Redis connection pool (if one was opened)."""
        if self._redis is not None:
            self._coalescer = None
            client, self._redis = self._redis, None
            await client.aclose()


def counters_of(state: Any) -> Counters:
    """The process's :class:`Counters`, created on first use and kept in ``state.extras``."""
    found = state.extras.get("counters")
    if found is None:
        found = state.extras["counters"] = Counters(state.settings.redis_url, state.settings.redis_prefix)
    return found
