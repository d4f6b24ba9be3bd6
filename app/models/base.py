"""Column types and helpers shared by the tables."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import SQLModel

# Named constraints, so that Alembic can alter them on SQLite (batch mode) and PostgreSQL alike.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timestamps are stored in UTC and always come back timezone-aware (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def foreign_key(
    target: str,
    *,
    ondelete: str | None = None,
    nullable: bool = False,
    index: bool | None = None,
    primary_key: bool = False,
    unique: bool | None = None,
) -> Any:
    """A column holding another table's id (ids are at most 40 characters)."""
    return sa.Column(
        sa.String(40),
        sa.ForeignKey(target, ondelete=ondelete),
        nullable=nullable,
        index=index,
        primary_key=primary_key,
        unique=unique,
    )


def timestamp_column(*, nullable: bool = False) -> Any:
    return sa.Column(UTCDateTime(), nullable=nullable)


def enum_column(enum_type: type[enum.StrEnum], *, nullable: bool = False) -> Any:
    """Enums are stored as their string value: portable, and migrations stay plain."""
    return sa.Column(
        sa.Enum(enum_type, native_enum=False, length=32, values_callable=_values), nullable=nullable
    )


def _values(enum_type: type[enum.StrEnum]) -> list[str]:
    return [member.value for member in enum_type]
