"""What every object type shares: the Node interface, the answer to a deletion, and how a type
is filled from the row it is a snapshot of."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import strawberry
from strawberry.dataloader import DataLoader

M = TypeVar("M")
T = TypeVar("T")


@strawberry.interface
class Node:
    id: strawberry.ID


@strawberry.type
class Deleted:
    id: strawberry.ID


def snapshot(cls: type[T], row: object, /, **given: Any) -> T:
    """An object of the type ``cls`` holding the row's values: each of its fields (private
    ones included, resolvers left out) takes the row's attribute of the same name, unless
    ``given`` names it."""
    values = {
        field.name: getattr(row, field.name)
        for field in dataclasses.fields(cls)  # type: ignore[arg-type]
        if field.init and field.name not in given
    }
    return cls(**values, **given)


async def related(
    loader: DataLoader[str, M | None], object_id: str, convert: Callable[[M], T]
) -> T:
    """The row a foreign key points to (the database guarantees it exists), converted."""
    row = await loader.load(object_id)
    if row is None:
        raise LookupError(f"dangling reference {object_id}")
    return convert(row)
