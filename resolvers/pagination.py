"""Opaque keyset cursors: what resolvers decode and ``schema.pagination.Connection`` encodes."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from typing import Any

from graphql import GraphQLError


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
