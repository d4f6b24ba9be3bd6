"""What a worker measures (workers/metrics.py): a data plane is labelled by its label, never
its id; a step by its status; a finished change counts once its commit is made."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY, generate_latest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.ids import new_id
from app.messaging.bus import Message
from app.messaging.inprocess import InProcessBus
from app.models import ChangeKind, ChangeStatus, DeploymentChange, RuntimeKind
from app.services.dataplanes import ServedDataPlane
from tests.support.metrics import ID_LIKE, Scrape, assert_bounded
from workers.metrics import count_finished, report_data_plane, timed_step
from workers.runtimes.local_process import LocalProcessRuntime

ALLOWED: dict[str, list[str] | None] = {
    "step": list(ChangeStatus),
    "kind": list(ChangeKind),
    "status": list(ChangeStatus),
    "data_plane": None,  # each served data plane's label; never an id (checked for all)
}
WORKER_METRICS = (
    "promenade_step_duration_seconds",
    "promenade_changes_finished",
    "promenade_instance_restarts",
    "promenade_instances",
    "promenade_queue_messages_ready",
    "promenade_queue_consumers",
)


def worker_samples() -> Scrape:
    return Scrape(generate_latest(REGISTRY).decode())


async def test_a_data_plane_is_labelled_by_its_label_never_its_id(tmp_path: Path) -> None:
    plane = ServedDataPlane(
        routing_key=new_id("dp"),
        runtime=RuntimeKind.LOCAL_PROCESS,
        settings={},
        label="acme/edge",
        organization="acme",
    )
    bus = InProcessBus()
    for n in range(2):
        body = {"change_id": f"chg_{n}", "deployment_id": "dep_x"}
        await bus.publish_command(Message(f"msg_{n}", plane.routing_key, body))
    runtime = LocalProcessRuntime(tmp_path, "http://127.0.0.1:8080")
    await report_data_plane(bus, plane, runtime)
    await report_data_plane(bus, plane, runtime)  # a second scrape sets the same series

    scraped = worker_samples()
    assert scraped.value("promenade_queue_messages_ready", data_plane="acme/edge") == 2
    assert scraped.value("promenade_queue_consumers", data_plane="acme/edge") == 0
    assert scraped.value("promenade_instances", data_plane="acme/edge") == 0
    assert not any(plane.routing_key in str(s.labels) for s in scraped.samples)


async def test_step_labels_are_statuses_however_many_changes_run() -> None:
    @timed_step(ChangeStatus.QUEUED)
    async def step(change_id: str) -> str:
        return change_id

    before = worker_samples().value("promenade_step_duration_seconds_count", step="QUEUED")
    for _ in range(20):
        await step(new_id("chg"))
    scraped = worker_samples()
    count = scraped.value("promenade_step_duration_seconds_count", step="QUEUED")
    assert count - before == 20
    assert_bounded([s for s in scraped.promenade() if s.name.startswith(WORKER_METRICS)], ALLOWED)
    assert not any(ID_LIKE.search(str(s.labels)) for s in scraped.promenade())


async def test_a_finished_change_counts_once_committed(session: AsyncSession) -> None:
    change = DeploymentChange(
        organization_id="org_x",
        deployment_id="dep_x",
        kind=ChangeKind.RESTART,
        status=ChangeStatus.FAILED,
    )

    def finished() -> float:
        return worker_samples().value(
            "promenade_changes_finished_total", kind="RESTART", status="FAILED"
        )

    before = finished()
    await session.exec(select(DeploymentChange.id).limit(1))
    count_finished(session, change)
    await session.rollback()
    await session.commit()
    assert finished() == before  # rolled back: not finished

    await session.exec(select(DeploymentChange.id).limit(1))
    count_finished(session, change)
    assert finished() == before  # not committed yet
    await session.commit()
    await session.commit()
    assert finished() == before + 1
