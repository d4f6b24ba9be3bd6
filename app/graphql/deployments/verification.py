"""Verification in the API: the checks a deployment's changes must pass once live
(``setVerification``), the runs kept (``Deployment.verifications``), and a run on demand
(``verifyDeployment``). The rules are in app/services/verification.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry

from app.graphql.context import Info
from app.graphql.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ValidationError,
    in_transaction,
)
from app.models import VerificationRun as VerificationRunRow
from app.services import verification as service


@strawberry.type(description="One check of a deployment's verification.")
class VerificationCheck:
    name: str
    method: str
    path: str = strawberry.field(description="Asked of the deployment's own endpoint.")
    expect_status: int
    body_contains: str | None
    json_field: str | None = strawberry.field(
        description="A dotted path into the JSON answer that must hold jsonValue."
    )
    json_value: str | None


@strawberry.type(
    description="What a change must pass once its instance takes traffic: each check is asked "
    "`attempts` times, `intervalSeconds` apart, and passes when at most `failureLimit` of its "
    "attempts fail. A change that fails it is rolled back to the revision before it."
)
class Verification:
    checks: list[VerificationCheck]
    attempts: int
    interval_seconds: float
    failure_limit: int
    timeout_seconds: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verification:
        spec = service.Verification.from_json(data)
        return cls(
            checks=[
                VerificationCheck(
                    name=c.name,
                    method=c.method,
                    path=c.path,
                    expect_status=c.expect_status,
                    body_contains=c.body_contains,
                    json_field=c.json_field,
                    json_value=c.json_value,
                )
                for c in spec.checks
            ],
            attempts=spec.attempts,
            interval_seconds=spec.interval_s,
            failure_limit=spec.failure_limit,
            timeout_seconds=spec.timeout_s,
        )


@strawberry.type(description="One attempt of a check: the status answered, and why it failed.")
class VerificationAnswer:
    attempt: int
    status: int | None = strawberry.field(description="Null when the endpoint did not answer.")
    passed: bool
    detail: str


@strawberry.type
class VerificationCheckResult:
    name: str
    passed: bool
    answers: list[VerificationAnswer]


@strawberry.type(description="One run of a deployment's verification.")
class VerificationRun:
    id: strawberry.ID
    revision: int = strawberry.field(description="The revision that served while it ran.")
    passed: bool
    checks: list[VerificationCheckResult]
    change_id: strawberry.ID | None = strawberry.field(
        description="The change it verified; null for a run asked for (verifyDeployment)."
    )
    started_at: datetime
    finished_at: datetime

    @classmethod
    def from_model(cls, row: VerificationRunRow) -> VerificationRun:
        return cls(
            id=strawberry.ID(row.id),
            revision=row.revision,
            passed=row.passed,
            checks=[
                VerificationCheckResult(
                    name=check["name"],
                    passed=check["passed"],
                    answers=[VerificationAnswer(**answer) for answer in check["answers"]],
                )
                for check in row.checks
            ],
            change_id=strawberry.ID(row.change_id) if row.change_id else None,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )


@strawberry.input
class VerificationCheckInput:
    name: str
    path: str = "/"
    method: str = "GET"
    body: str | None = strawberry.field(default=None, description="A POST's body.")
    expect_status: int = 200
    body_contains: str | None = None
    json_field: str | None = None
    json_value: str | None = None


@strawberry.input
class SetVerificationInput:
    deployment_id: strawberry.ID
    checks: list[VerificationCheckInput] = strawberry.field(
        description="An empty list removes the verification."
    )
    attempts: int = 3
    interval_seconds: float = 1.0
    failure_limit: int = 0
    timeout_seconds: float = 5.0

    def to_verification(self) -> service.Verification | None:
        if not self.checks:
            return None
        return service.Verification(
            checks=tuple(
                service.Check(
                    name=c.name,
                    path=c.path,
                    method=c.method,
                    body=c.body,
                    expect_status=c.expect_status,
                    body_contains=c.body_contains,
                    json_field=c.json_field,
                    json_value=c.json_value,
                )
                for c in self.checks
            ),
            attempts=self.attempts,
            interval_s=self.interval_seconds,
            failure_limit=self.failure_limit,
            timeout_s=self.timeout_seconds,
        )


VerificationResult = Annotated[
    VerificationRun | ValidationError | NotFoundError | ForbiddenError | ConflictError,
    strawberry.union("VerificationResult"),
]


@strawberry.type
class VerificationMutations:
    @strawberry.mutation(
        description="DEVELOPER or ADMIN. Runs the deployment's checks now against what serves "
        "and keeps the run in its verifications; nothing is rolled back."
    )
    @in_transaction
    async def verify_deployment(self, info: Info, id: strawberry.ID) -> VerificationResult:
        ctx = info.context
        return VerificationRun.from_model(
            await service.verify_now(ctx.session, actor=ctx.viewer, deployment_id=id)
        )
