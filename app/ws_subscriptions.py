"""Running subscriptions that hold little (issue 21, K2 at scale: 5,000 sockets per process).

Strawberry runs a websocket subscription as one async generator (``Schema._stream``) that keeps, for the
whole life of the stream, every per-operation extension instance, the ``on_operation`` hooks of the
protection extensions held open in an ``AsyncExitStack`` (three suspended generators and their context
managers), graphql-core's ``map_async_iterable`` with its callback and two ``aclosing`` wrappers, and
the generator frames in between: ~17 kB per subscription, most of it needed only until the stream starts.

:func:`start` does the same work in the same order, with the same extension hooks — parse (token limit),
validate (depth, aliases, introspection policy, the validation cache), ``on_execute`` around building
graphql-core's executor and calling the subscription resolver — and then leaves ``on_operation``: the
hooks of our extensions do nothing after their ``yield`` once a stream has delivered a result
(``MaskErrors`` only processes the final result of a non-streamed operation). What stays, in a
:class:`Live`, is what each event needs: the resolver's event stream, the graphql-core executor (its
resolve info, which the resolver holds anyway, keeps it alive), Strawberry's execution context, and the
extensions that act on each result (``on_stream_result``/``get_results``: error masking). Each event is
mapped to its result as graphql-core's ``MapSourceToResponseEvent`` does (a per-event copy of the
executor with the event as root value), then through Strawberry's result handling and the
``on_stream_result`` hooks, as before. Everything a client sees is unchanged: the same results, errors,
masking, ``error``/``next``/``complete`` messages and close codes.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError, OperationType
from graphql.execution import create_source_event_stream
from graphql.execution.execute import ExecutorThrowingOnIncremental, execute_subscription_event
from graphql.language import OperationDefinitionNode
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import AddValidationRules, MaskErrors, MaxTokensLimiter, SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.schema import (
    DEFAULT_ALLOWED_OPERATION_TYPES,
    Schema,
    _coerce_error,
    _coerce_pre_execution_error,
)
from strawberry.types.execution import ExecutionContext, ExecutionResult, PreExecutionError
from strawberry.types.graphql import OperationType as StrawberryOperationType
from strawberry.utils.aio import aclosing
from strawberry.utils.await_maybe import await_maybe

from schema.extensions import MaskUnexpectedErrors, RequestRules

PER_RESULT_HOOKS = ("on_stream_result", "get_results")
"""Extension methods Strawberry calls for every streamed result."""

DONE_AT_START: tuple[type[SchemaExtension], ...] = (AddValidationRules, MaxTokensLimiter, MaskErrors)
"""Extensions whose ``on_operation`` hook does nothing after its ``yield`` for a stream that has started:
the validation rules and the token limit are set before parsing, and ``MaskErrors`` masks streamed results
one by one (``on_stream_result``) and only post-processes the result of an operation that yielded none
(which a started subscription cannot be in before its first event — and then there is nothing to mask).
An extension with any other ``on_operation`` hook keeps Strawberry's way (:func:`lean`)."""


def lean(extensions: list[SchemaExtension]) -> bool:
    """Whether a subscription with these extension instances may leave ``on_operation`` once started."""
    default = SchemaExtension.on_operation
    return all(
        type(extension).on_operation is default or isinstance(extension, DONE_AT_START)
        for extension in extensions
    )


def acts_per_result(extension: SchemaExtension) -> bool:
    """Whether ``extension`` overrides a hook Strawberry calls for each streamed result."""
    kind = type(extension)
    return any(getattr(kind, hook) is not getattr(SchemaExtension, hook) for hook in PER_RESULT_HOOKS)


QUIET_WITHOUT_ERRORS: tuple[type[SchemaExtension], ...] = (MaskErrors, MaskUnexpectedErrors, RequestRules)
"""Per-result extensions whose hooks do nothing for a result without errors (masking masks errors; their
``get_results`` is Strawberry's empty default)."""


class Live:
    """A running subscription: the resolver's event stream and what mapping one event needs.

    ``quiet``: every per-result extension is one of :data:`QUIET_WITHOUT_ERRORS`, so a result without
    errors needs none of their hooks (an event of a subscription is almost always one)."""

    __slots__ = ("context", "executor", "quiet", "runner", "schema", "source")

    def __init__(
        self,
        schema: Schema,
        context: ExecutionContext,
        runner: SchemaExtensionsRunner,
        executor: Any,
        source: Any,
    ) -> None:
        self.schema = schema
        self.context = context
        self.runner = runner
        self.executor = executor
        self.source = source
        self.quiet = all(type(extension) in QUIET_WITHOUT_ERRORS for extension in runner.extensions)

    async def result(self, payload: Any) -> ExecutionResult:
        """The response event of one source event (graphql-core's per-event execution), handled as
        Strawberry handles a streamed result (errors processed, extensions' results)."""
        executor = self.executor
        outcome: Any = execute_subscription_event(executor.build_per_event_executor(payload))
        if executor.is_awaitable(outcome):
            outcome = await outcome
        if (
            self.quiet
            and type(outcome) is GraphQLExecutionResult
            and not outcome.errors
            and not self.context.extensions_results
        ):
            # what Strawberry's result handling makes of it: the same data, no errors, {} of extensions
            return ExecutionResult(data=outcome.data, errors=None, extensions={})
        return await self.schema._handle_execution_result(self.context, outcome, self.runner)

    async def failure(self, error: Exception) -> ExecutionResult:
        """The result Strawberry sends when the stream or an event's execution raised."""
        return await self.schema._handle_execution_result(
            self.context, GraphQLExecutionResult(data=None, errors=[_coerce_error(error)]), self.runner
        )

    async def close(self) -> None:
        """Close the resolver's event stream (its bus subscription, its database scope)."""
        aclose = getattr(self.source, "aclose", None)
        if aclose is not None:
            with suppress(Exception):
                await aclose()


Sent = list[ExecutionResult]
"""Results to send before the stream goes live (or instead of it), already through ``on_stream_result``."""


def subscription_source(
    schema: Schema,
    context: ExecutionContext,
    middleware: Any,
    executor_class: Any,
) -> Any:
    """graphql-core's ``subscribe`` up to the source event stream: the executor and the resolver's stream
    (or an awaitable of them), or an ``ExecutionResult`` with the request's errors."""
    assert context.graphql_document is not None
    executor = (executor_class or ExecutorThrowingOnIncremental).build(
        schema._schema,
        context.graphql_document,
        context.root_value,
        context.context,
        context.variables,
        context.operation_name,
        middleware=middleware,
        operation_extensions=None,
    )
    if isinstance(executor, list):
        return GraphQLExecutionResult(None, errors=executor)
    operation: OperationDefinitionNode = executor.operation
    if operation.operation is not OperationType.SUBSCRIPTION:
        raise GraphQLError("Expected subscription operation.")
    stream = create_source_event_stream(executor)

    def found(result: Any) -> Any:
        if executor.is_async_iterable(result):
            return executor, aiter(executor.cancellable_iterable(result))
        return result

    if executor.is_awaitable(stream):

        async def awaited() -> Any:
            return found(await stream)

        return awaited()
    return found(stream)


async def start(
    schema: Schema,
    query: str | None,
    variables: dict[str, Any] | None,
    context_value: Any,
    root_value: Any,
    operation_name: str | None,
) -> tuple[Sent, Live | None] | None:
    """Prepare a subscription exactly as ``Schema.stream`` + ``Schema._stream`` do (same hooks, same
    order, same results), leaving the operation's hooks once the event stream exists. None, before any
    hook ran, when an extension's ``on_operation`` must stay open (:func:`lean`): run Strawberry's way."""
    context = schema._create_execution_context(
        query=query,
        allowed_operation_types=DEFAULT_ALLOWED_OPERATION_TYPES,
        variable_values=variables,
        context_value=context_value,
        root_value=root_value,
        operation_name=operation_name,
        operation_extensions=None,
    )
    extensions = schema.get_extensions()
    if not lean(extensions):
        return None
    for extension in extensions:
        extension.execution_context = context
    runner = schema.create_extensions_runner(context, extensions)
    middleware = schema._get_middleware_manager(extensions)
    sent: Sent = []
    async with runner.operation():
        try:
            initial_error = await schema._prepare_operation_async(context=context, extensions_runner=runner)
        except (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError) as error:
            initial_error = PreExecutionError(data=None, errors=[_coerce_pre_execution_error(error)])
        except GraphQLError as error:  # raised by an on_parse hook (ParserCache parses with the token limit)
            # outside Strawberry's parse-error handling: answered as Schema.execute answers it, so the
            # transport closes with 4400 and the parser's message, as for any document that does not parse
            # (it used to end the operation with a bare ``complete`` and a traceback at ERROR)
            initial_error = PreExecutionError(data=None, errors=[error])
        if initial_error:
            initial_error.extensions = await runner.get_extensions_results(context)
            result = await schema._handle_execution_result(context, initial_error, runner)
            async with runner.on_stream_result(result):
                sent.append(result)
            return sent, None
        if context.operation_type is not StrawberryOperationType.SUBSCRIPTION:  # a query or mutation
            results = schema._stream_non_subscription(context, runner, middleware, None)
            async with aclosing(results):
                async for item in results:
                    async with runner.on_stream_result(item):
                        sent.append(item)  # type: ignore[arg-type]  # as Strawberry's transport sends it
            return sent, None
        try:
            async with runner.executing():
                found = await await_maybe(
                    subscription_source(schema, context, middleware, schema.execution_context_class)
                )
            if isinstance(found, GraphQLExecutionResult):
                result = await schema._handle_execution_result(
                    context, PreExecutionError(data=None, errors=found.errors), runner
                )
                async with runner.on_stream_result(result):
                    sent.append(result)
                return sent, None
        except Exception as error:  # raised in an on_execute hook or while starting the stream
            result = await schema._handle_execution_result(
                context, GraphQLExecutionResult(data=None, errors=[_coerce_error(error)]), runner
            )
            async with runner.on_stream_result(result):
                sent.append(result)
            return sent, None
        executor, source = found
    per_result = [extension for extension in extensions if acts_per_result(extension)]
    per_event = SchemaExtensionsRunner(execution_context=context, extensions=per_result)
    return sent, Live(schema, context, per_event, executor, source)
