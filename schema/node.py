"""Relay ``Node`` support: GraphQL types backed directly by database rows.

Kabinet's object types read their plain fields straight off SQLAlchemy rows (graphql-core's default
resolver, no per-object copying), so a type declares which model backs it with :func:`backed_by`.
``node(id:)`` goes through each type's ``resolve_nodes``, which loads rows with the request's loaders
and applies the same visibility rule as every other path to that type.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry import relay

from resolvers.context import Info
from schema.policy import node_allowed


def backed_by(*models: type) -> Callable[..., bool]:
    """An ``is_type_of`` for a Strawberry type whose values may be rows of ``models``.

    Use as ``is_type_of = backed_by(models.Branch)`` inside the type's body.
    """

    def is_type_of(cls: type, obj: Any, _info: Any) -> bool:
        return isinstance(obj, (cls, *models))

    is_type_of.kabinet_by_type = True  # type: ignore[attr-defined]  # its answer depends on type(obj) only: app.execution checks once per type
    return classmethod(is_type_of)  # type: ignore[return-value]


def as_node(type_: type, rows: list[Any]) -> list[Any]:
    """Mark rows as values of ``type_`` so the ``Node`` interface can tell their GraphQL type."""
    return [strawberry.cast(type_, row) if row is not None else None for row in rows]


class InvalidId(GraphQLError):
    """A global ID that is malformed or names no Node type: the client's bug, reported as such."""

    def __init__(self, value: str) -> None:
        super().__init__(f"Invalid global ID: {value!r}", extensions={"code": "INVALID_ID"})


_ROW_ID = re.compile(r"[1-9][0-9]{0,17}")
"""A database id as it appears in our global IDs: a positive decimal that fits PostgreSQL's bigint."""

MISSING_ROW = "0"
"""The node id a global ID gets when its id part could not be a row's: no row has it (issue 16)."""


def canonical(global_id: relay.GlobalID) -> relay.GlobalID:
    """The global ID with an id part every ``int(...)`` and bigint column accepts.

    Every Node type of Kabinet is keyed by a bigint. ``Account:abc``, ``Account:-1`` or
    ``Account:99999999999999999999`` name nothing, so they become ``Account:0`` — not found, as for an id
    that does not exist — instead of a ``ValueError`` or a database error."""
    if _ROW_ID.fullmatch(global_id.node_id):
        return global_id
    return relay.GlobalID(type_name=global_id.type_name, node_id=MISSING_ROW)


SPECULATE = "kabinet_speculate"
"""Marks a root field's resolver (``Query.node``) with a function from its arguments to the type name and a
:class:`KeyOnly` of the object it will look up (or None): ``app.execution`` then resolves that type's key-only
fields while the resolver's own lookup and access check run, in the same statement (issue 21)."""

KEY_ONLY = "kabinet_key_only"
"""The Python names of a Node type's fields that read nothing of their object but its key (``root.id``)."""


class KeyOnly:
    """An object as its key-only fields see it before its access check has answered: its key, nothing more."""

    __slots__ = ("id",)

    def __init__(self, id: int) -> None:
        self.id = id


def key_only(cls: type, *fields: str) -> None:
    """Declare ``fields`` of the Node type ``cls`` key-only (see :data:`KEY_ONLY`): they may run for an
    object of that type before its access check has answered, and their answer is thrown away when it says
    no. Only fields that read by ``root.id`` alone, through loaders with no visibility rule of their own."""
    setattr(cls, KEY_ONLY, frozenset(fields))


def speculative(guess: Callable[[dict[str, Any]], tuple[str, KeyOnly] | None]) -> Callable[[Any], Any]:
    """Mark a root field's resolver with :data:`SPECULATE`."""

    def mark(func: Any) -> Any:
        setattr(func, SPECULATE, guess)
        return func

    return mark


def node_guess(arguments: dict[str, Any]) -> tuple[str, KeyOnly] | None:
    """``node(id:)``'s guess: the type name and key its ``id`` argument names; None when malformed (the
    field then reports it as always)."""
    try:
        global_id = canonical(parse_global_id(arguments.get("id")))  # type: ignore[arg-type]
    except InvalidId:
        return None
    return global_id.type_name, KeyOnly(int(global_id.node_id))


def parse_global_id(value: str, *, expected_type: str | None = None) -> relay.GlobalID:
    """Decode a global ID (optionally of one type); malformed ones raise :class:`InvalidId`."""
    if not isinstance(value, str):
        raise InvalidId(str(value))
    try:
        global_id = relay.GlobalID.from_id(value)
    except (ValueError, TypeError) as error:
        raise InvalidId(str(value)) from error
    if expected_type is not None and global_id.type_name != expected_type:
        raise InvalidId(value)
    return canonical(global_id)


async def resolve_global_id(info: Info, value: str | relay.GlobalID) -> Any:
    """The node behind a global ID (or an already parsed one) if the caller may see it, else None."""
    global_id = value if isinstance(value, relay.GlobalID) else parse_global_id(value)
    try:
        node_type = global_id.resolve_type(info)
    except (ValueError, TypeError) as error:
        raise InvalidId(str(value)) from error
    viewer = info.context.viewer
    if viewer is not None and not node_allowed(global_id.type_name, viewer.role):
        return None  # per-customer objects are not for ANALYST (schema.policy, issue 17)
    found = node_type.resolve_node(global_id.node_id, info=info, required=False)
    return await found if inspect.isawaitable(found) else found
