"""A breadth-first executor for queries: the same resolvers and the same result, fewer calls per field.

graphql-core resolves a query depth-first, one object at a time: for every field of every object it
builds a path, a ``GraphQLResolveInfo``, and (through Strawberry) an ``Info`` and an argument
conversion, then completes the value through a chain of type checks. A dashboard of three accounts
has ~1,600 fields, and that per-field machinery — not SQL — is most of its cost (bench/README.md).

:class:`KabinetExecutor` runs a *query* breadth-first instead, one **level** at a time: a field is
planned once per operation (what kind of resolver, how to complete its type) and then resolved for
all objects of that level together —

- a plain attribute (a Strawberry field without a resolver) is one ``getattr`` per object;
- a Node's ``id`` is the base64 of type name and key, as Strawberry's own ``id`` resolver computes it;
- a resolver without arguments, extensions or permission classes is called directly, with one
  ``Info`` per field and level instead of one per object;
- anything else (arguments, extensions, introspection, graphql-core's default resolver) goes through
  the field's own graphql-core resolver, exactly as graphql-core would call it;
- every awaitable of a level is awaited in one ``gather``, so dataloaders batch across the whole level
  (all accounts' balances in one load), and independent subtrees of a level run concurrently.

**Same answer or no answer.** The fast path only produces results without errors. Whenever anything
unusual happens — a resolver raises, a non-null field is null, ``is_type_of`` says no, a leaf does not
serialize, ``resolve_type`` is asynchronous — it abandons its work and the operation is executed again
by graphql-core, which then produces the spec's partial result with located errors. Queries only read,
and the request's loaders keep what they loaded, so the second run costs little and changes nothing.
Mutations (serial, side effects) and subscriptions always use graphql-core. ``tests/test_execution.py``
compares both executors field by field over the schema's query shapes.

**At most one wasted run per operation (issue 16).** A hostile query that fails on purpose would cost
twice on every request: the fast run, then graphql-core's. So an operation whose fast run gave up is
remembered (:data:`FAILED`, per process, keyed like the plan cache: schema and parsed operation node) and
its next :data:`FAILED_SKIPS` executions go straight to graphql-core (``STATS["skipped"]``). Then it gets
one fast try again, so a query that failed once for a passing reason (one user's missing object, a
transient database error) is not slow for good; the memory holds :data:`FAILED_CACHE_SIZE` operations,
oldest forgotten first. Repeating a failing query thus costs ~1 + 1/FAILED_SKIPS runs, not 2.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import weakref
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field
from itertools import repeat
from operator import attrgetter, is_
from types import GeneratorType
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLUnionType,
    OperationType,
    Undefined,
)
from graphql.execution.collect_fields import FieldDetails, collect_fields, collect_subfields
from graphql.execution.values import get_argument_values
from graphql.language import BREAK, DirectiveNode, Visitor, visit
from graphql.pyutils import Path, is_awaitable
from graphql.type import GraphQLBoolean, GraphQLID, GraphQLResolveInfoHelpers, GraphQLString
from strawberry.execution import optimized_is_awaitable
from strawberry.relay import GlobalID, Node
from strawberry.relay.utils import to_base64
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import CustomGraphQLEnumType
from strawberry.schema.types.base_scalars import isoformat
from strawberry.types.arguments import _is_leaf_type, _is_optional_leaf_type
from strawberry.types.base import StrawberryList, StrawberryMaybe, StrawberryOptional, has_object_definition
from strawberry.types.enum import has_enum_definition
from strawberry.types.unset import UNSET

from app.cost import count_objects
from app.metrics import EXECUTOR
from schema.node import KEY_ONLY, SPECULATE
from schema.policy import GUARDED

log = logging.getLogger(__name__)

BACKREF = "strawberry-definition"
BY_TYPE = "kabinet_by_type"
"""Marks an ``is_type_of`` whose answer depends on the Python type only (``schema.node.backed_by``)."""
MEMO_BY_VALUE = "kabinet_memo_by_value"
"""Marks a scalar serializer that is a pure function of values of exactly one Python type (the attribute's
value, e.g. ``schema.scalars.serialize_year_month``): its results may be remembered per value."""
MEMO_TYPES: dict[Any, type] = {isoformat: dt.date}
"""Serializers pure for values of exactly this type, besides those marked with :data:`MEMO_BY_VALUE`:
Strawberry's ``Date`` (``date.isoformat()``; a ``datetime`` is another type, so never looked up)."""
MEMOS: dict[Any, dict[Any, str]] = {}
"""Per memoizable serializer: value → its serialized string, per process (months and dates recur in every
answer). Only ``str`` results are kept."""
MEMO_SIZE = 10_000
NODE_ID_RESOLVER = Node._id.__func__  # Strawberry's resolver of Node.id
PLAN_CACHE_SIZE = 256
STATS = {"fast": 0, "fallback": 0, "skipped": 0}
"""Queries answered by the fast path, handed to graphql-core after it gave up, and sent straight to
graphql-core because they gave up before (this process)."""

FAILED_CACHE_SIZE = 1024
"""Operations whose fast run gave up, remembered per process."""

FAILED_SKIPS = 100
"""Executions of such an operation that go straight to graphql-core before the fast path tries again."""
EXECUTOR_FAST = EXECUTOR.labels("fast")
EXECUTOR_FALLBACK = EXECUTOR.labels("fallback")


class Fallback(Exception):
    """The fast path cannot give graphql-core's answer here; graphql-core will."""


# --- plans ----------------------------------------------------------------------------------------------

# how a field gets its value
ATTR, TYPENAME, NODE_ID, DIRECT, ARGS, GENERIC = range(6)
# how a value is completed
LEAF, LIST, OBJECT, ABSTRACT = range(4)

PASS_THROUGH: dict[str, type] = {
    GraphQLString.name: str,
    GraphQLBoolean.name: bool,
    GraphQLID.name: str,
}
"""Built-in scalars whose values of exactly this Python type serialize to themselves (not Int: its
32-bit range is checked by graphql-core's serializer)."""
BUILT_IN = (GraphQLString, GraphQLBoolean, GraphQLID)

NODE_IDS: dict[tuple[str, Any], str] = {}
"""Node ids already computed (type name, key) → base64, per process: the same services, suppliers and
accounts recur in every answer, and the id is a pure function of both."""
NODE_IDS_SIZE = 50_000

AWAITABLE: dict[type, bool] = {}
"""Whether values of a type are awaitable, learned per type (``await`` looks ``__await__`` up on the
type, so it is the type that decides; generators are the exception and are asked every time)."""


STANDARD_AWAITABLE = (is_awaitable, optimized_is_awaitable)
"""The predicates whose answer :func:`_is_awaitable` reproduces (graphql-core's and Strawberry's)."""


def _is_awaitable(value: Any, generator: type = GeneratorType) -> bool:
    kind = type(value)
    known = AWAITABLE.get(kind)
    if known is None:
        if kind is generator:
            return is_awaitable(value)
        known = AWAITABLE[kind] = is_awaitable(value)
    return known


def _collect_awaitables(
    column: list[Any], is_awaitable: Callable[[Any], bool], waiting: list[tuple[list[Any], int, Any]]
) -> None:
    """Append ``(column, index, value)`` to ``waiting`` for every awaitable value of ``column``.

    With :func:`_is_awaitable` a column whose Python types are all known (none a generator) is decided
    per type, not per value: a column of coroutines is all awaited, a column of plain values not at all.
    """
    if is_awaitable is _is_awaitable:
        kinds = set(map(type, column))
        if GeneratorType not in kinds:
            known = {AWAITABLE.get(kind) for kind in kinds}
            if known == {False} or not known:
                return
            if known == {True}:
                waiting.extend((column, index, value) for index, value in enumerate(column))
                return
    for index, value in enumerate(column):
        if is_awaitable(value):
            waiting.append((column, index, value))


def _node_id(type_name: str, key: Any) -> str:
    found = NODE_IDS.get((type_name, key))
    if found is None:
        if len(NODE_IDS) >= NODE_IDS_SIZE:
            NODE_IDS.clear()
        found = NODE_IDS[(type_name, key)] = to_base64(type_name, key)
    return found


ARGUMENT_CONVERTERS: dict[int, tuple[Any, Any]] = {}
"""Strawberry field definition → (it, its argument conversion or None), per process (fields are few)."""

ROWS: dict[tuple[str, ...], Callable[..., dict[str, Any]]] = {}
"""Row builders by response keys (see :func:`_row_builder`), per process."""
ROWS_SIZE = 4096


def _row_builder(keys: tuple[str, ...]) -> Callable[..., dict[str, Any]]:
    """A function of one value per key that returns the row ``{key: value, ...}`` in the keys' order.

    ``map(builder, *columns)`` builds a level's rows with one dict display per row: about 3× faster than
    ``dict(zip(keys, values))`` per row. The keys are GraphQL response names (``[_A-Za-z][_0-9A-Za-z]*``,
    the parser's rule), and each is written as its ``repr``: nothing of the query is executed.
    """
    found = ROWS.get(keys)
    if found is None:
        if not all(key.isidentifier() and key.isascii() for key in keys):
            raise Fallback  # not a GraphQL name: cannot happen after parsing
        names = [f"v{index}" for index in range(len(keys))]
        pairs = ", ".join(f"{key!r}: {name}" for key, name in zip(keys, names, strict=True))
        found = eval(f"lambda {', '.join(names)}: {{{pairs}}}", {})  # the keys' repr only, see above
        if len(ROWS) >= ROWS_SIZE:
            ROWS.clear()
        ROWS[keys] = found
    return found


def _positional(resolver: Any) -> str | None:
    """A resolver's parameters as positional slots — ``S`` the source (``self`` and the parent/root
    parameter), ``I`` the ``Info`` — when every parameter is one of those and can be passed by position;
    otherwise None (called with keywords)."""
    import inspect

    self_parameter = resolver.self_parameter
    parent = resolver.parent_parameter or resolver.root_parameter
    info = resolver.info_parameter
    slots: list[Any] = []
    for parameter in inspect.signature(resolver.wrapped_func).parameters.values():
        if parameter.kind not in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            return None
        if self_parameter is not None and parameter.name == self_parameter.name and not slots:
            slots.append("S")
        elif parent is not None and parameter.name == parent.name:
            slots.append("S")
        elif info is not None and parameter.name == info.name:
            slots.append("I")
        else:
            return None
    return "".join(slots)


Converter = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def _value_converter(type_: Any, registry: Any, config: Any) -> Converter | None:
    """Strawberry's ``convert_argument`` for one argument type, decided once: a function of the value that
    returns what ``convert_argument(value, type_, …)`` returns, step for step in the same order — or None
    for what it does not reproduce (``Maybe``, lazy types, input types with their own ``from_input``, or
    anything Strawberry itself would refuse); such fields keep Strawberry's own conversion."""
    if isinstance(type_, StrawberryMaybe):
        return None
    if isinstance(type_, StrawberryOptional):
        return _value_converter(type_.of_type, registry, config)
    # below: convert_argument's ``None`` → None and ``UNSET`` → UNSET come first, for every type
    if isinstance(type_, StrawberryList):
        of_type = type_.of_type
        if _is_leaf_type(of_type, registry, skip_classes=(GlobalID,)) or _is_optional_leaf_type(
            of_type, registry, skip_classes=(GlobalID,)
        ):

            def copy_list(value: Any) -> Any:  # a copy: graphql-core shares a default between requests
                return value if value is None or value is UNSET else list(value)

            return copy_list
        item = _value_converter(of_type, registry, config)
        if item is None:
            return None

        def convert_list(value: Any) -> Any:
            return value if value is None or value is UNSET else [item(one) for one in value]

        return convert_list
    if _is_leaf_type(type_, registry):
        if type_ is GlobalID:

            def global_id(value: Any) -> Any:  # a bad ID raises: the fast path gives up, graphql-core reports
                return value if value is None or value is UNSET else GlobalID.from_id(value)

            return global_id
        return _identity
    if has_enum_definition(type_):  # converted as its enum definition: a leaf, so the value itself
        return _identity
    if not has_object_definition(type_):
        return None
    definition = type_.__strawberry_definition__
    if definition.from_input is not None:
        return None
    defaults = (
        [
            field.python_name
            for field in definition.fields
            if field.default_value is MISSING and field.default_factory is MISSING
        ]
        if definition.is_input
        else []
    )
    fields = []
    for input_field in definition.fields:
        converter = _value_converter(input_field.resolve_type(type_definition=definition), registry, config)
        if converter is None:
            return None
        fields.append((config.name_converter.from_field(input_field), input_field.python_name, converter))
    cls = type_

    def convert_input(value: Any) -> Any:  # a fresh input object per call, as Strawberry builds it
        if value is None or value is UNSET:
            return value
        kwargs: dict[str, Any] = dict.fromkeys(defaults)
        for graphql_name, python_name, converter in fields:
            if graphql_name in value:
                kwargs[python_name] = converter(value[graphql_name])
        return cls(**kwargs)

    return convert_input


def _arguments_converter(
    definition: Any, registry: Any, config: Any
) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """Strawberry's ``convert_arguments`` for one field's arguments, decided once (see
    :func:`_value_converter`); None when one of them is not reproduced."""
    parts = []
    for argument in definition.arguments:
        converter = _value_converter(argument.type, registry, config)
        if converter is None:
            return None
        parts.append((config.name_converter.from_argument(argument), argument.python_name, converter))

    def convert(values: dict[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for name, python_name, converter in parts:
            if name in values:
                kwargs[python_name] = converter(values[name])
        return kwargs

    return convert


def _enum_names(type_: Any) -> tuple[type | None, dict[Any, str] | None]:
    """For a Strawberry enum whose serializer is Strawberry's own: its Python enum and member → name, as
    that serializer maps them (the first GraphQL name whose value equals the member's value)."""
    if type(type_) is not CustomGraphQLEnumType:
        return None, None
    names: dict[Any, str] = {}
    member: Any
    for member in type_.wrapped_cls:
        for name, value in type_.values.items():
            if member.value == value.value:
                names[member] = name
                break
    return type_.wrapped_cls, names


@dataclass(slots=True, eq=False)
class Completion:
    """How a resolved value of one GraphQL type becomes JSON-ready data."""

    kind: int
    nullable: bool
    type: Any
    details: list[FieldDetails]
    item: Completion | None = None
    serialize: Callable[[Any], Any] | None = None
    pass_through: type | None = None
    plans: dict[str, ObjectPlan] = field(default_factory=dict)
    enum_class: type | None = None
    enum_names: dict[Any, str] | None = None
    memo_type: type | None = None
    memo: dict[Any, str] | None = None


@dataclass(slots=True, eq=False)
class FieldPlan:
    """One response key of a selection: where its value comes from and how to complete it."""

    key: str
    kind: int
    field_def: GraphQLField | None
    details: list[FieldDetails]
    completion: Completion | None
    get: Callable[[Any], Any] | None = None
    func: Callable[..., Any] | None = None
    self_arg: bool = False
    positional: str | None = None
    root_name: str | None = None
    info_name: str | None = None
    strawberry_field: Any = None
    convert: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    speculate: Callable[[dict[str, Any]], Any] | None = None
    """``schema.node.SPECULATE``'s guess, for a root field whose object's key-only fields may run early."""


@dataclass(slots=True, eq=False)
class ObjectPlan:
    """The fields selected on one object type."""

    type: GraphQLObjectType
    keys: tuple[str, ...]
    fields: list[FieldPlan]
    row: Callable[..., dict[str, Any]]


Guess = tuple[GraphQLObjectType, ObjectPlan, Any]
"""A speculative field's object type, that type's plan of the selection, and the object's key (``_guess``)."""


class _DirectiveFinder(Visitor):
    """Stops at the first directive."""

    found = False

    def enter_directive(self, node: DirectiveNode, *_: Any) -> Any:
        self.found = True
        return BREAK


def _has_directives(*nodes: Any) -> bool:
    """Whether any of ``nodes`` (the operation and its fragments) uses a directive: ``@skip`` and
    ``@include`` make a plan depend on the variables of one request."""
    for node in nodes:
        finder = _DirectiveFinder()
        visit(node, finder)
        if finder.found:
            return True
    return False


class PlanCache:
    """Root plans by schema and operation node (parsed documents are cached and reused, so the node is
    stable; a plan holds one schema's fields, and a process may hold several schemas, e.g. in tests)."""

    def __init__(self, size: int = PLAN_CACHE_SIZE) -> None:
        self.size = size
        self.entries: dict[tuple[int, int], tuple[Any, Any, ObjectPlan]] = {}

    def get(self, schema: Any, operation: Any) -> ObjectPlan | None:
        entry = self.entries.get((id(schema), id(operation)))
        if entry is None or entry[0] is not schema or entry[1] is not operation:
            return None
        return entry[2]

    def put(self, schema: Any, operation: Any, plan: ObjectPlan) -> None:
        if len(self.entries) >= self.size:
            self.entries.pop(next(iter(self.entries)))
        self.entries[(id(schema), id(operation))] = (schema, operation, plan)


PLANS = PlanCache()


class FailedOperations:
    """Operations whose fast run gave up recently: how many more runs should skip it (see module doc)."""

    def __init__(self, size: int = FAILED_CACHE_SIZE, skips: int = FAILED_SKIPS) -> None:
        self.size = size
        self.skips = skips
        self.entries: dict[tuple[int, int], tuple[Any, Any, int]] = {}

    def should_skip(self, schema: Any, operation: Any) -> bool:
        """True (and one skip used) when this operation failed on the fast path recently."""
        key = (id(schema), id(operation))
        entry = self.entries.get(key)
        if entry is None or entry[0] is not schema or entry[1] is not operation:
            return False
        if entry[2] <= 1:
            del self.entries[key]
        else:
            self.entries[key] = (schema, operation, entry[2] - 1)
        return True

    def remember(self, schema: Any, operation: Any) -> None:
        """The fast run of this operation gave up."""
        key = (id(schema), id(operation))
        self.entries.pop(key, None)
        if len(self.entries) >= self.size:
            self.entries.pop(next(iter(self.entries)))
        self.entries[key] = (schema, operation, self.skips)


FAILED = FailedOperations()


# --- the executor ---------------------------------------------------------------------------------------


def _resolver_plan(
    kind: int,
    key: str,
    field_def: GraphQLField,
    details: list[FieldDetails],
    completion: Completion | None,
    resolver: Any,
    definition: Any,
    **extra: Any,
) -> FieldPlan:
    """The plan of a field whose Strawberry resolver the fast path calls itself (``DIRECT``, ``ARGS``)."""
    parent_parameter = resolver.parent_parameter or resolver.root_parameter
    info_parameter = resolver.info_parameter
    return FieldPlan(
        key=key,
        kind=kind,
        field_def=field_def,
        details=details,
        completion=completion,
        func=resolver.wrapped_func,
        self_arg=resolver.self_parameter is not None,
        root_name=parent_parameter.name if parent_parameter is not None else None,
        info_name=info_parameter.name if info_parameter is not None else None,
        strawberry_field=definition,
        **extra,
    )


class KabinetExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, with queries run breadth-first when the result is plain data."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # graphql-core gives resolvers helpers bound to the executor (executor → helpers → bound methods →
        # executor): a reference cycle that kept every request's objects — its context, session, connection
        # and rows — until the cyclic garbage collector found them, ~100 objects a request and young-
        # generation collections of 20–30 ms that stalled the requests in flight (issue 21). The same
        # helpers through a weak reference: an executor is alive while anything it runs can call them.
        executor = weakref.ref(self)
        self.async_helpers = GraphQLResolveInfoHelpers(
            gather=lambda values: executor().gather_async_work(values),  # type: ignore[union-attr]
            track=lambda values: executor().track_async_work(values),  # type: ignore[union-attr]
        )

    def execute_operation(self, serially: bool | None = None) -> Any:
        if (
            self.operation.operation is not OperationType.QUERY
            or serially
            or (self.middleware_manager is not None and self.middleware_manager.middlewares)
            or self.abort_signal is not None
        ):
            return super().execute_operation(serially)
        if FAILED.should_skip(self.schema, self.operation):
            STATS["skipped"] += 1
            return super().execute_operation(serially)
        return self._execute_fast()

    async def _execute_fast(self) -> Any:
        self._objects = 0
        try:
            plan = self._root_plan()
            rows = await self._run(plan, [self.root_value], None)
            data = rows[0]
        except Exception:  # Fallback, or a resolver's error: graphql-core reports it with its path
            log.debug("fast execution gave up", exc_info=True)
            STATS["fallback"] += 1
            FAILED.remember(self.schema, self.operation)
            EXECUTOR_FALLBACK.inc()  # app/metrics.py
            return await self._execute_slow()
        STATS["fast"] += 1
        EXECUTOR_FAST.inc()
        if hasattr(self.context_value, "answer_objects"):  # app/cost.py's actual cost, without a walk
            self.context_value.answer_objects = max(self._objects - 1, 0)  # the root is not counted
        return self.finish(self.build_response(data))

    async def _execute_slow(self) -> Any:
        self._relevant_sub_fields.clear()
        result = super().execute_operation(None)
        if self.is_awaitable(result):
            result = await result
        return result

    # --- planning -------------------------------------------------------------------------------------------

    def _root_plan(self) -> ObjectPlan:
        operation = self.operation
        cached = PLANS.get(self.schema, operation)
        if cached is not None:
            return cached
        root_type = self.schema.get_root_type(operation.operation)
        if root_type is None:
            raise Fallback
        collected = collect_fields(
            self.schema,
            self.fragments,
            self.variable_values,
            root_type,
            operation,
            self.hide_suggestions,
        )
        if collected.new_defer_usages:
            raise Fallback
        plan = self._object_plan(root_type, collected.grouped_field_set)
        fragments = (details.definition for details in self.fragments.values())
        if not _has_directives(operation, *fragments) and not any(
            details.fragment_variable_values
            for group in collected.grouped_field_set.values()
            for details in group
        ):
            PLANS.put(self.schema, operation, plan)
        return plan

    def _object_plan(self, type_: GraphQLObjectType, grouped: dict[str, list[FieldDetails]]) -> ObjectPlan:
        fields = [self._field_plan(type_, key, details) for key, details in grouped.items()]
        keys = tuple(plan.key for plan in fields)
        if not keys:  # a selection set is never empty after validation
            raise Fallback
        return ObjectPlan(type=type_, keys=keys, fields=fields, row=_row_builder(keys))

    def _sub_plan(self, completion: Completion, type_: GraphQLObjectType) -> ObjectPlan:
        plan = completion.plans.get(type_.name)
        if plan is None:
            collected = collect_subfields(
                self.schema,
                self.fragments,
                self.variable_values,
                self.operation,
                type_,
                completion.details,
                self.hide_suggestions,
            )
            if collected.new_defer_usages:
                raise Fallback
            plan = completion.plans[type_.name] = self._object_plan(type_, collected.grouped_field_set)
        return plan

    def _field_plan(self, parent: GraphQLObjectType, key: str, details: list[FieldDetails]) -> FieldPlan:
        name = details[0].node.name.value
        if name == "__typename":
            return FieldPlan(key=key, kind=TYPENAME, field_def=None, details=details, completion=None)
        field_def = self.schema.get_field(parent, name)
        if field_def is None:
            raise Fallback
        completion = self._completion(field_def.type, details)
        if name.startswith("__"):  # __schema, __type: introspection's own resolvers
            return FieldPlan(
                key=key, kind=GENERIC, field_def=field_def, details=details, completion=completion
            )
        definition = (field_def.extensions or {}).get(BACKREF)
        resolve = field_def.resolve
        if definition is None or resolve is None or getattr(resolve, GUARDED, False):
            # a personal field's role check (schema.policy) runs in its graphql-core resolver
            return FieldPlan(
                key=key, kind=GENERIC, field_def=field_def, details=details, completion=completion
            )
        if getattr(resolve, "__name__", "") == "_get_basic_result" and definition.default_resolver is getattr:
            return FieldPlan(
                key=key,
                kind=ATTR,
                field_def=field_def,
                details=details,
                completion=completion,
                get=attrgetter(definition.python_name),
            )
        resolver = definition.base_resolver
        simple = (
            resolver is not None
            and not definition.extensions
            and not field_def.args
            and not self.schema._strawberry_schema.schema_converter._exception_handler_specs  # type: ignore[attr-defined]
        )
        is_node_id = (
            resolver is not None and getattr(resolver.wrapped_func, "__func__", None) is NODE_ID_RESOLVER
        )
        if simple and is_node_id:
            origin = parent.extensions[BACKREF].origin
            if origin.resolve_id.__func__ is Node.resolve_id.__func__:  # type: ignore[attr-defined]
                return FieldPlan(
                    key=key,
                    kind=NODE_ID,
                    field_def=field_def,
                    details=details,
                    completion=None,
                    get=attrgetter(origin.resolve_id_attr()),
                )
        if simple and not is_node_id:
            return _resolver_plan(
                DIRECT,
                key,
                field_def,
                details,
                completion,
                resolver,
                definition,
                positional=_positional(resolver),
            )
        # Query.node's guess (schema.node.SPECULATE), whichever way the field is called
        speculate = getattr(resolver.wrapped_func, SPECULATE, None) if resolver is not None else None
        convert = (
            self._arguments_converter(definition)
            if resolver is not None
            and not definition.extensions
            and field_def.args
            and not is_node_id
            and not self.schema._strawberry_schema.schema_converter._exception_handler_specs  # type: ignore[attr-defined]
            else None
        )
        if convert is not None:
            assert resolver is not None
            return _resolver_plan(
                ARGS,
                key,
                field_def,
                details,
                completion,
                resolver,
                definition,
                convert=convert,
                speculate=speculate,
            )
        return FieldPlan(
            key=key,
            kind=GENERIC,
            field_def=field_def,
            details=details,
            completion=completion,
            speculate=speculate,
        )

    def _arguments_converter(self, definition: Any) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
        """The field's argument conversion (:func:`_arguments_converter`), built once per field definition."""
        found = ARGUMENT_CONVERTERS.get(id(definition))
        if found is not None and found[0] is definition:
            return found[1]
        strawberry_schema = self.schema._strawberry_schema  # type: ignore[attr-defined]
        convert = _arguments_converter(
            definition, strawberry_schema.schema_converter.scalar_registry, strawberry_schema.config
        )
        ARGUMENT_CONVERTERS[id(definition)] = (definition, convert)
        return convert

    def _completion(self, type_: GraphQLOutputType, details: list[FieldDetails]) -> Completion:
        nullable = True
        if isinstance(type_, GraphQLNonNull):
            nullable = False
            type_ = type_.of_type
        if isinstance(type_, GraphQLList):
            return Completion(
                kind=LIST,
                nullable=nullable,
                type=type_,
                details=details,
                item=self._completion(type_.of_type, details),
            )
        if isinstance(type_, GraphQLScalarType | GraphQLEnumType):
            pass_through = PASS_THROUGH.get(type_.name) if type_ in BUILT_IN else None
            enum_class, enum_names = _enum_names(type_)
            serialize = type_.coerce_output_value
            memo_type = MEMO_TYPES.get(serialize) or getattr(serialize, MEMO_BY_VALUE, None)
            return Completion(
                kind=LEAF,
                nullable=nullable,
                type=type_,
                details=details,
                serialize=serialize,
                pass_through=pass_through,
                enum_class=enum_class,
                enum_names=enum_names,
                memo_type=memo_type,
                memo=MEMOS.setdefault(serialize, {}) if memo_type is not None else None,
            )
        if isinstance(type_, GraphQLObjectType):
            return Completion(kind=OBJECT, nullable=nullable, type=type_, details=details)
        if isinstance(type_, GraphQLInterfaceType | GraphQLUnionType):
            return Completion(kind=ABSTRACT, nullable=nullable, type=type_, details=details)
        raise Fallback

    # --- running --------------------------------------------------------------------------------------------

    def _info(self, plan: FieldPlan, parent: GraphQLObjectType, path: Path | None) -> Any:
        assert plan.field_def is not None
        return self.build_resolve_info(
            plan.field_def,
            [details.node for details in plan.details],
            parent,
            Path(path, plan.key, parent.name),
        )

    async def _run(self, plan: ObjectPlan, sources: list[Any], path: Path | None) -> list[dict[str, Any]]:
        """Resolve and complete every field of ``plan`` for all ``sources`` (objects of one type)."""
        parent = plan.type
        self._objects += len(sources)
        columns: list[list[Any]] = []
        waiting: list[tuple[list[Any], int, Any]] = []
        early: list[int] = []  # columns completed by _speculate
        is_awaitable = _is_awaitable if self.is_awaitable in STANDARD_AWAITABLE else self.is_awaitable
        for field_plan in plan.fields:
            kind = field_plan.kind
            if kind == ATTR:
                column = list(map(field_plan.get, sources))  # type: ignore[arg-type]
            elif kind == TYPENAME:
                column = [parent.name] * len(sources)
            elif kind == NODE_ID:
                type_name = parent.name
                get = field_plan.get
                column = [_node_id(type_name, get(source)) for source in sources]  # type: ignore[misc]
            else:
                guess = self._guess(field_plan) if field_plan.speculate and len(sources) == 1 else None
                column = self._call(field_plan, parent, sources, path)
                if guess is not None and is_awaitable(column[0]):
                    column = [self._speculate(field_plan, column[0], guess, path)]
                    early.append(len(columns))
                _collect_awaitables(column, is_awaitable, waiting)
            columns.append(column)
        if waiting:
            settled = await asyncio.gather(*(item[2] for item in waiting), return_exceptions=True)
            for (column, index, _), value in zip(waiting, settled, strict=True):
                if isinstance(value, BaseException):
                    raise Fallback from value
                column[index] = value
        nested: list[Any] = []
        after: list[Callable[[], None]] = []
        for position, field_plan in enumerate(plan.fields):
            completion = field_plan.completion
            if completion is not None and position not in early:
                columns[position] = self._complete(
                    completion, columns[position], path, field_plan.key, nested, after
                )
        if len(nested) == 1:
            await nested[0]
        elif nested:  # every subtree finishes before a failure is reported: nothing keeps running
            for outcome in await asyncio.gather(*nested, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    raise outcome
        for regroup in after:
            regroup()
        return list(map(plan.row, *columns))

    def _guess(self, plan: FieldPlan) -> Guess | None:
        """What a speculative root field (``schema.node.SPECULATE``) will look up — its object type, that
        type's plan of the selection, and a :class:`schema.node.KeyOnly` of it — when every field selected
        on it can be answered from the key alone (``schema.node.KEY_ONLY``, its ``id``, ``__typename``);
        else None, and the field runs as any other."""
        assert plan.speculate is not None
        completion = plan.completion
        if completion is None or completion.kind not in (OBJECT, ABSTRACT):
            return None
        guessed = plan.speculate(self._argument_values(plan))
        if guessed is None:
            return None
        type_name, stub = guessed
        runtime = self.schema.get_type(type_name)
        if not isinstance(runtime, GraphQLObjectType):
            return None
        if runtime is not completion.type and not (
            completion.kind == ABSTRACT and self.schema.is_sub_type(completion.type, runtime)
        ):
            return None
        definition = (runtime.extensions or {}).get(BACKREF)
        allowed = getattr(getattr(definition, "origin", None), KEY_ONLY, None)
        if not allowed:
            return None
        sub = self._sub_plan(completion, runtime)
        for field_plan in sub.fields:
            if field_plan.kind in (TYPENAME, NODE_ID):
                continue
            if field_plan.kind in (DIRECT, ARGS) and field_plan.strawberry_field.python_name in allowed:
                continue
            return None
        return runtime, sub, stub

    async def _speculate(self, plan: FieldPlan, lookup: Any, guess: Guess, path: Path | None) -> Any:
        """The completed value of a speculative root field: its object's selection is resolved from the key
        (``guess``) *while* the field's own resolver (``lookup``: the lookup with its access check) runs, so
        the reads of both go to PostgreSQL in one statement instead of one after the other (issue 21:
        ``node(id:)`` with an account's charges or statistics, 2 round trips → 1).

        The early answer is used only when the lookup returns an object of the guessed type; when it returns
        null (not found, not the caller's), the early answer — data or errors — is thrown away, as if it had
        never run (its objects uncounted). Anything else (an error, another type) gives up: graphql-core
        runs the field as always."""
        runtime, sub, stub = guess
        completion = plan.completion
        assert completion is not None
        rows, value = await asyncio.gather(
            self._run(sub, [stub], Path(path, plan.key, None)), lookup, return_exceptions=True
        )
        if isinstance(value, BaseException):
            raise Fallback from value
        if isinstance(rows, BaseException):
            raise Fallback from rows
        if value is None:
            if not completion.nullable:
                raise Fallback
            self._objects -= count_objects(rows[0])
            return None
        if completion.kind == ABSTRACT:
            info = self._abstract_info(completion, path, plan.key)
            resolve_type = completion.type.resolve_type or self.type_resolver
            if resolve_type(value, info, completion.type) != runtime.name:
                raise Fallback
        self._check_type_of(completion, runtime, [value], path, plan.key)
        return rows[0]

    def _call(
        self, plan: FieldPlan, parent: GraphQLObjectType, sources: list[Any], path: Path | None
    ) -> list[Any]:
        raw_info = self._info(plan, parent, path)
        if plan.kind == ARGS:
            return self._call_with_arguments(plan, raw_info, sources)
        if plan.kind == DIRECT:
            func = plan.func
            assert func is not None
            kwargs: dict[str, Any] = {}
            if plan.info_name is not None:
                kwargs[plan.info_name] = self.schema._strawberry_schema.config.info_class(  # type: ignore[attr-defined]
                    _raw_info=raw_info, _field=plan.strawberry_field
                )
            positional = plan.positional
            if positional == "SS":  # (self, root): keyword arguments cost a dict per call
                return [func(source, source) for source in sources]
            if positional == "SSI":  # (self, root, info)
                info = kwargs[plan.info_name]  # type: ignore[index]
                return [func(source, source, info) for source in sources]
            root_name = plan.root_name
            if plan.self_arg:
                if root_name is None:
                    return [func(source, **kwargs) for source in sources]
                return [func(source, **{root_name: source}, **kwargs) for source in sources]
            if root_name is None:
                return [func(**kwargs) for _ in sources]
            return [func(**{root_name: source}, **kwargs) for source in sources]
        args = self._argument_values(plan)
        field_def = plan.field_def
        assert field_def is not None
        resolve = field_def.resolve or self.field_resolver
        return [resolve(source, raw_info, **args) for source in sources]

    def _argument_values(self, plan: FieldPlan) -> dict[str, Any]:
        """The field's arguments as graphql-core coerces them (the same for every object of a level)."""
        field_def = plan.field_def
        assert field_def is not None
        first = plan.details[0]
        if not field_def.args and not first.node.arguments:
            return {}
        return get_argument_values(
            field_def,
            first.node,
            self.variable_values,
            first.fragment_variable_values,
            self.hide_suggestions,
        )

    def _call_with_arguments(self, plan: FieldPlan, raw_info: Any, sources: list[Any]) -> list[Any]:
        """A resolver with arguments, called as Strawberry calls it (``get_arguments``: arguments converted
        afresh for every call, then self, parent/root and info) without its per-call wrappers."""
        func = plan.func
        convert = plan.convert
        assert func is not None and convert is not None
        args = self._argument_values(plan)
        info = None
        if plan.info_name is not None:
            info = self.schema._strawberry_schema.config.info_class(  # type: ignore[attr-defined]
                _raw_info=raw_info, _field=plan.strawberry_field
            )
        root_name = plan.root_name
        info_name = plan.info_name
        self_arg = plan.self_arg
        out = []
        for source in sources:
            kwargs = convert(args)
            if root_name is not None:
                kwargs[root_name] = source
            if info_name is not None:
                kwargs[info_name] = info
            out.append(func(source, **kwargs) if self_arg else func(**kwargs))
        return out

    def _complete(
        self,
        completion: Completion,
        values: list[Any],
        path: Path | None,
        key: str,
        nested: list[Any],
        after: list[Callable[[], None]],
    ) -> list[Any]:
        """Complete ``values``; object levels still to run go to ``nested``, list regrouping to ``after``.

        The returned list is final once every ``nested`` coroutine has finished and every ``after``
        callback has run, in order (inner lists register before the lists that contain them).
        """
        kind = completion.kind
        if kind == LEAF:
            return self._complete_leaves(completion, values)
        if kind != LIST:
            return self._complete_objects(completion, values, path, key, nested)
        item = completion.item
        assert item is not None
        flat: list[Any] = []
        lengths: list[int] = []
        for value in values:
            if value is None:
                if not completion.nullable:
                    raise Fallback
                lengths.append(-1)
                continue
            if isinstance(value, str | bytes | dict) or not hasattr(value, "__iter__"):
                raise Fallback
            before = len(flat)
            flat.extend(value)
            lengths.append(len(flat) - before)
        done = self._complete(item, flat, path, key, nested, after)
        result: list[Any] = [None] * len(lengths)

        def regroup() -> None:
            start = 0
            for position, length in enumerate(lengths):
                if length >= 0:
                    result[position] = done[start : start + length]
                    start += length

        if item.kind == LEAF:
            regroup()
        else:
            after.append(regroup)
        return result

    def _complete_leaves(self, completion: Completion, values: list[Any]) -> list[Any]:
        if not values:
            return values
        kinds = set(map(type, values))
        if len(kinds) == 1:  # one Python type (the usual column): whole-column steps, no loop per value
            kind = kinds.pop()
            if kind is completion.pass_through:
                return values
            if kind is completion.enum_class and completion.enum_names is not None:
                return list(map(completion.enum_names.__getitem__, values))
            if kind is type(None):
                if not completion.nullable:
                    raise Fallback
                return values
            memo = completion.memo
            if kind is completion.memo_type and memo is not None:
                out = list(map(memo.get, values))
                if None not in out:
                    return out
                return self._serialize_leaves(completion, values, out)
            out = list(map(completion.serialize, values))  # type: ignore[arg-type]
            if set(map(type, out)) != {str}:
                self._check_leaves(out)
            return out
        return self._serialize_leaves(completion, values, [None] * len(values))

    def _serialize_leaves(self, completion: Completion, values: list[Any], out: list[Any]) -> list[Any]:
        """Complete ``values`` one by one into ``out``, where ``None`` marks a value not yet completed."""
        pass_through = completion.pass_through
        serialize = completion.serialize
        assert serialize is not None
        enum_class = completion.enum_class
        enum_names = completion.enum_names
        memo_type = completion.memo_type
        memo = completion.memo
        nullable = completion.nullable
        for index, value in enumerate(values):
            if out[index] is not None:
                continue
            kind = type(value)
            if kind is pass_through:
                out[index] = value
            elif kind is enum_class:
                out[index] = enum_names[value]  # type: ignore[index]
            elif value is None:
                if not nullable:
                    raise Fallback
            else:
                serialized = serialize(value)
                if type(serialized) is not str:
                    self._check_leaves((serialized,))
                elif kind is memo_type and memo is not None:
                    if len(memo) >= MEMO_SIZE:
                        memo.clear()
                    memo[value] = serialized
                out[index] = serialized
        return out

    def _check_leaves(self, serialized: list[Any] | tuple[Any, ...]) -> None:
        """What graphql-core requires of serialized leaves that are not strings: not null, not Undefined;
        a JSON scalar's objects count toward the answer's objects (app/cost.py)."""
        for value in serialized:
            if type(value) is not str:
                if value is None or value is Undefined:
                    raise Fallback
                if isinstance(value, dict | list):
                    self._objects += count_objects(value)

    def _complete_objects(
        self, completion: Completion, values: list[Any], path: Path | None, key: str, nested: list[Any]
    ) -> list[Any]:
        out: list[Any] = [None] * len(values)
        if completion.kind == OBJECT:  # one runtime type: no grouping
            runtime = completion.type
            if any(map(is_, values, repeat(None))):  # identity only: no dataclass __eq__ per object
                if not completion.nullable:
                    raise Fallback
                indexes = [index for index, value in enumerate(values) if value is not None]
                sources = [values[index] for index in indexes]
            else:
                indexes = None  # every value: the rows are the answer as they are
                sources = values
            if sources:
                self._check_type_of(completion, runtime, sources, path, key)
                plan = self._sub_plan(completion, runtime)
                nested.append(self._fill(out, indexes, plan, sources, Path(path, key, None)))
            return out
        groups: dict[str, tuple[GraphQLObjectType, list[int], list[Any]]] = {}
        info = None
        for index, value in enumerate(values):
            if value is None:
                if not completion.nullable:
                    raise Fallback
                continue
            if completion.kind == OBJECT:
                runtime = completion.type
            else:
                if info is None:
                    info = self._abstract_info(completion, path, key)
                resolve_type = completion.type.resolve_type or self.type_resolver
                name = resolve_type(value, info, completion.type)
                if not isinstance(name, str):
                    raise Fallback
                runtime = self.schema.get_type(name)
                if not isinstance(runtime, GraphQLObjectType) or not self.schema.is_sub_type(
                    completion.type, runtime
                ):
                    raise Fallback
            group = groups.get(runtime.name)
            if group is None:
                group = groups[runtime.name] = (runtime, [], [])
            group[1].append(index)
            group[2].append(value)
        for runtime, indexes, sources in groups.values():
            self._check_type_of(completion, runtime, sources, path, key)
            plan = self._sub_plan(completion, runtime)
            nested.append(self._fill(out, indexes, plan, sources, Path(path, key, None)))
        return out

    def _check_type_of(
        self,
        completion: Completion,
        runtime: GraphQLObjectType,
        sources: list[Any],
        path: Path | None,
        key: str,
    ) -> None:
        """graphql-core's ``is_type_of`` check of every source; once per Python type when the check says it
        depends on the type alone (``schema.node.backed_by``: ``isinstance``)."""
        is_type_of = runtime.is_type_of
        if is_type_of is None:
            return
        info = self._abstract_info(completion, path, key)
        if getattr(is_type_of, BY_TYPE, False):
            seen: set[type] = set()
            for source in sources:
                kind = type(source)
                if kind not in seen:
                    if is_type_of(source, info) is not True:
                        raise Fallback
                    seen.add(kind)
            return
        for source in sources:
            if is_type_of(source, info) is not True:
                raise Fallback

    def _abstract_info(self, completion: Completion, path: Path | None, key: str) -> Any:
        return self.build_resolve_info(
            GraphQLField(completion.type),
            [details.node for details in completion.details],
            self.schema.query_type,  # type: ignore[arg-type]
            Path(path, key, None),
        )

    async def _fill(
        self, out: list[Any], indexes: list[int] | None, plan: ObjectPlan, sources: list[Any], path: Path
    ) -> None:
        """Put the rows of ``sources`` at ``indexes`` of ``out`` (None: ``sources`` are all of ``out``)."""
        rows = await self._run(plan, sources, path)
        if indexes is None:
            out[:] = rows
            return
        for index, row in zip(indexes, rows, strict=True):
            out[index] = row
