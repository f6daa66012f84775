"""FlowRunCheckProvider through the gRPC host the Pulumi engine starts, against a REAL Prefect server.

No worker and no Docker here: a `RunPlayer` takes the worker's part through the server's own API (it moves
each run of the deployment through the states a worker would propose, and saves an artifact for it, as the
flow does), so every outcome of a run can be had in seconds. tests/test_end_to_end.py runs the check with a
real worker, a real image and the real flow.
"""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from pulumi.runtime import rpc

from infra.prefect import FlowRunCheck, FlowRunCheckProvider
from infra.prefect.flow_run_check import RUN_KEYS
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.prefect_server import PatientTransport, PrefectServer
from tests.support.provider_host import BoundResource, ProviderCallError, ProviderHost, provider_property

# `proxy`, `host` and `api` are tests/conftest.py's.

ARTIFACT_KEY = "activity-suggestion"
FAILURE_MESSAGE = "Flow run encountered an exception: BoredApiError: the Bored API answered 500"
SHORT_TIMEOUT = 3  # seconds: for the runs that are meant not to finish


@pytest.fixture(scope="module")
def checks(host: ProviderHost) -> BoundResource:
    return host.resource(FlowRunCheckProvider(), "prefect:FlowRunCheck")


@pytest.fixture(scope="module")
def pool(prefect_server: PrefectServer) -> str:
    """A pool no worker polls (so no job template either): what happens to the runs is up to the `RunPlayer`."""
    name = f"checks-{uuid.uuid4().hex[:6]}"
    httpx.post(f"{prefect_server.api_url}/work_pools/", json={"name": name}).raise_for_status()
    return name


@pytest.fixture
def deployment(api: httpx.Client, pool: str) -> dict[str, Any]:
    """A deployment as the server has it (the check's inputs are a Deployment's outputs)."""
    flow = api.post("/flows/", json={"name": "flow-run-check-test"}).raise_for_status().json()
    body = {
        "name": f"dep-{uuid.uuid4().hex[:8]}",
        "flow_id": flow["id"],
        "work_pool_name": pool,
        "entrypoint": "flows/suggest_activity.py:suggest_activity",
        "pull_steps": [{"prefect.deployments.steps.set_working_directory": {"directory": "/opt/app"}}],
        "parameters": {"api_url": "http://bored.example"},
        "job_variables": {},
        "version": "sha-0123456789abcdef",
        "tags": ["suggest-activity"],
    }
    created: dict[str, Any] = api.post("/deployments/", json=body).raise_for_status().json()
    return created


def check_inputs(deployment: dict[str, Any], **override: Any) -> dict[str, Any]:
    """What the program declares: the deployment's outputs, a timeout (tags left to the default)."""
    inputs = {"deployment_id": deployment["id"], "timeout_seconds": 60}
    inputs.update({key: deployment[key] for key in RUN_KEYS if key != "deployment_id"})
    inputs.update(override)
    return inputs


def runs_of(api: httpx.Client, deployment_id: str) -> list[dict[str, Any]]:
    body = {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}, "sort": "EXPECTED_START_TIME_ASC"}
    runs: list[dict[str, Any]] = api.post("/flow_runs/filter", json=body).raise_for_status().json()
    return runs


class RunPlayer:
    """Plays the worker through the REAL server's API: each run of `deployment_id` is proposed the states of
    `script` in turn (orchestration rules apply, nothing is forced), and gets an artifact before it is
    proposed COMPLETED, as the flow saves one. A script that ends before a final state leaves the run there."""

    def __init__(self, api_url: str, deployment_id: str, script: Sequence[tuple[str, str | None]]) -> None:
        self.http = httpx.Client(base_url=api_url, timeout=30, transport=PatientTransport())
        self.deployment_id = deployment_id
        self.script = script
        self.played: list[str] = []
        self.answers: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play, daemon=True)

    def __enter__(self) -> RunPlayer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.http.close()

    def _play(self) -> None:
        while not self._stop.wait(0.3):
            for run in runs_of(self.http, self.deployment_id):  # type: ignore[arg-type]
                if run["id"] in self.played or run["state_type"] != "SCHEDULED":
                    continue
                self.played.append(run["id"])
                for state_type, message in self.script:
                    if state_type == "COMPLETED":
                        artifact = {"key": ARTIFACT_KEY, "type": "markdown", "data": "# Learn to juggle",
                                    "flow_run_id": run["id"]}  # fmt: skip
                        self.http.post("/artifacts/", json=artifact).raise_for_status()
                    state = {"type": state_type, "message": message}
                    answer = self.http.post(f"/flow_runs/{run['id']}/set_state", json={"state": state})
                    self.answers.append(answer.raise_for_status().json()["status"])


def completes(deployment_id: str, api_url: str) -> RunPlayer:
    script = [("PENDING", None), ("RUNNING", None), ("COMPLETED", "All states completed.")]
    return RunPlayer(api_url, deployment_id, script)


# --- pickling, check and diff: no server involved ----------------------------------------------------


def test_provider_is_pickled_by_reference_without_state() -> None:
    provider = FlowRunCheckProvider()
    assert vars(provider) == {}
    pickled = base64.b64decode(provider_property(provider))
    assert b"infra.prefect.flow_run_check" in pickled and b"FlowRunCheckProvider" in pickled
    assert FlowRunCheck._resource_type_name == "dynamic/prefect:FlowRunCheck"


def test_check_fills_defaults_and_names_each_bad_input(checks: BoundResource, proxy: FaultProxy) -> None:
    proxy.clear_requests()
    good = checks.check({"deployment_id": "d", "work_pool_name": "p", "entrypoint": "f.py:f",
                         "timeout_seconds": 30})  # fmt: skip
    assert good.failures == []
    assert (good["tags"], good["parameters"], good["job_variables"]) == (["smoke-run"], {}, {})

    bad = checks.check({"deployment_id": "", "work_pool_name": "p", "entrypoint": "f.py:f",
                        "timeout_seconds": 0, "tags": ["smoke-run", ""], "parameters": []})  # fmt: skip
    assert bad.properties == {"deployment_id", "timeout_seconds", "tags", "parameters"}
    assert "timeout_seconds must be a number of seconds > 0, not 0" in bad.reasons("timeout_seconds")[0]
    assert proxy.requests == []  # a preview needs no server


def test_check_does_not_judge_values_unknown_in_a_preview(checks: BoundResource) -> None:
    """During a preview the deployment's outputs are not known yet when the deployment changes."""
    result = checks.check({key: rpc.UNKNOWN for key in RUN_KEYS} | {"timeout_seconds": 30})
    assert result.failures == []


@pytest.mark.parametrize("key", RUN_KEYS)
def test_a_change_of_what_a_run_executes_replaces_the_check(checks: BoundResource, key: str) -> None:
    old = checks.checked(check_inputs(_deployment_like(), timeout_seconds=30))
    changed = {
        "pull_steps": [{"prefect.deployments.steps.set_working_directory": {"directory": "/elsewhere"}}],
        "parameters": {"api_url": "http://other.example"},
        "job_variables": {"env": {"MODE": "x"}},
    }.get(key, f"{old[key]}-changed")
    diff = checks.diff("run-id", old, checks.checked({**old, key: changed}))
    assert (diff.changes, diff.replaces, diff.delete_before_replace) == (True, [key], True)


def test_timeout_and_tags_say_how_to_check_and_change_nothing(checks: BoundResource) -> None:
    old = checks.checked(check_inputs(_deployment_like(), timeout_seconds=30))
    new = checks.checked({**old, "timeout_seconds": 600, "tags": ["smoke-run", "canary"]})
    diff = checks.diff("run-id", old, new)
    assert (diff.changes, diff.replaces) == (False, [])
    assert checks.diff("run-id", old, checks.checked(dict(old))).changes is False


def test_a_deployment_output_unknown_in_a_preview_shows_as_a_replacement(checks: BoundResource) -> None:
    old = checks.checked(check_inputs(_deployment_like(), timeout_seconds=30))
    diff = checks.diff("run-id", old, {**old, "version": rpc.UNKNOWN})
    assert diff.replaces == ["version"]


def _deployment_like() -> dict[str, Any]:
    return {"id": "0b6b2f4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", "work_pool_name": "p", "version": "sha-1",
            "entrypoint": "f.py:f", "pull_steps": [], "parameters": {"api_url": "http://a"},
            "job_variables": {}}  # fmt: skip


# --- create: one run, its final state -----------------------------------------------------------------


def test_create_runs_the_deployment_once_and_records_the_completed_run(
    checks: BoundResource, api: httpx.Client, prefect_server: PrefectServer, proxy: FaultProxy,
    deployment: dict[str, Any],
) -> None:  # fmt: skip
    with completes(deployment["id"], prefect_server.api_url) as player:
        run_id, outputs = checks.create(checks.checked(check_inputs(deployment)))

    (run,) = runs_of(api, deployment["id"])
    assert run_id == run["id"] == outputs["flow_run_id"] == player.played[0]
    assert player.answers == ["ACCEPT", "ACCEPT", "ACCEPT"]  # a worker's transitions, orchestrated
    assert run["state_type"] == "COMPLETED"
    assert set(run["tags"]) == {"smoke-run", "suggest-activity"}  # its own tag, and the deployment's
    assert run["parameters"] == deployment["parameters"]  # what the deployment has
    assert outputs["state_name"] == "Completed" and outputs["state_type"] == "COMPLETED"
    assert outputs["flow_run_name"] == run["name"]
    assert outputs["ui_url"] == f"{proxy.base_url}/runs/flow-run/{run_id}"
    assert outputs["duration_seconds"] == run["total_run_time"]
    assert outputs["artifact_keys"] == [ARTIFACT_KEY]
    assert outputs["version"] == deployment["version"]  # inputs are echoed: the next diff compares them


def test_a_failed_run_fails_create_with_its_state_message_and_link(
    checks: BoundResource, api: httpx.Client, prefect_server: PrefectServer, proxy: FaultProxy,
    deployment: dict[str, Any],
) -> None:  # fmt: skip
    script = [("PENDING", None), ("RUNNING", None), ("FAILED", FAILURE_MESSAGE)]
    with (
        RunPlayer(prefect_server.api_url, deployment["id"], script),
        pytest.raises(ProviderCallError) as error,
    ):
        checks.create(checks.checked(check_inputs(deployment)))

    (run,) = runs_of(api, deployment["id"])
    message = error.value.message
    assert f"ended Failed: {FAILURE_MESSAGE}" in message
    assert f"Flow run: {proxy.base_url}/runs/flow-run/{run['id']}" in message
    assert "run `pulumi up` again" in message


def test_a_run_no_worker_takes_is_cancelled_at_the_timeout(
    checks: BoundResource, api: httpx.Client, proxy: FaultProxy, deployment: dict[str, Any]
) -> None:
    """The pool is polled by nobody (like a paused pool): the run stays Scheduled, and is not left behind."""
    with pytest.raises(ProviderCallError) as error:
        checks.create(checks.checked(check_inputs(deployment, timeout_seconds=SHORT_TIMEOUT)))

    (run,) = runs_of(api, deployment["id"])
    assert run["state_type"] == "CANCELLED"
    message = error.value.message
    assert (
        f"did not finish within {SHORT_TIMEOUT} s: it was still Scheduled (no worker picked it up" in message
    )
    assert "It was cancelled." in message
    assert f"{proxy.base_url}/runs/flow-run/{run['id']}" in message


def test_a_run_still_running_at_the_timeout_is_set_cancelling(
    checks: BoundResource, api: httpx.Client, prefect_server: PrefectServer, deployment: dict[str, Any]
) -> None:
    """A started run has infrastructure to stop: the server keeps it CANCELLING until its worker has."""
    script = [("PENDING", None), ("RUNNING", None)]
    with (
        RunPlayer(prefect_server.api_url, deployment["id"], script),
        pytest.raises(ProviderCallError) as error,
    ):
        checks.create(checks.checked(check_inputs(deployment, timeout_seconds=SHORT_TIMEOUT)))

    (run,) = runs_of(api, deployment["id"])
    assert run["state_type"] == "CANCELLING"
    assert (
        "it was still Running. It is being cancelled (Cancelling): it cannot start any more, and a started run stops itself."
        in error.value.message
    )


def test_a_lost_answer_to_the_trigger_does_not_start_a_second_run(
    checks: BoundResource, api: httpx.Client, prefect_server: PrefectServer, proxy: FaultProxy,
    deployment: dict[str, Any],
) -> None:  # fmt: skip
    proxy.clear_requests()
    proxy.inject(Fault.LOST_ANSWER, path_contains="/create_flow_run")
    with completes(deployment["id"], prefect_server.api_url):
        run_id, outputs = checks.create(checks.checked(check_inputs(deployment)))

    triggers = [r for r in proxy.requests if r.path.endswith("/create_flow_run")]
    # Carried out, then asked again (more than once when a retry also times out on a busy machine), always for
    # the same run: the server answers a known idempotency key with the run it made.
    assert triggers[0].fault is Fault.LOST_ANSWER and len(triggers) >= 2, triggers
    assert len({r.body["idempotency_key"] for r in triggers}) == 1
    assert [run["id"] for run in runs_of(api, deployment["id"])] == [run_id]
    assert outputs["state_name"] == "Completed"


def test_a_deployment_that_is_gone_fails_create_naming_it(
    checks: BoundResource, deployment: dict[str, Any], api: httpx.Client
) -> None:
    api.delete(f"/deployments/{deployment['id']}").raise_for_status()
    with pytest.raises(ProviderCallError) as error:
        checks.create(checks.checked(check_inputs(deployment)))
    assert f"/deployments/{deployment['id']}/create_flow_run failed: 404" in error.value.message


# --- delete and read: a record of a run that happened -------------------------------------------------


@pytest.fixture
def completed(
    checks: BoundResource, prefect_server: PrefectServer, deployment: dict[str, Any]
) -> Iterator[tuple[str, dict[str, Any]]]:
    with completes(deployment["id"], prefect_server.api_url):
        yield checks.create(checks.checked(check_inputs(deployment)))


def test_delete_leaves_the_run_and_sends_nothing(
    checks: BoundResource, api: httpx.Client, proxy: FaultProxy, completed: tuple[str, dict[str, Any]]
) -> None:
    run_id, outputs = completed
    proxy.clear_requests()
    checks.delete(run_id, outputs)
    assert proxy.requests == []
    assert api.get(f"/flow_runs/{run_id}").raise_for_status().json()["state_type"] == "COMPLETED"


def test_refresh_reads_the_run_and_keeps_the_record_once_the_run_is_deleted(
    checks: BoundResource, api: httpx.Client, completed: tuple[str, dict[str, Any]]
) -> None:
    run_id, outputs = completed
    read = checks.read(run_id, outputs)
    assert (read.id, read.outputs) == (run_id, outputs)

    api.delete(f"/flow_runs/{run_id}").raise_for_status()  # by hand, or the server's retention vacuum
    read = checks.read(run_id, outputs)
    assert not read.gone  # else the next `up` would create it again: a new run for nothing
    assert (read.id, read.outputs) == (run_id, outputs)
    assert read.inputs is not None and read.inputs["version"] == outputs["version"]
