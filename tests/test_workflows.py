"""The GitHub Actions workflows run what this repository already runs: one source of truth for testing and deploying.

The workflows cannot run here (no GitHub), so this holds them to the files that do: `.ci/run` (what CI runs on our
machines), the Makefile, the README's fenced commands, uv.lock, and what tests/support/docker_env.py expects of the
test services. actionlint and zizmor (`make lint`) check the workflows' syntax and security.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from typing import Any

import pytest
import yaml

from tests.support import docker_env
from tests.support.program_harness import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
PULUMI_ACTION = "pulumi/actions"
# The one step of ci.yml that only a runner needs: what scripts/test-services.sh provides on our machines.
RUNNER_SETUP_STEP = "Runner setup, registry and base image"


def load_workflow(name: str) -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as the boolean true.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def steps(workflow: dict[str, Any], job: str | None = None) -> list[dict[str, Any]]:
    jobs = [workflow["jobs"][job]] if job else list(workflow["jobs"].values())
    return [step for each in jobs for step in each["steps"]]


def run_commands(workflow: dict[str, Any], job: str | None = None) -> list[str]:
    """The `run:` commands, in order, leaving out the runner's own setup."""
    return [
        step["run"].strip()
        for step in steps(workflow, job)
        if "run" in step and step.get("name") != RUNNER_SETUP_STEP
    ]


def action_steps(workflow: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in steps(workflow) if step.get("uses", "").split("@")[0] == action]


def ci_run_commands() -> list[str]:
    """What .ci/run runs once its services are up: the lines after scripts/test-services.sh."""
    lines = [line.strip() for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()]
    after_services = lines[lines.index("bash scripts/test-services.sh") + 1 :]
    return [line for line in after_services if line and not line.startswith(("#", "export "))]


def makefile_targets() -> dict[str, list[str]]:
    """Each Makefile target with its recipe lines."""
    targets: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in (REPO_ROOT / "Makefile").read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.-]+):(?!=)", line):
            current = targets.setdefault(match[1], [])
        elif line.startswith("\t") and current is not None:
            current.append(line.strip())
        elif line and not line.startswith("#"):
            current = None
    return targets


def readme_commands() -> list[str]:
    """The commands in the README's fenced shell blocks, without comments."""
    blocks = re.findall(r"```(?:bash|sh|shell)\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.S)
    commands = (line.split(" #")[0].strip() for block in blocks for line in block.splitlines())
    return [command for command in commands if command and not command.startswith("#")]


def locked_version(package: str) -> str:
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    (version,) = [entry["version"] for entry in lock["package"] if entry["name"] == package]
    return str(version)


def test_ci_runs_what_dot_ci_run_runs_in_the_same_order() -> None:
    assert (
        run_commands(load_workflow("ci.yml"))
        == ci_run_commands()
        == [
            "uv sync --locked",
            "make lint",
            "make test",
        ]
    )


@pytest.mark.parametrize("workflow", ["ci.yml", "deploy.yml"])
def test_every_command_a_workflow_runs_is_one_the_readme_or_makefile_gives(workflow: str) -> None:
    targets = makefile_targets()
    documented = readme_commands()
    for command in run_commands(load_workflow(workflow)):
        words = shlex.split(command)
        if words[0] == "make":
            assert words[1] in targets, f"{workflow} runs `{command}`: no such Makefile target"
        assert command in documented, f"{workflow} runs `{command}`, which no README command block shows"


def test_the_test_job_fails_without_docker_or_the_pulumi_cli_and_installs_the_cli() -> None:
    job = load_workflow("ci.yml")["jobs"]["test"]
    assert job["env"] == {"REQUIRE_DOCKER": "1", "REQUIRE_PULUMI_CLI": "1"}
    assert "export REQUIRE_DOCKER=1" in (REPO_ROOT / ".ci" / "run").read_text()
    (install,) = [step for step in job["steps"] if step.get("uses", "").startswith(PULUMI_ACTION + "@")]
    assert "command" not in install["with"], "without `command` the Pulumi action only installs the CLI"


def test_the_runner_setup_provides_what_the_docker_tests_expect() -> None:
    """The registry and base image that tests/support/docker_env.py looks for, where it looks for them."""
    (setup,) = [
        step for step in steps(load_workflow("ci.yml"), "test") if step.get("name") == RUNNER_SETUP_STEP
    ]
    script = setup["run"]
    assert setup["env"]["TEST_SERVICES_DIR"] == docker_env.DEFAULT_STATE_DIR
    assert '"$TEST_SERVICES_DIR/registry.password"' in script
    assert f"htpasswd -niB {docker_env.DEFAULT_REGISTRY_USER} " in script
    port = docker_env.REGISTRY_SERVER.split(":")[1]
    assert f"--publish 127.0.0.1:{port}:5000" in script
    assert f"docker pull {docker_env.BASE_IMAGE}" in script


def test_the_pulumi_cli_is_the_version_uv_lock_pins_for_the_sdk() -> None:
    pinned = {
        str(step["with"]["pulumi-version"])
        for name in ("ci.yml", "deploy.yml")
        for step in action_steps(load_workflow(name), PULUMI_ACTION)
    }
    assert pinned == {locked_version("pulumi")}


def test_deploy_previews_pull_requests_and_updates_main_like_the_readme_and_makefile() -> None:
    workflow = load_workflow("deploy.yml")
    assert workflow["on"] == {"pull_request": None, "push": {"branches": ["main"]}}
    commands = {
        job_name: [step["with"]["command"] for step in job["steps"] if "command" in step.get("with", {})]
        for job_name, job in workflow["jobs"].items()
    }
    assert commands == {"preview": ["preview"], "up": ["up"]}
    for command in ("preview", "up"):
        (step,) = [s for s in workflow["jobs"][command]["steps"] if s.get("with", {}).get("command")]
        assert step["with"]["stack-name"] == "${{ vars.PULUMI_STACK }}"
        assert any(line.startswith(f"pulumi {command} ") for line in readme_commands()), (
            f"deploy.yml runs `pulumi {command}`, which no README command block shows"
        )
    # `make up` wraps the same command for a named stack.
    assert any(line.startswith("pulumi up --yes --stack ") for line in makefile_targets()["up"])


def test_deploys_are_off_unless_the_repository_says_so() -> None:
    for name, job in load_workflow("deploy.yml")["jobs"].items():
        assert job["if"].startswith("vars.DEPLOY_ENABLED == 'true'"), name


def test_two_deploys_of_one_stack_never_overlap() -> None:
    up = load_workflow("deploy.yml")["jobs"]["up"]
    assert up["concurrency"] == {"group": "pulumi-up-${{ vars.PULUMI_STACK }}", "cancel-in-progress": False}


def test_every_secret_and_variable_the_workflows_read_is_documented() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    text = "".join(path.read_text() for path in sorted(WORKFLOWS.glob("*.yml")))
    names = set(re.findall(r"\b(?:secrets|vars)\.([A-Z_][A-Z0-9_]*)", text))
    assert names  # the pattern still finds them
    undocumented = sorted(name for name in names if f"`{name}`" not in readme)
    assert not undocumented, f"the README does not say what to set for {undocumented}"
