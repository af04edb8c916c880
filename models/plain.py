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

import asyncio
import itertools
import operator
import re
import weakref
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeAlias

from sqlalchemy import Enum, Select, String, any_, bindparam, inspect, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
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
_SERIALS = itertools.count()
"""Every :class:`PlainQuery` gets the next number: statements run together in this order (one text for a
combination, whatever order its reads were asked in)."""


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
        transaction = transaction()
        if (
            transaction is not None
            and transaction.is_active
            and (session.sync_session.get_transaction() is transaction)
        ):
            return sync, raw
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    transaction = session.sync_session.get_transaction()
    # the transaction weakly: it refers to the session, and a cycle through ``session.info`` kept every
    # request's session, connection and rows until the cyclic garbage collector ran (issue 21)
    session.info[_CONNECTION] = (weakref.ref(transaction), connection.sync_connection, raw)
    return connection.sync_connection, raw


def _faster(type_: Any, dialect: Any, oid: int, processor: Any) -> Any:
    """``processor`` (SQLAlchemy's result processor of ``type_``), or the same mapping without its Python
    frames: an ``Enum`` column's processor is two Python calls per value around one dict lookup (a
    dashboard has ~140 zones), so it becomes the lookup itself — same members, ``None`` for NULL, and a
    ``KeyError`` (a ``LookupError``, as SQLAlchemy raises) for a value that is not a member."""
    impl = type_.dialect_impl(dialect)
    if isinstance(impl, Enum) and String.result_processor(impl, dialect, oid) is None:
        return impl._object_lookup.__getitem__
    return processor


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
        self._types: list[tuple[int, str]] = []
        self._serial = next(_SERIALS)

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

    def _args(self, dialect: Any, params: dict[str, Any]) -> tuple[str, list[Any]]:
        sql, parameters = self._compiled or self._compile(dialect)
        args = []
        for name, binder, fixed in parameters:
            value = params[name] if fixed is _REQUIRED else params.get(name, fixed)
            args.append(value if binder is None else binder(value))
        return sql, args

    async def _learn(self, raw: Any, dialect: Any, sql: str) -> None:
        """The result processors and column types, from the statement prepared once (per process)."""
        prepared = await raw.prepare(sql)
        attributes = prepared.get_attributes()
        self._types = [
            (attribute.type.oid, f'"{attribute.type.schema}"."{attribute.type.name}"')
            for attribute in attributes
        ]
        self._processors = [
            (position, _faster(column.type, dialect, attribute.type.oid, processor))
            for position, (column, attribute) in enumerate(
                zip(self.statement.selected_columns, attributes, strict=True)
            )
            if (processor := column.type._cached_result_processor(dialect, attribute.type.oid)) is not None
        ]

    def _processed(self, records: Any) -> list[Any]:
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

    async def rows(self, session: Any, params: dict[str, Any]) -> list[Any]:
        """The result rows (asyncpg records, or tuples where a column needed processing). ``session`` is an
        ``AsyncSession`` held by the caller, or a :class:`SharedReads` (the read then shares a statement
        with whatever else its scope reads at the same moment)."""
        if isinstance(session, SharedReads):
            return await session.rows(self, params)
        sync, raw = await _connection(session)
        dialect = sync.dialect
        sql, args = self._args(dialect, params)
        if self._processors is None:
            await self._learn(raw, dialect, sql)
        return self._processed(await _fetch(sync, raw, sql, args))


async def _fetch(sync: Any, raw: Any, sql: str, args: list[Any]) -> Any:
    """``raw.fetch`` between SQLAlchemy's ``before/after_cursor_execute`` listeners of ``sync``."""
    dispatch = sync.dispatch if sync._has_events or sync.engine._has_events else None
    context = _Context()
    if dispatch is not None:
        dispatch.before_cursor_execute(sync, None, sql, args, context, False)
    try:
        return await raw.fetch(sql, *args)
    finally:  # a failed statement ends its listeners' work too (its error propagates as asyncpg's)
        if dispatch is not None:
            dispatch.after_cursor_execute(sync, None, sql, args, context, False)


_PLACEHOLDER = re.compile(r"\$(\d+)")


def _shifted(offset: int) -> Callable[[re.Match[str]], str]:
    """A replacement of ``$n`` by ``$(n + offset)``."""
    return lambda match: f"${int(match.group(1)) + offset}"


class _Together:
    """The one statement that runs several :class:`PlainQuery` statements (see :func:`rows_together`).

    Each statement becomes a branch of a ``UNION ALL``: ``SELECT <i>, … FROM (<statement>) AS q(c0, …)``.
    The combined row has one leading column (the branch) and *slots*: a column of one type is put in the
    n-th slot of its type, so statements share slots and the row is only as wide as they need; a branch
    fills the slots it does not use with a typed NULL. A branch keeps its statement's order (PostgreSQL's
    Append returns a child's rows in the child's order; rows are split by the leading column, so branches
    may even interleave)."""

    __slots__ = ("pick", "sql")

    def __init__(self, queries: tuple[PlainQuery, ...]) -> None:
        slots: list[tuple[int, str]] = []  # (type oid, type name) of every slot
        layouts: list[list[int]] = []
        for query in queries:
            seen: dict[int, int] = {}
            layout = []
            for oid, name in query._types:
                n = seen.get(oid, 0)
                seen[oid] = n + 1
                same = [slot for slot, (slot_oid, _) in enumerate(slots) if slot_oid == oid]
                if n < len(same):
                    layout.append(same[n])
                else:
                    slots.append((oid, name))
                    layout.append(len(slots) - 1)
            layouts.append(layout)
        branches = []
        offset = 0
        for index, (query, layout) in enumerate(zip(queries, layouts, strict=True)):
            sql = query._compiled[0] if query._compiled else ""
            sql = _PLACEHOLDER.sub(_shifted(offset), sql)
            offset += len(query._compiled[1]) if query._compiled else 0
            column_of = {slot: position for position, slot in enumerate(layout)}
            values = ", ".join(
                f"q.c{column_of[slot]}" if slot in column_of else f"NULL::{name}"
                for slot, (_, name) in enumerate(slots)
            )
            aliases = ", ".join(f"c{position}" for position in range(len(layout)))
            branches.append(f"SELECT {index}, {values} FROM ({sql}) AS q({aliases})")
        self.sql = "\nUNION ALL\n".join(branches)
        self.pick = [
            (lambda record, slot=layout[0]: (record[slot + 1],))
            if len(layout) == 1
            else operator.itemgetter(*(slot + 1 for slot in layout))
            for layout in layouts
        ]


_TOGETHER: dict[tuple[PlainQuery, ...], _Together] = {}
_TOGETHER_MAX = 256
"""Combinations kept (a process sends a handful: the loaders of one level of its queries)."""


def _combinable(query: PlainQuery) -> bool:
    """Whether the statement's text can be renumbered safely (no quoted literal that could hold ``$n``)."""
    return query._compiled is not None and "'" not in query._compiled[0] and bool(query._types)


async def rows_together(session: Any, reads: list[tuple[PlainQuery, dict[str, Any]]]) -> list[list[Any]]:
    """The rows of every ``(query, params)`` in ``reads``, in one statement where they allow it: one round
    trip to PostgreSQL instead of one each (the dashboard's balance, meters and charges, issue 21).

    The values are those :meth:`PlainQuery.rows` gives (the same result processors; rows as tuples). A
    statement whose text cannot be renumbered safely runs on its own."""
    if len(reads) == 1:
        query, params = reads[0]
        return [await query.rows(session, params)]
    sync, raw = await _connection(session)
    dialect = sync.dialect
    prepared = []
    for query, params in reads:
        sql, args = query._args(dialect, params)
        if query._processors is None:
            await query._learn(raw, dialect, sql)
        prepared.append(args)
    together = sorted(
        (index for index, (query, _) in enumerate(reads) if _combinable(query)),
        key=lambda index: reads[index][0]._serial,
    )
    results: list[list[Any] | None] = [None] * len(reads)
    if len(together) > 1:
        queries = tuple(reads[index][0] for index in together)
        combined = _TOGETHER.get(queries)
        if combined is None:
            if len(_TOGETHER) >= _TOGETHER_MAX:
                _TOGETHER.clear()
            combined = _TOGETHER[queries] = _Together(queries)
        args = [arg for index in together for arg in prepared[index]]
        records = await _fetch(sync, raw, combined.sql, args)
        split: list[list[Any]] = [[] for _ in together]
        for record in records:
            split[record[0]].append(record)
        for branch, index in enumerate(together):
            pick = combined.pick[branch]
            results[index] = reads[index][0]._processed([pick(record) for record in split[branch]])
    for index, (query, params) in enumerate(reads):
        if results[index] is None:
            results[index] = await query.rows(session, params)
    return results  # type: ignore[return-value]


_PASSES = 2
"""Event-loop passes the first read of a batch waits: aiodataloader starts the batches of loads made in one
pass together, one pass later than the loads; two passes also take loaders whose loads came a pass late."""


class SharedReads:
    """The plain reads of one scope (a request, a subscription event), sent together (issue 21).

    The loaders of one level of a query (the dashboard's balance, meters and charges of every account) each
    send their batch when the event loop gets to it, one after the other on the scope's one connection. A
    loader that only reads through :class:`PlainQuery` can pass this object instead of a session: its read
    waits two loop passes, so that the reads the other loaders of the level ask meanwhile join it, and then
    all of them go as one statement (:func:`rows_together`) while the scope's session is held. Reads asked
    while that statement is in flight go together in the next one. The values are the same as with the
    session; an error of the statement reaches every read that was in it."""

    __slots__ = ("_exclusive", "_flushing", "_pending")

    def __init__(self, exclusive: Callable[[], AbstractAsyncContextManager[Any]]) -> None:
        self._exclusive = exclusive
        """Exclusive use of the scope's session (``resolvers.context.DbScope.session``)."""
        self._pending: list[tuple[PlainQuery, dict[str, Any], asyncio.Future[list[Any]]]] = []
        self._flushing: set[asyncio.Future[None]] = set()

    async def rows(self, query: PlainQuery, params: dict[str, Any]) -> list[Any]:
        """The rows of ``query`` with ``params``, read together with the scope's other pending reads. The
        first read of a batch sends it (no task of its own); the others wait for their rows."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending.append((query, params, future))
        if len(self._pending) == 1:
            try:
                for _ in range(_PASSES):  # what the level's other loaders ask meanwhile joins this batch
                    await asyncio.sleep(0)
                await self._flush()
            except asyncio.CancelledError:
                if self._pending:  # the reads that joined still get their rows
                    self._start()
                raise
        return await future

    def _start(self) -> None:
        task = asyncio.ensure_future(self._flush())
        self._flushing.add(task)  # (held until done: the loop keeps only a weak reference)
        task.add_done_callback(self._flushing.discard)

    async def _flush(self) -> None:
        async with self._exclusive() as session:
            batch, self._pending = self._pending, []
            waiting = [(query, params, future) for query, params, future in batch if not future.done()]
            if not waiting:
                return
            try:
                results = await rows_together(session, [(query, params) for query, params, _ in waiting])
            except asyncio.CancelledError:
                for *_, future in waiting:
                    future.cancel()
                raise
            except Exception as error:  # every read of the statement gets its error
                for *_, future in waiting:
                    if not future.done():
                        future.set_exception(error)
                return
        for (*_, future), rows in zip(waiting, results, strict=True):
            if not future.done():
                future.set_result(rows)


Reads: TypeAlias = AsyncSession | SharedReads
"""What :meth:`PlainQuery.rows` reads through: a session the caller holds, or a scope's :class:`SharedReads`
(a service function that only reads plain rows takes either)."""
