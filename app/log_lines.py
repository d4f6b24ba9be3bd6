"""What a server process's log lines say, and how: JSON lines for a log collector, or text for
a person at a terminal; each line of a change's work names the change, and no line shows a
secret value of it.

The change at hand lives in a context variable, set where a worker starts running a change
(``working_on``, workers/steps/machine.py): every record emitted while it runs carries its
fields, whatever logger emitted it (library code included) and in the tasks it spawns, which
copy the context. What the formatters mask is the secret values of that change, recorded as
they are read (``record_secrets``); an exception that leaves the change's work takes the
change along, so the line that logs it further up (the consumer's "Handler failed") names the
change and masks its secrets too.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from app.services.masking import mask_secrets

LogFormat = Literal["auto", "json", "text"]
# The fields of a change, in the order lines show them.
CHANGE_FIELDS = ("organization_id", "deployment_id", "change_id", "promotion_id")
# Where an exception that left a change's work keeps that change.
_EXCEPTION_ATTRIBUTE = "_promenade_change_log"


class _Change(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def organization_id(self) -> str: ...
    @property
    def deployment_id(self) -> str: ...
    @property
    def promotion_id(self) -> str | None: ...


@dataclass
class ChangeLog:
    """The change a piece of work is about: its identifiers (those known yet) and the secret
    values read for it. Mutable, and shared by the tasks spawned meanwhile: what is learnt
    after they started (the row, the secrets) reaches their lines too."""

    change_id: str | None = None
    deployment_id: str | None = None
    organization_id: str | None = None
    promotion_id: str | None = None
    secrets: set[str] = field(default_factory=set)

    def fields(self) -> dict[str, str]:
        return {name: value for name in CHANGE_FIELDS if (value := getattr(self, name))}

    def masked(self, text: str) -> str:
        return mask_secrets(text, self.secrets) if self.secrets else text


_current: ContextVar[ChangeLog | None] = ContextVar("promenade_change_log", default=None)


@contextlib.contextmanager
def working_on(*, change_id: str, deployment_id: str | None = None) -> Iterator[ChangeLog]:
    """The block's log lines are about this change (``describe`` fills in the rest once its
    row is read)."""
    change = ChangeLog(change_id=change_id, deployment_id=deployment_id)
    token = _current.set(change)
    try:
        yield change
    except BaseException as exc:
        # The line that logs it may come after the block (the consumer logs its handler's
        # failure): it finds the change on the exception.
        with contextlib.suppress(AttributeError, TypeError):
            if getattr(exc, _EXCEPTION_ATTRIBUTE, None) is None:
                setattr(exc, _EXCEPTION_ATTRIBUTE, change)
        raise
    finally:
        _current.reset(token)


def describe(change: _Change) -> None:
    """The change at hand's identifiers, from its row."""
    current = _current.get()
    if current is not None and current.change_id == change.id:
        current.organization_id = change.organization_id
        current.deployment_id = change.deployment_id
        current.promotion_id = change.promotion_id


def record_secrets(values: Iterable[str]) -> None:
    """Secret values read for the change at hand: no line of its work shows them."""
    current = _current.get()
    if current is not None:
        current.secrets.update(values)


def change_of(record: logging.LogRecord) -> ChangeLog | None:
    """The change a record is about: the one at hand, or the one its exception left."""
    current = _current.get()
    if current is not None:
        return current
    exc = record.exc_info[1] if record.exc_info else None
    while exc is not None:
        found = getattr(exc, _EXCEPTION_ATTRIBUTE, None)
        if isinstance(found, ChangeLog):
            return found
        exc = exc.__cause__ or exc.__context__
    return None


def wants_json(log_format: LogFormat, stream: Any) -> bool:
    """``auto``: JSON unless the stream is a terminal (a person reads it there)."""
    if log_format != "auto":
        return log_format == "json"
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return True


class JsonLines(JsonFormatter):
    """One JSON object a line: time (ISO 8601, UTC), level, logger, message, exception (its
    traceback, when there is one), the change's fields, and what a record's ``extra`` adds;
    uvicorn's access lines also say the client, method, path and status apart."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={
                "levelname": "level",
                "name": "logger",
                "exc_info": "exception",
                "stack_info": "stack",
            },
            # uvicorn's colored copy of its message is not for a log collector.
            reserved_attrs=[*RESERVED_ATTRS, "color_message", "taskName"],
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        log_data["time"] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        super().add_fields(log_data, record, message_dict)
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            client, method, path, http_version, status = args
            log_data.update(
                client=client, method=method, path=path, http_version=http_version, status=status
            )
        change = change_of(record)
        if change is not None:
            log_data.update(change.fields())
            if change.secrets:
                for key, value in log_data.items():
                    if isinstance(value, str):
                        log_data[key] = change.masked(value)


class TextLines(logging.Formatter):
    """``time level logger: message``, then the change's fields in brackets; secrets masked."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        change = change_of(record)
        if change is None:
            return text
        fields = " ".join(f"{name}={value}" for name, value in change.fields().items())
        head, newline, rest = text.partition("\n")  # after the message, before a traceback
        return change.masked(f"{head} [{fields}]{newline}{rest}" if fields else text)


class WithoutQueryStrings(logging.Filter):
    """uvicorn's access lines without the query string of the request: a GET's query carries
    the GraphQL document and its variables (a secret value in promotionPlan's overrides, say),
    which a log must not keep. The path stays, with ``?…`` where a query string was."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path, question, _ = args[2].partition("?")
            if question:
                record.args = (args[0], args[1], f"{path}?…", args[3], args[4])
        return True


def keep_query_strings_out_of_access_lines() -> None:
    """Install ``WithoutQueryStrings`` on uvicorn's access logger, once (the API application
    does, however it is served: uvicorn configured its loggers before it made the app)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, WithoutQueryStrings) for f in access.filters):
        access.addFilter(WithoutQueryStrings())
