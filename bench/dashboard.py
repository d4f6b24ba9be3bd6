"""An organization's dashboard: Promenade's GraphQL against a hand-written endpoint.

The world (SQLite, on a fresh data directory, made through ``app.services``): one organization
with --environments environments (Development, Production and more), one pipeline through all
of them, --integrations integrations over projects of 50, each with one build, and the first
--deployed of them ACTIVE in every environment (so each environment lists that many
deployments, at most 50).

1. **Reference**: a Starlette endpoint written by hand with SQLAlchemy Core on a copy of the
   same database file: the same token check (``app.services.auth.authenticate``), the same
   membership check, six statements, and the same JSON as Promenade's answer (the benchmark
   checks that the two are equal before it measures).
2. **Promenade**: ``app.main.create_app``, the DASHBOARD query below with the same token.

Both are driven by the bare ASGI caller of bench/read_path.py, taking turns for --rounds
rounds; each one's rate is the median of its rounds. Issue 11 asks for a ratio of at least 0.6.

    python -m bench.dashboard [--integrations 200] [--environments 10] [--deployed 50]
                              [--requests 20] [--rounds 5] [--json] [--profile FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import shutil
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col
from sqlmodel import select as sqlmodel_select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import cli, migrate
from app.db import create_engine, create_session_factory
from app.main import create_app
from app.models import (
    Build,
    Deployment,
    DeploymentStatus,
    Environment,
    Integration,
    Membership,
    Organization,
    PipelineStage,
    Project,
)
from app.services.auth import authenticate
from app.services.bootstrap import bootstrap
from app.services.environments import create_environment
from app.services.pipelines import create_pipeline
from app.services.projects import create_build, create_integration, create_project
from app.settings import Settings
from bench.read_path import post, rate

SLUG = "bench"
PAGE = 50
DASHBOARD = """
query Dashboard($slug: String!) {
  organization(slug: $slug) {
    id name
    environments {
      id name
      deployments(first: 50) { edges { node {
        id status revision integration { name } build { version }
      } } }
    }
    projects(first: 50) { edges { node {
      id name
      integrations(first: 50) { edges { node {
        id name
        deployments { status revision environment { name } build { version } }
      } } }
    } } }
  }
}
"""
BODY = json.dumps({"query": DASHBOARD, "variables": {"slug": SLUG}}).encode()


# ---- the world -------------------------------------------------------------------------------


async def make_world(
    engine: AsyncEngine, *, environments: int, integrations: int, deployed: int
) -> str:
    """The organization, its environments, pipeline, projects, integrations, builds and
    ACTIVE deployments; the admin's token."""
    async with create_session_factory(engine)() as session:
        made = await bootstrap(
            session, email="bench@example.com", name="Bench", organization_slug=SLUG
        )
        await session.commit()
        admin, org = made.user, made.organization
        assert org is not None
        for number in range(3, environments + 1):
            await create_environment(
                session,
                actor=admin,
                organization_id=org.id,
                name=f"Stage {number}",
                dns_prefix=f"stage{number}",
            )
        await session.commit()
        rows = await session.exec(
            sqlmodel_select(col(Environment.id))
            .where(col(Environment.organization_id) == org.id)
            .order_by(col(Environment.position), col(Environment.id))
        )
        every = [str(row) for row in rows.all()]
        pipeline = await create_pipeline(
            session,
            actor=admin,
            organization_id=org.id,
            name="All",
            environment_ids=every,
            is_default=True,
        )
        await session.commit()
        builds: list[tuple[str, str]] = []
        for first in range(0, integrations, PAGE):
            project = await create_project(
                session,
                actor=admin,
                organization_id=org.id,
                name=f"Project {first // PAGE}",
                pipeline_id=pipeline.id,
            )
            for number in range(first, min(first + PAGE, integrations)):
                integration = await create_integration(
                    session, actor=admin, project_id=project.id, name=f"Integration {number}"
                )
                build = await create_build(
                    session,
                    actor=admin,
                    integration_id=integration.id,
                    version="1.0.0",
                    artifact="python -m greeter",
                )
                builds.append((integration.id, build.id))
            await session.commit()
        for integration_id, build_id in builds[:deployed]:
            await session.exec(
                update(Deployment)
                .where(col(Deployment.integration_id) == integration_id)
                .values(status=DeploymentStatus.ACTIVE, build_id=build_id, revision=1)
            )
        await session.commit()
        return made.token


# ---- the hand-written endpoint ---------------------------------------------------------------


def numbered(partition: Any, order: Any) -> Any:
    return func.row_number().over(partition_by=partition, order_by=order).label("rn")


async def dashboard_json(
    connection: AsyncConnection, user_id: str, slug: str
) -> dict[str, Any] | None:
    """The dashboard as Promenade answers it; None when the user is no member."""
    org = (
        await connection.execute(
            select(col(Organization.id), col(Organization.name))
            .join(Membership, col(Membership.organization_id) == col(Organization.id))
            .where(col(Organization.slug) == slug, col(Membership.user_id) == user_id)
        )
    ).first()
    if org is None:
        return None
    environments = (
        await connection.execute(
            select(col(Environment.id), col(Environment.name))
            .where(col(Environment.organization_id) == org.id)
            .order_by(col(Environment.position), col(Environment.id))
        )
    ).all()
    inner = (
        select(
            col(Deployment.id),
            col(Deployment.environment_id),
            col(Deployment.status),
            col(Deployment.revision),
            col(Integration.name).label("integration"),
            col(Build.version),
            numbered(col(Deployment.environment_id), col(Deployment.id)),
        )
        .join(Integration, col(Integration.id) == col(Deployment.integration_id))
        .outerjoin(Build, col(Build.id) == col(Deployment.build_id))
        .where(
            col(Deployment.environment_id).in_([e.id for e in environments]),
            col(Deployment.status) != DeploymentStatus.NOT_DEPLOYED,
        )
        .subquery()
    )
    by_environment: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in (
        await connection.execute(select(inner).where(inner.c.rn <= PAGE).order_by(inner.c.rn))
    ).all():
        by_environment[row.environment_id].append(
            {
                "node": {
                    "id": row.id,
                    "status": row.status,
                    "revision": row.revision,
                    "integration": {"name": row.integration},
                    "build": None if row.version is None else {"version": row.version},
                }
            }
        )
    projects = (
        await connection.execute(
            select(col(Project.id), col(Project.name), col(Project.pipeline_id))
            .where(col(Project.organization_id) == org.id)
            .order_by(col(Project.id))
            .limit(PAGE)
        )
    ).all()
    inner = (
        select(
            col(Integration.id),
            col(Integration.name),
            col(Integration.project_id),
            numbered(col(Integration.project_id), col(Integration.id)),
        )
        .where(col(Integration.project_id).in_([p.id for p in projects]))
        .subquery()
    )
    integrations = (
        await connection.execute(select(inner).where(inner.c.rn <= PAGE).order_by(inner.c.rn))
    ).all()
    deployments: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in (
        await connection.execute(
            select(
                col(Deployment.integration_id),
                col(Deployment.status),
                col(Deployment.revision),
                col(Environment.name),
                col(Build.version),
            )
            .join(Environment, col(Environment.id) == col(Deployment.environment_id))
            .join(Integration, col(Integration.id) == col(Deployment.integration_id))
            .join(Project, col(Project.id) == col(Integration.project_id))
            .join(
                PipelineStage,
                (col(PipelineStage.pipeline_id) == col(Project.pipeline_id))
                & (col(PipelineStage.environment_id) == col(Deployment.environment_id)),
            )
            .outerjoin(Build, col(Build.id) == col(Deployment.build_id))
            .where(col(Deployment.integration_id).in_([i.id for i in integrations]))
            .order_by(col(Deployment.integration_id), col(PipelineStage.position))
        )
    ).all():
        deployments[row.integration_id].append(
            {
                "status": row.status,
                "revision": row.revision,
                "environment": {"name": row.name},
                "build": None if row.version is None else {"version": row.version},
            }
        )
    by_project: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in integrations:
        by_project[row.project_id].append(
            {
                "node": {
                    "id": row.id,
                    "name": row.name,
                    "deployments": deployments[row.id],
                }
            }
        )
    return {
        "organization": {
            "id": org.id,
            "name": org.name,
            "environments": [
                {"id": e.id, "name": e.name, "deployments": {"edges": by_environment[e.id]}}
                for e in environments
            ],
            "projects": {
                "edges": [
                    {
                        "node": {
                            "id": p.id,
                            "name": p.name,
                            "integrations": {"edges": by_project[p.id]},
                        }
                    }
                    for p in projects
                ]
            },
        }
    }


def reference_app(engine: AsyncEngine) -> Starlette:
    sessions = create_session_factory(engine)

    async def endpoint(request: Request) -> Response:
        body = json.loads(await request.body())
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        async with sessions() as session:
            user = await authenticate(session, token) if scheme.lower() == "bearer" else None
            if user is None:
                return JSONResponse({"errors": [{"message": "unauthenticated"}]}, status_code=401)
            connection = await session.connection()
            data = await dashboard_json(connection, user.id, body["variables"]["slug"])
        return JSONResponse({"data": data})

    return Starlette(routes=[Route("/graphql", endpoint, methods=["POST"])])


# ---- the run ---------------------------------------------------------------------------------


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="promenade-bench-"))
    try:
        settings = Settings(data_dir=data_dir, secret_key=Fernet.generate_key().decode())
        engine = create_engine(settings.resolved_database_url)
        await migrate.upgrade(engine)
        token = await make_world(
            engine,
            environments=args.environments,
            integrations=args.integrations,
            deployed=args.deployed,
        )
        await engine.dispose()
        database = Path(settings.resolved_database_url.split("///", 1)[1])
        copy = data_dir / "reference.db"
        shutil.copyfile(database, copy)
        engine = create_engine(settings.resolved_database_url)
        reference_engine = create_engine(f"sqlite+aiosqlite:///{copy}")
        app = create_app(settings, engine=engine)
        reference = reference_app(reference_engine)
        headers = [(b"authorization", f"Bearer {token}".encode())]
        profile = cProfile.Profile() if args.profile is not None else None
        async with app.router.lifespan_context(app):
            ours = json.loads(await post(app, BODY, headers))
            theirs = json.loads(await post(reference, BODY, headers))
            if ours != theirs:
                raise SystemExit("the two answers differ: the reference is not a fair one")
            counts = shape(ours["data"])
            reference_rates, promenade_rates = [], []
            for round_ in range(args.rounds):
                warmup = 3 if round_ == 0 else 0
                reference_rates.append(
                    await rate(reference, headers, warmup=warmup, requests=args.requests, body=BODY)
                )
                promenade_rates.append(
                    await rate(
                        app,
                        headers,
                        warmup=warmup,
                        requests=args.requests,
                        body=BODY,
                        profile=profile,
                    )
                )
        await engine.dispose()
        await reference_engine.dispose()
        if profile is not None:
            profile.dump_stats(args.profile)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    reference_rate = statistics.median(reference_rates)
    promenade_rate = statistics.median(promenade_rates)
    return {
        "shape": counts,
        "reference_rps": reference_rate,
        "promenade_rps": promenade_rate,
        "ratio": promenade_rate / reference_rate,
        "promenade_ms": 1000 / promenade_rate,
        "reference_ms": 1000 / reference_rate,
    }


def shape(data: dict[str, Any]) -> dict[str, int]:
    organization = data["organization"]
    integrations = [
        edge["node"]
        for project in organization["projects"]["edges"]
        for edge in project["node"]["integrations"]["edges"]
    ]
    return {
        "environments": len(organization["environments"]),
        "environment_deployments": sum(
            len(e["deployments"]["edges"]) for e in organization["environments"]
        ),
        "integrations": len(integrations),
        "integration_deployments": sum(len(i["deployments"]) for i in integrations),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--integrations", type=int, default=200)
    parser.add_argument("--environments", type=int, default=10)
    parser.add_argument("--deployed", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="requests of a round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="the numbers as JSON")
    parser.add_argument("--event-loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--profile", type=Path, help="cProfile statistics of Promenade's run")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}

    async def measured() -> None:
        result.update(await measure(args))

    # The loop Promenade's servers run on (PROMENADE_EVENT_LOOP's default), for both apps.
    cli.run(measured(), event_loop=args.event_loop)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"the dashboard ({result['shape']}): {result['promenade_rps']:.1f} req/s "
        f"({result['promenade_ms']:.1f} ms) against the hand-written endpoint's "
        f"{result['reference_rps']:.1f} req/s ({result['reference_ms']:.1f} ms): "
        f"ratio {result['ratio']:.3f}"
    )


if __name__ == "__main__":
    main()
