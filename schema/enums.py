"""GraphQL enums over the models' Python enums, with a description on every value (they are the API docs).

The models' enums stay free of GraphQL; :func:`model_enum` registers one with Strawberry and attaches a
description to each member, refusing to build the schema when a member has none (a new member must be
documented where it becomes part of the API).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

import strawberry

E = TypeVar("E", bound=type[Enum])


def model_enum(cls: E, *, name: str, description: str, values: Mapping[Any, str]) -> E:
    """``strawberry.enum(cls)`` with ``values`` (member → description) as the values' descriptions."""
    missing = [member.name for member in cls if member not in values]
    if missing:
        raise TypeError(f"{name}: no description for {', '.join(missing)}")
    registered = strawberry.enum(cls, name=name, description=description)
    by_name = {member.name: text for member, text in values.items()}
    for value in registered.__strawberry_definition__.values:  # type: ignore[attr-defined]
        value.description = by_name[value.name]
    return registered
