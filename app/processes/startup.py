"""What every server command starts with: its logging and its database engine."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import create_engine
from app.settings import Settings


def configure_logging() -> None:
    """Timestamped lines on stderr, INFO and up, for the long-running commands."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Alembic narrates every migration context at INFO; the commands say what matters.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def engine_for(settings: Settings) -> AsyncEngine:
    if settings.is_sqlite:
        settings.private_data_dir()
    return create_engine(settings.resolved_database_url)
