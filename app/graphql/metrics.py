"""What the GraphQL API measures: every operation the schema runs, by type and outcome, with
its latency (``RequestMetrics``, a schema extension), and the websockets and subscriptions that
are open (``websocket.py`` keeps those two gauges).

The outcome is ``error`` when the response carries GraphQL errors (a document that does not
parse or validate, a refused limit, a variable of the wrong type, a resolver's error, masked or
not), ``ok`` otherwise. A mutation that answers one of the contract's error types (a
``ValidationError``, a ``NotFoundError`` in its result union) is ``ok``: the API answered, as
designed, and the refusal is data. Requests refused before the schema runs (401 without a
token, 413, 415 and the 400s of a malformed body) are not counted here.

A subscription is counted once, when its first result is sent (its outcome: whether that
result carried errors, as a NOT_FOUND does), or when it ends without one; its latency is the
time until it was set up (parsed, validated, subscribed), never the time it waited for events.
A shared execution (``broadcasts.py``) is one subscription however many sockets it serves;
``promenade_websocket_subscriptions`` counts each socket's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

from prometheus_client import Gauge, Histogram
from strawberry.extensions import SchemaExtension
from strawberry.types import StreamExecutionResult
from strawberry.types.graphql import OperationType

OPERATION_TYPES = ("query", "mutation", "subscription", "unknown")
OUTCOMES = ("ok", "error")

REQUEST_SECONDS = Histogram(
    "promenade_graphql_request_duration_seconds",
    "GraphQL operations this API process ran (HTTP and websockets), by operation type and "
    "outcome (error: the response carries GraphQL errors); _count counts the requests.",
    ["operation_type", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
WEBSOCKETS = Gauge(
    "promenade_websocket_connections", "Open graphql-transport-ws connections of this process."
)
SUBSCRIPTIONS = Gauge(
    "promenade_websocket_subscriptions",
    "Subscriptions running on this process's websockets (one per socket and operation, shared "
    "executions included).",
)

# The children, made once: a request looks one up rather than building a label set (the read
# path is benchmarked).
_OBSERVE = {
    (kind, outcome): REQUEST_SECONDS.labels(kind, outcome).observe
    for kind in OPERATION_TYPES
    for outcome in OUTCOMES
}
_TYPE_NAMES = {
    OperationType.QUERY: "query",
    OperationType.MUTATION: "mutation",
    OperationType.SUBSCRIPTION: "subscription",
}


class RequestMetrics(SchemaExtension):
    """Observes each operation once in ``promenade_graphql_request_duration_seconds`` (see
    the module's docstring for what counts as an error, and for subscriptions)."""

    def __init__(self) -> None:
        super().__init__()
        self._started = 0.0
        # When the execute step ended: a subscription's setup, before it waits for events.
        self._executed: float | None = None
        self._observed = False

    def _operation_type(self) -> str:
        context = self.execution_context
        if context.graphql_document is None:  # it did not parse
            return "unknown"
        try:
            return _TYPE_NAMES.get(context.operation_type, "unknown")
        except RuntimeError:  # no operation of that name in the document
            return "unknown"

    def _observe(self, kind: str, failed: bool) -> None:
        self._observed = True
        ended = self._executed if kind == "subscription" and self._executed else None
        seconds = (ended or time.perf_counter()) - self._started
        _OBSERVE[kind, "error" if failed else "ok"](seconds)

    def on_operation(self) -> Iterator[None]:
        self._started = time.perf_counter()
        try:
            yield
        except BaseException as exc:
            # Cancelled once set up: a subscription whose client left before any event.
            failed = not (isinstance(exc, asyncio.CancelledError) and self._executed)
            raise
        else:
            context = self.execution_context
            result = context.result
            failed = bool(context.pre_execution_errors) or bool(
                result is not None and result.errors
            )
        finally:
            if not self._observed:
                self._observe(self._operation_type(), failed)

    def on_execute(self) -> Iterator[None]:
        yield
        self._executed = time.perf_counter()

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        if not self._observed and self._operation_type() == "subscription":
            self._observe("subscription", bool(getattr(result, "errors", None)))
        yield
