"""The local engine's table of pulumi-docker facts (tests/support/pulumi_docker_facts.py), held against a real
Docker engine: what Docker stores for a container created the way resourceDockerContainerCreate creates it,
read back the way resourceDockerContainerRead reads it, and diffed the way the bridge diffs it.

The worker's inputs are the ones the real program declares (under mocks); only the image is swapped for the
local base image (which has no `prefect`, so the command is swapped for a sleep), and the container is created
without waiting (Docker stores the same either way).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import docker
import pytest

from tests.support import pulumi_docker_facts as facts
from tests.support.docker_resources import DockerEndpoint
from tests.support.local_engine import CONTAINER, reveal
from tests.support.program_harness import dev_stack_config, run_program

PROBE_NAME = "engine-facts-probe"


def test_go_duration_is_what_go_prints() -> None:
    # time.Duration.String() for whole seconds: the largest unit first, every smaller one down to seconds.
    assert [facts.go_duration(s * facts.NANOSECONDS) for s in (0, 5, 10, 60, 90, 3600, 3661)] == [
        "0s", "5s", "10s", "1m0s", "1m30s", "1h0m0s", "1h1m1s",
    ]  # fmt: skip
    assert facts.parse_duration("1m30s") == facts.parse_duration("90s") == 90 * facts.NANOSECONDS


def test_container_inputs_the_table_does_not_model_are_refused() -> None:
    with pytest.raises(facts.UnmodelledInputError, match="ports"):
        facts.refuse_unmodelled({"name": "w", "image": "i", "ports": [{"internal": 80}]})
    with pytest.raises(facts.UnmodelledInputError, match="volumeName"):
        facts.refuse_unmodelled(
            {"name": "w", "image": "i", "volumes": [{"volumeName": "v", "containerPath": "/d"}]}
        )


def test_the_bridge_diff_classifies_changes_as_upstream_does() -> None:
    state = facts.planned(
        {"name": "w", "image": "i", "memory": 512, "healthcheck": {"tests": ["CMD", "true"]}}
    )
    change = facts.diff(
        state, {"name": "w", "image": "j", "memory": 256, "healthcheck": {"tests": ["CMD", "false"]}}
    )
    assert change.replaces == ("image",)  # ForceNew
    assert change.updates == ("memory",)  # in resourceDockerContainerUpdate's list
    assert change.unapplied == ("healthcheck",)  # neither: ~ update that changes nothing
    assert facts.diff(state, {"name": "w", "image": "i", "memory": 512, "waitTimeout": 90}).provider_side == (
        "waitTimeout",
    )


@pytest.fixture
def endpoint(docker_client: docker.DockerClient) -> Iterator[DockerEndpoint]:
    endpoint = DockerEndpoint(docker_client.api.base_url, docker_client)
    yield endpoint
    for container in docker_client.containers.list(all=True, filters={"name": PROBE_NAME}):
        container.remove(force=True)


def declared_worker(docker_client: docker.DockerClient) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The worker's inputs as the program declares them (on the base image, a sleep for a command, not waited
    for), and its ignore_changes."""
    (worker,) = [r for r in run_program(dev_stack_config()).registrations if r.typ == CONTAINER]
    inputs: dict[str, Any] = reveal(worker.inputs)
    image = docker_client.images.get("python:3.12-slim").id
    sleep = ["python", "-c", "import time; time.sleep(600)"]
    return {
        **inputs,
        "name": PROBE_NAME,
        "image": image,
        "command": sleep,
        "wait": False,
    }, worker.options.ignore_changes


@pytest.mark.docker
def test_docker_stores_what_the_table_says_the_read_records(
    endpoint: DockerEndpoint, docker_client: docker.DockerClient
) -> None:
    inputs, _ = declared_worker(docker_client)
    inputs.pop("memorySwap", None)  # Docker's own default, to see what it stores
    health = {**inputs["healthcheck"], "startPeriod": "60s"}
    container_id, state = endpoint.create_container({**inputs, "healthcheck": health})
    inspect = docker_client.api.inspect_container(container_id)

    # The two facts issue 10 found by hand: a 60 s start period is stored in nanoseconds and read back by
    # Go's Duration.String(); with no swap limit Docker stores twice the memory (or -1 without swap accounting).
    assert inspect["Config"]["Healthcheck"]["StartPeriod"] == 60 * facts.NANOSECONDS
    assert state["healthcheck"]["startPeriod"] == "1m0s"
    memory = int(inputs["memory"])
    assert inspect["HostConfig"]["Memory"] == memory * facts.MIB
    swap_accounting = docker_client.info().get("SwapLimit", False)
    assert state["memorySwap"] == (2 * memory if swap_accounting else -1)
    # So a program that declares "60s" and no swap limit would see `~ update` on every `up`.
    assert set(facts.diff(state, {**inputs, "healthcheck": health}).changed) == {"healthcheck", "memorySwap"}


@pytest.mark.docker
def test_the_workers_declared_inputs_read_back_unchanged(
    endpoint: DockerEndpoint, docker_client: docker.DockerClient
) -> None:
    inputs, ignored = declared_worker(docker_client)
    container_id, state = endpoint.create_container(inputs)
    inspect = docker_client.api.inspect_container(container_id)
    # Every field the read sets, in the read's format, equals what the program declares (or, for what it does
    # not declare, the schema's default): the next `up` has nothing to do.
    assert facts.diff(state, inputs, ignored).changed == ()
    assert state["healthcheck"] == {**facts.HEALTHCHECK_DEFAULTS, **inputs["healthcheck"]}
    assert state["capabilities"] == {"adds": [], "drops": ["ALL"]}
    assert state["networkMode"] == inspect["HostConfig"]["NetworkMode"] == "bridge"
    # Refresh of the stopped container: the read sets mustRun to false, and the next plan updates it.
    docker_client.api.stop(container_id, timeout=0)
    stopped = endpoint.read_container(container_id, state)
    assert stopped is not None and stopped["mustRun"] is False
    assert facts.diff(stopped, inputs, ignored).updates == ("mustRun",)
    endpoint.delete_container(container_id, state)
    assert endpoint.read_container(container_id, state) is None
