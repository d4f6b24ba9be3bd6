"""DataLoaders, made per request: each batches one kind of read into one statement."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry.dataloader import DataLoader

from app.graphql.pagination import Page, PageKey, load_pages
from app.models import (
    ApprovalPolicy,
    AuditEvent,
    Build,
    ConfigValue,
    DataPlane,
    Deployment,
    DeploymentRevision,
    DeploymentStatus,
    Environment,
    Integration,
    Membership,
    Organization,
    Pipeline,
    PipelineStage,
    Project,
    Promotion,
    PromotionEvent,
    PromotionStatus,
    Review,
    User,
)

M = TypeVar("M", bound=SQLModel)
K = TypeVar("K")
V = TypeVar("V")


def forget(loader: DataLoader[K, V], key: K) -> None:
    """Drop a cached value after a mutation changed it (DataLoader.clear raises KeyError for a
    key it never loaded)."""
    with contextlib.suppress(KeyError):
        loader.clear(key)


class Loaders:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.organization = self._by_id(Organization)
        self.user = self._by_id(User)
        self.data_plane = self._by_id(DataPlane)
        self.environment = self._by_id(Environment)
        self.pipeline = self._by_id(Pipeline)
        self.project = self._by_id(Project)
        self.integration = self._by_id(Integration)
        self.build = self._by_id(Build)
        self.deployment = self._by_id(Deployment)

        self.environments_by_organization = self._by_parent(
            Environment, "organization_id", order=(col(Environment.position), col(Environment.id))
        )
        self.environments_by_data_plane = self._by_parent(
            Environment, "data_plane_id", order=(col(Environment.position), col(Environment.id))
        )
        self.data_planes_by_organization = self._by_parent(DataPlane, "organization_id")
        self.pipelines_by_organization = self._by_parent(Pipeline, "organization_id")
        self.memberships_by_organization = self._by_parent(Membership, "organization_id")
        self.memberships_by_user = self._by_parent(Membership, "user_id")
        self.projects_by_pipeline = self._by_parent(Project, "pipeline_id")
        self.deployments_by_integration = self._by_parent(Deployment, "integration_id")
        self.config_values_by_deployment = self._by_parent(ConfigValue, "deployment_id")
        self.stages_by_pipeline = self._by_parent(
            PipelineStage, "pipeline_id", order=(col(PipelineStage.position),)
        )

        self.projects_page = self._pages(Project, "organization_id")
        self.integrations_page = self._pages(Integration, "project_id")
        self.builds_page = self._pages(Build, "integration_id", descending=True)
        self.promotion = self._by_id(Promotion)
        self.approval_policies_by_environment = self._by_parent(ApprovalPolicy, "environment_id")
        self.reviews_by_promotion = self._by_parent(Review, "promotion_id")
        self.pending_promotions_by_organization = self._by_parent(
            Promotion,
            "organization_id",
            where=(col(Promotion.status) == PromotionStatus.PENDING_APPROVAL,),
        )
        self.audit_page = self._pages(AuditEvent, "organization_id", descending=True)
        self.promotion_events_by_promotion = self._by_parent(PromotionEvent, "promotion_id")
        self.promotions_page = self._pages(
            Promotion, "integration_id", descending=True, filter_column=col(Promotion.status)
        )
        self.revisions_page = self._pages(DeploymentRevision, "deployment_id", descending=True)
        self.deployments_page = self._pages(
            Deployment,
            "environment_id",
            where=(col(Deployment.status) != DeploymentStatus.NOT_DEPLOYED,),
        )

    def _by_id(self, model: type[M]) -> DataLoader[str, M | None]:
        async def load(ids: Sequence[str]) -> list[M | None]:
            id_column = col(getattr(model, "id"))  # noqa: B009
            rows = (await self._session.exec(select(model).where(id_column.in_(list(ids))))).all()
            found = {str(getattr(row, "id")): row for row in rows}  # noqa: B009
            return [found.get(i) for i in ids]

        return DataLoader(load_fn=load)

    def _by_parent(
        self,
        model: type[M],
        parent: str,
        *,
        order: Sequence[Any] | None = None,
        where: Sequence[Any] = (),
    ) -> DataLoader[str, list[M]]:
        parent_column = col(getattr(model, parent))
        ordering = order if order is not None else (col(getattr(model, "id")),)  # noqa: B009

        async def load(parent_ids: Sequence[str]) -> list[list[M]]:
            rows = (
                await self._session.exec(
                    select(model)
                    .where(parent_column.in_(list(parent_ids)), *where)
                    .order_by(*ordering)
                )
            ).all()
            grouped: dict[str, list[M]] = defaultdict(list)
            for row in rows:
                grouped[str(getattr(row, parent))].append(row)
            return [grouped.get(i, []) for i in parent_ids]

        return DataLoader(load_fn=load)

    def _pages(
        self,
        model: type[M],
        parent: str,
        *,
        descending: bool = False,
        where: Sequence[Any] = (),
        filter_column: Any = None,
    ) -> DataLoader[PageKey, Page[M]]:
        parent_column = col(getattr(model, parent))

        def load(keys: Sequence[PageKey]) -> Awaitable[list[Page[M]]]:
            return load_pages(
                self._session,
                model,
                parent_column,
                keys,
                descending=descending,
                where=where,
                filter_column=filter_column,
            )

        loader: Callable[[Sequence[PageKey]], Awaitable[list[Page[M]]]] = load
        return DataLoader(load_fn=loader)

    async def require(self, loader: DataLoader[str, M | None], object_id: str) -> M:
        """For references that the foreign keys guarantee."""
        found = await loader.load(object_id)
        if found is None:
            raise LookupError(f"dangling reference {object_id}")
        return found
