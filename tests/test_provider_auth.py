"""Connection settings and authentication, through the gRPC host the engine starts.

A second REAL Prefect server runs with basic auth (`PREFECT_SERVER_API_AUTH_STRING`). Prefect Cloud cannot
be reached from here: its request shape (Bearer key, account/workspace base path) is checked against a
recording proxy, and its URL parsing is unit-tested in test_prefect_client.py.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from pulumi.dynamic import ConfigureRequest
from pulumi.dynamic.config import Config

from infra.prefect import WorkPoolProvider
from tests.support.auth_server import basic_auth_server
from tests.support.fault_proxy import FaultProxy
from tests.support.local_engine import DYNAMIC_PREFIX, reveal
from tests.support.prefect_server import PrefectServer, ReservedPort
from tests.support.program_harness import PROJECT, dev_stack_config, run_program
from tests.support.provider_host import (
    BoundResource,
    ProviderCallError,
    ProviderHost,
    host_env,
    provider_property,
)

AUTH = "pulumi-user:s3cret-pass"
TEMPLATE = {"job_configuration": {"command": "{{ command }}"}, "variables": {"properties": {"command": {}}}}
ACCOUNT = "9b8a2f3e-1c4d-4e5f-8a9b-0c1d2e3f4a5b"
WORKSPACE = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with basic_auth_server(tmp_path_factory.mktemp("prefect-auth-server"), AUTH) as server:
        yield server


@contextmanager
def work_pools(
    config: dict[str, Any], secret_keys: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> Iterator[BoundResource]:
    """A fresh host (the host configures each provider once), configured like the engine does it."""
    with ProviderHost(env=host_env(env)) as host:
        host.configure(config, secret_keys)
        yield host.resource(WorkPoolProvider(), "prefect:WorkPool")


def unique() -> str:
    return f"auth-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def logged_in(auth_server: PrefectServer) -> Iterator[httpx.Client]:
    """Direct access to the auth server with its login: what exists there."""
    user, password = AUTH.split(":", 1)
    with httpx.Client(
        base_url=auth_server.api_url, auth=httpx.BasicAuth(user, password), timeout=10
    ) as client:
        yield client


def test_auth_string_from_stack_config_works_and_stays_out_of_state(auth_server: PrefectServer) -> None:
    config = {"prefect:apiUrl": auth_server.api_url, "prefect:authString": AUTH}
    with work_pools(config, secret_keys=("prefect:authString",)) as pools:
        inputs = pools.checked({"name": unique()})
        id_, outputs = pools.create(inputs)
        assert pools.read(id_, outputs).outputs == outputs
        pools.delete(id_, outputs)
        assert pools.read(id_, outputs).gone
    state = json.dumps([inputs, outputs])
    assert "s3cret" not in state


def test_the_provider_the_program_pickles_into_state_holds_no_credential(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`__provider` is the program's pickle of the provider object (pulumi/dynamic/dynamic.py `Resource.__init__`
    → `serialize_provider`), stored in state as it is. Made where a user runs `pulumi up`, with the login in
    the stack config and in the environment, it must carry neither: credentials reach a provider only in the
    engine's host, through `configure()`."""
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", AUTH)
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_s3cret-key-in-the-environment")
    run = run_program({**dev_stack_config(), "prefect:authString": AUTH}, ["prefect:authString"])
    for resource in ("prefect:WorkPool", "prefect:Deployment"):
        pickled = base64.b64decode(reveal(run.one(DYNAMIC_PREFIX + resource).inputs["__provider"]))
        assert b"WorkPoolProvider" in pickled or b"DeploymentProvider" in pickled  # the provider, read whole
        assert b"s3cret" not in pickled, resource
    # What the check would see if a provider held the login: one configured as the engine's host does it.
    configured = WorkPoolProvider()
    configured.configure(ConfigureRequest(Config({"prefect:authString": AUTH}, PROJECT)))
    assert b"s3cret" in base64.b64decode(provider_property(configured))


@pytest.mark.parametrize(
    "config",
    [{}, {"prefect:authString": "pulumi-user:wrong"}],
    ids=["no-credentials", "wrong-password"],
)
def test_missing_or_wrong_credentials_fail_with_a_clear_401(
    auth_server: PrefectServer, config: dict[str, str]
) -> None:
    with (
        work_pools({"prefect:apiUrl": auth_server.api_url, **config}) as pools,
        pytest.raises(ProviderCallError) as error,
    ):
        pools.create(pools.checked({"name": unique()}))
    message = error.value.message
    # The first request of a create without a template asks the server for its default template.
    assert (
        "PrefectApiError: Prefect API GET /collections/views/aggregate-worker-metadata failed: 401" in message
    )
    assert "prefect:authString" in message and "PREFECT_API_AUTH_STRING" in message
    assert "Gave up" not in message  # a 401 is not retried


def create_and_delete_a_pool(pools: BoundResource, logged_in: httpx.Client) -> None:
    """The pool reaches the auth server (so the login was taken), and is gone from it after the delete."""
    name = unique()
    id_, outputs = pools.create(pools.checked({"name": name}))
    assert logged_in.get(f"/work_pools/{name}").raise_for_status().json()["id"] == id_
    pools.delete(id_, outputs)
    assert logged_in.get(f"/work_pools/{name}").status_code == 404


def test_environment_is_the_fallback_and_stack_config_wins(
    auth_server: PrefectServer, logged_in: httpx.Client
) -> None:
    env = {"PREFECT_API_URL": auth_server.api_url, "PREFECT_API_AUTH_STRING": AUTH}
    with work_pools({}, env=env) as pools:
        create_and_delete_a_pool(pools, logged_in)
    config = {"prefect:apiUrl": auth_server.api_url, "prefect:authString": AUTH}
    with ReservedPort() as dead:  # refuses connections: a provider that used the environment would fail
        wrong_env = {"PREFECT_API_URL": f"http://127.0.0.1:{dead.port}/api", "PREFECT_API_AUTH_STRING": "x:y"}
        with work_pools(config, secret_keys=("prefect:authString",), env=wrong_env) as pools:
            create_and_delete_a_pool(pools, logged_in)


def test_without_any_url_the_error_says_how_to_set_one() -> None:
    with work_pools({}) as pools, pytest.raises(ProviderCallError) as error:
        pools.create(pools.checked({"name": unique()}))
    assert "No Prefect API URL" in error.value.message
    assert (
        "pulumi config set prefect:apiUrl" in error.value.message and "PREFECT_API_URL" in error.value.message
    )


def test_cloud_requests_use_the_workspace_path_and_a_bearer_key(prefect_server: PrefectServer) -> None:
    """A Cloud-shaped URL served by a recording proxy: the requests that would reach Prefect Cloud."""
    with FaultProxy(prefect_server.api_url) as proxy:
        workspace = f"/api/accounts/{ACCOUNT}/workspaces/{WORKSPACE}"
        config = {"prefect:apiUrl": f"{proxy.base_url}{workspace}", "prefect:apiKey": "pnu_test_key"}
        with work_pools(config, secret_keys=("prefect:apiKey",)) as pools:
            # Cloud-only pool types are accepted once the URL is a Cloud workspace.
            managed = pools.check({"name": "managed-pool", "type": "prefect:managed"})
            assert managed.failures == []
            # Without a template, the default is Cloud's for the type: asked of the workspace, which the
            # self-hosted server behind the proxy does not serve.
            with pytest.raises(ProviderCallError) as error:
                pools.create(pools.checked({"name": "cloud-pool"}))
            assert "No default base job template for work pool type 'process'" in error.value.message
            with pytest.raises(ProviderCallError):  # the OSS server behind the proxy has no such route
                pools.create(pools.checked({"name": "cloud-pool", "base_job_template": TEMPLATE}))
        metadata, create = proxy.applied_requests()
    assert (metadata.method, metadata.path) == ("GET", f"{workspace}/collections/work_pool_types")
    assert (create.method, create.path) == ("POST", f"{workspace}/work_pools/")
    assert metadata.headers["Authorization"] == create.headers["Authorization"] == "Bearer pnu_test_key"


def test_cloud_without_an_api_key_fails_before_sending_anything() -> None:
    cloud_url = f"https://api.prefect.cloud/api/accounts/{ACCOUNT}/workspaces/{WORKSPACE}"
    with work_pools({"prefect:apiUrl": cloud_url}) as pools, pytest.raises(ProviderCallError) as error:
        pools.create(pools.checked({"name": unique()}))
    assert "Prefect Cloud needs an API key" in error.value.message
    assert "pulumi config set --secret prefect:apiKey" in error.value.message


def test_health_stays_open_on_an_auth_server(auth_server: PrefectServer) -> None:
    """Sanity check of the fixture: without credentials only /health answers."""
    assert httpx.get(f"{auth_server.api_url}/health").status_code == 200
    assert httpx.get(f"{auth_server.api_url}/work_pools/x").status_code == 401
