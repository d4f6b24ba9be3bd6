"""Replacing the installation's secret key: every sealed value re-encrypted with the current
key, online (``promenade rotate-key``).

The steps, for an installation whose processes must keep working throughout:

1. Every process gets the new key among PROMENADE_PREVIOUS_SECRET_KEYS (it can now open
   what the new key seals) and is restarted, one after the other.
2. Every process gets the new key as PROMENADE_SECRET_KEY and the old one among the previous
   keys (it now seals with the new key), and is restarted.
3. ``promenade rotate-key`` re-encrypts what the old key sealed, in small transactions, while
   the installation runs; it can run again (what the current key sealed is left as it is).
4. The old key leaves PROMENADE_PREVIOUS_SECRET_KEYS.

Embedded mode keeps its keys in the data directory's ``secret.key``, the current one on the
first line: ``promenade rotate-key --new-key`` (with ``promenade up`` stopped) puts a new key
first, keeps the old one after it, and re-encrypts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement
from sqlmodel import SQLModel, col, select, update

from app.crypto import SecretBox
from app.db import SessionFactory, session_scope
from app.models import ConfigValue, DeploymentChange, DeploymentRevision, Promotion

BATCH = 200


@dataclass
class Rotation:
    """How many values were sealed again, per table, and the rows whose value no key given
    opens (left as they are: the key that sealed them must stay until they are dealt with)."""

    resealed: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, list[str]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.resealed.values())

    @property
    def complete(self) -> bool:
        return not any(self.unreadable.values())


def _sealed_columns() -> list[tuple[type[SQLModel], Any, ColumnElement[bool] | None]]:
    return [
        (ConfigValue, col(ConfigValue.value), col(ConfigValue.secret).is_(True)),
        (Promotion, col(Promotion.overrides_sealed), None),
        (DeploymentChange, col(DeploymentChange.snapshot_sealed), None),
        (DeploymentRevision, col(DeploymentRevision.snapshot_sealed), None),
    ]


async def rotate_secrets(sessions: SessionFactory, box: SecretBox) -> Rotation:
    """Seal again with the box's current key every value that an older key sealed; a value
    that no key opens is reported, and the others are sealed again all the same."""
    rotation = Rotation()
    for model, column, condition in _sealed_columns():
        identifier: Any = getattr(model, "id")  # noqa: B009
        count = 0
        unreadable: list[str] = []
        after = ""
        while True:
            query = (
                select(identifier, column)
                .where(col(identifier) > after, column.is_not(None))
                .order_by(col(identifier))
                .limit(BATCH)
            )
            if condition is not None:
                query = query.where(condition)
            async with session_scope(sessions) as session:
                rows = (await session.exec(query)).all()
                for row_id, sealed in rows:
                    try:
                        resealed = box.reseal(sealed)
                    except ValueError:
                        unreadable.append(str(row_id))
                        continue
                    if resealed is None:
                        continue
                    # Only if nobody wrote it meanwhile (a writer seals with a current key).
                    result = await session.exec(
                        update(model)
                        .where(col(identifier) == row_id, column == sealed)
                        .values({column.key: resealed})
                    )
                    count += result.rowcount
            if len(rows) < BATCH:
                break
            after = rows[-1][0]
        table = str(model.__table__.name)  # type: ignore[attr-defined]
        rotation.resealed[table] = count
        rotation.unreadable[table] = unreadable
    return rotation
