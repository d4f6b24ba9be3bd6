"""What every server command starts with: its logging and its database engine."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import create_engine
from app.log_lines import JsonLines, TextLines, wants_json
from app.settings import Settings, load_settings


class _ProcessHandler(logging.StreamHandler[TextIO]):
    """The handler configure_logging installs (and replaces when called again)."""


def configure_logging(
    settings: Settings | None = None, *, stream: TextIO | None = None
) -> logging.Handler:
    """Lines on stderr (or ``stream``), INFO and up, for the long-running commands: JSON lines
    or text, as PROMENADE_LOG_FORMAT says (``auto``: text on a terminal, JSON otherwise).
    uvicorn's lines follow (app/serving.py ``log_config``). Returns the handler installed."""
    log_format = (settings or load_settings()).log_format
    target = stream if stream is not None else sys.stderr
    handler = _ProcessHandler(target)
    handler.setFormatter(JsonLines() if wants_json(log_format, target) else TextLines())
    root = logging.getLogger()
    for previous in [h for h in root.handlers if isinstance(h, _ProcessHandler)]:
        root.removeHandler(previous)
    # Other handlers stay (a test's log capture, say).
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # Alembic narrates every migration context at INFO; the commands say what matters.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return handler


def engine_for(settings: Settings) -> AsyncEngine:
    if settings.is_sqlite:
        settings.private_data_dir()
    return create_engine(settings.resolved_database_url)
