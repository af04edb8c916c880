"""Relay ``Node`` support: GraphQL types backed directly by database rows.

Kabinet's object types read their plain fields straight off SQLAlchemy rows (graphql-core's default
resolver, no per-object copying), so a type declares which model backs it with :func:`backed_by`.
``node(id:)`` goes through each type's ``resolve_nodes``, which loads rows with the request's loaders
and applies the same visibility rule as every other path to that type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry


def backed_by(*models: type) -> Callable[..., bool]:
    """An ``is_type_of`` for a Strawberry type whose values may be rows of ``models``.

    Use as ``is_type_of = backed_by(models.Branch)`` inside the type's body.
    """

    def is_type_of(cls: type, obj: Any, _info: Any) -> bool:
        return isinstance(obj, (cls, *models))

    return classmethod(is_type_of)  # type: ignore[return-value]


def as_node(type_: type, rows: list[Any]) -> list[Any]:
    """Mark rows as values of ``type_`` so the ``Node`` interface can tell their GraphQL type."""
    return [strawberry.cast(type_, row) if row is not None else None for row in rows]
