"""A Docker Engine for the tests, and the images they run on it, built here: nothing is pulled.

The engine is the one at ``PROMENADE_TEST_DOCKER_HOST``, else ``DOCKER_HOST``, else the one
``scripts/docker-engine start`` runs (an engine with no networking of its own), else the
default socket. When none answers, the tests fail and say how to start one.

Images: a minimal Debian with Python (``debootstrap --variant=minbase --include=python3``,
then ``docker import``), tagged with a digest of how it is made, so that it is built once per
engine; the sample integrations are built ``FROM`` it (their Dockerfiles take ``BASE``), tagged
with a digest of their files, so that a changed file gives a new image.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import docker
import docker.errors
import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
ISOLATED_ENGINE = "unix:///run/promenade-test-docker.sock"
DEFAULT_ENGINE = "unix:///var/run/docker.sock"
DOCKER_HELP = (
    "These tests need a Docker Engine. On the project's machines, as root: "
    "scripts/docker-engine start (it installs Debian's docker.io if needed and starts an engine "
    "with no networking of its own at " + ISOLATED_ENGINE + "); elsewhere set DOCKER_HOST to "
    "an engine of yours. The tests build their images themselves (debootstrap, which "
    "scripts/docker-engine does not install: apt-get install debootstrap)."
)
BASE_RECIPE = {
    "suite": "bookworm",
    "variant": "minbase",
    "include": ["python3"],
    "mirror": "http://deb.debian.org/debian",
    # Left out of the image: documentation and package lists (a third of its size).
    "strip": ["usr/share/doc", "usr/share/man", "usr/share/locale", "var/lib/apt/lists"],
}
# Where the CONTAINER runtime keeps its instances' files (workers.runtimes.container).
CONTAINER_FILES = Path("/run/promenade/containers")
# Labels of the containers Promenade's CONTAINER runtime makes.
CONTAINER_LABEL = "promenade.deployment"


def docker_host() -> str:
    for candidate in (os.environ.get("PROMENADE_TEST_DOCKER_HOST"), os.environ.get("DOCKER_HOST")):
        if candidate:
            return candidate
    if Path(ISOLATED_ENGINE.removeprefix("unix://")).is_socket():
        return ISOLATED_ENGINE
    return DEFAULT_ENGINE


def connect() -> docker.DockerClient:
    """A client of the tests' engine; fails the test with what to start when none answers."""
    host = docker_host()
    try:
        client = docker.DockerClient(base_url=host, timeout=120)
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"no Docker Engine answers at {host} ({exc}). {DOCKER_HELP}", pytrace=False)
    return client


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()[:16]


def base_image(client: docker.DockerClient) -> str:
    """The minimal Debian with Python that the sample images are built from."""
    tag = f"promenade-test/debian:{_digest(json.dumps(BASE_RECIPE, sort_keys=True).encode())}"
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(tag)
        return tag
    if shutil.which("debootstrap") is None:
        pytest.fail(f"debootstrap is not installed. {DOCKER_HELP}", pytrace=False)
    with tempfile.TemporaryDirectory(prefix="promenade-rootfs-") as work:
        root = Path(work) / "root"
        result = subprocess.run(
            [
                "debootstrap",
                f"--variant={BASE_RECIPE['variant']}",
                f"--include={','.join(BASE_RECIPE['include'])}",
                str(BASE_RECIPE["suite"]),
                str(root),
                str(BASE_RECIPE["mirror"]),
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(f"debootstrap failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
        for part in BASE_RECIPE["strip"]:
            shutil.rmtree(root / part, ignore_errors=True)
        archive = Path(work) / "root.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(root, arcname=".")
        repository, _, version = tag.partition(":")
        client.api.import_image_from_file(str(archive), repository=repository, tag=version)
    return tag


def sample_image(client: docker.DockerClient, directory: Path, name: str) -> str:
    """The image of a sample integration (its directory has a Dockerfile that takes BASE)."""
    base = base_image(client)
    files = sorted(p for p in directory.iterdir() if p.is_file())
    content = [base.encode(), *(p.name.encode() + b"\0" + p.read_bytes() for p in files)]
    tag = f"promenade-test/{name}:{_digest(*content)}"
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(tag)
        return tag
    client.images.build(
        path=str(directory), tag=tag, buildargs={"BASE": base}, rm=True, network_mode="none"
    )
    return tag


def greeter_image(client: docker.DockerClient) -> str:
    return sample_image(client, REPO / "examples" / "greeter", "greeter")


def remove_containers(client: docker.DockerClient, label: str) -> None:
    """Every container with the label (Promenade's, of a test), forcibly."""
    for container in client.containers.list(all=True, filters={"label": label}):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


def probe_image(client: docker.DockerClient) -> str:
    return sample_image(client, REPO / "tests" / "support" / "probe", "probe")


def remove_installation_containers(data_dir: Path) -> None:
    """Every container that an installation's CONTAINER runtime started (it keeps a directory
    per deployment under ``<data dir>/containers``), and their relays."""
    state = data_dir / "containers"
    if not state.is_dir():
        return
    for relay in state.glob("*/*/relay.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, psutil.Error):
            psutil.Process(int(json.loads(relay.read_text())["pid"])).kill()
    # Their files (secrets among them), which a killed worker did not remove.
    for change in state.glob("*/*"):
        for files in CONTAINER_FILES.glob(f"*/{change.name}"):
            shutil.rmtree(files, ignore_errors=True)
    client = connect()
    try:
        for deployment in state.iterdir():
            remove_containers(client, f"{CONTAINER_LABEL}={deployment.name}")
    finally:
        client.close()
