"""Alerts as code (issue 12): what the program declares, and the whole path proven for real.

Under Pulumi's mocks: no alert resources unless a URL is configured; with one, a notification block whose URL is a
secret and an automation that watches exactly this deployment; the message templates rendered by Prefect's own
renderer.

For real (`docker`): ONE stack (`alerts`, a process pool) applied by the local engine on a Prefect server of this
module that runs the late-runs service (the session's server does not), its alerts going to a webhook receiver on
the host, which the PREFECT SERVER calls. The journeys share that stack and run in order: up; a run failing on the
Bored API's 500s is one POST with the facts; a successful run and another deployment's failed run are none; a run
no worker picks up goes Late and is one POST; a no-op up writes nothing; a changed URL updates the block in place
and only the new URL is called; runs forced into TimedOut and Crashed are one POST each; no alert was delivered twice;
removing the URL and `up` removes the block and the automation (README "Silence it"); destroy leaves nothing. "Nothing was sent" is always proven against a later
delivery that was: the deliveries in between are exactly the expected ones (no waiting for silence).
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

from infra.alerts import WEBHOOK_FIELDS, failure_trigger, notification_action
from infra.prefect.client import ui_base_url
from tests.support.engine_secrets import is_secret, plain_paths_holding
from tests.support.fake_bored_api import FakeBoredApi, Fault
from tests.support.fault_proxy import FaultProxy
from tests.support.journey_stack import copy_project
from tests.support.local_engine import DYNAMIC_PREFIX, LocalEngine, StackRecord
from tests.support.prefect_server import PrefectServer
from tests.support.program_harness import ProgramRun, dev_stack_config, run_program
from tests.support.stack_checks import PrefectApi, stack_containers, trigger_with, wait_for_health
from tests.support.webhook_receiver import Delivery, WebhookReceiver

pytestmark = pytest.mark.journey(over="stack")  # the tests on the applied stack are steps, in file order

BLOCK = f"{DYNAMIC_PREFIX}prefect:NotificationBlock"
AUTOMATION = f"{DYNAMIC_PREFIX}prefect:Automation"
DEPLOYMENT = f"{DYNAMIC_PREFIX}prefect:Deployment"
WEBHOOK_URL = f"https://alerts.example.com/hooks/{secrets.token_hex(12)}"
SLACK_URL = f"https://hooks.slack.com/services/T{secrets.token_hex(4)}/B{secrets.token_hex(4)}/{secrets.token_hex(12)}"
ALERT_KEYS = ["alerts:webhookUrl", "alerts:slackWebhookUrl"]


# --------------------------------------------------------------------------------------------- the program


def with_alerts(**urls: str) -> ProgramRun:
    config = {**dev_stack_config(), **{f"alerts:{key}": value for key, value in urls.items()}}
    return run_program(config, ALERT_KEYS)


def test_without_an_alert_url_there_are_no_alert_resources() -> None:
    run = run_program(dev_stack_config())
    assert run.of_type(BLOCK) == [] and run.of_type(AUTOMATION) == []
    assert "alerts_url" not in run.exports


def test_a_webhook_url_declares_a_secret_block_and_an_automation_on_this_deployment() -> None:
    run = with_alerts(webhookUrl=WEBHOOK_URL)
    (block,) = run.of_type(BLOCK)
    assert (block.inputs["name"], block.inputs["block_type"]) == (
        "suggest-activity-dev-alerts-webhook",
        "custom-webhook",
    )
    assert block.inputs["fields"] == WEBHOOK_FIELDS
    # The URL is registered as a secret, and nothing the program declares or exports holds it in plain text.
    assert plain_paths_holding(block.inputs["url"], WEBHOOK_URL) == []
    for registration in run.registrations:
        assert plain_paths_holding(registration.inputs, WEBHOOK_URL) == [], registration.name
    assert plain_paths_holding(run.exports, WEBHOOK_URL) == []

    (automation,) = run.of_type(AUTOMATION)
    deployment_id = run.one(DEPLOYMENT).outputs["deployment_id"]
    assert automation.inputs["trigger"] == failure_trigger(deployment_id)
    (action,) = automation.inputs["actions"]
    assert action["block_document_id"] == block.outputs["block_document_id"]
    assert '"http://127.0.0.1:4200/runs/flow-run/"' in action["body"]  # the dev stack's UI
    assert run.exports["alerts_url"] == automation.outputs["ui_url"]


def test_both_urls_declare_two_blocks_and_one_automation_sending_to_both() -> None:
    run = with_alerts(webhookUrl=WEBHOOK_URL, slackWebhookUrl=SLACK_URL)
    blocks = {b.inputs["block_type"]: b for b in run.of_type(BLOCK)}
    assert set(blocks) == {"custom-webhook", "slack-webhook"}
    assert blocks["slack-webhook"].inputs["name"] == "suggest-activity-dev-alerts-slack"
    (automation,) = run.of_type(AUTOMATION)
    targets = {a["block_document_id"]: a for a in automation.inputs["actions"]}
    assert set(targets) == {b.outputs["block_document_id"] for b in blocks.values()}
    slack_body = targets[blocks["slack-webhook"].outputs["block_document_id"]]["body"]
    assert slack_body.rstrip().endswith("{{ text }}")  # a line of text and the link, not JSON


def render(template: str, message: str | None) -> str:
    """A template as the server renders it for a flow-run event (prefect/server/events/actions.py
    `JinjaTemplateAction._render`, with its filters) around server-side objects."""
    from prefect.server.events.actions import JinjaTemplateAction
    from prefect.server.schemas.core import Deployment, Flow, FlowRun
    from prefect.server.schemas.states import State, StateType
    from prefect.server.utilities.user_templates import render_user_template_sync

    JinjaTemplateAction._register_filters_if_needed()
    flow = Flow(name="suggest-activity")
    context = {
        "flow": flow,
        "deployment": Deployment(name="daily", flow_id=flow.id),
        "flow_run": FlowRun(
            name="brave-otter",
            flow_id=flow.id,
            state=State(type=StateType.FAILED, name="Failed", message=message),
        ),
    }
    return render_user_template_sync(template, context)


@pytest.mark.parametrize(
    "message",
    ['BoredApiError: GET "https://x/random" failed:\nHTTP 500 <html>&</html> \\ done', None],
)
def test_the_webhook_body_is_json_whatever_the_state_message(message: str | None) -> None:
    action = notification_action(
        str(uuid.uuid4()), "custom-webhook", "https://app.prefect.cloud/account/a/workspace/w"
    )
    alert = json.loads(render(action["body"], message))
    assert alert["deployment"] == "suggest-activity/daily"
    assert (alert["flow_run"], alert["state"], alert["state_message"]) == ("brave-otter", "Failed", message)
    assert (
        alert["url"]
        == f"https://app.prefect.cloud/account/a/workspace/w/runs/flow-run/{alert['flow_run_id']}"
    )
    assert alert["text"] == (
        f"Flow run brave-otter of suggest-activity/daily is Failed: {message or '(no message)'}\n{alert['url']}"
    )
    assert render(action["subject"], message) == "suggest-activity/daily: run brave-otter is Failed"


# --------------------------------------------------------------------------------------------- for real

STACK, POOL = "alerts", "alerts-process"
LATE_AFTER_SECONDS = 12  # longer than a polling worker takes to pick a run up; the Late journey waits it out
TOKENS = [secrets.token_hex(12) for _ in range(2)]


@pytest.fixture(scope="module")
def late_runs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A server that marks runs Late (the session's server turns that service off, and other modules' runs
    must not go Late while their workers start)."""
    server = PrefectServer(
        home=tmp_path_factory.mktemp("alerts-server"),
        extra_env={
            "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "true",
            "PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS": str(LATE_AFTER_SECONDS),
            "PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS": "2",
        },
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as webhook_receiver:
        yield webhook_receiver


@pytest.fixture(scope="module")
def proxy(late_runs_server: PrefectServer) -> Iterator[FaultProxy]:
    """The providers reach the server through it (the no-op journey counts writes)."""
    with FaultProxy(late_runs_server.api_url) as recording_proxy:
        yield recording_proxy


def hook_path(index: int) -> str:
    return f"/alerts/{TOKENS[index]}"


@dataclass
class AlertStack:
    server: PrefectServer
    proxy: FaultProxy
    receiver: WebhookReceiver
    bored_api: FakeBoredApi
    docker: docker.DockerClient
    project_dir: Path
    api: PrefectApi
    record: StackRecord = field(default_factory=StackRecord)
    hook: int | None = 0  # which of TOKENS the stack's alerts:webhookUrl ends with; None: the key removed
    host_logs: list[str] = field(default_factory=list)

    def engine(self) -> LocalEngine:
        config = {
            "prefect:apiUrl": self.proxy.api_url,
            "prefect:workerApiUrl": f"http://host.docker.internal:{self.server.port}/api",
            "image:push": "false",
            "suggest-activity:poolName": POOL,
            "suggest-activity:workerPollSeconds": "1",
            "suggest-activity:scheduleActive": "false",  # no 09:00 run may go Late while the worker is stopped
            "suggest-activity:flowParameters": json.dumps(
                {"api_url": self.bored_api.url_for_host("host.docker.internal")}
            ),
        }
        if self.hook is not None:
            config["alerts:webhookUrl"] = self.receiver.url_for(hook_path(self.hook))
        return LocalEngine(
            project_dir=self.project_dir,
            stack=STACK,
            config=config,
            secret_keys=["alerts:webhookUrl"],
            docker_client=self.docker,
            host_logs=self.host_logs,
        )

    def one(self, typ: str) -> dict[str, Any]:
        (resource,) = self.record.of_type(typ)
        return resource.outputs

    @property
    def deployment_id(self) -> str:
        return str(self.one(DEPLOYMENT)["deployment_id"])

    def failing_run(self, deployment_id: str | None = None) -> tuple[str, dict[str, Any]]:
        """A run whose Bored API answers 500 to every attempt; returns its id and the finished run."""
        with FakeBoredApi(host="0.0.0.0") as broken:
            broken.add_faults(*[Fault.http(500)] * 4)
            url = broken.url_for_host("host.docker.internal")
            run_id = trigger_with(self.api, deployment_id or self.deployment_id, {"api_url": url})
            run = self.api.wait_for_run(run_id)
        assert run["state_type"] == "FAILED", run["state"]
        return run_id, run


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    late_runs_server: PrefectServer,
    proxy: FaultProxy,
    receiver: WebhookReceiver,
    bored_api: FakeBoredApi,
    docker_client: docker.DockerClient,
) -> Iterator[AlertStack]:
    alert_stack = AlertStack(
        late_runs_server,
        proxy,
        receiver,
        bored_api,
        docker_client,
        copy_project(tmp_path_factory.mktemp("alerts") / "suggest-activity"),
        PrefectApi(late_runs_server.api_url),
    )
    yield alert_stack
    alert_stack.engine().destroy(alert_stack.record)  # whatever a failed journey left behind


def assert_url_kept_secret(record: StackRecord, token: str) -> None:
    """The state as the engine keeps it: the block's `url` input and output are secrets, and nothing else in the
    state or the exports holds the URL in plain text."""
    (block,) = record.of_type(BLOCK)
    assert is_secret(block.inputs["url"]) and is_secret(block.outputs["url"])
    for resource in record.resources:
        for part in (resource.inputs, resource.outputs):
            assert plain_paths_holding(part, token) == [], resource.name
    assert plain_paths_holding(record.exports, token) == []


def alert_of(delivery: Delivery) -> dict[str, Any]:
    assert delivery.method == "POST" and delivery.headers.get("Content-Type") == "application/json"
    alert: dict[str, Any] = delivery.json()
    return alert


def assert_alert_for(stack: AlertStack, delivery: Delivery, run_id: str, state: str) -> None:
    """The alert names the deployment, the run, its state and state message, and links to the run."""
    run = stack.api.get(f"/flow_runs/{run_id}").raise_for_status().json()
    alert = alert_of(delivery)
    assert alert["deployment"] == "suggest-activity/daily"
    assert alert["deployment_id"] == stack.deployment_id
    assert (alert["flow_run"], alert["flow_run_id"]) == (run["name"], run_id)
    assert alert["state"] == state
    assert alert["url"] == f"{ui_base_url(stack.proxy.api_url)}/runs/flow-run/{run_id}"
    assert run["name"] in alert["text"] and state in alert["text"] and alert["url"] in alert["text"]
    if state != "Late":
        assert alert["state_message"] == run["state"]["message"]


@pytest.mark.docker
def test_up_creates_a_block_and_an_automation_that_watches_the_deployment(stack: AlertStack) -> None:
    stack.record = stack.engine().up()
    assert set(stack.record.actions.values()) == {"create"}
    block, automation = stack.one(BLOCK), stack.one(AUTOMATION)

    document = stack.api.get(f"/block_documents/{block['block_document_id']}").raise_for_status().json()
    assert document["block_type"]["slug"] == "custom-webhook"
    assert document["data"]["secrets"] == {"webhook_url": "********"}  # a block secret on the server
    server_automation = stack.api.get(f"/automations/{automation['automation_id']}").raise_for_status().json()
    assert server_automation["enabled"] is True
    assert server_automation["trigger"]["match_related"] == [
        {
            "prefect.resource.role": "deployment",
            "prefect.resource.id": f"prefect.deployment.{stack.deployment_id}",
        }
    ]
    (action,) = server_automation["actions"]
    assert action["block_document_id"] == block["block_document_id"]
    assert stack.record.exports["alerts_url"] == automation["ui_url"]
    assert_url_kept_secret(stack.record, TOKENS[0])
    stack.api.wait_for_pool_status(POOL, "READY")


@pytest.mark.docker
def test_a_run_failing_on_the_bored_api_is_one_alert_with_its_facts(stack: AlertStack) -> None:
    run_id, run = stack.failing_run()
    assert "HTTP 500" in run["state"]["message"]
    (delivery,) = stack.receiver.wait_for(1, hook_path(0))
    assert_alert_for(stack, delivery, run_id, "Failed")


@pytest.mark.docker
def test_a_successful_run_and_another_deployments_failed_run_send_nothing(stack: AlertStack) -> None:
    before = len(stack.receiver.deliveries())
    ok = stack.api.wait_for_run(trigger_with(stack.api, stack.deployment_id, {}))
    assert ok["state_type"] == "COMPLETED", ok["state"]

    ours = stack.api.get(f"/deployments/{stack.deployment_id}").raise_for_status().json()
    other = stack.api.post(
        "/deployments/",
        {
            key: ours[key]
            for key in ("flow_id", "work_pool_name", "entrypoint", "pull_steps", "parameter_openapi_schema")
        }
        | {"name": "other"},
    )
    try:
        stack.failing_run(other["id"])
    finally:
        stack.api.delete(f"/deployments/{other['id']}")

    # Then one of ours fails: its alert is the only one since `before` (nothing for the runs above, and no
    # second alert for the previous test's run).
    run_id, _ = stack.failing_run()
    deliveries = stack.receiver.wait_for(before + 1)
    assert len(deliveries) == before + 1
    assert_alert_for(stack, deliveries[-1], run_id, "Failed")


@pytest.mark.docker
def test_a_run_no_worker_picks_up_goes_late_and_is_one_alert(stack: AlertStack) -> None:
    before = len(stack.receiver.deliveries())
    workers = stack_containers(stack.docker, STACK)
    assert workers
    for worker in workers:
        worker.stop()
    run_id = trigger_with(stack.api, stack.deployment_id, {})  # scheduled for now
    try:
        deliveries = stack.receiver.wait_for(before + 1, timeout=LATE_AFTER_SECONDS + 120)
        assert len(deliveries) == before + 1
        assert_alert_for(stack, deliveries[-1], run_id, "Late")
        assert stack.api.get(f"/flow_runs/{run_id}").json()["state"]["name"] == "Late"
    finally:
        stack.api.delete(f"/flow_runs/{run_id}")  # not to be run when the worker is back
        for worker in workers:
            worker.start()
            wait_for_health(worker)


@pytest.mark.docker
def test_a_refresh_finds_no_drift_in_the_alerts_and_a_noop_up_writes_nothing(stack: AlertStack) -> None:
    refreshed, drifts = stack.engine().refresh(stack.record)
    assert [d for d in drifts if d.typ in (BLOCK, AUTOMATION)] == []  # a masked URL is not drift
    assert_url_kept_secret(refreshed, TOKENS[0])
    stack.proxy.clear_requests()
    stack.record = stack.engine().up(stack.record)
    assert set(stack.record.actions.values()) == {"same"}, stack.record.actions
    assert stack.proxy.writes() == []


@pytest.mark.docker
def test_a_changed_url_updates_the_block_in_place_and_only_the_new_url_is_called(stack: AlertStack) -> None:
    block_id = stack.one(BLOCK)["block_document_id"]
    at_old_url = len(stack.receiver.deliveries(hook_path(0)))
    stack.hook = 1
    stack.record = stack.engine().up(stack.record)
    assert stack.record.actions["alerts-webhook"] == "update"
    assert {name for name, action in stack.record.actions.items() if action != "same"} == {"alerts-webhook"}
    assert stack.one(BLOCK)["block_document_id"] == block_id
    assert_url_kept_secret(stack.record, TOKENS[1])

    stack.api.wait_for_pool_status(POOL, "READY")
    run_id, _ = stack.failing_run()
    (delivery,) = stack.receiver.wait_for(1, hook_path(1))
    assert_alert_for(stack, delivery, run_id, "Failed")
    assert len(stack.receiver.deliveries(hook_path(0))) == at_old_url


def forced_run(stack: AlertStack, state: dict[str, Any]) -> str:
    """A run of this deployment that no worker takes (scheduled far ahead), forced into `state` through the API
    the way the server's own services and the worker set it (`POST /flow_runs/{id}/set_state`)."""
    run = stack.api.post(
        f"/deployments/{stack.deployment_id}/create_flow_run",
        {"state": {"type": "SCHEDULED", "state_details": {"scheduled_time": "2099-01-01T09:00:00Z"}}},
    )
    response = stack.api.post(f"/flow_runs/{run['id']}/set_state", {"state": state, "force": True})
    assert response["status"] == "ACCEPT", response
    return str(run["id"])


@pytest.mark.docker
def test_a_timed_out_run_and_a_crashed_run_are_one_alert_each_naming_the_state(stack: AlertStack) -> None:
    before = len(stack.receiver.deliveries())
    timed_out = forced_run(
        stack,
        {"type": "FAILED", "name": "TimedOut", "message": "Flow run exceeded timeout of 600.0 second(s)"},
    )
    deliveries = stack.receiver.wait_for(before + 1)
    assert len(deliveries) == before + 1
    assert_alert_for(stack, deliveries[-1], timed_out, "TimedOut")

    crashed = forced_run(stack, {"type": "CRASHED", "name": "Crashed", "message": "Worker container exited"})
    deliveries = stack.receiver.wait_for(before + 2)
    assert len(deliveries) == before + 2
    assert_alert_for(stack, deliveries[-1], crashed, "Crashed")


@pytest.mark.docker
def test_every_alert_was_delivered_exactly_once(stack: AlertStack) -> None:
    """Each journey above waited for its alert; a later one arriving proves the earlier deliveries were all in
    (the server's actions consumer handles them in order). So now: one POST per (run, state), none twice."""
    per_alert = Counter(
        (alert["flow_run_id"], alert["state"]) for alert in map(alert_of, stack.receiver.deliveries())
    )
    assert len(per_alert) >= 2  # at least the TimedOut and Crashed alerts of the journey before
    assert {key: count for key, count in per_alert.items() if count != 1} == {}


@pytest.mark.docker
def test_removing_the_url_and_up_removes_the_block_and_the_automation(stack: AlertStack) -> None:
    """README "Silence it": `pulumi config rm alerts:webhookUrl` and `pulumi up`."""
    block_id = stack.one(BLOCK)["block_document_id"]
    automation_id = stack.one(AUTOMATION)["automation_id"]
    stack.hook = None
    stack.record = stack.engine().up(stack.record)
    assert {name: a for name, a in stack.record.actions.items() if a != "same"} == {
        "alerts-webhook": "delete",
        "alerts": "delete",
    }
    assert stack.record.of_type(BLOCK) == [] and stack.record.of_type(AUTOMATION) == []
    assert "alerts_url" not in stack.record.exports
    assert stack.api.get(f"/block_documents/{block_id}").status_code == 404
    assert stack.api.get(f"/automations/{automation_id}").status_code == 404

    stack.hook = 1  # set again: both come back, for destroy to remove
    stack.record = stack.engine().up(stack.record)
    assert {name: a for name, a in stack.record.actions.items() if a != "same"} == {
        "alerts-webhook": "create",
        "alerts": "create",
    }


@pytest.mark.docker
def test_destroy_leaves_no_block_and_no_automation(stack: AlertStack) -> None:
    block_id = stack.one(BLOCK)["block_document_id"]
    automation = stack.one(AUTOMATION)
    stack.engine().destroy(stack.record)
    assert stack.api.get(f"/block_documents/{block_id}").status_code == 404
    assert stack.api.get(f"/automations/{automation['automation_id']}").status_code == 404
    assert stack.api.post("/automations/filter", {}) == []
    assert (
        stack.api.post("/block_documents/filter", {"block_types": {"slug": {"any_": ["custom-webhook"]}}})
        == []
    )
    assert stack_containers(stack.docker, STACK) == []


@pytest.mark.docker
def test_the_provider_hosts_never_printed_a_webhook_url(stack: AlertStack) -> None:
    assert stack.host_logs
    for log in stack.host_logs:
        assert [token for token in TOKENS if token in log] == []
