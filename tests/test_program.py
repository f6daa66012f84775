"""The Pulumi program under Pulumi's mocks: what it declares for the dev stack and for a Cloud-like stack.

No Docker and no server here: tests/test_end_to_end.py applies the same declarations for real.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.utilities.callables import parameter_schema
from prefect.workers.process import ProcessWorker
from pulumi.runtime import MockResourceArgs
from pulumi.runtime.rpc import is_rpc_secret, unwrap_rpc_secret

import infra.docker_endpoint
from flows.suggest_activity import suggest_activity
from infra.config import StackConfigError
from infra.image import content_tag
from tests.support import pulumi_docker_facts as facts
from tests.support.journey_stack import copy_project
from tests.support.local_engine import CONTAINER, DOCKER_PROVIDER, DYNAMIC_PREFIX, IMAGE, reveal
from tests.support.program_harness import (
    CLOUD_URL,
    REPO_ROOT,
    ProgramRun,
    ResourceOptions,
    dev_stack_config,
    fake_outputs,
    run_program,
)
from tests.support.provider_host import wire_roundtrip

WORK_POOL = f"{DYNAMIC_PREFIX}prefect:WorkPool"
DEPLOYMENT = f"{DYNAMIC_PREFIX}prefect:Deployment"
FLOW_RUN_CHECK = f"{DYNAMIC_PREFIX}prefect:FlowRunCheck"
AUTOMATION = f"{DYNAMIC_PREFIX}prefect:Automation"
ALERT_URL = "https://alerts.example.com/hooks/token-for-tests-5d1e"
# What the daemon-side probe of a docker pool's socket answers here (it needs a real daemon and image:
# tests/test_end_to_end.py and tests/test_docker_endpoint.py run it for real).
PROBED_SOCKET_GROUP = "4242"

API_KEY = "pnu_fake-key-for-tests-0123456789"
REGISTRY_PASSWORD = "registry-password-for-tests-7f3a"
AUTH_STRING = "admin:auth-string-for-tests-91c2"


def cloud_stack_config() -> dict[str, str]:
    return {
        "prefect:apiUrl": CLOUD_URL,
        "prefect:apiKey": API_KEY,
        "image:registry": "registry.example.com/acme",
        "image:username": "deployer",
        "image:password": REGISTRY_PASSWORD,
        "suggest-activity:poolType": "docker",
        "suggest-activity:workerReplicas": "2",
        "suggest-activity:timezone": "America/New_York",
        "suggest-activity:flowParameters": '{"api_url": "https://bored.internal.example.com"}',
    }


CLOUD_SECRETS = ["prefect:apiKey", "image:password"]


@pytest.fixture(scope="module", autouse=True)
def socket_probe() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(infra.docker_endpoint, "socket_group", lambda host, image: PROBED_SOCKET_GROUP)
        patch.setattr(infra.docker_endpoint, "daemon_info", lambda host: {"MemoryLimit": True})
        yield


@pytest.fixture(scope="module")
def dev() -> ProgramRun:
    return run_program(dev_stack_config())


@pytest.fixture(scope="module")
def cloud() -> ProgramRun:
    return run_program(cloud_stack_config(), CLOUD_SECRETS, stack="prod")


def test_dev_stack_declares_image_pool_worker_deployment_and_smoke_run(dev: ProgramRun) -> None:
    # Registration order follows dependencies, not source order: compare as a set of types.
    assert sorted(r.typ for r in dev.registrations) == sorted(
        [DOCKER_PROVIDER, IMAGE, WORK_POOL, CONTAINER, DEPLOYMENT, FLOW_RUN_CHECK]
    )

    image = dev.one(IMAGE).inputs
    tag = content_tag(REPO_ROOT, "python:3.12-slim")
    assert image["imageName"] == f"suggest-activity:{tag}"
    assert image["skipPush"] is True
    assert "registry" not in image
    assert image["build"] == {
        "context": ".",
        "dockerfile": "Dockerfile",
        "args": {"BASE_IMAGE": "python:3.12-slim"},
    }

    pool = dev.one(WORK_POOL).inputs
    assert (pool["name"], pool["type"]) == ("suggest-activity", "process")
    # The template of the worker the image runs (Prefect's own class), so that job variables are validated.
    assert (
        pool["base_job_template"] == wire_roundtrip({"t": ProcessWorker.get_default_base_job_template()})["t"]
    )


def test_dev_worker_runs_from_the_image_digest_and_reaches_the_local_server(dev: ProgramRun) -> None:
    image = dev.one(IMAGE)
    worker = dev.one(CONTAINER).inputs
    assert worker["image"] == image.outputs["repoDigest"]
    assert worker["name"] == "suggest-activity-worker-dev-0"
    assert worker["command"] == [
        "python", "-m", "worker.supervisor",
        "prefect", "worker", "start", "--pool", "suggest-activity", "--type", "process",
        "--name", "suggest-activity-worker-dev-0", "--limit", "8", "--with-healthcheck", "--install-policy", "never",
        "--no-create-pool-if-not-found",
    ]  # fmt: skip
    assert "PREFECT_API_URL=http://host.docker.internal:4200/api" in worker["envs"]
    assert worker["hosts"] == [{"host": "host.docker.internal", "ip": "host-gateway"}]
    assert worker["restart"] == "unless-stopped"
    assert worker["wait"] is True and worker["mustRun"] is True
    assert worker["destroyGraceSeconds"] == 30  # docker stop -t 30 before remove, not SIGKILL at once
    # The image's own check (worker/healthcheck.py): the API with the worker's credentials, then the worker's /health.
    assert worker["healthcheck"]["tests"] == [
        "CMD", "python", "-m", "worker.healthcheck", "--pool", "suggest-activity",
    ]  # fmt: skip
    assert worker["memory"] == 1024
    assert {"label": "pulumi.stack", "value": "dev"} in worker["labels"]
    assert "volumes" not in worker  # a process pool gets no Docker socket
    assert worker["capabilities"] == {"drops": ["ALL"]}
    assert worker["securityOpts"] == ["no-new-privileges:true"]


def test_dev_deployment_runs_daily_at_0900_with_the_flows_own_schema(dev: ProgramRun) -> None:
    deployment = dev.one(DEPLOYMENT).inputs
    assert deployment["flow_name"] == "suggest-activity"
    assert deployment["name"] == "daily"
    assert deployment["work_pool_name"] == "suggest-activity"
    assert deployment["entrypoint"] == "flows/suggest_activity.py:suggest_activity"
    assert deployment["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "/opt/prefect/suggest-activity"}}
    ]
    assert deployment["schedules"] == [
        {
            "slug": "daily-0900",
            "cron": "0 9 * * *",
            "timezone": "Europe/Athens",
            "active": True,
            "day_or": True,
            "parameters": {},
        }
    ]
    assert deployment["version"] == content_tag(REPO_ROOT, "python:3.12-slim")
    schema = parameter_schema(suggest_activity).model_dump(exclude_unset=True)
    assert deployment["parameter_openapi_schema"] == wire_roundtrip({"s": schema})["s"]
    assert deployment["job_variables"] == {}
    assert deployment["enforce_parameter_schema"] is True  # a run with bad parameters is refused, not started


def test_deployment_is_declared_after_the_image_and_the_pool(dev: ProgramRun) -> None:
    dependencies = dev.one(DEPLOYMENT).options.dependencies
    # Its version names an image tag: it must not announce an image that is not built (and pushed) yet.
    assert dev.one(IMAGE).options.urn in dependencies
    assert dev.one(WORK_POOL).options.urn in dependencies  # the pool it names is Pulumi's, made first


def test_dev_docker_pool_runs_use_the_unpushed_image_and_reach_the_local_server() -> None:
    run = run_program({**dev_stack_config(), "suggest-activity:poolType": "docker"})
    assert run.one(IMAGE).inputs["skipPush"] is True
    variables = run.one(DEPLOYMENT).inputs["job_variables"]
    assert variables["image"] == run.one(IMAGE).inputs["imageName"]
    # The image exists only in the local daemon: a pull would fail (no registry has it).
    assert variables["image_pull_policy"] == "Never"
    assert variables["container_create_kwargs"] == {
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "extra_hosts": {"host.docker.internal": "host-gateway"},  # the local server, like the worker
    }


def test_dev_stack_schedule_can_be_declared_inactive() -> None:
    run = run_program({**dev_stack_config(), "suggest-activity:scheduleActive": "false"})
    (schedule,) = run.one(DEPLOYMENT).inputs["schedules"]
    assert schedule["active"] is False


def alerting_stack(**config: str) -> ProgramRun:
    return run_program(
        {**dev_stack_config(), "alerts:webhookUrl": ALERT_URL, **config}, ["alerts:webhookUrl"]
    )


def test_alerts_watch_this_deployments_failed_and_late_runs_one_alert_each() -> None:
    """The trigger spelled out here, not taken from infra.alerts: tests/test_alerts.py proves for real that
    such a trigger alerts (and stays quiet for another deployment's runs)."""
    run = alerting_stack()
    automation = run.one(AUTOMATION)
    deployment = run.one(DEPLOYMENT)
    trigger = automation.inputs["trigger"]
    assert trigger["match"] == {"prefect.resource.id": "prefect.flow-run.*"}
    # Runs related to THIS deployment, by the id its server gave it: not every deployment's runs.
    assert trigger["match_related"] == {
        "prefect.resource.role": "deployment",
        "prefect.resource.id": f"prefect.deployment.{deployment.outputs['deployment_id']}",
    }
    states = ("Failed", "Crashed", "TimedOut", "Late")
    assert sorted(trigger["expect"]) == sorted(f"prefect.flow-run.{state}" for state in states)
    assert trigger["for_each"] == ["prefect.resource.id"]  # each run is its own alert
    assert (trigger["posture"], trigger["threshold"], trigger["within"]) == ("Reactive", 1, 0)
    assert automation.inputs["enabled"] is True
    assert deployment.options.urn in automation.options.dependencies


def test_alerts_can_be_declared_disabled() -> None:
    assert alerting_stack(**{"alerts:enabled": "false"}).one(AUTOMATION).inputs["enabled"] is False


# Outputs only a provider knows after `up` (a link with the server's id, the next run the server planned).
PROVIDER_ONLY_OUTPUTS = {WORK_POOL: ("ui_url",), DEPLOYMENT: ("ui_url", "next_run_time")}


def marked_outputs(args: MockResourceArgs, options: ResourceOptions) -> tuple[str, dict[str, Any]]:
    """The harness's fake outputs, with each provider-only output replaced by a mark that names the resource
    and the output it came from: no value the program could compute itself."""
    resource_id, outputs = fake_outputs(args, options)
    for key in PROVIDER_ONLY_OUTPUTS.get(args.typ, ()):
        outputs[key] = f"<{args.name}.{key}>"
    return resource_id, outputs


def test_dev_stack_exports_the_links_and_run_time_its_resources_report() -> None:
    """Which value each export is. The links and the next run time are the resources' outputs, whatever the
    providers put there: that the providers' values are the right ones is shown against a real server
    (test_work_pool_provider.py, test_deployment_provider.py) and in a browser (test_ui_browser.py)."""
    exports = run_program(dev_stack_config(), apply=marked_outputs).exports
    expected = {
        "prefect_ui_url": "http://127.0.0.1:4200",  # the UI of prefect:apiUrl, computed by the program
        "work_pool_name": "suggest-activity",
        "work_pool_url": "<work-pool.ui_url>",
        "image_ref": f"suggest-activity:{content_tag(REPO_ROOT, 'python:3.12-slim')}",
        "worker_container_names": ["suggest-activity-worker-dev-0"],
        "deployment_url": "<deployment.ui_url>",
        "next_run_time": "<deployment.next_run_time>",
    }
    assert {key: exports.get(key) for key in expected} == expected


def test_worker_is_replaced_and_waited_for_on_any_change(dev: ProgramRun) -> None:
    worker, pool = dev.one(CONTAINER), dev.one(WORK_POOL)
    options = worker.options
    assert options.delete_before_replace is True  # a fixed container name: the old one must go first
    # Every change (the healthcheck too, which pulumi-docker does not apply in place) and a create that failed
    # its `wait` make a new container.
    assert options.replace_on_changes == ("*",)
    assert options.ignore_changes == ("memorySwap",)
    assert pool.options.urn in options.dependencies  # created after the pool, deleted before it
    assert dev.one(IMAGE).options.urn in pool.options.dependencies  # nothing reaches Prefect before the image


def test_worker_declares_its_inputs_in_the_form_pulumi_docker_reads_them_back(dev: ProgramRun) -> None:
    worker = dev.one(CONTAINER).inputs
    for key in ("interval", "timeout", "startPeriod"):
        declared = worker["healthcheck"][key]
        assert facts.go_duration(facts.parse_duration(declared)) == declared, key
    assert worker["memorySwap"] == worker["memory"]  # no swap beyond the memory limit
    assert worker["waitTimeout"] == 180


@pytest.mark.parametrize(
    ("config", "env", "host"),
    [
        ({}, None, "unix:///var/run/docker.sock"),
        ({}, "tcp://10.0.0.5:2376", "tcp://10.0.0.5:2376"),
        (
            {"docker:host": "unix:///run/user/1000/docker.sock"},
            "tcp://ignored:2376",
            "unix:///run/user/1000/docker.sock",
        ),
    ],
    ids=["default socket", "DOCKER_HOST", "docker:host config"],
)
def test_image_and_workers_use_one_docker_provider_for_the_configured_daemon(
    config: dict[str, str], env: str | None, host: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no Docker Desktop user socket
    if env is None:
        monkeypatch.delenv("DOCKER_HOST", raising=False)
    else:
        monkeypatch.setenv("DOCKER_HOST", env)
    run = run_program({**dev_stack_config(), **config})
    (provider,) = run.of_type(DOCKER_PROVIDER)
    assert provider.inputs == {"host": host}
    reference = f"{provider.options.urn}::{provider.id}"
    assert [r.provider for r in run.of_type(IMAGE) + run.of_type(CONTAINER)] == [reference, reference]


def test_without_a_configured_daemon_docker_desktops_user_socket_is_used_when_the_default_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(infra.docker_endpoint, "DEFAULT_SOCKET_PATH", str(tmp_path / "no-such.sock"))
    monkeypatch.setenv("HOME", str(tmp_path))
    user_socket = tmp_path / ".docker" / "run" / "docker.sock"
    user_socket.parent.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(user_socket))
        (provider,) = run_program(dev_stack_config()).of_type(DOCKER_PROVIDER)
    assert provider.inputs == {"host": f"unix://{user_socket}"}


def test_docker_pool_workers_join_the_sockets_group_as_the_daemon_sees_it(cloud: ProgramRun) -> None:
    for worker in cloud.of_type(CONTAINER):
        assert worker.inputs["groupAdds"] == [PROBED_SOCKET_GROUP]


def test_a_daemon_that_discards_memory_limits_fails_the_up_and_says_how_to_fix_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # It would read every worker back with Memory 0, and every later `up` would replace them all.
    monkeypatch.setattr(infra.docker_endpoint, "daemon_info", lambda host: {"MemoryLimit": False})
    with pytest.raises(Exception, match="suggest-activity:workerMemoryMb cannot be enforced") as error:
        run_program(dev_stack_config())
    assert "cgroup_enable=memory" in str(error.value)


# --- smoke run ---------------------------------------------------------------------------------------------


def test_the_smoke_run_checks_what_the_deployment_has_after_this_up(
    dev: ProgramRun, cloud: ProgramRun
) -> None:
    """Its inputs are the Deployment's OUTPUTS, so that a change the deployment takes in place (parameters,
    version, job variables) still replaces the check; the deployment by its Pulumi id, which a preview of an
    in-place update knows (its output-only `deployment_id` would be unknown there and preview a replacement)."""
    for run in (dev, cloud):
        deployment, check = run.one(DEPLOYMENT).outputs, run.one(FLOW_RUN_CHECK).inputs
        assert check["deployment_id"] == run.one(DEPLOYMENT).id != ""
        for key in ("work_pool_name", "version", "entrypoint", "pull_steps", "parameters", "job_variables"):
            assert check[key] == deployment[key], key
        assert check["tags"] == ["smoke-run"]
    assert cloud.one(FLOW_RUN_CHECK).inputs["job_variables"]["image"] == cloud.one(IMAGE).inputs["imageName"]


def test_the_smoke_run_waits_for_the_deployment_and_every_worker(dev: ProgramRun, cloud: ProgramRun) -> None:
    """Ordered after the workers (their `wait`: healthy), so the engine, which creates unordered resources in
    parallel, does not start the run before a worker can take it, or while an old worker is being replaced."""
    for run in (dev, cloud):
        dependencies = run.one(FLOW_RUN_CHECK).options.dependencies
        workers = run.of_type(CONTAINER)
        assert workers
        for resource in (run.one(DEPLOYMENT), *workers):
            assert resource.options.urn in dependencies, resource.name


def test_the_smoke_run_may_take_the_flows_timeout_plus_a_workers_pickup_and_start(dev: ProgramRun) -> None:
    """Derived from the flow's own timeout (read from the flow), the worker's poll interval (the dev stack's
    default) and the run's start-up allowance."""
    from flows.suggest_activity import FLOW_TIMEOUT_SECONDS
    from infra.config import RUN_START_ALLOWANCE_SECONDS

    envs = dict(env.split("=", 1) for env in reveal(dev.one(CONTAINER).inputs["envs"]))
    poll = int(envs["PREFECT_WORKER_QUERY_SECONDS"])
    expected = FLOW_TIMEOUT_SECONDS + poll + RUN_START_ALLOWANCE_SECONDS
    assert dev.one(FLOW_RUN_CHECK).inputs["timeout_seconds"] == expected
    configured = run_program({**dev_stack_config(), "suggest-activity:smokeRunTimeoutSeconds": "45"})
    assert configured.one(FLOW_RUN_CHECK).inputs["timeout_seconds"] == 45
    # A run cancelled at the timeout while PENDING is ended by the worker (Prefect's setting is off by default).
    assert envs["PREFECT_WORKER_ENABLE_CANCELLATION"] == "true"


def test_a_pool_that_starts_no_run_is_refused_while_the_smoke_run_is_on() -> None:
    config = {**dev_stack_config(), "suggest-activity:poolConcurrencyLimit": "0"}
    with pytest.raises(StackConfigError, match=r"poolConcurrencyLimit: 0 lets no run start.*smokeRun false"):
        run_program(config)
    off = run_program({**config, "suggest-activity:smokeRun": "false"})
    assert off.one(WORK_POOL).inputs["concurrency_limit"] == 0


def test_the_smoke_run_is_exported_and_can_be_turned_off(dev: ProgramRun) -> None:
    check = dev.one(FLOW_RUN_CHECK).outputs
    assert dev.exports["smoke_run_url"] == check["ui_url"]
    assert dev.exports["smoke_run_state"] == check["state_name"]

    off = run_program({**dev_stack_config(), "suggest-activity:smokeRun": "false"})
    assert off.of_type(FLOW_RUN_CHECK) == []
    assert "smoke_run_url" not in off.exports and "smoke_run_state" not in off.exports
    assert len(off.of_type(DEPLOYMENT)) == 1


def test_cloud_stack_pushes_with_registry_credentials(cloud: ProgramRun) -> None:
    image = cloud.one(IMAGE).inputs
    assert image["skipPush"] is False
    assert image["imageName"].startswith("registry.example.com/acme/suggest-activity:sha-")
    registry = reveal(image["registry"])
    assert registry == {
        "server": "registry.example.com",
        "username": "deployer",
        "password": REGISTRY_PASSWORD,
    }


def test_cloud_stack_runs_two_docker_workers_with_the_api_key(cloud: ProgramRun) -> None:
    workers = cloud.of_type(CONTAINER)
    assert sorted(w.inputs["name"] for w in workers) == [
        "suggest-activity-worker-prod-0",
        "suggest-activity-worker-prod-1",
    ]
    for worker in workers:
        envs = reveal(worker.inputs["envs"])
        assert f"PREFECT_API_URL={CLOUD_URL}" in envs
        assert f"PREFECT_API_KEY={API_KEY}" in envs
        assert "hosts" not in worker.inputs  # Cloud is not on the Docker host
        assert worker.inputs["volumes"] == [
            {"hostPath": "/var/run/docker.sock", "containerPath": "/var/run/docker.sock"}
        ]
        assert "--type" in worker.inputs["command"] and "docker" in worker.inputs["command"]


def test_cloud_deployment_points_docker_runs_at_the_pushed_image(cloud: ProgramRun) -> None:
    deployment = cloud.one(DEPLOYMENT).inputs
    assert deployment["job_variables"] == {
        "image": cloud.one(IMAGE).inputs["imageName"],
        "image_pull_policy": "IfNotPresent",
        "auto_remove": True,
        "container_create_kwargs": {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"]},
    }
    assert deployment["parameters"] == {"api_url": "https://bored.internal.example.com"}
    assert deployment["schedules"][0]["timezone"] == "America/New_York"
    assert cloud.exports["prefect_ui_url"].startswith("https://app.prefect.cloud/account/0b6b2f4e-")


def _walk(value: Any, path: str = "") -> list[tuple[str, Any, bool]]:
    """(path, leaf, inside a secret) for every leaf of a registered value."""
    if is_rpc_secret(value):
        return [(p, leaf, True) for p, leaf, _ in _walk(unwrap_rpc_secret(value), path)]
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _walk(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [item for i, v in enumerate(value) for item in _walk(v, f"{path}[{i}]")]
    return [(path, value, False)]


@pytest.mark.parametrize("stack", ["cloud", "self-hosted with auth"])
def test_credentials_appear_only_inside_secrets(stack: str) -> None:
    config, secrets = cloud_stack_config(), list(CLOUD_SECRETS)
    if stack != "cloud":
        config.update(
            {"prefect:apiUrl": "https://prefect.internal.example.com/api", "prefect:authString": AUTH_STRING}
        )
        del config["prefect:apiKey"]
        secrets = ["prefect:authString", "image:password"]
    run = run_program(config, secrets, stack="prod")
    credentials = [API_KEY, REGISTRY_PASSWORD, AUTH_STRING]
    seen_in_secret = set()
    for registration in run.registrations:
        for part in ("inputs", "outputs"):
            for path, leaf, secret in _walk(getattr(registration, part)):
                text = str(leaf)
                if path == ".__provider":
                    # The provider is pickled into state: it must carry no credential at all.
                    text = base64.b64decode(text).decode("latin-1")
                for credential in credentials:
                    if credential in text:
                        assert secret and path != ".__provider", (
                            f"{credential} in plain {registration.name}{path}"
                        )
                        seen_in_secret.add(credential)
    expected = {API_KEY, REGISTRY_PASSWORD} if stack == "cloud" else {AUTH_STRING, REGISTRY_PASSWORD}
    assert seen_in_secret == expected  # they did reach the worker and the registry, wrapped
    for value in run.exports.values():
        assert not any(credential in str(value) for credential in credentials)


BAD_CONFIGS = [
    ({"prefect:apiUrl": ""}, "prefect:apiUrl: is required"),
    ({"prefect:apiUrl": "127.0.0.1:4200/api"}, "is not an http(s) URL"),
    ({"prefect:apiUrl": "http://127.0.0.1:4200"}, "ends in /api"),
    ({"prefect:apiUrl": "https://api.prefect.cloud/api/accounts/x"}, "Prefect Cloud URL must look like"),
    ({"prefect:apiUrl": CLOUD_URL}, "prefect:apiKey: Prefect Cloud needs an API key"),
    ({"suggest-activity:cron": "0 9 * * * *"}, "suggest-activity:cron"),
    ({"suggest-activity:cron": "61 9 * * *"}, "suggest-activity:cron"),
    ({"suggest-activity:timezone": "Mars/Olympus"}, "suggest-activity:timezone"),
    ({"suggest-activity:poolType": "kubernetes"}, "suggest-activity:poolType: 'kubernetes' is not supported"),
    ({"suggest-activity:poolName": "prefect-pool"}, "suggest-activity:poolName"),
    ({"suggest-activity:poolName": "a/b"}, "suggest-activity:poolName"),
    ({"suggest-activity:deploymentName": "daily>"}, "suggest-activity:deploymentName"),
    ({"suggest-activity:workerReplicas": "0"}, "suggest-activity:workerReplicas: must be >= 1"),
    ({"suggest-activity:workerReplicas": "two"}, "is not a whole number"),
    ({"suggest-activity:workerMemoryMb": "64"}, "suggest-activity:workerMemoryMb: must be >= 256"),
    ({"suggest-activity:poolConcurrencyLimit": "-1"}, "suggest-activity:poolConcurrencyLimit: must be >= 0"),
    ({"suggest-activity:scheduleActive": "yes"}, "is not true or false"),
    ({"suggest-activity:flowParameters": '{"participants": "two"}'}, "participants"),
    (
        {"suggest-activity:flowParameters": '{"activity_type": "fishing"}'},
        "activity_type 'fishing' is not one of",
    ),
    ({"suggest-activity:flowParameters": '{"participants": 0}'}, "participants must be a whole number >= 1"),
    ({"suggest-activity:flowParameters": '{"colour": "red"}'}, "unknown flow parameter(s) colour"),
    ({"suggest-activity:flowParameters": "[1, 2]"}, "must be a JSON object"),
    ({"image:push": "true"}, "image:registry: image:push is true but no registry is set"),
    (
        {"image:registry": "registry.example.com/acme", "image:push": "true"},
        "image:password: pushing needs registry credentials",
    ),
    ({"image:registry": "https://registry.example.com"}, "is not a registry address"),
    ({"image:name": "Suggest Activity"}, "image:name"),
    ({"suggest-activity:smokeRun": "yes"}, "suggest-activity:smokeRun: 'yes' is not true or false"),
    (
        {"suggest-activity:smokeRunTimeoutSeconds": "0"},
        "suggest-activity:smokeRunTimeoutSeconds: must be >= 1",
    ),
]


@pytest.mark.parametrize(("override", "message"), BAD_CONFIGS, ids=[m for _, m in BAD_CONFIGS])
def test_bad_configuration_fails_before_any_resource(override: dict[str, str], message: str) -> None:
    config = {**dev_stack_config(), **override}
    registered: list[str] = []

    def refuse(args: Any, options: Any) -> tuple[str, dict[str, Any]]:
        registered.append(args.typ)
        return "x", {}

    with pytest.raises(StackConfigError) as error:
        run_program(config, apply=refuse)
    assert message in str(error.value)
    assert "nothing was created" in str(error.value)
    assert registered == []


def test_all_problems_are_reported_together() -> None:
    config = {**dev_stack_config(), "suggest-activity:cron": "bad", "suggest-activity:workerReplicas": "0"}
    with pytest.raises(StackConfigError) as error:
        run_program(config)
    assert "suggest-activity:cron" in str(error.value)
    assert "suggest-activity:workerReplicas" in str(error.value)


def test_image_tag_is_stable_and_follows_the_flow_code(tmp_path: Path) -> None:
    copy = copy_project(tmp_path / "repo")
    tag = content_tag(copy, "python:3.12-slim")
    assert content_tag(copy, "python:3.12-slim") == tag == content_tag(REPO_ROOT, "python:3.12-slim")
    (copy / "tests" / "unrelated.py").write_text("# not in the image\n")
    assert content_tag(copy, "python:3.12-slim") == tag
    flow = copy / "flows" / "suggest_activity.py"
    flow.write_text(flow.read_text() + "\n# a code change\n")
    assert content_tag(copy, "python:3.12-slim") != tag
    assert content_tag(REPO_ROOT, "python:3.13-slim") != tag


def test_prefect_environment_variables_fill_what_the_stack_leaves_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", CLOUD_URL)
    monkeypatch.setenv("PREFECT_API_KEY", API_KEY)
    config = {k: v for k, v in cloud_stack_config().items() if not k.startswith("prefect:")}
    run = run_program(config, ["image:password"], stack="prod")
    for worker in run.of_type(CONTAINER):
        assert f"PREFECT_API_URL={CLOUD_URL}" in reveal(worker.inputs["envs"])
        # Kept secret though it came from the environment.
        assert all(secret for _, leaf, secret in _walk(worker.inputs) if API_KEY in str(leaf))
        assert f"PREFECT_API_KEY={API_KEY}" in reveal(worker.inputs["envs"])


def test_environment_credentials_do_not_follow_a_different_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", CLOUD_URL)
    monkeypatch.setenv("PREFECT_API_KEY", API_KEY)
    run = run_program(dev_stack_config())  # the dev stack names its own, local server
    assert not any("PREFECT_API_KEY" in str(reveal(e)) for e in run.one(CONTAINER).inputs["envs"])
