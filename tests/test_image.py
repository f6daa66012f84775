"""The flow image, built for real from the repository's Dockerfile with the classic builder.

One build (module fixture) serves every test that only inspects or runs the image; the cache test rebuilds a
copy of the context with a flow-code change. Needs `scripts/test-services.sh` (dockerd, the loopback registry
and the base image); skips without Docker, fails instead under REQUIRE_DOCKER=1.

The image tag (infra/image.py `content_tag`) is held against the context three real builds receive: the Go
client's and the Docker SDK's classic builds and a BuildKit build.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
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

from infra.image import build_context, content_tag
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


# ------------------------------------------------------------------------------------------------ the tag

# What users and editors leave beside the code. The .dockerignore allow-list keeps each of these out of the
# build context, so none may change the tag (and with it the image name and the deployment's version).
IGNORED_FILES = {
    "flows/.DS_Store": b"\x00\x00\x00\x01Bud1",  # Finder
    "flows/.suggest_activity.py.swp": b"b0VIM 9.0",  # vim swap file
    "flows/nested/.bored_api.py.swo": b"b0VIM 9.0",  # a second one, one level down
    "flows/.idea/workspace.xml": b"<project/>",  # an IDE's dot-directory, and what is in it
    "flows/__pycache__/bored_api.cpython-311.pyc": b"\x00pyc",
    "flows/nested/stale.pyc": b"\x00pyc",
    "flows/suggest_activity.py~": b"# an emacs backup\n",
    ".env": b"PREFECT_API_URL=http://127.0.0.1:4200/api\n",
    "notes.txt": b"not part of the image\n",
    "tests/test_more.py": b"def test_more() -> None: ...\n",
}
# Files the allow-list admits: each is in the build context, so each is in the image and must change the tag.
ADMITTED_FILES = {
    "flows/nested/helpers.py": b"HELP = 1\n",
    "flows/data file \u00fc.txt": b"spaces and non-ASCII in a name\n",
}


def image_inputs_copy(destination: Path) -> Path:
    """The files the real .dockerignore admits, copied (with their modes) into a fresh directory."""
    destination.mkdir()
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "uv.lock"):
        shutil.copy2(REPO_ROOT / name, destination / name)
    shutil.copytree(REPO_ROOT / "flows", destination / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    return destination


def add_files(root: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)


def test_files_the_build_context_leaves_out_keep_the_tag(tmp_path: Path) -> None:
    project = image_inputs_copy(tmp_path / "project")
    (project / "flows" / "nested").mkdir()  # a directory is part of the context (COPY creates it), even empty
    tag = content_tag(project, BASE_IMAGE)
    for name, content in IGNORED_FILES.items():
        add_files(project, {name: content})
        assert content_tag(project, BASE_IMAGE) == tag, (
            f"{name} is not in the build context but changed the tag"
        )


@pytest.mark.parametrize("change", ["file", "odd-name", "empty-dir", "symlink", "mode", "admitted-later"])
def test_each_change_to_the_build_context_changes_the_tag(change: str, tmp_path: Path) -> None:
    project = image_inputs_copy(tmp_path / "project")
    (project / "README.md").write_text("# excluded by the allow-list until it says otherwise\n")
    tag = content_tag(project, BASE_IMAGE)
    if change in ("file", "odd-name"):
        name = list(ADMITTED_FILES)[["file", "odd-name"].index(change)]
        add_files(project, {name: ADMITTED_FILES[name]})
    elif change == "empty-dir":
        (project / "flows" / "empty").mkdir()  # COPY flows/ creates it in the image
    elif change == "symlink":
        (project / "flows" / "alias.py").symlink_to("suggest_activity.py")
    elif change == "mode":
        (project / "flows" / "suggest_activity.py").chmod(0o755)  # COPY keeps the mode bits
    else:
        with (project / ".dockerignore").open("a") as ignore:
            ignore.write("!README.md\n")
    assert content_tag(project, BASE_IMAGE) != tag


# The build files: always in the context tar (pulumi-docker's `dockerBuild` keeps them with the Docker CLI's
# `TrimBuildFilesFromExcludes`), but the daemon may drop them after reading them (moby
# builder/remotecontext/detect.go `removeDockerfile` does, when .dockerignore matches them, as ours does).
BUILD_FILES = {"Dockerfile", ".dockerignore"}
# A context listing: the build copies its whole context into an image of nothing else.
LISTING_DOCKERFILE = "FROM scratch\nCOPY . /ctx/\n"


def tricky_context(root: Path) -> Path:
    """The image inputs plus every kind of file the tag must get right, with the real .dockerignore."""
    project = image_inputs_copy(root)
    add_files(project, {**IGNORED_FILES, **ADMITTED_FILES})
    (project / "flows" / "empty").mkdir()
    (project / "flows" / "alias.py").symlink_to("suggest_activity.py")
    (project / "flows" / "suggest_activity.py").chmod(0o755)
    (project / "README.md").write_text("# admitted by a line added to the allow-list\n")
    with (project / ".dockerignore").open("a") as ignore:
        ignore.write("!README.md\n")
    (project / "Dockerfile").write_text(LISTING_DOCKERFILE)
    return project


def tar_fingerprints(archive: bytes, prefix: str) -> dict[str, str]:
    """`build_context`'s fingerprints of what a tar holds under `prefix`, read from the tar's own entries."""
    found = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            name = member.name.rstrip("/")
            if not name.startswith(prefix):
                continue
            path, mode = name[len(prefix) :], f"{stat.S_IMODE(member.mode):04o}"  # Docker adds type bits
            if member.isdir():
                found[path] = f"dir {mode}"
            elif member.issym():
                found[path] = f"symlink {mode} -> {member.linkname}"
            else:
                content = tar.extractfile(member)
                assert content is not None, name
                found[path] = f"file {mode} sha256:{hashlib.sha256(content.read()).hexdigest()}"
    return found


def docker_clis() -> list[str]:
    """Every `docker` client on PATH (a v28 client without buildx, Debian's 20.10 with BuildKit built in...)."""
    found = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory, "docker")
        if os.access(candidate, os.X_OK) and candidate.resolve() not in {Path(f).resolve() for f in found}:
            found.append(str(candidate))
    return found


def listed_by_classic_build(client: docker.DockerClient, context: Path, via: str) -> dict[str, str]:
    """Build the listing with the classic builder, the context tar made by the Go client (`docker build`, the
    same `archive.TarWithOptions` + `TrimBuildFilesFromExcludes` as pulumi-docker) or by the Docker SDK (what
    the local engine uses); then read /ctx back out of the image."""
    tag = f"suggest-activity:context-listing-{uuid.uuid4().hex[:12]}"
    if via == "sdk":
        build_image(client, context, tag)
    else:
        clis = docker_clis()
        assert clis, "no docker client on PATH"
        done = subprocess.run(
            [clis[0], "build", "--quiet", "--tag", tag, str(context)],
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    container = client.containers.create(tag, command=["/none"])  # never started: scratch has no program
    try:
        stream, _ = container.get_archive("/ctx")
        return tar_fingerprints(b"".join(stream), "ctx/")
    finally:
        container.remove(force=True)
        client.images.remove(tag)


def listed_by_buildkit(context: Path, output: Path) -> dict[str, str]:
    """Build the listing with BuildKit (pulumi-docker's default builder) and export the result as a tar."""
    errors = []
    for cli in docker_clis():
        done = subprocess.run(
            [cli, "build", "--output", f"type=tar,dest={output}", str(context)],
            env={**os.environ, "DOCKER_BUILDKIT": "1"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode == 0:
            return tar_fingerprints(output.read_bytes(), "ctx/")
        errors.append(f"{cli}: {done.stderr.strip()[-300:]}")
    pytest.fail(
        "no docker client on PATH builds with BuildKit (Debian's docker.io does):\n" + "\n".join(errors)
    )


@pytest.mark.docker
@pytest.mark.parametrize("builder", ["docker-cli-classic", "docker-sdk-classic", "docker-cli-buildkit"])
def test_the_tag_hashes_exactly_what_the_build_context_sends(
    builder: str, client: docker.DockerClient, tmp_path: Path
) -> None:
    context = tricky_context(tmp_path / "context")
    hashed = build_context(context)
    if builder == "docker-cli-buildkit":
        received = listed_by_buildkit(context, tmp_path / "listing.tar")
    else:
        received = listed_by_classic_build(client, context, via=builder.split("-")[1])

    assert set(hashed) >= BUILD_FILES
    # Every other path, with its type, mode and content, is exactly what the build received...
    assert {p: f for p, f in hashed.items() if p not in BUILD_FILES} == {
        p: f for p, f in received.items() if p not in BUILD_FILES
    }
    # ...which is what the tricky files were made to show: the ignored ones are out, the admitted ones in.
    assert not set(IGNORED_FILES) & set(received)
    assert {*ADMITTED_FILES, "flows/empty", "flows/alias.py", "README.md"} <= set(received)
    assert received["flows/suggest_activity.py"].startswith("file 0755 ")


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
