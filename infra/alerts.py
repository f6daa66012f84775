"""Alerts as code: when a run of the deployment fails, crashes, times out or never starts, someone is told.

One notification block per configured destination (`alerts:webhookUrl`: a JSON POST per alert to any URL;
`alerts:slackWebhookUrl`: a Slack message), and one automation that watches THIS deployment's runs and sends
every alert to each of them. Nothing is declared when neither URL is set.

The trigger (prefect/server/events/schemas/automations.py `EventTrigger`) matches the flow-run state events the
server emits for runs related to the deployment (`prefect.flow-run.<state name>`; `Late` comes from the
late-runs service, prefect/server/services/late_runs.py), fires at once for each (Reactive, threshold 1, within 0)
and counts each run on its own (`for_each` the run's id), so every run that ends Failed, Crashed or TimedOut, or
goes Late, is one alert; a run that is late and then fails is told both times.

The message is rendered by the server (prefect/server/events/actions.py `SendNotification`) from Jinja templates
with `flow_run`, `flow` and `deployment` in their context. The link to the run is built here from the UI base of
`prefect:apiUrl`, like every other link of the stack: `{{ flow_run|ui_url }}` depends on the server's
PREFECT_UI_URL and renders None without it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pulumi

from infra.config import PROJECT, StackConfig
from infra.prefect import Automation, Deployment, NotificationBlock
from infra.prefect.client import ui_base_url

ALERT_STATES = ("Failed", "Crashed", "TimedOut", "Late")
SUBJECT = "{{ flow.name }}/{{ deployment.name }}: run {{ flow_run.name }} is {{ flow_run.state.name }}"
# Shared by both messages: where the run is, and one line saying what happened.
_FACTS = """\
{%- set deployment_name = flow.name ~ "/" ~ deployment.name -%}
{%- set run_url = RUN_URL_BASE ~ flow_run.id -%}
{%- set text = "Flow run " ~ flow_run.name ~ " of " ~ deployment_name ~ " is " ~ flow_run.state.name
    ~ ": " ~ (flow_run.state.message or "(no message)") ~ "\\n" ~ run_url -%}
"""
# The webhook's POST body: JSON, every value through `tojson` (prefect/server/utilities/user_templates.py
# registers it for user templates), so a state message with quotes or line breaks stays valid JSON.
_JSON_BODY = (
    _FACTS
    + '{"text": {{ text | tojson }}, "deployment": {{ deployment_name | tojson }}, '
    + '"deployment_id": {{ deployment.id | string | tojson }}, "flow_run": {{ flow_run.name | tojson }}, '
    + '"flow_run_id": {{ flow_run.id | string | tojson }}, "state": {{ flow_run.state.name | tojson }}, '
    + '"state_message": {{ flow_run.state.message | tojson }}, "url": {{ run_url | tojson }}}'
)
_TEXT_BODY = _FACTS + "{{ text }}"

# The custom webhook POSTs its `form_data` as the raw body when it is a string, with the `{{body}}` placeholder
# replaced by the rendered message (prefect/blocks/notifications.py `CustomWebhookNotificationBlock`).
WEBHOOK_FIELDS: dict[str, Any] = {
    "name": f"{PROJECT} alerts",
    "method": "POST",
    "form_data": "{{body}}",
    "headers": {"Content-Type": "application/json"},
    "timeout": 10,
    # The URL is the operator's own stack config, not untrusted input: an internal chat or incident webhook on a
    # private address must work (the flag exists to stop server-side request forgery from untrusted URLs).
    "allow_private_urls": True,
}
SLACK_FIELDS: dict[str, Any] = {"notify_type": "failure"}
DESTINATIONS = (
    # (resource and block name suffix, block type, fields, where the message goes)
    ("webhook", "custom-webhook", WEBHOOK_FIELDS),
    ("slack", "slack-webhook", SLACK_FIELDS),
)


def failure_trigger(deployment_id: str) -> dict[str, Any]:
    """Every run of this deployment that ends Failed, Crashed or TimedOut, or goes Late: one alert each."""
    return {
        "type": "event",
        "match": {"prefect.resource.id": "prefect.flow-run.*"},
        "match_related": {
            "prefect.resource.role": "deployment",
            "prefect.resource.id": f"prefect.deployment.{deployment_id}",
        },
        "expect": [f"prefect.flow-run.{state}" for state in ALERT_STATES],
        "for_each": ["prefect.resource.id"],
        "posture": "Reactive",
        "threshold": 1,
        "within": 0,
    }


def notification_action(block_document_id: str, block_type: str, ui_base: str) -> dict[str, Any]:
    """Send the alert through one block: JSON for the webhook, a line of text and the link for Slack."""
    # prefect/utilities/urls.py UI_URL_FORMATS["flow-run"]; a JSON string is also a Jinja string literal.
    run_url_base = json.dumps(f"{ui_base}/runs/flow-run/")
    body = _JSON_BODY if block_type == "custom-webhook" else _TEXT_BODY
    return {
        "type": "send-notification",
        "block_document_id": block_document_id,
        "subject": SUBJECT,
        "body": body.replace("RUN_URL_BASE", run_url_base),
    }


def block_name(stack: str, destination: str) -> str:
    """A block document name (lowercase letters, digits and dashes) that is the stack's own."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{PROJECT}-{stack}-alerts-{destination}".lower()).strip("-")


def alert_automation(config: StackConfig, deployment: Deployment) -> Automation | None:
    """The blocks for the configured destinations and the automation that uses them; None without any."""
    settings = config.alerts
    urls = {"webhook": settings.webhook_url, "slack": settings.slack_webhook_url}
    blocks: list[tuple[str, NotificationBlock]] = []
    for destination, block_type, fields in DESTINATIONS:
        url = urls[destination]
        if url is not None:
            block = NotificationBlock(
                f"alerts-{destination}",
                name=block_name(config.stack, destination),
                block_type=block_type,
                url=url,
                fields=fields,
            )
            blocks.append((block_type, block))
    if not blocks:
        return None
    ui_base = ui_base_url(config.prefect.api_url)
    actions = pulumi.Output.all(*[block.block_document_id for _, block in blocks]).apply(
        lambda ids: [
            notification_action(block_id, block_type, ui_base)
            for block_id, (block_type, _) in zip(ids, blocks, strict=True)
        ]
    )
    return Automation(
        "alerts",
        name=f"{PROJECT}/{config.deployment_name} ({config.stack}): run failed or late",
        description=(
            f"Tells {', '.join(block_type for block_type, _ in blocks)} when a run of this deployment fails, "
            "crashes, times out or is late. Managed by Pulumi: change it in the stack, not here."
        ),
        enabled=settings.enabled,
        tags=[PROJECT, config.stack],
        trigger=deployment.deployment_id.apply(failure_trigger),
        actions=actions,
    )
