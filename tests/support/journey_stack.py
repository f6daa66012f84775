"""What the end-to-end journeys share: a user's working copy, a stack's config, the stack's state between `up`s,
and the one check that a triggered run really did the product's job.

The journeys (test_end_to_end, test_reliability, test_secrets, test_worker_health, test_worker_shutdown,
test_bad_input, test_alerts) take these from here, so no test module imports from another.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import docker

from tests.support.fake_bored_api import FakeBoredApi
from tests.support.fault_proxy import FaultProxy
from tests.support.local_engine import DYNAMIC_PREFIX, LocalEngine, StackRecord
from tests.support.prefect_server import PrefectServer
from tests.support.program_harness import REPO_ROOT
from tests.support.stack_checks import PrefectApi, stack_containers

DEPLOYMENT = f"{DYNAMIC_PREFIX}prefect:Deployment"
SMOKE_RUN_TAG = "smoke-run"
TIMEZONE_KEY = "suggest-activity:timezone"
# Zones whose UTC offsets are spread around the clock (-10 .. +14): whatever the hour, one of them is within 2.5
# hours of 21:00 local (the widest gap between them is 5 hours), i.e. at least 9.5 hours from the product's 09:00.
CANDIDATE_ZONES = (
    "UTC",
    "Europe/Athens",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Pacific/Kiritimati",
    "Pacific/Honolulu",
    "America/Los_Angeles",
    "America/New_York",
)
DAILY_RUN = (9, 0)


def copy_project(destination: Path) -> Path:
    """A working copy of the repository as a user's clone holds it (journeys edit it, and it is isolated from
    concurrent edits of the working tree): everything tracked, without the virtualenv, git metadata, tool caches,
    Pulumi state and the dev server's data, which a fresh clone does not have either."""
    ignore = shutil.ignore_patterns(".venv", ".git", ".*cache", "__pycache__", ".pulumi", ".dev-server")
    shutil.copytree(REPO_ROOT, destination, ignore=ignore)
    return destination


def minutes_from_daily_run(timezone: str, now: datetime) -> int:
    """How far `now`, read in `timezone`, is from the daily 09:00 there, either way round the clock."""
    local = now.astimezone(ZoneInfo(timezone))
    apart = abs(local.hour * 60 + local.minute - (DAILY_RUN[0] * 60 + DAILY_RUN[1]))
    return min(apart, 24 * 60 - apart)


def quiet_timezone(now: datetime | None = None) -> str:
    """The zone (of CANDIDATE_ZONES) in which the daily 09:00 is furthest from `now`: a stack declaring its schedule
    there has no scheduled run that a worker polling every few seconds could pick up while a test counts the runs
    and the Bored API calls it caused (Prefect's worker only takes runs due within its prefetch window, seconds)."""
    moment = now or datetime.now(UTC)
    return max(CANDIDATE_ZONES, key=lambda zone: minutes_from_daily_run(zone, moment))


def stack_config(
    server: PrefectServer, proxy: FaultProxy, bored_api: FakeBoredApi, pool_name: str
) -> dict[str, str]:
    """A process-pool stack against `server` (its providers through `proxy`, its worker directly), the flow pointed
    at the fake Bored API, the daily schedule in a zone where 09:00 is hours away."""
    return {
        "prefect:apiUrl": proxy.api_url,
        "prefect:workerApiUrl": f"http://host.docker.internal:{server.port}/api",
        "image:push": "false",
        "suggest-activity:poolName": pool_name,
        TIMEZONE_KEY: quiet_timezone(),
        "suggest-activity:workerPollSeconds": "2",
        "suggest-activity:flowParameters": json.dumps(
            {"api_url": bored_api.url_for_host("host.docker.internal")}
        ),
    }


@dataclass
class StackState:
    engine: LocalEngine
    api: PrefectApi
    project_dir: Path
    record: StackRecord = field(default_factory=StackRecord)

    @property
    def timezone(self) -> str:
        """The zone the stack's daily schedule is declared in."""
        return self.engine.config.get(TIMEZONE_KEY, "UTC")

    def one(self, typ: str) -> dict:
        (resource,) = self.record.of_type(typ)
        return resource.outputs

    def up(self) -> StackRecord:
        """`pulumi up` from the current state; a failed one still records what exists (its `.record`)."""
        try:
            self.record = self.engine.up(self.record)
        except Exception as error:
            self.record = error.record  # type: ignore[attr-defined]
            raise
        return self.record

    def smoke_runs(self) -> list[dict]:
        """The deployment's smoke runs, oldest first (the scheduled ones carry `auto-scheduled` instead)."""
        body = {
            "flow_runs": {
                "deployment_id": {"any_": [self.one(DEPLOYMENT)["deployment_id"]]},
                "tags": {"all_": [SMOKE_RUN_TAG]},
            },
            "sort": "EXPECTED_START_TIME_ASC",
        }
        runs: list[dict] = self.api.post("/flow_runs/filter", body)
        return runs

    def new_smoke_run(self, known: list[dict]) -> dict:
        """The one smoke run that is not in `known` (there must be exactly one)."""
        known_ids = {run["id"] for run in known}
        new = [run for run in self.smoke_runs() if run["id"] not in known_ids]
        assert len(new) == 1, [(run["name"], run["state_type"]) for run in new]
        return new[0]


def run_and_check(state: StackState, bored_api: FakeBoredApi, docker_client: docker.DockerClient) -> str:
    """Trigger a run of the deployment, wait for it, and check the artifact holds what the fake API served."""
    deployment_id = state.one(DEPLOYMENT)["deployment_id"]
    served_before = len(bored_api.served())
    run_id = state.api.trigger(deployment_id)
    run = state.api.wait_for_run(run_id)
    assert run["state_type"] == "COMPLETED", run["state"]["message"]

    served = bored_api.served()
    assert len(served) == served_before + 1  # the container really called the fake API, once
    (artifact,) = state.api.artifacts_of(run_id)
    assert artifact["key"] == "activity-suggestion"
    assert artifact["data"].splitlines()[0] == f"# {served[-1]['activity']}"

    worker_logs = "".join(
        c.logs().decode(errors="replace") for c in stack_containers(docker_client, state.engine.stack)
    )
    assert run_id in worker_logs
    return run_id
