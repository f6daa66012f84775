"""The Docker side of the test environment: engine, loopback registry and image builds.

`scripts/test-services.sh` sets these up (as root): a Docker engine, a registry on localhost:5000 with
htpasswd auth whose password it keeps in its state dir, and the base image `python:3.12-slim` (a local
stand-in where no public registry is reachable). The helpers here are plain functions; only `require_*`
touch pytest, to skip a test where Docker is missing or, under REQUIRE_DOCKER=1 (CI), to fail it.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import docker
import docker.errors

SETUP_HINT = (
    "run `sudo bash scripts/test-services.sh` (it starts dockerd, the loopback registry and the base image)"
)
DEFAULT_STATE_DIR = "/var/tmp/suggest-activity-test-services"
REGISTRY_SERVER = "localhost:5000"
DEFAULT_REGISTRY_USER = "ci-user"
BASE_IMAGE = "python:3.12-slim"
# How many of the last build/push log lines an error message carries.
LOG_TAIL = 30


class DockerEnvError(RuntimeError):
    """A part of the Docker test environment is missing or broken; the message says what and how to fix it."""


class BuildError(RuntimeError):
    """`docker build` failed; the message ends with the last lines of the build log."""

    def __init__(self, message: str, log: list[str]) -> None:
        super().__init__(message)
        self.log = log


class PushError(RuntimeError):
    """`docker push` failed (e.g. the registry refused the credentials)."""


def state_dir() -> Path:
    """Where scripts/test-services.sh keeps its logs and the registry password (env TEST_SERVICES_DIR)."""
    return Path(os.environ.get("TEST_SERVICES_DIR", DEFAULT_STATE_DIR))


def docker_required() -> bool:
    """True in CI: a missing Docker engine is a failure there, not a reason to skip."""
    return any(os.environ.get(name, "") == "1" for name in ("REQUIRE_DOCKER", "REQUIRE_SERVICES"))


# ------------------------------------------------------------------------------------------------ engine


def docker_client(timeout: int = 300) -> docker.DockerClient:
    """A client for the engine in the environment (DOCKER_HOST or the default socket) that answers a ping."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise DockerEnvError(f"no Docker engine answers at {where} ({exc}); {SETUP_HINT}") from exc
    return client


def ensure_base_image(client: docker.DockerClient, name: str = BASE_IMAGE) -> None:
    """The project Dockerfile's base image must be present locally: no public registry is reachable here."""
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound as exc:
        raise DockerEnvError(f"base image {name} is not present locally; {SETUP_HINT}") from exc


# ------------------------------------------------------------------------------------------------ registry


@dataclass(frozen=True)
class RegistrySettings:
    """The loopback registry started by scripts/test-services.sh. The password is kept out of repr()."""

    server: str
    username: str
    password: str = field(repr=False)

    @property
    def auth_config(self) -> dict[str, str]:
        """For docker-py's push/pull `auth_config`."""
        return {"username": self.username, "password": self.password, "serveraddress": self.server}


def registry_settings() -> RegistrySettings:
    """Server, user and password of the loopback registry (the password is read from the state dir)."""
    directory = state_dir()
    password_file = directory / "registry.password"
    try:
        password = password_file.read_text().strip()
    except OSError as exc:
        raise DockerEnvError(
            f"cannot read the registry password {password_file} ({exc}); {SETUP_HINT}"
        ) from exc
    if not password:
        raise DockerEnvError(f"the registry password file {password_file} is empty; {SETUP_HINT}")
    username_file = directory / "registry.username"
    username = username_file.read_text().strip() if username_file.is_file() else DEFAULT_REGISTRY_USER
    return RegistrySettings(
        server=REGISTRY_SERVER, username=username or DEFAULT_REGISTRY_USER, password=password
    )


def check_registry(settings: RegistrySettings, timeout: float = 5) -> None:
    """The registry answers, and demands credentials (GET /v2/ without any is 401)."""
    url = f"http://{settings.server}/v2/"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        raise DockerEnvError(f"the registry at {url} does not answer ({exc}); {SETUP_HINT}") from exc
    if status != 401:
        raise DockerEnvError(
            f"the registry at {url} answered {status} without credentials, expected 401 (auth off?)"
        )


# ------------------------------------------------------------------------------------------------ pytest


def _unavailable(reason: str) -> NoReturn:
    import pytest

    if docker_required():
        pytest.fail(f"Docker is required here (REQUIRE_DOCKER=1) but unavailable: {reason}", pytrace=False)
    pytest.skip(f"Docker unavailable: {reason}")


def require_docker(base_image: str | None = None) -> docker.DockerClient:
    """A working client, or skip the test (fail it under REQUIRE_DOCKER=1) naming scripts/test-services.sh."""
    try:
        client = docker_client()
        if base_image:
            ensure_base_image(client, base_image)
    except DockerEnvError as exc:
        _unavailable(str(exc))
    return client


def require_registry() -> RegistrySettings:
    """The loopback registry's settings once it answers with auth on; skip or fail like require_docker()."""
    try:
        settings = registry_settings()
        check_registry(settings)
    except DockerEnvError as exc:
        _unavailable(str(exc))
    return settings


# ---------------------------------------------------------------------------------------------- build & push


def _stream_text(chunks: Iterable[Mapping[str, Any]], log: list[str]) -> tuple[str | None, str | None]:
    """Collects the lines of a decoded build stream into `log`; returns (image id, error message)."""
    image_id: str | None = None
    error: str | None = None
    for chunk in chunks:
        if "stream" in chunk:
            log.extend(line for line in str(chunk["stream"]).splitlines() if line.strip())
        if "status" in chunk:  # pulls of the base image
            log.append(" ".join(str(chunk[key]) for key in ("status", "progress") if chunk.get(key)))
        aux = chunk.get("aux")
        if isinstance(aux, Mapping) and aux.get("ID"):
            image_id = str(aux["ID"])
        if "error" in chunk or "errorDetail" in chunk:
            detail = chunk.get("errorDetail") or {}
            error = str(chunk.get("error") or detail.get("message") or chunk)
            log.append(f"ERROR: {error}")
    return image_id, error


def build_image(
    client: docker.DockerClient,
    context: str | os.PathLike[str],
    tag: str,
    buildargs: Mapping[str, str] | None = None,
    dockerfile: str = "Dockerfile",
    *,
    nocache: bool = False,
    log: list[str] | None = None,
) -> str:
    """Builds `context` with the classic builder (the low-level API; no BuildKit) and returns the image id.

    The build log is collected into `log` when given. On failure raises BuildError whose message names the
    context and tag and ends with the last lines of the log.
    """
    lines: list[str] = [] if log is None else log
    context = Path(context)
    try:
        chunks = client.api.build(
            path=str(context),
            tag=tag,
            dockerfile=dockerfile,
            buildargs=dict(buildargs or {}),
            nocache=nocache,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        )
        image_id, error = _stream_text(chunks, lines)
    except docker.errors.APIError as exc:
        image_id, error = None, str(exc)
        lines.append(f"ERROR: {exc}")
    if error is None and image_id is None:
        # Old engines do not send the aux ID message: the tag is authoritative.
        try:
            image_id = client.images.get(tag).id
        except docker.errors.ImageNotFound:
            error = f"the build ended without an image tagged {tag}"
    if error is not None or image_id is None:
        tail = "\n".join(f"    | {line}" for line in deque(lines, maxlen=LOG_TAIL))
        raise BuildError(
            f"docker build of {context} ({dockerfile}, tag {tag}) failed: {error}\n"
            f"last build log lines:\n{tail}",
            lines,
        )
    return image_id


def push_image(
    client: docker.DockerClient, reference: str, auth_config: Mapping[str, str] | None = None
) -> str:
    """Pushes `repository:tag` and returns its repo digest (`repository@sha256:…`); PushError when refused."""
    repository, _, tag = reference.rpartition(":")
    if not repository or "/" in tag:
        raise ValueError(f"not a repository:tag reference: {reference!r}")
    lines: list[str] = []
    error: str | None = None
    try:
        for chunk in client.api.push(
            repository, tag=tag, auth_config=dict(auth_config or {}), stream=True, decode=True
        ):
            if "status" in chunk:
                lines.append(" ".join(str(chunk[key]) for key in ("id", "status") if chunk.get(key)))
            if "error" in chunk or "errorDetail" in chunk:
                error = str(chunk.get("error") or (chunk.get("errorDetail") or {}).get("message") or chunk)
    except docker.errors.APIError as exc:
        error = str(exc)
    if error is not None:
        if re.search(r"(?i)unauthorized|authentication required|no basic auth credentials", error):
            user = (auth_config or {}).get("username")
            error += f" (the registry refused {'the credentials of ' + user if user else 'to push without credentials'})"
        tail = "\n".join(f"    | {line}" for line in deque(lines, maxlen=5))
        raise PushError(f"push of {reference} failed: {error}\n{tail}".rstrip())
    digests = client.images.get(reference).attrs.get("RepoDigests") or []
    for digest in digests:
        if digest.startswith(repository + "@"):
            return str(digest)
    raise PushError(f"push of {reference} reported success but the image has no digest for {repository}")


# ------------------------------------------------------------------------------------------------ inspection


def step_image_id(client: docker.DockerClient, image: str, marker: str) -> str:
    """The id of the intermediate image that the Dockerfile step whose command contains `marker` produced.

    Only for images built on this engine (pulled images have no intermediate ids). The classic builder reuses
    a cached step together with its intermediate image, so an unchanged id across two builds means the step
    (and every step before it) came from the cache.
    """
    matches = [entry for entry in client.api.history(image) if marker in entry.get("CreatedBy", "")]
    if len(matches) != 1:
        raise AssertionError(
            f"expected one history step of {image} containing {marker!r}, found {len(matches)}"
        )
    step_id = str(matches[0].get("Id", ""))
    if not step_id.startswith("sha256:"):
        raise AssertionError(f"{image} has no local intermediate image for the step {marker!r} ({step_id})")
    return step_id


def layers(client: docker.DockerClient, image: str) -> list[str]:
    """The image's filesystem layers (diff ids), base first."""
    return list(client.api.inspect_image(image)["RootFS"]["Layers"])
