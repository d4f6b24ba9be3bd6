"""End-to-end fixtures: real ``promenade api``, ``promenade gateway`` and ``promenade worker``
processes on PostgreSQL and RabbitMQ, driven over HTTP with the sample integration
(examples/greeter) as what they deploy.

RabbitMQ comes from PROMENADE_TEST_AMQP_URL (required: there is no default); the tests get a
virtual host of their own on it (``rabbitmqctl add_vhost``), so that the queue
``promenade.execute.local``, which every organization's ``local`` data plane uses, is theirs
alone. PostgreSQL comes from PROMENADE_TEST_DATABASE_URL as for the other tests, in a database of
the tests' own.

The API and the gateway start once and serve every module (``cluster``: starting a process costs
seconds); each test works in an organization of its own, workers belong to the module or the
test that starts them, and at the end of each module every worker is stopped and every
integration process killed (and checked to be gone). test_broker_outage.py runs its own
installation on a RabbitMQ node of its own.

The helpers (the installation, the greeter, GraphQL documents) are in tests/support:
installations.py, greeter.py, documents.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support import rabbitmq
from tests.support.graphql_client import GraphQLClient, graphql_over_http
from tests.support.installations import Cluster, running_cluster
from tests.support.postgres import new_database, postgres_server


@pytest.fixture(scope="session")
def amqp_server_url() -> str:
    return rabbitmq.amqp_server_url()


@pytest.fixture(scope="session")
def amqp_url(amqp_server_url: str) -> Iterator[str]:
    """A virtual host of the end-to-end tests' own on the machine's broker, deleted
    afterwards."""
    with rabbitmq.virtual_host(amqp_server_url, "promenade-e2e") as url:
        yield url


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    yield from postgres_server()


@pytest.fixture(scope="session")
def scaled_database_url(postgres_server_url: str) -> Iterator[str]:
    with new_database(postgres_server_url) as url:
        yield url


@pytest.fixture(scope="session")
def shared_cluster(
    tmp_path_factory: pytest.TempPathFactory, scaled_database_url: str, amqp_url: str
) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("e2e")
    with running_cluster(data_dir, scaled_database_url, amqp_url) as running:
        yield running


@pytest.fixture(scope="module")
def cluster(shared_cluster: Cluster) -> Iterator[Cluster]:
    """The installation, for one module: afterwards, the module's workers are stopped and the
    integration processes they started are killed."""
    yield shared_cluster
    shared_cluster.clean_up()


@pytest.fixture
def workers(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster, for a test that starts its own workers: they are stopped after it."""
    try:
        yield cluster
    finally:
        cluster.stop_workers()


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[GraphQLClient]:
    """GraphQL over real HTTP with the bootstrapped admin's token."""
    async with graphql_over_http(cluster.api_url, cluster.token) as client:
        yield client
