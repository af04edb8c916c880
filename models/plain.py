"""Plain rows: a table's columns read into slotted objects instead of ORM instances (issue 21).

An ORM instance costs far more than its data on read paths that load hundreds of rows per request (the
dashboard's ~150 charge lines, 36 months of them in the charges history): identity-map bookkeeping, an
``InstanceState`` per object, instrumented attribute access, and — measured — about seven objects of
*cyclic* garbage per instance (the state, its weak reference and callback, …), which only the cyclic
garbage collector frees: its collections were a fifth of an uncached dashboard's CPU. Rows that are only
read and shown need none of that.

``plain(Model)`` is a slotted class with one attribute per mapped column, named as the model's attributes
(so code that reads ``row.amount`` works on both); :func:`plain_select` selects exactly those columns from
the table (Core, no ORM loading; column types process values as the ORM does, so values are identical);
:func:`plain_rows` turns a result into instances. Such objects are not in a session: never write them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, inspect, select

_CLASSES: dict[tuple[type, tuple[str, ...]], type] = {}


def _columns(model: type) -> list[tuple[str, Any]]:
    attrs: Any = inspect(model).column_attrs
    return [(attr.key, attr.columns[0]) for attr in attrs]


def plain(model: type, extra: tuple[str, ...] = ()) -> type:
    """The plain-row class of ``model`` (one per model and ``extra``: further attributes, None until set)."""
    key = (model, extra)
    found = _CLASSES.get(key)
    if found is not None:
        return found
    names = [name for name, _ in _columns(model)]
    body = "\n".join(
        [f"def __init__(self, {', '.join(names)}):"]
        + [f"    self.{name} = {name}" for name in names]
        + [f"    self.{name} = None" for name in extra]
    )
    namespace: dict[str, Any] = {}
    exec(body, namespace)  # a generated __init__ (as dataclasses do): ~3x faster than setattr in a loop

    def __repr__(self: Any) -> str:
        return f"{type(self).__name__}(id={getattr(self, 'id', None)!r})"

    cls = type(
        f"{model.__name__}Row",
        (),
        {
            "__slots__": (*names, *extra),
            "__init__": namespace["__init__"],
            "__repr__": __repr__,
            "__doc__": f"A ``{model.__tablename__}`` row as plain attributes (see models.plain).",  # type: ignore[attr-defined]
            "__module__": model.__module__,
            "model": model,
        },
    )
    _CLASSES[key] = cls
    return cls


def plain_select(model: type) -> Select[Any]:
    """``SELECT`` of the model's mapped columns, in :func:`plain`'s attribute order (a Core statement)."""
    return select(*(column for _, column in _columns(model)))


def plain_rows(cls: type, rows: Iterable[Any]) -> list[Any]:
    """Instances of a :func:`plain` class from result rows of its :func:`plain_select`."""
    return [cls(*row) for row in rows]
