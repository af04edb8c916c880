"""Analytics resolvers (issue 17): the role check, the read-replica routing and the CSV export link.

Every analytics read goes through :func:`answer` (GraphQL) or :func:`stream_export` (CSV download), both
taking the viewer, so auditing analysts' queries needs one hook in each. Reads use the analytics database
(``KABINET_ANALYTICS_DATABASE_URL``, a read replica) when it is configured, else the primary.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

from graphql import GraphQLError
from sqlalchemy import select

from models.identity import User
from resolvers.context import AppParts
from resolvers.permissions import require_role
from services import clock, storage
from services.analytics import catalog
from services.analytics import query as analytics
from services.analytics.catalog import Dimension, Granularity, Measure

ANALYTICS_ROLES = ("ANALYST", "ADMIN")
"""Who may read analytics."""

EXPORT_TTL_MINUTES = 5
"""Lifetime of a CSV export link."""

EXPORT_TARGET = "analytics"
"""Kind prefix of an export's download target."""


class AnalyticsRefused(GraphQLError):
    """An analytics query the service refused, as a top-level error with its code."""

    def __init__(self, error: analytics.AnalyticsError) -> None:
        super().__init__(
            error.text, extensions={"code": error.code, **{k: str(v) for k, v in error.data.items()}}
        )


def analytics_database(state: AppParts) -> Any:
    """The read replica when configured, else the primary database."""
    return state.analytics_db or state.db


async def answer(
    state: AppParts, viewer: Any, query: analytics.AnalyticsQuery
) -> tuple[analytics.Result, dict[Dimension, dict[Any, str]]]:
    """Run one analytics query for ``viewer`` (already checked to be ANALYST or ADMIN); the one place an
    analytics answer is computed (audit hooks go here)."""
    from services.appeals import TOPICS

    try:
        query.validate()
    except analytics.AnalyticsError as error:
        raise AnalyticsRefused(error) from None
    async with analytics_database(state).session() as session:
        try:
            result = await analytics.run(session, query)
        except analytics.AnalyticsError as error:
            raise AnalyticsRefused(error) from None
        names = await analytics.labels(session)
    names[Dimension.APPEAL_TOPIC] = dict(TOPICS)
    return result, names


async def run_analytics(
    info: Any, query: analytics.AnalyticsQuery
) -> tuple[analytics.Result, dict[Dimension, dict[Any, str]]]:
    """``Query.analytics``: ANALYST and ADMIN only."""
    viewer = require_role(info, *ANALYTICS_ROLES)
    return await answer(info.context.state, viewer, query)


def _encode(query: analytics.AnalyticsQuery) -> str:
    data = {
        "m": [m.value for m in query.measures],
        "d": [d.value for d in query.dimensions],
        "f": query.first.isoformat(),
        "t": query.last.isoformat(),
        "g": query.granularity.value,
        "x": {d.value: v for d, v in query.filters.items()},
        "c": query.compare.value if query.compare is not None else None,
    }
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def _decode(raw: str) -> analytics.AnalyticsQuery:
    data = json.loads(base64.urlsafe_b64decode(raw.encode()))
    return analytics.AnalyticsQuery(
        measures=tuple(Measure(m) for m in data["m"]),
        dimensions=tuple(Dimension(d) for d in data["d"]),
        first=dt.date.fromisoformat(data["f"]),
        last=dt.date.fromisoformat(data["t"]),
        granularity=Granularity(data["g"]),
        filters={Dimension(d): v for d, v in data["x"].items()},
        compare=analytics.Comparison(data["c"]) if data.get("c") else None,
    )


async def export_link(info: Any, query: analytics.AnalyticsQuery) -> storage.SignedUrl:
    """``Query.analyticsExport``: a signed link (valid :data:`EXPORT_TTL_MINUTES`) to the query as CSV.
    The query is checked now, so a refused one gets its error here rather than a broken download."""
    viewer = require_role(info, *ANALYTICS_ROLES)
    try:
        query.validate()
    except analytics.AnalyticsError as error:
        raise AnalyticsRefused(error) from None
    context = info.context
    return storage.sign_download(
        context.settings.secret_key,
        f"{EXPORT_TARGET}:{viewer.user_id}:{_encode(query)}",
        now=clock.now(),
        base_url=context.base_url,
        ttl=dt.timedelta(minutes=EXPORT_TTL_MINUTES),
    )


async def stream_export(state: AppParts, rest: str) -> AsyncIterator[bytes] | None:
    """The CSV of a verified export target (``user_id:query``), or None when its user may no longer read
    analytics. Streams from the analytics database through a server-side cursor."""
    user_id, _, encoded = rest.partition(":")
    try:
        query = _decode(encoded)
        query.validate()
    except (ValueError, KeyError, analytics.AnalyticsError):
        return None
    async with state.db.session() as session:
        role = (
            await session.execute(select(User.role).where(User.id == int(user_id), User.deleted_at.is_(None)))
        ).scalar_one_or_none()
    if role is None or role.value not in ANALYTICS_ROLES:
        return None
    return _stream(analytics_database(state), query)


async def _stream(db: Any, query: analytics.AnalyticsQuery) -> AsyncIterator[bytes]:
    async with db.engine.connect() as connection:
        async for chunk in analytics.export_csv(connection, query):
            yield chunk


__all__ = ["ANALYTICS_ROLES", "EXPORT_TTL_MINUTES", "answer", "catalog", "export_link", "stream_export"]
