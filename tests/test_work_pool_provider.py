"""WorkPoolProvider through the gRPC host the Pulumi engine starts, against a REAL Prefect server.

The host is configured with the stack config only (its environment has no PREFECT_API_*), and reaches the
server through a recording proxy, so tests can assert exactly which writes each operation sends.
Out-of-band edits ("made in the UI") go straight to the server.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from infra.prefect import WorkPool, WorkPoolProvider
from infra.prefect.props import same
from infra.prefect_snapshots import worker_base_job_template
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.prefect_server import PrefectServer
from tests.support.provider_host import (
    BoundResource,
    ProviderCallError,
    provider_property,
)

# `proxy`, `host`, `pools`, `api` and `cleanup` are tests/conftest.py's; the host gets more of the stack config here.
# The expected templates come from Prefect's own code, not from the functions the program and provider call.


@pytest.fixture(scope="module")
def host_config(proxy: FaultProxy) -> dict[str, str]:
    """The whole stack config, as the engine sends it: other namespaces included."""
    return {"prefect:apiUrl": proxy.api_url, "suggest-activity:cron": "0 9 * * *"}


def unique(prefix: str = "pool") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Created:
    def __init__(self, id_: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        self.id, self.inputs, self.outputs = id_, inputs, outputs

    @property
    def name(self) -> str:
        return str(self.inputs["name"])


@pytest.fixture
def created(pools: BoundResource, cleanup: Callable[[str], None]) -> Iterator[Created]:
    """A pool declared like the program declares it: with its worker's template. Deleted after the test."""
    inputs = pools.checked(
        {
            "name": unique(),
            "description": "made by Pulumi",
            "concurrency_limit": 2,
            "base_job_template": worker_base_job_template("process"),
        }
    )
    cleanup(f"/work_pools/{inputs['name']}")
    id_, outputs = pools.create(inputs)
    yield Created(id_, inputs, outputs)


# --- configure / pickling -------------------------------------------------------------------------


def test_provider_is_pickled_by_reference_without_state() -> None:
    provider = WorkPoolProvider()
    assert vars(provider) == {}  # nothing captured at construction: no client, no credentials
    pickled = base64.b64decode(provider_property(provider))
    assert b"infra.prefect.work_pool" in pickled and b"WorkPoolProvider" in pickled
    assert len(pickled) < 500  # a reference, not the class's code
    assert WorkPool._resource_type_name == "dynamic/prefect:WorkPool"


def test_settings_come_from_configure(created: Created, proxy: FaultProxy) -> None:
    """The host has no PREFECT_API_URL: the create reached the server through the configured URL."""
    assert any(
        r.path == "/api/work_pools/" and r.method == "POST" and r.body["name"] == created.name
        for r in proxy.requests
    )
    assert created.outputs["ui_url"] == f"{proxy.base_url}/work-pools/work-pool/{created.name}"


# --- check ----------------------------------------------------------------------------------------


# Where Prefect's own client asks a self-hosted server for its workers' metadata
# (prefect/client/orchestration/__init__.py, `read_worker_metadata`).
WORKER_METADATA_PATH = "/api/collections/views/aggregate-worker-metadata"


def servers_default_template(server: PrefectServer, pool_type: str) -> dict[str, Any]:
    """What the server offers for `pool_type` (the UI's "create work pool" default), read as Prefect reads it:
    its client's `read_worker_metadata`, and the worker of that type, as prefect/workers/utilities.py
    `get_default_base_job_template_for_infrastructure_type` picks it from the collections."""
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(server.api_url) as client:
        metadata = client.read_worker_metadata()
    (template,) = [
        worker["default_base_job_configuration"]
        for collection in metadata.values()
        for worker in collection.values()
        if worker.get("type") == pool_type
    ]
    return dict(template)


def installed_worker_template(pool_type: str) -> dict[str, Any]:
    """The default template of the worker the image runs for `pool_type`: Prefect's own worker class's
    (prefect/workers/process.py `ProcessWorker`, prefect_docker/worker.py `DockerWorker`)."""
    from prefect.workers.base import BaseWorker

    worker = BaseWorker.get_worker_class_from_type(pool_type)
    assert worker is not None, f"no installed Prefect worker for {pool_type!r}"
    return dict(worker.get_default_base_job_template())


def test_check_fills_defaults_and_asks_nothing_of_the_server(pools: BoundResource, proxy: FaultProxy) -> None:
    proxy.clear_requests()
    result = pools.check({"name": "defaults"})
    assert result.failures == []
    assert (result["type"], result["paused"], result["adopt_existing"]) == ("process", False, False)
    assert "base_job_template" not in result  # the server's default, taken when the pool is created
    assert proxy.requests == []  # a preview needs no server


@pytest.mark.parametrize("pool_type", ["process", "docker"])
def test_create_without_a_template_sends_the_servers_default(
    pools: BoundResource,
    proxy: FaultProxy,
    prefect_server: PrefectServer,
    cleanup: Callable[[str], None],
    pool_type: str,
) -> None:
    name = unique()
    cleanup(f"/work_pools/{name}")
    proxy.clear_requests()
    id_, outputs = pools.create(pools.checked({"name": name, "type": pool_type}))
    metadata, create = proxy.applied_requests()
    assert [(r.method, r.path) for r in (metadata, create)] == [
        ("GET", WORKER_METADATA_PATH),
        ("POST", "/api/work_pools/"),
    ]
    expected = servers_default_template(prefect_server, pool_type)
    assert same(create.body["base_job_template"], expected)
    assert same(outputs["base_job_template"], expected)
    # Not declared, so not managed: the same program shows no change on the next `up`.
    assert (
        pools.diff(id_, outputs, pools.checked({"name": outputs["name"], "type": pool_type})).changes is False
    )


def test_a_server_that_cannot_give_a_default_template_fails_the_create_clearly(
    pools: BoundResource, proxy: FaultProxy
) -> None:
    proxy.clear_requests()
    proxy.inject(Fault.UNAVAILABLE, count=None, path_contains="/collections/")
    try:
        with pytest.raises(ProviderCallError) as error:
            pools.create(pools.checked({"name": unique()}))
    finally:
        proxy.clear_faults()
    message = error.value.message
    assert "No default base job template for work pool type 'process'" in message
    assert "503 Service Unavailable" in message and "set base_job_template on this WorkPool" in message
    assert proxy.writes() == []


@pytest.mark.parametrize(
    ("override", "prop", "fragment"),
    [
        ({"name": "a/b"}, "name", "cannot contain"),
        ({"name": "prefect-pool"}, "name", "reserves"),
        ({"name": ""}, "name", "is required"),
        ({"type": "dokcer"}, "type", "not a known work pool type"),
        ({"type": "prefect:managed"}, "type", "only on Prefect Cloud"),
        ({"concurrency_limit": -1}, "concurrency_limit", ">= 0"),
        ({"concurrency_limit": 2**31}, "concurrency_limit", "<= 2147483647"),
        ({"paused": "yes"}, "paused", "true or false"),
        ({"base_job_template": {"variables": {"properties": {}}}}, "base_job_template", "job_configuration"),
        (
            {
                "base_job_template": {
                    "job_configuration": {"command": "{{ cmd }}"},
                    "variables": {"properties": {}},
                }
            },
            "base_job_template",
            "does not declare",
        ),
    ],
)
def test_check_rejects_each_invalid_input(
    pools: BoundResource, override: dict[str, Any], prop: str, fragment: str
) -> None:
    result = pools.check({"name": "valid-name", **override})
    assert result.properties == {prop}
    (reason,) = result.reasons(prop)
    assert reason.startswith(prop) and fragment in reason


def test_check_accepts_a_user_template(pools: BoundResource) -> None:
    template = {
        "job_configuration": {"command": "{{ command }}"},
        "variables": {"properties": {"command": {}}},
    }
    assert pools.checked({"name": "custom", "base_job_template": template})["base_job_template"] == template


# --- create / read --------------------------------------------------------------------------------


def test_create_sends_the_declared_template_so_job_variables_are_validated(
    created: Created, api: httpx.Client
) -> None:
    pool = api.get(f"/work_pools/{created.name}").json()
    assert created.id == created.outputs["pool_id"] == pool["id"]
    assert (pool["type"], pool["description"], pool["concurrency_limit"]) == ("process", "made by Pulumi", 2)
    # The program declares its worker's template: the one the worker the image runs would render.
    assert same(pool["base_job_template"], installed_worker_template("process"))
    assert created.outputs["status"] == pool["status"]
    flow = api.post("/flows/", json={"name": "pool-template-check"}).json()
    bad = {
        "name": unique("dep"),
        "flow_id": flow["id"],
        "work_pool_name": created.name,
        "job_variables": {"env": 5},
    }
    assert api.post("/deployments/", json=bad).status_code == 422


def test_refresh_without_changes_shows_no_diff_and_sends_no_writes(
    pools: BoundResource, created: Created, proxy: FaultProxy
) -> None:
    proxy.clear_requests()
    read = pools.read(created.id, created.outputs)
    assert (read.id, read.outputs) == (created.id, created.outputs)
    assert pools.diff(created.id, read.outputs, created.inputs).changes is False
    assert proxy.writes() == []


def test_read_with_only_an_id_finds_the_pool(pools: BoundResource, created: Created) -> None:
    """`WorkPool.get(name, id)` sends no properties."""
    read = pools.read(created.id, {})
    assert read.outputs["name"] == created.name


def test_out_of_band_edits_show_as_drift(pools: BoundResource, created: Created, api: httpx.Client) -> None:
    api.patch(f"/work_pools/{created.name}", json={"description": "edited in the UI", "is_paused": True})
    read = pools.read(created.id, created.outputs)
    changed = {k for k in read.outputs if read.outputs[k] != created.outputs.get(k)}
    assert changed == {"description", "paused", "status"}
    assert (read.outputs["description"], read.outputs["paused"], read.outputs["status"]) == (
        "edited in the UI",
        True,
        "PAUSED",
    )
    # Refreshed inputs carry the drift too, so the next preview shows it field by field.
    assert read.inputs is not None and read.inputs["description"] == "edited in the UI"
    assert pools.diff(created.id, read.outputs, created.inputs).changes is True


def test_out_of_band_delete_reads_as_gone(pools: BoundResource, created: Created, api: httpx.Client) -> None:
    api.delete(f"/work_pools/{created.name}")
    read = pools.read(created.id, created.outputs)
    assert read.gone and read.outputs == {}


# --- diff -----------------------------------------------------------------------------------------


def reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


def test_diff_ignores_key_order_in_templates(pools: BoundResource, created: Created) -> None:
    news = {**created.inputs, "base_job_template": reversed_keys(created.inputs["base_job_template"])}
    assert pools.diff(created.id, created.outputs, news).changes is False


@pytest.mark.parametrize(
    "change",
    [
        {"description": "new words"},
        {"description": None},
        {"concurrency_limit": 5},
        {"concurrency_limit": None},
        {"paused": True},
        {
            "base_job_template": {
                "job_configuration": {"command": "{{ command }}"},
                "variables": {"properties": {"command": {}}},
            }
        },
    ],
)
def test_diff_updates_in_place(pools: BoundResource, created: Created, change: dict[str, Any]) -> None:
    news = {k: v for k, v in {**created.inputs, **change}.items() if v is not None}
    diff = pools.diff(created.id, created.outputs, news)
    assert (diff.changes, diff.replaces) == (True, [])


@pytest.mark.parametrize(
    ("change", "replaces"), [({"name": "renamed"}, ["name"]), ({"type": "docker"}, ["type"])]
)
def test_diff_replaces_on_name_or_type_deleting_first(
    pools: BoundResource, created: Created, change: dict[str, Any], replaces: list[str]
) -> None:
    diff = pools.diff(created.id, created.outputs, {**created.inputs, **change})
    assert (diff.changes, diff.replaces, diff.delete_before_replace) == (True, replaces, True)


# --- update / delete ------------------------------------------------------------------------------


def test_update_patches_only_what_changed(
    pools: BoundResource, created: Created, proxy: FaultProxy, api: httpx.Client
) -> None:
    proxy.clear_requests()
    news = pools.checked({**created.inputs, "description": "second words"})
    outputs = pools.update(created.id, created.outputs, news)
    (write,) = proxy.applied_writes()
    assert (write.method, write.path, write.body) == (
        "PATCH",
        f"/api/work_pools/{created.name}",
        {"description": "second words"},
    )
    assert outputs["description"] == "second words"

    proxy.clear_requests()
    news = {k: v for k, v in {**news, "concurrency_limit": None, "paused": True}.items() if v is not None}
    outputs = pools.update(created.id, outputs, news)
    (write,) = proxy.applied_writes()
    assert write.body == {"concurrency_limit": None, "is_paused": True}
    pool = api.get(f"/work_pools/{created.name}").json()
    assert (pool["concurrency_limit"], pool["is_paused"], outputs["paused"]) == (None, True, True)


def test_delete_twice_succeeds(pools: BoundResource, created: Created, api: httpx.Client) -> None:
    pools.delete(created.id, created.outputs)
    pools.delete(created.id, created.outputs)  # already gone: 404 is success
    assert api.get(f"/work_pools/{created.name}").status_code == 404


# --- existing pools -------------------------------------------------------------------------------


def test_create_over_an_existing_pool_fails_and_says_how_to_adopt(
    pools: BoundResource, api: httpx.Client, cleanup: Callable[[str], None]
) -> None:
    name = unique()
    cleanup(f"/work_pools/{name}")
    api.post("/work_pools/", json={"name": name, "type": "process"}).raise_for_status()
    with pytest.raises(ProviderCallError) as error:
        pools.create(pools.checked({"name": name}))
    assert "already exists" in error.value.message and "adopt_existing=True" in error.value.message


def test_adopt_existing_takes_over_and_patches(
    pools: BoundResource,
    api: httpx.Client,
    proxy: FaultProxy,
    prefect_server: PrefectServer,
    cleanup: Callable[[str], None],
) -> None:
    name = unique()
    cleanup(f"/work_pools/{name}")
    existing = api.post("/work_pools/", json={"name": name, "type": "process", "description": "old"}).json()
    proxy.clear_requests()
    id_, outputs = pools.create(pools.checked({"name": name, "description": "new", "adopt_existing": True}))
    assert id_ == existing["id"]
    assert [(w.method, w.path) for w in proxy.applied_writes()] == [("PATCH", f"/api/work_pools/{name}")]
    pool = api.get(f"/work_pools/{name}").json()
    assert pool["description"] == outputs["description"] == "new"
    # It had none: now it has the server's default, and job variables are validated.
    assert same(pool["base_job_template"], servers_default_template(prefect_server, "process"))


def test_adopt_refuses_a_pool_of_another_type(
    pools: BoundResource, api: httpx.Client, cleanup: Callable[[str], None]
) -> None:
    name = unique()
    cleanup(f"/work_pools/{name}")
    api.post("/work_pools/", json={"name": name, "type": "docker"}).raise_for_status()
    with pytest.raises(ProviderCallError) as error:
        pools.create(pools.checked({"name": name, "type": "process", "adopt_existing": True}))
    assert "has type 'docker'" in error.value.message and "cannot change" in error.value.message
