"""The flow image, built for real from the repository's Dockerfile with the classic builder.

One build (module fixture) serves every test that only inspects or runs the image; the cache test rebuilds a
copy of the context with a flow-code change. Needs `scripts/test-services.sh` (dockerd, the loopback registry
and the base image); skips without Docker, fails instead under REQUIRE_DOCKER=1.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from infra.worker import healthcheck_test
from tests.support.docker_env import (
    BASE_IMAGE,
    BuildError,
    DockerEnvError,
    PushError,
    RegistrySettings,
    build_image,
    layers,
    push_image,
    registry_settings,
    require_docker,
    require_registry,
    step_image_id,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
CODE_DIR = "/opt/prefect/suggest-activity"
VENV = "/opt/venv"
UID = "10001"
IMAGE_TAG = "suggest-activity:image-tests"
# A piece of the dependency step's command, to find that step in the image history.
DEPS_STEP_MARKER = "uv export --locked"
# What the deployment runs as the worker container's healthcheck, for the pool of the test below.
HEALTHCHECK = healthcheck_test("image-test-pool")
SECRET_LIKE = re.compile(r"(?i)\b\w*(password|passwd|secret|token|api_?key|auth_string|credential)\w*=\S+")
SECOND = 1_000_000_000  # docker healthcheck durations are nanoseconds


@dataclass(frozen=True)
class BuiltImage:
    id: str
    log: list[str]
    seconds: float


def run_in(client: docker.DockerClient, image: str, command: list[str], **kwargs: Any) -> tuple[int, str]:
    """Runs a one-off container; returns its exit code and its combined output."""
    container = client.containers.run(image, command, detach=True, **kwargs)
    try:
        status = container.wait(timeout=120)
        return int(status["StatusCode"]), container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)


def locked_version(name: str) -> str:
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    return next(str(package["version"]) for package in lock["package"] if package["name"] == name)


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return require_docker(base_image=BASE_IMAGE)


@pytest.fixture(scope="module")
def image(client: docker.DockerClient) -> BuiltImage:
    """The repository's Dockerfile built as is: default BASE_IMAGE, the real .dockerignore, the real flows/."""
    log: list[str] = []
    started = time.monotonic()
    image_id = build_image(client, REPO_ROOT, IMAGE_TAG, log=log)
    return BuiltImage(id=image_id, log=log, seconds=time.monotonic() - started)


# ------------------------------------------------------------------------------------------------ static


def test_dockerfile_uses_no_buildkit_only_syntax() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    instructions = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert not re.search(r"(?im)^\s*#\s*syntax\s*=", text), "a syntax directive selects a BuildKit frontend"
    assert not any("--mount" in line or "<<" in line for line in instructions), "RUN --mount / heredocs"
    assert "ARG BASE_IMAGE=python:3.12-slim" in instructions
    assert instructions[instructions.index("ARG BASE_IMAGE=python:3.12-slim") + 1] == "FROM ${BASE_IMAGE}"


# ------------------------------------------------------------------------------------------------ the image


@pytest.mark.docker
def test_builds_with_the_classic_builder(image: BuiltImage) -> None:
    assert image.id.startswith("sha256:")
    # The classic builder's own output ("Step n/m", "Successfully built"); BuildKit's looks different.
    assert any(line.startswith("Step 1/") for line in image.log)
    assert any(line.startswith("Successfully built") for line in image.log)


@pytest.mark.docker
def test_runs_as_non_root_in_the_code_dir(client: docker.DockerClient, image: BuiltImage) -> None:
    config = client.api.inspect_image(image.id)["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["WorkingDir"] == CODE_DIR
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PATH"].split(":")[0] == f"{VENV}/bin"
    assert env["PYTHONUNBUFFERED"] == "1"

    code, output = run_in(client, image.id, ["sh", "-c", "id -u; id -g; pwd; touch ~/.probe && echo home-ok"])
    assert code == 0, output
    assert output.split() == [UID, UID, CODE_DIR, "home-ok"]


@pytest.mark.docker
def test_locked_runtime_dependencies_and_the_flow_import(
    client: docker.DockerClient, image: BuiltImage
) -> None:
    probe = (
        "import json, importlib.metadata as md, importlib.util as iu, sys\n"
        "import prefect, httpx, prefect_docker\n"
        "import flows.suggest_activity\n"
        "from prefect_docker.worker import DockerWorker\n"
        "print(json.dumps({\n"
        "  'versions': {n: md.version(n) for n in ('prefect', 'httpx', 'prefect-docker')},\n"
        "  'pulumi': iu.find_spec('pulumi') is not None,\n"
        "  'prefix': sys.prefix,\n"
        "  'flow_file': flows.suggest_activity.__file__,\n"
        "}))\n"
    )
    code, output = run_in(client, image.id, ["python", "-c", probe])
    assert code == 0, output
    found = json.loads(output.strip().splitlines()[-1])
    assert found["versions"] == {
        name: locked_version(name) for name in ("prefect", "httpx", "prefect-docker")
    }
    assert found["prefix"] == VENV
    assert found["flow_file"] == f"{CODE_DIR}/flows/suggest_activity.py"
    # The deployment tooling is not part of the image (the Dockerfile prunes it from the export).
    assert found["pulumi"] is False


@pytest.mark.docker
def test_code_dir_holds_only_the_image_inputs(client: docker.DockerClient, image: BuiltImage) -> None:
    code, output = run_in(client, image.id, ["sh", "-c", "ls -A; echo ---; find flows worker -print | sort"])
    assert code == 0, output
    top, code_files = output.split("---")
    assert sorted(top.split()) == ["flows", "pyproject.toml", "uv.lock", "worker"]
    expected = {
        path.relative_to(REPO_ROOT).as_posix()
        for code_dir in ("flows", "worker")
        for path in [REPO_ROOT / code_dir, *(REPO_ROOT / code_dir).rglob("*")]
        if "__pycache__" not in path.parts and path.suffix != ".pyc" and not path.name.startswith(".")
    }
    assert set(code_files.split()) == expected  # no __pycache__ from the host, no tests, no .venv


@pytest.mark.docker
def test_no_secret_in_config_or_history(client: docker.DockerClient, image: BuiltImage) -> None:
    config = client.api.inspect_image(image.id)["Config"]
    env = config["Env"] or []
    assert not [item for item in env if SECRET_LIKE.search(item)]
    assert not [item for item in env if item.startswith(("PREFECT_API_KEY=", "PREFECT_API_URL="))]
    history = " ".join(entry.get("CreatedBy", "") for entry in client.api.history(image.id))
    assert not SECRET_LIKE.findall(history)
    try:
        password = registry_settings().password
    except DockerEnvError:
        password = None
    if password:
        assert password not in history and password not in " ".join(env)


@pytest.mark.docker
def test_worker_healthcheck_command_works_in_the_image(
    client: docker.DockerClient, image: BuiltImage
) -> None:
    """The deployment's healthcheck against a real `prefect worker start --with-healthcheck` in this image.

    A Prefect server runs in the same container (no network at all: --network none), the pool is created first
    because the worker is started with --no-create-pool-if-not-found, exactly as the deployment starts it.
    """
    # Without a worker the same probe fails: the check is not trivially true.
    code, output = run_in(client, image.id, HEALTHCHECK[1:], network_mode="none")
    assert code != 0, output

    script = (
        "set -e\n"
        "prefect server start --host 127.0.0.1 --port 4200 >/tmp/server.log 2>&1 &\n"
        "i=0\n"
        'until python -c "import urllib.request; urllib.request.urlopen('
        "'http://127.0.0.1:4200/api/health', timeout=2)\" 2>/dev/null; do\n"
        "  i=$((i+1)); if [ $i -gt 240 ]; then cat /tmp/server.log; exit 1; fi; sleep 0.5\n"
        "done\n"
        "prefect work-pool create image-test-pool --type process\n"
        "exec prefect worker start --pool image-test-pool --type process --name image-test-worker"
        " --with-healthcheck --install-policy never --no-create-pool-if-not-found\n"
    )
    container = client.containers.run(
        image.id,
        ["sh", "-c", script],
        detach=True,
        network_mode="none",
        environment={
            "PREFECT_API_URL": "http://127.0.0.1:4200/api",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        },
        healthcheck={
            "test": HEALTHCHECK,
            "interval": 2 * SECOND,
            "timeout": 5 * SECOND,
            "retries": 3,
            "start_period": 120 * SECOND,
        },
    )
    try:
        deadline = time.monotonic() + 150
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            container.reload()
            state = container.attrs["State"]
            if state.get("Health", {}).get("Status") == "healthy" or state["Status"] in ("exited", "dead"):
                break
            time.sleep(1)
        assert state.get("Health", {}).get("Status") == "healthy", (
            f"container {state.get('Status')}, health {json.dumps(state.get('Health'))[-1500:]}\n"
            f"logs:\n{container.logs().decode(errors='replace')[-3000:]}"
        )
        # The health server may answer a moment before the worker prints its banner.
        banner = "Worker 'image-test-worker' started!"
        deadline = time.monotonic() + 20
        while banner not in container.logs().decode(errors="replace") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert banner in container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)


# ------------------------------------------------------------------------------------------------ cache


@pytest.mark.docker
def test_flow_code_change_reuses_the_dependency_layer(
    client: docker.DockerClient, image: BuiltImage, tmp_path: Path
) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "uv.lock"):
        shutil.copy2(REPO_ROOT / name, context / name)
    for code_dir in ("worker", "flows"):
        shutil.copytree(
            REPO_ROOT / code_dir, context / code_dir, ignore=shutil.ignore_patterns("__pycache__")
        )
    probe = f"code-change-{uuid.uuid4().hex}"
    (context / "flows" / "_cache_probe.py").write_text(f"PROBE = {probe!r}\n")

    tag = f"suggest-activity:code-change-{uuid.uuid4().hex[:12]}"
    log: list[str] = []
    started = time.monotonic()
    # The deployment passes BASE_IMAGE explicitly; the same value keeps the cache.
    rebuilt = build_image(client, context, tag, buildargs={"BASE_IMAGE": BASE_IMAGE}, log=log)
    seconds = time.monotonic() - started
    try:
        assert rebuilt != image.id
        # Same intermediate image for the dependency step: it came from the cache...
        assert step_image_id(client, rebuilt, DEPS_STEP_MARKER) == step_image_id(
            client, image.id, DEPS_STEP_MARKER
        )
        deps_step = next(i for i, line in enumerate(log) if DEPS_STEP_MARKER in line and "Step" in line)
        assert "Using cache" in log[deps_step + 1], log[deps_step : deps_step + 3]
        # ...and only the flow code layer differs.
        before, after = layers(client, image.id), layers(client, rebuilt)
        assert len(after) == len(before)
        assert after[:-1] == before[:-1]
        assert after[-1] != before[-1]
        code, output = run_in(
            client, rebuilt, ["python", "-c", "import flows._cache_probe as p; print(p.PROBE)"]
        )
        assert (code, output.strip()) == (0, probe)
        assert seconds < 60, f"a code-only rebuild took {seconds:.0f}s"
    finally:
        client.images.remove(tag)


# ------------------------------------------------------------------------------------------------ registry


@pytest.fixture
def registry() -> RegistrySettings:
    return require_registry()


@pytest.fixture
def pushed_reference(
    client: docker.DockerClient, image: BuiltImage, registry: RegistrySettings
) -> Iterator[str]:
    repository = f"{registry.server}/suggest-activity-image-tests"
    tag = uuid.uuid4().hex[:12]
    client.images.get(image.id).tag(repository, tag)
    yield f"{repository}:{tag}"
    client.images.remove(f"{repository}:{tag}")


def registry_request(
    registry: RegistrySettings, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    token = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    request = urllib.request.Request(
        f"http://{registry.server}{path}",
        method=method,
        headers={"Authorization": f"Basic {token}", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


@pytest.mark.docker
def test_push_to_the_auth_registry(
    client: docker.DockerClient, registry: RegistrySettings, pushed_reference: str
) -> None:
    digest = push_image(client, pushed_reference, registry.auth_config)
    repository, tag = pushed_reference.rsplit(":", 1)
    assert digest.startswith(f"{repository}@sha256:")

    name = repository.split("/", 1)[1]
    status, body, _ = registry_request(registry, "GET", f"/v2/{name}/tags/list")
    assert status == 200 and tag in json.loads(body)["tags"]
    # Leave the registry as found: delete the manifest (blobs are shared with other pushes of this image).
    status, _, _ = registry_request(registry, "DELETE", f"/v2/{name}/manifests/{digest.split('@', 1)[1]}")
    assert status == 202


@pytest.mark.docker
def test_push_with_a_wrong_password_fails_clearly(
    client: docker.DockerClient, registry: RegistrySettings, pushed_reference: str
) -> None:
    wrong = {**registry.auth_config, "password": registry.password + "-wrong"}
    with pytest.raises(PushError) as failure:
        push_image(client, pushed_reference, wrong)
    message = str(failure.value)
    assert pushed_reference in message
    assert re.search(r"(?i)unauthorized|authentication required|no basic auth credentials", message), message
    assert wrong["password"] not in message


# ------------------------------------------------------------------------------------------------ helpers


@pytest.mark.docker
def test_build_failure_reports_the_last_log_lines(client: docker.DockerClient, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN echo broken-step-output-1234 && exit 3\n")
    with pytest.raises(BuildError) as failure:
        build_image(client, tmp_path, f"suggest-activity:broken-{uuid.uuid4().hex[:8]}")
    message = str(failure.value)
    assert "broken-step-output-1234" in message
    assert "returned a non-zero code: 3" in message
    assert str(tmp_path) in message


def test_missing_docker_skips_or_fails_by_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    monkeypatch.delenv("REQUIRE_SERVICES", raising=False)
    monkeypatch.delenv("REQUIRE_DOCKER", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"scripts/test-services\.sh"):
        require_docker()
    monkeypatch.setenv("REQUIRE_DOCKER", "1")
    with pytest.raises(pytest.fail.Exception, match=r"REQUIRE_DOCKER=1.*scripts/test-services\.sh"):
        require_docker()


def test_registry_settings_come_from_the_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TEST_SERVICES_DIR", str(tmp_path))
    with pytest.raises(DockerEnvError, match=r"registry\.password.*scripts/test-services\.sh"):
        registry_settings()
    (tmp_path / "registry.password").write_text("s3cret-value\n")
    settings = registry_settings()
    assert (settings.server, settings.username, settings.password) == (
        "localhost:5000",
        "ci-user",
        "s3cret-value",
    )
    assert "s3cret-value" not in repr(settings)
