"""Whole-operation result cache for customers' queries, never stale.

Customers open the dashboard far more often than anything changes, so a query's result is kept per user,
tagged with that user's *data version*. Any committed write that can change what the user sees bumps the
version (``services.events.touch``), and an entry whose version is not the current one is never served:

- the version is read *before* the operation executes and stored with its result, so a write that
  commits while the query runs makes that result stale at once;
- bumps happen after COMMIT and before the writing request answers (the view drains them), in Redis
  when configured, so every process sees them before the writer's client can read again;
- what bumps: every ORM row written with a ``user_id`` (that user), with an ``account_id`` (every user
  linked to the account, resolved by the bump task), users and accounts themselves, every live event to a
  user's channel, and — as a safety net — any mutation by that user; rows of reference data (branches,
  tariffs, content…: no owner) bump a version shared by everybody, which is part of every entry's version.

Only queries of CUSTOMER callers are cached (staff read other people's data); results with errors are not.
A hit costs one Redis round trip (MGET of version and entry) and no SQL. The key includes the login
session (per-session fields such as ``sessions { current }``: finding SEC11) and "today" (date-dependent
fields such as window countdowns); entries expire after ``result_cache_ttl`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
from typing import Any

import orjson
from graphql import OperationDefinitionNode, OperationType, parse
from graphql.error import GraphQLSyntaxError
from redis.exceptions import RedisError

from app.metrics import RESULT_CACHE
from services.events import Touched

log = logging.getLogger("kabinet.cache")
CACHE_HITS = RESULT_CACHE.labels("hit")
CACHE_MISSES = RESULT_CACHE.labels("miss")


@functools.lru_cache(maxsize=2048)
def operation_type(query: str, operation_name: str | None) -> OperationType | None:
    """The type of the operation a request would run (None if the document does not parse)."""
    try:
        document = parse(query)
    except GraphQLSyntaxError:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    for operation in operations:
        if operation_name is None or (operation.name and operation.name.value == operation_name):
            return operation.operation
    return None


class ResultCache:
    """Versioned entries in Redis (shared by every process) or in this process's memory."""

    def __init__(
        self, redis_url: str | None, *, prefix: str, ttl: float, max_local_entries: int = 10_000
    ) -> None:
        self.prefix = prefix
        self.ttl = ttl
        self._redis: Any = None
        if redis_url:
            from services import redis_client

            self._redis = redis_client.connect(redis_url)
        self._versions: dict[int, int] = {}
        self._global_version = 0
        self._entries: dict[str, tuple[float, bytes]] = {}
        self._max_local = max_local_entries
        self.hits = self.misses = 0

    def _version_key(self, user_id: int) -> str:
        return f"{self.prefix}:ver:u:{user_id}"

    @property
    def _global_key(self) -> str:
        return f"{self.prefix}:ver:all"

    def key(
        self,
        user_id: int,
        session_id: int,
        today: str,
        query: str,
        variables: Any,
        operation_name: str | None,
    ) -> str:
        """The entry key of one operation for one login session of one user on one day.

        Everything an answer may depend on is in it: the session too, since some fields answer per
        session (``sessions { current }``, a session's push devices) — one user's two devices never share
        an entry. The user's data version still invalidates all of the user's entries at once."""
        raw = orjson.dumps(
            [user_id, session_id, today, operation_name, query, variables], option=orjson.OPT_SORT_KEYS
        )
        return f"{self.prefix}:res:{user_id}:{hashlib.sha256(raw).hexdigest()}"

    async def lookup(self, user_id: int, key: str) -> tuple[str, Any | None]:
        """The user's current version (``"<user>.<everyone>"``) and the cached ``data`` for ``key`` if it
        was stored at that version. One Redis round trip (MGET of both versions and the entry)."""
        if self._redis is not None:
            try:
                mine, everyone, raw = await self._redis.mget(
                    self._version_key(user_id), self._global_key, key
                )
            except (RedisError, OSError) as error:
                log.warning("result cache unavailable, executing instead: %s", error)
                CACHE_MISSES.inc()
                return "", None  # an empty version: the result will not be stored
            version = f"{int(mine or 0)}.{int(everyone or 0)}"
        else:
            version = f"{self._versions.get(user_id, 0)}.{self._global_version}"
            found = self._entries.get(key)
            raw = found[1] if found and found[0] > time.monotonic() else None
        if raw is None:
            self.misses += 1
            CACHE_MISSES.inc()
            return version, None
        stored_version, _, body = raw.partition(b"|")
        if stored_version.decode() != version:
            self.misses += 1
            CACHE_MISSES.inc()
            return version, None
        self.hits += 1
        CACHE_HITS.inc()
        return version, orjson.loads(body)

    async def put(self, key: str, version: str, data: Any) -> None:
        """Store ``data`` computed while the user's version was ``version``."""
        if not version:
            return
        raw = version.encode() + b"|" + orjson.dumps(data)
        if self._redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.set(key, raw, ex=max(1, int(self.ttl)))
            return
        if len(self._entries) >= self._max_local:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.ttl, raw)

    async def bump(self, user_ids: set[int], *, everyone: bool = False) -> None:
        """Make every cached result of these users (or of everybody) stale."""
        if not user_ids and not everyone:
            return
        if self._redis is not None:
            for attempt in range(4):  # a dead pooled connection fails once; a short blip is waited out
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for user_id in user_ids:
                            pipe.incr(self._version_key(user_id))
                        if everyone:
                            pipe.incr(self._global_key)
                        await pipe.execute()
                    return
                except (RedisError, OSError) as error:
                    if attempt == 0:
                        log.warning("cache versions not bumped yet (%s); retrying", error)
                    await asyncio.sleep(0.05 * 2**attempt)
            # while Redis is unreachable, lookups fail too and nothing is served from it; entries that
            # outlive an outage without the bump expire with the TTL
            log.error("cache versions of users %s could not be bumped", sorted(user_ids))
            return
        for user_id in user_ids:
            self._versions[user_id] = self._versions.get(user_id, 0) + 1
        if everyone:
            self._global_version += 1

    async def close(self) -> None:
        """Close the Redis connection pool."""
        if self._redis is not None:
            await self._redis.aclose()


async def run_bumps(cache: ResultCache, db: Any, touched: Touched) -> None:
    """Bump the users touched directly, every user linked to the accounts touched, or everybody."""
    users = set(touched.users)
    if touched.accounts and not touched.everyone:
        from sqlalchemy import select

        from models.accounts import UserAccount

        async with db.sessionmaker() as session:
            linked = await session.execute(
                select(UserAccount.user_id).where(UserAccount.account_id.in_(touched.accounts)).distinct()
            )
            users.update(linked.scalars())
    await cache.bump(users, everyone=touched.everyone)


__all__ = ["ResultCache", "operation_type", "run_bumps"]
