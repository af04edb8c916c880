"""Whole-operation result cache for customers' queries, never stale.

Customers open the dashboard far more often than anything changes, so a query's result is kept per user,
tagged with that user's *data version*. Any committed write that can change what the user sees bumps the
version (``services.unit_of_work.touch``), and an entry whose version is not the current one is never served:

- the version is read *before* the operation executes and stored with its result, so a write that
  commits while the query runs makes that result stale at once;
- bumps happen after COMMIT and before the writing request answers (the unit of work waits for them),
  in Redis when configured, so every process sees them before the writer's client can read again;
- what bumps is what each write *declares* in its unit of work (``services.unit_of_work.touch``): users
  (their version), accounts (every user linked to the account, resolved by the bump task), kinds of
  reference data (``Reference``: FAQ, offices…) and, as the conservative fallback, everybody; every live
  event to a user's channel bumps that user too. A write that declared nothing fails in tests;
- an entry's version is ``<user>.<everybody>`` plus the version of every reference kind its query shows:
  the kinds of the GraphQL types the query selects (``schema.cache_tags.REFERENCE_TYPES``, computed once
  per query text), so deleting an FAQ entry makes exactly the answers that list FAQ entries stale.

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
from collections.abc import Iterable
from typing import Any

import orjson
from graphql import (
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_named_type,
    parse,
    visit,
)
from graphql.error import GraphQLSyntaxError
from redis.exceptions import RedisError

from app.metrics import RESULT_CACHE
from services import redis_client
from services.unit_of_work import Touched

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


class References:
    """The reference kinds a query's answer shows (cached per query text): the kinds of every type it
    selects a field of or a field returning, and of listed fields (``Query.faqCategories``)."""

    def __init__(self, schema: GraphQLSchema, kinds: dict[str, str]) -> None:
        self.schema = schema
        self.kinds = kinds
        self.of = functools.lru_cache(maxsize=2048)(self._of)

    def _of(self, query: str) -> tuple[str, ...]:
        try:
            document = parse(query)
        except GraphQLSyntaxError:
            return tuple(sorted(set(self.kinds.values())))  # never cached anyway (it fails)
        info = TypeInfo(self.schema)
        found: set[str] = set()
        kinds = self.kinds

        class Collect(Visitor):
            def enter_field(self, node: Any, *_args: Any) -> None:
                parent, field_type = info.get_parent_type(), info.get_type()
                names = [f"{parent.name}.{node.name.value}"] if parent is not None else []
                if parent is not None:
                    names.append(parent.name)  # a field of a reference type (also inside fragments)
                if field_type is not None:
                    names.append(get_named_type(field_type).name)
                found.update(kinds[name] for name in names if name in kinds)

        visit(document, TypeInfoVisitor(info, Collect()))
        return tuple(sorted(found))


class ResultCache:
    """Versioned entries in Redis (shared by every process) or in this process's memory."""

    def __init__(
        self,
        redis_url: str | None,
        *,
        prefix: str,
        ttl: float,
        max_local_entries: int = 10_000,
        reads: redis_client.Coalescer | None = None,
    ) -> None:
        self.prefix = prefix
        self.ttl = ttl
        self._redis: Any = None
        if redis_url:
            self._redis = redis_client.connect(redis_url)
            # reads share pipelines with concurrent requests' (the app passes its counters' coalescer, so
            # a request's version reads go with its revocation-flag and budget reads)
            self._reads = reads or redis_client.Coalescer(self._redis)
        self._versions: dict[int, int] = {}
        self._global_version = 0
        self._reference_versions: dict[str, int] = {}
        self.references: References | None = None
        """Set by the app: which reference kinds a query depends on (``schema.cache_tags``)."""
        self._entries: dict[str, tuple[float, bytes]] = {}
        self._max_local = max_local_entries
        self.hits = self.misses = 0

    def _version_key(self, user_id: int) -> str:
        return f"{self.prefix}:ver:u:{user_id}"

    @property
    def _global_key(self) -> str:
        return f"{self.prefix}:ver:all"

    def _reference_key(self, kind: str) -> str:
        return f"{self.prefix}:ver:ref:{kind}"

    def depends_on(self, query: str | None) -> tuple[str, ...]:
        """The reference kinds (``Reference`` values) the answer to ``query`` shows (every kind when the
        text is unknown: conservative)."""
        if self.references is None:
            return ()
        if not query:
            return tuple(sorted(set(self.references.kinds.values())))
        return self.references.of(query)

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

    async def lookup(
        self, user_id: int, key: str, references: tuple[str, ...] = ()
    ) -> tuple[str, Any | None]:
        """The current version of the answer (``"<user>.<everyone>"`` plus ``.<kind>=<n>`` for each
        reference kind in ``references``) and the cached ``data`` for ``key`` if it was stored at that
        version. One MGET of the versions and the entry, shared with concurrent requests' reads."""
        if self._redis is not None:
            try:
                mine, everyone, *kinds, raw = await self._reads.get_many(
                    [
                        self._version_key(user_id),
                        self._global_key,
                        *(self._reference_key(kind) for kind in references),
                        key,
                    ]
                )
            except (RedisError, OSError) as error:
                log.warning("result cache unavailable, executing instead: %s", error)
                CACHE_MISSES.inc()
                return "", None  # an empty version: the result will not be stored
            version = f"{int(mine or 0)}.{int(everyone or 0)}" + "".join(
                f".{kind}={int(value or 0)}" for kind, value in zip(references, kinds, strict=True)
            )
        else:
            version = f"{self._versions.get(user_id, 0)}.{self._global_version}" + "".join(
                f".{kind}={self._reference_versions.get(kind, 0)}" for kind in references
            )
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

    async def reference_version(self, kind: str) -> str | None:
        """The current version of reference data ``kind`` as ``"<everyone>.<kind>"`` — either bump changes
        it — for what keeps such rows in memory between requests (``resolvers.loaders.ReferenceById``);
        None when Redis cannot be read (then nothing may be served from memory). One MGET, shared with the
        other requests' reads of the moment (:class:`services.redis_client.Coalescer`)."""
        if self._redis is not None:
            try:
                everyone, mine = await self._reads.get_many([self._global_key, self._reference_key(kind)])
            except (RedisError, OSError):
                return None
            return f"{int(everyone or 0)}.{int(mine or 0)}"
        return f"{self._global_version}.{self._reference_versions.get(kind, 0)}"

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

    async def bump(
        self, user_ids: set[int], *, everyone: bool = False, references: Iterable[str] = ()
    ) -> None:
        """Make every cached result of these users, of everybody, or that shows these reference kinds
        stale."""
        kinds = sorted(set(references))
        if not user_ids and not everyone and not kinds:
            return
        if self._redis is not None:
            for attempt in range(4):  # a dead pooled connection fails once; a short blip is waited out
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for user_id in user_ids:
                            pipe.incr(self._version_key(user_id))
                        if everyone:
                            pipe.incr(self._global_key)
                        for kind in kinds:
                            pipe.incr(self._reference_key(kind))
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
        for kind in kinds:
            self._reference_versions[kind] = self._reference_versions.get(kind, 0) + 1

    async def close(self) -> None:
        """Close the Redis connection pool."""
        if self._redis is not None:
            await self._redis.aclose()


async def run_bumps(cache: ResultCache, db: Any, touched: Touched) -> None:
    """Bump the users touched directly, every user linked to the accounts touched, the reference kinds
    touched, or everybody."""
    users = set(touched.users)
    if touched.accounts and not touched.everyone:
        from sqlalchemy import select

        from models.accounts import UserAccount

        async with db.sessionmaker() as session:
            linked = await session.execute(
                select(UserAccount.user_id).where(UserAccount.account_id.in_(touched.accounts)).distinct()
            )
            users.update(linked.scalars())
    await cache.bump(users, everyone=touched.everyone, references=(str(kind) for kind in touched.references))


__all__ = ["References", "ResultCache", "operation_type", "run_bumps"]
