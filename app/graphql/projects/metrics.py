"""A project's delivery metrics, the four DORA keys, per environment of its pipeline
(``Project.deliveryMetrics``). What each figure counts is app/services/delivery_metrics.py's
to define; the descriptions below say it in a line each."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app.graphql.context import Info
from app.graphql.environments import LazyEnvironment
from app.graphql.environments import types as environment_types
from app.graphql.objects import related
from app.graphql.public_error import PublicError
from app.services import delivery_metrics as service
from app.services.errors import InvalidInput


@strawberry.type(description="Durations in seconds over the window; null when there were none.")
class DurationPercentiles:
    median: float | None
    p90: float | None = strawberry.field(description="The 90th percentile.")

    @classmethod
    def of(cls, percentiles: service.Percentiles) -> DurationPercentiles:
        return cls(median=percentiles.median, p90=percentiles.p90)


@strawberry.type(
    description="The four DORA keys of one environment of a project's pipeline over a "
    "window [since, until). They count the changes of the project's deployments there that "
    "ended in the window: DEPLOY, PROMOTION, CONFIG_CHANGE and RESTART changes that SUCCEEDED "
    "or FAILED (rollbacks restore, they are no deployments; suspends and resumes do not count)."
)
class DeliveryMetrics:
    since: datetime
    until: datetime
    changes: int = strawberry.field(description="Changes that ended in the window.")
    deployments: int = strawberry.field(
        description="Deployment frequency: the changes that SUCCEEDED in the window."
    )
    deployments_per_day: float = strawberry.field(
        description="deployments over the window's length in days."
    )
    failed_changes: int = strawberry.field(
        description="Changes that FAILED, or SUCCEEDED and were later rolled back (a "
        "successful ROLLBACK, automatic or asked for, to a revision before theirs)."
    )
    change_failure_rate: float | None = strawberry.field(
        description="failedChanges / changes; null when no change ended in the window."
    )
    lead_time_seconds: DurationPercentiles = strawberry.field(
        description="From a build's creation to the end of the first change that ran it "
        "successfully in this environment, for the builds whose first run here ended in "
        "the window."
    )
    time_to_restore_seconds: DurationPercentiles = strawberry.field(
        description="For each failed change: from its end to the end of the deployment's "
        "next successful change (of a rolled-back one: to the end of the rollback). Over the "
        "failures restored by now."
    )
    unrestored_failures: int = strawberry.field(
        description="Failed changes that nothing restored yet (not in timeToRestoreSeconds)."
    )
    environment_id: strawberry.Private[str]

    @classmethod
    def of(cls, figures: service.DeliveryMetrics) -> DeliveryMetrics:
        return cls(
            since=figures.window.since,
            until=figures.window.until,
            changes=figures.changes,
            deployments=figures.deployments,
            deployments_per_day=figures.deployments_per_day,
            failed_changes=figures.failed_changes,
            change_failure_rate=figures.change_failure_rate,
            lead_time_seconds=DurationPercentiles.of(figures.lead_time),
            time_to_restore_seconds=DurationPercentiles.of(figures.time_to_restore),
            unrestored_failures=figures.unrestored_failures,
            environment_id=figures.environment_id,
        )

    @strawberry.field
    async def environment(self, info: Info) -> LazyEnvironment:
        return await related(
            info.context.loaders.environment,
            self.environment_id,
            environment_types.Environment.from_model,
        )


async def project_delivery_metrics(
    info: Info,
    *,
    project_id: str,
    organization_id: str,
    pipeline_id: str,
    environment_id: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[DeliveryMetrics]:
    """One entry per environment of the project's pipeline, in promotion order (only
    ``environment_id``'s when given: none when it is not in the pipeline); a bad window is a
    VALIDATION_ERROR naming the argument."""
    ctx = info.context
    try:
        window = service.window_of(since=since, until=until, now=ctx.loaders.now)
    except InvalidInput as error:
        raise PublicError(error.message, code=error.code, field=error.field) from None
    if not await ctx.can_read(organization_id):
        return []
    stages = await ctx.loaders.stages_by_pipeline.load(pipeline_id)
    environments = [s.environment_id for s in stages]
    if environment_id is not None:
        environments = [e for e in environments if e == environment_id]
        if not environments:
            return []
    found = await ctx.loaders.delivery_metrics.load((project_id, environment_id, window))
    return [
        DeliveryMetrics.of(
            found.get(environment)
            or service.DeliveryMetrics(
                project_id=project_id, environment_id=environment, window=window
            )
        )
        for environment in environments
    ]
