"""DataLoaders, made per request: each batches one kind of read into one statement."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, Self, TypeVar, overload

from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry.dataloader import DataLoader

from app.graphql.pagination import Page, PageKey, load_pages
from app.models import (
    ApprovalPolicy,
    AuditEvent,
    Build,
    ConfigurationGroup,
    ConfigurationGroupLink,
    ConfigurationGroupValue,
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
from app.models.base import utcnow
from app.services import configuration_groups
from app.services.delivery_metrics import DeliveryMetrics, Window, delivery_metrics

M = TypeVar("M", bound=SQLModel)
K = TypeVar("K")
V = TypeVar("V")


def forget(loader: DataLoader[K, V], key: K) -> None:
    """Drop a cached value after a mutation changed it (DataLoader.clear raises KeyError for a
    key it never loaded)."""
    with contextlib.suppress(KeyError):
        loader.clear(key)


class _PerRequest(Generic[K, V]):
    """A loader of ``Loaders``, made on the request's first use of it and kept for the rest of
    the request (a non-data descriptor: the made loader shadows it, as ``cached_property``)."""

    name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, loaders: None, owner: type) -> Self: ...
    @overload
    def __get__(self, loaders: Loaders, owner: type) -> DataLoader[K, V]: ...
    def __get__(self, loaders: Loaders | None, owner: type) -> Self | DataLoader[K, V]:
        if loaders is None:
            return self
        made = DataLoader(load_fn=self.batch(loaders))
        loaders.__dict__[self.name] = made
        return made

    def batch(self, loaders: Loaders) -> Callable[[Sequence[K]], Awaitable[list[V]]]:
        raise NotImplementedError


class ById(_PerRequest[str, "M | None"], Generic[M]):
    """Rows by their ids."""

    def __init__(self, model: type[M]) -> None:
        self.model = model

    def batch(self, loaders: Loaders) -> Callable[[Sequence[str]], Awaitable[list[M | None]]]:
        model, session = self.model, loaders.session
        id_column = col(getattr(model, "id"))  # noqa: B009

        async def load(ids: Sequence[str]) -> list[M | None]:
            rows = (await session.exec(select(model).where(id_column.in_(list(ids))))).all()
            found = {str(getattr(row, "id")): row for row in rows}  # noqa: B009
            return [found.get(i) for i in ids]

        return load


class ByParent(_PerRequest[str, "list[M]"], Generic[M]):
    """The rows of each parent (by the ``parent`` column), in ``order`` (by id if not given)."""

    def __init__(
        self,
        model: type[M],
        parent: str,
        *,
        order: Sequence[Any] | None = None,
        where: Sequence[Any] = (),
        primes: str | None = None,
    ) -> None:
        """``primes``: the ``ById`` loader of the same model, which then knows the rows too
        (a deployment's ``environment``, once the organization's environments were read, is
        answered without a read or a wait)."""
        self.model, self.parent, self.where, self.primes = model, parent, where, primes
        self.order = order if order is not None else (col(getattr(model, "id")),)  # noqa: B009

    def batch(self, loaders: Loaders) -> Callable[[Sequence[str]], Awaitable[list[list[M]]]]:
        model, parent, where, order = self.model, self.parent, self.where, self.order
        parent_column = col(getattr(model, parent))
        session, primes = loaders.session, self.primes

        async def load(parent_ids: Sequence[str]) -> list[list[M]]:
            rows = (
                await session.exec(
                    select(model)
                    .where(parent_column.in_(list(parent_ids)), *where)
                    .order_by(*order)
                )
            ).all()
            grouped: dict[str, list[M]] = defaultdict(list)
            for row in rows:
                grouped[str(getattr(row, parent))].append(row)
            if primes is not None:
                by_id: DataLoader[str, M | None] = getattr(loaders, primes)
                by_id.prime_many({str(getattr(row, "id")): row for row in rows})  # noqa: B009
            return [grouped.get(i, []) for i in parent_ids]

        return load


class Pages(_PerRequest[PageKey, "Page[M]"], Generic[M]):
    """A page of each parent's rows (app/graphql/pagination.py)."""

    def __init__(
        self,
        model: type[M],
        parent: str,
        *,
        descending: bool = False,
        where: Sequence[Any] = (),
        filter_column: Any = None,
    ) -> None:
        self.model, self.parent = model, parent
        self.descending, self.where, self.filter_column = descending, where, filter_column

    def batch(self, loaders: Loaders) -> Callable[[Sequence[PageKey]], Awaitable[list[Page[M]]]]:
        parent_column = col(getattr(self.model, self.parent))
        session = loaders.session

        def load(keys: Sequence[PageKey]) -> Awaitable[list[Page[M]]]:
            return load_pages(
                session,
                self.model,
                parent_column,
                keys,
                descending=self.descending,
                where=self.where,
                filter_column=self.filter_column,
            )

        return load


class GroupKeysByDeployment(_PerRequest[str, frozenset[str]]):
    """The keys each deployment's linked configuration groups set in its environment as
    values of their own (what counts as set for missingConfiguration), in one statement."""

    def batch(self, loaders: Loaders) -> Callable[[Sequence[str]], Awaitable[list[frozenset[str]]]]:
        session = loaders.session

        async def load(ids: Sequence[str]) -> list[frozenset[str]]:
            found = await configuration_groups.group_keys(session, ids)
            return [found[i] for i in ids]

        return load


ENVIRONMENT_ORDER = (col(Environment.position), col(Environment.id))

# A project's delivery metrics: (project id, environment id or None for all, the window).
MetricsKey = tuple[str, str | None, Window]
MetricsOfProject = dict[str, DeliveryMetrics]  # by environment id


class DeliveryMetricsOfProjects(_PerRequest[MetricsKey, MetricsOfProject]):
    """The delivery metrics of each project: the projects asked for with the same environment
    and window are read together (app/services/delivery_metrics.py's statements, once)."""

    def batch(
        self, loaders: Loaders
    ) -> Callable[[Sequence[MetricsKey]], Awaitable[list[MetricsOfProject]]]:
        session = loaders.session

        async def load(keys: Sequence[MetricsKey]) -> list[MetricsOfProject]:
            projects: dict[tuple[str | None, Window], list[str]] = defaultdict(list)
            for project_id, environment_id, window in keys:
                projects[(environment_id, window)].append(project_id)
            found: dict[MetricsKey, MetricsOfProject] = {}
            connection = await session.connection()
            for (environment_id, window), project_ids in projects.items():
                metrics = await delivery_metrics(
                    connection,
                    window=window,
                    project_ids=project_ids,
                    environment_id=environment_id,
                )
                for project_id in project_ids:
                    found[(project_id, environment_id, window)] = {
                        env: figures
                        for (project, env), figures in metrics.items()
                        if project == project_id
                    }
            return [found[key] for key in keys]

        return load


class Loaders:
    """The loaders of one request, each made on its first use: a request reads a few kinds,
    and making every loader for every request cost more than most requests' reads."""

    organization = ById(Organization)
    user = ById(User)
    data_plane = ById(DataPlane)
    environment = ById(Environment)
    pipeline = ById(Pipeline)
    project = ById(Project)
    integration = ById(Integration)
    build = ById(Build)
    deployment = ById(Deployment)
    promotion = ById(Promotion)

    environments_by_organization = ByParent(
        Environment, "organization_id", order=ENVIRONMENT_ORDER, primes="environment"
    )
    environments_by_data_plane = ByParent(Environment, "data_plane_id", order=ENVIRONMENT_ORDER)
    data_planes_by_organization = ByParent(DataPlane, "organization_id")
    pipelines_by_organization = ByParent(Pipeline, "organization_id")
    memberships_by_organization = ByParent(Membership, "organization_id")
    memberships_by_user = ByParent(Membership, "user_id")
    projects_by_pipeline = ByParent(Project, "pipeline_id")
    deployments_by_integration = ByParent(Deployment, "integration_id")
    config_values_by_deployment = ByParent(ConfigValue, "deployment_id")
    stages_by_pipeline = ByParent(
        PipelineStage, "pipeline_id", order=(col(PipelineStage.position),)
    )
    approval_policies_by_environment = ByParent(ApprovalPolicy, "environment_id")
    configuration_group = ById(ConfigurationGroup)
    configuration_groups_by_organization = ByParent(
        ConfigurationGroup, "organization_id", order=(col(ConfigurationGroup.name),)
    )
    group_values_by_group = ByParent(
        ConfigurationGroupValue, "group_id", order=(col(ConfigurationGroupValue.key),)
    )
    group_links_by_group = ByParent(ConfigurationGroupLink, "group_id")
    group_links_by_integration = ByParent(ConfigurationGroupLink, "integration_id")
    group_keys_by_deployment = GroupKeysByDeployment()
    delivery_metrics = DeliveryMetricsOfProjects()
    reviews_by_promotion = ByParent(Review, "promotion_id")
    pending_promotions_by_organization = ByParent(
        Promotion,
        "organization_id",
        where=(col(Promotion.status) == PromotionStatus.PENDING_APPROVAL,),
    )
    promotion_events_by_promotion = ByParent(PromotionEvent, "promotion_id")

    projects_page = Pages(Project, "organization_id")
    integrations_page = Pages(Integration, "project_id")
    builds_page = Pages(Build, "integration_id", descending=True)
    audit_page = Pages(AuditEvent, "organization_id", descending=True)
    promotions_page = Pages(
        Promotion, "integration_id", descending=True, filter_column=col(Promotion.status)
    )
    revisions_page = Pages(DeploymentRevision, "deployment_id", descending=True)
    deployments_page = Pages(
        Deployment,
        "environment_id",
        where=(col(Deployment.status) != DeploymentStatus.NOT_DEPLOYED,),
    )

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        # "Now" for the whole request: windows that default to it are one DataLoader key.
        self.now = utcnow()

    async def require(self, loader: DataLoader[str, M | None], object_id: str) -> M:
        """For references that the foreign keys guarantee."""
        found = await loader.load(object_id)
        if found is None:
            raise LookupError(f"dangling reference {object_id}")
        return found
