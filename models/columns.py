"""Column type helpers shared by the domain modules (no tables here).

Enumerations are Python ``enum.StrEnum`` classes whose values equal their names, stored as
``VARCHAR(n)`` with a named ``CHECK`` constraint (``native_enum=False``): adding a value later is an
``ALTER … CHECK`` in a migration instead of ``ALTER TYPE`` on a PostgreSQL enum, and the column stays
readable by any tool.
"""

from __future__ import annotations

import enum
import re
from typing import TypeVar

from sqlalchemy import Enum

E = TypeVar("E", bound=enum.StrEnum)

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def enum_type(enum_class: type[E], *, length: int = 32, name: str | None = None) -> Enum:
    """A ``VARCHAR(length)`` column type with a ``CHECK`` listing the values of ``enum_class``.

    ``name`` names the check constraint (``ck_<table>_<name>``); it defaults to the class name in
    snake case and must be given when one table has two columns of the same enumeration.
    """
    longest = max(len(member.value) for member in enum_class)
    if longest > length:
        raise ValueError(
            f"{enum_class.__name__}: value of {longest} characters does not fit VARCHAR({length})"
        )
    return Enum(
        enum_class,
        name=name or _CAMEL.sub("_", enum_class.__name__).lower(),
        native_enum=False,
        create_constraint=True,
        length=length,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )
