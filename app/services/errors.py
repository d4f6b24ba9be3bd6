"""Expected failures of the domain. The GraphQL layer maps each to the contract's error type."""

from __future__ import annotations

import enum
from collections.abc import Sequence


class DomainError(Exception):
    code = "ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(DomainError):
    """Input that breaks a rule: a bad name, a value of the wrong type."""

    code = "VALIDATION_ERROR"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(DomainError):
    """Missing, or in an organization the caller does not belong to: the two look the same."""

    code = "NOT_FOUND"

    def __init__(self, message: str, *, id: str | None = None) -> None:
        super().__init__(message)
        self.id = id


class Forbidden(DomainError):
    code = "FORBIDDEN"


class Conflict(DomainError):
    code = "CONFLICT"


class Unavailable(DomainError):
    """What the request needs does not answer now (a data plane's workers, say)."""

    code = "UNAVAILABLE"


class MissingConfiguration(DomainError):
    code = "MISSING_CONFIGURATION"

    def __init__(self, *, environment_id: str, environment_name: str, keys: Sequence[str]) -> None:
        super().__init__(f"{environment_name} has no value for required keys: {', '.join(keys)}")
        self.environment_id = environment_id
        self.keys = list(keys)


class Blocker(enum.StrEnum):
    """Why a deploy, promotion or other change cannot start now (the API's PromotionBlocker;
    the CLI words each one)."""

    SOURCE_NOT_ACTIVE = "SOURCE_NOT_ACTIVE"
    NOT_NEXT_ENVIRONMENT = "NOT_NEXT_ENVIRONMENT"
    ENVIRONMENT_NOT_IN_PIPELINE = "ENVIRONMENT_NOT_IN_PIPELINE"
    TARGET_FROZEN = "TARGET_FROZEN"
    MISSING_CONFIGURATION = "MISSING_CONFIGURATION"
    REQUEST_ALREADY_PENDING = "REQUEST_ALREADY_PENDING"
    # The target requires the build to have run healthy in the source for longer.
    NOT_SOAKED = "NOT_SOAKED"


class PromotionBlocked(DomainError):
    """The change cannot start now; ``blockers`` names every reason."""

    code = "PROMOTION_BLOCKED"

    def __init__(self, message: str, *, blockers: Sequence[Blocker]) -> None:
        super().__init__(message)
        self.blockers = list(blockers)
