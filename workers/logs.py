"""Answering ``Deployment.logs``: the API asks the data plane's workers (a request over the bus),
and a worker answers with its runtime's last lines of the deployment's instances, with the
secret values of their configuration blanked out, so that no secret leaves the worker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select

from app.crypto import SecretBox
from app.db import SessionFactory
from app.messaging.bus import Message
from app.models import DataPlane, Deployment, DeploymentChange, Environment
from app.services.dataplanes import served_by
from app.services.masking import mask_secrets
from workers.instances import instance_target
from workers.runtimes.base import Runtime

MAX_LOG_LINES = 1000
# The changes whose configuration can show in the output of instances that still exist
# (runtimes keep the output of a few stopped instances only: LOCAL_PROCESS three).
RECENT_CHANGES = 10


@dataclass
class LogReader:
    sessions: SessionFactory
    box: SecretBox
    runtime: Runtime
    data_plane: str  # the routing key it answers for

    async def answer(self, message: Message) -> dict[str, Any]:
        """``{"lines": [...]}``, or ``{"error": "NOT_FOUND"}`` for a deployment that is not on
        this data plane (the API routes requests by the deployment's data plane, so that only
        happens to a request that did not come from the API)."""
        deployment_id = str(message.body.get("deployment_id", ""))
        try:
            lines = max(0, min(int(message.body.get("lines", 100)), MAX_LOG_LINES))
        except (TypeError, ValueError):
            return {"error": "BAD_REQUEST"}
        secrets = await self._secrets_of(deployment_id)
        if secrets is None:
            return {"error": "NOT_FOUND"}
        output = await self.runtime.logs(deployment_id, lines)
        if not output:
            return {"lines": []}
        # Masked as one text, so that a value spanning lines is found too; in a thread, since
        # the text and the secrets can be large.
        masked = await asyncio.to_thread(mask_secrets, "\n".join(output), secrets)
        return {"lines": masked.split("\n")}

    async def _secrets_of(self, deployment_id: str) -> set[str] | None:
        """The secret values the deployment's recent instances ran with; None if the
        deployment is not on this data plane."""
        async with self.sessions() as session:
            deployment = (
                await session.exec(
                    select(Deployment)
                    .join(Environment, col(Environment.id) == col(Deployment.environment_id))
                    .join(DataPlane, col(DataPlane.id) == col(Environment.data_plane_id))
                    .where(Deployment.id == deployment_id, served_by(self.data_plane))
                )
            ).first()
            if deployment is None:
                return None
            changes = (
                await session.exec(
                    select(DeploymentChange)
                    .where(
                        DeploymentChange.deployment_id == deployment_id,
                        col(DeploymentChange.snapshot_sealed).is_not(None),
                    )
                    .order_by(col(DeploymentChange.created_at).desc())
                    .limit(RECENT_CHANGES)
                )
            ).all()
            secrets: set[str] = set()
            for change in changes:
                secrets |= (await instance_target(session, self.box, change)).secret_values
        return secrets
