"""Bad input, applied for real: every row fails with a message that names the config key (or the provider
property) and says how to fix it, and creates nothing.

Each row is applied the way `pulumi up` applies it: through the local engine (the real program, the real
provider host, real Docker builds) against a real Prefect server, or, for inputs the stack config cannot produce
(an empty deployment name, a pool named `prefect`, a negative limit reaching the provider), through the provider
host with the engine's check-then-create. Afterwards the server and the Docker engine are asked directly: no
work pool, deployment or flow appeared, and no container of the row's stack exists.

Where a row is caught (`stage`):
* config  — infra/config.py, before the program declares anything: no build, no provider call;
* check   — the provider's check(), before any request to Prefect;
* runtime — a request fails (unreachable API, 401) or the registry refuses the push. The image is built first
  (the work pool waits for it); that image stays in the local Docker daemon, which is harmless: it is what a
  plain `docker build` leaves, and the next `up` reuses it.

tests/test_program.py checks similar config rows under mocks (no engine, nothing to create); here each is
applied for real.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import docker
import docker.errors
import httpx
import pytest

from infra.config import StackConfigError, flow_parameter_schema
from infra.flow_deployment import ENTRYPOINT, FLOW_NAME, PULL_STEPS
from infra.prefect import DeploymentProvider, RetryPolicy, WorkPoolProvider
from tests.support.auth_server import basic_auth_server
from tests.support.docker_env import (
    PushError,
    RegistrySettings,
    require_docker,
    require_registry,
)
from tests.support.fault_proxy import FaultProxy
from tests.support.journey_stack import copy_project
from tests.support.local_engine import IMAGE, LocalEngine, StackRecord
from tests.support.prefect_server import PrefectServer
from tests.support.program_harness import CLOUD_URL
from tests.support.provider_host import CheckFailedError, ProviderCallError, ProviderHost, host_env
from tests.support.stack_checks import stack_containers

pytestmark = pytest.mark.docker

Stage = Literal["config", "check", "runtime"]
# Which API a row talks to: the session's open server, a server with basic auth, a port nobody listens on,
# or a Cloud-shaped workspace URL served (through a proxy) by the auth server.
Target = Literal["server", "auth-server", "closed-port", "cloud-proxy"]

AUTH_STRING = f"bad-admin:{secrets.token_hex(8)}"  # the auth server's real credentials
WRONG_AUTH_STRING = f"bad-admin:WrongPass-{secrets.token_hex(6)}"
WRONG_API_KEY = f"pnu_{secrets.token_hex(18)}"
WRONG_REGISTRY_PASSWORD = f"wrong-registry-{secrets.token_hex(6)}"
URL_PASSWORD = f"UrlPass-{secrets.token_hex(6)}"
ACCOUNT = "3f1c6a2e-8b7d-4c5e-9a0b-1c2d3e4f5a6b"
WORKSPACE = "7e6d5c4b-3a29-4180-8f7e-6d5c4b3a2918"
SERVER = "<server>"  # replaced by host:port of the row's Prefect server
REGISTRY_PASSWORD = "<registry-password>"  # replaced by the loopback registry's real password
SECRET_KEYS = (
    "prefect:apiKey",
    "prefect:authString",
    "image:password",
    "alerts:webhookUrl",
    "alerts:slackWebhookUrl",
)
# PrefectClient.request caps the connect timeout of each attempt at 5 s (see infra/prefect/client.py).
CONNECT_TIMEOUT_CAP_SECONDS = 5.0


@dataclass(frozen=True)
class Row:
    id: str
    stage: Stage
    names: tuple[str, ...]  # the config keys / provider properties the message must name
    says: tuple[str, ...]  # what is wrong and how to fix it: fragments the message must contain
    config: Mapping[str, str] = field(default_factory=dict)  # stack config over the row's base config
    target: Target = "server"
    # Provider-host rows: the resource type and the inputs that replace the valid base inputs.
    resource: tuple[Literal["prefect:WorkPool", "prefect:Deployment"], Mapping[str, Any]] | None = None
    push: bool = False  # push to the loopback registry (its server and user filled in by the test)
    plain: tuple[str, ...] = ()  # keys of SECRET_KEYS set WITHOUT --secret (in plain text in the stack file)


def config_row(row_id: str, key: str, value: str, *says: str) -> Row:
    return Row(row_id, "config", (key,), says, {key: value})


def pool_row(row_id: str, inputs: Mapping[str, Any], prop: str, *says: str) -> Row:
    return Row(row_id, "check", (prop,), says, resource=("prefect:WorkPool", inputs))


def deployment_row(row_id: str, inputs: Mapping[str, Any], prop: str, *says: str) -> Row:
    return Row(row_id, "check", (prop,), says, resource=("prefect:Deployment", inputs))


CRON_EXAMPLE = "e.g. '0 9 * * *' for 09:00 every day"
UNAUTHORIZED = "401 Unauthorized"

ROWS = [
    # --- caught by infra/config.py before anything is declared ----------------------------------------------
    config_row("cron-six-fields", "suggest-activity:cron", "0 9 * * * *", "has 6 field(s)", CRON_EXAMPLE),
    config_row("cron-macro", "suggest-activity:cron", "@daily", "has 1 field(s)", "use the 5 fields", CRON_EXAMPLE),
    config_row("cron-hour-25", "suggest-activity:cron", "0 25 * * *", "is not a valid cron expression", CRON_EXAMPLE),
    config_row("cron-day-32", "suggest-activity:cron", "0 9 32 * *", "is not a valid cron expression", CRON_EXAMPLE),
    config_row("cron-month-13", "suggest-activity:cron", "0 9 * 13 *", "is not a valid cron expression", CRON_EXAMPLE),
    config_row(
        "timezone-unknown", "suggest-activity:timezone", "Europe/Atlantis",
        "is not an IANA timezone name", "e.g. 'UTC' or 'Europe/Athens'",
    ),
    config_row(
        "pool-name-slash", "suggest-activity:poolName", "team/pool",
        "contains /", "Use '-' instead, e.g. 'team-pool'",
    ),
    config_row(
        "pool-name-reserved", "suggest-activity:poolName", "Prefect-Workers",
        "Prefect reserves", "choose a name without that prefix",
    ),
    config_row(
        "deployment-name-invalid", "suggest-activity:deploymentName", "daily&hourly",
        "contains &", "e.g. 'daily-hourly'",
    ),
    config_row(
        "pool-type-unknown", "suggest-activity:poolType", "spark",
        "'spark' is not supported", "pulumi config set suggest-activity:poolType process",
    ),
    config_row(
        "pool-type-cloud-only", "suggest-activity:poolType", "prefect:managed",
        "runs without a worker", "pulumi config set suggest-activity:poolType process",
    ),
    config_row(
        "pool-limit-negative", "suggest-activity:poolConcurrencyLimit", "-3",
        "must be >= 0, got -3", "pulumi config set suggest-activity:poolConcurrencyLimit 0",
    ),
    config_row(
        "replicas-zero", "suggest-activity:workerReplicas", "0",
        "must be >= 1, got 0", "pulumi config set suggest-activity:workerReplicas 1",
    ),
    config_row(
        "replicas-not-whole", "suggest-activity:workerReplicas", "1.5",
        "is not a whole number", "pulumi config set suggest-activity:workerReplicas <number>",
    ),
    Row(
        "cloud-url-without-key", "config", ("prefect:apiKey",),
        ("Prefect Cloud needs an API key", "pulumi config set --secret prefect:apiKey"),
        {"prefect:apiUrl": CLOUD_URL},
    ),
    config_row(
        "api-url-no-scheme", "prefect:apiUrl", "127.0.0.1:4200/api",
        "is not an http(s) URL", "pulumi config set prefect:apiUrl http://127.0.0.1:4200/api",
    ),
    config_row(
        "api-url-ftp", "prefect:apiUrl", "ftp://127.0.0.1:4200/api",
        "is not an http(s) URL", "pulumi config set prefect:apiUrl http://127.0.0.1:4200/api",
    ),
    config_row(
        "api-url-without-api-path", "prefect:apiUrl", "http://127.0.0.1:4200",
        "ends in /api", "pulumi config set prefect:apiUrl http://127.0.0.1:4200/api",
    ),
    config_row(
        "api-url-is-the-cloud-ui", "prefect:apiUrl",
        f"https://app.prefect.cloud/account/{ACCOUNT}/workspace/{WORKSPACE}",
        "Prefect UI", f"https://api.prefect.cloud/api/accounts/{ACCOUNT}/workspaces/{WORKSPACE}",
    ),
    config_row(
        "api-url-with-password", "prefect:apiUrl", f"http://bad-admin:{URL_PASSWORD}@{SERVER}/api",
        "user:pass", "pulumi config set --secret prefect:authString",
    ),
    config_row(
        "flow-parameter-wrong-type", "suggest-activity:flowParameters", '{"participants": "two"}',
        "'participants'", "pulumi config set --path 'suggest-activity:flowParameters.<name>'",
    ),
    config_row(
        "flow-parameter-unknown", "suggest-activity:flowParameters", '{"colour": "red"}',
        "unknown flow parameter(s) colour", "the flow takes api_url, activity_type, participants",
    ),
    config_row(
        "smoke-run-not-a-flag", "suggest-activity:smokeRun", "off",
        "'off' is not true or false", "pulumi config set suggest-activity:smokeRun true",
    ),
    config_row(
        "smoke-run-timeout-zero", "suggest-activity:smokeRunTimeoutSeconds", "0",
        "must be >= 1, got 0", "pulumi config set suggest-activity:smokeRunTimeoutSeconds 1",
    ),
    Row(
        "push-without-credentials", "config", ("image:username", "image:password"),
        ("pushing needs registry credentials", "pulumi config set image:username",
         "pulumi config set --secret image:password"),
        {"image:registry": "localhost:5000/bad", "image:push": "true"},
    ),
    # --- caught by the providers' check(), for inputs the stack config cannot produce ---------------------
    pool_row("pool-name-empty", {"name": ""}, "name", "name is required", "give a non-empty name"),
    pool_row(
        "pool-name-prefect", {"name": "prefect"}, "name",
        "Prefect reserves", "choose a name without that prefix, e.g. 'my-prefect'",
    ),
    pool_row(
        "pool-limit-below-zero", {"concurrency_limit": -1}, "concurrency_limit",
        "must be a whole number >= 0", "or None for no limit",
    ),
    pool_row("pool-type-spark", {"type": "spark"}, "type", "is not a known work pool type", "use one of"),
    deployment_row("deployment-name-empty", {"name": ""}, "name", "name is required", "give a non-empty name"),
    deployment_row(
        "deployment-parameter-schema", {"parameters": {"participants": "two"}}, "parameters",
        "parameters.participants", "fix the value, change parameter_openapi_schema",
    ),
    deployment_row(
        "schedule-cron-macro", {"schedules": [{"slug": "daily-0900", "cron": "@hourly"}]}, "schedules",
        "schedules['daily-0900'].cron '@hourly' has 1 field(s)", CRON_EXAMPLE,
    ),
    deployment_row(
        "schedule-timezone-unknown",
        {"schedules": [{"slug": "daily-0900", "cron": "0 9 * * *", "timezone": "Mars/Olympus"}]},
        "schedules", "schedules['daily-0900'].timezone 'Mars/Olympus' is not an IANA timezone name", "e.g. 'UTC'",
    ),
    deployment_row(
        "deployment-limit-zero", {"concurrency_limit": 0}, "concurrency_limit",
        "must be a whole number >= 1", "or None for no limit",
    ),
    # --- runtime: the request fails, or the registry refuses the push --------------------------------------
    Row(
        "api-unreachable", "runtime", ("prefect:apiUrl",),
        ("Connection refused", "attempt(s)", "reachable?"), target="closed-port",
    ),
    Row(
        "auth-string-wrong", "runtime", ("prefect:authString",),
        (UNAUTHORIZED, "did not accept the credentials", "to the server's user:pass"),
        {"prefect:authString": WRONG_AUTH_STRING}, target="auth-server",
    ),
    Row(
        "auth-string-missing", "runtime", ("prefect:authString",),
        (UNAUTHORIZED, "did not accept the credentials", "to the server's user:pass"), target="auth-server",
    ),
    Row(
        "api-key-for-a-basic-auth-server", "runtime", ("prefect:authString",),
        (UNAUTHORIZED, "did not accept the credentials", "to the server's user:pass"),
        {"prefect:apiKey": WRONG_API_KEY}, target="auth-server",
    ),
    Row(
        "cloud-api-key-wrong", "runtime", ("prefect:apiKey",),
        (UNAUTHORIZED, "did not accept the credentials", "the key belongs to this workspace"),
        {"prefect:apiKey": WRONG_API_KEY}, target="cloud-proxy", resource=("prefect:WorkPool", {}),
    ),
    Row(
        "registry-password-wrong", "runtime", ("localhost:5000/bad/suggest-activity",),
        ("unauthorized", "the registry refused the credentials of"),
        {"image:password": WRONG_REGISTRY_PASSWORD}, push=True,
    ),
    # --- inputs a server or daemon cannot take (docs/reliability.md, "What the servers accept"). Before the
    # stack config refused them, each reached Prefect or Docker and misbehaved there, as noted per row.
    config_row(  # the pool was created, then Docker refused the worker's name: a failure halfway
        "pool-name-not-a-container-name", "suggest-activity:poolName", "bad team-pool",
        "Docker allows only [a-zA-Z0-9][a-zA-Z0-9_.-]", "pulumi config set suggest-activity:poolName bad-team-pool",
    ),
    config_row(  # the server answered 500 (SQLite: OverflowError; Postgres columns are 32-bit)
        "pool-limit-beyond-the-database", "suggest-activity:poolConcurrencyLimit", "9223372036854775808",
        "must be <= 2147483647", "pulumi config set suggest-activity:poolConcurrencyLimit 2147483647",
    ),
    config_row(  # the pool was created, then the daemon answered 500 (json: cannot unmarshal ... int64)
        "worker-memory-beyond-docker", "suggest-activity:workerMemoryMb", "1000000000000000",
        "must be <= 4398046511103", "pulumi config set suggest-activity:workerMemoryMb 1024",
    ),
    config_row(  # everything was created; the server's scheduler logged CroniterBadDateError and planned no run
        "cron-never-fires", "suggest-activity:cron", "0 9 30 2 *", "never fires", CRON_EXAMPLE,
    ),
    config_row(  # the program crashed with a bare ValueError: Port out of range 0-65535
        "api-url-port-out-of-range", "prefect:apiUrl", "http://127.0.0.1:99999/api",
        "no valid port (1-65535)", "pulumi config set prefect:apiUrl http://127.0.0.1:4200/api",
    ),
    config_row(  # the image was built, then every request answered 404 Not Found
        "api-url-with-a-query", "prefect:apiUrl", f"http://{SERVER}/api?team=data",
        "?query or #fragment", "pulumi config set prefect:apiUrl http://127.0.0.1:",
    ),
    config_row(  # the pool and deployment were created; the worker never became healthy (wait timed out)
        "worker-api-url-loopback", "prefect:workerApiUrl", f"http://{SERVER}/api",
        "the container itself", "pulumi config set prefect:workerApiUrl http://host.docker.internal:",
    ),
    config_row(  # httpx/h11 refused the header: "Illegal header value b'Bearer pnu_…'", the key in the message
        "api-key-with-a-line-break", "prefect:apiKey", f"pnu_{secrets.token_hex(9)}\n{secrets.token_hex(9)}",
        "Authorization header", "pulumi config set --secret prefect:apiKey",
    ),
    config_row(  # a bare UnicodeEncodeError from the provider ('ascii' codec can't encode ...)
        "api-key-non-ascii", "prefect:apiKey", f"pnu_{secrets.token_hex(9)}ключ",
        "Authorization header", "pulumi config set --secret prefect:apiKey",
    ),
    Row(  # every request answered 500 Internal Server Error (hmac.compare_digest raises on non-ASCII)
        "auth-string-non-ascii", "config", ("prefect:authString",),
        ("non-ASCII", "500 Internal Server Error", "pulumi config set --secret prefect:authString"),
        {"prefect:authString": f"bad-admin:pässwörd-{secrets.token_hex(4)}"}, target="auth-server",
    ),
    Row(  # the providers trimmed it and created the pool and deployment; the worker sent it as is: 401, unhealthy
        "auth-string-with-a-trailing-newline", "config", ("prefect:authString",),
        ("leading or trailing whitespace", "pulumi config set --secret prefect:authString"),
        {"prefect:authString": AUTH_STRING + "\n"}, target="auth-server",
    ),
    Row(  # the registry refused the push (unauthorized) although the password itself was right
        "registry-password-with-a-trailing-newline", "config", ("image:password",),
        ("leading or trailing whitespace", "pulumi config set --secret image:password"),
        {"image:password": REGISTRY_PASSWORD + "\n"}, push=True,
    ),
    Row(  # Docker read 'registry' as a Docker Hub namespace and pushed to docker.io
        "registry-without-a-host", "config", ("image:registry",),
        ("Docker Hub namespace", "pulumi config set image:registry"),
        {"image:registry": "registry/bad", "image:password": REGISTRY_PASSWORD}, push=True,
    ),
    config_row(  # the build failed: invalid reference format
        "registry-path-docker-refuses", "image:registry", "localhost:5000/bad-",
        "is not a registry address", "pulumi config set image:registry",
    ),
    config_row(  # the build failed: repository name must not be more than 255 characters
        "image-name-too-long", "image:name", "a" * 256, "255 characters", "pulumi config set image:name",
    ),
    config_row(  # the build failed at FROM: invalid reference format: repository name must be lowercase
        "base-image-uppercase", "image:baseImage", "Python:3.12-slim",
        "is not an image reference", "pulumi config set image:baseImage python:3.12-slim",
    ),
    # The work pool was created, and then could never be read or deleted by name: '..' resolves away in the
    # URL (the read said "gone", the delete did nothing), a line break matches no route (404).
    pool_row("pool-name-dot-segment", {"name": ".."}, "name", "dot-segment", "choose another name"),
    pool_row("pool-name-line-break", {"name": "bad\npool"}, "name", "control character", "remove it"),
    # --- alerts (issue 12): where alerts go, refused before anything is created, the URL never repeated
    config_row(
        "alerts-webhook-url-empty", "alerts:webhookUrl", "",
        "alerts:webhookUrl is empty", "pulumi config set --secret alerts:webhookUrl", "pulumi config rm alerts:webhookUrl",
    ),
    config_row(
        "alerts-webhook-url-not-http", "alerts:webhookUrl", f"ftp://alerts.example.com/hooks/{secrets.token_hex(8)}",
        "is not an http(s) URL with a host (not shown: it is a secret)", "pulumi config set --secret alerts:webhookUrl",
    ),
    config_row(
        "alerts-webhook-url-with-a-line-break", "alerts:webhookUrl",
        f"https://alerts.example.com/hooks/{secrets.token_hex(8)}\n", "line breaks", "pulumi config set --secret",
    ),
    Row(
        "alerts-webhook-url-in-plain-text", "config", ("alerts:webhookUrl",),
        ("stored in plain text", "pulumi config set --secret alerts:webhookUrl"),
        {"alerts:webhookUrl": f"https://alerts.example.com/hooks/{secrets.token_hex(8)}"}, plain=("alerts:webhookUrl",),
    ),
    config_row(
        "alerts-slack-url-not-slack", "alerts:slackWebhookUrl", f"https://alerts.example.com/hooks/{secrets.token_hex(8)}",
        "is not a Slack incoming-webhook URL", "any other endpoint takes alerts:webhookUrl",
    ),
    config_row(
        "alerts-enabled-not-a-boolean", "alerts:enabled", "sometimes",
        "'sometimes' is not true or false", "pulumi config set alerts:enabled true",
    ),
]  # fmt: skip


# --------------------------------------------------------------------------------------------- environment


@dataclass
class BadInputEnv:
    docker: docker.DockerClient
    server: PrefectServer
    auth_server: PrefectServer
    project_dir: Path
    registry: RegistrySettings
    policy: RetryPolicy
    closed_port: int  # refuses connections (the `closed-port` rows' API)
    fast_failure_seconds: float = 0.0  # an `up` that fails at its first request (see the fixture)


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with basic_auth_server(tmp_path_factory.mktemp("bad-input-auth-server"), AUTH_STRING) as server:
        yield server


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory,
    prefect_server: PrefectServer,
    auth_server: PrefectServer,
    closed_port: int,
) -> BadInputEnv:
    client = require_docker(base_image="python:3.12-slim")
    environment = BadInputEnv(
        docker=client,
        server=prefect_server,
        auth_server=auth_server,
        project_dir=copy_project(tmp_path_factory.mktemp("bad-input") / "suggest-activity"),
        registry=require_registry(),
        policy=RetryPolicy.from_env(),  # the provider host inherits this process's environment
        closed_port=closed_port,
    )
    # The baseline of the unreachable-API bound: what an `up` costs that fails at its first request (a 401):
    # provider host, program, image build. The first run warms the build cache; the second is measured.
    for _ in range(2):
        started = time.monotonic()
        outcome = apply_row(environment, Row("baseline", "runtime", (), (), target="auth-server"), "badbase")
        environment.fast_failure_seconds = time.monotonic() - started
        assert isinstance(outcome.error, ProviderCallError), outcome.error
        assert UNAUTHORIZED in outcome.error.message
    return environment


# --------------------------------------------------------------------------------------------- applying


@dataclass
class Outcome:
    error: BaseException | None
    record: StackRecord | None  # the engine's record (engine rows)
    created: list[tuple[str, str, dict[str, Any]]]  # host rows: what create() made anyway, for cleanup


def api_url_for(env: BadInputEnv, target: Target, proxy: FaultProxy | None) -> str:
    if target == "server":
        return env.server.api_url
    if target == "auth-server":
        return env.auth_server.api_url
    if target == "closed-port":
        return f"http://127.0.0.1:{env.closed_port}/api"
    assert proxy is not None
    return f"{proxy.base_url}/api/accounts/{ACCOUNT}/workspaces/{WORKSPACE}"


def stack_config(env: BadInputEnv, row: Row, api_url: str) -> dict[str, str]:
    config = {
        "prefect:apiUrl": api_url,
        "image:push": "false",
        "suggest-activity:poolName": f"bad-{row.id}",
        "suggest-activity:deploymentName": f"bad-{row.id}",
        "suggest-activity:workerPollSeconds": "2",
    }
    if row.push:
        config.update(
            {
                "image:registry": f"{env.registry.server}/bad",
                "image:push": "true",
                "image:username": env.registry.username,
            }
        )
    server = env.server if row.target == "server" else env.auth_server
    for key, value in row.config.items():
        value = value.replace(SERVER, f"127.0.0.1:{server.port}")
        config[key] = value.replace(REGISTRY_PASSWORD, env.registry.password)
    return config


def base_inputs(row: Row, stack: str) -> dict[str, Any]:
    """Valid inputs of the row's resource, as the program would declare them."""
    assert row.resource is not None
    if row.resource[0] == "prefect:WorkPool":
        return {"name": f"bad-{row.id}", "type": "process"}
    return {
        "flow_name": FLOW_NAME,
        "name": f"bad-{row.id}",
        "work_pool_name": f"bad-{row.id}",
        "entrypoint": ENTRYPOINT,
        "pull_steps": PULL_STEPS,
        "parameter_openapi_schema": flow_parameter_schema(),
        "enforce_parameter_schema": True,
        "tags": ["suggest-activity", stack],
        "schedules": [{"slug": "daily-0900", "cron": "0 9 * * *", "timezone": "UTC"}],
    }


def apply_row(env: BadInputEnv, row: Row, stack: str) -> Outcome:
    proxy = FaultProxy(env.auth_server.api_url).start() if row.target == "cloud-proxy" else None
    try:
        config = stack_config(env, row, api_url_for(env, row.target, proxy))
        secret_keys = [key for key in SECRET_KEYS if key in config and key not in row.plain]
        if row.resource is None:
            engine = LocalEngine(
                project_dir=env.project_dir,
                stack=stack,
                config=config,
                secret_keys=secret_keys,
                docker_client=env.docker,
            )
            try:
                record = engine.up()
            except Exception as error:
                return Outcome(error, getattr(error, "record", None), [])
            return Outcome(None, record, [])
        # What the engine does for one resource: check (stop on failures), then create.
        typ, overrides = row.resource
        provider = WorkPoolProvider() if typ == "prefect:WorkPool" else DeploymentProvider()
        created: list[tuple[str, str, dict[str, Any]]] = []
        with ProviderHost(env.project_dir, env=host_env(), stack=stack) as host:
            host.configure(config, secret_keys)
            resource = host.resource(provider, typ)
            try:
                inputs = resource.check({**base_inputs(row, stack), **overrides}, allow_failures=False)
                resource_id, outputs = resource.create(inputs)
                created.append((typ, resource_id, outputs))
            except (CheckFailedError, ProviderCallError) as error:
                return Outcome(error, None, created)
        return Outcome(None, None, created)
    finally:
        if proxy is not None:
            proxy.stop()


def clean_up(env: BadInputEnv, row: Row, stack: str, outcome: Outcome) -> None:
    """Remove whatever a row created by mistake, so that one failure does not leak into later runs."""
    if outcome.record is not None and any(r.typ != IMAGE for r in outcome.record.resources):
        api_url = env.server.api_url if row.target == "server" else env.auth_server.api_url
        config = {"prefect:apiUrl": api_url, "prefect:authString": AUTH_STRING}
        LocalEngine(
            project_dir=env.project_dir,
            stack=stack,
            config=config,
            secret_keys=["prefect:authString"],
            docker_client=env.docker,
        ).destroy(outcome.record)
    for typ, resource_id, outputs in outcome.created:
        provider = WorkPoolProvider() if typ == "prefect:WorkPool" else DeploymentProvider()
        with ProviderHost(env.project_dir, env=host_env(), stack=stack) as host:
            host.configure({"prefect:apiUrl": env.server.api_url})
            host.resource(provider, typ).delete(resource_id, outputs)


# --------------------------------------------------------------------------------------------- what exists


class ServerView:
    """The Prefect server as a user sees it, read directly (not through the providers)."""

    def __init__(self, server: PrefectServer, auth_string: str | None = None) -> None:
        headers = {}
        if auth_string:
            headers["Authorization"] = "Basic " + base64.b64encode(auth_string.encode()).decode()
        self.http = httpx.Client(base_url=server.api_url, headers=headers, timeout=30)

    def objects(self) -> dict[str, set[str]]:
        """Every work pool, deployment and flow on the server (tests of this session run one at a time)."""
        found: dict[str, set[str]] = {}
        for kind in ("work_pools", "deployments", "flows"):
            response = self.http.post(f"/{kind}/filter", json={})
            response.raise_for_status()
            found[kind] = {f"{item['name']} ({item['id']})" for item in response.json()}
        return found

    def pool_status(self, name: str) -> int:
        return self.http.get(f"/work_pools/{quote(name, safe='')}").status_code


def container_names(client: docker.DockerClient, stack: str, names: list[str]) -> list[str]:
    """Containers of the stack: by the label the program sets, and by the worker names it would use."""
    found = {c.name for c in stack_containers(client, stack)}
    for name in names:
        with contextlib.suppress(docker.errors.NotFound):
            found.add(client.containers.get(name).name)
    return sorted(found)


def retry_worst_case_seconds(policy: RetryPolicy) -> float:
    """The longest one call to an API that does not answer can take under `policy`: every attempt waits out
    its connect timeout and every backoff is at its ceiling, the budget capping the total (the last attempt
    may start just before the deadline)."""
    connect = min(policy.timeout_seconds, CONNECT_TIMEOUT_CAP_SECONDS)
    backoffs = sum(
        min(policy.backoff_max_seconds, policy.backoff_base_seconds * 2 ** (attempt - 1))
        for attempt in range(1, policy.max_attempts)
    )
    return min(policy.max_attempts * connect + backoffs, policy.budget_seconds + connect)


def credential_forms(config: Mapping[str, str]) -> list[str]:
    """The row's credentials as they could leak: raw, the password half of user:pass, and base64."""
    forms = []
    if URL_PASSWORD in config.get("prefect:apiUrl", ""):
        forms += [URL_PASSWORD, base64.b64encode(f"bad-admin:{URL_PASSWORD}".encode()).decode()]
    for key in SECRET_KEYS:
        value = config.get(key)
        if value:
            forms += [value, value.split(":", 1)[-1], base64.b64encode(value.encode()).decode()]
    return forms


def message_of(error: BaseException) -> str:
    if isinstance(error, ProviderCallError):
        return error.message
    return str(error)


# --------------------------------------------------------------------------------------------- the table

EXPECTED_ERRORS: dict[Stage, tuple[type[BaseException], ...]] = {
    "config": (StackConfigError,),
    "check": (CheckFailedError,),
    "runtime": (ProviderCallError, PushError),
}


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_bad_input_fails_clearly_and_creates_nothing(row: Row, env: BadInputEnv) -> None:
    stack = f"bad{ROWS.index(row):02d}"
    pool_name = row.config.get("suggest-activity:poolName", f"bad-{row.id}")
    names = [f"{pool_name}-worker-{stack}-{index}" for index in range(2)]
    uses_auth_server = row.target in ("auth-server", "cloud-proxy")
    view = ServerView(env.auth_server, AUTH_STRING) if uses_auth_server else ServerView(env.server)
    before = view.objects()

    started = time.monotonic()
    outcome = apply_row(env, row, stack)
    seconds = time.monotonic() - started
    try:
        made = [r.name for r in outcome.record.resources] if outcome.record else outcome.created
        assert outcome.error is not None, f"{row.id} was accepted; it created {made}"
        error = outcome.error
        assert isinstance(error, EXPECTED_ERRORS[row.stage]), f"{row.id}: {type(error).__name__}: {error}"
        message = message_of(error)

        # A clear, actionable message: it names the key and says what is wrong and how to fix it.
        for name in row.names:
            assert name in message, f"{row.id}: {name!r} not named in:\n{message}"
        for fragment in row.says:
            assert fragment in message, f"{row.id}: {fragment!r} not in:\n{message}"
        if row.stage == "config":
            assert "nothing was created" in message
        # ...and it never echoes a credential, not even in the traceback the engine would print.
        shown = message + (error.details if isinstance(error, ProviderCallError) else "")
        for credential in credential_forms(stack_config(env, row, "")):
            assert credential not in shown, f"{row.id}: a credential is echoed in:\n{shown}"

        # Nothing was created: not in the engine's record, not on the server, not in Docker.
        if outcome.record is not None:
            built = {r.typ for r in outcome.record.resources}
            assert built <= ({IMAGE} if row.stage == "runtime" else set()), built
        assert outcome.created == []
        assert view.objects() == before
        assert view.pool_status(pool_name) == 404
        assert container_names(env.docker, stack, names) == []

        if row.target == "closed-port":
            # Bounded: the retry policy's worst case on top of an `up` that fails at its first request.
            policy = env.policy
            assert f"Gave up after {policy.max_attempts} attempt(s)" in message
            bound = env.fast_failure_seconds + retry_worst_case_seconds(policy)
            assert seconds <= bound, f"{row.id} took {seconds:.1f}s, bound {bound:.1f}s"
    finally:
        clean_up(env, row, stack, outcome)
