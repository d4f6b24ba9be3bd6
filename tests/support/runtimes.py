"""A runtime double for tests whose subject is not processes (governance, the API's view of
deployments): the real step machine runs against it in-process."""

from __future__ import annotations

import asyncio

from workers.runtimes.base import Instance, InstanceSpec, StartFailed


class FakeRuntime:
    """A runtime that starts nothing: ``start`` answers at once (or when ``gate`` opens, for a
    test that needs a change to stay RESTARTING), and remembers what it was asked to run."""

    def __init__(self) -> None:
        self.started: list[InstanceSpec] = []
        self.starting = asyncio.Event()  # set when a start begins
        self.gate: asyncio.Event | None = None
        self.failure: str | None = None  # set: every start fails with this

    async def start(self, spec: InstanceSpec) -> Instance:
        self.started.append(spec)
        self.starting.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise StartFailed(self.failure)
        return Instance(change_id=spec.change_id, address="127.0.0.1:9")

    async def route(self, deployment_id: str, route: str, instance: Instance) -> str:
        return self.endpoint_url(route)

    async def retire_others(self, deployment_id: str, keep_change_id: str) -> None:
        return None

    async def stop(self, deployment_id: str, route: str) -> None:
        return None

    def endpoint_url(self, route: str) -> str:
        return f"http://gateway.test{route}"

    async def logs(self, deployment_id: str, lines: int = 100) -> list[str]:
        return []

    async def deployments(self) -> set[str]:
        return set()

    async def collect_garbage(self) -> None:
        return None
