"""What a user would look at after `pulumi up`: the Prefect API and Docker, read directly (not via the providers)."""

from __future__ import annotations

import time
from typing import Any

import docker
import httpx

from tests.support.prefect_server import PatientTransport

RUN_TIMEOUT_SECONDS = 240
TERMINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


class PrefectApi:
    """A tiny direct client of the Prefect server, independent of the code under test."""

    def __init__(self, api_url: str, auth_string: str | None = None) -> None:
        auth = httpx.BasicAuth(*auth_string.split(":", 1)) if auth_string else None
        self.http = httpx.Client(base_url=api_url, timeout=30, transport=PatientTransport(), auth=auth)

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = self.http.post(path, json=body)
        response.raise_for_status()
        return response.json()

    def patch(self, path: str, body: dict[str, Any]) -> None:
        self.http.patch(path, json=body).raise_for_status()

    def delete(self, path: str) -> None:
        self.http.delete(path).raise_for_status()

    def scheduled_runs(self, deployment_id: str) -> list[dict[str, Any]]:
        body = {
            "flow_runs": {
                "deployment_id": {"any_": [deployment_id]},
                "state": {"type": {"any_": ["SCHEDULED"]}},
            },
            "sort": "EXPECTED_START_TIME_ASC",
            "limit": 10,
        }
        runs: list[dict[str, Any]] = self.post("/flow_runs/filter", body)
        return runs

    def wait_for_scheduled_runs(self, deployment_id: str, timeout: float = 60) -> list[dict[str, Any]]:
        """The scheduler creates auto-scheduled runs a few seconds after a deployment appears."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = [r for r in self.scheduled_runs(deployment_id) if "auto-scheduled" in r["tags"]]
            if runs:
                return runs
            time.sleep(1)
        raise AssertionError(f"no scheduled runs of deployment {deployment_id} after {timeout}s")

    def trigger(self, deployment_id: str) -> str:
        run: dict[str, Any] = self.post(f"/deployments/{deployment_id}/create_flow_run", {})
        return str(run["id"])

    def wait_for_run(self, run_id: str, timeout: float = RUN_TIMEOUT_SECONDS) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run: dict[str, Any] = self.get(f"/flow_runs/{run_id}").raise_for_status().json()
            if run["state_type"] in TERMINAL_STATES:
                return run
            time.sleep(1)
        raise AssertionError(f"flow run {run_id} not finished after {timeout}s (state {run['state_type']})")

    def artifacts_of(self, run_id: str) -> list[dict[str, Any]]:
        artifacts: list[dict[str, Any]] = self.post(
            "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}}
        )
        return artifacts

    def log_text(self, run_id: str) -> str:
        logs = self.post("/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200})
        return "\n".join(entry["message"] for entry in logs)

    def wait_for_log(self, run_id: str, text: str, timeout: float = 30) -> str:
        """Runs ship their logs in batches, a moment after their state changes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            logs = self.log_text(run_id)
            if text in logs:
                return logs
            time.sleep(1)
        raise AssertionError(f"{text!r} not in the logs of run {run_id} after {timeout}s:\n{logs}")

    def wait_for_pool_status(self, pool_name: str, status: str, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pool: dict[str, Any] = self.get(f"/work_pools/{pool_name}").raise_for_status().json()
            if pool["status"] == status:
                return pool
            time.sleep(1)
        raise AssertionError(f"work pool {pool_name} not {status} after {timeout}s")


def stack_containers(client: docker.DockerClient, stack: str) -> list[Any]:
    """Containers of a stack, found by the label the program puts on them (running or not)."""
    containers: list[Any] = client.containers.list(all=True, filters={"label": f"pulumi.stack={stack}"})
    return containers


# --- Helpers for the reliability tests (tests/test_reliability.py) ---------------------------------------


def trigger_with(api: PrefectApi, deployment_id: str, parameters: dict[str, Any]) -> str:
    """A run of the deployment with some parameters overridden (the server merges them with its own)."""
    run: dict[str, Any] = api.post(
        f"/deployments/{deployment_id}/create_flow_run", {"parameters": parameters}
    )
    return str(run["id"])


def deployments_named(api: PrefectApi, name: str) -> list[dict[str, Any]]:
    """Every deployment on the server with this name, whatever its flow (duplicates would show here)."""
    found: list[dict[str, Any]] = api.post("/deployments/filter", {"deployments": {"name": {"any_": [name]}}})
    return found


def deployments_in_pool(api: PrefectApi, pool_name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api.post(
        "/deployments/filter", {"work_pools": {"name": {"any_": [pool_name]}}}
    )
    return found


def schedules_of(api: PrefectApi, deployment_id: str) -> list[dict[str, Any]]:
    schedules: list[dict[str, Any]] = (
        api.get(f"/deployments/{deployment_id}/schedules").raise_for_status().json()
    )
    return schedules


def wait_for_health(container: Any, status: str = "healthy", timeout: float = 90) -> None:
    """Until Docker reports the container running with this health status (its healthcheck has run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        state = container.attrs["State"]
        if state.get("Running") and state.get("Health", {}).get("Status") == status:
            return
        time.sleep(1)
    raise AssertionError(
        f"container {container.name} not running and {status} after {timeout}s: "
        f"{container.attrs['State'].get('Status')}, health {container.attrs['State'].get('Health', {}).get('Status')}"
    )
