"""The asking side of requests (an instance's logs): one exclusive queue per bus for the
answers, declared on first use, and the requests waiting for theirs, by correlation id."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection

from app.messaging.bus import NoResponder
from app.messaging.rabbit.topology import declare_reply_queue


class Replies:
    def __init__(self) -> None:
        self._answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._queue: AbstractQueue | None = None
        self._lock = asyncio.Lock()

    @contextlib.contextmanager
    def expecting(self) -> Iterator[tuple[str, asyncio.Future[dict[str, Any]]]]:
        """A correlation id and the future its answer completes, while the block runs."""
        correlation_id = uuid.uuid4().hex
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._answers[correlation_id] = answer
        try:
            yield correlation_id, answer
        finally:
            self._answers.pop(correlation_id, None)

    async def queue(self, connection: AbstractRobustConnection) -> AbstractQueue:
        """The queue answers come to, declared (on a channel of its own) on first use."""
        async with self._lock:
            if self._queue is not None:
                return self._queue
            channel = await connection.channel(publisher_confirms=False)
            queue = await declare_reply_queue(channel)
            await queue.consume(self._on_answer, no_ack=True)
            self._queue = queue
            return queue

    async def _on_answer(self, incoming: AbstractIncomingMessage) -> None:
        answer = self._answers.get(incoming.correlation_id or "")
        if answer is None or answer.done():
            return  # too late: the asker gave up
        try:
            body = json.loads(incoming.body)
        except ValueError:
            body = None
        if isinstance(body, dict):
            answer.set_result(body)
        else:
            answer.set_exception(NoResponder("the answer is not a JSON object"))

    def forget(self) -> None:
        """The connection is closing: the queue goes with it, and nobody answers any more."""
        self._queue = None
        for answer in self._answers.values():
            answer.cancel()
