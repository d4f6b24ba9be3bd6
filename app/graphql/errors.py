"""The contract's error types, and how a mutation turns domain errors into them."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, ParamSpec, TypeVar, cast

import strawberry
from sqlalchemy.exc import IntegrityError
from strawberry.types import Info as StrawberryInfo

from app.graphql.context import Info
from app.graphql.environments.types import Environment
from app.graphql.objects import Deleted
from app.services.errors import (
    Blocker,
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    MissingConfiguration,
    NotFound,
    PromotionBlocked,
)

log = logging.getLogger(__name__)


@strawberry.interface(name="Error")
class Error:
    code: str
    message: str


@strawberry.type(
    description="Input that breaks a rule: a bad name, a duplicate, a value of the wrong type."
)
class ValidationError(Error):
    field: str | None


@strawberry.type
class NotFoundError(Error):
    id: strawberry.ID | None


@strawberry.type(
    description="Authenticated, but the role or the rule does not allow it (self-approval, say)."
)
class ForbiddenError(Error):
    pass


@strawberry.type(
    description="The request clashes with the current state: an environment still "
    "in use, a name taken."
)
class ConflictError(Error):
    pass


@strawberry.type
class MissingConfigurationError(Error):
    environment: Environment
    missing_keys: list[str]


@strawberry.type
class PromotionBlockedError(Error):
    blockers: list[Blocker]


CommonError = ValidationError | NotFoundError | ForbiddenError | ConflictError

DeleteResult = Annotated[
    Deleted | ValidationError | NotFoundError | ForbiddenError | ConflictError,
    strawberry.union("DeleteResult"),
]


def _as_error(error: DomainError) -> CommonError:
    if isinstance(error, InvalidInput):
        return ValidationError(code=error.code, message=error.message, field=error.field)
    if isinstance(error, NotFound):
        return NotFoundError(
            code=error.code, message=error.message, id=strawberry.ID(error.id) if error.id else None
        )
    if isinstance(error, Forbidden):
        return ForbiddenError(code=error.code, message=error.message)
    if isinstance(error, Conflict):
        return ConflictError(code=error.code, message=error.message)
    raise error


T = TypeVar("T")


async def mutate(info: Info, change: Callable[[], Awaitable[T]]) -> T | CommonError:
    """Run one mutation as one transaction: committed when it succeeds; rolled back, and
    answered with the contract's error type, when the domain refuses it."""
    session = info.context.session
    try:
        result = await change()
        await session.commit()
        info.context.after_commit()
    except DomainError as error:
        await session.rollback()
        return _as_error(error)
    except IntegrityError as clash:
        await session.rollback()
        if "uq_promotions_one_pending" in str(clash.orig):
            # Two requests for the same target at once: the database kept one pending.
            raise PromotionBlocked(
                "a request for this integration and target is already waiting for reviews",
                blockers=[Blocker.REQUEST_ALREADY_PENDING],
            ) from None
        # Two requests raced past the same uniqueness check; the database kept the rule.
        log.info("unique constraint refused a concurrent change", exc_info=True)
        return ConflictError(
            code=Conflict.code, message="a concurrent change took that name or slot; try again"
        )
    return result


async def mutate_change(
    info: Info, change: Callable[[], Awaitable[T]]
) -> T | CommonError | MissingConfigurationError | PromotionBlockedError:
    """``mutate`` for changes to what runs, which can also be blocked or miss configuration."""
    try:
        return await mutate(info, change)
    except PromotionBlocked as error:
        await info.context.session.rollback()
        return PromotionBlockedError(
            code=error.code,
            message=error.message,
            blockers=error.blockers,
        )
    except MissingConfiguration as error:
        await info.context.session.rollback()
        loaders = info.context.loaders
        environment = await loaders.require(loaders.environment, error.environment_id)
        return MissingConfigurationError(
            code=error.code,
            message=error.message,
            environment=Environment.from_model(environment),
            missing_keys=error.keys,
        )


P = ParamSpec("P")
R = TypeVar("R")


Runner = Callable[[Info, Callable[[], Awaitable[Any]]], Awaitable[Any]]


def _run_by(runner: Runner) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    def decorate(resolver: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(resolver)
        async def run(*args: P.args, **kwargs: P.kwargs) -> R:
            info = kwargs["info"]
            assert isinstance(info, StrawberryInfo)
            return cast(R, await runner(info, lambda: resolver(*args, **kwargs)))

        return run

    return decorate


# A mutation resolver run as one transaction (``mutate``): its body is the change; the domain's
# refusals become the contract's error types, which its result union lists.
in_transaction = _run_by(mutate)
# The same for changes to what runs (``mutate_change``): they can also be blocked or miss
# configuration.
in_change_transaction = _run_by(mutate_change)
