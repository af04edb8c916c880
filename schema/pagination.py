"""Relay connections backed by keyset pages, with opaque cursors."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry import relay

from services.pagination import Page

NodeType = TypeVar("NodeType")


def encode_cursor(key: tuple[Any, ...]) -> str:
    """An opaque cursor for a row's sort key (dates and datetimes as ISO strings)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return {"t": value.isoformat()}
        if isinstance(value, dt.date):
            return {"d": value.isoformat()}
        return value

    raw = json.dumps([plain(value) for value in key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[Any, ...] | None:
    """The sort key inside a cursor; a malformed cursor is the client's bug (top-level error)."""
    if cursor is None:
        return None

    def typed(value: Any) -> Any:
        if isinstance(value, dict) and "t" in value:
            return dt.datetime.fromisoformat(value["t"])
        if isinstance(value, dict) and "d" in value:
            return dt.date.fromisoformat(value["d"])
        return value

    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list):
            raise ValueError("cursor is not a list")
        return tuple(typed(value) for value in values)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as error:
        raise GraphQLError("Invalid cursor", extensions={"code": "INVALID_CURSOR"}) from error


@strawberry.type(description="A page of a list that grows over time, newest first unless stated otherwise.")
class Connection(relay.Connection[NodeType], Generic[NodeType]):
    """A Relay connection with an optional total count."""

    total_count: int | None = strawberry.field(
        default=None, description="How many items the whole list holds, where it is cheap to count."
    )

    @classmethod
    def from_page(cls, page: Page[Any], convert: Callable[[Any], NodeType]) -> Connection[NodeType]:
        """Build the connection from a keyset page, converting each row to its GraphQL type."""
        edges = [
            relay.Edge(cursor=encode_cursor(key), node=convert(item))
            for item, key in zip(page.items, page.keys, strict=True)
        ]
        return cls(
            edges=edges,
            page_info=relay.PageInfo(
                has_next_page=page.has_next,
                has_previous_page=False,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            total_count=page.total,
        )
