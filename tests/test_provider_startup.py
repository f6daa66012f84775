"""What `pulumi up` pays before its first request: neither the provider host nor the program imports Prefect
(2-4 s each) or, in the host, pulumi-docker. The values Prefect would compute for them are committed
(infra/prefect_snapshots.json), and held here against Prefect's own computation.

The import checks run the REAL processes with Python's import profiler on (PYTHONPROFILEIMPORTTIME=1, the
`-X importtime` switch as an environment variable), which writes one line to stderr for every module the
process imports; a module that is not in that list was never imported.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from infra import prefect_snapshots
from infra.prefect import DeploymentProvider, WorkPoolProvider
from tests.support.fault_proxy import FaultProxy
from tests.support.local_engine import DYNAMIC_PREFIX, reveal
from tests.support.program_harness import REPO_ROOT, run_program
from tests.support.provider_host import ProviderHost, host_env
from tests.support.quiet_schedules import daily_cron, hours_ahead

WORK_POOL = f"{DYNAMIC_PREFIX}prefect:WorkPool"
DEPLOYMENT = f"{DYNAMIC_PREFIX}prefect:Deployment"
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$")
NOT_IN_THE_HOST = ("prefect", "prefect_docker", "pulumi_docker")


def imported_modules(import_log: str) -> set[str]:
    return {m.group(1) for line in import_log.splitlines() if (m := IMPORT_LINE.match(line))}


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def declared(config: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The WorkPool and Deployment inputs the real program declares for this stack config."""
    run = run_program(config, stack="startup")
    pool, deployment = (reveal(dict(run.one(t).inputs)) for t in (WORK_POOL, DEPLOYMENT))
    for inputs in (pool, deployment):
        inputs.pop("__provider", None)
    return pool, deployment


@pytest.fixture(scope="module")
def profiled_host(proxy: FaultProxy) -> Iterator[ProviderHost]:
    with ProviderHost(env=host_env({"PYTHONPROFILEIMPORTTIME": "1"})) as host:
        host.configure({"prefect:apiUrl": proxy.api_url})
        yield host


def test_the_provider_host_imports_neither_prefect_nor_pulumi_docker(
    profiled_host: ProviderHost, proxy: FaultProxy, cleanup: Callable[[str], None]
) -> None:
    """Every operation of both resources, with the program's own inputs (parameter schema, cron, timezone,
    job template), and a pool without a template (the server's default). The cron fires hours from now, so
    the deployment's next run time stays the same between its create and its read."""
    name = f"startup-{uuid.uuid4().hex[:8]}"
    cron = daily_cron(hours_ahead("Europe/Athens", 11))
    config = {"prefect:apiUrl": proxy.api_url, "image:push": "false", "suggest-activity:poolName": name,
              "suggest-activity:deploymentName": name, "suggest-activity:timezone": "Europe/Athens",
              "suggest-activity:cron": cron}  # fmt: skip
    pool_decl, dep_decl = declared(config)
    for pool_name in (name, f"{name}-bare"):
        cleanup(f"/work_pools/{pool_name}")
    pools = profiled_host.resource(WorkPoolProvider(), "prefect:WorkPool")
    deployments = profiled_host.resource(DeploymentProvider(), "prefect:Deployment")

    pool_in = pools.checked(pool_decl)
    pool_id, pool_out = pools.create(pool_in)
    bare_id, bare_out = pools.create(pools.checked({"name": f"{name}-bare"}))
    dep_in = deployments.checked(dep_decl)
    dep_id, dep_out = deployments.create(dep_in)
    cleanup(f"/deployments/{dep_id}")
    assert deployments.read(dep_id, dep_out).outputs == dep_out
    changed = deployments.checked(
        {**dep_in, "description": "changed", "schedules": [{**dep_in["schedules"][0], "cron": "30 8 * * *"}]}
    )
    assert deployments.diff(dep_id, dep_out, changed).changes is True
    dep_out = deployments.update(dep_id, dep_out, changed)
    assert pools.read(pool_id, pool_out).outputs == pool_out
    deployments.delete(dep_id, dep_out)
    pools.delete(pool_id, pool_out)
    pools.delete(bare_id, bare_out)

    modules = imported_modules(profiled_host.log_text())
    # The log is this host's, and complete: the providers and what they use were imported in it.
    assert {"infra.prefect.deployment", "infra.prefect.work_pool", "infra.prefect.flow_run_check", "httpx",
            "jsonschema"} <= modules  # fmt: skip
    assert top_level(modules).isdisjoint(NOT_IN_THE_HOST), sorted(
        m for m in modules if m.split(".")[0] in NOT_IN_THE_HOST
    )[:10]


def test_the_program_imports_no_prefect() -> None:
    """The program as the language host runs it (here under the SDK's mocks), in a fresh interpreter."""
    code = (
        "from tests.support.program_harness import run_program\n"
        "run = run_program({'prefect:apiUrl': 'http://127.0.0.1:4200/api', 'image:push': 'false',"
        " 'suggest-activity:flowParameters': '{\"participants\": 2}'})\n"
        "print(len(run.registrations))\n"
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert int(done.stdout.strip().splitlines()[-1]) >= 4  # image, pool, worker(s), deployment
    modules = imported_modules(done.stderr)
    assert {"infra.program", "infra.config", "pulumi_docker"} <= modules
    assert "prefect" not in top_level(modules)


def test_the_committed_snapshots_are_what_prefect_computes() -> None:
    committed = json.loads(prefect_snapshots.SNAPSHOT_FILE.read_text())
    assert committed == prefect_snapshots.compute(), (
        "infra/prefect_snapshots.json is stale (the flow's signature, prefect or prefect-docker changed): "
        "run `uv run python -m infra.prefect_snapshots` and commit the result"
    )
