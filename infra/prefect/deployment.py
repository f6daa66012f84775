"""The `Deployment` dynamic resource: a Prefect deployment with cron schedules.

Create POSTs the whole deployment once: `POST /deployments/` is an upsert on (flow, name) that resets
whatever it is not sent, so it is never used to update (and create looks for an existing one first). Update
PATCHes only the fields that changed (with `work_pool_name` only where the server needs it, see
`_patch_body`), then reconciles schedules by slug through their own endpoints so that unchanged schedules
keep their ids. It reads nothing first: the previous outputs are the state it changes from.

Future runs: the server deletes a deployment's future auto-scheduled runs on EVERY write to it (any PATCH of
the deployment, whatever its fields; a PATCH or DELETE of one of its schedules), and only adding a schedule
keeps them (prefect/server/models/deployments.py `update_deployment`, prefect/server/api/deployments.py).
So a change that needs no write to the deployment (adding a schedule, or nothing at all) keeps the runs and
their ids; any other change gets them recreated at once by `_schedule_now`, at the same times.

The choreography is `PrefectResourceProvider`'s; this module says what is a deployment's.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

import pulumi
from pulumi.dynamic import Resource

from . import schedules as sched
from .client import PrefectApiError, PrefectClient, deployment_ui_url
from .props import from_wire, is_unknown, same
from .provider_base import InputCheck, PrefectResourceProvider
from .schedules import CronScheduleSpec
from .validation import json_schema_problem, name_problem, tags_problem, values_errors, values_problems

REPLACE_KEYS = ("flow_name", "name")
# Fields a PATCH sends when they change; `work_queue_name` None means "the pool's default queue" and is not
# diffed.
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
# Where the deployment's runs go, and with which job variables: see `_patch_body`.
PLACEMENT_KEYS = frozenset({"work_pool_name", "work_queue_name", "job_variables"})
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


def deployment_path(deployment_id: str) -> str:
    return f"/deployments/{quote(deployment_id, safe='')}"


class DeploymentProvider(PrefectResourceProvider):
    resource_type = "Deployment"
    input_keys = INPUT_KEYS
    replace_keys = REPLACE_KEYS
    update_keys = (*FIELD_KEYS, "schedules")
    defaults: ClassVar[Mapping[str, Any]] = DEFAULTS
    # A new (flow, name) can exist next to the old one: create the replacement first, no downtime.
    delete_before_replace = False
    look_before_create = True  # POST /deployments/ is an upsert: it would silently take over an existing one

    def validate(self, check: InputCheck) -> None:
        inputs = check.inputs
        schedule_problems = sched.schedule_problems(inputs["schedules"])  # before defaults hide unknown keys
        if isinstance(inputs["schedules"], list) and check.known("schedules"):
            inputs["schedules"] = [
                sched.with_defaults(s) if isinstance(s, Mapping) and not is_unknown(s) else s
                for s in inputs["schedules"]
            ]
        for key in ("flow_name", "name", "work_pool_name"):
            check.judge(key, functools.partial(name_problem, field=key))
        check.judge(
            "work_queue_name", functools.partial(name_problem, field="work_queue_name"), optional=True
        )
        check.judge("entrypoint", _entrypoint_problem)
        check.judge("pull_steps", _pull_steps_problem)
        for key in ("job_variables", "parameters", "parameter_openapi_schema"):
            value = inputs.get(key)
            if check.known(key) and not isinstance(value, Mapping):
                check.fail(key, f"{key} must be an object (a dict), not {type(value).__name__}.")
        check.flags("enforce_parameter_schema", "paused", "adopt_existing")
        check.judge("tags", tags_problem)
        check.optional_strings("description", "version")
        check.optional_limit("concurrency_limit", minimum=1)
        for problem in schedule_problems:
            check.fail("schedules", problem)

        schema = inputs["parameter_openapi_schema"]
        if check.known("parameter_openapi_schema") and isinstance(schema, Mapping) and schema:
            schema_error = json_schema_problem(schema)
            if schema_error:
                check.fail(
                    "parameter_openapi_schema",
                    f"parameter_openapi_schema is not a valid JSON schema: {schema_error}",
                )
            elif inputs["enforce_parameter_schema"] is True:
                _check_parameters(check, schema)

    def describe(self, props: Mapping[str, Any]) -> str:
        return f"Deployment {props.get('flow_name')}/{props.get('name')}"

    def object_path(self, id_: str, props: Mapping[str, Any]) -> str | None:
        return deployment_path(id_)

    def resolve(self, client: PrefectClient, desired: dict[str, Any]) -> None:
        flow = client.post("/flows/", {"name": desired["flow_name"]}, idempotent=True)  # get-or-create
        desired["flow_id"] = flow["id"]

    def find(self, client: PrefectClient, desired: Mapping[str, Any]) -> dict[str, Any] | None:
        flow_name, name = quote(desired["flow_name"], safe=""), quote(desired["name"], safe="")
        found: dict[str, Any] | None = client.get_or_none(f"/deployments/name/{flow_name}/{name}")
        return found

    def post(self, client: PrefectClient, desired: Mapping[str, Any]) -> dict[str, Any]:
        self._check_work_pool(client, desired)
        body = {
            "name": desired["name"],
            "flow_id": desired["flow_id"],
            **{k: desired.get(k) for k in FIELD_KEYS if self.managed(k, desired)},
            "schedules": [sched.to_server(s) for s in desired["schedules"]],
        }
        try:
            # An upsert, so a retry after a lost response is harmless.
            created: dict[str, Any] = client.post("/deployments/", body, idempotent=True)
        except PrefectApiError as exc:
            raise self._explain(exc, desired) from None
        self._schedule_now(client, str(created["id"]), desired)
        return created

    def apply(
        self, client: PrefectClient, id_: str, current: Mapping[str, Any], desired: Mapping[str, Any]
    ) -> bool:
        """Send only what differs from `current` (the previous outputs): a PATCH of the changed fields,
        then the schedules reconciled by slug through their own endpoints."""
        path = deployment_path(id_)
        body = self._patch_body(self.changed_keys(current, desired), desired)
        if body:
            if "work_pool_name" in body:
                self._check_work_pool(client, desired)
            try:
                client.patch(path, body)  # a 404 here: deleted outside Pulumi
            except PrefectApiError as exc:
                raise self._explain(exc, desired) from None

        ids = current.get("schedule_ids") or {}
        actual = [
            sched.as_server(s, ids[s["slug"]]) for s in current.get("schedules") or [] if s["slug"] in ids
        ]
        steps = sched.plan(desired["schedules"], actual)
        for schedule_id in steps.delete:
            client.delete(f"{path}/schedules/{schedule_id}")
        for schedule_id, schedule_body in steps.update:
            client.patch(f"{path}/schedules/{schedule_id}", schedule_body)
        if steps.create:
            client.post(f"{path}/schedules", steps.create, idempotent=False)
        wrote = bool(body) or not steps.empty
        if wrote:
            self._schedule_now(client, id_, desired)
        return wrote

    def _patch_body(self, changed: list[str], desired: Mapping[str, Any]) -> dict[str, Any]:
        """The PATCH body for the changed fields: those, and `work_pool_name` only where the server needs it.

        From prefect/server/api/deployments.py and prefect/server/models/deployments.py `update_deployment`:
        job variables are validated against the pool's template only when `work_pool_name` is in the same
        body (and only those sent: a new pool gets the job variables sent again); a queue is looked up, or
        created, in the pool named in the body (a queue name alone is looked up in any pool, or created in
        the default agent pool: models/work_queues.py `ensure_work_queue_exists`); and a body naming a pool
        but no queue moves the deployment to that pool's default queue, so a managed `work_queue_name` goes
        along. Every other field is stored as sent, alone.
        """
        keys = {k for k in changed if k in FIELD_KEYS}
        if keys & PLACEMENT_KEYS:
            keys.add("work_pool_name")
            keys.add("work_queue_name")
            if "work_pool_name" in changed:
                keys.add("job_variables")
        return {k: desired.get(k) for k in FIELD_KEYS if k in keys and self.managed(k, desired)}

    @staticmethod
    def _schedule_now(client: PrefectClient, deployment_id: str, desired: Mapping[str, Any]) -> None:
        """Have the server create now the runs its scheduler would create on its next loop (a few seconds
        later): the outputs then show the real next run, and no run is missing in between. Every write to a
        deployment or to its schedules deletes its future auto-scheduled runs first
        (prefect/server/models/deployments.py `update_deployment`, and the schedule PATCH/DELETE routes of
        prefect/server/api/deployments.py). `POST /deployments/{id}/schedule` runs the scheduler's own
        `schedule_runs` with its default window; the runs' idempotency keys (deployment, schedule, time)
        are the scheduler's, so neither can duplicate the other. Not for a paused deployment, which the
        scheduler skips. Informational: a failure here must not fail the write that preceded it."""
        if desired.get("paused") or not any(s.get("active", True) for s in desired.get("schedules") or []):
            return
        with contextlib.suppress(PrefectApiError):
            client.post(f"{deployment_path(deployment_id)}/schedule", {}, idempotent=True)

    def managed(self, key: str, props: Mapping[str, Any]) -> bool:
        return key != "work_queue_name" or props.get("work_queue_name") is not None

    def field_equal(self, key: str, a: Any, b: Any) -> bool:
        if key not in ("tags", "schedules"):
            return same(a, b)
        if is_unknown(a) or is_unknown(b):
            return False
        if key == "tags":  # a set: reordering tags is not a change
            return same(sorted(set(a or [])), sorted(set(b or [])))
        return sched.schedules_equal(a, b)

    # -- writing -----------------------------------------------------------------------------------

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

    def state(
        self, client: PrefectClient, obj: Mapping[str, Any], previous: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Outputs: every input as the server has it, plus ids, next run time and UI link."""
        current = obj
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
        }

    @staticmethod
    def _next_run_time(
        client: PrefectClient, deployment_id: str, paused: bool, specs: list[dict[str, Any]]
    ) -> str | None:
        """The earliest scheduled run, as the server computed it (see `_schedule_now`); when it cannot be
        read, the next fire time of the active cron schedules."""
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


def _entrypoint_problem(entrypoint: Any) -> str | None:
    if isinstance(entrypoint, str) and entrypoint.strip():
        return None
    return "entrypoint is required: the flow function as 'path/to/file.py:function' (or 'module.function')."


def _pull_steps_problem(steps: Any) -> str | None:
    if not isinstance(steps, list) or not all(isinstance(s, Mapping) and len(s) == 1 for s in steps):
        return (
            "pull_steps must be a list of one-key objects, e.g. "
            "[{'prefect.deployments.steps.set_working_directory': {'directory': '/opt/prefect/app'}}]."
        )
    return None


def _check_parameters(check: InputCheck, schema: Mapping[str, Any]) -> None:
    """The deployment's parameters, and each schedule's parameters merged over them, against the schema."""
    fix = "fix the value, change parameter_openapi_schema, or set enforce_parameter_schema=False"
    parameters = check.inputs.get("parameters")
    if not isinstance(parameters, Mapping) or not check.known("parameters"):
        return
    for problem in values_problems(parameters, schema):
        check.fail("parameters", f"parameters.{problem}; {fix}.")
    schedules = check.inputs.get("schedules")
    if not isinstance(schedules, list) or not check.known("schedules"):
        return
    for spec in schedules:
        if not isinstance(spec, Mapping) or not isinstance(spec.get("parameters"), Mapping):
            continue
        if is_unknown(spec["parameters"]) or not spec["parameters"]:
            continue
        merged = {**parameters, **spec["parameters"]}
        for path, message in values_errors(merged, schema):
            if path.split(".")[0] not in spec["parameters"]:
                continue  # the deployment's own parameter, reported above
            check.fail("schedules", f"schedules[{spec.get('slug')!r}].parameters.{path}: {message}; {fix}.")


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
