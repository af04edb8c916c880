"""Relay connections backed by keyset pages, with opaque cursors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import strawberry
from strawberry import relay

from resolvers.pagination import decode_cursor, encode_cursor
from services.pagination import Page

NodeType = TypeVar("NodeType", bound=relay.Node)

__all__ = ["Connection", "decode_cursor", "encode_cursor"]


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
