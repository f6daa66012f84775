"""The `FlowRunCheck` dynamic resource: one real run of a deployment, proven before `pulumi up` returns.

Create triggers a run of the deployment (tagged, so the UI tells it apart from scheduled runs) and waits for
a final state. Completed: the run's id, UI link, state, duration and artifact keys are the outputs. Anything
else, or no final state within `timeout_seconds`: create raises with the run's state, its state message and
its link, after cancelling a run that is not finished (nothing is left behind to run later).

The check is a record of a run that happened. Its inputs are the deployment and what its runs execute
(`RUN_KEYS`, wired from the Deployment's OUTPUTS, so that a change the deployment takes in place still
changes them): every change of those replaces it, which runs it again. `timeout_seconds` and `tags` say how
to check, not what runs: they are not diffed. Nothing updates in place. Delete leaves the run alone (runs are
history, `retain_on_delete`), and a refresh keeps the record when the run is gone (`kept_when_gone`).

What the engine does with it (pulumi/pulumi), which makes "the next `up` runs it again" true:
- A create that raises leaves nothing in the state. The dynamic provider host answers a plain error
  (sdk/python/lib/pulumi/dynamic/__main__.py `Create`), without the ErrorResourceInitFailed detail that
  would record a partial object (sdk/go/common/resource/plugin/provider_plugin.go `parseError`), so
  pkg/resource/deploy/step.go `CreateStep.Apply` records nothing: the next `up` creates it.
- Replacement is delete-before-replace: the old check's delete (nothing on the server) marks it
  PendingReplacement (step.go `DeleteStep.Apply`), and while it is, every `up` replaces it whatever the diff
  (step_generator.go `continueStepsFromDiff`). Create-before-delete would keep the old check as it was when
  the new one fails, and an `up` that puts the previous inputs back (a reverted parameter) would run nothing.
- Create is called without a deadline (provider_plugin.go `Create` uses the plugin's request context, and
  the Python host ignores `timeout`): waiting for the run is bounded by `timeout_seconds` alone.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote

import pulumi
from pulumi.dynamic import Resource

from .client import PrefectApiError, PrefectClient, flow_run_ui_url
from .deployment import Deployment
from .provider_base import InputCheck, PrefectResourceProvider

# What a run of the deployment executes: a change of any of these replaces the check (a new run).
RUN_KEYS = (
    "deployment_id",
    "work_pool_name",
    "version",  # the program's image tag: the code
    "entrypoint",
    "pull_steps",
    "parameters",
    "job_variables",
)
INPUT_KEYS = (*RUN_KEYS, "timeout_seconds", "tags")
OUTPUT_ONLY_KEYS = ("flow_run_id", "flow_run_name", "ui_url", "state_type", "state_name", "duration_seconds",
                    "artifact_keys")  # fmt: skip
DEFAULT_TAGS = ("smoke-run",)  # so that the UI tells smoke runs from scheduled ones
FINAL_STATE_TYPES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
POLL_SECONDS = 1.0  # one GET of the run per second while it is not final


class FlowRunCheckError(Exception):
    """The run did not complete; `str(error)` names its state, its state message and its link."""


def flow_run_path(flow_run_id: str) -> str:
    return f"/flow_runs/{quote(flow_run_id, safe='')}"


class FlowRunCheckProvider(PrefectResourceProvider):
    resource_type = "FlowRunCheck"
    input_keys = INPUT_KEYS
    replace_keys = RUN_KEYS
    defaults: ClassVar[Mapping[str, Any]] = {
        "pull_steps": [],
        "parameters": {},
        "job_variables": {},
        "tags": list(DEFAULT_TAGS),
    }
    delete_before_replace = True  # see the module docstring: a failed replacement is retried by the next up
    retain_on_delete = True
    kept_when_gone = True

    def validate(self, check: InputCheck) -> None:
        check.judge("deployment_id", _text_problem("deployment_id"))
        check.judge("work_pool_name", _text_problem("work_pool_name"))
        check.judge("entrypoint", _text_problem("entrypoint"))
        check.optional_strings("version")
        check.judge("timeout_seconds", _timeout_problem)
        check.judge("tags", _tags_problem)
        for key in ("parameters", "job_variables"):
            if check.known(key) and not isinstance(check.inputs.get(key), Mapping):
                check.fail(key, f"{key} must be an object (a dict), as the deployment has it.")

    def describe(self, props: Mapping[str, Any]) -> str:
        return f"Smoke run of deployment {props.get('deployment_id')}"

    def object_path(self, id_: str, props: Mapping[str, Any]) -> str | None:
        return flow_run_path(id_)

    def post(self, client: PrefectClient, desired: Mapping[str, Any]) -> dict[str, Any]:
        """Trigger one run and wait for its final state; raise unless it completed."""
        deployment_id = desired["deployment_id"]
        body = {
            # The run takes the deployment's parameters and job variables as the server has them; the tags add
            # to the deployment's (prefect/server/api/deployments.py `create_flow_run_from_deployment`).
            "tags": list(desired["tags"]),
            # Unique per create: a retry after a lost answer gets the same run, not a second one
            # (prefect/server/models/flow_runs.py `create_flow_run`, unique on flow and idempotency key).
            "idempotency_key": f"flow-run-check-{uuid.uuid4()}",
        }
        run: dict[str, Any] = client.post(
            f"/deployments/{quote(deployment_id, safe='')}/create_flow_run", body, idempotent=True
        )
        link = flow_run_ui_url(client.base_url, str(run["id"]))
        deadline = time.monotonic() + float(desired["timeout_seconds"])
        try:
            while run["state_type"] not in FINAL_STATE_TYPES and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
                run = client.get(flow_run_path(str(run["id"])))
        except PrefectApiError as exc:
            cancelled = _cancel(client, run)
            raise FlowRunCheckError(
                f"{_name(run)} could not be followed to its end: {exc} {cancelled} Flow run: {link}"
            ) from None
        if run["state_type"] not in FINAL_STATE_TYPES:
            raise FlowRunCheckError(
                f"{_name(run)} did not finish within {desired['timeout_seconds']} s: it was still "
                f"{_state_name(run)}{_waiting_hint(run)}. {_cancel(client, run)} Flow run: {link}"
            )
        if run["state_type"] != "COMPLETED":
            message = (run.get("state") or {}).get("message") or "no state message"
            raise FlowRunCheckError(
                f"{_name(run)} ended {_state_name(run)}: {message} Flow run: {link} The deployment stays as "
                "applied; fix the cause and run `pulumi up` again, which runs the check again."
            )
        return run

    def state(
        self, client: PrefectClient, obj: Mapping[str, Any], previous: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The inputs (the server does not echo them), and the run as the server has it."""
        run_id = str(obj["id"])
        artifacts = client.post(
            "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}}, idempotent=True
        )
        return {
            **{key: previous.get(key) for key in INPUT_KEYS},
            "flow_run_id": run_id,
            "flow_run_name": obj.get("name"),
            "ui_url": flow_run_ui_url(client.base_url, run_id),
            "state_type": obj.get("state_type"),
            "state_name": _state_name(obj),
            "duration_seconds": obj.get("total_run_time"),
            "artifact_keys": sorted({a["key"] for a in artifacts if a.get("key")}),
        }


def _cancel(client: PrefectClient, run: Mapping[str, Any]) -> str:
    """Cancel a run that is not final, as the UI and `prefect flow-run cancel` do (prefect/cli/flow_run.py
    `cancel`): propose CANCELLING. The server makes a run that no worker has started CANCELLED at once
    (prefect/server/orchestration/core_policy.py `BypassCancellingFlowRunsWithNoInfra`); a started one stays
    CANCELLING until the run's process (or, while PENDING, its worker) has stopped it. Says what happened, for the
    error message."""
    if run.get("state_type") in FINAL_STATE_TYPES:
        return ""
    try:
        answer = client.post(
            f"{flow_run_path(str(run['id']))}/set_state",
            {"state": {"type": "CANCELLING", "message": "Cancelled by its FlowRunCheck (pulumi up)."}},
            idempotent=True,
        )
    except PrefectApiError as exc:
        return f"Cancelling it failed too ({exc}): cancel it in the UI."
    state = answer.get("state") or {}
    if state.get("type") == "CANCELLED":
        return "It was cancelled."
    if state.get("type") == "CANCELLING":
        # Running: the run's own process stops on Cancelling; Pending: it can no longer start (the server refuses
        # it Running), and our workers (PREFECT_WORKER_ENABLE_CANCELLATION) end its infrastructure.
        return "It is being cancelled (Cancelling): it cannot start any more, and a started run stops itself."
    reason = (answer.get("details") or {}).get("reason")
    return f"The server did not cancel it ({answer.get('status')}: {reason}): cancel it in the UI."


def _name(run: Mapping[str, Any]) -> str:
    return f"Smoke run {run.get('name')!r} of deployment {run.get('deployment_id')}"


def _state_name(run: Mapping[str, Any]) -> str:
    return str(run.get("state_name") or (run.get("state") or {}).get("name") or run.get("state_type"))


def _waiting_hint(run: Mapping[str, Any]) -> str:
    if run.get("state_type") == "SCHEDULED":
        return " (no worker picked it up: is the work pool paused, or are its workers down?)"
    if run.get("state_type") == "PENDING":
        return " (a worker took it, but the flow did not start)"
    return ""


def _text_problem(key: str) -> Callable[[Any], str | None]:
    def rule(value: Any) -> str | None:
        if isinstance(value, str) and value.strip():
            return None
        return f"{key} is required: the deployment's {key} output."

    return rule


def _timeout_problem(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return None
    return f"timeout_seconds must be a number of seconds > 0, not {value!r}."


def _tags_problem(tags: Any) -> str | None:
    if isinstance(tags, list) and all(isinstance(t, str) and t for t in tags):
        return None
    return "tags must be a list of non-empty strings."


class FlowRunCheck(Resource, module="prefect", name="FlowRunCheck"):
    """One real run of `deployment`, before `pulumi up` returns; replaced (run again) exactly when what a run
    of the deployment executes changes. Give it `depends_on` the workers that run it."""

    flow_run_id: pulumi.Output[str]
    flow_run_name: pulumi.Output[str]
    ui_url: pulumi.Output[str]
    state_type: pulumi.Output[str]
    state_name: pulumi.Output[str]
    duration_seconds: pulumi.Output[float]
    artifact_keys: pulumi.Output[list[str]]
    timeout_seconds: pulumi.Output[float]
    tags: pulumi.Output[list[str]]

    def __init__(
        self,
        resource_name: str,
        *,
        deployment: Deployment,
        timeout_seconds: pulumi.Input[float],
        tags: Sequence[str] = DEFAULT_TAGS,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            # The deployment's outputs: what the server has after this `up`'s create or update.
            **{key: getattr(deployment, key) for key in RUN_KEYS if key != "deployment_id"},
            # The Pulumi id, which is the Prefect id (`id_of`), not the output: in a preview of an in-place update
            # the engine knows the id but not the outputs that are not inputs (provider_plugin.go `Update` returns
            # the new inputs as the state of a provider that does not preview), and an unknown id would show this
            # check as a replacement that `up` never makes.
            "deployment_id": deployment.id,
            "timeout_seconds": timeout_seconds,
            "tags": list(tags),
            **dict.fromkeys(OUTPUT_ONLY_KEYS),
        }
        super().__init__(FlowRunCheckProvider(), resource_name, props, opts)
