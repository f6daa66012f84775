"""Secrets and least privilege, checked on stacks applied for real.

Known fake credentials (a Cloud-style API key, a `user:pass` auth string) and the loopback registry's real
password go into two stacks that the local engine applies for real:

* `secdocker`: a docker work pool on a Prefect server with basic auth (`prefect:authString`), its image pushed to
  the loopback registry (`image:password`); one flow run is triggered, and its per-run container inspected;
* `secprocess`: a process work pool with `prefect:apiKey` (the session's open server ignores the Bearer header,
  so the key really travels to the server, the worker and its runs), and alerts to a webhook and to Slack
  (`alerts:webhookUrl`, `alerts:slackWebhookUrl`: no run fails here, so neither is ever called).

`secdocker` keeps the smoke run on: its `up` runs the flow once more through the auth server (the check's own
requests carry the auth string), and that run's objects and logs are scanned too. `secprocess` turns it off:
its flow has no Bored API to call, and the key's way to the server and the worker is what it shows.

Then everything the tests can see is scanned for each credential (raw, the password half of `user:pass`, and
base64 as in HTTP and registry auth): the engine's record, `docker inspect` of the workers and of the flow-run
container, the image's history and every byte of its layers, what the provider hosts printed, the worker logs,
the objects and logs on the Prefect server, the stack exports and the pickled `__provider`. A credential may be
only where it must be: the worker's environment (which its flow runs inherit), the image resource's registry
credentials and a notification block's `url`. Under the real engine these are secret-wrapped inputs, encrypted in
state; tests/test_program.py checks that wrapping on the values the program registers. The local engine's record
keeps a dynamic resource's secrets wrapped the way the engine does (tests/support/engine_secrets.py): there a
credential must be inside a secret; pulumi-docker's secret handling is not modelled (its values are recorded
revealed), so for the worker and the image the check is on where they are.

Provider error messages are checked with failing requests that carry credentials (a proxy records the
Authorization header actually sent). Least privilege is read from Docker and from `/proc/1/status` inside the
containers.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from infra.config import flow_parameter_schema
from infra.docker_endpoint import DOCKER_SOCKET
from infra.flow_deployment import ENTRYPOINT, FLOW_NAME, PULL_STEPS
from infra.prefect import DeploymentProvider, NotificationBlockProvider, WorkPoolProvider
from tests.support.auth_server import basic_auth_server
from tests.support.docker_env import RegistrySettings, require_registry
from tests.support.engine_secrets import leaves
from tests.support.fake_bored_api import FakeBoredApi
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.journey_stack import copy_project, quiet_timezone
from tests.support.local_engine import CONTAINER, DYNAMIC_PREFIX, IMAGE, LocalEngine, StackRecord
from tests.support.prefect_server import PrefectServer
from tests.support.provider_host import ProviderCallError, ProviderHost, host_env
from tests.support.stack_checks import PrefectApi

pytestmark = pytest.mark.docker

BLOCK = f"{DYNAMIC_PREFIX}prefect:NotificationBlock"
AUTOMATION = f"{DYNAMIC_PREFIX}prefect:Automation"

API_KEY = f"pnu_{secrets.token_hex(18)}"
AUTH_STRING = f"sec-user:sec-pass-{secrets.token_hex(8)}"
WRONG_AUTH_STRING = f"sec-user:WrongPass-{secrets.token_hex(8)}"
WRONG_API_KEY = f"pnu_wrong{secrets.token_hex(16)}"
URL_PASSWORD = f"UrlPass-{secrets.token_hex(8)}"
WEBHOOK_URL = f"http://127.0.0.1:9/sec-alerts/{secrets.token_hex(12)}"  # port 9: nothing listens
SLACK_URL = f"https://hooks.slack.com/services/T{secrets.token_hex(4)}/B{secrets.token_hex(4)}/{secrets.token_hex(12)}"
ACCOUNT = "5d3c2b1a-0f9e-4d8c-b7a6-958473625140"
WORKSPACE = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
NON_ROOT = "10001:10001"  # the Dockerfile's USER
FLOW_RUN_LABEL = "io.prefect.flow-run-id"  # prefect-docker's label on a run's container
RUN_TIMEOUT_SECONDS = 240


# --------------------------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class Credential:
    name: str
    value: str
    user: str | None = None  # for a password whose user is known (registry auth encodes user:password)
    worker: bool = True  # the worker needs it (in its environment); a registry password or a webhook does not

    def forms(self) -> dict[str, bytes]:
        """How the credential could leak: as is, the password half of user:pass, base64 as in auth headers."""
        forms = {self.name: self.value, f"{self.name} (base64)": _b64(self.value)}
        if ":" in self.value:
            forms[f"{self.name} (password part)"] = self.value.split(":", 1)[1]
        if self.user:
            forms[f"{self.name} (base64 of user:password)"] = _b64(f"{self.user}:{self.value}")
        return {name: text.encode() for name, text in forms.items()}


ALERT_CREDENTIALS = [
    Credential("webhook URL", WEBHOOK_URL, worker=False),
    Credential("Slack webhook URL", SLACK_URL, worker=False),
]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def leaks(data: str | bytes, credentials: Iterable[Credential]) -> list[str]:
    """Which forms of which credentials occur in `data` (names only: never print a credential)."""
    raw = data.encode(errors="replace") if isinstance(data, str) else data
    return [name for c in credentials for name, form in c.forms().items() if form in raw]


def stream_leaks(chunks: Iterable[bytes], credentials: Iterable[Credential]) -> set[str]:
    """`leaks` over a byte stream too large to hold, keeping an overlap so no match spans a chunk border."""
    credentials = list(credentials)
    overlap = max(len(form) for c in credentials for form in c.forms().values()) - 1
    found: set[str] = set()
    tail = b""
    for chunk in chunks:
        window = tail + chunk
        found.update(leaks(window, credentials))
        tail = window[-overlap:]
    return found


# --------------------------------------------------------------------------------------------- the stacks


@dataclass
class AppliedStack:
    engine: LocalEngine
    api: PrefectApi
    credentials: list[Credential]  # what this stack was given
    record: StackRecord = field(default_factory=StackRecord)
    host_logs: list[str] = field(default_factory=list)
    run_id: str | None = None
    run_container: dict[str, Any] | None = None  # `docker inspect` of the flow run's container
    run_process: str | None = None  # /proc/1/status inside it, read while it ran

    def workers(self) -> list[Any]:
        return [self.engine.docker.containers.get(r.id) for r in self.record.resources if r.typ == CONTAINER]

    def one(self, typ: str) -> dict[str, Any]:
        (resource,) = self.record.of_type(typ)
        return resource.outputs


def authed_api(server: PrefectServer, auth_string: str | None) -> PrefectApi:
    api = PrefectApi(server.api_url)
    if auth_string:
        api.http.headers["Authorization"] = f"Basic {_b64(auth_string)}"
    return api


@pytest.fixture(scope="module")
def registry() -> RegistrySettings:
    return require_registry()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with basic_auth_server(tmp_path_factory.mktemp("secrets-auth-server"), AUTH_STRING) as server:
        yield server


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("secrets") / "suggest-activity")


def apply(stack: AppliedStack) -> None:
    try:
        stack.record = stack.engine.up()
    except Exception as error:
        stack.engine.destroy(getattr(error, "record", StackRecord()))
        raise


@pytest.fixture(scope="module")
def docker_stack(
    docker_client: docker.DockerClient,
    registry: RegistrySettings,
    auth_server: PrefectServer,
    project_dir: Path,
    bored_api: FakeBoredApi,
) -> Iterator[AppliedStack]:
    """Docker pool, basic auth, a pushed image; one flow run whose container is inspected while it runs."""
    config = {
        "prefect:apiUrl": auth_server.api_url,
        "prefect:authString": AUTH_STRING,
        "image:registry": f"{registry.server}/sec",
        "image:push": "true",
        "image:username": registry.username,
        "image:password": registry.password,
        "suggest-activity:poolName": "sec-docker",
        "suggest-activity:timezone": quiet_timezone(),
        "suggest-activity:poolType": "docker",
        "suggest-activity:workerPollSeconds": "1",
        "suggest-activity:flowParameters": json.dumps(
            {"api_url": bored_api.url_for_host("host.docker.internal")}
        ),
    }
    logs: list[str] = []
    engine = LocalEngine(
        project_dir=project_dir,
        stack="secdocker",
        config=config,
        secret_keys=["prefect:authString", "image:password"],
        docker_client=docker_client,
        host_logs=logs,
    )
    credentials = [
        Credential("auth string", AUTH_STRING),
        Credential("registry password", registry.password, user=registry.username, worker=False),
    ]
    stack = AppliedStack(engine, authed_api(auth_server, AUTH_STRING), credentials, host_logs=logs)
    apply(stack)
    try:
        # The smoke run, through the auth server, completed before `up` returned.
        assert stack.one(f"{DYNAMIC_PREFIX}prefect:FlowRunCheck")["state_name"] == "Completed"
        stack.api.wait_for_pool_status("sec-docker", "READY")
        stack.run_id = stack.api.trigger(stack.one(f"{DYNAMIC_PREFIX}prefect:Deployment")["deployment_id"])
        stack.run_container, stack.run_process = catch_run_container(docker_client, stack.run_id)
        run = stack.api.wait_for_run(stack.run_id, RUN_TIMEOUT_SECONDS)
        assert run["state_type"] == "COMPLETED", run["state"]["message"]
        yield stack
    finally:
        engine.destroy(stack.record)


@pytest.fixture(scope="module")
def process_stack(
    docker_client: docker.DockerClient, prefect_server: PrefectServer, project_dir: Path
) -> Iterator[AppliedStack]:
    """Process pool with a Cloud-style API key, sent as a Bearer token to a server that ignores it."""
    config = {
        "prefect:apiUrl": prefect_server.api_url,
        "prefect:apiKey": API_KEY,
        "image:push": "false",
        "suggest-activity:poolName": "sec-process",
        "suggest-activity:timezone": quiet_timezone(),
        "suggest-activity:workerPollSeconds": "1",
        "suggest-activity:smokeRun": "false",  # see the module docstring
        "alerts:webhookUrl": WEBHOOK_URL,
        "alerts:slackWebhookUrl": SLACK_URL,
    }
    logs: list[str] = []
    engine = LocalEngine(
        project_dir=project_dir,
        stack="secprocess",
        config=config,
        secret_keys=["prefect:apiKey", "alerts:webhookUrl", "alerts:slackWebhookUrl"],
        docker_client=docker_client,
        host_logs=logs,
    )
    credentials = [Credential("API key", API_KEY), *ALERT_CREDENTIALS]
    stack = AppliedStack(engine, PrefectApi(prefect_server.api_url), credentials, host_logs=logs)
    apply(stack)
    try:
        stack.api.wait_for_pool_status("sec-process", "READY")  # the worker works with the key
        yield stack
    finally:
        engine.destroy(stack.record)


def catch_run_container(client: docker.DockerClient, run_id: str) -> tuple[dict[str, Any], str | None]:
    """The flow run's container, inspected before auto_remove deletes it (it lives while the run imports
    Prefect and runs, several seconds), and its PID 1's /proc status once it runs."""
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        found = client.containers.list(all=True, filters={"label": f"{FLOW_RUN_LABEL}={run_id}"})
        if not found:
            time.sleep(0.1)
            continue
        container = found[0]
        attrs, status = container.attrs, None
        with contextlib.suppress(docker.errors.APIError):  # gone already (NotFound is an APIError)
            while container.status == "created" and time.monotonic() < deadline:
                time.sleep(0.05)  # listed before it is started: exec needs it running
                container.reload()
            code, output = container.exec_run(["cat", "/proc/1/status"])
            status = output.decode() if code == 0 else None
        return attrs, status
    raise AssertionError(f"no container labelled {FLOW_RUN_LABEL}={run_id} within {RUN_TIMEOUT_SECONDS}s")


def proc_status(container: Any) -> dict[str, str]:
    code, output = container.exec_run(["cat", "/proc/1/status"])
    assert code == 0, output
    return parse_proc_status(output.decode())


def parse_proc_status(text: str) -> dict[str, str]:
    return {key: value.strip() for key, _, value in (line.partition(":") for line in text.splitlines())}


# --------------------------------------------------------------------------------------------- (a) scans

ALLOWED_IN_RECORD: dict[str, re.Pattern[str]] = {
    # The worker's environment: how the worker (and the runs it starts) authenticate.
    CONTAINER: re.compile(r"\.envs\[\d+\]"),
    # pulumi-docker's Image needs the registry password to push (a secret input under the real engine).
    IMAGE: re.compile(r"\.registry\.password"),
}


@pytest.fixture(params=["docker_stack", "process_stack"])
def stack(request: pytest.FixtureRequest) -> AppliedStack:
    applied: AppliedStack = request.getfixturevalue(request.param)
    return applied


def test_engine_record_holds_credentials_only_in_secrets_the_worker_env_and_registry_auth(
    stack: AppliedStack,
) -> None:
    found: list[str] = []
    seen_where_allowed: set[str] = set()
    for resource in stack.record.resources:
        for part in ("inputs", "outputs"):
            for path, leaf, secret in leaves(getattr(resource, part)):
                text = str(leaf)
                if path == ".__provider":
                    # The provider is pickled into every resource's state: no credential, no settings.
                    text = base64.b64decode(text).decode("latin-1")
                    assert "_connection" not in text, f"{resource.name}: connection settings pickled"
                hits = leaks(text, stack.credentials)
                allowed = ALLOWED_IN_RECORD.get(resource.typ)
                if hits and (secret or (allowed is not None and allowed.fullmatch(path))):
                    seen_where_allowed.update(hits)  # encrypted in state, or where pulumi-docker needs it
                else:
                    found += [f"{resource.name} {part}{path}: {hit}" for hit in hits]
    found += [
        f"export {key}: {hit}"
        for key, value in stack.record.exports.items()
        for hit in leaks(str(value), stack.credentials)
    ]
    assert found == []
    # The scan does see them where they belong: the credentials did reach the worker (and the registry, the
    # notification blocks).
    assert {c.name for c in stack.credentials} <= seen_where_allowed


def test_worker_container_shows_credentials_only_in_its_environment(stack: AppliedStack) -> None:
    for worker in stack.workers():
        worker.reload()
        attrs = json.loads(json.dumps(worker.attrs))
        env = attrs["Config"].pop("Env")
        # Labels, Cmd, Entrypoint, HostConfig, Mounts, the rest: nothing.
        assert leaks(json.dumps(attrs), stack.credentials) == [], worker.name
        for credential in [c for c in stack.credentials if c.worker]:
            assert any(credential.value in entry for entry in env), f"{credential.name} not in the worker env"
        # The worker never needs the registry password or a webhook URL.
        assert leaks("\n".join(env), [c for c in stack.credentials if not c.worker]) == []
        assert leaks(worker.logs(), stack.credentials) == [], f"docker logs {worker.name}"


def test_provider_hosts_print_no_credential(stack: AppliedStack) -> None:
    assert stack.host_logs, "the engine handed over no provider host log"
    for log in stack.host_logs:
        assert leaks(log, stack.credentials) == []


def test_prefect_server_objects_hold_no_credential(stack: AppliedStack) -> None:
    pool_name = stack.one(f"{DYNAMIC_PREFIX}prefect:WorkPool")["name"]
    deployment_id = stack.one(f"{DYNAMIC_PREFIX}prefect:Deployment")["deployment_id"]
    stored = [
        stack.api.get(f"/work_pools/{pool_name}").raise_for_status().text,
        stack.api.get(f"/deployments/{deployment_id}").raise_for_status().text,
    ]
    # The run the fixture triggered, and the smoke run `up` made (secdocker).
    run_ids = [stack.run_id] if stack.run_id else []
    run_ids += [
        r.outputs["flow_run_id"] for r in stack.record.of_type(f"{DYNAMIC_PREFIX}prefect:FlowRunCheck")
    ]
    for run_id in run_ids:
        stored.append(stack.api.get(f"/flow_runs/{run_id}").raise_for_status().text)
        stored.append(stack.api.log_text(run_id))
    # Alert blocks (the URL is a block secret: the API shows it masked) and the automation that uses them.
    blocks, automations = stack.record.of_type(BLOCK), stack.record.of_type(AUTOMATION)
    assert len(blocks) == len([c for c in stack.credentials if "webhook" in c.name])
    stored += [stack.api.get(f"/block_documents/{block.id}").raise_for_status().text for block in blocks]
    stored += [stack.api.get(f"/automations/{a.id}").raise_for_status().text for a in automations]
    for text in stored:
        assert leaks(text, stack.credentials) == []


def test_flow_image_history_and_layers_hold_no_credential(
    docker_stack: AppliedStack, process_stack: AppliedStack, docker_client: docker.DockerClient
) -> None:
    credentials = docker_stack.credentials + process_stack.credentials
    image = docker_client.images.get(docker_stack.one(IMAGE)["repoDigest"])
    # `docker history --no-trunc`: every step's command, comment and tags; and the image's own config.
    assert leaks(json.dumps(docker_client.api.history(image.id)), credentials) == []
    assert leaks(json.dumps(image.attrs), credentials) == []
    # Every byte of every layer (the classic builder's `docker save` holds them uncompressed).
    size = 0

    def chunks() -> Iterator[bytes]:
        nonlocal size
        for chunk in image.save(named=False):
            size += len(chunk)
            yield chunk

    assert stream_leaks(chunks(), credentials) == set()
    assert size > 100 * 2**20  # the whole image was read, not an empty stream


# --------------------------------------------------------------------------------------------- (b) errors


@dataclass(frozen=True)
class FailingRequest:
    id: str
    config: Callable[[FaultProxy], dict[str, str]]
    names: tuple[str, ...]  # what the message must say: the problem and the key to fix
    sent: str | None  # the Authorization header the failing request carried
    credentials: tuple[Credential, ...]
    deployment: bool = False  # create a Deployment (whose pool is missing) instead of a WorkPool
    unavailable: bool = False  # the proxy answers every request 503


def cloud_url(proxy: FaultProxy) -> str:
    return f"{proxy.base_url}/api/accounts/{ACCOUNT}/workspaces/{WORKSPACE}"


def auth_string_request(
    id_: str, auth_string: str, name: str, names: tuple[str, ...], **kind: bool
) -> FailingRequest:
    """A request through the proxy with `prefect:authString`: it carries `Basic base64(user:pass)`."""
    return FailingRequest(
        id_,
        lambda proxy: {"prefect:apiUrl": proxy.api_url, "prefect:authString": auth_string},
        names,
        f"Basic {_b64(auth_string)}",
        (Credential(name, auth_string),),
        **kind,
    )


def wrong_api_key_request(
    id_: str, api_url: Callable[[FaultProxy], str], names: tuple[str, ...]
) -> FailingRequest:
    """A request to `api_url(proxy)` with a wrong `prefect:apiKey`: it carries `Bearer <key>`."""
    return FailingRequest(
        id_,
        lambda proxy: {"prefect:apiUrl": api_url(proxy), "prefect:apiKey": WRONG_API_KEY},
        names,
        f"Bearer {WRONG_API_KEY}",
        (Credential("API key", WRONG_API_KEY),),
    )


FAILING_REQUESTS = [
    auth_string_request(
        "wrong-auth-string",
        WRONG_AUTH_STRING,
        "wrong auth string",
        ("401 Unauthorized", "prefect:authString"),
    ),
    wrong_api_key_request(
        "bearer-key-on-a-basic-auth-server",
        lambda proxy: proxy.api_url,
        ("401 Unauthorized", "prefect:authString"),
    ),
    wrong_api_key_request("wrong-cloud-api-key", cloud_url, ("401 Unauthorized", "prefect:apiKey")),
    auth_string_request(
        "server-unavailable",
        AUTH_STRING,
        "auth string",
        ("503 Service Unavailable", "Gave up after", "prefect:apiUrl"),
        unavailable=True,
    ),
    auth_string_request(
        "deployment-on-a-missing-pool",
        AUTH_STRING,
        "auth string",
        ("work_pool_name 'sec-missing-pool' does not exist", "create the work pool first"),
        deployment=True,
    ),
    FailingRequest(
        "credentials-in-the-url",
        lambda proxy: {"prefect:apiUrl": f"http://sec-user:{URL_PASSWORD}@127.0.0.1:{proxy.port}/api"},
        ("contains user:pass@", "prefect:authString"),
        None,  # refused before sending anything
        (Credential("URL password", URL_PASSWORD), Credential("URL user:pass", f"sec-user:{URL_PASSWORD}")),
    ),
]


@pytest.mark.parametrize("case", FAILING_REQUESTS, ids=[case.id for case in FAILING_REQUESTS])
def test_provider_errors_never_echo_the_credentials_the_request_carried(
    case: FailingRequest, auth_server: PrefectServer
) -> None:
    # Two attempts are enough to exhaust the retries against a server that stays unavailable.
    host = ProviderHost(env=host_env({"PULUMI_PREFECT_MAX_ATTEMPTS": "2"}), stack="secerrors")
    with FaultProxy(auth_server.api_url) as proxy, host:
        if case.unavailable:
            proxy.inject(Fault.UNAVAILABLE, count=None)
        config = case.config(proxy)
        host.configure(config, [k for k in ("prefect:apiKey", "prefect:authString") if k in config])
        if case.deployment:
            resource = host.resource(DeploymentProvider(), "prefect:Deployment")
            inputs = {
                "flow_name": FLOW_NAME,
                "name": "sec-deployment",
                "work_pool_name": "sec-missing-pool",
                "entrypoint": ENTRYPOINT,
                "pull_steps": PULL_STEPS,
                "parameter_openapi_schema": flow_parameter_schema(),
            }
        else:
            resource = host.resource(WorkPoolProvider(), "prefect:WorkPool")
            inputs = {"name": "sec-never-created"}
        with pytest.raises(ProviderCallError) as error:
            resource.create(resource.checked(inputs))
        sent = [request.headers.get("Authorization") for request in proxy.requests]
        log = host.log_text()

    if case.sent is None:
        assert sent == []
    else:
        assert sent and set(sent) == {case.sent}  # every request really carried the credential
    message = error.value.message
    for fragment in case.names:
        assert fragment in message, f"{fragment!r} not in: {message}"
    # Neither the message, nor the whole traceback the engine prints, nor the host's own output.
    for where, text in (("message", message), ("traceback", error.value.details), ("host log", log)):
        assert leaks(text, case.credentials) == [], where
        assert "Authorization" not in text and "Basic " not in text and "Bearer " not in text, where


def test_a_failed_alert_block_write_never_echoes_the_webhook_url(auth_server: PrefectServer) -> None:
    """The one request that carries the URL (creating the block document) fails: the server stays unavailable."""
    host = ProviderHost(env=host_env({"PULUMI_PREFECT_MAX_ATTEMPTS": "2"}), stack="secerrors")
    with FaultProxy(auth_server.api_url) as proxy, host:
        proxy.inject(Fault.UNAVAILABLE, count=None, methods=["POST"], path_contains="/block_documents/")
        config = {
            "prefect:apiUrl": proxy.api_url,
            "prefect:authString": AUTH_STRING,
            "alerts:webhookUrl": WEBHOOK_URL,
        }
        host.configure(config, ["prefect:authString", "alerts:webhookUrl"])
        blocks = host.resource(NotificationBlockProvider(), "prefect:NotificationBlock")
        inputs = {
            "name": "sec-alerts",
            "block_type": "custom-webhook",
            "url": WEBHOOK_URL,
            "fields": {"name": "x"},
        }
        with pytest.raises(ProviderCallError) as error:
            blocks.create(blocks.checked(inputs))
        posts = [r for r in proxy.requests if r.path == "/api/block_documents/"]
        log = host.log_text()
    assert posts and all(r.body["data"]["secrets"] == {"webhook_url": WEBHOOK_URL} for r in posts)
    assert (
        "503 Service Unavailable" in error.value.message
        and "Gave up after 2 attempt(s)" in error.value.message
    )
    for where, text in (
        ("message", error.value.message),
        ("traceback", error.value.details),
        ("host log", log),
    ):
        assert leaks(text, [*ALERT_CREDENTIALS, Credential("auth string", AUTH_STRING)]) == [], where


# --------------------------------------------------------------------------------------------- (c) privilege


def assert_unprivileged(attrs: dict[str, Any], status: dict[str, str] | None) -> None:
    """A non-root user with no capability that could be used or regained."""
    host_config = attrs["HostConfig"]
    assert attrs["Config"]["User"] == NON_ROOT
    assert host_config["Privileged"] is False
    assert host_config["CapDrop"] == ["ALL"]
    assert not host_config.get("CapAdd")
    assert "no-new-privileges:true" in (host_config.get("SecurityOpt") or [])
    assert host_config.get("PidMode", "") in ("", "private") and host_config.get("NetworkMode") != "host"
    if status is not None:
        assert_process_unprivileged(status)


def assert_process_unprivileged(status: dict[str, str]) -> None:
    """What the kernel says about the process itself: uid/gid 10001, no capability, no way to gain one."""
    assert status["Uid"].split() == ["10001"] * 4 and status["Gid"].split() == ["10001"] * 4
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[caps], 16) == 0, f"{caps} {status[caps]}"
    assert status["NoNewPrivs"] == "1"


def socket_in(container: Any) -> str | None:
    """The group of the Docker socket inside the container, or None when there is none."""
    code, output = container.exec_run(
        ["python", "-c", f"import os; print(os.stat({DOCKER_SOCKET!r}).st_gid)"]
    )
    return output.decode().strip() if code == 0 else None


# The workers' HostConfig is what the local engine itself passed to Docker (the program's declarations are
# pinned by tests/test_program.py): these check what the worker's process really is and can reach.
def test_process_pool_worker_is_non_root_without_capabilities_or_socket(process_stack: AppliedStack) -> None:
    (worker,) = process_stack.workers()
    status = proc_status(worker)
    assert_process_unprivileged(status)
    # A process pool runs flows inside the worker: no Docker socket, no extra group.
    assert socket_in(worker) is None
    assert status["Groups"].split() == ["10001"]


def test_docker_pool_worker_reaches_the_socket_through_its_group_and_nothing_more(
    docker_stack: AppliedStack,
) -> None:
    (worker,) = docker_stack.workers()
    status = proc_status(worker)
    assert_process_unprivileged(status)
    # It starts one container per run through the daemon: the socket's group (as the daemon sees it, which
    # is what the container sees) is its only extra group (see README, Security).
    group = socket_in(worker)
    assert group is not None
    assert sorted(status["Groups"].split()) == sorted({"10001", group})


def test_docker_pool_flow_run_container_is_non_root(
    docker_stack: AppliedStack, docker_client: docker.DockerClient
) -> None:
    attrs = docker_stack.run_container
    assert attrs is not None
    image = docker_client.images.get(attrs["Image"])
    # prefect-docker sets no user: the run's container runs as the image's USER, which is non-root.
    assert image.attrs["Config"]["User"] == NON_ROOT
    assert attrs["Config"]["User"] in ("", NON_ROOT)
    # The kernel's view of the run's process (caught while it imported Prefect, seconds before it ended).
    assert docker_stack.run_process is not None, "the run's container ended before it could be inspected"
    status = parse_proc_status(docker_stack.run_process)
    assert status["Uid"].split() == ["10001"] * 4
    assert int(status["CapEff"], 16) == 0  # a non-root process holds no effective capability
    host_config = attrs["HostConfig"]
    assert host_config["Privileged"] is False
    assert not host_config.get("CapAdd")
    # No Docker socket for the flow itself: only the worker talks to the daemon.
    assert all(DOCKER_SOCKET not in str(m) for m in attrs.get("Mounts", []))
    assert not any(DOCKER_SOCKET in bind for bind in host_config.get("Binds") or [])
    # Labels and command line of the run's container carry no credential (its env does: the worker's).
    attrs = json.loads(json.dumps(attrs))
    attrs["Config"].pop("Env")
    assert leaks(json.dumps(attrs), docker_stack.credentials) == []


def test_docker_pool_flow_run_container_cannot_regain_privileges(docker_stack: AppliedStack) -> None:
    attrs = docker_stack.run_container
    assert attrs is not None
    assert docker_stack.run_process is not None
    status = parse_proc_status(docker_stack.run_process)
    # Without these a setuid-root binary in the image (su, mount, passwd...) would run with Docker's
    # default capability set.
    assert (status["CapBnd"], status["NoNewPrivs"]) == ("0000000000000000", "1")
    assert attrs["HostConfig"]["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in (attrs["HostConfig"].get("SecurityOpt") or [])
