"""The stack's configuration: read once from `pulumi.Config`, validated before any resource is declared.

Every problem names the config key and the `pulumi config set` that fixes it, and all problems are
reported together, so a bad stack fails fast and creates nothing.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pulumi

from infra.docker_endpoint import docker_host
from infra.prefect import (
    CLOUD_ONLY_POOL_TYPES,
    cron_problem,
    name_problem,
    timezone_problem,
    work_pool_name_problem,
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
# A registry host (optional port) followed by an optional namespace path, e.g. ghcr.io/acme or localhost:5000.
REGISTRY_PATTERN = re.compile(r"^[a-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)*$")
IMAGE_NAME_PATTERN = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*$")
MEMORY_FLOOR_MB = 256  # below this a Prefect worker cannot even import prefect


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
    # The Docker daemon of the image and the workers: `docker:host`, else DOCKER_HOST, else the local socket.
    docker_host: str


class _Reader:
    """Reads raw config values and collects problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self._configs = {ns: pulumi.Config(ns) for ns in ("prefect", "image", "docker", PROJECT)}

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def text(self, key: str, default: str | None = None) -> str | None:
        namespace, name = key.split(":", 1)
        value = self._configs[namespace].get(name)
        return default if value is None or value.strip() == "" else value.strip()

    def secret(self, key: str) -> pulumi.Output[str] | None:
        namespace, name = key.split(":", 1)
        return self._configs[namespace].get_secret(name)

    def integer(self, key: str, default: int | None, minimum: int) -> int | None:
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
    _check(read, f"{PROJECT}:poolName", work_pool_name_problem(pool_name, f"{PROJECT}:poolName"))
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

    pool_concurrency_limit = read.integer(f"{PROJECT}:poolConcurrencyLimit", None, minimum=0)

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
        memory_mb=read.integer(f"{PROJECT}:workerMemoryMb", 1024, minimum=MEMORY_FLOOR_MB) or 1024,
        poll_seconds=read.integer(f"{PROJECT}:workerPollSeconds", 5, minimum=1) or 5,
    )
    flow_parameters = read.obj(f"{PROJECT}:flowParameters")
    _check(read, f"{PROJECT}:flowParameters", flow_parameters_problem(flow_parameters))

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
        docker_host=docker_host(read.text("docker:host")),
    )


def _check(read: _Reader, key: str, problem: str | None, example: str | None = None) -> None:
    if not problem:
        return
    # The shared validators already name the field when it is passed to them.
    message = problem if problem.startswith(key) else f"{key}: {problem}"
    if example is not None:
        message = f"{message.rstrip('.')}; fix: pulumi config set {key} {example}"
    read.problems.append(message)


def _prefect_connection(read: _Reader) -> PrefectConnection:
    api_url = read.text("prefect:apiUrl")
    api_key = read.secret("prefect:apiKey")
    auth_string = read.secret("prefect:authString")
    # Like the providers: the variables Prefect users already have fill what the stack leaves out, and
    # credentials from the environment only go to the server the environment names.
    env_url = os.environ.get("PREFECT_API_URL", "").strip() or None
    if api_key is None and auth_string is None and (api_url is None or api_url == env_url):
        api_key = _secret_from_env("PREFECT_API_KEY")
        auth_string = _secret_from_env("PREFECT_API_AUTH_STRING")
    api_url = api_url or env_url
    if api_url is None:
        read.problem(
            "prefect:apiUrl",
            "is required; fix: pulumi config set prefect:apiUrl http://127.0.0.1:4200/api "
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
            "then pulumi config set --secret prefect:authString <user:pass>",
        )
        return PrefectConnection("", "", api_key, auth_string)
    parts = urlsplit(api_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        read.problem(
            "prefect:apiUrl",
            f"{api_url!r} is not an http(s) URL; fix: pulumi config set prefect:apiUrl http://127.0.0.1:4200/api",
        )
        return PrefectConnection(api_url, api_url, api_key, auth_string)
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
            read.problem(
                "prefect:apiKey",
                "Prefect Cloud needs an API key; fix: pulumi config set --secret prefect:apiKey <pnu_… or pnb_…>",
            )
    elif not parts.path.endswith("/api"):
        read.problem(
            "prefect:apiUrl",
            f"a self-hosted Prefect API URL ends in /api, got {api_url!r}; "
            f"fix: pulumi config set prefect:apiUrl {urlunsplit(parts._replace(path='/api'))}",
        )
    worker_api_url = read.text("prefect:workerApiUrl") or _as_seen_from_container(api_url)
    if _has_userinfo(worker_api_url):
        read.problem(
            "prefect:workerApiUrl",
            "contains user:pass@; it would be a plain-text variable of the worker container. "
            "fix: pulumi config set prefect:workerApiUrl <the URL without user:pass@>, "
            "then pulumi config set --secret prefect:authString <user:pass>",
        )
    return PrefectConnection(api_url, worker_api_url, api_key, auth_string)


def _has_userinfo(url: str) -> bool:
    """True when the URL's authority carries credentials (`http://user:pass@host/...`)."""
    return "@" in urlsplit(url if "://" in url else "//" + url).netloc


def _secret_from_env(name: str) -> pulumi.Output[str] | None:
    value = os.environ.get(name, "").strip()
    return pulumi.Output.secret(value) if value else None


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
        read.problem("image:name", f"{name!r} is not a valid image name (lowercase letters, digits, . _ -)")
    registry = read.text("image:registry")
    if registry is not None:
        registry = registry.rstrip("/")
        if not REGISTRY_PATTERN.match(registry):
            read.problem(
                "image:registry",
                f"{registry!r} is not a registry address; fix: pulumi config set image:registry ghcr.io/<org>",
            )
    push = read.boolean("image:push", registry is not None)
    username = read.text("image:username")
    password = read.secret("image:password")
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
    return ImageSettings(
        name=name,
        registry=registry,
        push=push,
        username=username,
        password=password,
        base_image=read.text("image:baseImage", DEFAULT_BASE_IMAGE) or DEFAULT_BASE_IMAGE,
    )


def flow_parameters_problem(parameters: dict[str, Any]) -> str | None:
    """Validate flow parameters against the flow's own schema, the one the deployment will enforce."""
    from prefect.utilities.schema_tools import ValidationError, validate

    from flows.bored_api import validate_filters

    schema = flow_parameter_schema()
    unknown = sorted(set(parameters) - set(schema.get("properties", {})))
    if unknown:
        return f"unknown flow parameter(s) {', '.join(unknown)}; the flow takes {', '.join(schema['properties'])}"
    fix = f"fix: pulumi config set --path '{PROJECT}:flowParameters.<name>' <value>"
    try:
        validate(parameters, schema, raise_on_error=True)
        # The schema says only "string" and "integer"; the flow's own filter rules say which values.
        validate_filters(parameters.get("activity_type"), parameters.get("participants"))
    except (ValidationError, ValueError) as error:
        return f"{error}; {fix}"
    return None


def flow_parameter_schema() -> dict[str, Any]:
    """The parameter schema `flow.deploy()` would send, computed by Prefect from the flow function."""
    from prefect.utilities.callables import parameter_schema

    from flows.suggest_activity import suggest_activity

    return parameter_schema(suggest_activity).model_dump(exclude_unset=True)
