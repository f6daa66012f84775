"""The `Automation` dynamic resource: a Prefect automation (an event trigger and the actions it fires).

From prefect/server/api/automations.py and prefect/server/events/models/automations.py:

* `POST /automations/` creates one (201, the automation as stored); names are NOT unique, so create looks for
  one of the same name first (a second POST would make a duplicate, and a retried POST after a lost answer is
  recognised by its creation time and adopted);
* `PUT /automations/{id}` is the update: it writes the fields the body SETS (`update_automation` applies
  `model_dump_for_orm(exclude_unset=True)`) and re-syncs its related resources, so every field is always sent
  and the PUT replaces the automation as a whole (`actions_on_trigger` and `actions_on_resolve` are sent empty:
  this resource does not manage them);
* `GET /automations/{id}` reads it, `DELETE /automations/{id}` deletes it (404 when gone).

Only event triggers (`type: "event"`) are supported. The server gives a trigger a new `id` on every write
(`reset_ids`), stores its `after`/`expect`/`for_each` as sets (any order), a single `match_related` as given,
and `within` as seconds: `canonical_trigger` puts both sides in one shape, so that only real changes are diffs.
Jinja templates in actions (`subject`, `body`) are parsed here, the way the server does, before anything is sent.

The choreography is `PrefectResourceProvider`'s; this module says what is an automation's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

import pulumi
from pulumi.dynamic import Resource

from .client import PrefectApiError, PrefectClient, ui_base_url
from .conflicts import exists_outside_the_stack
from .props import from_wire, is_unknown, same
from .provider_base import InputCheck, PrefectResourceProvider
from .validation import tags_problem

FIELD_KEYS = ("name", "description", "enabled", "tags", "trigger", "actions")
INPUT_KEYS = (*FIELD_KEYS, "adopt_existing")
OUTPUT_ONLY_KEYS = ("automation_id", "ui_url")
# prefect/server/events/schemas/automations.py `EventTrigger`: the defaults of what a trigger may leave out.
EVENT_TRIGGER_DEFAULTS: dict[str, Any] = {
    "type": "event",
    "match": {},
    "match_related": [],
    "after": [],
    "expect": [],
    "for_each": [],
    "threshold": 1,
    "within": 0,
}
SET_FIELDS = ("after", "expect", "for_each")
POSTURES = ("Reactive", "Proactive")
PROACTIVE_MIN_WITHIN_SECONDS = 10  # `enforce_minimum_within_for_proactive_triggers`
# prefect/server/events/actions.py `SendNotification`: its default subject.
NOTIFICATION_DEFAULTS = {"subject": "Prefect automated notification"}
TEMPLATE_FIELDS = ("subject", "body")
UUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def automation_path(automation_id: str) -> str:
    return f"/automations/{quote(automation_id, safe='')}"


def automation_ui_url(api_url: str, automation_id: str) -> str:
    # prefect/utilities/urls.py UI_URL_FORMATS["automation"]
    return f"{ui_base_url(api_url)}/automations/automation/{automation_id}"


def canonical_trigger(trigger: Any) -> Any:
    """An event trigger in one comparable shape: defaults filled, no server `id`, sets sorted, a single
    `match_related` as a one-item list (an empty one as none), `within` in seconds."""
    if not isinstance(trigger, Mapping) or is_unknown(trigger):
        return trigger
    shaped = {**EVENT_TRIGGER_DEFAULTS, **{k: v for k, v in from_wire(trigger).items() if k != "id"}}
    for key in SET_FIELDS:
        if isinstance(shaped[key], list | tuple) and not is_unknown(shaped[key]):
            shaped[key] = sorted(set(shaped[key]))
    related = shaped["match_related"]
    if isinstance(related, Mapping):
        shaped["match_related"] = [dict(related)] if related else []
    if isinstance(shaped["within"], float) and shaped["within"].is_integer():
        shaped["within"] = int(shaped["within"])
    return shaped


def canonical_actions(actions: Any) -> Any:
    """Actions with the server's defaults filled in (a notification's subject)."""
    if not isinstance(actions, list) or is_unknown(actions):
        return actions
    return [
        {**NOTIFICATION_DEFAULTS, **from_wire(a)}
        if isinstance(a, Mapping) and a.get("type") == "send-notification"
        else from_wire(a)
        for a in actions
    ]


class AutomationProvider(PrefectResourceProvider):
    resource_type = "Automation"
    input_keys = INPUT_KEYS
    update_keys = FIELD_KEYS  # the PUT replaces everything: nothing needs a new automation
    defaults: ClassVar[Mapping[str, Any]] = {
        "description": "",
        "enabled": True,
        "tags": [],
        "adopt_existing": False,
    }
    look_before_create = True  # POST never refuses a duplicate name: look first

    def validate(self, check: InputCheck) -> None:
        inputs = check.inputs
        if check.known("trigger"):
            inputs["trigger"] = canonical_trigger(inputs.get("trigger"))
        if check.known("actions"):
            inputs["actions"] = canonical_actions(inputs.get("actions"))
        check.judge("name", _name_problem)
        check.optional_strings("description")
        check.flags("enabled", "adopt_existing")
        check.judge("tags", tags_problem)
        check.judge("trigger", _trigger_problem)
        check.judge("actions", _actions_problem)

    def describe(self, props: Mapping[str, Any]) -> str:
        return f"Automation {props.get('name')!r}"

    def object_path(self, id_: str, props: Mapping[str, Any]) -> str | None:
        return automation_path(id_)

    def find(self, client: PrefectClient, desired: Mapping[str, Any]) -> dict[str, Any] | None:
        """The newest automation with this name (names are not unique on the server). The name is checked here
        too: taking over another automation because a server ignored the filter would overwrite it."""
        found = client.post(
            "/automations/filter", {"automations": {"name": {"any_": [desired["name"]]}}}, idempotent=True
        )
        named = [a for a in found or [] if a.get("name") == desired["name"]]
        newest = max(named, key=lambda a: _parse_time(a.get("created")), default=None)
        return dict(newest) if newest else None

    def already_exists(
        self, client: PrefectClient, desired: Mapping[str, Any], existing: Mapping[str, Any] | None = None
    ) -> PrefectApiError:
        id_ = str(existing["id"]) if existing else ""
        where = automation_ui_url(client.base_url, id_) if id_ else client.base_url
        return exists_outside_the_stack(
            self.describe(desired), where, automation_path(id_) if id_ else "/automations/"
        )

    def post(self, client: PrefectClient, desired: Mapping[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = client.post("/automations/", _body(desired), idempotent=False)
        return created

    def apply(
        self, client: PrefectClient, id_: str, current: Mapping[str, Any], desired: Mapping[str, Any]
    ) -> bool:
        if not self.changed_keys(current, desired):
            return False
        client.request("PUT", automation_path(id_), json_body=_body(desired))
        return True

    def state(
        self, client: PrefectClient, obj: Mapping[str, Any], previous: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {
            "automation_id": str(obj["id"]),
            "name": obj.get("name"),
            "description": obj.get("description") or "",
            "enabled": bool(obj.get("enabled", True)),
            "tags": list(obj.get("tags") or []),
            "trigger": canonical_trigger(obj.get("trigger") or {}),
            "actions": canonical_actions(list(obj.get("actions") or [])),
            "ui_url": automation_ui_url(client.base_url, str(obj["id"])),
        }

    def field_equal(self, key: str, a: Any, b: Any) -> bool:
        if key == "trigger":
            return same(canonical_trigger(a), canonical_trigger(b))
        if key == "actions":
            return same(canonical_actions(a), canonical_actions(b))
        if key == "tags" and not (is_unknown(a) or is_unknown(b)):
            return same(sorted(set(a or [])), sorted(set(b or [])))
        return same(a, b)


def _body(desired: Mapping[str, Any]) -> dict[str, Any]:
    """The whole automation: a PUT writes only what it is sent (see the module docstring)."""
    return {
        **{key: desired.get(key) for key in FIELD_KEYS},
        "actions_on_trigger": [],
        "actions_on_resolve": [],
    }


def _parse_time(value: Any) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else datetime.min


def _name_problem(name: Any) -> str | None:
    if isinstance(name, str) and name.strip():
        return None
    return "name is required: give the automation a non-empty name, e.g. 'daily run failed or late'."


def _trigger_problem(trigger: Any) -> str | None:
    if not isinstance(trigger, Mapping):
        return "trigger must be an object: an event trigger with `expect`, `match`, `posture`..."
    if trigger.get("type") != "event":
        return (
            f"trigger.type {trigger.get('type')!r} is not supported; use an event trigger (type 'event') "
            "(compound and sequence triggers are not managed by this resource)."
        )
    for key in SET_FIELDS:
        values = trigger.get(key)
        if not is_unknown(values) and not (
            isinstance(values, list) and all(isinstance(v, str) for v in values)
        ):
            return f"trigger.{key} must be a list of strings (event names or labels), e.g. ['prefect.flow-run.Failed']."
    for key in ("match", "match_related"):
        value = trigger.get(key)
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(item, Mapping) for item in items):
            return (
                f"trigger.{key} must be an object of resource labels (or, for match_related, a list of them)."
            )
    posture = trigger.get("posture")
    if posture not in POSTURES:
        return f"trigger.posture must be one of {', '.join(POSTURES)}, not {posture!r}."
    threshold = trigger.get("threshold")
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
        return f"trigger.threshold must be a whole number >= 1, not {threshold!r}."
    within = trigger.get("within")
    if not isinstance(within, int | float) or isinstance(within, bool) or within < 0:
        return f"trigger.within must be a number of seconds >= 0, not {within!r}."
    if posture == "Proactive" and within < PROACTIVE_MIN_WITHIN_SECONDS:
        return (
            f"trigger.within must be >= {PROACTIVE_MIN_WITHIN_SECONDS} seconds for a Proactive trigger "
            f"(the server refuses less), not {within!r}."
        )
    return None


def _actions_problem(actions: Any) -> str | None:
    if not isinstance(actions, list) or not actions:
        return "actions must be a non-empty list of actions, e.g. [{'type': 'send-notification', ...}]."
    for index, action in enumerate(actions):
        if is_unknown(action):
            continue
        where = f"actions[{index}]"
        if not isinstance(action, Mapping) or not isinstance(action.get("type"), str):
            return f"{where} must be an object with a `type`, e.g. 'send-notification'."
        if action["type"] != "send-notification":
            continue
        block_id = action.get("block_document_id")
        if not is_unknown(block_id) and not (isinstance(block_id, str) and UUID_PATTERN.match(block_id)):
            return (
                f"{where}.block_document_id must be the id of a notification block document (a UUID), e.g. a "
                "NotificationBlock's `block_document_id` output."
            )
        for field in TEMPLATE_FIELDS:
            problem = _template_problem(action.get(field), f"{where}.{field}")
            if problem:
                return problem
    return None


def _template_problem(template: Any, field: str) -> str | None:
    """A Jinja template the server can parse: prefect/server/events/actions.py `JinjaTemplateAction.
    validate_template` parses it with its sandboxed environment (prefect/server/utilities/user_templates.py)."""
    if is_unknown(template):
        return None
    if not isinstance(template, str):
        return f"{field} must be a string (a Jinja template such as 'Run {{{{ flow_run.name }}}} failed')."
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        ImmutableSandboxedEnvironment().parse(template)
    except TemplateSyntaxError as error:
        return (
            f"{field} is not a valid Jinja template: {error.message} (line {error.lineno}); fix the template."
        )
    return None


class Automation(Resource, module="prefect", name="Automation"):
    """A Prefect automation: an event `trigger` (type 'event') and the `actions` it fires. Set
    `adopt_existing=True` to take over an automation of the same name that already exists."""

    automation_id: pulumi.Output[str]
    ui_url: pulumi.Output[str]
    name: pulumi.Output[str]
    description: pulumi.Output[str]
    enabled: pulumi.Output[bool]
    tags: pulumi.Output[list[str]]
    trigger: pulumi.Output[dict[str, Any]]
    actions: pulumi.Output[list[dict[str, Any]]]
    adopt_existing: pulumi.Output[bool]

    def __init__(
        self,
        resource_name: str,
        *,
        name: pulumi.Input[str],
        trigger: pulumi.Input[dict[str, Any]],
        actions: pulumi.Input[list[dict[str, Any]]],
        description: pulumi.Input[str] = "",
        enabled: pulumi.Input[bool] = True,
        tags: pulumi.Input[list[str]] | None = None,
        adopt_existing: pulumi.Input[bool] = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "name": name,
            "description": description,
            "enabled": enabled,
            "tags": tags,
            "trigger": trigger,
            "actions": actions,
            "adopt_existing": adopt_existing,
            **dict.fromkeys(OUTPUT_ONLY_KEYS),
        }
        super().__init__(AutomationProvider(), resource_name, props, opts)
