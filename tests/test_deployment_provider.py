"""DeploymentProvider through the gRPC host the Pulumi engine starts, against a REAL Prefect server.

As in the work pool tests, the host is configured from the stack config only and reaches the server through
a recording proxy; out-of-band edits go straight to the server.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pulumi.output import Unknown
from pulumi.runtime import rpc

from infra.prefect import Deployment, DeploymentProvider
from infra.prefect_snapshots import worker_base_job_template
from tests.support.fault_proxy import FaultProxy
from tests.support.prefect_server import PatientTransport, PrefectServer
from tests.support.provider_host import BoundResource, ProviderCallError, ProviderHost
from tests.support.quiet_schedules import daily_cron, hours_ahead, weekly_cron

SCHEMA = {
    "title": "Parameters",
    "type": "object",
    "properties": {
        "who": {"title": "who", "type": "string", "default": "friend"},
        "count": {"title": "count", "type": "integer", "default": 1},
    },
    "required": ["who"],
}


# `proxy`, `host`, `api` and `cleanup` are tests/conftest.py's.


@pytest.fixture(scope="module")
def deployments(host: ProviderHost) -> BoundResource:
    return host.resource(DeploymentProvider(), "prefect:Deployment")


@pytest.fixture(scope="module")
def pool(prefect_server: PrefectServer) -> Iterator[str]:
    """The module's pool; at the end it is deleted with any deployment still in it (a test that failed
    halfway), which the scheduler would otherwise keep planning runs for."""
    name = f"deployments-{uuid.uuid4().hex[:6]}"
    body = {"name": name, "type": "process", "base_job_template": worker_base_job_template("process")}
    with httpx.Client(base_url=prefect_server.api_url, timeout=10, transport=PatientTransport()) as api:
        api.post("/work_pools/", json=body).raise_for_status()
        yield name
        left = api.post("/deployments/filter", json={"work_pools": {"name": {"any_": [name]}}})
        for deployment in left.raise_for_status().json():
            api.delete(f"/deployments/{deployment['id']}")
        api.delete(f"/work_pools/{name}")


def unique(prefix: str = "dep") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def quiet_schedules(now: datetime | None = None) -> list[dict[str, Any]]:
    """A daily schedule in Athens and a weekly one in UTC, both hours away from `now` (tests/support/
    quiet_schedules.py): the weekly one fires first, though it is listed second."""
    morning, weekly = hours_ahead("Europe/Athens", 11, now), hours_ahead("UTC", 5, now)
    return [
        {"slug": "morning", "cron": daily_cron(morning), "timezone": "Europe/Athens"},
        {"slug": "weekly", "cron": weekly_cron(weekly), "parameters": {"count": 3}},
    ]


def program_inputs(pool: str, **override: Any) -> dict[str, Any]:
    """What a Pulumi program would declare (before check fills defaults)."""
    inputs: dict[str, Any] = {
        "flow_name": "provider-test-flow",
        "name": unique(),
        "work_pool_name": pool,
        "entrypoint": "flows/suggest_activity.py:suggest_activity",
        "pull_steps": [
            {"prefect.deployments.steps.set_working_directory": {"directory": "/opt/prefect/app"}}
        ],
        "job_variables": {"env": {"MODE": "test"}},
        "parameters": {"who": "Ada"},
        "parameter_openapi_schema": SCHEMA,
        "tags": ["suggestions", "daily"],
        "description": "made by Pulumi",
        "version": "1",
        "concurrency_limit": 3,
        "schedules": quiet_schedules(),
    }
    inputs.update(override)
    return {k: v for k, v in inputs.items() if v is not None}


class Created:
    def __init__(self, id_: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        self.id, self.inputs, self.outputs = id_, inputs, outputs


@pytest.fixture
def created(deployments: BoundResource, pool: str, cleanup: Callable[[str], None]) -> Iterator[Created]:
    """A deployment declared like the program declares one; deleted after the test."""
    inputs = deployments.checked(program_inputs(pool))
    id_, outputs = deployments.create(inputs)
    cleanup(f"/deployments/{id_}")
    yield Created(id_, inputs, outputs)


def by_slug(schedules: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["slug"]: s for s in schedules}


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- check ----------------------------------------------------------------------------------------


def test_check_fills_defaults(deployments: BoundResource, pool: str) -> None:
    minimal = {"flow_name": "f", "name": "n", "work_pool_name": pool, "entrypoint": "flows/x.py:f"}
    checked = deployments.check({**minimal, "schedules": [{"slug": "s", "cron": "0 9 * * *"}]})
    assert checked.failures == []
    assert checked["schedules"] == [
        {
            "slug": "s",
            "cron": "0 9 * * *",
            "timezone": "UTC",
            "active": True,
            "day_or": True,
            "parameters": {},
        }
    ]
    assert (checked["enforce_parameter_schema"], checked["paused"], checked["tags"]) == (True, False, [])
    assert "work_queue_name" not in checked  # None: the pool's default queue, not managed


@pytest.mark.parametrize(
    ("override", "prop", "fragment"),
    [
        ({"name": "a/b"}, "name", "cannot contain"),
        ({"flow_name": ""}, "flow_name", "is required"),
        ({"work_pool_name": "x>y"}, "work_pool_name", "cannot contain"),
        ({"entrypoint": ""}, "entrypoint", "path/to/file.py:function"),
        ({"concurrency_limit": 0}, "concurrency_limit", ">= 1"),
        ({"concurrency_limit": 2**31}, "concurrency_limit", "<= 2147483647"),
        ({"pull_steps": ["not-a-step"]}, "pull_steps", "one-key objects"),
        ({"tags": ["ok", 3]}, "tags", "list of non-empty strings"),
        ({"parameters": {"who": 42}}, "parameters", "parameters.who: 42 is not of type 'string'"),
        (
            {"parameter_openapi_schema": {"type": "nonsense"}},
            "parameter_openapi_schema",
            "not a valid JSON schema",
        ),
        (
            {"schedules": [{"slug": "s", "cron": "0 9 * *"}]},
            "schedules",
            "schedules['s'].cron '0 9 * *' has 4 field(s)",
        ),
        ({"schedules": [{"slug": "s", "cron": "0 25 * * *"}]}, "schedules", "is not a valid cron expression"),
        (
            {"schedules": [{"slug": "s", "cron": "0 9 * * *", "timezone": "Athens"}]},
            "schedules",
            "not an IANA",
        ),
        ({"schedules": [{"cron": "0 9 * * *"}]}, "schedules", "schedules[0].slug is required"),
        ({"schedules": [{"slug": "s", "cron": "0 9 * * *"}] * 2}, "schedules", "'s' is used twice"),
        ({"schedules": [{"slug": "s", "cron": "0 9 * * *", "tz": "UTC"}]}, "schedules", "unknown key(s) tz"),
        (
            {"schedules": [{"slug": "s", "cron": "0 9 * * *", "parameters": {"count": "many"}}]},
            "schedules",
            "schedules['s'].parameters.count: 'many' is not of type 'integer'",
        ),
    ],
)
def test_check_rejects_each_invalid_input(
    deployments: BoundResource, pool: str, override: dict[str, Any], prop: str, fragment: str
) -> None:
    result = deployments.check(program_inputs(pool, **override))
    assert result.properties == {prop}, result.failures
    assert any(fragment in reason for reason in result.reasons(prop)), result.reasons(prop)
    assert all(reason.startswith(prop) for reason in result.reasons(prop))  # each names its field


def test_parameters_are_not_validated_when_enforcement_is_off(deployments: BoundResource, pool: str) -> None:
    result = deployments.check(program_inputs(pool, parameters={"who": 42}, enforce_parameter_schema=False))
    assert result.failures == []


# --- create ---------------------------------------------------------------------------------------


def test_create_posts_once_and_outputs_reflect_the_server(
    deployments: BoundResource,
    pool: str,
    proxy: FaultProxy,
    api: httpx.Client,
    cleanup: Callable[[str], None],
) -> None:
    now = datetime.now(UTC)
    inputs = deployments.checked(program_inputs(pool, schedules=quiet_schedules(now)))
    proxy.clear_requests()
    id_, outputs = deployments.create(inputs)
    cleanup(f"/deployments/{id_}")
    writes = [(w.method, w.path) for w in proxy.applied_writes()]
    assert writes == [
        ("POST", "/api/flows/"),  # get-or-create the flow
        ("POST", "/api/deployments/"),  # the deployment with its schedules, once
        (
            "POST",
            f"/api/deployments/{id_}/schedule",
        ),  # its runs, now rather than at the scheduler's next loop
    ]

    server = api.get(f"/deployments/{id_}").json()
    assert outputs["deployment_id"] == id_ == server["id"]
    assert outputs["flow_id"] == server["flow_id"]
    assert server["global_concurrency_limit"]["limit"] == outputs["concurrency_limit"] == 3
    assert outputs["schedule_ids"] == {s["slug"]: s["id"] for s in server["schedules"]}
    assert outputs["ui_url"] == f"{proxy.base_url}/deployments/deployment/{id_}"
    assert outputs["work_queue_name"] == "default"
    # The earlier of its two schedules' next firings, both hours away: the second one's.
    assert outputs["next_run_time"] == iso(hours_ahead("UTC", 5, now))
    assert {k: outputs[k] for k in inputs if k != "adopt_existing"} == {
        k: v for k, v in inputs.items() if k != "adopt_existing"
    }


def test_create_fails_clearly_when_the_work_pool_is_missing(deployments: BoundResource, pool: str) -> None:
    with pytest.raises(ProviderCallError) as error:
        deployments.create(deployments.checked(program_inputs(pool, work_pool_name="no-such-pool")))
    assert "work_pool_name 'no-such-pool' does not exist" in error.value.message


def test_create_rejects_job_variables_the_pool_does_not_accept(deployments: BoundResource, pool: str) -> None:
    with pytest.raises(ProviderCallError) as error:
        deployments.create(deployments.checked(program_inputs(pool, job_variables={"env": 5})))
    assert "job_variables.env" in error.value.message and pool in error.value.message


def test_create_over_an_existing_deployment_fails_and_says_how_to_adopt(
    deployments: BoundResource, created: Created
) -> None:
    with pytest.raises(ProviderCallError) as error:
        deployments.create(created.inputs)
    assert "already exists" in error.value.message and "adopt_existing=True" in error.value.message


def test_adopt_existing_patches_and_reconciles_instead_of_posting(
    deployments: BoundResource, created: Created, proxy: FaultProxy, api: httpx.Client
) -> None:
    news = {**created.inputs, "adopt_existing": True, "description": "adopted"}
    news["schedules"] = [created.inputs["schedules"][0]]  # drop "weekly"
    proxy.clear_requests()
    id_, outputs = deployments.create(news)
    assert id_ == created.id
    weekly_id = created.outputs["schedule_ids"]["weekly"]
    assert [(w.method, w.path) for w in proxy.applied_writes()] == [
        ("POST", "/api/flows/"),
        ("PATCH", f"/api/deployments/{id_}"),
        ("DELETE", f"/api/deployments/{id_}/schedules/{weekly_id}"),
        ("POST", f"/api/deployments/{id_}/schedule"),
    ]
    assert outputs["description"] == api.get(f"/deployments/{id_}").json()["description"] == "adopted"
    assert outputs["schedule_ids"] == {"morning": created.outputs["schedule_ids"]["morning"]}


# --- diff -----------------------------------------------------------------------------------------


def test_diff_none_after_create_and_after_a_no_change_refresh(
    deployments: BoundResource, created: Created, proxy: FaultProxy
) -> None:
    assert deployments.diff(created.id, created.outputs, created.inputs).changes is False
    proxy.clear_requests()
    read = deployments.read(created.id, created.outputs)
    assert read.outputs == created.outputs  # a refresh with no change shows no diff
    assert proxy.writes() == []
    # Schedules and tags written in another order are the same thing.
    shuffled = {
        **created.inputs,
        "schedules": created.inputs["schedules"][::-1],
        "tags": ["daily", "suggestions"],
    }
    assert deployments.diff(created.id, read.outputs, shuffled).changes is False


@pytest.mark.parametrize(
    "change",
    [
        {"description": "other"},
        {"parameters": {"who": "Grace"}},
        {"job_variables": {}},
        {"paused": True},
        {"concurrency_limit": None},
        {"work_queue_name": "other-queue"},
        {"schedules": [{"slug": "morning", "cron": "0 10 * * *", "timezone": "Europe/Athens"}]},
    ],
)
def test_diff_updates_in_place(deployments: BoundResource, created: Created, change: dict[str, Any]) -> None:
    news = deployments.checked({**{k: v for k, v in created.inputs.items() if k not in change}, **change})
    diff = deployments.diff(created.id, created.outputs, news)
    assert (diff.changes, diff.replaces) == (True, [])


@pytest.mark.parametrize(("key", "value"), [("name", "renamed"), ("flow_name", "other-flow")])
def test_diff_replaces_on_flow_or_name_creating_first(
    deployments: BoundResource, created: Created, key: str, value: str
) -> None:
    diff = deployments.diff(created.id, created.outputs, {**created.inputs, key: value})
    assert (diff.changes, diff.replaces, diff.delete_before_replace) == (True, [key], False)


# --- update ---------------------------------------------------------------------------------------


def test_schedule_edits_keep_ids_and_send_only_the_needed_calls(
    deployments: BoundResource, created: Created, proxy: FaultProxy, api: httpx.Client
) -> None:
    ids = created.outputs["schedule_ids"]
    news = deployments.checked(
        {
            **created.inputs,
            "schedules": [
                {"slug": "morning", "cron": "30 8 * * *", "timezone": "Europe/Athens"},  # changed
                {"slug": "evening", "cron": "0 20 * * *", "timezone": "UTC"},  # new
            ],  # "weekly" removed
        }
    )
    proxy.clear_requests()
    outputs = deployments.update(created.id, created.outputs, news)
    writes = [(w.method, w.path) for w in proxy.applied_writes()]
    base = f"/api/deployments/{created.id}"
    assert writes == [
        ("DELETE", f"{base}/schedules/{ids['weekly']}"),
        ("PATCH", f"{base}/schedules/{ids['morning']}"),
        ("POST", f"{base}/schedules"),
        ("POST", f"{base}/schedule"),  # the runs the first two deleted, back at once
    ]  # and no PATCH of the deployment itself: none of its fields changed
    assert outputs["schedule_ids"]["morning"] == ids["morning"]  # edited in place, not recreated
    assert set(outputs["schedule_ids"]) == {"morning", "evening"}
    server = by_slug(
        [
            {"slug": s["slug"], **s["schedule"]}
            for s in api.get(f"/deployments/{created.id}").json()["schedules"]
        ]
    )
    assert server["morning"]["cron"] == "30 8 * * *" and server["evening"]["timezone"] == "UTC"

    # Unchanged schedules are not touched at all when only a field changes.
    proxy.clear_requests()
    again = deployments.checked({**news, "description": "new words"})
    outputs = deployments.update(created.id, outputs, again)
    assert [(w.method, w.path, w.body) for w in proxy.applied_writes()] == [
        ("PATCH", base, {"description": "new words"}),
        ("POST", f"{base}/schedule", {}),
    ]
    assert outputs["schedule_ids"]["morning"] == ids["morning"]


def test_update_of_several_fields_patches_those_fields(
    deployments: BoundResource, created: Created, proxy: FaultProxy, api: httpx.Client
) -> None:
    news = deployments.checked(
        {
            **created.inputs,
            "parameters": {"who": "Grace", "count": 2},
            "tags": ["changed"],
            "concurrency_limit": 5,
            "work_queue_name": "priority",
            "paused": True,
        }
    )
    proxy.clear_requests()
    outputs = deployments.update(created.id, created.outputs, news)
    (patch,) = proxy.applied_writes()  # paused: no runs to schedule
    # A new queue is placed in the deployment's pool, which the body must therefore name.
    assert set(patch.body) == {
        "parameters",
        "tags",
        "concurrency_limit",
        "work_queue_name",
        "paused",
        "work_pool_name",
    }
    server = api.get(f"/deployments/{created.id}").json()
    assert server["parameters"] == {"who": "Grace", "count": 2}
    assert (server["tags"], server["work_queue_name"], server["paused"]) == (["changed"], "priority", True)
    assert server["global_concurrency_limit"]["limit"] == outputs["concurrency_limit"] == 5
    assert outputs.get("next_run_time") is None  # paused: nothing will run (None keys are not sent)
    assert deployments.diff(created.id, outputs, news).changes is False

    unlimited = {k: v for k, v in news.items() if k != "concurrency_limit"}
    outputs = deployments.update(created.id, outputs, unlimited)
    assert api.get(f"/deployments/{created.id}").json()["global_concurrency_limit"] is None
    assert "concurrency_limit" not in outputs


def test_a_one_field_update_sends_that_field_and_reads_only_the_result(
    deployments: BoundResource, created: Created, proxy: FaultProxy
) -> None:
    """What `pulumi up` sends for a changed description: Check and Diff ask nothing, Update PATCHes the
    one field (no GET before it, no GET of the pool: the job variables did not change)."""
    proxy.clear_requests()
    news = deployments.checked({**created.inputs, "description": "one field"})
    assert deployments.diff(created.id, created.outputs, news).changes is True
    outputs = deployments.update(created.id, created.outputs, news)
    base = f"/api/deployments/{created.id}"
    requests = proxy.applied_requests()
    assert [(r.method, r.path, r.body) for r in requests] == [
        ("PATCH", base, {"description": "one field"}),
        ("POST", f"{base}/schedule", {}),  # the runs the PATCH deleted, back at once
        ("GET", base, None),  # the result, as outputs
        ("POST", "/api/flow_runs/filter", requests[-1].body),  # the next run, as an output
    ]
    assert outputs["description"] == "one field"
    assert outputs["schedule_ids"] == created.outputs["schedule_ids"]


def test_changed_job_variables_are_sent_with_the_pool_so_the_server_validates_them(
    deployments: BoundResource, created: Created, proxy: FaultProxy, api: httpx.Client
) -> None:
    proxy.clear_requests()
    news = deployments.checked({**created.inputs, "job_variables": {"env": {"MODE": "changed"}}})
    deployments.update(created.id, created.outputs, news)
    pool = created.inputs["work_pool_name"]
    (patch,) = [r for r in proxy.applied_requests() if r.method == "PATCH"]
    assert patch.body == {"work_pool_name": pool, "job_variables": {"env": {"MODE": "changed"}}}
    assert ("GET", f"/api/work_pools/{pool}") in [(r.method, r.path) for r in proxy.requests]
    server = api.get(f"/deployments/{created.id}").json()
    assert (server["job_variables"], server["work_queue_name"]) == ({"env": {"MODE": "changed"}}, "default")


def scheduled_runs(api: httpx.Client, deployment_id: str) -> dict[str, str]:
    """The deployment's future SCHEDULED runs: id -> expected start time."""
    runs = api.post(
        "/flow_runs/filter",
        json={
            "flow_runs": {
                "deployment_id": {"any_": [deployment_id]},
                "state": {"type": {"any_": ["SCHEDULED"]}},
            }
        },
    ).json()
    return {run["id"]: run["expected_start_time"] for run in runs}


def test_future_runs_after_a_description_change_are_there_at_the_same_times(
    deployments: BoundResource, created: Created, api: httpx.Client
) -> None:
    """Prefect deletes a deployment's future auto-scheduled runs on every PATCH of it, whatever the field
    (prefect/server/models/deployments.py `update_deployment` calls `_delete_scheduled_runs` unconditionally),
    so no request can change a description and keep the runs' ids. What the provider guarantees: the runs
    are back, at the same times, before the update returns (not at the scheduler's next loop)."""
    before = scheduled_runs(api, created.id)
    assert before, "create scheduled no runs"
    news = deployments.checked({**created.inputs, "description": "runs stay"})
    outputs = deployments.update(created.id, created.outputs, news)
    after = scheduled_runs(api, created.id)
    assert sorted(after.values()) == sorted(before.values())
    assert (
        outputs["next_run_time"]
        == created.outputs["next_run_time"]
        == iso(min(datetime.fromisoformat(t) for t in after.values()))
    )


def test_update_rejects_job_variables_the_pool_does_not_accept(
    deployments: BoundResource, created: Created
) -> None:
    with pytest.raises(ProviderCallError) as error:
        deployments.update(created.id, created.outputs, {**created.inputs, "job_variables": {"env": "x"}})
    assert "job_variables.env" in error.value.message


# --- read: drift and deletion ---------------------------------------------------------------------


def test_out_of_band_edits_show_as_a_precise_diff_and_update_restores(
    deployments: BoundResource, created: Created, api: httpx.Client
) -> None:
    morning = created.outputs["schedule_ids"]["morning"]
    api.patch(f"/deployments/{created.id}/schedules/{morning}", json={"active": False}).raise_for_status()
    api.patch(
        f"/deployments/{created.id}",
        json={"parameters": {"who": "Edited in UI"}, "work_pool_name": created.inputs["work_pool_name"]},
    ).raise_for_status()

    read = deployments.read(created.id, created.outputs)
    changed = {k for k in created.outputs if read.outputs.get(k) != created.outputs[k]}
    assert changed - {"next_run_time"} == {"schedules", "parameters"}
    assert read.outputs["parameters"] == {"who": "Edited in UI"}
    assert by_slug(read.outputs["schedules"])["morning"]["active"] is False
    assert by_slug(read.outputs["schedules"])["weekly"] == by_slug(created.outputs["schedules"])["weekly"]
    assert read.inputs is not None and read.inputs["parameters"] == {"who": "Edited in UI"}

    assert deployments.diff(created.id, read.outputs, created.inputs).changes is True
    outputs = deployments.update(created.id, read.outputs, created.inputs)
    assert outputs["parameters"] == {"who": "Ada"}
    assert by_slug(outputs["schedules"])["morning"]["active"] is True
    assert outputs["schedule_ids"] == created.outputs["schedule_ids"]  # restored in place


def test_a_schedule_added_in_the_ui_is_drift_and_is_removed(
    deployments: BoundResource, created: Created, api: httpx.Client
) -> None:
    extra = {"schedule": {"interval": 3600}, "active": True, "slug": "ui-hourly"}
    api.post(f"/deployments/{created.id}/schedules", json=[extra]).raise_for_status()
    read = deployments.read(created.id, created.outputs)
    assert by_slug(read.outputs["schedules"])["ui-hourly"]["schedule"]["interval"] == 3600
    assert deployments.diff(created.id, read.outputs, created.inputs).changes is True
    outputs = deployments.update(created.id, read.outputs, created.inputs)
    assert set(outputs["schedule_ids"]) == {"morning", "weekly"}


def test_out_of_band_delete_reads_as_gone_and_update_says_so(
    deployments: BoundResource, created: Created, api: httpx.Client
) -> None:
    api.delete(f"/deployments/{created.id}").raise_for_status()
    read = deployments.read(created.id, created.outputs)
    assert read.gone and read.outputs == {}
    with pytest.raises(ProviderCallError) as error:
        deployments.update(created.id, created.outputs, {**created.inputs, "description": "x"})
    assert "no longer exists" in error.value.message and "pulumi refresh" in error.value.message


# --- delete ---------------------------------------------------------------------------------------


def test_delete_twice_and_no_scheduled_runs_remain(
    deployments: BoundResource, created: Created, api: httpx.Client
) -> None:
    run = api.post(f"/deployments/{created.id}/create_flow_run", json={}).json()
    assert run["state_type"] == "SCHEDULED"
    deployments.delete(created.id, created.outputs)
    deployments.delete(created.id, created.outputs)  # 404 is success
    assert api.get(f"/deployments/{created.id}").status_code == 404
    runs = api.post(
        "/flow_runs/filter",
        json={
            "flow_runs": {"deployment_id": {"any_": [created.id]}, "state": {"type": {"any_": ["SCHEDULED"]}}}
        },
    ).json()
    assert runs == []


def test_resource_type_token() -> None:
    assert Deployment._resource_type_name == "dynamic/prefect:Deployment"


def test_preview_with_values_not_known_yet(deployments: BoundResource, created: Created) -> None:
    """During a preview, outputs of resources not created yet arrive as unknowns: check must not judge
    them, and diff must report a change rather than guess."""
    news = {
        **created.inputs,
        "work_pool_name": rpc.UNKNOWN,
        "job_variables": {"image": rpc.UNKNOWN},
        "schedules": [{"slug": "morning", "cron": rpc.UNKNOWN}],
    }
    checked = deployments.check(news)
    assert checked.failures == []
    assert isinstance(checked["work_pool_name"], Unknown)
    diff = deployments.diff(created.id, created.outputs, news)
    assert (diff.changes, diff.replaces) == (True, [])


def test_read_with_only_an_id_recovers_the_flow_name(deployments: BoundResource, created: Created) -> None:
    """`Deployment.get(name, id)` sends no properties."""
    read = deployments.read(created.id, {})
    assert read.outputs["flow_name"] == "provider-test-flow"
    assert read.outputs["schedule_ids"] == created.outputs["schedule_ids"]


def scheduled_run_ids(api: httpx.Client, deployment_id: str) -> set[str]:
    return set(scheduled_runs(api, deployment_id))


def test_adding_a_schedule_keeps_the_runs_already_scheduled(
    deployments: BoundResource, created: Created, api: httpx.Client
) -> None:
    """Only a POST of the new schedule is sent, so the scheduler's runs of the others survive. (A PATCH or
    DELETE of any schedule makes the server drop all of the deployment's auto-scheduled runs; its scheduler
    recreates them on its next loop.)"""
    deadline = time.monotonic() + 30
    while not (before := scheduled_run_ids(api, created.id)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert before, "the scheduler created no runs within 30 s"
    added = [*created.inputs["schedules"], {"slug": "noon", "cron": "0 12 * * *"}]
    outputs = deployments.update(
        created.id, created.outputs, deployments.checked({**created.inputs, "schedules": added})
    )
    assert set(outputs["schedule_ids"]) == {"morning", "weekly", "noon"}
    assert before <= scheduled_run_ids(api, created.id)
