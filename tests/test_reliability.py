"""Faults the stack survives, shown for real: the real program applied by the local engine to a real Docker
engine and a real Prefect server, faults injected, then read back like a user would (docs/reliability.md).

* Prefect API faults during `up` use stacks of their own (`relup`, pool `rel-up`): the providers talk to the
  server through a FaultProxy, with a small retry budget set through the documented PULUMI_PREFECT_* variables.
* Container, server, Bored API, hang and drift faults share ONE stack (`rel`, pool `rel-process`), created once
  for the module: its copy of the code has a short flow timeout (TEST_FLOW_TIMEOUT_SECONDS), the only
  difference from production, so that a hung run ends in seconds instead of 5 minutes.

The server restart comes late: other modules share the server, and it is healthy again when the test ends.

The smoke run is off in these stacks (`suggest-activity:smokeRun false`): here every `up` is about the pool,
worker and deployment under faults, and a run per `up` would only cost time; tests/test_end_to_end.py proves
the smoke run, and tests/test_flow_run_check_provider.py its own fault handling.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import docker
import pytest

import infra.worker
from flows.suggest_activity import ARTIFACT_KEY, FLOW_TIMEOUT_SECONDS
from tests.support.fake_bored_api import FakeBoredApi, Fault
from tests.support.fault_proxy import Fault as ApiFault
from tests.support.fault_proxy import FaultProxy
from tests.support.journey_stack import TIMEZONE_KEY, StackState, copy_project, run_and_check, stack_config
from tests.support.local_engine import CONTAINER, DYNAMIC_PREFIX, Drift, LocalEngine, StackRecord
from tests.support.prefect_server import BUSY_STATUSES, PrefectServer
from tests.support.stack_checks import (
    PrefectApi,
    deployments_in_pool,
    deployments_named,
    schedules_of,
    stack_containers,
    trigger_with,
    wait_for_health,
)

pytestmark = [pytest.mark.docker, pytest.mark.journey(over="rel")]

DEPLOYMENT = f"{DYNAMIC_PREFIX}prefect:Deployment"
WORK_POOL = f"{DYNAMIC_PREFIX}prefect:WorkPool"

STACK, POOL, DEPLOYMENT_NAME = "rel", "rel-process", "rel-daily"
UP_STACK, UP_POOL, UP_DEPLOYMENT_NAME = "relup", "rel-up", "relup-daily"
SCHEDULE_SLUG = "daily-0900"

# Longer than a fetch that fails after all its retries (4 attempts, waits 2+4+8 s = ~14 s) so that a Bored API
# outage still fails with the API's own message, shorter than a stalled fetch (10 s read timeout per attempt).
TEST_FLOW_TIMEOUT_SECONDS = 25
# Outputs that change with nobody editing anything: the worker's heartbeat and the scheduler's next run.
VOLATILE_OUTPUTS = {"status", "next_run_time"}
NO_SMOKE_RUN = {"suggest-activity:smokeRun": "false"}  # see the module docstring
# A small retry budget for the provider host (client.py reads these), so that giving up takes seconds.
TIGHT_BUDGET = {
    "PULUMI_PREFECT_TIMEOUT_SECONDS": "2",
    "PULUMI_PREFECT_MAX_ATTEMPTS": "3",
    "PULUMI_PREFECT_RETRY_BUDGET_SECONDS": "8",
}


# --- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(prefect_server: PrefectServer) -> PrefectApi:
    return PrefectApi(prefect_server.api_url)


@pytest.fixture(scope="module")
def proxy(prefect_server: PrefectServer) -> Iterator[FaultProxy]:
    """Between the providers and the server: faults are injected here, and every request is recorded."""
    with FaultProxy(prefect_server.api_url) as fault_proxy:
        yield fault_proxy


@pytest.fixture(autouse=True)
def clean_proxy(proxy: FaultProxy) -> None:
    proxy.clear_faults()
    proxy.clear_requests()


@pytest.fixture(scope="module")
def pristine_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An unmodified copy of the project for the `relup` stacks."""
    return copy_project(tmp_path_factory.mktemp("relup") / "suggest-activity")


@pytest.fixture(scope="module")
def rel(
    tmp_path_factory: pytest.TempPathFactory,
    docker_client: docker.DockerClient,
    prefect_server: PrefectServer,
    proxy: FaultProxy,
    bored_api: FakeBoredApi,
    api: PrefectApi,
) -> Iterator[StackState]:
    """The shared stack, up once; destroyed at the end whatever the tests left."""
    project_dir = copy_project(tmp_path_factory.mktemp("rel") / "suggest-activity")
    shorten_flow_timeout(project_dir, TEST_FLOW_TIMEOUT_SECONDS)
    config = {
        **stack_config(prefect_server, proxy, bored_api, POOL),
        "suggest-activity:deploymentName": DEPLOYMENT_NAME,
        **NO_SMOKE_RUN,
    }
    engine = LocalEngine(
        project_dir=project_dir, stack=STACK, config=config, secret_keys=[], docker_client=docker_client
    )
    state = StackState(engine, api, project_dir)
    try:
        try:
            state.record = engine.up()
        except Exception as error:
            state.record = error.record  # type: ignore[attr-defined]  # what exists, for the destroy below
            raise
        api.wait_for_pool_status(POOL, "READY")
        yield state
    finally:
        engine.destroy(state.record)


@dataclass
class UpStack:
    """A `relup` stack and what exists of it: every `up` (also a failed one) updates `record`, which the
    fixture destroys at the end."""

    engine: LocalEngine
    record: StackRecord = field(default_factory=StackRecord)

    def up(self, previous: StackRecord | None = None) -> StackRecord:
        try:
            self.record = self.engine.up(previous)
        except Exception as error:
            self.record = error.record  # type: ignore[attr-defined]
            raise
        return self.record

    def failing_up(self, previous: StackRecord | None = None) -> tuple[str, StackRecord]:
        """An `up` that must fail: its message and the partial record."""
        with pytest.raises(Exception) as error:
            self.up(previous)
        return str(error.value), self.record


@pytest.fixture
def relup(
    pristine_project: Path,
    docker_client: docker.DockerClient,
    prefect_server: PrefectServer,
    proxy: FaultProxy,
    bored_api: FakeBoredApi,
    api: PrefectApi,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[UpStack]:
    """A fresh `relup` stack for one test, its providers on a tight retry budget; destroyed afterwards, then
    checked to have left nothing behind."""
    for name, value in TIGHT_BUDGET.items():
        monkeypatch.setenv(name, value)  # the provider host process inherits this process's environment
    config = {
        **stack_config(prefect_server, proxy, bored_api, UP_POOL),
        "suggest-activity:deploymentName": UP_DEPLOYMENT_NAME,
        **NO_SMOKE_RUN,
    }
    stack = UpStack(
        LocalEngine(
            project_dir=pristine_project,
            stack=UP_STACK,
            config=config,
            secret_keys=[],
            docker_client=docker_client,
        )
    )
    yield stack
    proxy.clear_faults()
    stack.engine.destroy(stack.record)
    assert stack_containers(docker_client, UP_STACK) == []
    assert api.get(f"/work_pools/{UP_POOL}").status_code == 404
    assert deployments_named(api, UP_DEPLOYMENT_NAME) == []


# --- helpers ----------------------------------------------------------------------------------------------


def shorten_flow_timeout(project_dir: Path, seconds: int) -> None:
    flow_file = project_dir / "flows" / "suggest_activity.py"
    source = flow_file.read_text()
    production = f"FLOW_TIMEOUT_SECONDS: Final = {FLOW_TIMEOUT_SECONDS}"
    assert production in source
    flow_file.write_text(source.replace(production, f"FLOW_TIMEOUT_SECONDS: Final = {seconds}"))


def only(record: StackRecord, typ: str) -> dict[str, Any]:
    (resource,) = record.of_type(typ)
    return resource.outputs


def assert_converged(api: PrefectApi, docker_client: docker.DockerClient, record: StackRecord) -> None:
    """Exactly one of everything the stack declares, each the recorded one, and nothing else of its own."""
    pool = api.get(f"/work_pools/{UP_POOL}").raise_for_status().json()
    assert pool["id"] == only(record, WORK_POOL)["pool_id"]
    deployment_id = only(record, DEPLOYMENT)["deployment_id"]
    assert [d["id"] for d in deployments_named(api, UP_DEPLOYMENT_NAME)] == [deployment_id]
    assert [d["id"] for d in deployments_in_pool(api, UP_POOL)] == [deployment_id]
    assert [s["slug"] for s in schedules_of(api, deployment_id)] == [SCHEDULE_SLUG]
    containers = stack_containers(docker_client, UP_STACK)
    assert [c.id for c in containers] == [r.id for r in record.of_type(CONTAINER)]
    assert len(containers) == 1


def real(drifts: list[Drift]) -> list[Drift]:
    """The drift someone caused: gone resources, or changed outputs other than the ever-moving ones."""
    return [d for d in drifts if d.gone or set(d.changed) - VOLATILE_OUTPUTS]


def ui_of(state: StackState) -> PrefectApi:
    """Someone working in the Prefect UI: straight to the server, not through Pulumi or its proxy."""
    assert isinstance(state.api, PrefectApi)
    return state.api


def drift_of(drifts: list[Drift], name: str) -> Drift:
    (drift,) = [d for d in drifts if d.name == name]
    return drift


def deployment_snapshot(api: PrefectApi, deployment_id: str) -> dict[str, Any]:
    """What a run must never change: the deployment's own fields (with its `updated` stamp) and schedules."""
    deployment = api.get(f"/deployments/{deployment_id}").raise_for_status().json()
    keep = ("updated", "paused", "parameters", "version", "work_pool_name", "entrypoint", "tags")
    return {
        **{key: deployment[key] for key in keep},
        "schedules": [(s["id"], s["updated"], s["active"], s["schedule"]) for s in deployment["schedules"]],
    }


def suggestions_of(api: PrefectApi, run_id: str) -> list[dict[str, Any]]:
    """The run's user-visible artifacts. Prefect may also keep a result record of a failed run (no key, no
    type: a pointer to its pickled exception), which is not an artifact anyone sees in the UI."""
    return [a for a in api.artifacts_of(run_id) if a["key"] is not None or a["type"] is not None]


def wait_all(api: PrefectApi, run_ids: list[str]) -> list[dict[str, Any]]:
    """The runs execute side by side on the worker; wait for each to end."""
    return [api.wait_for_run(run_id) for run_id in run_ids]


class ResponseLosingProxy:
    """Forwards every request to the upstream server; for the first request matching (method, path prefix) it
    lets the server APPLY the request, then resets the connection instead of answering: a lost response."""

    def __init__(self, upstream_url: str, method: str, path_prefix: str) -> None:
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.path = parts.path
        self.target = (method, path_prefix)
        self.lost: list[tuple[str, str, int]] = []  # (method, path, the status the client never saw)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                upstream.close()
                if not proxy.lost and (self.command, self.path[: len(proxy.target[1])]) == proxy.target:
                    proxy.lost.append((self.command, self.path, response.status))
                    # SO_LINGER 0: close() sends RST, the client sees the connection reset, no answer.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"

    def __enter__(self) -> ResponseLosingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- Prefect API slow or failing during `up` (stacks of their own) -------------------------------------


def test_up_rides_out_503_and_429_bursts_resets_and_a_stall_then_a_rerun_changes_nothing(
    relup: UpStack, proxy: FaultProxy, api: PrefectApi, docker_client: docker.DockerClient
) -> None:
    # A fault on each kind of call `up` makes; every one of them is retryable within the budget.
    proxy.inject(ApiFault.UNAVAILABLE, count=2, methods=["POST"], path_contains="/work_pools/")
    proxy.inject(ApiFault.RATE_LIMITED, count=2, retry_after="1", methods=["POST"], path_contains="/flows/")
    proxy.inject(ApiFault.RESET, methods=["GET"], path_contains="/deployments/name/")
    proxy.inject(ApiFault.UNAVAILABLE, methods=["GET"], path_contains=f"/work_pools/{UP_POOL}")
    proxy.inject(ApiFault.STALL, methods=["POST"], path_contains="/api/deployments/", stall_seconds=10)
    proxy.inject(ApiFault.GATEWAY_TIMEOUT, methods=["POST"], path_contains="/flow_runs/filter")

    record = relup.up()

    assert set(record.actions.values()) == {"create"}
    served = [(r.method, r.fault) for r in proxy.faults_served()]
    assert len(served) == 8, served  # every injected fault was met, and ridden out
    assert_converged(api, docker_client, record)
    deployment_posts = [r for r in proxy.requests if (r.method, r.path) == ("POST", "/api/deployments/")]
    # The stalled upsert was sent again (more than once if the busy server answers slower than the tight 2 s
    # timeout; an upsert makes that harmless, and assert_converged shows there is one deployment).
    faults = [r.fault for r in deployment_posts]
    assert faults[0] is ApiFault.STALL and len(faults) >= 2 and set(faults[1:]) == {None}, faults

    proxy.clear_requests()
    rerun = relup.up(record)
    assert set(rerun.actions.values()) == {"same"}, rerun.actions
    assert proxy.writes() == []
    assert_converged(api, docker_client, rerun)


def test_up_against_a_failing_api_stops_with_a_clear_error_and_a_rerun_converges(
    relup: UpStack, proxy: FaultProxy, api: PrefectApi, docker_client: docker.DockerClient
) -> None:
    # The API answers 503 to everything for longer than the budget: a clear error, within the budget.
    proxy.inject(ApiFault.UNAVAILABLE, count=None)
    started = time.monotonic()
    message, record = relup.failing_up()
    assert time.monotonic() - started < 60  # the budget is 8 s per call; the rest is the image build
    assert "Prefect API POST /work_pools/ failed: 503 Service Unavailable" in message
    assert "Gave up after 3 attempt(s)" in message
    assert f"Is the Prefect API at {proxy.api_url} reachable?" in message
    assert [r.name for r in record.resources] == ["flow-image"]  # nothing else was started
    assert api.get(f"/work_pools/{UP_POOL}").status_code == 404

    # A stalled answer to the pool's create (not idempotent: never blindly repeated) stops with a warning.
    proxy.clear_faults()
    proxy.clear_requests()
    proxy.inject(ApiFault.STALL, methods=["POST"], path_contains="/work_pools/", stall_seconds=10)
    message, record = relup.failing_up(record)
    assert "Prefect API POST /work_pools/ failed: ReadTimeout" in message
    assert "The request may have been applied" in message
    # Sent once and never again after the stall; only a busy server's refusal before it (503/429: nothing was
    # done, see BUSY_STATUSES) may have been resent.
    pool_posts = [r for r in proxy.requests if r.method == "POST" and "/work_pools/" in r.path]
    assert pool_posts[-1].fault is ApiFault.STALL, pool_posts
    assert all(r.fault is None and r.status in BUSY_STATUSES for r in pool_posts[:-1]), pool_posts

    # The API is back: the rerun creates everything once.
    proxy.clear_faults()
    converged = relup.up(record)
    assert converged.actions["work-pool"] == "create" and converged.actions["deployment"] == "create"
    assert_converged(api, docker_client, converged)


def test_failure_halfway_is_recorded_and_the_next_up_finishes_the_job(
    relup: UpStack, proxy: FaultProxy, api: PrefectApi, docker_client: docker.DockerClient
) -> None:
    # The deployment's create fails for longer than its budget, after the pool (and the worker) exist.
    proxy.inject(ApiFault.UNAVAILABLE, count=None, methods=["POST"], path_contains="/api/deployments/")
    message, partial = relup.failing_up()
    assert "Prefect API POST /deployments/ failed: 503 Service Unavailable" in message
    assert "Gave up after" in message

    # What exists is recorded: the pool, and the worker if it had started; no deployment anywhere.
    recorded_pool = only(partial, WORK_POOL)
    assert api.get(f"/work_pools/{UP_POOL}").json()["id"] == recorded_pool["pool_id"]
    assert partial.of_type(DEPLOYMENT) == []
    assert deployments_named(api, UP_DEPLOYMENT_NAME) == []
    recorded_containers = [r.id for r in partial.of_type(CONTAINER)]
    assert [c.id for c in stack_containers(docker_client, UP_STACK)] == recorded_containers

    proxy.clear_faults()
    finished = relup.up(partial)
    assert finished.actions["work-pool"] == "same"
    assert finished.actions["deployment"] == "create"
    assert only(finished, WORK_POOL)["pool_id"] == recorded_pool["pool_id"]
    assert_converged(api, docker_client, finished)


def test_a_deployment_create_whose_follow_up_read_fails_is_still_recorded(
    relup: UpStack, proxy: FaultProxy, api: PrefectApi, docker_client: docker.DockerClient
) -> None:
    # POST /deployments/ succeeds; the scheduled-runs query behind next_run_time keeps failing. The create
    # must not fail after its write (the deployment would exist unrecorded): next_run_time falls back to
    # the cron's next fire time.
    proxy.inject(ApiFault.UNAVAILABLE, count=None, methods=["POST"], path_contains="/flow_runs/filter")
    record = relup.up()
    assert proxy.faults_served()  # the query really failed
    deployment = only(record, DEPLOYMENT)
    next_run = datetime.fromisoformat(deployment["next_run_time"].replace("Z", "+00:00"))
    assert (next_run.astimezone(ZoneInfo(relup.engine.config[TIMEZONE_KEY])).hour, next_run.minute) == (9, 0)
    assert_converged(api, docker_client, record)

    proxy.clear_faults()
    again = relup.up(record)
    assert set(again.actions.values()) == {"same"}, again.actions
    assert_converged(api, docker_client, again)


def test_a_pool_whose_create_response_was_lost_is_taken_over_in_the_same_up(
    relup: UpStack, prefect_server: PrefectServer, api: PrefectApi, docker_client: docker.DockerClient
) -> None:
    config = relup.engine.config
    try:
        with ResponseLosingProxy(prefect_server.api_url, "POST", "/api/work_pools/") as losing:
            relup.engine.config = {**config, "prefect:apiUrl": losing.api_url}
            record = relup.up()
            assert losing.lost == [
                ("POST", "/api/work_pools/", 201)
            ]  # the server created it, the answer was lost
            assert only(record, WORK_POOL)["name"] == UP_POOL  # found by name and recorded, not orphaned
    finally:
        relup.engine.config = config  # the fixture destroys through the usual proxy
    assert_converged(api, docker_client, relup.record)


def test_a_failed_up_keeps_what_it_did_not_reach_and_a_failed_replacement_keeps_the_old(
    relup: UpStack, proxy: FaultProxy, api: PrefectApi, docker_client: docker.DockerClient
) -> None:
    record = relup.up()
    config = relup.engine.config
    kept = {(r.name, r.id) for r in record.resources}

    # The pool's update fails for longer than its budget: nothing after it starts, and the state keeps the
    # pool, the worker and the deployment as they were (a destroy still knows them all).
    relup.engine.config = {**config, "suggest-activity:poolConcurrencyLimit": "5"}
    proxy.inject(ApiFault.UNAVAILABLE, count=None)
    message, partial = relup.failing_up(record)
    assert "Prefect API PATCH /work_pools/rel-up failed" in message
    assert {(r.name, r.id) for r in partial.resources} == kept
    proxy.clear_faults()

    # A new deployment name replaces the deployment, new one first (the provider asks for create-before-
    # delete). Its create fails: the old deployment stays, in the state and on the server.
    renamed = "relup-renamed"
    relup.engine.config = {**config, "suggest-activity:deploymentName": renamed}
    proxy.inject(ApiFault.UNAVAILABLE, count=None, methods=["POST"], path_contains="/api/deployments/")
    message, partial = relup.failing_up(partial)
    assert "Prefect API POST /deployments/ failed" in message
    old_id = only(record, DEPLOYMENT)["deployment_id"]
    assert only(partial, DEPLOYMENT)["deployment_id"] == old_id
    assert api.get(f"/deployments/{old_id}").status_code == 200
    assert deployments_named(api, renamed) == []
    proxy.clear_faults()
    proxy.clear_requests()

    final = relup.up(partial)
    assert final.actions["deployment"] == "replace"
    (new,) = deployments_named(api, renamed)
    assert only(final, DEPLOYMENT)["deployment_id"] == new["id"]
    assert api.get(f"/deployments/{old_id}").status_code == 404
    # Created before the old one was deleted.
    writes = [(r.method, r.path) for r in proxy.applied_writes() if r.method in ("POST", "DELETE")]
    created = writes.index(("POST", "/api/deployments/"))
    assert writes.index(("DELETE", f"/api/deployments/{old_id}")) > created, writes
    assert {(r.name, r.id) for r in final.resources if r.name != "deployment"} == {
        (name, id_) for name, id_ in kept if name != "deployment"
    }


def test_a_worker_whose_wait_timed_out_is_replaced_and_waited_for_by_the_next_up(
    relup: UpStack, api: PrefectApi, docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The injected fault is a worker that stalls while it starts (an overloaded host: the container is
    # paused as soon as it runs); a short wait keeps the test short, the timeout's value is not the point.
    monkeypatch.setattr(infra.worker, "WAIT_TIMEOUT_SECONDS", 30)
    stalled: list[Any] = []
    done = threading.Event()

    def stall_the_worker() -> None:
        while not done.wait(0.2):
            for container in stack_containers(docker_client, UP_STACK):
                if container.status == "running":
                    container.pause()
                    stalled.append(container)
                    return

    staller = threading.Thread(target=stall_the_worker, daemon=True)
    staller.start()
    try:
        message, partial = relup.failing_up()
    finally:
        done.set()
        staller.join()
    assert "container failed to be in healthy state" in message
    (timed_out,) = stalled
    # pulumi-docker's create returned an error with the container id: the engine keeps it, with init errors.
    (recorded,) = partial.of_type(CONTAINER)
    assert recorded.id == timed_out.id and recorded.init_errors
    timed_out.unpause()  # the host recovers; the container would now pass its healthcheck

    # The next `up` does not take the unchecked container as it is: it replaces it and waits again.
    record = relup.up(partial)
    assert record.actions["worker-0"] == "replace"
    (worker,) = stack_containers(docker_client, UP_STACK)
    assert worker.id != timed_out.id
    assert worker.attrs["State"]["Health"]["Status"] == "healthy"
    assert_converged(api, docker_client, record)


# --- the worker container -----------------------------------------------------------------------------


def test_a_crashed_worker_is_restarted_by_its_restart_policy_and_the_next_run_completes(
    rel: StackState, bored_api: FakeBoredApi, docker_client: docker.DockerClient
) -> None:
    (worker,) = stack_containers(docker_client, STACK)
    restarts = worker.attrs["RestartCount"]
    # What an OOM kill or a crash looks like to Docker: the main process dies of SIGKILL, not `docker stop`.
    pid = worker.attrs["State"]["Pid"]
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError) as exc:
        pytest.fail(
            f"cannot signal the worker's process {pid} (needs root and the daemon's pid namespace): {exc}"
        )

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        worker.reload()
        if worker.attrs["RestartCount"] > restarts and worker.attrs["State"]["Running"]:
            break
        time.sleep(0.5)
    assert worker.attrs["RestartCount"] == restarts + 1, worker.attrs["State"]
    wait_for_health(worker)
    (same,) = stack_containers(docker_client, STACK)
    assert same.id == worker.id  # restarted in place by Docker: no `up` involved
    run_and_check(rel, bored_api, docker_client)


def test_a_docker_killed_worker_stays_down_until_up_refresh_recreates_it(
    rel: StackState, bored_api: FakeBoredApi, docker_client: docker.DockerClient
) -> None:
    (worker,) = stack_containers(docker_client, STACK)
    restarts = worker.attrs["RestartCount"]
    worker.kill()
    # Docker treats `docker kill` like `docker stop`: a deliberate stop, which no restart policy undoes.
    time.sleep(5)
    worker.reload()
    assert (worker.status, worker.attrs["RestartCount"]) == ("exited", restarts)

    # A plain `pulumi up` trusts its state: it reads nothing, so it does not notice.
    plain = rel.engine.up(rel.record)
    assert set(plain.actions.values()) == {"same"}, plain.actions
    worker.reload()
    assert worker.status == "exited"
    rel.record = plain

    # `pulumi up --refresh`: the container read (terraform-provider-docker v4.5.0) keeps the stopped
    # container with mustRun false; the worker's replace_on_changes makes that a new, waited-for container.
    refreshed, drifts = rel.engine.refresh(rel.record)
    (drift,) = real(drifts)
    assert (drift.name, drift.gone, drift.changed["mustRun"]) == ("worker-0", False, (True, False))
    rel.record = rel.engine.up(refreshed)
    assert rel.record.actions["worker-0"] == "replace"
    assert {rel.record.actions[name] for name in ("flow-image", "work-pool", "deployment")} == {"same"}
    (new_worker,) = stack_containers(docker_client, STACK)
    assert new_worker.id != worker.id
    new_worker.reload()
    assert new_worker.attrs["State"]["Health"]["Status"] == "healthy"
    run_and_check(rel, bored_api, docker_client)


# --- the Bored API at run time, and a hung run ------------------------------------------------------------


def test_bored_api_faults_fail_runs_clearly_without_touching_the_deployment_and_the_next_runs_succeed(
    rel: StackState, bored_api: FakeBoredApi, docker_client: docker.DockerClient
) -> None:
    deployment_id = rel.one(DEPLOYMENT)["deployment_id"]
    before = deployment_snapshot(rel.api, deployment_id)
    scheduled_before = {r["id"] for r in rel.api.wait_for_scheduled_runs(deployment_id)}
    (worker,) = stack_containers(docker_client, STACK)
    restarts = worker.attrs["RestartCount"]

    with (
        FakeBoredApi(host="0.0.0.0") as down,
        FakeBoredApi(host="0.0.0.0") as limited,
        FakeBoredApi(host="0.0.0.0") as garbage,
    ):
        down.add_faults(*[Fault.http(503)] * 4)  # every attempt of the run's fetch
        limited.add_faults(Fault.rate_limited(retry_after="3600"))  # longer than the flow waits
        garbage.add_faults(Fault.json_body({"message": "<h1>maintenance</h1>"}))  # JSON, but no activity
        with FakeBoredApi() as gone:
            unreachable = gone.url_for_host("host.docker.internal")  # nothing listens there any more
        faulty = {"down": down, "limited": limited, "garbage": garbage}
        urls = {name: fake.url_for_host("host.docker.internal") for name, fake in faulty.items()}
        urls["unreachable"] = unreachable
        run_ids = {name: trigger_with(rel.api, deployment_id, {"api_url": url}) for name, url in urls.items()}
        runs = dict(zip(run_ids, wait_all(rel.api, list(run_ids.values())), strict=True))

        expected = {
            "down": [f"{urls['down']}/random", "HTTP 503", "gave up after 4 attempt(s)"],
            "unreachable": [f"{unreachable}/random", "ConnectError", "gave up after 4 attempt(s)"],
            "limited": ["HTTP 429", "Retry-After: 3600", "run again later"],
            "garbage": ["no 'activity' field", "maintenance"],
        }
        for name, fragments in expected.items():
            run = runs[name]
            assert run["state_type"] == "FAILED", (name, run["state"])
            message = run["state"]["message"]
            assert "BoredApiError" in message, (name, message)
            for fragment in fragments:
                assert fragment in message, (name, fragment, message)
            assert suggestions_of(rel.api, run_ids[name]) == [], name

        # Nothing about the deployment, its schedule, its upcoming runs or the worker changed.
        assert deployment_snapshot(rel.api, deployment_id) == before
        scheduled_after = {r["id"] for r in rel.api.scheduled_runs(deployment_id)}
        assert scheduled_before <= scheduled_after
        worker.reload()
        assert (worker.status, worker.attrs["RestartCount"]) == ("running", restarts)

        # The APIs are back (their scripted faults are used up): the next runs succeed, each with an artifact.
        retried = {name: trigger_with(rel.api, deployment_id, {"api_url": urls[name]}) for name in faulty}
        for name, run in zip(retried, wait_all(rel.api, list(retried.values())), strict=True):
            assert run["state_type"] == "COMPLETED", (name, run["state"])
            (artifact,) = rel.api.artifacts_of(retried[name])
            assert artifact["key"] == ARTIFACT_KEY
            assert artifact["data"].splitlines()[0] == f"# {faulty[name].served()[-1]['activity']}"
    run_and_check(rel, bored_api, docker_client)  # and the daily run, with the deployment's own parameters


def test_a_hung_run_is_ended_by_the_flow_timeout_and_the_next_run_completes(
    rel: StackState, bored_api: FakeBoredApi, docker_client: docker.DockerClient
) -> None:
    deployment_id = rel.one(DEPLOYMENT)["deployment_id"]
    with FakeBoredApi(host="0.0.0.0") as hanging:
        hanging.add_faults(*[Fault.stall(120)] * 4)  # accepts every request and never answers in time
        run_id = trigger_with(
            rel.api, deployment_id, {"api_url": hanging.url_for_host("host.docker.internal")}
        )
        run = rel.api.wait_for_run(run_id, timeout=120)

    assert run["state_type"] == "FAILED" and run["state_name"] == "TimedOut", run["state"]
    assert f"exceeded timeout of {TEST_FLOW_TIMEOUT_SECONDS}" in run["state"]["message"]
    assert TEST_FLOW_TIMEOUT_SECONDS <= run["total_run_time"] < TEST_FLOW_TIMEOUT_SECONDS + 10
    assert suggestions_of(rel.api, run_id) == []
    run_and_check(rel, bored_api, docker_client)  # the worker was not blocked by the hung run


# --- objects edited or deleted behind Pulumi's back ------------------------------------------------------


def test_ui_edits_are_reported_by_refresh_and_undone_by_the_next_up(
    rel: StackState, docker_client: docker.DockerClient
) -> None:
    deployment_id = rel.one(DEPLOYMENT)["deployment_id"]
    declared_pool, declared_deployment = rel.one(WORK_POOL), rel.one(DEPLOYMENT)
    (schedule,) = schedules_of(rel.api, deployment_id)
    ui = ui_of(rel)
    # Someone edits things in the UI: a pool description and limit, the run parameters, and the schedule off.
    ui.patch(f"/work_pools/{POOL}", {"description": "edited in the UI", "concurrency_limit": 3})
    ui.patch(f"/deployments/{deployment_id}", {"parameters": {"api_url": "https://elsewhere.example"}})
    ui.patch(f"/deployments/{deployment_id}/schedules/{schedule['id']}", {"active": False})

    # `pulumi up` alone trusts its state: it sees nothing to do (that is why the docs say `up --refresh`).
    assert set(rel.engine.up(rel.record).actions.values()) == {"same"}

    refreshed, drifts = rel.engine.refresh(rel.record)
    pool_drift = drift_of(drifts, "work-pool").changed
    assert set(pool_drift) - VOLATILE_OUTPUTS == {"description", "concurrency_limit"}
    assert pool_drift["description"] == (declared_pool["description"], "edited in the UI")
    assert pool_drift["concurrency_limit"] == (None, 3)
    deployment_drift = drift_of(drifts, "deployment").changed
    assert set(deployment_drift) - VOLATILE_OUTPUTS == {"parameters", "schedules"}
    assert deployment_drift["parameters"][1] == {"api_url": "https://elsewhere.example"}
    (old_schedule,), (new_schedule,) = deployment_drift["schedules"]
    assert (old_schedule["active"], new_schedule["active"]) == (True, False)
    assert {d.name for d in drifts} == {"work-pool", "deployment"}

    rel.record = rel.engine.up(refreshed)
    assert rel.record.actions["work-pool"] == "update" and rel.record.actions["deployment"] == "update"
    pool = rel.api.get(f"/work_pools/{POOL}").json()
    assert (pool["description"], pool["concurrency_limit"]) == (declared_pool["description"], None)
    deployment = rel.api.get(f"/deployments/{deployment_id}").json()
    assert deployment["parameters"] == declared_deployment["parameters"]
    (restored,) = deployment["schedules"]
    assert (restored["id"], restored["active"]) == (
        schedule["id"],
        True,
    )  # the same schedule, switched back on
    rel.api.wait_for_scheduled_runs(deployment_id)  # and the scheduler plans the daily runs again

    # Refreshing again finds nothing left to report (apart from the ever-moving outputs).
    assert real(rel.engine.refresh(rel.record)[1]) == []


def test_ui_deletions_are_reported_by_refresh_and_recreated_by_the_next_up(
    rel: StackState, bored_api: FakeBoredApi, docker_client: docker.DockerClient
) -> None:
    old_deployment_id = rel.one(DEPLOYMENT)["deployment_id"]
    old_pool_id = rel.one(WORK_POOL)["pool_id"]
    ui_of(rel).delete(f"/deployments/{old_deployment_id}")
    ui_of(rel).delete(f"/work_pools/{POOL}")

    refreshed, drifts = rel.engine.refresh(rel.record)
    gone = {d.name for d in drifts if d.gone}
    assert gone == {"work-pool", "deployment"}
    # Exactly the two deleted ones are dropped from the state; everything else is kept.
    assert {r.name for r in refreshed.resources} == {r.name for r in rel.record.resources} - gone

    rel.record = rel.engine.up(refreshed)
    assert rel.record.actions["work-pool"] == "create" and rel.record.actions["deployment"] == "create"
    assert rel.one(WORK_POOL)["pool_id"] != old_pool_id
    new_deployment_id = rel.one(DEPLOYMENT)["deployment_id"]
    assert [d["id"] for d in deployments_named(rel.api, DEPLOYMENT_NAME)] == [new_deployment_id]
    assert [s["slug"] for s in schedules_of(rel.api, new_deployment_id)] == [SCHEDULE_SLUG]
    (worker,) = stack_containers(docker_client, STACK)
    wait_for_health(worker)
    rel.api.wait_for_pool_status(POOL, "READY")
    run_and_check(rel, bored_api, docker_client)


# --- the Prefect server restarts under the worker (late: other modules share the server) -----------------


def test_the_worker_reconnects_after_a_server_restart_and_the_next_run_completes(
    rel: StackState,
    bored_api: FakeBoredApi,
    docker_client: docker.DockerClient,
    prefect_server: PrefectServer,
) -> None:
    (worker,) = stack_containers(docker_client, STACK)
    restarts = worker.attrs["RestartCount"]
    prefect_server.restart()  # same port, same database; the worker keeps polling through the outage

    run_and_check(rel, bored_api, docker_client)
    worker.reload()
    assert worker.status == "running"
    # Reconnected on its own: Docker did not have to restart it, Pulumi did not replace it.
    assert (worker.id, worker.attrs["RestartCount"]) == (
        stack_containers(docker_client, STACK)[0].id,
        restarts,
    )
    wait_for_health(worker)


def test_destroy_succeeds_after_objects_were_deleted_or_edited_behind_its_back(
    rel: StackState, docker_client: docker.DockerClient
) -> None:
    deployment_id = rel.one(DEPLOYMENT)["deployment_id"]
    ui_of(rel).delete(f"/deployments/{deployment_id}")
    ui_of(rel).patch(f"/work_pools/{POOL}", {"description": "edited in the UI"})

    rel.engine.destroy(rel.record)

    assert stack_containers(docker_client, STACK) == []
    assert rel.api.get(f"/work_pools/{POOL}").status_code == 404
    assert deployments_named(rel.api, DEPLOYMENT_NAME) == []
    assert rel.api.scheduled_runs(deployment_id) == []
