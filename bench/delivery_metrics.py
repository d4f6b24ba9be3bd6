"""Delivery metrics at 100,000 changes: app/services/delivery_metrics.py's statement with the
index of migration 0012, against the same statement without it and against a naive Python
computation over the rows, in the same run.

The world (PostgreSQL, in a database of the run's own, as bench/promotions.py makes one): one
organization with its default pipeline Development -> Production, --projects projects of
--integrations integrations each (so 2 x P x I deployments), and --changes changes spread over those
deployments and the last 365 days, bulk-inserted (builds, changes, revisions): 20 % PROMOTIONs
and 15 % DEPLOYs of a new build (made 1 to 48 hours before), 35 % CONFIG_CHANGEs, 25 %
RESTARTs, 5 % ROLLBACKs to the revision before; 12 % of them FAILED. Then ANALYZE.

Measured, for the last 30 days:

1. **One project**: the metrics of one project's environments (what ``Project.deliveryMetrics``
   reads; its DataLoader makes the same call).
2. **Every project**: what the API's ``/metrics`` refresher reads (app/delivery_gauges.py).

Each with the index and without it (dropped in a transaction that is rolled back), and against
a naive reference: every change of the projects read (with its revision and build) and the
same definitions computed in Python, row by row. They take turns for --rounds rounds of
--repeat calls (the naive one once a round); each figure is the median call of its rounds. A
ratio is the other's time over the service's with the index (above 1: the service is faster).
The first round checks that all three give the same answers (times to the millisecond): on
random data, the service's SQL against an independent computation of the same definitions.

    python -m bench.delivery_metrics [--changes 100000] [--projects 20] [--integrations 10]
                                     [--rounds 5] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from app.db import create_engine, create_session_factory
from app.ids import new_id
from app.models import (
    Build,
    ChangeKind,
    ChangeStatus,
    Deployment,
    DeploymentChange,
    DeploymentRevision,
    Integration,
    RevisionCause,
)
from app.models.base import utcnow
from app.services.bootstrap import bootstrap
from app.services.delivery_metrics import (
    COUNTED_KINDS,
    PERCENTS,
    DeliveryMetrics,
    Key,
    Percentiles,
    Window,
    delivery_metrics,
    window_of,
)
from app.services.projects import create_integration, create_project
from bench.promotions import DEFAULT_DATABASE_URL, BenchError, database

INDEX = "ix_deployment_changes_deployment_id_finished_at"
CHUNK = 5000
HISTORY = timedelta(days=365)


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


async def make_world(engine: AsyncEngine, *, projects: int, integrations: int) -> list[str]:
    """The organization, the projects and integrations (their deployments come with them);
    the project ids."""
    async with create_session_factory(engine)() as session:
        made = await bootstrap(
            session, email="bench@example.com", name="Bench", organization_slug="bench"
        )
        await session.commit()
        admin, org = made.user, made.organization
        assert org is not None
        project_ids = []
        for number in range(projects):
            project = await create_project(
                session, actor=admin, organization_id=org.id, name=f"Project {number}"
            )
            for other in range(integrations):
                await create_integration(
                    session, actor=admin, project_id=project.id, name=f"Integration {other}"
                )
            project_ids.append(project.id)
        await session.commit()
        return project_ids


async def make_history(engine: AsyncEngine, *, changes: int, seed: int = 14) -> int:
    """``changes`` changes over the deployments and the last year; the deployments' count."""
    rng = random.Random(seed)
    now = utcnow()
    async with engine.begin() as connection:
        deployments = (
            await connection.execute(
                sa.select(
                    col(Deployment.id), col(Deployment.organization_id), col(Integration.id)
                ).join(Integration, col(Integration.id) == col(Deployment.integration_id))
            )
        ).all()
        builds: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        revisions: list[dict[str, Any]] = []
        per_deployment = changes // len(deployments)
        for index, (deployment_id, organization_id, integration_id) in enumerate(deployments):
            count = per_deployment + (1 if index < changes % len(deployments) else 0)
            moments = sorted(now - HISTORY * rng.random() for _ in range(count))
            revision, running, history = 0, "", [""]
            for finished_at in moments:
                roll = rng.random()
                if roll < 0.35 or not running:
                    kind = ChangeKind.PROMOTION if roll < 0.2 else ChangeKind.DEPLOY
                    build_id = new_id("bld")
                    builds.append(
                        {
                            "id": build_id,
                            "integration_id": integration_id,
                            "version": f"{len(builds)}",
                            "artifact": "true",
                            "created_at": finished_at - timedelta(hours=1 + 47 * rng.random()),
                        }
                    )
                elif roll < 0.95 or revision < 2:
                    kind = ChangeKind.CONFIG_CHANGE if roll < 0.7 else ChangeKind.RESTART
                    build_id = running
                else:
                    kind, build_id = ChangeKind.ROLLBACK, history[revision - 1]
                status = ChangeStatus.FAILED if rng.random() < 0.12 else ChangeStatus.SUCCEEDED
                change_id = new_id("chg")
                rows.append(
                    {
                        "id": change_id,
                        "organization_id": organization_id,
                        "deployment_id": deployment_id,
                        "kind": kind,
                        "status": status,
                        "build_id": build_id,
                        "rollback_to_revision": revision - 1
                        if kind is ChangeKind.ROLLBACK
                        else None,
                        "created_at": finished_at - timedelta(minutes=2),
                        "finished_at": finished_at,
                    }
                )
                if status is ChangeStatus.SUCCEEDED:
                    revision += 1
                    running = build_id
                    history.append(build_id)
                    revisions.append(
                        {
                            "id": new_id("rev"),
                            "deployment_id": deployment_id,
                            "revision": revision,
                            "build_id": build_id,
                            "configuration_digest": "0" * 64,
                            "snapshot_sealed": "sealed",
                            "cause": RevisionCause(kind.value),
                            "change_id": change_id,
                            "created_at": finished_at,
                        }
                    )
        for table, values in (
            (Build, builds),
            (DeploymentChange, rows),
            (DeploymentRevision, revisions),
        ):
            for first in range(0, len(values), CHUNK):
                await connection.execute(sa.insert(table), values[first : first + CHUNK])
        await connection.execute(sa.text("ANALYZE"))
    return len(deployments)


# ---- the naive reference: every change of the projects read, the figures made in Python ------


def _percentiles(values: list[float]) -> Percentiles:
    """As the service ranks them: interpolated between the two nearest (percentile_cont)."""
    if not values:
        return Percentiles()
    ordered = sorted(values)
    found = []
    for percent in PERCENTS:
        position = percent * (len(ordered) - 1)
        low, high = ordered[position // 100], ordered[(position + 99) // 100]
        found.append(low + (high - low) * (position % 100) / 100)
    return Percentiles(median=found[0], p90=found[1])


async def naive_metrics(
    connection: AsyncConnection, *, window: Window, project_ids: list[str] | None
) -> dict[Key, DeliveryMetrics]:
    """The service's definitions, row by row: each deployment's whole history is read (a first
    run and a rollback need what came before and after the window)."""
    change = DeploymentChange
    query = (
        sa.select(
            col(change.id),
            col(change.deployment_id),
            col(change.kind),
            col(change.status),
            col(change.build_id),
            col(change.finished_at),
            col(change.rollback_to_revision),
            col(Integration.project_id),
            col(Deployment.environment_id),
            col(DeploymentRevision.revision),
            col(Build.created_at),
        )
        .join(Deployment, col(Deployment.id) == col(change.deployment_id))
        .join(Integration, col(Integration.id) == col(Deployment.integration_id))
        .outerjoin(DeploymentRevision, col(DeploymentRevision.change_id) == col(change.id))
        .outerjoin(Build, col(Build.id) == col(change.build_id))
        .where(col(change.finished_at).is_not(None))
        .order_by(col(change.deployment_id), col(change.finished_at))
    )
    if project_ids is not None:
        query = query.where(col(Integration.project_id).in_(project_ids))
    histories: dict[str, list[Any]] = defaultdict(list)
    for row in (await connection.execute(query)).all():
        histories[row.deployment_id].append(row)
    figures: dict[Key, dict[str, Any]] = {}
    for history in histories.values():
        for index, c in enumerate(history):
            if not (window.since <= c.finished_at < window.until):
                continue
            if c.kind not in COUNTED_KINDS or c.status not in ("SUCCEEDED", "FAILED"):
                continue
            key = (c.project_id, c.environment_id)
            pair = figures.setdefault(
                key, {"changes": 0, "deployments": 0, "failed": 0, "lead": [], "restore": []}
            )
            pair.setdefault("unrestored", 0)
            pair["changes"] += 1
            later = history[index + 1 :]
            restored_at = None
            if c.status == "SUCCEEDED":
                pair["deployments"] += 1
                if not any(
                    e.build_id == c.build_id and e.status == "SUCCEEDED" for e in history[:index]
                ):
                    pair["lead"].append((c.finished_at - c.created_at).total_seconds())
                undone = [
                    r.finished_at
                    for r in later
                    if r.kind == "ROLLBACK"
                    and r.status == "SUCCEEDED"
                    and r.rollback_to_revision < c.revision
                ]
                if not undone:
                    continue
                restored_at = undone[0]
            else:
                restored_at = next(
                    (
                        n.finished_at
                        for n in later
                        if n.status == "SUCCEEDED" and n.kind != "SUSPEND"
                    ),
                    None,
                )
            pair["failed"] += 1
            if restored_at is None:
                pair["unrestored"] += 1
            else:
                pair["restore"].append((restored_at - c.finished_at).total_seconds())
    return {
        key: DeliveryMetrics(
            project_id=key[0],
            environment_id=key[1],
            window=window,
            changes=pair["changes"],
            deployments=pair["deployments"],
            failed_changes=pair["failed"],
            unrestored_failures=pair["unrestored"],
            lead_time=_percentiles(pair["lead"]),
            time_to_restore=_percentiles(pair["restore"]),
        )
        for key, pair in figures.items()
    }


def same(first: dict[Key, DeliveryMetrics], second: dict[Key, DeliveryMetrics]) -> bool:
    """The same figures, times to the millisecond."""

    def rounded(found: dict[Key, DeliveryMetrics]) -> dict[Key, tuple[Any, ...]]:
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            key: (
                m.changes,
                m.deployments,
                m.failed_changes,
                m.unrestored_failures,
                ms(m.lead_time.median),
                ms(m.lead_time.p90),
                ms(m.time_to_restore.median),
                ms(m.time_to_restore.p90),
            )
            for key, m in found.items()
        }

    return rounded(first) == rounded(second)


# ---- the measurement --------------------------------------------------------------------------


async def timed(
    connection: AsyncConnection,
    window: Window,
    repeat: int,
    project_ids: list[str] | None,
    *,
    naive: bool = False,
) -> tuple[float, dict[Key, DeliveryMetrics]]:
    """The median of ``repeat`` calls, in seconds, and the last answer."""
    times, found = [], {}
    for _ in range(repeat):
        started = time.perf_counter()
        if naive:
            found = await naive_metrics(connection, window=window, project_ids=project_ids)
        else:
            found = await delivery_metrics(connection, window=window, project_ids=project_ids)
        times.append(time.perf_counter() - started)
    return statistics.median(times), found


async def measure(args: argparse.Namespace, url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        _progress("making the world")
        project_ids = await make_world(
            engine, projects=args.projects, integrations=args.integrations
        )
        _progress(f"writing {args.changes} changes")
        started = time.perf_counter()
        deployments = await make_history(engine, changes=args.changes)
        written_s = time.perf_counter() - started
        one = [project_ids[0]]
        results: dict[str, list[float]] = {
            "one_with": [],
            "one_without": [],
            "all_with": [],
            "all_without": [],
            "one_naive": [],
            "all_naive": [],
        }
        # The last 30 days, fixed for the run: the answers with and without the index compare.
        window = window_of(since=None, until=None)
        async with engine.connect() as connection:
            in_window = (
                await connection.execute(
                    sa.select(sa.func.count()).where(
                        col(DeploymentChange.finished_at) >= window.since
                    )
                )
            ).scalar_one()
            await timed(connection, window, 1, one)  # warm up
            for round_ in range(args.rounds):
                _progress(f"round {round_ + 1} of {args.rounds}")
                one_with, answer_with = await timed(connection, window, args.repeat, one)
                all_with, every_with = await timed(connection, window, args.repeat, None)
                await connection.execute(sa.text(f"DROP INDEX {INDEX}"))
                one_without, answer_without = await timed(connection, window, args.repeat, one)
                all_without, every_without = await timed(connection, window, args.repeat, None)
                await connection.rollback()  # the index is back
                one_naive, answer_naive = await timed(connection, window, 1, one, naive=True)
                all_naive, every_naive = await timed(connection, window, 1, None, naive=True)
                if round_ == 0 and (answer_with != answer_without or every_with != every_without):
                    raise BenchError("the answers with and without the index differ")
                if round_ == 0 and not (
                    same(answer_with, answer_naive) and same(every_with, every_naive)
                ):
                    raise BenchError("the service's answers and the naive computation's differ")
                results["one_naive"].append(one_naive)
                results["all_naive"].append(all_naive)
                results["one_with"].append(one_with)
                results["one_without"].append(one_without)
                results["all_with"].append(all_with)
                results["all_without"].append(all_without)
            server = (await connection.execute(sa.text("SHOW server_version"))).scalar_one()
        medians = {name: statistics.median(values) for name, values in results.items()}
        return {
            "changes": args.changes,
            "deployments": deployments,
            "projects": args.projects,
            "changes_in_window": int(in_window),
            "write_s": written_s,
            "postgresql_version": str(server),
            "one_project_ms": medians["one_with"] * 1000,
            "one_project_without_index_ms": medians["one_without"] * 1000,
            "one_project_ratio": medians["one_without"] / medians["one_with"],
            "every_project_ms": medians["all_with"] * 1000,
            "every_project_without_index_ms": medians["all_without"] * 1000,
            "every_project_ratio": medians["all_without"] / medians["all_with"],
            "one_project_naive_ms": medians["one_naive"] * 1000,
            "one_project_naive_ratio": medians["one_naive"] / medians["one_with"],
            "every_project_naive_ms": medians["all_naive"] * 1000,
            "every_project_naive_ratio": medians["all_naive"] / medians["all_with"],
        }
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=100_000)
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--integrations", type=int, default=10, help="per project")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5, help="calls of a round")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("PROMENADE_TEST_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="the PostgreSQL server; the run works in a database of its own on it",
    )
    parser.add_argument("--json", action="store_true", help="the numbers as JSON")
    args = parser.parse_args()
    try:
        with database(args.database_url) as url:
            result = asyncio.run(measure(args, url))
    except BenchError as exc:
        sys.exit(f"bench: {exc}")
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{result['changes']} changes over {result['deployments']} deployments "
        f"({result['changes_in_window']} in the last 30 days), PostgreSQL "
        f"{result['postgresql_version']}, written in {result['write_s']:.1f} s\n"
        f"one project:   {result['one_project_ms']:.1f} ms with the index, "
        f"{result['one_project_without_index_ms']:.1f} ms without: "
        f"ratio {result['one_project_ratio']:.1f}\n"
        f"every project: {result['every_project_ms']:.1f} ms with the index, "
        f"{result['every_project_without_index_ms']:.1f} ms without: "
        f"ratio {result['every_project_ratio']:.1f}\n"
        f"naive Python over the rows: one project {result['one_project_naive_ms']:.0f} ms "
        f"(ratio {result['one_project_naive_ratio']:.0f}), every project "
        f"{result['every_project_naive_ms']:.0f} ms "
        f"(ratio {result['every_project_naive_ratio']:.0f})"
    )


if __name__ == "__main__":
    main()
