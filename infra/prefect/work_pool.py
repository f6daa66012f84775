"""The `WorkPool` dynamic resource: a Prefect work pool managed through the REST API.

Identity: the pool's name (Prefect addresses pools by name); the Pulumi id is the pool's UUID.
`name` and `type` cannot change on the server, so changing either replaces the pool (delete first:
names are unique). Everything else is PATCHed, and only what changed. A pool that declares no
`base_job_template` gets the server's default for its type when it is created (job_templates.py), and
keeps it: the template is then the server's to manage, not diffed. The choreography (check, diff,
create or adopt, read, update, delete) is `PrefectResourceProvider`'s; this module says what is a pool's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import pulumi
from pulumi.dynamic import Resource

from .client import PrefectApiError, PrefectClient, work_pool_ui_url
from .job_templates import default_base_job_template
from .provider_base import InputCheck, PrefectResourceProvider
from .validation import base_job_template_problem, work_pool_name_problem, work_pool_type_problem

# input name -> API field; a None `base_job_template` means "leave it to the server" and is never diffed.
UPDATE_FIELDS = {
    "description": "description",
    "concurrency_limit": "concurrency_limit",
    "paused": "is_paused",
    "base_job_template": "base_job_template",
}
INPUT_KEYS = ("name", "type", *UPDATE_FIELDS, "adopt_existing")
OUTPUT_ONLY_KEYS = ("pool_id", "status", "ui_url")


def pool_path(name: str) -> str:
    return f"/work_pools/{quote(name, safe='')}"


class WorkPoolProvider(PrefectResourceProvider):
    resource_type = "WorkPool"
    input_keys = INPUT_KEYS
    replace_keys = ("name", "type")
    update_keys = tuple(UPDATE_FIELDS)
    defaults: ClassVar[Mapping[str, Any]] = {"type": "process", "paused": False, "adopt_existing": False}
    delete_before_replace = True  # names are unique: the old pool must go first

    def validate(self, check: InputCheck) -> None:
        check.judge("name", lambda name: work_pool_name_problem(name, "name"))
        check.judge("type", lambda kind: work_pool_type_problem(kind, is_cloud=self.connection().is_cloud))
        check.optional_limit("concurrency_limit", minimum=0)
        check.flags("paused", "adopt_existing")
        check.optional_strings("description")
        check.judge("base_job_template", base_job_template_problem, optional=True)

    def describe(self, props: Mapping[str, Any]) -> str:
        return f"Work pool {props.get('name')!r}"

    def object_path(self, id_: str, props: Mapping[str, Any]) -> str | None:
        return pool_path(props["name"]) if props.get("name") else None

    def find(self, client: PrefectClient, desired: Mapping[str, Any]) -> dict[str, Any] | None:
        found: dict[str, Any] | None = client.get_or_none(pool_path(desired["name"]))
        return found

    def adoption_problem(self, existing: Mapping[str, Any], desired: Mapping[str, Any]) -> str | None:
        if existing.get("type") == desired["type"]:
            return None
        return (
            f"Cannot adopt work pool {desired['name']!r}: it has type {existing.get('type')!r} but this "
            f"WorkPool says {desired['type']!r}, and a pool's type cannot change. Set "
            f"type={existing.get('type')!r} to adopt it as it is, or delete the pool so that Pulumi can "
            "create it."
        )

    def post(self, client: PrefectClient, desired: Mapping[str, Any]) -> dict[str, Any]:
        body = {"name": desired["name"], "type": desired["type"]}
        body.update(
            {api: desired.get(key) for key, api in UPDATE_FIELDS.items() if self.managed(key, desired)}
        )
        if "base_job_template" not in body:
            body["base_job_template"] = default_base_job_template(client, desired["type"])
        try:
            pool: dict[str, Any] = client.post("/work_pools/", body, idempotent=False)
        except PrefectApiError as exc:
            if exc.status_code == 409:  # POST /work_pools/ never overwrites: a duplicate name is a 409
                raise self.already_exists(client, desired) from None
            raise
        return pool

    def fetch(self, client: PrefectClient, id_: str, previous: Mapping[str, Any]) -> dict[str, Any] | None:
        if previous.get("name"):
            return super().fetch(client, id_, previous)
        # `WorkPool.get(id)` passes no properties: find the pool by its id.
        found = client.post("/work_pools/filter", {"work_pools": {"id": {"any_": [id_]}}}, idempotent=True)
        return dict(found[0]) if found else None

    def apply(
        self, client: PrefectClient, id_: str, current: Mapping[str, Any], desired: Mapping[str, Any]
    ) -> bool:
        body = {UPDATE_FIELDS[key]: desired.get(key) for key in self.changed_keys(current, desired)}
        if not self.managed("base_job_template", desired) and not current.get("base_job_template"):
            # An adopted pool without a template validates no job variables: give it the server's default.
            body["base_job_template"] = default_base_job_template(client, desired["type"])
        if body:
            client.patch(pool_path(desired["name"]), body)
        return bool(body)

    def state(
        self, client: PrefectClient, obj: Mapping[str, Any], previous: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {
            "pool_id": str(obj["id"]),
            "name": obj["name"],
            "type": obj["type"],
            "description": obj.get("description"),
            "concurrency_limit": obj.get("concurrency_limit"),
            "paused": bool(obj.get("is_paused", False)),
            "base_job_template": obj.get("base_job_template") or {},
            "status": obj.get("status"),
            "ui_url": work_pool_ui_url(client.base_url, obj["name"]),
        }

    def managed(self, key: str, props: Mapping[str, Any]) -> bool:
        return key != "base_job_template" or props.get("base_job_template") is not None


class WorkPool(Resource, module="prefect", name="WorkPool"):
    """A Prefect work pool. `type` defaults to `process`; the base job template, when not given, is the
    server's default for the type at creation. Set `adopt_existing=True` to take over a pool that already
    exists."""

    pool_id: pulumi.Output[str]
    name: pulumi.Output[str]
    type: pulumi.Output[str]
    description: pulumi.Output[str | None]
    concurrency_limit: pulumi.Output[int | None]
    paused: pulumi.Output[bool]
    base_job_template: pulumi.Output[dict[str, Any]]
    status: pulumi.Output[str | None]
    ui_url: pulumi.Output[str]
    adopt_existing: pulumi.Output[bool]

    def __init__(
        self,
        resource_name: str,
        *,
        name: pulumi.Input[str],
        type: pulumi.Input[str] = "process",
        description: pulumi.Input[str] | None = None,
        concurrency_limit: pulumi.Input[int] | None = None,
        paused: pulumi.Input[bool] = False,
        base_job_template: pulumi.Input[dict[str, Any]] | None = None,
        adopt_existing: pulumi.Input[bool] = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "name": name,
            "type": type,
            "description": description,
            "concurrency_limit": concurrency_limit,
            "paused": paused,
            "base_job_template": base_job_template,
            "adopt_existing": adopt_existing,
            # Output-only properties must be declared for `pool.ui_url` etc. to exist.
            **dict.fromkeys(OUTPUT_ONLY_KEYS),
        }
        super().__init__(WorkPoolProvider(), resource_name, props, opts)
