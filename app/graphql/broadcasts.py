"""Subscriptions that many sockets share.

A crowd watching the same thing (a team's dashboards, each on ``deploymentEvents``) asks one
question: the same document, the same variables and the same roles, and the roles decide all
that a viewer may see of the answer. Such subscribers share one execution: each event is
resolved once, its payload encoded once, and that text is queued for each of their sockets,
which only put their operation's id in front of it. A socket's queue is bounded, as a hub
subscriber's is: one that falls behind is cut off (TOO_SLOW) and holds back no one.

Only root fields whose answer depends on nothing but the document, the variables and the
viewer's roles are shared (``SHARED_FIELDS``); every other subscription runs per socket. Each
socket still checks its own roles before each frame: when they change (a member demoted or
removed), it leaves the execution it shared for the one its new roles ask for, and the frame
resolved for its old roles is not sent to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, aclosing
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse
from strawberry.schema.base import BaseSchema
from strawberry.types.execution import ExecutionResult, PreExecutionError

from app.graphql.context import Context
from app.graphql.schema import MAX_TOKENS
from app.messaging.fanout import AUDIENCE, SUBSCRIBER_QUEUE_SIZE, Mailbox
from app.models import Role

log = logging.getLogger(__name__)

# Root subscription fields whose events read the same for every viewer with the same roles.
SHARED_FIELDS = frozenset({"deploymentEvents"})


def _encode(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


class Frame(NamedTuple):
    """A graphql-transport-ws message without its operation id: ``payload`` is encoded JSON
    (a ``next`` message's payload, an ``error`` message's list of errors, "" to complete)."""

    kind: Literal["next", "error", "complete", "tick"]
    payload: str = ""

    @property
    def final(self) -> bool:
        return self.kind in ("error", "complete")

    def addressed_to(self, operation_id: str) -> str:
        head = f'{{"id":{_encode(operation_id)},"type":"{self.kind}"'
        return head + "}" if self.kind == "complete" else f'{head},"payload":{self.payload}}}'

    @classmethod
    def of_result(cls, result: ExecutionResult) -> Frame:
        """What Strawberry's handler sends for an execution result."""
        payload: dict[str, object] = {"data": result.data}
        if result.errors:
            payload["errors"] = [error.formatted for error in result.errors]
        if result.extensions:
            payload["extensions"] = result.extensions
        return cls("next", _encode(payload))

    @classmethod
    def of_errors(cls, errors: Sequence[Mapping[str, object]]) -> Frame:
        return cls("error", _encode(errors))

    @classmethod
    def refusal(cls, field_name: str, message: str, code: str) -> Frame:
        """An error of the subscription's field, as a resolver's PublicError reads."""
        error = {"message": message, "path": [field_name], "extensions": {"code": code}}
        return cls("next", _encode({"data": None, "errors": [error]}))


COMPLETE = Frame("complete")
# Not sent: every ``tick_s`` it makes each listener check its viewer's roles, events or not.
TICK = Frame("tick")


def chosen_operation(query: str, operation_name: str | None) -> OperationDefinitionNode | None:
    """The operation of the document that a request with this name runs; None when there is
    none, or when the document does not parse (which the handler answers as usual)."""
    try:
        # The schema's own token limit: a document too big for it is the handler's to refuse.
        document = parse(query, no_location=True, max_tokens=MAX_TOKENS)
    except (GraphQLError, RecursionError):
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [
        operation
        for operation in operations
        if operation_name is None or (operation.name and operation.name.value == operation_name)
    ]
    return chosen[0] if len(chosen) == 1 else None


def shared_field_of(operation: OperationDefinitionNode | None) -> str | None:
    """The response key of the operation's root field when it is a subscription that may be
    shared; None for every other operation."""
    if operation is None or operation.operation is not OperationType.SUBSCRIPTION:
        return None
    selections = operation.selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode):
        return None
    root = selections[0]
    if root.name.value not in SHARED_FIELDS or root.directives:
        return None
    return (root.alias or root.name).value


def shared_field(query: str, operation_name: str | None) -> str | None:
    """``shared_field_of`` the operation a request runs."""
    return shared_field_of(chosen_operation(query, operation_name))


@dataclass(frozen=True)
class Question:
    """What the subscribers of one shared execution all ask."""

    query: str
    operation_name: str | None
    variables: str  # canonical JSON
    roles: frozenset[tuple[str, Role]]

    @classmethod
    def of(
        cls,
        query: str,
        variables: Mapping[str, object] | None,
        operation_name: str | None,
        roles: Mapping[str, Role],
    ) -> Question:
        return cls(
            query=query,
            operation_name=operation_name,
            variables=json.dumps(variables or {}, sort_keys=True, separators=(",", ":")),
            roles=frozenset(roles.items()),
        )


# What a shared execution runs with: a context of its own, opened for as long as it runs.
ContextOpener = Callable[[], AbstractAsyncContextManager[Context]]


@dataclass(eq=False)
class Broadcast:
    question: Question
    listeners: set[Mailbox[Frame]] = field(default_factory=set)
    task: asyncio.Task[None] | None = None

    def audience(self) -> int:
        return len(self.listeners)

    def send(self, frame: Frame) -> None:
        for listener in self.listeners:
            listener.offer(frame)


class Broadcasts:
    """The shared executions of one API process, one per question being asked."""

    def __init__(
        self, schema: BaseSchema, *, tick_s: float, queue_size: int = SUBSCRIBER_QUEUE_SIZE
    ) -> None:
        self._schema = schema
        self._tick_s = tick_s
        self._queue_size = queue_size
        self._running: dict[Question, Broadcast] = {}

    @property
    def running(self) -> int:
        """Executions running (each serves one or more sockets)."""
        return len(self._running)

    @contextlib.contextmanager
    def listen(self, question: Question, open_context: ContextOpener) -> Iterator[Mailbox[Frame]]:
        """A queue of the frames of the execution that answers ``question``: the one running,
        or one started now with a context from ``open_context``. The execution stops when its
        last listener leaves."""
        broadcast = self._running.get(question)
        if broadcast is None:
            broadcast = Broadcast(question)
            self._running[question] = broadcast
            broadcast.task = asyncio.create_task(self._execute(broadcast, open_context))
        listener = Mailbox[Frame](queue_size=self._queue_size)
        broadcast.listeners.add(listener)
        try:
            yield listener
        finally:
            broadcast.listeners.discard(listener)
            if not broadcast.listeners:
                self._forget(broadcast)
                if broadcast.task is not None:
                    broadcast.task.cancel()

    def _forget(self, broadcast: Broadcast) -> None:
        """Whoever asks the same question from now on starts an execution of its own."""
        if self._running.get(broadcast.question) is broadcast:
            del self._running[broadcast.question]

    def _end(self, broadcast: Broadcast, frame: Frame) -> None:
        self._forget(broadcast)
        broadcast.send(frame)

    async def _execute(self, broadcast: Broadcast, open_context: ContextOpener) -> None:
        # The hub counts the subscriber this execution makes once for each socket it serves.
        AUDIENCE.set(broadcast.audience)
        question = broadcast.question
        ticking = asyncio.create_task(self._tick(broadcast))
        try:
            async with open_context() as context:
                stream = await self._schema.subscribe(
                    question.query,
                    variable_values=json.loads(question.variables) or None,
                    context_value=context,
                    operation_name=question.operation_name,
                )
                async with aclosing(stream):
                    await self._relay(broadcast, stream)
        except Exception:
            log.exception("a shared subscription failed")
            self._end(broadcast, Frame.of_errors([{"message": "Internal server error"}]))
        finally:
            ticking.cancel()
            self._forget(broadcast)

    async def _tick(self, broadcast: Broadcast) -> None:
        """One timer for all the listeners, rather than one wait with a timeout each."""
        while True:
            await asyncio.sleep(self._tick_s)
            broadcast.send(TICK)

    async def _relay(
        self, broadcast: Broadcast, stream: AsyncIterator[ExecutionResult | PreExecutionError]
    ) -> None:
        first = True
        async for result in stream:
            if first and isinstance(result, PreExecutionError):
                self._end(broadcast, Frame.of_errors([e.formatted for e in result.errors or []]))
                return
            first = False
            broadcast.send(Frame.of_result(result))
        self._end(broadcast, COMPLETE)
