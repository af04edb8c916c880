"""Bounds on what one GraphQL document may ask for (issue 16): list lengths and validation errors.

- **Lists.** Every list-typed argument and input field takes at most :data:`MAX_LIST_ITEMS` items
  (:data:`LIST_LIMITS` names the few positions allowed more). :class:`ListLengthLimiter` checks literals and
  variables before anything is resolved and answers a longer list with one top-level error
  ``LIST_TOO_LONG`` (``extensions.argument``, ``extensions.maximum``); :func:`document_list_limits`
  appends "At most N items." to each such description, so GraphiQL and ``graphql.schema`` show it.
- **Validation errors.** :class:`BoundedValidationCache` validates (with an LRU cache, as Strawberry's
  ``ValidationCache``) but stops after :data:`MAX_VALIDATION_ERRORS` errors and reports one
  ``TOO_MANY_ERRORS`` error instead of the rest: ten unknown directives gave ten errors, two thousand would
  have given two thousand.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    ListValueNode,
    ObjectValueNode,
    TypeInfo,
    TypeInfoVisitor,
    ValueNode,
    VariableNode,
    Visitor,
    get_nullable_type,
    is_list_type,
    validate,
    visit,
)
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

MAX_LIST_ITEMS = 100
"""Most items of any list argument or input field not named in :data:`LIST_LIMITS`."""

LIST_LIMITS: dict[str, int] = {
    "CreateSurveyInput.recipientIds": 1000,
    "AddOfficeSlotsInput.slots": 1000,
}
"""Positions (``Type.field`` of input objects, ``Type.field(argument)`` of arguments) with another maximum."""

MAX_VALIDATION_ERRORS = 10
"""Most validation errors reported for one document; then one ``TOO_MANY_ERRORS``."""


def list_limit(position: str) -> int:
    """The maximum number of items at ``position``."""
    return LIST_LIMITS.get(position, MAX_LIST_ITEMS)


def document_list_limits(schema: GraphQLSchema) -> None:
    """Append "At most N items." to the description of every list argument and list input field."""
    for name, type_ in schema.type_map.items():
        if name.startswith("__"):
            continue
        places: list[tuple[str, Any]] = []
        if isinstance(type_, GraphQLInputObjectType):
            places = [(f"{name}.{field}", value) for field, value in type_.fields.items()]
        elif isinstance(type_, GraphQLObjectType):
            places = [
                (f"{name}.{field}({arg})", value)
                for field, definition in type_.fields.items()
                for arg, value in definition.args.items()
            ]
        for position, value in places:
            if is_list_type(get_nullable_type(value.type)) and "At most" not in (value.description or ""):
                note = f"At most {list_limit(position)} items."
                value.description = f"{value.description} {note}" if value.description else note


class ListTooLong(GraphQLError):
    """A list argument or input field longer than its maximum."""

    def __init__(self, position: str, maximum: int) -> None:
        super().__init__(
            f"{position} takes at most {maximum} items",
            extensions={"code": "LIST_TOO_LONG", "argument": position, "maximum": maximum},
        )


def _check_value(value: Any, type_: GraphQLInputType, position: str) -> ListTooLong | None:
    """The first over-long list in a variable's (raw JSON) ``value`` of ``type_`` at ``position``."""
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    if isinstance(type_, GraphQLList):
        if not isinstance(value, list):
            return _check_value(value, type_.of_type, position)
        if len(value) > list_limit(position):
            return ListTooLong(position, list_limit(position))
        for item in value:
            if found := _check_value(item, type_.of_type, position):
                return found
    elif isinstance(type_, GraphQLInputObjectType) and isinstance(value, dict):
        for name, field in type_.fields.items():
            if name in value and (found := _check_value(value[name], field.type, f"{type_.name}.{name}")):
                return found
    return None


def _check_node(
    node: ValueNode, type_: GraphQLInputType, position: str, variables: dict[str, Any]
) -> ListTooLong | None:
    """The first over-long list in a literal ``node`` (or the variables it uses) at ``position``."""
    if isinstance(node, VariableNode):
        return _check_value(variables.get(node.name.value), type_, position)
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    if isinstance(type_, GraphQLList):
        if not isinstance(node, ListValueNode):
            return _check_node(node, type_.of_type, position, variables)
        if len(node.values) > list_limit(position):
            return ListTooLong(position, list_limit(position))
        for item in node.values:
            if found := _check_node(item, type_.of_type, position, variables):
                return found
    elif isinstance(type_, GraphQLInputObjectType) and isinstance(node, ObjectValueNode):
        for field_node in node.fields:
            field = type_.fields.get(field_node.name.value)
            if field is not None:
                at = f"{type_.name}.{field_node.name.value}"
                if found := _check_node(field_node.value, field.type, at, variables):
                    return found
    return None


Argument = tuple[ValueNode, GraphQLInputType, str]
"""An argument of a document: its value node, its type and its position (``Type.field(argument)``)."""


class _ArgumentCollector(Visitor):
    """Collects every field argument of a document that may hold a list (in document order)."""

    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.found: list[Argument] = []

    def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
        argument = self.type_info.get_argument()
        parent: Any = self.type_info.get_parent_type()  # an object or interface type: it has fields
        field = self.type_info.get_field_def()
        in_directive = self.type_info.get_directive() is not None
        if not in_directive and argument and parent is not None and field is not None:
            if _may_hold_list(argument.type, set()):
                field_name = next((n for n, f in parent.fields.items() if f is field), "?")
                position = f"{parent.name}.{field_name}({node.name.value})"
                self.found.append((node.value, argument.type, position))


def _may_hold_list(type_: GraphQLInputType, seen: set[str]) -> bool:
    """Whether a value of ``type_`` can contain a list (itself, or a field of an input object in it)."""
    type_ = get_nullable_type(type_)  # type: ignore[assignment]
    if isinstance(type_, GraphQLList):
        return True
    if isinstance(type_, GraphQLInputObjectType) and type_.name not in seen:
        seen.add(type_.name)
        return any(_may_hold_list(field.type, seen) for field in type_.fields.values())
    return False


_ARGUMENTS: dict[tuple[int, int], tuple[GraphQLSchema, DocumentNode, list[Argument]]] = {}
ARGUMENTS_CACHE_SIZE = 512


def _list_arguments(schema: GraphQLSchema, document: DocumentNode) -> list[Argument]:
    """The arguments of ``document`` that may hold lists, found once per parsed document (Strawberry's
    parser cache hands the same node back for the same query text) instead of a walk per request."""
    key = (id(schema), id(document))
    entry = _ARGUMENTS.get(key)
    if entry is not None and entry[0] is schema and entry[1] is document:
        return entry[2]
    type_info = TypeInfo(schema)
    collector = _ArgumentCollector(type_info)
    visit(document, TypeInfoVisitor(type_info, collector))
    if len(_ARGUMENTS) >= ARGUMENTS_CACHE_SIZE:
        _ARGUMENTS.pop(next(iter(_ARGUMENTS)))
    _ARGUMENTS[key] = (schema, document, collector.found)
    return collector.found


def first_list_too_long(
    schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any] | None
) -> ListTooLong | None:
    """The first list of the document's arguments (literal or from ``variables``) over its maximum."""
    values = variables if isinstance(variables, dict) else {}
    for node, type_, position in _list_arguments(schema, document):
        if found := _check_node(node, type_, position, values):
            return found
    return None


VALIDATED_SIZE = 512
"""Validation results kept per process (parsed documents × rule sets), oldest dropped first."""

_VALIDATED: OrderedDict[tuple[int, int, tuple[Any, ...]], tuple[Any, Any, list[GraphQLError]]] = OrderedDict()
"""Validation results by the *identity* of schema and parsed document (the parser cache hands out the same
document object for the same text) and the rule set. An ``lru_cache`` keyed by the document itself hashed
the whole syntax tree on every request (~100 node hashes for a small query, issue 21); the entry keeps the
schema and document alive, so their ids cannot be reused by other objects while it exists."""


def validate_cached(
    schema: GraphQLSchema, document: DocumentNode, rules: tuple[Any, ...]
) -> list[GraphQLError]:
    key = (id(schema), id(document), rules)
    found = _VALIDATED.get(key)
    if found is not None:
        _VALIDATED.move_to_end(key)
        return found[2]
    errors = _validate_now(schema, document, rules)
    _VALIDATED[key] = (schema, document, errors)
    if len(_VALIDATED) > VALIDATED_SIZE:
        _VALIDATED.popitem(last=False)
    return errors


def _validate_now(
    schema: GraphQLSchema, document: DocumentNode, rules: tuple[Any, ...]
) -> list[GraphQLError]:
    errors = validate(
        schema,
        document,
        (*rules, MaybeNullValidationRule, OneOfInputValidationRule),
        max_errors=MAX_VALIDATION_ERRORS,
    )
    if len(errors) > MAX_VALIDATION_ERRORS:  # graphql-core appended "Too many validation errors …"
        errors = [
            *errors[:MAX_VALIDATION_ERRORS],
            GraphQLError(
                f"Too many validation errors; only the first {MAX_VALIDATION_ERRORS} are reported.",
                extensions={"code": "TOO_MANY_ERRORS"},
            ),
        ]
    return errors
