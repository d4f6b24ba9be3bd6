"""Environment drift: how two environments of a project's pipeline differ (compare)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.graphql.context import Info
from app.graphql.environments.types import Environment
from app.graphql.errors import NotFoundError, ValidationError
from app.graphql.projects.types import Build, Integration, Project
from app.models import DeploymentStatus
from app.services import drift
from app.services.drift import DriftKind
from app.services.errors import InvalidInput, NotFound


@strawberry.type(
    description="One configuration key of an integration, compared between the two "
    "environments by its effective value (the environment's own, else the schema's default)."
)
class ConfigurationDrift:
    key: str
    secret: bool
    kind: DriftKind
    value_a: str | None = strawberry.field(
        description="Null for secrets, always, and where environmentA has no value."
    )
    value_b: str | None = strawberry.field(
        description="Null for secrets, always, and where environmentB has no value."
    )

    @classmethod
    def from_drift(cls, row: drift.ConfigurationDrift) -> ConfigurationDrift:
        return cls(
            key=row.key,
            secret=row.secret,
            kind=row.kind,
            value_a=row.value_a,
            value_b=row.value_b,
        )


@strawberry.type(description="One integration of the project in the two environments.")
class IntegrationDrift:
    integration: Integration
    status_a: DeploymentStatus
    status_b: DeploymentStatus
    build_a: Build | None = strawberry.field(
        description="The build running in environmentA; null while NOT_DEPLOYED."
    )
    build_b: Build | None = strawberry.field(
        description="The build running in environmentB; null while NOT_DEPLOYED."
    )
    same_build: bool = strawberry.field(description="Both run the same build, or neither runs one.")
    differs: bool = strawberry.field(
        description="Another build, or a key DIFFERENT, ONLY_IN_A or ONLY_IN_B. A secret set "
        "in both (SECRET_NOT_COMPARED) is not drift: it is not known to differ."
    )
    configuration: list[ConfigurationDrift] = strawberry.field(
        description="One entry per key with a value in either environment (defaults "
        "included), in the config schema's order, then keys no longer declared."
    )

    @classmethod
    def from_drift(cls, row: drift.IntegrationDrift) -> IntegrationDrift:
        return cls(
            integration=Integration.from_model(row.integration),
            status_a=row.status_a,
            status_b=row.status_b,
            build_a=Build.from_model(row.build_a) if row.build_a else None,
            build_b=Build.from_model(row.build_b) if row.build_b else None,
            same_build=row.same_build,
            differs=row.differs,
            configuration=[ConfigurationDrift.from_drift(c) for c in row.configuration],
        )


@strawberry.type(
    description="How two environments of a project's pipeline differ: per integration, the "
    "build each runs and each configuration key's effective value. Secrets are never "
    "compared: one set in both is SECRET_NOT_COMPARED, and no secret value is returned."
)
class EnvironmentComparison:
    project: Project
    environment_a: Environment
    environment_b: Environment
    integrations: list[IntegrationDrift] = strawberry.field(
        description="Every integration of the project, in name order."
    )
    drifted_integrations: int = strawberry.field(description="How many of the integrations differ.")

    @classmethod
    def from_comparison(cls, comparison: drift.Comparison) -> EnvironmentComparison:
        return cls(
            project=Project.from_model(comparison.project),
            environment_a=Environment.from_model(comparison.environment_a),
            environment_b=Environment.from_model(comparison.environment_b),
            integrations=[IntegrationDrift.from_drift(d) for d in comparison.integrations],
            drifted_integrations=comparison.drifted_integrations,
        )


ComparisonResult = Annotated[
    EnvironmentComparison | ValidationError | NotFoundError,
    strawberry.union("ComparisonResult"),
]


@strawberry.type
class DriftQueries:
    @strawberry.field(
        description="How environmentB differs from environmentA for each integration of the "
        "project (any member may compare). Another organization's ids are NotFoundError; an "
        "environment outside the project's pipeline is a ValidationError naming its argument."
    )
    async def compare(
        self,
        info: Info,
        project_id: strawberry.ID,
        environment_a: strawberry.ID,
        environment_b: strawberry.ID,
    ) -> ComparisonResult:
        ctx = info.context
        try:
            comparison = await drift.compare_environments(
                ctx.session,
                actor=ctx.viewer,
                project_id=project_id,
                environment_a_id=environment_a,
                environment_b_id=environment_b,
            )
        except NotFound as error:
            return NotFoundError(
                code=error.code,
                message=error.message,
                id=strawberry.ID(error.id) if error.id else None,
            )
        except InvalidInput as error:
            return ValidationError(code=error.code, message=error.message, field=error.field)
        loaders = ctx.loaders
        loaders.project.prime(comparison.project.id, comparison.project)
        loaders.integration.prime_many(
            {d.integration.id: d.integration for d in comparison.integrations}
        )
        return EnvironmentComparison.from_comparison(comparison)
