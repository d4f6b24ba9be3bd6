"""Replacing the secret key: the box opens with previous keys and seals with the current one,
and rotate_secrets re-encrypts every sealed value (configuration secrets, promotion overrides,
change and revision snapshots), on SQLite and PostgreSQL, as often as it runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.db import create_session_factory
from app.models import (
    Build,
    ChangeKind,
    ConfigValue,
    Deployment,
    DeploymentChange,
    DeploymentRevision,
    Promotion,
    PromotionStatus,
    RevisionCause,
)
from app.services.keys import rotate_secrets
from app.services.projects import create_integration, create_project
from tests.conftest import make_organization, make_user

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def test_the_box_opens_with_previous_keys_and_seals_with_the_current_one() -> None:
    sealed_by_old = SecretBox(OLD).seal("s3cret")
    box = SecretBox([NEW, OLD])
    assert box.open(sealed_by_old) == "s3cret"
    fresh = box.seal("s3cret")
    assert Fernet(NEW.encode()).decrypt(fresh.encode()) == b"s3cret"
    with pytest.raises(InvalidToken):
        Fernet(OLD.encode()).decrypt(fresh.encode())
    resealed = box.reseal(sealed_by_old)
    assert resealed is not None and SecretBox(NEW).open(resealed) == "s3cret"
    assert box.reseal(fresh) is None  # sealed with the current key already
    with pytest.raises(ValueError, match="cannot be decrypted"):
        SecretBox(NEW).open(sealed_by_old)
    # Digests are keyed (HKDF of the current key): not the same under another key.
    assert (
        box.digest({"a": 1}) == SecretBox(NEW).digest({"a": 1}) != SecretBox(OLD).digest({"a": 1})
    )


async def _sealed_rows(session: AsyncSession, old: SecretBox) -> None:
    """One sealed value of each kind (and a plain configuration value), sealed by ``old``."""
    admin = await make_user(session, "admin@keys.example.com")
    org = await make_organization(session, admin, slug="keys")
    project = await create_project(session, actor=admin, organization_id=org.id, name="P")
    integration = await create_integration(
        session, actor=admin, project_id=project.id, name="I", config_schema=[]
    )
    await session.commit()
    deployment = (
        await session.exec(select(Deployment).where(Deployment.integration_id == integration.id))
    ).first()
    assert deployment is not None
    build = Build(integration_id=integration.id, version="1", artifact="a:1")
    session.add(build)
    await session.flush()
    session.add(
        ConfigValue(deployment_id=deployment.id, key="K", value=old.seal("v1"), secret=True)
    )
    session.add(ConfigValue(deployment_id=deployment.id, key="PLAIN", value="not sealed"))
    session.add(
        Promotion(
            organization_id=org.id,
            integration_id=integration.id,
            build_id=build.id,
            source_environment_id=deployment.environment_id,
            target_environment_id=deployment.environment_id,
            deployment_id=deployment.id,
            status=PromotionStatus.SUCCEEDED,
            requested_by_id=admin.id,
            overrides_sealed=old.seal_json([{"key": "K", "value": "v2", "secret": True}]),
        )
    )
    change = DeploymentChange(
        organization_id=org.id,
        deployment_id=deployment.id,
        kind=ChangeKind.DEPLOY,
        snapshot_sealed=old.seal_json({"K": "v3"}),
    )
    session.add(change)
    await session.flush()
    session.add(
        DeploymentRevision(
            deployment_id=deployment.id,
            revision=1,
            build_id=build.id,
            configuration_digest="d",
            snapshot_sealed=old.seal_json({"K": "v4"}),
            cause=RevisionCause.DEPLOY,
            change_id=change.id,
        )
    )
    await session.commit()


async def test_rotation_reseals_every_secret_with_the_current_key(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    await _sealed_rows(session, SecretBox(OLD))
    sessions = create_session_factory(engine)

    rotation = await rotate_secrets(sessions, SecretBox([NEW, OLD]))

    assert rotation.resealed == {
        "config_values": 1,
        "promotions": 1,
        "deployment_changes": 1,
        "deployment_revisions": 1,
    }
    only_new = SecretBox(NEW)
    async with sessions() as fresh:
        secret = (await fresh.exec(select(ConfigValue).where(ConfigValue.key == "K"))).one()
        assert only_new.open(secret.value) == "v1"
        plain = (await fresh.exec(select(ConfigValue).where(ConfigValue.key == "PLAIN"))).one()
        assert plain.value == "not sealed"
        promotion = (await fresh.exec(select(Promotion))).one()
        assert only_new.open_json(promotion.overrides_sealed)[0]["value"] == "v2"
        change = (await fresh.exec(select(DeploymentChange))).one()
        assert change.snapshot_sealed and only_new.open_json(change.snapshot_sealed) == {"K": "v3"}
        revision = (await fresh.exec(select(DeploymentRevision))).one()
        assert only_new.open_json(revision.snapshot_sealed) == {"K": "v4"}
    # Again: nothing left to do.
    assert (await rotate_secrets(sessions, SecretBox([NEW, OLD]))).total == 0


async def test_a_value_no_key_opens_is_reported_and_the_rest_are_sealed_again(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    await _sealed_rows(session, SecretBox(OLD))
    lost = Fernet.generate_key().decode()  # a key nobody kept
    secret = (await session.exec(select(ConfigValue).where(ConfigValue.key == "K"))).one()
    secret.value = SecretBox(lost).seal("v1")
    session.add(secret)
    await session.commit()
    sessions = create_session_factory(engine)

    rotation = await rotate_secrets(sessions, SecretBox([NEW, OLD]))

    assert not rotation.complete
    assert rotation.unreadable["config_values"] == [secret.id]
    assert rotation.resealed == {
        "config_values": 0,
        "promotions": 1,
        "deployment_changes": 1,
        "deployment_revisions": 1,
    }
    async with sessions() as fresh:
        kept = (await fresh.exec(select(ConfigValue).where(ConfigValue.key == "K"))).one()
        assert SecretBox(lost).open(kept.value) == "v1"  # left as it was


def test_rotate_key_new_key_in_embedded_mode(tmp_path: Path, promenade_command: Path) -> None:
    promenade = str(promenade_command)
    env = {"PATH": os.environ["PATH"], "PROMENADE_DATA_DIR": str(tmp_path)}
    subprocess.run([promenade, "migrate"], env=env, check=True, capture_output=True, timeout=60)
    first = subprocess.run(
        [promenade, "rotate-key", "--new-key"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    keys = (tmp_path / "secret.key").read_text().split()
    assert len(keys) == 2 and keys[0] != keys[1]
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    assert "every secret is sealed with the current key" in first.stderr
