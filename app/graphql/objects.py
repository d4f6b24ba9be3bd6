"""What every object type shares: the Node interface, the answer to a deletion, and how a type
is filled from the row it is a snapshot of."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar, cast

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
    values = {name: getattr(row, name) for name in _init_fields(cls) if name not in given}
    return cls(**values, **given)


# Each type's fields filled from its row, found once per type.
_INIT_FIELDS: dict[type, tuple[str, ...]] = {}


def _init_fields(cls: type) -> tuple[str, ...]:
    names = _INIT_FIELDS.get(cls)
    if names is None:
        fields = dataclasses.fields(cls)
        names = _INIT_FIELDS[cls] = tuple(field.name for field in fields if field.init)
    return names


async def related(
    loader: DataLoader[str, M | None], object_id: str, convert: Callable[[M], T]
) -> T:
    """The row a foreign key points to (the database guarantees it exists), converted."""
    row = await loader.load(object_id)
    if row is None:
        raise LookupError(f"dangling reference {object_id}")
    return convert(row)


def _loaded(loader: DataLoader[str, M | None], key: str) -> tuple[bool, M | None]:
    """Whether the loader has the row already, and the row."""
    future = loader.cache_map.get(key)
    if future is None or not future.done() or future.cancelled() or future.exception():
        return False, None
    return True, future.result()


def related_now(loader: DataLoader[str, M | None], object_id: str, convert: Callable[[M], T]) -> T:
    """``related`` for a resolver that is not a coroutine function: the object at once when
    the loader has its row (graphql-core then makes no task and no wait for the field: a
    dashboard has thousands of them), else the awaitable that reads it, which graphql-core
    awaits as it would an async resolver's."""
    known, row = _loaded(loader, object_id)
    if known and row is not None:
        return convert(row)
    return cast("T", related(loader, object_id, convert))


def optional_now(
    loader: DataLoader[str, M | None], object_id: str, convert: Callable[[M], T]
) -> T | None:
    """``related_now`` for a reference whose row may be gone: None then."""
    known, row = _loaded(loader, object_id)
    if known:
        return None if row is None else convert(row)

    async def later() -> T | None:
        found = await loader.load(object_id)
        return None if found is None else convert(found)

    return cast("T | None", later())
