"""Replacing, destroying or losing a worker does not strand its flow runs in RUNNING (issue 10, item 4).

pulumi-docker deletes a container (on `destroy`, and first on a replace: `delete_before_replace`) with
ContainerStop, `destroy_grace_seconds` as its timeout, then ContainerRemove. Without a grace that is SIGKILL at
once; with one, `prefect worker start` still exits within two seconds of SIGTERM and takes its runs down
unreported. worker/supervisor.py, the container's PID 1, has the runs report Crashed first.

* The ordering itself, with stand-in processes (no Docker): runs are signalled, and finish, before the worker.
* For real: the program applied by the local engine, a run hanging on the fake Bored API, then the worker stopped
  exactly as pulumi-docker stops it (`docker stop -t <declared grace>`, then remove), or its worker process
  SIGKILLed as the OOM killer would; the run's final state and message are read back from the Prefect server.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.support.fake_bored_api import FakeBoredApi, Fault
from tests.support.journey_stack import StackState, copy_project, quiet_timezone
from tests.support.local_engine import CONTAINER, DYNAMIC_PREFIX, LocalEngine
from tests.support.prefect_server import PrefectServer
from tests.support.program_harness import REPO_ROOT
from tests.support.stack_checks import PrefectApi, stack_containers, wait_for_health

pytestmark = pytest.mark.journey(over="stopping_stack")

STACK, POOL = "whstop", "wh-stop"
DEPLOYMENT = f"{DYNAMIC_PREFIX}prefect:Deployment"
# What Prefect's flow engine reports for a run ended by SIGTERM (prefect/states.py, exception_to_crashed_state:
# TerminationSignal), and by a SystemExit, which is what a run whose worker died first may raise instead.
SIGTERM_MESSAGE = "Execution was aborted by a termination signal."
EXIT_MESSAGE = "Execution was aborted by Python system exit call."
GUARD_SECONDS = 90

# --- the ordering, with stand-ins for the worker and a flow run --------------------------------------------

# A flow run in its own session, like Prefect's (isolate_process_group): on SIGTERM it "reports" and exits.
STAND_IN_RUN = """
import signal, sys, time
def note(text):
    with open(sys.argv[1], "a") as log:
        log.write(text + "\\n")
def on_term(*_):
    note("run: SIGTERM, reports Crashed")
    time.sleep(1)
    note("run: exited")
    sys.exit(1)
signal.signal(signal.SIGTERM, on_term)
note("run: started")
while True:
    time.sleep(0.1)
"""
# A worker that, like `prefect worker start`, takes its runs down with it on SIGTERM, unreported.
STAND_IN_WORKER = """
import os, signal, subprocess, sys, time
def note(text):
    with open(sys.argv[1], "a") as log:
        log.write(text + "\\n")
run = subprocess.Popen([sys.executable, sys.argv[2], sys.argv[1]], start_new_session=True)
def on_term(*_):
    note("worker: SIGTERM")
    if run.poll() is None:
        run.kill()
        note("worker: killed its run")
    run.wait()
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
while True:
    time.sleep(0.1)
"""


def test_on_sigterm_the_supervisor_ends_the_runs_before_it_stops_the_worker(tmp_path: Path) -> None:
    log, run_script, worker_script = tmp_path / "log", tmp_path / "run.py", tmp_path / "worker.py"
    run_script.write_text(textwrap.dedent(STAND_IN_RUN))
    worker_script.write_text(textwrap.dedent(STAND_IN_WORKER))
    supervisor = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "worker.supervisor",
            sys.executable,
            str(worker_script),
            str(log),
            str(run_script),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while "run: started" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
            time.sleep(0.1)
        supervisor.send_signal(signal.SIGTERM)
        output, _ = supervisor.communicate(timeout=30)
    finally:
        supervisor.kill()
    assert log.read_text().splitlines() == [
        "run: started",
        "run: SIGTERM, reports Crashed",
        "run: exited",
        "worker: SIGTERM",  # only now, and it finds no run left to kill
    ]
    assert supervisor.returncode == 0  # the worker's own exit status
    assert "SIGTERM: ending the flow runs in flight" in output


# --- for real: the program's worker, a real run, the Prefect server ----------------------------------------


@pytest.fixture(scope="module")
def stopping_stack(
    tmp_path_factory: pytest.TempPathFactory,
    docker_client: docker.DockerClient,
    prefect_server: PrefectServer,
    bored_api: FakeBoredApi,
) -> Iterator[StackState]:
    project_dir = copy_project(tmp_path_factory.mktemp("worker-stop") / "suggest-activity")
    config = {
        "prefect:apiUrl": prefect_server.api_url,
        "prefect:workerApiUrl": f"http://host.docker.internal:{prefect_server.port}/api",
        "image:push": "false",
        "suggest-activity:poolName": POOL,
        "suggest-activity:timezone": quiet_timezone(),
        "suggest-activity:workerPollSeconds": "2",
        # These tests start the run they need (one that hangs); a smoke run in `up` would only cost time.
        "suggest-activity:smokeRun": "false",
        "suggest-activity:flowParameters": json.dumps(
            {"api_url": bored_api.url_for_host("host.docker.internal")}
        ),
    }
    engine = LocalEngine(
        project_dir=project_dir, stack=STACK, config=config, secret_keys=[], docker_client=docker_client
    )
    state = StackState(engine, PrefectApi(prefect_server.api_url), project_dir)
    try:
        state.record = engine.up()
        yield state
    finally:
        engine.destroy(state.record)
        for container in stack_containers(docker_client, STACK):
            container.remove(force=True)


def start_a_hanging_run(stack: StackState, bored_api: FakeBoredApi) -> str:
    """A run that is inside the flow, waiting on a Bored API that does not answer, when this returns."""
    asked = len(bored_api.requests_to("/random"))
    bored_api.add_faults(*[Fault.stall(120)] * 4)  # every attempt of this run hangs
    run_id = stack.api.trigger(stack.one(DEPLOYMENT)["deployment_id"])
    deadline = time.monotonic() + GUARD_SECONDS
    while len(bored_api.requests_to("/random")) == asked and time.monotonic() < deadline:
        time.sleep(0.5)
    run = stack.api.get(f"/flow_runs/{run_id}").raise_for_status().json()
    assert run["state_type"] == "RUNNING", run["state"]
    return run_id


def final_state(stack: StackState, run_id: str) -> tuple[str, str]:
    """What the UI shows for the run once it has ended: its state type and message."""
    run = stack.api.wait_for_run(run_id, timeout=GUARD_SECONDS)
    return run["state_type"], run["state"]["message"]


@pytest.mark.docker
def test_a_run_in_flight_when_its_worker_dies_ends_crashed_and_docker_restarts_the_worker(
    stopping_stack: StackState, bored_api: FakeBoredApi, docker_client: docker.DockerClient
) -> None:
    """The worker process (not the container) killed as the OOM killer would: its runs are orphans of PID 1."""
    (worker,) = stack_containers(docker_client, STACK)
    restarts = worker.attrs["RestartCount"]
    run_id = start_a_hanging_run(stopping_stack, bored_api)

    # PID 1 is the supervisor; its one child is `prefect worker start`.
    killed = worker.exec_run(["sh", "-c", "kill -KILL $(cat /proc/1/task/1/children)"], user="10001:10001")
    assert killed.exit_code == 0, killed.output

    state, message = final_state(stopping_stack, run_id)
    assert state == "CRASHED"
    assert message in (SIGTERM_MESSAGE, EXIT_MESSAGE)
    deadline = time.monotonic() + GUARD_SECONDS
    while worker.attrs["RestartCount"] == restarts and time.monotonic() < deadline:
        time.sleep(1)
        worker.reload()
    assert worker.attrs["RestartCount"] == restarts + 1  # unless-stopped, as before
    assert "worker supervisor: the worker exited with status 137" in worker.logs().decode(errors="replace")
    wait_for_health(worker)


@pytest.mark.docker
def test_a_run_in_flight_when_its_worker_is_stopped_ends_crashed(
    stopping_stack: StackState, bored_api: FakeBoredApi, docker_client: docker.DockerClient
) -> None:
    """`pulumi destroy`, or the delete half of a replace: ContainerStop with the declared grace, then remove."""
    (worker,) = stack_containers(docker_client, STACK)
    declared: dict[str, Any] = next(r for r in stopping_stack.record.resources if r.typ == CONTAINER).inputs
    grace = int(declared.get("destroyGraceSeconds", 0))  # unset: ContainerStop with timeout 0
    run_id = start_a_hanging_run(stopping_stack, bored_api)

    worker.stop(timeout=grace)  # what resourceDockerContainerDelete does (terraform-provider-docker v4.5.0)
    logs = worker.logs().decode(errors="replace")
    worker.remove(force=True)

    assert final_state(stopping_stack, run_id) == ("CRASHED", SIGTERM_MESSAGE)
    assert "worker supervisor: SIGTERM: ending the flow runs in flight" in logs
    assert "worker supervisor: no flow run left; SIGTERM to the worker" in logs
