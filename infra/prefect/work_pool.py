"""The `WorkPool` dynamic resource: a Prefect work pool managed through the REST API.

Identity: the pool's name (Prefect addresses pools by name); the Pulumi id is the pool's UUID.
`name` and `type` cannot change on the server, so changing either replaces the pool (delete first:
names are unique). Everything else is PATCHed, and only what changed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    UpdateResult,
)

from .client import PrefectApiError, PrefectClient, work_pool_ui_url
from .job_templates import default_base_job_template
from .props import is_unknown, plain_props, same
from .provider_base import PrefectResourceProvider, refreshed
from .validation import base_job_template_problem, work_pool_name_problem, work_pool_type_problem

INPUT_KEYS = (
    "name",
    "type",
    "description",
    "concurrency_limit",
    "paused",
    "base_job_template",
    "adopt_existing",
)
REPLACE_KEYS = ("name", "type")
# input name -> API field; a None `base_job_template` means "leave it to the server" and is never diffed.
UPDATE_FIELDS = {
    "description": "description",
    "concurrency_limit": "concurrency_limit",
    "paused": "is_paused",
    "base_job_template": "base_job_template",
}
OUTPUT_ONLY_KEYS = ("pool_id", "status", "ui_url")


def pool_path(name: str) -> str:
    return f"/work_pools/{quote(name, safe='')}"


class WorkPoolProvider(PrefectResourceProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        raw = plain_props(news, INPUT_KEYS)
        inputs: dict[str, Any] = {
            "name": raw.get("name"),
            "type": raw.get("type", "process"),
            "description": raw.get("description"),
            "concurrency_limit": raw.get("concurrency_limit"),
            "paused": raw.get("paused", False),
            "base_job_template": raw.get("base_job_template"),
            "adopt_existing": raw.get("adopt_existing", False),
        }
        failures: list[CheckFailure] = []

        def fail(prop: str, problem: str | None) -> None:
            if problem:
                failures.append(CheckFailure(prop, problem))

        if not is_unknown(inputs["name"]):
            fail("name", work_pool_name_problem(inputs["name"], "name"))
        pool_type = inputs["type"]
        if not is_unknown(pool_type):
            fail("type", work_pool_type_problem(pool_type, is_cloud=self.connection().is_cloud))
        limit = inputs["concurrency_limit"]
        if (
            limit is not None
            and not is_unknown(limit)
            and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0)
        ):
            fail(
                "concurrency_limit",
                f"concurrency_limit must be a whole number >= 0 (or None for no limit), not {limit!r}.",
            )
        for flag in ("paused", "adopt_existing"):
            if not is_unknown(inputs[flag]) and not isinstance(inputs[flag], bool):
                fail(flag, f"{flag} must be true or false, not {inputs[flag]!r}.")
        description = inputs["description"]
        if description is not None and not is_unknown(description) and not isinstance(description, str):
            fail("description", "description must be a string.")

        template = inputs["base_job_template"]
        if template is None:
            # Default: the type's template from the installed worker, so job variables get validated.
            if not failures and isinstance(pool_type, str) and not is_unknown(pool_type):
                inputs["base_job_template"] = default_base_job_template(pool_type)
        elif not is_unknown(template):
            fail("base_job_template", base_job_template_problem(template))

        return CheckResult({k: v for k, v in inputs.items() if v is not None}, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        old, new = plain_props(olds), plain_props(news)
        replaces = [k for k in REPLACE_KEYS if not same(old.get(k), new.get(k))]
        changed = replaces + [
            k for k in UPDATE_FIELDS if self._managed(k, new) and not same(old.get(k), new.get(k))
        ]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def create(self, props: dict[str, Any]) -> CreateResult:
        desired = plain_props(props, INPUT_KEYS)
        name = desired["name"]
        with self.client() as client:
            if desired.get("adopt_existing"):
                existing = client.get_or_none(pool_path(name))
                if existing is not None:
                    return self._adopt(client, existing, desired)
            body = {"name": name, "type": desired["type"]}
            for key, api_field in UPDATE_FIELDS.items():
                if self._managed(key, desired):
                    body[api_field] = desired.get(key)
            requested_at = datetime.now(UTC)
            try:
                pool = client.post("/work_pools/", body, idempotent=False)
            except PrefectApiError as exc:
                if exc.maybe_applied:
                    # The answer was lost, maybe after the server created the pool: if a pool of this name
                    # and type appeared just now, it is this request's, and the create goes on from there.
                    existing = client.get_or_none(pool_path(name))
                    if _created_by_this_request(existing, desired["type"], requested_at):
                        return self._adopt(client, existing, desired)
                    raise
                if exc.status_code != 409:
                    raise
                raise PrefectApiError(
                    f"Work pool {name!r} already exists on {client.base_url}. To manage it with Pulumi, "
                    "set adopt_existing=True on this WorkPool (`pulumi import` does not work for dynamic "
                    "resources); otherwise choose another name or delete the existing pool.",
                    method=exc.method,
                    path=exc.path,
                    status_code=409,
                    detail=exc.detail,
                ) from None
            return CreateResult(str(pool["id"]), self._outputs(client, pool, desired))

    def _adopt(
        self, client: PrefectClient, existing: dict[str, Any], desired: dict[str, Any]
    ) -> CreateResult:
        name = desired["name"]
        if existing.get("type") != desired["type"]:
            raise PrefectApiError(
                f"Cannot adopt work pool {name!r}: it has type {existing.get('type')!r} but this WorkPool "
                f"says {desired['type']!r}, and a pool's type cannot change. Set "
                f"type={existing.get('type')!r} to adopt it as it is, or delete the pool so that Pulumi can "
                "create it.",
                method="GET",
                path=pool_path(name),
                status_code=200,
            )
        current = self._outputs(client, existing, desired)
        body = {
            api: desired.get(key)
            for key, api in UPDATE_FIELDS.items()
            if self._managed(key, desired) and not same(current.get(key), desired.get(key))
        }
        if body:
            client.patch(pool_path(name), body)
            existing = client.get(pool_path(name))
        return CreateResult(str(existing["id"]), self._outputs(client, existing, desired))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        previous = plain_props(props)
        name = previous.get("name")
        with self.client() as client:
            if name:
                pool = client.get_or_none(pool_path(name))
            else:  # `WorkPool.get(id)` passes no properties: find the pool by its id
                found = client.post(
                    "/work_pools/filter", {"work_pools": {"id": {"any_": [id_]}}}, idempotent=True
                )
                pool = found[0] if found else None
            if pool is None:
                return ReadResult(None, {})
            outs = self._outputs(client, pool, previous)
        return refreshed(str(pool["id"]), outs, INPUT_KEYS)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        old, new = plain_props(olds), plain_props(news, INPUT_KEYS)
        body = {
            api: new.get(key)
            for key, api in UPDATE_FIELDS.items()
            if self._managed(key, new) and not same(old.get(key), new.get(key))
        }
        path = pool_path(new["name"])
        with self.client() as client:
            if body:
                try:
                    client.patch(path, body)
                except PrefectApiError as exc:
                    if exc.status_code == 404:
                        raise PrefectApiError(
                            f"Work pool {new['name']!r} no longer exists (deleted outside Pulumi); run "
                            "`pulumi refresh` and then `pulumi up` to create it again.",
                            method=exc.method,
                            path=exc.path,
                            status_code=404,
                        ) from None
                    raise
            pool = client.get(path)
            return UpdateResult(self._outputs(client, pool, new))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        name = plain_props(props).get("name")
        if not name:
            return
        with self.client() as client:
            client.delete(pool_path(name))  # 404: already gone, which is what we want

    # -- helpers -----------------------------------------------------------------------------------

    @staticmethod
    def _managed(key: str, props: dict[str, Any]) -> bool:
        return key != "base_job_template" or props.get("base_job_template") is not None

    def _outputs(self, client: PrefectClient, pool: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        """Outputs reflect the server (so edits made in the UI show up as drift) and echo every input."""
        return {
            "pool_id": str(pool["id"]),
            "name": pool["name"],
            "type": pool["type"],
            "description": pool.get("description"),
            "concurrency_limit": pool.get("concurrency_limit"),
            "paused": bool(pool.get("is_paused", False)),
            "base_job_template": pool.get("base_job_template") or {},
            "status": pool.get("status"),
            "ui_url": work_pool_ui_url(client.base_url, pool["name"]),
            "adopt_existing": bool(inputs.get("adopt_existing", False)),
        }


class WorkPool(Resource, module="prefect", name="WorkPool"):
    """A Prefect work pool. `type` defaults to `process`; the base job template defaults to the type's
    template from the installed worker. Set `adopt_existing=True` to take over a pool that already exists."""

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


# How far the server's clock may run behind ours when telling "created by this request" from "already there".
CLOCK_SKEW = timedelta(seconds=30)


def _created_by_this_request(pool: dict[str, Any] | None, pool_type: str, requested_at: datetime) -> bool:
    if pool is None or pool.get("type") != pool_type or not pool.get("created"):
        return False
    return datetime.fromisoformat(str(pool["created"]).replace("Z", "+00:00")) >= requested_at - CLOCK_SKEW
