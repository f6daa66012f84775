"""End to end, for real: the program's resources on a real Docker engine and a real Prefect server.

The real program runs under the local engine (tests/support/local_engine.py): the image is really built, the work
pool and deployment really created through the providers' gRPC host, the worker container really started; then
runs are triggered and read back like a user would. The journeys of one stack share a module-scoped state and
run in order: up → run → no-op up → change → destroy. Push and the docker pool use a second stack.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import docker
import pytest

import infra.worker
from tests.support.docker_env import RegistrySettings, require_registry
from tests.support.fake_bored_api import FakeBoredApi
from tests.support.fault_proxy import FaultProxy
from tests.support.local_engine import CONTAINER, DYNAMIC_PREFIX, IMAGE, LocalEngine, StackRecord
from tests.support.prefect_server import PrefectServer
from tests.support.program_harness import REPO_ROOT
from tests.support.socket_forwarder import UnixSocketForwarder
from tests.support.stack_checks import PrefectApi, stack_containers, wait_for_health

pytestmark = pytest.mark.docker

TIMEZONE = "America/New_York"
DEPLOYMENT = f"{DYNAMIC_PREFIX}prefect:Deployment"
WORK_POOL = f"{DYNAMIC_PREFIX}prefect:WorkPool"
# Outputs that change with nobody editing anything: the worker's heartbeat and the scheduler's next run.
VOLATILE_OUTPUTS = {"status", "next_run_time"}
# A visible change to the flow code for the "change" journey: it shows in the run's logs.
ORIGINAL_LINE = 'line = f"Suggested activity: '
CHANGED_LINE = 'line = f"Suggested activity (changed code): '


def copy_project(destination: Path) -> Path:
    """A working copy of the repository, as a user's clone would be (the change journey edits it)."""
    ignore = shutil.ignore_patterns(".venv", ".git", ".*cache", "__pycache__", ".pulumi", "benchmarks")
    shutil.copytree(REPO_ROOT, destination, ignore=ignore)
    return destination


@pytest.fixture(scope="module")
def recording_proxy(prefect_server: PrefectServer) -> Iterator[FaultProxy]:
    """The providers talk to the server through this proxy, which records every request (the no-op journey
    counts writes); the worker talks to the server directly, so its polling is not counted."""
    with FaultProxy(prefect_server.api_url) as proxy:
        yield proxy


def stack_config(
    server: PrefectServer, proxy: FaultProxy, bored_api: FakeBoredApi, pool_name: str
) -> dict[str, str]:
    return {
        "prefect:apiUrl": proxy.api_url,
        "prefect:workerApiUrl": f"http://host.docker.internal:{server.port}/api",
        "image:push": "false",
        "suggest-activity:poolName": pool_name,
        "suggest-activity:timezone": TIMEZONE,
        "suggest-activity:workerPollSeconds": "2",
        "suggest-activity:flowParameters": json.dumps(
            {"api_url": bored_api.url_for_host("host.docker.internal")}
        ),
    }


@dataclass
class StackState:
    engine: LocalEngine
    api: PrefectApi
    project_dir: Path
    record: StackRecord = field(default_factory=StackRecord)

    def one(self, typ: str) -> dict:
        (resource,) = self.record.of_type(typ)
        return resource.outputs


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


def run_and_check(state: StackState, bored_api: FakeBoredApi, docker_client: docker.DockerClient) -> str:
    """Trigger a run of the deployment, wait for it, and check the artifact holds what the fake API served."""
    deployment_id = state.one(DEPLOYMENT)["deployment_id"]
    served_before = len(bored_api.served())
    run_id = state.api.trigger(deployment_id)
    run = state.api.wait_for_run(run_id)
    assert run["state_type"] == "COMPLETED", run["state"]["message"]

    served = bored_api.served()
    assert len(served) == served_before + 1  # the container really called the fake API, once
    (artifact,) = state.api.artifacts_of(run_id)
    assert artifact["key"] == "activity-suggestion"
    assert artifact["data"].splitlines()[0] == f"# {served[-1]['activity']}"

    worker_logs = "".join(
        c.logs().decode(errors="replace") for c in stack_containers(docker_client, state.engine.stack)
    )
    assert run_id in worker_logs
    return run_id


def test_up_from_nothing(process_stack: StackState, docker_client: docker.DockerClient) -> None:
    process_stack.record = process_stack.engine.up()
    record = process_stack.record
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
    for run in process_stack.api.wait_for_scheduled_runs(deployment_id):
        start = datetime.fromisoformat(run["expected_start_time"]).astimezone(ZoneInfo(TIMEZONE))
        assert (start.hour, start.minute) == (9, 0)
    assert process_stack.record.exports["next_run_time"]


def test_run_completes_and_saves_the_served_activity(
    process_stack: StackState, bored_api: FakeBoredApi, docker_client: docker.DockerClient
) -> None:
    run_and_check(process_stack, bored_api, docker_client)


def test_noop_up_changes_nothing_and_neither_does_up_after_refresh(
    process_stack: StackState, recording_proxy: FaultProxy, docker_client: docker.DockerClient
) -> None:
    before = process_stack.record
    (worker,) = stack_containers(docker_client, "e2e")
    recording_proxy.clear_requests()

    # The second `up` diffs the program against what pulumi-docker's read recorded after the create.
    after = process_stack.engine.up(before)
    process_stack.record = after
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


def test_a_healthcheck_change_reaches_the_worker(
    process_stack: StackState, docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pulumi-docker updates only restart/memory/cpu limits in place: a new healthcheck needs a new container.
    (old_worker,) = stack_containers(docker_client, "e2e")
    declared = infra.worker.healthcheck_test
    # Any change to the declared test that still works: the pool named twice (argparse keeps the last).
    probe = [*declared("e2e-process"), "--pool", "e2e-process"]
    monkeypatch.setattr(infra.worker, "healthcheck_test", lambda pool: [*declared(pool), "--pool", pool])

    process_stack.record = after = process_stack.engine.up(process_stack.record)

    assert after.actions["worker-0"] == "replace"
    assert {name for name, action in after.actions.items() if action != "same"} == {"worker-0"}
    (new_worker,) = stack_containers(docker_client, "e2e")
    assert new_worker.id != old_worker.id
    assert new_worker.attrs["Config"]["Healthcheck"]["Test"] == probe
    wait_for_health(new_worker)
    (recorded,) = after.of_type(CONTAINER)
    assert recorded.outputs["healthcheck"]["tests"] == probe


def test_code_change_rebuilds_replaces_worker_and_runs_new_code(
    process_stack: StackState, bored_api: FakeBoredApi, docker_client: docker.DockerClient
) -> None:
    before = process_stack.record
    (old_worker,) = stack_containers(docker_client, "e2e")
    flow_file = process_stack.project_dir / "flows" / "suggest_activity.py"
    source = flow_file.read_text()
    assert ORIGINAL_LINE in source
    flow_file.write_text(source.replace(ORIGINAL_LINE, CHANGED_LINE))

    process_stack.record = after = process_stack.engine.up(before)

    old_tag = before.of_type(IMAGE)[0].outputs["imageName"]
    new_tag = process_stack.one(IMAGE)["imageName"]
    assert new_tag != old_tag
    assert after.actions["worker-0"] == "replace"
    assert after.actions["deployment"] == "update"
    deployment_id = process_stack.one(DEPLOYMENT)["deployment_id"]
    assert deployment_id == before.of_type(DEPLOYMENT)[0].outputs["deployment_id"]
    deployment = process_stack.api.get(f"/deployments/{deployment_id}").raise_for_status().json()
    assert deployment["version"] == new_tag.rsplit(":", 1)[1]
    (new_worker,) = stack_containers(docker_client, "e2e")
    assert new_worker.id != old_worker.id

    run_id = run_and_check(process_stack, bored_api, docker_client)
    process_stack.api.wait_for_log(run_id, "Suggested activity (changed code): ")


def test_destroy_leaves_nothing(process_stack: StackState, docker_client: docker.DockerClient) -> None:
    deployment_id = process_stack.one(DEPLOYMENT)["deployment_id"]
    process_stack.engine.destroy(process_stack.record)

    assert stack_containers(docker_client, "e2e") == []
    assert process_stack.api.get("/work_pools/e2e-process").status_code == 404
    assert process_stack.api.get(f"/deployments/{deployment_id}").status_code == 404
    assert process_stack.api.scheduled_runs(deployment_id) == []


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
    engine = pushing_docker_pool_engine("e2e-docker", registry.password)
    state = StackState(engine, PrefectApi(prefect_server.api_url), engine.project_dir)
    try:
        state.record = engine.up()
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
        state.api.wait_for_pool_status("e2e-docker", "READY")

        started = datetime.now(UTC)
        run_id = run_and_check(state, bored_api, docker_client)
        events = docker_client.events(
            since=started,
            until=datetime.now(UTC),
            decode=True,
            filters={"type": "container", "event": "create"},
        )
        images = [event["Actor"]["Attributes"].get("image") for event in events]
        assert image["imageName"] in images, (
            f"no per-run container from {image['imageName']} for run {run_id}"
        )
        run = state.api.get(f"/flow_runs/{run_id}").json()
        assert run["infrastructure_pid"]  # the docker worker records the run's container
    finally:
        engine.destroy(state.record)
    assert stack_containers(docker_client, "e2edocker") == []
