"""The stack's configuration: read once from `pulumi.Config`, validated before any resource is declared.

Every problem names the config key and the `pulumi config set` that fixes it, and all problems are
reported together, so a bad stack fails fast and creates nothing.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pulumi

from infra import prefect_snapshots
from infra.docker_endpoint import docker_host
from infra.prefect import (
    CLOUD_ONLY_POOL_TYPES,
    cron_problem,
    name_problem,
    timezone_problem,
    webhook_url_problem,
    work_pool_name_problem,
)
from infra.prefect.validation import (
    DB_INTEGER_MAX,
    api_key_problem,
    auth_string_problem,
    validation_failure,
    whitespace_problem,
)

PROJECT = "suggest-activity"
DEFAULT_BASE_IMAGE = "python:3.12-slim"
# Pool types the program knows how to run a worker for (the provider itself accepts more).
SUPPORTED_POOL_TYPES = ("process", "docker")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "0.0.0.0", "::1"}
# How containers reach a server on the Docker host (with `host-gateway` added to /etc/hosts).
DOCKER_HOST_ALIAS = "host.docker.internal"
CLOUD_API_PATH = re.compile(r"^/api/accounts/[0-9a-f-]{36}/workspaces/[0-9a-f-]{36}/?$")
# What the Cloud UI shows in the address bar (app.prefect.cloud/account/<a>/workspace/<w>/...): not the API.
CLOUD_UI_PATH = re.compile(r"/account/(?P<account>[0-9a-f-]{36})/workspace/(?P<workspace>[0-9a-f-]{36})")
MEMORY_FLOOR_MB = 256  # below this a Prefect worker cannot even import prefect
# Docker keeps the memory limit in bytes as an int64 and, with no swap limit given, sets the swap limit to
# twice that: from 2**42 MB the stored swap limit wrapped negative, from 2**43 MB the daemon answered 500.
MEMORY_CEILING_MB = (2**63 - 1) // 2 // 2**20
# Docker's container names (moby daemon/names/names.go `RestrictedNamePattern`). Workers are named
# '<pool>-worker-<stack>-<n>', so the pool name has to fit it too.
CONTAINER_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
# Docker's image reference grammar, from distribution/reference regexp.go (tag and digest spelled out in
# ASCII as Go reads them) and reference.go (`NameTotalLengthMax`).
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
# A registry host (optional port) and an optional namespace path, e.g. ghcr.io/acme or localhost:5000.
REGISTRY_PATTERN = re.compile(rf"^(?P<host>{_HOST})(?::(?P<port>[0-9]+))?(?:/{_PATH})?$")
IMAGE_NAME_PATTERN = re.compile(rf"^{_PATH}$")
IMAGE_REFERENCE_PATTERN = re.compile(
    rf"^(?P<name>(?:{_HOST}(?::[0-9]+)?/)?{_PATH})(?::{_TAG})?(?:@{_DIGEST})?$"
)
REPOSITORY_MAX_LENGTH = 255


class StackConfigError(pulumi.RunError):
    """Bad stack configuration. A RunError, so `pulumi up` prints the message without a traceback."""


@dataclass(frozen=True)
class PrefectConnection:
    api_url: str
    # The same server as the worker container sees it (host.docker.internal instead of loopback).
    worker_api_url: str
    api_key: pulumi.Output[str] | None
    auth_string: pulumi.Output[str] | None

    @property
    def is_cloud(self) -> bool:
        return urlsplit(self.api_url).hostname == "api.prefect.cloud"

    @property
    def worker_needs_host_gateway(self) -> bool:
        return urlsplit(self.worker_api_url).hostname == DOCKER_HOST_ALIAS


@dataclass(frozen=True)
class ImageSettings:
    name: str
    registry: str | None
    push: bool
    username: str | None
    password: pulumi.Output[str] | None
    base_image: str

    @property
    def repository(self) -> str:
        return f"{self.registry}/{self.name}" if self.registry else self.name

    @property
    def registry_server(self) -> str | None:
        return self.registry.split("/", 1)[0] if self.registry else None


@dataclass(frozen=True)
class WorkerSettings:
    replicas: int
    memory_mb: int
    poll_seconds: int


@dataclass(frozen=True)
class ScheduleSettings:
    slug: str
    cron: str
    timezone: str
    active: bool


# --- smoke run (issue 13): one real run of the deployment before `pulumi up` returns ----------------------


@dataclass(frozen=True)
class SmokeRunSettings:
    enabled: bool
    timeout_seconds: int


# The time from a worker taking a run to the flow RUNNING (its flow timeout only starts then): the run's process
# or container starting, Python and Prefect importing, the pull step. Measured for a process pool about 5 s
# (benchmarks/smoke_run.py); a docker pool also starts a container from an image it may first pull.
RUN_START_ALLOWANCE_SECONDS = 60


def default_smoke_run_timeout(worker_poll_seconds: int) -> int:
    """How long a smoke run may take: up to one poll interval before a worker sees it, the time its run needs to
    start, then the flow's own timeout (a run still going by then ends TimedOut, a final state, with its
    message)."""
    return worker_poll_seconds + RUN_START_ALLOWANCE_SECONDS + prefect_snapshots.flow_timeout_seconds()


def _smoke_run_settings(read: _Reader, worker: WorkerSettings) -> SmokeRunSettings:
    default_timeout = default_smoke_run_timeout(worker.poll_seconds)
    timeout = read.integer(f"{PROJECT}:smokeRunTimeoutSeconds", default_timeout, minimum=1)
    return SmokeRunSettings(
        enabled=read.boolean(f"{PROJECT}:smokeRun", True), timeout_seconds=timeout or default_timeout
    )


# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackConfig:
    stack: str
    prefect: PrefectConnection
    image: ImageSettings
    pool_name: str
    pool_type: str
    pool_concurrency_limit: int | None
    worker: WorkerSettings
    deployment_name: str
    schedule: ScheduleSettings
    flow_parameters: dict[str, Any]
    smoke_run: SmokeRunSettings
    # The Docker daemon of the image and the workers: `docker:host`, else DOCKER_HOST, else the local socket.
    docker_host: str
    alerts: AlertSettings


# A credential's check: (value, key or variable, the command that sets it) -> a message or None.
CredentialCheck = Callable[[str, str, str], str | None]


class _Reader:
    """Reads raw config values and collects problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self._configs = {ns: pulumi.Config(ns) for ns in ("prefect", "image", "docker", PROJECT, "alerts")}

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def text(self, key: str, default: str | None = None) -> str | None:
        namespace, name = key.split(":", 1)
        value = self._configs[namespace].get(name)
        return default if value is None or value.strip() == "" else value.strip()

    def secret(self, key: str, problem: CredentialCheck, example: str) -> pulumi.Output[str] | None:
        """A secret key, checked in plain text here (the message never repeats it) and kept a secret."""
        namespace, name = key.split(":", 1)
        return _checked_secret(self, self._configs[namespace].get(name), key, problem, example)

    def integer(
        self, key: str, default: int | None, minimum: int, maximum: int | None = None, why: str = ""
    ) -> int | None:
        raw = self.text(key)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problem(key, f"{raw!r} is not a whole number; fix: pulumi config set {key} <number>")
            return default
        if value < minimum:
            self.problem(key, f"must be >= {minimum}, got {value}; fix: pulumi config set {key} {minimum}")
            return default
        if maximum is not None and value > maximum:
            fix = default if default is not None else maximum
            self.problem(
                key, f"must be <= {maximum} ({why}), got {value}; fix: pulumi config set {key} {fix}"
            )
            return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        raw = self.text(key)
        if raw is None:
            return default
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        self.problem(key, f"{raw!r} is not true or false; fix: pulumi config set {key} true")
        return default

    def obj(self, key: str) -> dict[str, Any]:
        raw = self.text(key)
        if raw is None:
            return {}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            self.problem(
                key,
                f"must be a JSON object, got {raw[:80]!r}; fix: pulumi config set --path '{key}.api_url' <url>",
            )
            return {}
        return value


def load_stack_config() -> StackConfig:
    """Read and validate the whole stack configuration, or raise StackConfigError listing every problem."""
    read = _Reader()
    prefect = _prefect_connection(read)
    image = _image_settings(read)

    pool_name = read.text(f"{PROJECT}:poolName", PROJECT) or PROJECT
    pool_name_problem = work_pool_name_problem(pool_name, f"{PROJECT}:poolName")
    _check(read, f"{PROJECT}:poolName", pool_name_problem)
    if pool_name_problem is None and not CONTAINER_NAME_PATTERN.match(pool_name):
        suggestion = re.sub(r"[^a-zA-Z0-9_.-]+", "-", pool_name).strip("-_.") or PROJECT
        read.problem(
            f"{PROJECT}:poolName",
            f"{pool_name!r} cannot begin the worker containers' names ('{pool_name}-worker-<stack>-<n>'): "
            f"Docker allows only [a-zA-Z0-9][a-zA-Z0-9_.-] in container names; "
            f"fix: pulumi config set {PROJECT}:poolName {suggestion}",
        )
    pool_type = read.text(f"{PROJECT}:poolType", "process") or "process"
    if pool_type not in SUPPORTED_POOL_TYPES:
        hint = (
            " (runs without a worker; this program manages one)" if pool_type in CLOUD_ONLY_POOL_TYPES else ""
        )
        read.problem(
            f"{PROJECT}:poolType",
            f"{pool_type!r} is not supported{hint}; use one of {', '.join(SUPPORTED_POOL_TYPES)}: "
            f"pulumi config set {PROJECT}:poolType process",
        )

    pool_concurrency_limit = read.integer(
        f"{PROJECT}:poolConcurrencyLimit",
        None,
        minimum=0,
        maximum=DB_INTEGER_MAX,
        why="Prefect's server keeps it in a 32-bit INTEGER column",
    )

    deployment_name = read.text(f"{PROJECT}:deploymentName", "daily") or "daily"
    _check(read, f"{PROJECT}:deploymentName", name_problem(deployment_name, f"{PROJECT}:deploymentName"))

    schedule = ScheduleSettings(
        slug=read.text(f"{PROJECT}:scheduleSlug", "daily-0900") or "daily-0900",
        cron=read.text(f"{PROJECT}:cron", "0 9 * * *") or "0 9 * * *",
        timezone=read.text(f"{PROJECT}:timezone", "UTC") or "UTC",
        active=read.boolean(f"{PROJECT}:scheduleActive", True),
    )
    _check(read, f"{PROJECT}:cron", cron_problem(schedule.cron, f"{PROJECT}:cron"), "'0 9 * * *'")
    _check(read, f"{PROJECT}:timezone", timezone_problem(schedule.timezone, f"{PROJECT}:timezone"), "UTC")

    worker = WorkerSettings(
        replicas=read.integer(f"{PROJECT}:workerReplicas", 1, minimum=1) or 1,
        memory_mb=read.integer(
            f"{PROJECT}:workerMemoryMb",
            1024,
            minimum=MEMORY_FLOOR_MB,
            maximum=MEMORY_CEILING_MB,
            why="Docker keeps memory and twice that for swap as 64-bit byte counts",
        )
        or 1024,
        poll_seconds=read.integer(f"{PROJECT}:workerPollSeconds", 5, minimum=1) or 5,
    )
    flow_parameters = read.obj(f"{PROJECT}:flowParameters")
    _check(read, f"{PROJECT}:flowParameters", flow_parameters_problem(flow_parameters))
    smoke_run = _smoke_run_settings(read, worker)
    if smoke_run.enabled and pool_concurrency_limit == 0:
        read.problem(
            f"{PROJECT}:poolConcurrencyLimit",
            "0 lets no run start, so every `pulumi up` would wait for its smoke run until the timeout and fail; "
            f"fix: pulumi config rm {PROJECT}:poolConcurrencyLimit (or set it >= 1), or turn the smoke run off: "
            f"pulumi config set {PROJECT}:smokeRun false",
        )
    alerts = _alert_settings(read)

    if read.problems:
        raise StackConfigError(
            "the stack configuration has problems, nothing was created:\n  - " + "\n  - ".join(read.problems)
        )
    return StackConfig(
        stack=pulumi.get_stack(),
        prefect=prefect,
        image=image,
        pool_name=pool_name,
        pool_type=pool_type,
        pool_concurrency_limit=pool_concurrency_limit,
        worker=worker,
        deployment_name=deployment_name,
        schedule=schedule,
        flow_parameters=flow_parameters,
        smoke_run=smoke_run,
        docker_host=docker_host(read.text("docker:host")),
        alerts=alerts,
    )


def _check(read: _Reader, key: str, problem: str | None, example: str | None = None) -> None:
    if not problem:
        return
    # The shared validators already name the field when it is passed to them.
    message = problem if problem.startswith(key) else f"{key}: {problem}"
    if example is not None:
        message = f"{message.rstrip('.')}; fix: pulumi config set {key} {example}"
    read.problems.append(message)


API_KEY_EXAMPLE = "pulumi config set --secret prefect:apiKey <pnu_… or pnb_…>"
AUTH_STRING_EXAMPLE = "pulumi config set --secret prefect:authString <user:pass>"
LOCAL_API_EXAMPLE = "http://127.0.0.1:4200/api"


def _prefect_connection(read: _Reader) -> PrefectConnection:
    api_url = read.text("prefect:apiUrl")
    api_key = read.secret("prefect:apiKey", api_key_problem, API_KEY_EXAMPLE)
    auth_string = read.secret("prefect:authString", auth_string_problem, AUTH_STRING_EXAMPLE)
    # Like the providers: the variables Prefect users already have fill what the stack leaves out, and
    # credentials from the environment only go to the server the environment names.
    env_url = os.environ.get("PREFECT_API_URL", "").strip() or None
    if api_key is None and auth_string is None and (api_url is None or api_url == env_url):
        api_key = _secret_from_env(read, "PREFECT_API_KEY", api_key_problem)
        auth_string = _secret_from_env(read, "PREFECT_API_AUTH_STRING", auth_string_problem)
    api_url = api_url or env_url
    if api_url is None:
        read.problem(
            "prefect:apiUrl",
            f"is required; fix: pulumi config set prefect:apiUrl {LOCAL_API_EXAMPLE} "
            "(local server) or your Prefect Cloud workspace URL (or export PREFECT_API_URL)",
        )
        return PrefectConnection("", "", api_key, auth_string)
    api_url = api_url.rstrip("/")
    if _has_userinfo(api_url):
        # Not echoed: the URL holds a password, and this key is plain text in the stack file and in state.
        read.problem(
            "prefect:apiUrl",
            "contains user:pass@; a URL is stored and shown in plain text (state, outputs, logs). "
            "fix: pulumi config set prefect:apiUrl <the URL without user:pass@>, "
            f"then {AUTH_STRING_EXAMPLE}",
        )
        return PrefectConnection("", "", api_key, auth_string)
    url_problem = _url_problem("prefect:apiUrl", api_url, LOCAL_API_EXAMPLE)
    if url_problem:
        read.problem("prefect:apiUrl", url_problem)
        return PrefectConnection(api_url, api_url, api_key, auth_string)
    parts = urlsplit(api_url)
    ui = CLOUD_UI_PATH.search(parts.path)
    if parts.hostname == "app.prefect.cloud" or ui:
        api = (
            f"https://api.prefect.cloud/api/accounts/{ui['account']}/workspaces/{ui['workspace']}"
            if ui
            else "https://api.prefect.cloud/api/accounts/<account-id>/workspaces/<workspace-id>"
        )
        read.problem(
            "prefect:apiUrl",
            f"{api_url!r} is the Prefect UI address, not the API; fix: pulumi config set prefect:apiUrl {api}",
        )
        return PrefectConnection(api_url, api_url, api_key, auth_string)
    if parts.hostname == "api.prefect.cloud":
        if not CLOUD_API_PATH.match(parts.path):
            read.problem(
                "prefect:apiUrl",
                "a Prefect Cloud URL must look like https://api.prefect.cloud/api/accounts/<account-id>/"
                "workspaces/<workspace-id>; copy it from `prefect cloud workspace ls` or the Cloud UI",
            )
        if api_key is None:
            read.problem("prefect:apiKey", f"Prefect Cloud needs an API key; fix: {API_KEY_EXAMPLE}")
    elif not parts.path.endswith("/api"):
        read.problem(
            "prefect:apiUrl",
            f"a self-hosted Prefect API URL ends in /api, got {api_url!r}; "
            f"fix: pulumi config set prefect:apiUrl {urlunsplit(parts._replace(path='/api'))}",
        )
    return PrefectConnection(api_url, _worker_api_url(read, api_url), api_key, auth_string)


def _worker_api_url(read: _Reader, api_url: str) -> str:
    """The API as the worker container reaches it: `prefect:workerApiUrl`, or `api_url` seen from a container."""
    key = "prefect:workerApiUrl"
    configured = read.text(key)
    if configured is None:
        return _as_seen_from_container(api_url)
    url = configured.rstrip("/")
    if _has_userinfo(url):
        read.problem(
            key,
            "contains user:pass@; it would be a plain-text variable of the worker container. "
            f"fix: pulumi config set {key} <the URL without user:pass@>, then {AUTH_STRING_EXAMPLE}",
        )
        return url
    problem = _url_problem(key, url, _as_seen_from_container(api_url))
    if problem is None:
        parts = urlsplit(url)
        if parts.hostname in LOOPBACK_HOSTS:
            problem = (
                f"{url!r} is a loopback address: inside the worker container that is the container itself, "
                f"not the Prefect server; fix: pulumi config set {key} {_as_seen_from_container(url)} "
                f"(or leave {key} unset: a loopback prefect:apiUrl is translated for the container)"
            )
        elif not (parts.path.endswith("/api") or CLOUD_API_PATH.match(parts.path)):
            problem = (
                f"a Prefect API URL ends in /api, got {url!r}; "
                f"fix: pulumi config set {key} {urlunsplit(parts._replace(path='/api'))}"
            )
    if problem:
        read.problem(key, problem)
    return url


def _url_problem(key: str, url: str, example: str) -> str | None:
    """What a URL needs before it can be the base of every request path: http(s), a host, a port that
    exists, nothing a client would mangle. (A query made every request of the providers answer 404; a port
    out of range crashed `urlsplit(...).port`.)"""
    if any(character.isspace() or not character.isprintable() for character in url):
        return f"{url!r} contains spaces or control characters; fix: pulumi config set {key} {example}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL; fix: pulumi config set {key} {example}"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port is not None and not 1 <= port <= 65535:
        return f"{url!r} has no valid port (1-65535); fix: pulumi config set {key} {example}"
    if "?" in url or "#" in url:
        base = urlunsplit(parts._replace(query="", fragment=""))
        return (
            f"{url!r} has a ?query or #fragment; it is the base every request path is appended to "
            f"(with a query every request answers 404 Not Found); fix: pulumi config set {key} {base}"
        )
    return None


def _has_userinfo(url: str) -> bool:
    """True when the URL's authority carries credentials (`http://user:pass@host/...`)."""
    return "@" in urlsplit(url if "://" in url else "//" + url).netloc


def _checked_secret(
    read: _Reader, raw: str | None, name: str, problem: CredentialCheck, example: str
) -> pulumi.Output[str] | None:
    if raw is None or not raw.strip():
        return None
    found = problem(raw, name, example)
    if found:
        read.problems.append(found)  # the check names the key or variable itself
    return pulumi.Output.secret(raw)


def _secret_from_env(read: _Reader, name: str, problem: CredentialCheck) -> pulumi.Output[str] | None:
    return _checked_secret(read, os.environ.get(name), name, problem, f"export {name}=<value>")


def _as_seen_from_container(api_url: str) -> str:
    """A loopback URL on the host is the Docker host alias inside a container."""
    parts = urlsplit(api_url)
    if parts.hostname not in LOOPBACK_HOSTS:
        return api_url
    netloc = DOCKER_HOST_ALIAS + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _image_settings(read: _Reader) -> ImageSettings:
    name = read.text("image:name", PROJECT) or PROJECT
    if not IMAGE_NAME_PATTERN.match(name):
        read.problem(
            "image:name",
            f"{name!r} is not an image name Docker accepts: lowercase letters and digits joined by '.', '_', "
            f"'__' or '-' (and '/' between parts); fix: pulumi config set image:name {PROJECT}",
        )
    registry = read.text("image:registry")
    if registry is not None:
        registry = registry.rstrip("/")
        _check(read, "image:registry", _registry_problem(registry))
    repository = f"{registry}/{name}" if registry else name
    if len(repository) > REPOSITORY_MAX_LENGTH:
        where = f"with image:registry {registry!r} " if registry else ""
        read.problem(
            "image:name",
            f"{where}makes a repository name of {len(repository)} characters; Docker allows "
            f"{REPOSITORY_MAX_LENGTH} characters at most; fix: pulumi config set image:name <a shorter name>",
        )
    push = read.boolean("image:push", registry is not None)
    username = read.text("image:username")
    password = read.secret(
        "image:password", whitespace_problem, "pulumi config set --secret image:password <token>"
    )
    if push:
        if registry is None:
            read.problem(
                "image:registry",
                "image:push is true but no registry is set; fix: pulumi config set image:registry <host>/<namespace>",
            )
        if username is None:
            read.problem(
                "image:username",
                "pushing needs registry credentials; fix: pulumi config set image:username <user>",
            )
        if password is None:
            read.problem(
                "image:password",
                "pushing needs registry credentials; fix: pulumi config set --secret image:password <token>",
            )
    base_image = read.text("image:baseImage", DEFAULT_BASE_IMAGE) or DEFAULT_BASE_IMAGE
    reference = IMAGE_REFERENCE_PATTERN.match(base_image)
    if reference is None or len(reference["name"]) > REPOSITORY_MAX_LENGTH:
        read.problem(
            "image:baseImage",
            f"{base_image!r} is not an image reference Docker accepts: name[:tag][@digest], the name in "
            f"lowercase; fix: pulumi config set image:baseImage {DEFAULT_BASE_IMAGE}",
        )
    return ImageSettings(
        name=name,
        registry=registry,
        push=push,
        username=username,
        password=password,
        base_image=base_image,
    )


def _registry_problem(registry: str) -> str | None:
    """A registry address Docker pushes to: its reference grammar, a port that exists, and a first part that
    Docker reads as a host (distribution/reference normalize.go `splitDockerDomain`: only with a '.', a
    ':port' or as 'localhost'; anything else is a Docker Hub namespace)."""
    fix = "fix: pulumi config set image:registry ghcr.io/<org> (localhost:5000/<team> for a local registry)"
    match = REGISTRY_PATTERN.match(registry)
    if match is None:
        return (
            f"{registry!r} is not a registry address Docker accepts: a host (and :port), then lowercase path "
            f"parts of letters and digits joined by '.', '_', '__' or '-'; {fix}"
        )
    host, port = match["host"], match["port"]
    if port is not None and not 1 <= int(port) <= 65535:
        return f"{registry!r} has no valid port (1-65535); {fix}"
    if port is None and "." not in host and host != "localhost" and not host.startswith("["):
        return (
            f"{registry!r} does not start with a registry host: Docker reads {host!r} (no '.', no :port, not "
            f"localhost) as a Docker Hub namespace and would push to docker.io/{registry}/…; "
            f"{fix}, or docker.io/<user> for Docker Hub"
        )
    return None


def flow_parameters_problem(parameters: dict[str, Any]) -> str | None:
    """Validate flow parameters against the flow's own schema, the one the deployment will enforce."""
    from flows.bored_api import validate_filters

    schema = flow_parameter_schema()
    unknown = sorted(set(parameters) - set(schema.get("properties", {})))
    if unknown:
        return f"unknown flow parameter(s) {', '.join(unknown)}; the flow takes {', '.join(schema['properties'])}"
    fix = f"fix: pulumi config set --path '{PROJECT}:flowParameters.<name>' <value>"
    # The message of Prefect's own `validate(..., raise_on_error=True)`, without importing Prefect.
    failure = validation_failure(parameters, schema)
    if failure:
        return f"{failure}; {fix}"
    try:
        # The schema says only "string" and "integer"; the flow's own filter rules say which values.
        validate_filters(parameters.get("activity_type"), parameters.get("participants"))
    except ValueError as error:
        return f"{error}; {fix}"
    return None


def flow_parameter_schema() -> dict[str, Any]:
    """The parameter schema `flow.deploy()` would send: Prefect's, committed (infra/prefect_snapshots.py)
    so that the program does not import Prefect to compute it."""
    return prefect_snapshots.flow_parameter_schema()


# --- alerts (issue 12): where to send them, read like the rest and never echoed -----------------------------

# prefect/blocks/notifications.py `SlackWebhook._SLACK_WEBHOOK_URL_PATTERN`: the URLs it sends to as Slack
# (anything else goes to Apprise's URL parser, which takes no plain https address).
SLACK_WEBHOOK_PATTERN = re.compile(
    r"^https?://hooks\.slack(?:-gov)?\.com/services/[A-Z0-9]+/[A-Z0-9]+/[A-Z0-9]+/?$", re.IGNORECASE
)
WEBHOOK_URL_EXAMPLE = "https://alerts.example.com/hooks/<token>"
SLACK_WEBHOOK_URL_EXAMPLE = "https://hooks.slack.com/services/<T…>/<B…>/<token>"


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts go (secrets; None: not there) and whether the automation is on (`alerts:enabled`)."""

    webhook_url: pulumi.Output[str] | None
    slack_webhook_url: pulumi.Output[str] | None
    enabled: bool


def _alert_settings(read: _Reader) -> AlertSettings:
    return AlertSettings(
        webhook_url=_alert_url(read, "alerts:webhookUrl", WEBHOOK_URL_EXAMPLE),
        slack_webhook_url=_alert_url(read, "alerts:slackWebhookUrl", SLACK_WEBHOOK_URL_EXAMPLE, slack=True),
        enabled=read.boolean("alerts:enabled", True),
    )


def _alert_url(read: _Reader, key: str, example: str, *, slack: bool = False) -> pulumi.Output[str] | None:
    """A webhook URL from the stack config: unset is None (no alerts there); set, it must be a secret http(s)
    URL. A webhook URL is a credential (anyone who has it can post): no message repeats it."""
    raw = read._configs["alerts"].get(key.split(":", 1)[1])
    if raw is None:
        return None
    fix = f"fix: pulumi config set --secret {key} {example} (or pulumi config rm {key})"
    problem = webhook_url_problem(raw, key, fix)
    if problem is None and slack and not SLACK_WEBHOOK_PATTERN.match(raw):
        problem = (
            f"{key} is not a Slack incoming-webhook URL like https://hooks.slack.com/services/… (not shown: it is "
            f"a secret); {fix}; any other endpoint takes alerts:webhookUrl"
        )
    if problem is None and not pulumi.runtime.is_config_secret(key):
        problem = (
            f"{key} is stored in plain text in the stack's config file; set it as a secret: "
            f"pulumi config set --secret {key} <url>"
        )
    if problem:
        read.problems.append(problem)
    return pulumi.Output.secret(raw)
