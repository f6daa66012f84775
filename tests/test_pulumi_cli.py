"""The stack's journey with the real Pulumi CLI and the real pulumi-docker plugin, through the Automation API.

The CLI and the plugin cannot be installed on the machines this project is developed on (they download Go
binaries), so there this module skips and tests/test_end_to_end.py applies the program with the local engine. In
the GitHub Actions job that installs the CLI (.github/workflows/ci.yml, job `test`) REQUIRE_PULUMI_CLI=1 is set
and a missing `pulumi` fails instead. Anywhere with `pulumi` on PATH, Docker and internet:
`REQUIRE_PULUMI_CLI=1 REQUIRE_DOCKER=1 uv run pytest tests/test_pulumi_cli.py`.

What the Automation API does (pulumi/automation/_stack.py and _local_workspace.py of the installed SDK):
`Stack.up()` runs `pulumi up --yes --skip-preview` and returns the stack's newest history entry as `summary`,
whose `resource_changes` counts the operations per kind; `Stack.preview()` returns the counts of the engine's
summary event as `change_summary`; `refresh=True` adds `--refresh` to both; `LocalWorkspace.install()` runs
`pulumi install`. What the engine counts (pulumi/pulumi pkg/engine/update.go, `OnResourceStepPost` of
updateActions and previewActions): one operation per logical step, so with `--refresh` the refresh steps
themselves are not counted (`RefreshStep.Logical()` is false, pkg/resource/deploy/step.go) and the summary shows
what the update after the refresh does; a `pulumi refresh` counts each refresh by its result (`ResultOp()`:
`same` when the provider read back what the state holds).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import docker
import pytest
from pulumi import automation as auto

from tests.support.fake_bored_api import FakeBoredApi
from tests.support.journey_stack import copy_project
from tests.support.prefect_server import PrefectServer
from tests.support.stack_checks import PrefectApi, stack_containers

pytestmark = [pytest.mark.docker, pytest.mark.journey(over="cli_stack")]

STACK = "cli"
POOL = "cli-process"
DEPLOYMENT_NAME = "cli-daily"
DEPLOYMENT_PATH = f"/deployments/name/suggest-activity/{DEPLOYMENT_NAME}"


def pulumi_cli_required() -> bool:
    """True in the GitHub Actions job that installs the CLI: there a missing `pulumi` is a failure."""
    return os.environ.get("REQUIRE_PULUMI_CLI", "") == "1"


def only_same(changes: Mapping[str, int] | None) -> bool:
    """Every resource the operation touched was left as it was (the stack resource counts as one `same`)."""
    return changes is not None and set(changes) == {"same"}


@dataclass
class CliStack:
    stack: auto.Stack
    api: PrefectApi


# Session-scoped and first in cli_stack's arguments, so it is decided before the session's Prefect server starts.
@pytest.fixture(scope="session")
def pulumi_cli() -> str:
    path = shutil.which("pulumi")
    if path is None:
        reason = (
            "the Pulumi CLI is not on PATH; tests/test_end_to_end.py covers the journey with the local engine"
        )
        if pulumi_cli_required():
            pytest.fail(f"REQUIRE_PULUMI_CLI=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def cli_stack(
    pulumi_cli: str,
    tmp_path_factory: pytest.TempPathFactory,
    prefect_server: PrefectServer,
    bored_api: FakeBoredApi,
    docker_client: docker.DockerClient,
) -> Iterator[CliStack]:
    """A copy of the repository as a user's clone, a local state backend, and the stack's config; destroyed at the end
    whatever the journey did."""
    tmp_path = tmp_path_factory.mktemp("pulumi-cli")
    project_dir = copy_project(tmp_path / "suggest-activity")
    workspace = auto.LocalWorkspace(
        work_dir=str(project_dir),
        env_vars={
            "PULUMI_BACKEND_URL": f"file://{tmp_path}/state",
            "PULUMI_CONFIG_PASSPHRASE": "",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
        },
    )
    # `pulumi install`: the program's dependencies (uv, from uv.lock) and the plugins they name, so the
    # pulumi-docker plugin is the version uv.lock pins for the pulumi-docker package.
    workspace.install(on_output=print)
    stack = auto.Stack.create_or_select(STACK, workspace)
    config = {
        "prefect:apiUrl": prefect_server.api_url,
        "image:push": "false",
        "suggest-activity:poolName": POOL,
        "suggest-activity:deploymentName": DEPLOYMENT_NAME,
        "suggest-activity:workerPollSeconds": "2",
        "suggest-activity:flowParameters": json.dumps(
            {"api_url": bored_api.url_for_host("host.docker.internal")}
        ),
    }
    stack.set_all_config({key: auto.ConfigValue(value) for key, value in config.items()})
    try:
        yield CliStack(stack=stack, api=PrefectApi(prefect_server.api_url))
    finally:
        stack.destroy(on_output=print)


def worker_ids(client: docker.DockerClient) -> list[str]:
    return sorted(container.id for container in stack_containers(client, STACK))


def test_up_creates_the_stack(cli_stack: CliStack, docker_client: docker.DockerClient) -> None:
    up = cli_stack.stack.up(on_output=print)

    assert up.summary.result == "succeeded"
    assert up.summary.resource_changes.get("create"), up.summary.resource_changes
    deployment = cli_stack.api.get(DEPLOYMENT_PATH).raise_for_status().json()
    assert up.outputs["deployment_url"].value.endswith(deployment["id"])
    assert [c.status for c in stack_containers(docker_client, STACK)] == ["running"]


def test_a_triggered_run_completes_with_the_served_activity(
    cli_stack: CliStack, bored_api: FakeBoredApi
) -> None:
    api = cli_stack.api
    deployment = api.get(DEPLOYMENT_PATH).raise_for_status().json()
    run = api.wait_for_run(api.trigger(deployment["id"]))
    assert run["state_type"] == "COMPLETED", run["state"]["message"]
    (artifact,) = api.artifacts_of(run["id"])
    assert artifact["data"].splitlines()[0] == f"# {bored_api.served()[-1]['activity']}"


def test_second_up_is_a_noop(cli_stack: CliStack, docker_client: docker.DockerClient) -> None:
    workers = worker_ids(docker_client)

    preview = cli_stack.stack.preview(diff=True, on_output=print)
    assert only_same(preview.change_summary), preview.change_summary
    up = cli_stack.stack.up(diff=True, on_output=print)
    assert only_same(up.summary.resource_changes), up.summary.resource_changes

    assert worker_ids(docker_client) == workers


def test_refresh_finds_no_drift_and_up_with_refresh_changes_nothing(
    cli_stack: CliStack, docker_client: docker.DockerClient
) -> None:
    workers = worker_ids(docker_client)

    # What the providers read back is what the state holds (pulumi-docker's read of the container included).
    refresh = cli_stack.stack.refresh(on_output=print)
    assert only_same(refresh.summary.resource_changes), refresh.summary.resource_changes
    # `pulumi preview --refresh` / `pulumi up --refresh`: refresh, then diff the program against that state.
    preview = cli_stack.stack.preview(refresh=True, diff=True, on_output=print)
    assert only_same(preview.change_summary), preview.change_summary
    up = cli_stack.stack.up(refresh=True, diff=True, on_output=print)
    assert only_same(up.summary.resource_changes), up.summary.resource_changes

    assert worker_ids(docker_client) == workers


def test_destroy_leaves_nothing(cli_stack: CliStack, docker_client: docker.DockerClient) -> None:
    deployment_id = cli_stack.api.get(DEPLOYMENT_PATH).raise_for_status().json()["id"]

    destroy = cli_stack.stack.destroy(on_output=print)

    assert destroy.summary.result == "succeeded"
    assert destroy.summary.resource_changes.get("delete"), destroy.summary.resource_changes
    assert stack_containers(docker_client, STACK) == []
    assert cli_stack.api.get(f"/work_pools/{POOL}").status_code == 404
    assert cli_stack.api.get(f"/deployments/{deployment_id}").status_code == 404
    assert cli_stack.stack.outputs() == {}
