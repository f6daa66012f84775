"""Fixtures shared by the whole test run: one real Prefect server, stopped by PID at the end, and the provider
host, proxy and direct API client that the provider test modules share."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import httpx
import pytest

# Keep the test process's own Prefect state (profiles, local results) out of the user's ~/.prefect.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="suggest-activity-client-"))

from infra.prefect import WorkPoolProvider
from tests.support.docker_env import require_docker
from tests.support.fake_bored_api import FakeBoredApi
from tests.support.fault_proxy import FaultProxy
from tests.support.prefect_server import PatientTransport, PrefectServer, ReservedPort
from tests.support.provider_host import BoundResource, ProviderHost, host_env

REPO_ROOT = Path(__file__).resolve().parent.parent

# Journeys (tests/support/journeys.py) and pytester, which the journeys' own tests use.
pytest_plugins = ["tests.support.journeys", "pytester"]


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real `prefect server start` on a free port, listening on 0.0.0.0 (containers reach it too)."""
    server = PrefectServer(home=tmp_path_factory.mktemp("prefect-server")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def prefect_api(prefect_server: PrefectServer) -> Iterator[str]:
    """Point this process's Prefect client at the test server for one test; yields the API URL."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        yield prefect_server.api_url


# --- providers through the gRPC host, against the server -------------------------------------------------
# Module-scoped, like the modules that use them: one proxy and one host per test module. A module may override
# `host_config` (more stack config), `proxy` or `api`.


@pytest.fixture(scope="module")
def proxy(prefect_server: PrefectServer) -> Iterator[FaultProxy]:
    """Between the providers and the server: records every request, and injects faults when asked to."""
    with FaultProxy(prefect_server.api_url) as fault_proxy:
        yield fault_proxy


@pytest.fixture(scope="module")
def host_config(proxy: FaultProxy) -> dict[str, str]:
    """The stack config the module's provider host is configured with: the server through the proxy."""
    return {"prefect:apiUrl": proxy.api_url}


@pytest.fixture(scope="module")
def host(host_config: dict[str, str]) -> Iterator[ProviderHost]:
    """The provider host, configured from the stack config only (its environment has no PREFECT_API_*)."""
    with ProviderHost(env=host_env()) as provider_host:
        provider_host.configure(host_config)
        yield provider_host


@pytest.fixture(scope="module")
def pools(host: ProviderHost) -> BoundResource:
    return host.resource(WorkPoolProvider(), "prefect:WorkPool")


@pytest.fixture
def api(prefect_server: PrefectServer) -> Iterator[httpx.Client]:
    """Direct REST access, bypassing the proxy: out-of-band edits and ground truth."""
    with httpx.Client(base_url=prefect_server.api_url, timeout=10, transport=PatientTransport()) as client:
        yield client


@pytest.fixture
def cleanup(api: httpx.Client) -> Iterator[Callable[[str], None]]:
    """`cleanup("/deployments/<id>")`: DELETE that path on the session's server after the test, whatever its
    outcome (gone already is fine). A deployment left behind keeps the server's scheduler writing to its SQLite
    database for the rest of the session, which then answers other tests' requests 503 more often."""
    paths: list[str] = []
    yield paths.append
    for path in reversed(paths):
        response = api.delete(path)
        if response.status_code not in (204, 404):
            response.raise_for_status()


# --- the stack's surroundings, for the tests that apply the program for real -----------------------------


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A port that refuses connections while the module runs: bound on every interface and never listening, so no
    other process is given it meanwhile (unlike a port `free_port()` found free a moment ago)."""
    with ReservedPort() as port:
        yield port.port


@pytest.fixture(scope="module")
def docker_client() -> docker.DockerClient:
    """The Docker engine; skips (or fails under REQUIRE_DOCKER=1) when there is none."""
    return require_docker(base_image="python:3.12-slim")


@pytest.fixture(scope="module")
def bored_api() -> Iterator[FakeBoredApi]:
    """A fake Bored API on all interfaces: flows run in containers and reach it via host.docker.internal."""
    with FakeBoredApi(host="0.0.0.0") as api:
        yield api
