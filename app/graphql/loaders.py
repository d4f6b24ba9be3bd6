"""DataLoaders, made per request: each batches one kind of read into one statement."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from functools import cached_property
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
    """The loaders of one request, each made on its first use: a request reads a few kinds,
    and making every loader for every request cost more than most requests' reads."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    @cached_property
    def organization(self) -> DataLoader[str, Organization | None]:
        return self._by_id(Organization)

    @cached_property
    def user(self) -> DataLoader[str, User | None]:
        return self._by_id(User)

    @cached_property
    def data_plane(self) -> DataLoader[str, DataPlane | None]:
        return self._by_id(DataPlane)

    @cached_property
    def environment(self) -> DataLoader[str, Environment | None]:
        return self._by_id(Environment)

    @cached_property
    def pipeline(self) -> DataLoader[str, Pipeline | None]:
        return self._by_id(Pipeline)

    @cached_property
    def project(self) -> DataLoader[str, Project | None]:
        return self._by_id(Project)

    @cached_property
    def integration(self) -> DataLoader[str, Integration | None]:
        return self._by_id(Integration)

    @cached_property
    def build(self) -> DataLoader[str, Build | None]:
        return self._by_id(Build)

    @cached_property
    def deployment(self) -> DataLoader[str, Deployment | None]:
        return self._by_id(Deployment)

    @cached_property
    def environments_by_organization(self) -> DataLoader[str, list[Environment]]:
        return self._by_parent(
            Environment, "organization_id", order=(col(Environment.position), col(Environment.id))
        )

    @cached_property
    def environments_by_data_plane(self) -> DataLoader[str, list[Environment]]:
        return self._by_parent(
            Environment, "data_plane_id", order=(col(Environment.position), col(Environment.id))
        )

    @cached_property
    def data_planes_by_organization(self) -> DataLoader[str, list[DataPlane]]:
        return self._by_parent(DataPlane, "organization_id")

    @cached_property
    def pipelines_by_organization(self) -> DataLoader[str, list[Pipeline]]:
        return self._by_parent(Pipeline, "organization_id")

    @cached_property
    def memberships_by_organization(self) -> DataLoader[str, list[Membership]]:
        return self._by_parent(Membership, "organization_id")

    @cached_property
    def memberships_by_user(self) -> DataLoader[str, list[Membership]]:
        return self._by_parent(Membership, "user_id")

    @cached_property
    def projects_by_pipeline(self) -> DataLoader[str, list[Project]]:
        return self._by_parent(Project, "pipeline_id")

    @cached_property
    def deployments_by_integration(self) -> DataLoader[str, list[Deployment]]:
        return self._by_parent(Deployment, "integration_id")

    @cached_property
    def config_values_by_deployment(self) -> DataLoader[str, list[ConfigValue]]:
        return self._by_parent(ConfigValue, "deployment_id")

    @cached_property
    def stages_by_pipeline(self) -> DataLoader[str, list[PipelineStage]]:
        return self._by_parent(PipelineStage, "pipeline_id", order=(col(PipelineStage.position),))

    @cached_property
    def projects_page(self) -> DataLoader[PageKey, Page[Project]]:
        return self._pages(Project, "organization_id")

    @cached_property
    def integrations_page(self) -> DataLoader[PageKey, Page[Integration]]:
        return self._pages(Integration, "project_id")

    @cached_property
    def builds_page(self) -> DataLoader[PageKey, Page[Build]]:
        return self._pages(Build, "integration_id", descending=True)

    @cached_property
    def promotion(self) -> DataLoader[str, Promotion | None]:
        return self._by_id(Promotion)

    @cached_property
    def approval_policies_by_environment(self) -> DataLoader[str, list[ApprovalPolicy]]:
        return self._by_parent(ApprovalPolicy, "environment_id")

    @cached_property
    def reviews_by_promotion(self) -> DataLoader[str, list[Review]]:
        return self._by_parent(Review, "promotion_id")

    @cached_property
    def pending_promotions_by_organization(self) -> DataLoader[str, list[Promotion]]:
        return self._by_parent(
            Promotion,
            "organization_id",
            where=(col(Promotion.status) == PromotionStatus.PENDING_APPROVAL,),
        )

    @cached_property
    def audit_page(self) -> DataLoader[PageKey, Page[AuditEvent]]:
        return self._pages(AuditEvent, "organization_id", descending=True)

    @cached_property
    def promotion_events_by_promotion(self) -> DataLoader[str, list[PromotionEvent]]:
        return self._by_parent(PromotionEvent, "promotion_id")

    @cached_property
    def promotions_page(self) -> DataLoader[PageKey, Page[Promotion]]:
        return self._pages(
            Promotion, "integration_id", descending=True, filter_column=col(Promotion.status)
        )

    @cached_property
    def revisions_page(self) -> DataLoader[PageKey, Page[DeploymentRevision]]:
        return self._pages(DeploymentRevision, "deployment_id", descending=True)

    @cached_property
    def deployments_page(self) -> DataLoader[PageKey, Page[Deployment]]:
        return self._pages(
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
