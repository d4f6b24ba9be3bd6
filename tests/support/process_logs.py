"""A server process's logging (app/processes/startup.py ``configure_logging``) set up in the
test's own process with a stream the test reads, and taken down afterwards."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import pytest

from app.log_lines import LogFormat
from app.processes.startup import configure_logging
from app.settings import Settings


@contextmanager
def process_logging(
    caplog: pytest.LogCaptureFixture, log_format: LogFormat = "json"
) -> Iterator[io.StringIO]:
    """What the process's handler writes, for the block."""
    stream = io.StringIO()
    with logging_to(caplog, stream, log_format):
        yield stream


@contextmanager
def logging_to(
    caplog: pytest.LogCaptureFixture, stream: TextIO, log_format: LogFormat
) -> Iterator[None]:
    """The process's logging on ``stream`` for the block. The root logger's level comes back
    through ``caplog``, which keeps the level it saw first."""
    caplog.set_level(logging.INFO)
    handler = configure_logging(Settings(log_format=log_format), stream=stream)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(handler)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Each line parsed: every line must be one JSON object."""
    parsed = []
    for line in text.splitlines():
        value = json.loads(line)
        assert isinstance(value, dict), line
        parsed.append(value)
    return parsed
