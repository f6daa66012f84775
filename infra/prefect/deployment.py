"""The `Deployment` dynamic resource: a Prefect deployment with cron schedules.

Create POSTs the whole deployment once: `POST /deployments/` is an upsert on (flow, name) that resets
whatever it is not sent, so it is never used to update. Update PATCHes the full desired field set (always
with `work_pool_name`, which is what makes the server validate job variables) when any field differs from
the server, then reconciles schedules by slug so that unchanged schedules keep their ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
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

from . import schedules as sched
from .client import PrefectApiError, PrefectClient, deployment_ui_url
from .props import from_wire, is_unknown, plain_props, same
from .provider_base import PrefectResourceProvider, refreshed
from .schedules import CronScheduleSpec
from .validation import json_schema_problem, name_problem, values_errors, values_problems

REPLACE_KEYS = ("flow_name", "name")
# Fields PATCHed as a whole set; `work_queue_name` None means "the pool's default queue" and is not diffed.
FIELD_KEYS = (
    "work_pool_name",
    "work_queue_name",
    "entrypoint",
    "pull_steps",
    "job_variables",
    "parameters",
    "parameter_openapi_schema",
    "enforce_parameter_schema",
    "tags",
    "description",
    "version",
    "paused",
    "concurrency_limit",
)
INPUT_KEYS = (*REPLACE_KEYS, *FIELD_KEYS, "schedules", "adopt_existing")
OUTPUT_ONLY_KEYS = ("deployment_id", "flow_id", "schedule_ids", "next_run_time", "ui_url")
DEFAULTS: dict[str, Any] = {
    "pull_steps": [],
    "job_variables": {},
    "parameters": {},
    "parameter_openapi_schema": {},
    "enforce_parameter_schema": True,
    "tags": [],
    "paused": False,
    "schedules": [],
    "adopt_existing": False,
}


def _field_equal(key: str, a: Any, b: Any) -> bool:
    if key == "tags":  # a set: reordering tags is not a change
        return (
            same(sorted(set(a or [])), sorted(set(b or [])))
            if not (is_unknown(a) or is_unknown(b))
            else False
        )
    if key == "schedules":
        return not (is_unknown(a) or is_unknown(b)) and sched.schedules_equal(a, b)
    return same(a, b)


def _managed(key: str, props: Mapping[str, Any]) -> bool:
    return key != "work_queue_name" or props.get("work_queue_name") is not None


class DeploymentProvider(PrefectResourceProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        raw = plain_props(news, INPUT_KEYS)
        inputs = {**DEFAULTS, **raw}
        schedule_problems = sched.schedule_problems(inputs["schedules"])  # before defaults hide unknown keys
        if isinstance(inputs["schedules"], list) and not is_unknown(inputs["schedules"]):
            inputs["schedules"] = [
                sched.with_defaults(s) if isinstance(s, Mapping) and not is_unknown(s) else s
                for s in inputs["schedules"]
            ]
        failures: list[CheckFailure] = []

        def fail(prop: str, problem: str | None) -> None:
            if problem:
                failures.append(CheckFailure(prop, problem))

        def known(key: str) -> bool:
            return not is_unknown(inputs.get(key))

        for key in ("flow_name", "name", "work_pool_name"):
            if known(key):
                fail(key, name_problem(inputs.get(key), key))
        if inputs.get("work_queue_name") is not None and known("work_queue_name"):
            fail("work_queue_name", name_problem(inputs["work_queue_name"], "work_queue_name"))
        entrypoint = inputs.get("entrypoint")
        if known("entrypoint") and (not isinstance(entrypoint, str) or not entrypoint.strip()):
            fail(
                "entrypoint",
                "entrypoint is required: the flow function as 'path/to/file.py:function' "
                "(or 'module.function').",
            )
        if known("pull_steps"):
            fail("pull_steps", _pull_steps_problem(inputs["pull_steps"]))
        for key in ("job_variables", "parameters", "parameter_openapi_schema"):
            if known(key) and not isinstance(inputs[key], Mapping):
                fail(key, f"{key} must be an object (a dict), not {type(inputs[key]).__name__}.")
        for key in ("enforce_parameter_schema", "paused", "adopt_existing"):
            if known(key) and not isinstance(inputs[key], bool):
                fail(key, f"{key} must be true or false, not {inputs[key]!r}.")
        tags = inputs["tags"]
        if known("tags") and (not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags)):
            fail("tags", "tags must be a list of non-empty strings.")
        for key in ("description", "version"):
            if inputs.get(key) is not None and known(key) and not isinstance(inputs[key], str):
                fail(key, f"{key} must be a string.")
        limit = inputs.get("concurrency_limit")
        if (
            limit is not None
            and known("concurrency_limit")
            and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1)
        ):
            fail(
                "concurrency_limit",
                f"concurrency_limit must be a whole number >= 1 (or None for no limit), not {limit!r}.",
            )
        for problem in schedule_problems:
            fail("schedules", problem)

        schema = inputs["parameter_openapi_schema"]
        if known("parameter_openapi_schema") and isinstance(schema, Mapping) and schema:
            schema_error = json_schema_problem(schema)
            if schema_error:
                fail(
                    "parameter_openapi_schema",
                    f"parameter_openapi_schema is not a valid JSON schema: {schema_error}",
                )
            elif inputs["enforce_parameter_schema"] is True:
                failures.extend(_parameter_failures(inputs, schema))

        return CheckResult({k: v for k, v in inputs.items() if v is not None}, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        old, new = plain_props(olds), plain_props(news)
        replaces = [k for k in REPLACE_KEYS if not same(old.get(k), new.get(k))]
        changed = replaces + [
            k
            for k in (*FIELD_KEYS, "schedules")
            if _managed(k, new)
            and not _field_equal(k, old.get(k, DEFAULTS.get(k)), new.get(k, DEFAULTS.get(k)))
        ]
        # A new (flow, name) can exist next to the old one: create the replacement first, no downtime.
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        desired = {**DEFAULTS, **plain_props(props, INPUT_KEYS)}
        flow_name, name = desired["flow_name"], desired["name"]
        with self.client() as client:
            flow = client.post("/flows/", {"name": flow_name}, idempotent=True)  # get-or-create
            existing = client.get_or_none(
                f"/deployments/name/{quote(flow_name, safe='')}/{quote(name, safe='')}"
            )
            if existing is not None:
                if not desired["adopt_existing"]:
                    raise PrefectApiError(
                        f"Deployment {flow_name}/{name} already exists on {client.base_url} "
                        f"(id {existing['id']}). To manage it with Pulumi, set adopt_existing=True on this "
                        "Deployment (`pulumi import` does not work for dynamic resources); otherwise choose "
                        "another name or delete the existing deployment.",
                        method="GET",
                        path=f"/deployments/name/{flow_name}/{name}",
                        status_code=409,
                    )
                deployment_id = str(existing["id"])
                self._reconcile(client, existing, desired)
            else:
                self._check_work_pool(client, desired)
                body = {
                    "name": name,
                    "flow_id": flow["id"],
                    **self._field_body(desired),
                    "schedules": [sched.to_server(s) for s in desired["schedules"]],
                }
                try:
                    # An upsert, so a retry after a lost response is harmless.
                    created = client.post("/deployments/", body, idempotent=True)
                except PrefectApiError as exc:
                    raise self._explain(exc, desired) from None
                # The answer is the deployment as stored: no second read that could fail after the write.
                return CreateResult(str(created["id"]), self._state(client, created, desired))
            return CreateResult(deployment_id, self._outputs(client, deployment_id, desired))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        previous = plain_props(props)
        with self.client() as client:
            current = client.get_or_none(f"/deployments/{quote(id_, safe='')}")
            if current is None:
                return ReadResult(None, {})
            outs = self._state(client, current, previous)
        return refreshed(str(current["id"]), outs, INPUT_KEYS)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        desired = {**DEFAULTS, **plain_props(news, INPUT_KEYS)}
        with self.client() as client:
            current = client.get_or_none(f"/deployments/{quote(id_, safe='')}")
            if current is None:
                raise PrefectApiError(
                    f"Deployment {desired['flow_name']}/{desired['name']} (id {id_}) no longer exists "
                    "(deleted outside Pulumi); run `pulumi refresh` and then `pulumi up` to create it again.",
                    method="GET",
                    path=f"/deployments/{id_}",
                    status_code=404,
                )
            self._reconcile(client, current, desired)
            return UpdateResult(self._outputs(client, id_, desired))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        with self.client() as client:
            # The server deletes the deployment's scheduled runs with it; 404 means already gone.
            client.delete(f"/deployments/{quote(id_, safe='')}")

    # -- writing -----------------------------------------------------------------------------------

    @staticmethod
    def _field_body(desired: Mapping[str, Any]) -> dict[str, Any]:
        return {k: desired.get(k) for k in FIELD_KEYS if _managed(k, desired)}

    def _reconcile(self, client: PrefectClient, current: dict[str, Any], desired: dict[str, Any]) -> None:
        """Make the server match `desired`, sending only what differs from `current` (a fresh GET)."""
        deployment_id = str(current["id"])
        path = f"/deployments/{deployment_id}"
        state = self._fields_from_server(current)
        if any(
            _managed(k, desired) and not _field_equal(k, state.get(k), desired.get(k)) for k in FIELD_KEYS
        ):
            self._check_work_pool(client, desired)
            try:
                client.patch(path, self._field_body(desired))
            except PrefectApiError as exc:
                raise self._explain(exc, desired) from None

        steps = sched.plan(desired["schedules"], current.get("schedules") or [])
        for schedule_id in steps.delete:
            client.delete(f"{path}/schedules/{schedule_id}")
        for schedule_id, body in steps.update:
            client.patch(f"{path}/schedules/{schedule_id}", body)
        if steps.create:
            client.post(f"{path}/schedules", steps.create, idempotent=False)

    @staticmethod
    def _explain(exc: PrefectApiError, desired: Mapping[str, Any]) -> PrefectApiError:
        """Say which input to fix when the server rejects the deployment's values."""
        if exc.status_code not in (409, 422) or not exc.detail or "deployment" not in exc.detail.lower():
            return exc
        hint = (
            " Make `parameters` match parameter_openapi_schema (or set enforce_parameter_schema=False) and "
            f"`job_variables` match the base job template of work pool {desired.get('work_pool_name')!r}."
        )
        return PrefectApiError(
            str(exc) + hint,
            method=exc.method,
            path=exc.path,
            status_code=exc.status_code,
            detail=exc.detail,
            attempts=exc.attempts,
        )

    @staticmethod
    def _check_work_pool(client: PrefectClient, desired: Mapping[str, Any]) -> None:
        """The pool must exist (PATCH with an unknown pool answers 500) and accept the job variables;
        checked here so that the message names the input to fix."""
        pool_name = desired["work_pool_name"]
        pool = client.get_or_none(f"/work_pools/{quote(pool_name, safe='')}")
        if pool is None:
            raise PrefectApiError(
                f"work_pool_name {pool_name!r} does not exist on {client.base_url}; create the work pool "
                "first (a WorkPool resource, passing its `name` output here) or fix the name.",
                method="GET",
                path=f"/work_pools/{pool_name}",
                status_code=404,
            )
        variables = (pool.get("base_job_template") or {}).get("variables") or {}
        problems = values_problems(desired.get("job_variables") or {}, variables)
        if problems:
            raise PrefectApiError(
                f"job_variables do not fit the base job template of work pool {pool_name!r}: "
                + "; ".join(f"job_variables.{p}" for p in problems)
                + ". Fix job_variables, or change the pool's base_job_template.",
                method="GET",
                path=f"/work_pools/{pool_name}",
                status_code=None,
            )

    # -- reading -----------------------------------------------------------------------------------

    @staticmethod
    def _fields_from_server(current: Mapping[str, Any]) -> dict[str, Any]:
        """The server's deployment in input shape (concurrency from the global limit, nulls as defaults)."""
        limit = current.get("global_concurrency_limit") or {}
        return {
            "name": current.get("name"),
            "work_pool_name": current.get("work_pool_name"),
            "work_queue_name": current.get("work_queue_name"),
            "entrypoint": current.get("entrypoint"),
            "pull_steps": from_wire(current.get("pull_steps") or []),
            "job_variables": from_wire(current.get("job_variables") or {}),
            "parameters": from_wire(current.get("parameters") or {}),
            "parameter_openapi_schema": from_wire(current.get("parameter_openapi_schema") or {}),
            "enforce_parameter_schema": bool(current.get("enforce_parameter_schema", True)),
            "tags": list(current.get("tags") or []),
            "description": current.get("description"),
            "version": current.get("version"),
            "paused": bool(current.get("paused", False)),
            "concurrency_limit": limit.get("limit") if limit else current.get("concurrency_limit"),
        }

    def _outputs(
        self, client: PrefectClient, deployment_id: str, desired: Mapping[str, Any]
    ) -> dict[str, Any]:
        current = client.get(f"/deployments/{deployment_id}")
        return self._state(client, current, desired)

    def _state(
        self, client: PrefectClient, current: Mapping[str, Any], previous: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Outputs: every input as the server has it, plus ids, next run time and UI link."""
        deployment_id = str(current["id"])
        flow_name = previous.get("flow_name")
        if not flow_name:
            flow_name = client.get(f"/flows/{current['flow_id']}")["name"]
        server_schedules = current.get("schedules") or []
        specs = sched.ordered_like(
            [sched.from_server(s) for s in server_schedules], previous.get("schedules")
        )
        fields = self._fields_from_server(current)
        return {
            "deployment_id": deployment_id,
            "flow_id": str(current["flow_id"]),
            "flow_name": flow_name,
            **fields,
            "schedules": specs,
            "schedule_ids": {str(s.get("slug") or f"id:{s['id']}"): str(s["id"]) for s in server_schedules},
            "next_run_time": self._next_run_time(client, deployment_id, fields["paused"], specs),
            "ui_url": deployment_ui_url(client.base_url, deployment_id),
            "adopt_existing": bool(previous.get("adopt_existing", False)),
        }

    @staticmethod
    def _next_run_time(
        client: PrefectClient, deployment_id: str, paused: bool, specs: list[dict[str, Any]]
    ) -> str | None:
        """The earliest scheduled run; until the scheduler has created runs (a few seconds after a change),
        the next fire time of the active cron schedules, computed the way the scheduler will."""
        if paused:
            return None
        now = datetime.now(UTC)
        try:
            runs = client.post(
                "/flow_runs/filter",
                {
                    "flow_runs": {
                        "deployment_id": {"any_": [deployment_id]},
                        "state": {"type": {"any_": ["SCHEDULED"]}},
                        "expected_start_time": {"after_": sched.format_time(now)},
                    },
                    "sort": "EXPECTED_START_TIME_ASC",
                    "limit": 1,
                },
                idempotent=True,
            )
        except PrefectApiError:
            # Informational only: failing here after a create would lose the created deployment's id.
            runs = []
        if runs and runs[0].get("expected_start_time"):
            return sched.format_time(sched.parse_time(runs[0]["expected_start_time"]))
        return sched.next_fire_time([s for s in specs if "cron" in s], after=now)


def _pull_steps_problem(steps: Any) -> str | None:
    if not isinstance(steps, list) or not all(isinstance(s, Mapping) and len(s) == 1 for s in steps):
        return (
            "pull_steps must be a list of one-key objects, e.g. "
            "[{'prefect.deployments.steps.set_working_directory': {'directory': '/opt/prefect/app'}}]."
        )
    return None


def _parameter_failures(inputs: Mapping[str, Any], schema: Mapping[str, Any]) -> list[CheckFailure]:
    failures: list[CheckFailure] = []
    fix = "fix the value, change parameter_openapi_schema, or set enforce_parameter_schema=False"
    parameters = inputs.get("parameters")
    if isinstance(parameters, Mapping) and not is_unknown(parameters):
        for problem in values_problems(parameters, schema):
            failures.append(CheckFailure("parameters", f"parameters.{problem}; {fix}."))
        schedules = inputs.get("schedules")
        if isinstance(schedules, list) and not is_unknown(schedules):
            for spec in schedules:
                if not isinstance(spec, Mapping) or not isinstance(spec.get("parameters"), Mapping):
                    continue
                if is_unknown(spec["parameters"]) or not spec["parameters"]:
                    continue
                merged = {**parameters, **spec["parameters"]}
                for path, message in values_errors(merged, schema):
                    if path.split(".")[0] not in spec["parameters"]:
                        continue  # the deployment's own parameter, reported above
                    problem = f"{path}: {message}"
                    failures.append(
                        CheckFailure(
                            "schedules", f"schedules[{spec.get('slug')!r}].parameters.{problem}; {fix}."
                        )
                    )
    return failures


class Deployment(Resource, module="prefect", name="Deployment"):
    """A Prefect deployment of `flow_name` on a work pool, with cron `schedules` identified by slug.
    Set `adopt_existing=True` to take over a deployment that already exists."""

    deployment_id: pulumi.Output[str]
    flow_id: pulumi.Output[str]
    schedule_ids: pulumi.Output[dict[str, str]]
    next_run_time: pulumi.Output[str | None]
    ui_url: pulumi.Output[str]
    flow_name: pulumi.Output[str]
    name: pulumi.Output[str]
    work_pool_name: pulumi.Output[str]
    work_queue_name: pulumi.Output[str]
    entrypoint: pulumi.Output[str]
    pull_steps: pulumi.Output[list[dict[str, Any]]]
    job_variables: pulumi.Output[dict[str, Any]]
    parameters: pulumi.Output[dict[str, Any]]
    parameter_openapi_schema: pulumi.Output[dict[str, Any]]
    enforce_parameter_schema: pulumi.Output[bool]
    tags: pulumi.Output[list[str]]
    description: pulumi.Output[str | None]
    version: pulumi.Output[str | None]
    paused: pulumi.Output[bool]
    concurrency_limit: pulumi.Output[int | None]
    schedules: pulumi.Output[
        list[dict[str, Any]]
    ]  # not the TypedDict: Pulumi would treat it as an output type
    adopt_existing: pulumi.Output[bool]

    def __init__(
        self,
        resource_name: str,
        *,
        flow_name: pulumi.Input[str],
        name: pulumi.Input[str],
        work_pool_name: pulumi.Input[str],
        entrypoint: pulumi.Input[str],
        work_queue_name: pulumi.Input[str] | None = None,
        pull_steps: pulumi.Input[list[dict[str, Any]]] | None = None,
        job_variables: pulumi.Input[dict[str, Any]] | None = None,
        parameters: pulumi.Input[dict[str, Any]] | None = None,
        parameter_openapi_schema: pulumi.Input[dict[str, Any]] | None = None,
        enforce_parameter_schema: pulumi.Input[bool] = True,
        tags: pulumi.Input[list[str]] | None = None,
        description: pulumi.Input[str] | None = None,
        version: pulumi.Input[str] | None = None,
        paused: pulumi.Input[bool] = False,
        concurrency_limit: pulumi.Input[int] | None = None,
        schedules: pulumi.Input[list[CronScheduleSpec]] | None = None,
        adopt_existing: pulumi.Input[bool] = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "flow_name": flow_name,
            "name": name,
            "work_pool_name": work_pool_name,
            "work_queue_name": work_queue_name,
            "entrypoint": entrypoint,
            "pull_steps": pull_steps,
            "job_variables": job_variables,
            "parameters": parameters,
            "parameter_openapi_schema": parameter_openapi_schema,
            "enforce_parameter_schema": enforce_parameter_schema,
            "tags": tags,
            "description": description,
            "version": version,
            "paused": paused,
            "concurrency_limit": concurrency_limit,
            "schedules": schedules,
            "adopt_existing": adopt_existing,
            # Output-only properties must be declared for `deployment.ui_url` etc. to exist.
            **dict.fromkeys(OUTPUT_ONLY_KEYS),
        }
        super().__init__(DeploymentProvider(), resource_name, props, opts)
