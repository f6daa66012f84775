"""AutomationProvider through the gRPC host the Pulumi engine starts, against a REAL Prefect server.

The automation here is the program's own (infra/alerts.py): runs of one deployment that fail, crash, time out
or are late, a notification per run. Whether it FIRES is tests/test_alerts.py's subject (real runs, a webhook
receiver); here: create, read without false drift, the PUT that replaces it whole, adoption, deletion.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from infra.alerts import failure_trigger, notification_action
from infra.prefect import Automation, AutomationProvider
from infra.prefect.automation import canonical_trigger
from tests.support.fault_proxy import FaultProxy
from tests.support.prefect_server import PrefectServer
from tests.support.provider_host import BoundResource, ProviderCallError, ProviderHost, provider_property

DEPLOYMENT_ID = "6d0f4a53-2a1e-4c0b-9a55-0f6f1c0b7e21"  # the trigger only names it: no deployment needed


@pytest.fixture(scope="module")
def automations(host: ProviderHost) -> BoundResource:
    return host.resource(AutomationProvider(), "prefect:Automation")


@pytest.fixture(scope="module")
def block_id(prefect_server: PrefectServer) -> Iterator[str]:
    """A notification block for the actions to name (a webhook nobody calls: nothing fires here)."""
    with httpx.Client(base_url=prefect_server.api_url) as api:
        block_type = api.get("/block_types/slug/custom-webhook").raise_for_status().json()
        schema = api.post(
            "/block_schemas/filter",
            json={"block_schemas": {"block_type_id": {"any_": [block_type["id"]]}}, "limit": 1},
        ).json()[0]
        document = api.post(
            "/block_documents/",
            json={
                "name": f"automation-tests-{uuid.uuid4().hex[:8]}",
                "block_type_id": block_type["id"],
                "block_schema_id": schema["id"],
                "data": {"name": "x", "url": "http://127.0.0.1:9/never"},
            },
        )
        document.raise_for_status()
        yield document.json()["id"]
        api.delete(f"/block_documents/{document.json()['id']}")


def program_inputs(block_id: str, **override: Any) -> dict[str, Any]:
    """The automation as infra/alerts.py declares it."""
    return {
        "name": f"alerts-{uuid.uuid4().hex[:8]}",
        "description": "made by Pulumi",
        "trigger": failure_trigger(DEPLOYMENT_ID),
        "actions": [notification_action(block_id, "custom-webhook", "http://127.0.0.1:4200")],
        **override,
    }


class Created:
    def __init__(self, id_: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        self.id, self.inputs, self.outputs = id_, inputs, outputs


@pytest.fixture
def created(automations: BoundResource, block_id: str) -> Iterator[Created]:
    inputs = automations.checked(program_inputs(block_id))
    id_, outputs = automations.create(inputs)
    yield Created(id_, inputs, outputs)
    automations.delete(id_, outputs)


def server_automation(api: httpx.Client, automation_id: str) -> dict[str, Any]:
    automation: dict[str, Any] = api.get(f"/automations/{automation_id}").raise_for_status().json()
    return automation


def test_provider_is_pickled_by_reference_without_state() -> None:
    provider = AutomationProvider()
    assert vars(provider) == {}
    pickled = base64.b64decode(provider_property(provider))
    assert b"infra.prefect.automation" in pickled and len(pickled) < 500
    assert Automation._resource_type_name == "dynamic/prefect:Automation"


class FilterIgnoringServer:
    """Answers `/automations/filter` with every automation, as a server that ignores (or does not know) the name
    filter would: `find` must not take another automation for ours."""

    def __init__(self, automations: list[dict[str, Any]]) -> None:
        self.automations = automations

    def post(self, path: str, body: Any, *, idempotent: bool) -> list[dict[str, Any]]:
        assert path == "/automations/filter"
        return self.automations


def test_find_takes_only_an_automation_of_the_same_name_whatever_the_server_filtered() -> None:
    ours = {"id": str(uuid.uuid4()), "name": "ours", "created": "2026-01-01T00:00:00Z"}
    newer_other = {"id": str(uuid.uuid4()), "name": "other", "created": "2026-06-01T00:00:00Z"}
    provider = AutomationProvider()
    server = FilterIgnoringServer([ours, newer_other])
    assert provider.find(server, {"name": "ours"}) == ours  # type: ignore[arg-type]
    assert provider.find(server, {"name": "missing"}) is None  # type: ignore[arg-type]


# --- check ------------------------------------------------------------------------------------------------


def test_check_puts_the_trigger_in_the_servers_shape_without_asking_it(
    automations: BoundResource, block_id: str, proxy: FaultProxy
) -> None:
    proxy.clear_requests()
    declared = program_inputs(block_id)
    declared["trigger"] = {**declared["trigger"], "expect": list(reversed(declared["trigger"]["expect"]))}
    result = automations.check(declared)
    assert result.failures == []
    trigger = result["trigger"]
    assert trigger["expect"] == sorted(trigger["expect"])  # a set on the server: order is not a change
    assert trigger["match_related"] == [failure_trigger(DEPLOYMENT_ID)["match_related"]]
    assert (result["enabled"], result["tags"], result["adopt_existing"]) == (True, [], False)
    assert proxy.requests == []


@pytest.mark.parametrize(
    ("override", "prop", "fragment"),
    [
        ({"name": " "}, "name", "name is required"),
        ({"trigger": {"type": "compound", "triggers": [], "require": "any"}}, "trigger", "use an event trigger"),
        ({"trigger": {"type": "event", "posture": "Eager"}}, "trigger", "trigger.posture must be one of"),
        ({"trigger": {"type": "event", "posture": "Reactive", "threshold": 0}}, "trigger", ">= 1"),
        ({"trigger": {"type": "event", "posture": "Reactive", "within": -1}}, "trigger", "seconds >= 0"),
        ({"trigger": {"type": "event", "posture": "Proactive", "within": 5}}, "trigger", ">= 10 seconds"),
        ({"trigger": {"type": "event", "posture": "Reactive", "expect": "prefect.flow-run.Failed"}}, "trigger",
         "trigger.expect must be a list of strings"),
        ({"actions": []}, "actions", "non-empty list"),
        ({"actions": [{"block_document_id": "x"}]}, "actions", "actions[0] must be an object with a `type`"),
        ({"actions": [{"type": "send-notification", "block_document_id": "nope", "body": "x"}]}, "actions",
         "actions[0].block_document_id must be the id of a notification block document"),
        ({"actions": [{"type": "send-notification", "block_document_id": DEPLOYMENT_ID, "body": "{{ x "}]},
         "actions", "actions[0].body is not a valid Jinja template"),
        ({"tags": ["ok", ""]}, "tags", "non-empty strings"),
    ],
)  # fmt: skip
def test_check_rejects_each_invalid_input(
    automations: BoundResource, block_id: str, override: dict[str, Any], prop: str, fragment: str
) -> None:
    result = automations.check(program_inputs(block_id, **override))
    assert result.properties == {prop}
    (reason,) = result.reasons(prop)
    assert fragment in reason


def test_a_template_the_check_lets_through_is_one_the_server_takes(
    automations: BoundResource, block_id: str, proxy: FaultProxy
) -> None:
    """The check parses templates the way the server's validator does: what passes here is accepted there."""
    actions = [notification_action(block_id, "slack-webhook", "http://127.0.0.1:4200")]
    id_, outputs = automations.create(automations.checked(program_inputs(block_id, actions=actions)))
    automations.delete(id_, outputs)
    assert [r.status for r in proxy.writes() if r.path == "/api/automations/"][-1] == 201


# --- create, read, diff -----------------------------------------------------------------------------------


def test_create_posts_the_automation_as_declared(created: Created, api: httpx.Client) -> None:
    automation = server_automation(api, created.id)
    trigger = automation["trigger"]
    assert trigger["match_related"] == [
        {"prefect.resource.role": "deployment", "prefect.resource.id": f"prefect.deployment.{DEPLOYMENT_ID}"}
    ]
    assert sorted(trigger["expect"]) == [
        "prefect.flow-run.Crashed",
        "prefect.flow-run.Failed",
        "prefect.flow-run.Late",
        "prefect.flow-run.TimedOut",
    ]
    assert (trigger["posture"], trigger["for_each"], trigger["threshold"]) == (
        "Reactive",
        ["prefect.resource.id"],
        1,
    )
    (action,) = automation["actions"]
    assert (action["type"], action["block_document_id"]) == (
        "send-notification",
        created.inputs["actions"][0]["block_document_id"],
    )
    assert created.outputs["automation_id"] == created.id
    assert created.outputs["ui_url"].endswith(f"/automations/automation/{created.id}")


def test_no_drift_after_create_and_after_a_refresh(
    automations: BoundResource, created: Created, proxy: FaultProxy
) -> None:
    assert automations.diff(created.id, created.outputs, created.inputs).changes is False
    proxy.clear_requests()
    read = automations.read(created.id, created.outputs)
    assert read.outputs == created.outputs  # the trigger's new server id, set order: not drift
    assert automations.diff(created.id, read.outputs, created.inputs).changes is False
    assert proxy.writes() == []


@pytest.mark.parametrize(
    "change",
    [
        {"description": "changed"},
        {"enabled": False},
        {"name": "renamed"},
        {"trigger": failure_trigger("0c1e2d3f-4a5b-4c6d-8e7f-8091a2b3c4d5")},
    ],
)
def test_every_change_is_one_put_of_the_whole_automation(
    automations: BoundResource, created: Created, proxy: FaultProxy, api: httpx.Client, change: dict[str, Any]
) -> None:
    news = automations.checked({**created.inputs, **change})
    diff = automations.diff(created.id, created.outputs, news)
    assert (diff.changes, diff.replaces) == (True, [])
    proxy.clear_requests()
    outputs = automations.update(created.id, created.outputs, news)
    (put,) = proxy.applied_writes()  # a PUT the busy SQLite server refused (503) was sent again
    assert (put.method, put.path) == ("PUT", f"/api/automations/{created.id}")
    assert set(put.body) == {
        "name", "description", "enabled", "tags", "trigger", "actions", "actions_on_trigger", "actions_on_resolve",
    }  # fmt: skip
    (key,) = change
    assert outputs[key] == news[key]
    shaped = canonical_trigger if key == "trigger" else (lambda value: value)
    assert shaped(server_automation(api, created.id)[key]) == news[key]
    assert automations.diff(created.id, outputs, news).changes is False


def test_out_of_band_edits_show_as_drift_and_update_restores(
    automations: BoundResource, created: Created, api: httpx.Client
) -> None:
    # Made in the UI: switched off, and an action that runs on resolve added.
    current = server_automation(api, created.id)
    edited = {k: current[k] for k in ("name", "description", "tags", "trigger", "actions")}
    edited.update(enabled=False, description="edited in the UI", actions_on_resolve=current["actions"])
    api.put(f"/automations/{created.id}", json=edited).raise_for_status()
    assert server_automation(api, created.id)["actions_on_resolve"] != []

    read = automations.read(created.id, created.outputs)
    assert (read.outputs["enabled"], read.outputs["description"]) == (False, "edited in the UI")
    assert read.inputs is not None and read.inputs["enabled"] is False
    assert automations.diff(created.id, read.outputs, created.inputs).changes is True
    outputs = automations.update(created.id, read.outputs, created.inputs)
    assert outputs == created.outputs
    restored = server_automation(api, created.id)
    assert (restored["enabled"], restored["description"]) == (True, "made by Pulumi")
    assert restored["actions_on_resolve"] == []  # the PUT of the whole automation cleared it


def test_out_of_band_delete_reads_as_gone_and_update_says_so(
    automations: BoundResource, created: Created, api: httpx.Client
) -> None:
    api.delete(f"/automations/{created.id}").raise_for_status()
    assert automations.read(created.id, created.outputs).gone
    with pytest.raises(ProviderCallError) as error:
        automations.update(created.id, created.outputs, {**created.inputs, "description": "x"})
    assert "no longer exists (deleted outside Pulumi)" in error.value.message


# --- adoption, deletion -----------------------------------------------------------------------------------


def test_create_over_an_automation_of_the_same_name_fails_and_links_to_it(
    automations: BoundResource, created: Created, api: httpx.Client
) -> None:
    with pytest.raises(ProviderCallError) as error:
        automations.create(created.inputs)
    message = error.value.message
    assert "already exists" in message and created.outputs["ui_url"] in message
    assert "Delete it there" in message
    assert "adopt_existing" not in message  # the program has no way to set it
    named = api.post(
        "/automations/filter", json={"automations": {"name": {"any_": [created.inputs["name"]]}}}
    )
    assert len(named.json()) == 1  # no duplicate was made


def test_adopt_existing_puts_the_declared_automation_over_it(
    automations: BoundResource, created: Created, api: httpx.Client
) -> None:
    news = automations.checked({**created.inputs, "description": "adopted", "adopt_existing": True})
    adopted_id, outputs = automations.create(news)
    assert adopted_id == created.id
    assert server_automation(api, created.id)["description"] == "adopted"
    assert outputs["adopt_existing"] is True


def test_delete_twice_succeeds(automations: BoundResource, block_id: str, api: httpx.Client) -> None:
    id_, outputs = automations.create(automations.checked(program_inputs(block_id)))
    automations.delete(id_, outputs)
    automations.delete(id_, outputs)
    assert api.get(f"/automations/{id_}").status_code == 404
