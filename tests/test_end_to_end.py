"""End to end, for real: the program's resources on a real Docker engine and a real Prefect server.

The real program runs under the local engine (tests/support/local_engine.py): the image is really built, the work
pool and deployment really created through the providers' gRPC host, the worker container really started, and the
smoke run (infra/prefect/flow_run_check.py, on by default) really run by that worker before `up` returns. So these
journeys are the smoke run's, read back like a user would: the journeys of one stack share a module-scoped state
and run in order: up from nothing (one run, Completed) → no-op up, and up after a refresh (no run) → a healthcheck
change (a new worker, no run: what a run executes is the same) → flow-code change (one run of the new code, by the
new worker) → a memory increase (a new worker with the new limit, no run) → parameters pointing at a failing API
(`up` fails naming the run; the next `up` after the fix runs the check again) → pool paused (`up` fails at the
timeout; the run is cancelled) → destroy (the runs stay: they are history). Push and the docker pool use a second
stack, whose smoke run is a per-run container.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import docker
import pytest

import infra.worker
from tests.support.docker_env import RegistrySettings, require_registry
from tests.support.fake_bored_api import FakeBoredApi, Fault
from tests.support.fault_proxy import FaultProxy
from tests.support.journey_stack import (
    DEPLOYMENT,
    SMOKE_RUN_TAG,
    StackState,
    copy_project,
    stack_config,
)
from tests.support.local_engine import CONTAINER, DYNAMIC_PREFIX, IMAGE, LocalEngine
from tests.support.prefect_server import PrefectServer
from tests.support.socket_forwarder import UnixSocketForwarder
from tests.support.stack_checks import PrefectApi, stack_containers, wait_for_health

pytestmark = [pytest.mark.docker, pytest.mark.journey(over="process_stack")]

WORK_POOL = f"{DYNAMIC_PREFIX}prefect:WorkPool"
FLOW_RUN_CHECK = f"{DYNAMIC_PREFIX}prefect:FlowRunCheck"
# Short, for the journey whose run no worker takes: a guard of seconds, instead of the flow's 5 minutes.
PAUSED_POOL_TIMEOUT_SECONDS = 20
# Outputs that change with nobody editing anything: the worker's heartbeat and the scheduler's next run.
VOLATILE_OUTPUTS = {"status", "next_run_time"}
# A visible change to the flow code for the "change" journey: it shows in the run's logs.
ORIGINAL_LINE = 'line = f"Suggested activity: '
CHANGED_LINE = 'line = f"Suggested activity (changed code): '


@pytest.fixture(scope="module")
def recording_proxy(prefect_server: PrefectServer) -> Iterator[FaultProxy]:
    """The providers talk to the server through this proxy, which records every request (the no-op journey
    counts writes); the worker talks to the server directly, so its polling is not counted."""
    with FaultProxy(prefect_server.api_url) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def process_stack(
    tmp_path_factory: pytest.TempPathFactory,
    docker_client: docker.DockerClient,
    prefect_server: PrefectServer,
    recording_proxy: FaultProxy,
    bored_api: FakeBoredApi,
) -> Iterator[StackState]:
    project_dir = copy_project(tmp_path_factory.mktemp("e2e") / "suggest-activity")
    engine = LocalEngine(
        project_dir=project_dir,
        stack="e2e",
        config=stack_config(prefect_server, recording_proxy, bored_api, "e2e-process"),
        secret_keys=[],
        docker_client=docker_client,
    )
    state = StackState(engine, PrefectApi(prefect_server.api_url), project_dir)
    yield state
    engine.destroy(state.record)  # whatever a failed journey left behind


def assert_proven_by_one_completed_run(
    state: StackState,
    known: list[dict],
    bored_api: FakeBoredApi,
    calls_before: int,
    docker_client: docker.DockerClient,
) -> dict:
    """`up` ran exactly one new smoke run, and it had COMPLETED by the time `up` returned (nothing waits for it
    here): tagged, run by the stack's worker, with one Bored API call, its artifact holding what that call served."""
    run = state.new_smoke_run(known)
    assert run["state_type"] == "COMPLETED", run["state"]
    check = state.one(FLOW_RUN_CHECK)
    assert check["flow_run_id"] == run["id"]
    assert check["ui_url"].endswith(f"/runs/flow-run/{run['id']}")
    assert state.record.exports["smoke_run_url"] == check["ui_url"]
    assert state.record.exports["smoke_run_state"] == "Completed"
    assert {SMOKE_RUN_TAG, "suggest-activity", state.engine.stack} <= set(run["tags"])

    (call,) = bored_api.requests[
        calls_before:
    ]  # the flow in the worker's container called the fake API, once
    (artifact,) = state.api.artifacts_of(run["id"])
    assert artifact["key"] == "activity-suggestion" == check["artifact_keys"][0]
    assert artifact["data"].splitlines()[0] in {f"# {activity['activity']}" for activity in call.served}
    (worker,) = stack_containers(docker_client, state.engine.stack)
    assert run["id"] in worker.logs().decode(errors="replace")
    return run


def test_up_from_nothing_is_proven_by_one_completed_run(
    process_stack: StackState, bored_api: FakeBoredApi, docker_client: docker.DockerClient
) -> None:
    calls_before = len(bored_api.requests)
    record = process_stack.up()
    assert set(record.actions.values()) == {"create"}

    image = process_stack.one(IMAGE)
    assert docker_client.images.get(image["imageName"]).id == image["repoDigest"]

    pool = process_stack.api.get("/work_pools/e2e-process").raise_for_status().json()
    assert pool["type"] == "process"
    assert pool["base_job_template"]["job_configuration"]  # the process worker's default template

    (worker,) = stack_containers(docker_client, "e2e")
    worker.reload()
    assert worker.attrs["State"]["Health"]["Status"] == "healthy"
    assert worker.attrs["Config"]["User"] == "10001:10001"
    process_stack.api.wait_for_pool_status("e2e-process", "READY")  # the worker polls it

    deployment_id = process_stack.one(DEPLOYMENT)["deployment_id"]
    deployment = process_stack.api.get(f"/deployments/{deployment_id}").raise_for_status().json()
    (schedule,) = deployment["schedules"]
    assert schedule["slug"] == "daily-0900"
    assert schedule["schedule"]["cron"] == "0 9 * * *"
    assert schedule["schedule"]["timezone"] == process_stack.timezone
    for run in process_stack.api.wait_for_scheduled_runs(deployment_id):
        start = datetime.fromisoformat(run["expected_start_time"]).astimezone(
            ZoneInfo(process_stack.timezone)
        )
        assert (start.hour, start.minute) == (9, 0)
        assert SMOKE_RUN_TAG not in run["tags"]  # the UI tells the daily runs from the smoke runs
    assert process_stack.record.exports["next_run_time"]

    run = assert_proven_by_one_completed_run(process_stack, [], bored_api, calls_before, docker_client)
    assert run["parameters"] == {"api_url": bored_api.url_for_host("host.docker.internal")}


def test_noop_up_runs_nothing_and_changes_nothing(
    process_stack: StackState,
    recording_proxy: FaultProxy,
    bored_api: FakeBoredApi,
    docker_client: docker.DockerClient,
) -> None:
    before = process_stack.record
    runs_before = process_stack.smoke_runs()
    calls_before = len(bored_api.requests)
    (worker,) = stack_containers(docker_client, "e2e")
    recording_proxy.clear_requests()

    after = process_stack.up()
    assert set(after.actions.values()) == {"same"}, after.actions
    assert process_stack.one(IMAGE)["imageName"] == before.of_type(IMAGE)[0].outputs["imageName"]

    # `pulumi up --refresh`: the refresh reads every resource again (the container through the provider's
    # read), and the `up` after it still has nothing to do.
    refreshed, drifts = process_stack.engine.refresh(after)
    assert [d for d in drifts if d.gone or set(d.changed) - VOLATILE_OUTPUTS] == []
    process_stack.record = again = process_stack.engine.up(refreshed)
    assert set(again.actions.values()) == {"same"}, again.actions

    (worker_after,) = stack_containers(docker_client, "e2e")
    assert worker_after.id == worker.id
    assert recording_proxy.writes() == []
    assert process_stack.smoke_runs() == runs_before
    assert len(bored_api.requests) == calls_before
    assert after.exports["smoke_run_url"] == before.exports["smoke_run_url"]


def test_a_healthcheck_change_reaches_the_worker(
    process_stack: StackState, docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pulumi-docker updates only restart/memory/cpu limits in place: a new healthcheck needs a new container.
    (old_worker,) = stack_containers(docker_client, "e2e")
    declared = infra.worker.healthcheck_test
    # Any change to the declared test that still works: the pool named twice (argparse keeps the last).
    probe = [*declared("e2e-process"), "--pool", "e2e-process"]
    monkeypatch.setattr(infra.worker, "healthcheck_test", lambda pool: [*declared(pool), "--pool", pool])

    after = process_stack.up()

    assert after.actions["worker-0"] == "replace"
    # Nothing else, the smoke run included: what a run executes did not change.
    assert {name for name, action in after.actions.items() if action != "same"} == {"worker-0"}
    (new_worker,) = stack_containers(docker_client, "e2e")
    assert new_worker.id != old_worker.id
    assert new_worker.attrs["Config"]["Healthcheck"]["Test"] == probe
    wait_for_health(new_worker)
    (recorded,) = after.of_type(CONTAINER)
    assert recorded.outputs["healthcheck"]["tests"] == probe


def test_code_change_is_proven_by_one_run_of_the_new_code_by_the_new_worker(
    process_stack: StackState, bored_api: FakeBoredApi, docker_client: docker.DockerClient
) -> None:
    before = process_stack.record
    runs_before = process_stack.smoke_runs()
    calls_before = len(bored_api.requests)
    (old_worker,) = stack_containers(docker_client, "e2e")
    flow_file = process_stack.project_dir / "flows" / "suggest_activity.py"
    source = flow_file.read_text()
    assert ORIGINAL_LINE in source
    flow_file.write_text(source.replace(ORIGINAL_LINE, CHANGED_LINE))

    after = process_stack.up()

    old_tag = before.of_type(IMAGE)[0].outputs["imageName"]
    new_tag = process_stack.one(IMAGE)["imageName"]
    assert new_tag != old_tag
    assert after.actions["worker-0"] == "replace"
    assert after.actions["deployment"] == "update"
    assert after.actions["smoke-run"] == "replace"
    deployment_id = process_stack.one(DEPLOYMENT)["deployment_id"]
    assert deployment_id == before.of_type(DEPLOYMENT)[0].outputs["deployment_id"]
    deployment = process_stack.api.get(f"/deployments/{deployment_id}").raise_for_status().json()
    assert deployment["version"] == new_tag.rsplit(":", 1)[1]
    (new_worker,) = stack_containers(docker_client, "e2e")
    assert new_worker.id != old_worker.id
    assert new_worker.attrs["Image"] == process_stack.one(IMAGE)["repoDigest"]

    # One run, by the new worker (in its logs; the old one is gone), of the new image's code.
    run = assert_proven_by_one_completed_run(
        process_stack, runs_before, bored_api, calls_before, docker_client
    )
    assert run["deployment_version"] == new_tag.rsplit(":", 1)[1]
    process_stack.api.wait_for_log(run["id"], "Suggested activity (changed code): ")


def test_a_memory_increase_replaces_the_worker_and_runs_nothing(
    process_stack: StackState, bored_api: FakeBoredApi, docker_client: docker.DockerClient
) -> None:
    # `replace_on_changes=["*"]` makes a new memory limit a new container. The swap limit is in `ignore_changes`,
    # but a replacement is checked from the program's inputs alone (step_generator.go), so the new container
    # gets swap = memory; were the old swap carried over, Docker would refuse a memory above it.
    memory_mb = process_stack.one(CONTAINER)["memory"] + 256
    runs_before = process_stack.smoke_runs()
    calls_before = len(bored_api.requests)
    (old_worker,) = stack_containers(docker_client, "e2e")
    # Kept for the later steps, as a user's `pulumi config set` would be.
    process_stack.engine.config = {
        **process_stack.engine.config,
        "suggest-activity:workerMemoryMb": str(memory_mb),
    }

    after = process_stack.up()

    assert {name: action for name, action in after.actions.items() if action != "same"} == {
        "worker-0": "replace"
    }
    (new_worker,) = stack_containers(docker_client, "e2e")
    assert new_worker.id != old_worker.id
    limits = new_worker.attrs["HostConfig"]
    assert (limits["Memory"], limits["MemorySwap"]) == (memory_mb * 2**20, memory_mb * 2**20)
    wait_for_health(new_worker)
    assert process_stack.one(CONTAINER)["memory"] == memory_mb
    assert process_stack.smoke_runs() == runs_before
    assert len(bored_api.requests) == calls_before


def test_a_run_that_fails_fails_up_and_the_next_up_after_the_fix_runs_it_again(
    process_stack: StackState, bored_api: FakeBoredApi, docker_client: docker.DockerClient
) -> None:
    good_config = process_stack.engine.config
    runs_before = process_stack.smoke_runs()
    workers_before = [c.id for c in stack_containers(docker_client, "e2e")]
    try:
        with FakeBoredApi(host="0.0.0.0") as failing:
            failing.add_faults(*[Fault.http(500)] * 4)  # every attempt of the run's fetch
            failing_url = failing.url_for_host("host.docker.internal")
            process_stack.engine.config = {
                **good_config,
                "suggest-activity:flowParameters": json.dumps({"api_url": failing_url}),
            }
            with pytest.raises(Exception) as error:
                process_stack.up()
            assert failing.pending_faults == 0  # the run really asked the failing API
    finally:
        process_stack.engine.config = good_config

    run = process_stack.new_smoke_run(runs_before)
    assert run["state_type"] == "FAILED"
    message = str(getattr(error.value, "details", error.value))
    assert f"ended Failed: {run['state']['message']}" in message
    assert "HTTP 500" in run["state"]["message"]
    assert f"/runs/flow-run/{run['id']}" in message
    # Nothing half-done: the deployment is as applied (the new parameters), the workers are the same.
    deployment_id = process_stack.one(DEPLOYMENT)["deployment_id"]
    deployment = process_stack.api.get(f"/deployments/{deployment_id}").raise_for_status().json()
    assert deployment["parameters"] == {"api_url": failing_url}
    assert process_stack.one(DEPLOYMENT)["parameters"] == {"api_url": failing_url}
    assert [c.id for c in stack_containers(docker_client, "e2e")] == workers_before

    # The parameter is fixed (put back as it was when the last check passed): the check runs again.
    calls_before = len(bored_api.requests)
    after = process_stack.up()
    assert after.actions["deployment"] == "update"
    assert after.actions["smoke-run"] in ("create", "replace"), after.actions
    assert_proven_by_one_completed_run(
        process_stack, [*runs_before, run], bored_api, calls_before, docker_client
    )


def test_a_run_no_worker_takes_fails_up_at_the_timeout_and_is_cancelled(
    process_stack: StackState, bored_api: FakeBoredApi, docker_client: docker.DockerClient
) -> None:
    good_config = process_stack.engine.config
    runs_before = process_stack.smoke_runs()
    calls_before = len(bored_api.requests)
    # Paused in the UI: the worker keeps polling, the server gives it nothing (a plain `up` does not notice).
    process_stack.api.patch("/work_pools/e2e-process", {"is_paused": True})
    # A change of what a run executes (so that there is a check to run), and a short timeout.
    changed = {
        **good_config,
        "suggest-activity:flowParameters": json.dumps(
            {"api_url": bored_api.url_for_host("host.docker.internal"), "participants": 1}
        ),
    }
    try:
        process_stack.engine.config = {
            **changed,
            "suggest-activity:smokeRunTimeoutSeconds": str(PAUSED_POOL_TIMEOUT_SECONDS),
        }
        with pytest.raises(Exception) as error:
            process_stack.up()
    finally:
        process_stack.engine.config = changed
        process_stack.api.patch("/work_pools/e2e-process", {"is_paused": False})

    run = process_stack.new_smoke_run(runs_before)
    assert run["state_type"] == "CANCELLED"  # not left behind for the worker to run later
    message = str(getattr(error.value, "details", error.value))
    assert f"did not finish within {PAUSED_POOL_TIMEOUT_SECONDS} s: it was still Scheduled" in message
    assert "no worker picked it up: is the work pool paused" in message
    assert "It was cancelled." in message
    assert f"/runs/flow-run/{run['id']}" in message
    assert len(bored_api.requests) == calls_before

    # The pool resumed, the same program: the check runs again, and passes.
    after = process_stack.up()
    assert after.actions["smoke-run"] in ("create", "replace"), after.actions
    proven = assert_proven_by_one_completed_run(
        process_stack, [*runs_before, run], bored_api, calls_before, docker_client
    )
    assert proven["parameters"]["participants"] == 1


def test_destroy_leaves_nothing_but_the_runs(
    process_stack: StackState, recording_proxy: FaultProxy, docker_client: docker.DockerClient
) -> None:
    deployment_id = process_stack.one(DEPLOYMENT)["deployment_id"]
    smoke_runs = process_stack.smoke_runs()
    assert len(smoke_runs) >= 4
    recording_proxy.clear_requests()

    process_stack.engine.destroy(process_stack.record)

    assert stack_containers(docker_client, "e2e") == []
    assert process_stack.api.get("/work_pools/e2e-process").status_code == 404
    assert process_stack.api.get(f"/deployments/{deployment_id}").status_code == 404
    assert process_stack.api.scheduled_runs(deployment_id) == []
    # Runs are history: the check's delete sent nothing, and waited for nothing.
    assert not [r for r in recording_proxy.requests if "/flow_runs" in r.path]
    for run in smoke_runs:
        assert process_stack.api.get(f"/flow_runs/{run['id']}").status_code == 200


# --- push to a registry with auth, and a docker work pool running one container per flow run -------------


@pytest.fixture
def registry() -> RegistrySettings:
    return require_registry()


@pytest.fixture
def docker_forwarder() -> Iterator[UnixSocketForwarder]:
    """The Docker daemon at another address than the default socket (a short path: unix sockets have a
    length limit)."""
    with UnixSocketForwarder(Path(tempfile.mkdtemp(prefix="e2e-")) / "docker.sock") as forwarder:
        yield forwarder


@pytest.fixture
def pushing_docker_pool_engine(
    tmp_path: Path,
    docker_client: docker.DockerClient,
    prefect_server: PrefectServer,
    recording_proxy: FaultProxy,
    bored_api: FakeBoredApi,
    registry: RegistrySettings,
    docker_forwarder: UnixSocketForwarder,
) -> Callable[[str, str], LocalEngine]:
    """Makes the engine of stack `e2edocker` on a copy of the project in tmp_path/p: a docker pool named
    `pool_name`, its image pushed to the loopback registry with `password`, the Docker daemon reached at
    the address `docker:host` names (the forwarder)."""

    def engine(pool_name: str, password: str) -> LocalEngine:
        config = {
            **stack_config(prefect_server, recording_proxy, bored_api, pool_name),
            "image:registry": f"{registry.server}/e2e",
            "image:push": "true",
            "image:username": registry.username,
            "image:password": password,
            "suggest-activity:poolType": "docker",
            "docker:host": docker_forwarder.host,
        }
        return LocalEngine(
            project_dir=copy_project(tmp_path / "p"),
            stack="e2edocker",
            config=config,
            secret_keys=["image:password"],
            docker_client=docker_client,
        )

    return engine


def test_push_with_a_wrong_password_fails_clearly_and_leaves_nothing(
    pushing_docker_pool_engine: Callable[[str, str], LocalEngine],
    docker_client: docker.DockerClient,
    prefect_server: PrefectServer,
) -> None:
    engine = pushing_docker_pool_engine("e2e-wrong-password", "wrong")
    with pytest.raises(Exception) as error:
        engine.up()
    message = str(error.value)
    assert "localhost:5000/e2e/suggest-activity" in message
    assert "unauthorized" in message.lower() or "authentication required" in message.lower()
    assert "wrong" not in message  # the password is not echoed
    # Nothing was created (the built image stays local, unrecorded: its push failed): the pool waits for the
    # push, everything else for the pool.
    record = error.value.record  # type: ignore[attr-defined]
    assert record.resources == []
    assert stack_containers(docker_client, "e2edocker") == []
    assert PrefectApi(prefect_server.api_url).get("/work_pools/e2e-wrong-password").status_code == 404
    engine.destroy(record)


def test_docker_pool_runs_each_flow_in_a_container_from_the_pushed_image(
    pushing_docker_pool_engine: Callable[[str, str], LocalEngine],
    docker_client: docker.DockerClient,
    prefect_server: PrefectServer,
    bored_api: FakeBoredApi,
    registry: RegistrySettings,
    docker_forwarder: UnixSocketForwarder,
) -> None:
    """The smoke run is that flow run: `up` returns once it completed in its own container."""
    engine = pushing_docker_pool_engine("e2e-docker", registry.password)
    state = StackState(engine, PrefectApi(prefect_server.api_url), engine.project_dir)
    calls_before = len(bored_api.requests)
    try:
        started = datetime.now(UTC)
        state.up()
        image = state.one(IMAGE)
        assert image["repoDigest"].startswith("localhost:5000/e2e/suggest-activity@sha256:")
        # `docker:host` reached both halves of pulumi-docker: the image was built and pushed, and the worker
        # (and the probe of the socket's group) created, through the configured address.
        posted = docker_forwarder.paths("POST")
        assert any(path.split("?")[0].endswith("/build") for path in posted), posted
        assert any("/push" in path for path in posted), posted
        assert sum(path.split("?")[0].endswith("/containers/create") for path in posted) == 2, posted
        (worker,) = stack_containers(docker_client, "e2edocker")
        assert worker.attrs["Config"]["Image"] == image["repoDigest"]  # runs from the pushed image

        run = assert_proven_by_one_completed_run(state, [], bored_api, calls_before, docker_client)
        events = docker_client.events(
            since=started,
            until=datetime.now(UTC),
            decode=True,
            filters={"type": "container", "event": "create"},
        )
        images = [event["Actor"]["Attributes"].get("image") for event in events]
        assert image["imageName"] in images, (
            f"no per-run container from {image['imageName']} for run {run['id']}"
        )
        assert run["infrastructure_pid"]  # the docker worker records the run's container
    finally:
        engine.destroy(state.record)
    assert stack_containers(docker_client, "e2edocker") == []
