"""Relay-style connections with keyset pagination over the sortable ids.

Pages of many parents (the integrations of every project on a dashboard, say) are read in one
statement with a window function, so a DataLoader can batch them.
"""

from __future__ import annotations

import base64
import binascii
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import strawberry
from sqlalchemy.orm import aliased
from sqlmodel import SQLModel, col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry.types import Info
from strawberry.types.nodes import SelectedField, Selection

from app.graphql.public_error import PublicError

MAX_PAGE_SIZE = 100

T = TypeVar("T")
M = TypeVar("M", bound=SQLModel)


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    total_count: int


def encode_cursor(object_id: str) -> str:
    return base64.urlsafe_b64encode(f"id:{object_id}".encode()).decode()


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise PublicError("after is not a cursor this API gave out") from None
    if not text.startswith("id:"):
        raise PublicError("after is not a cursor this API gave out")
    return text[3:]


def page_size(first: int | None, default: int = 50) -> int:
    """The page size asked for; null means the default, and more than the cap is an error."""
    if first is None:
        return default
    if not 0 <= first <= MAX_PAGE_SIZE:
        raise PublicError(f"first must be between 0 and {MAX_PAGE_SIZE}")
    return first


@dataclass(frozen=True)
class PageKey:
    parent_id: str
    first: int
    after: str | None
    # Values the loader's filter column must take; empty: no filter.
    only: tuple[str, ...] = ()
    # Whether totalCount was asked for (its statement is left out when not).
    counted: bool = True


def page_key(
    info: Info[Any, Any],
    parent_id: str,
    first: int | None,
    after: str | None,
    *,
    default: int = 50,
    only: tuple[str, ...] = (),
) -> PageKey:
    """The page a connection field's arguments ask for."""
    return PageKey(
        parent_id,
        page_size(first, default),
        decode_cursor(after),
        only,
        counted=any(_asks(field.selections, "totalCount") for field in info.selected_fields),
    )


def _asks(selections: Sequence[Selection], name: str) -> bool:
    """Whether the field ``name`` is among the selections (their fragments' included)."""
    return any(
        selection.name == name
        if isinstance(selection, SelectedField)
        else _asks(selection.selections, name)
        for selection in selections
    )


@dataclass(frozen=True)
class Page(Generic[M]):
    rows: list[M]
    has_next_page: bool
    total_count: int

    def connection(self, to_node: Callable[[M], T]) -> Connection[T]:
        edges = [
            Edge(cursor=encode_cursor(str(getattr(row, "id"))), node=to_node(row))  # noqa: B009
            for row in self.rows
        ]
        return Connection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=self.has_next_page, end_cursor=edges[-1].cursor if edges else None
            ),
            total_count=self.total_count,
        )


async def load_pages(
    session: AsyncSession,
    model: type[M],
    parent_column: Any,
    keys: Sequence[PageKey],
    *,
    descending: bool = False,
    where: Sequence[Any] = (),
    filter_column: Any = None,
) -> list[Page[M]]:
    """One page per key: rows of ``model`` whose ``parent_column`` is the key's parent (and whose
    ``filter_column`` is among the key's ``only`` values, if any), ordered by id, after the key's
    cursor. One count statement per filter (none for keys that do not ask for totalCount), one
    page statement per (first, after, only)."""
    id_column = col(getattr(model, "id"))  # noqa: B009
    groups: dict[tuple[int, str | None, tuple[str, ...]], list[str]] = defaultdict(list)
    for key in keys:
        groups[(key.first, key.after, key.only)].append(key.parent_id)
    counts: dict[tuple[str, tuple[str, ...]], int] = {}
    for only in {key.only for key in keys if key.counted}:
        filters = [filter_column.in_(only)] if only else []
        parents = sorted({key.parent_id for key in keys if key.only == only and key.counted})
        for parent, count in (
            await session.exec(
                select(parent_column, func.count())
                .where(parent_column.in_(parents), *where, *filters)
                .group_by(parent_column)
            )
        ).all():
            counts[(str(parent), only)] = count
    rows_by: dict[tuple[str, int, str | None, tuple[str, ...]], list[M]] = {}
    for (first, after, only), group_parents in groups.items():
        order = id_column.desc() if descending else id_column.asc()
        conditions = [parent_column.in_(group_parents), *where]
        if only:
            conditions.append(filter_column.in_(only))
        if after is not None:
            conditions.append(id_column < after if descending else id_column > after)
        number = func.row_number().over(partition_by=parent_column, order_by=order).label("rn")
        inner = select(model, number).where(*conditions).subquery()
        row_alias = aliased(model, inner)
        statement = select(row_alias).where(inner.c.rn <= first + 1).order_by(inner.c.rn)
        fetched: dict[str, list[M]] = defaultdict(list)
        for row in (await session.exec(statement)).all():
            fetched[str(getattr(row, parent_column.key))].append(row)
        for parent in group_parents:
            rows_by[(parent, first, after, only)] = fetched.get(parent, [])
    pages = []
    for key in keys:
        rows = rows_by[(key.parent_id, key.first, key.after, key.only)]
        pages.append(
            Page(
                rows=rows[: key.first],
                has_next_page=len(rows) > key.first,
                total_count=counts.get((key.parent_id, key.only), 0),
            )
        )
    return pages
