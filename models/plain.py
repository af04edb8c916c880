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

from sqlalchemy import Select, any_, bindparam, inspect, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter
from sqlalchemy.sql.visitors import replacement_traverse

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
            "plain_of": model,  # (not "model": a column may be called that, e.g. meters.model)
        },
    )
    _CLASSES[key] = cls
    return cls


def plain_columns(model: type) -> list[Any]:
    """The model's mapped columns in :func:`plain`'s attribute order (to select several tables' rows)."""
    return [column for _, column in _columns(model)]


def plain_select(model: type) -> Select[Any]:
    """``SELECT`` of the model's mapped columns, in :func:`plain`'s attribute order (a Core statement)."""
    return select(*(column for _, column in _columns(model)))


def plain_rows(cls: type, rows: Iterable[Any]) -> list[Any]:
    """Instances of a :func:`plain` class from result rows of its :func:`plain_select`."""
    return [cls(*row) for row in rows]


def _arrays(statement: Any) -> Any:
    """``statement`` with every ``col IN (:expanding)`` as ``col = ANY(:array)`` (the same parameter)."""

    def replace(element: Any) -> Any:
        if (
            isinstance(element, BinaryExpression)
            and element.operator is operators.in_op
            and isinstance(element.right, BindParameter)
            and element.right.expanding
        ):
            key = element.right.key
            return element.left == any_(bindparam(key, type_=ARRAY(element.left.type)))
        return None

    traverse: Any = replacement_traverse  # (its overloads do not take an Any statement)
    return traverse(statement, {}, replace)


def plain_query(model: type, statement: Any) -> PlainQuery:
    """A :class:`PlainQuery` of ``statement`` (a select of ``model``'s rows: joins, filters, order, DISTINCT
    ON kept) selecting :func:`plain`'s columns instead, so rows of :func:`plain` ``(model, …)`` come out."""
    return PlainQuery(statement.with_only_columns(*(column for _, column in _columns(model))))


_REQUIRED = object()


class _Context:
    """What SQLAlchemy's ``before/after_cursor_execute`` listeners get as the execution context (statement
    counters and tracing keep working for :class:`PlainQuery`; tracing sets an attribute on it)."""

    __slots__ = ("__dict__",)


_CONNECTION = "kabinet_plain_connection"
"""``session.info`` key of the connection :func:`_connection` found for the session's current transaction."""


async def _connection(session: Any) -> tuple[Any, Any]:
    """The session's (sync) connection and its asyncpg connection, for its current transaction.

    ``session.connection()`` and ``get_raw_connection()`` cost a greenlet switch each (~0.1 ms together per
    statement); the pair is the same for every statement until the session's transaction ends (commit,
    rollback, close return the connection to the pool), so it is kept with the transaction it belongs to
    and asked again only when that transaction is no longer the active one."""
    cached = session.info.get(_CONNECTION)
    if cached is not None:
        transaction, sync, raw = cached
        if transaction.is_active and session.sync_session.get_transaction() is transaction:
            return sync, raw
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    transaction = session.sync_session.get_transaction()
    session.info[_CONNECTION] = (transaction, connection.sync_connection, raw)
    return connection.sync_connection, raw


class PlainQuery:
    """A Core ``SELECT`` run straight on the session's asyncpg connection, rows as tuples (issue 21).

    Going through ``session.execute`` costs ~0.25–0.3 ms of Python per statement before the first row
    (ORM execution options, compiled-cache lookup, expanding parameters, the greenlet adapter, a result
    object): on a dashboard of ten small statements that was more than PostgreSQL's own time. Here the
    statement is compiled once (for the session's dialect, the first time it runs), sent with asyncpg's
    own prepared-statement cache, and each column's value goes through the same result processor
    SQLAlchemy would apply (learned from the prepared statement's column types: enums become their
    Python members, numerics stay ``Decimal``), so the values are identical to ``session.execute``'s.

    Lists are bound as arrays: ``column.in_(bindparam(name, expanding=True))`` is rewritten once to
    ``column = ANY(:name)`` (same rows), so one statement text serves any number of keys. SQLAlchemy's
    ``before_cursor_execute`` / ``after_cursor_execute`` listeners are called as for any statement
    (statement counting in tests, tracing spans). It runs in the session's transaction when one has
    begun on the connection, else as a single read. Read-only: the caller holds the session (the request
    scope's lock), as for any statement.
    """

    def __init__(self, statement: Any) -> None:
        self.statement = _arrays(statement)
        self._compiled: tuple[str, list[tuple[str, Any, Any]]] | None = None
        self._processors: list[tuple[int, Any]] | None = None

    def _compile(self, dialect: Any) -> tuple[str, list[tuple[str, Any, Any]]]:
        compiled = self.statement.compile(dialect=dialect)
        binds = compiled.binds
        parameters = []
        for name in compiled.positiontup or ():
            bind = binds[name]
            fixed = _REQUIRED if bind.required or bind.callable is not None else bind.value  # literals
            parameters.append((name, bind.type._cached_bind_processor(dialect), fixed))
        self._compiled = (compiled.string, parameters)
        return self._compiled

    async def rows(self, session: Any, params: dict[str, Any]) -> list[Any]:
        """The result rows (asyncpg records, or tuples where a column needed processing)."""
        sync, raw = await _connection(session)
        dialect = sync.dialect
        compiled = self._compiled or self._compile(dialect)
        sql, parameters = compiled
        args = []
        for name, binder, fixed in parameters:
            value = params[name] if fixed is _REQUIRED else params.get(name, fixed)
            args.append(value if binder is None else binder(value))
        if self._processors is None:
            prepared = await raw.prepare(sql)
            types = self.statement.selected_columns
            self._processors = [
                (position, processor)
                for position, (column, attribute) in enumerate(
                    zip(types, prepared.get_attributes(), strict=True)
                )
                if (processor := column.type._cached_result_processor(dialect, attribute.type.oid))
                is not None
            ]
        dispatch = sync.dispatch if sync._has_events or sync.engine._has_events else None
        context = _Context()
        if dispatch is not None:
            dispatch.before_cursor_execute(sync, None, sql, args, context, False)
        try:
            records = await raw.fetch(sql, *args)
        finally:  # a failed statement ends its listeners' work too (its error propagates as asyncpg's)
            if dispatch is not None:
                dispatch.after_cursor_execute(sync, None, sql, args, context, False)
        processors = self._processors
        if not processors:
            return records
        out = []
        for record in records:
            values = list(record)
            for position, processor in processors:
                values[position] = processor(values[position])
            out.append(values)
        return out
