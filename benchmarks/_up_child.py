"""The Python part of one `pulumi up` from nothing, timed as a subprocess by benchmarks/provider_cost.py:

    python benchmarks/_up_child.py '<stack config as JSON>'

1. the program, as the language host runs it (here under the SDK's mocks: tests/support/program_harness.py),
   which declares the work pool and the deployment;
2. the provider host the engine starts (`python -m pulumi.dynamic`), which checks and creates them.

It imports only `infra` and `tests.support` from the checkout on PYTHONPATH, nothing from `benchmarks`, so
that the same child measures this checkout and an older one (`provider_cost --baseline REV`). Prints one
JSON line: the time of each phase, and, when PYTHONPROFILEIMPORTTIME is set, the provider host's import log.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

WORK_POOL = "pulumi-python:dynamic/prefect:WorkPool"
DEPLOYMENT = "pulumi-python:dynamic/prefect:Deployment"


def declared(inputs: dict[str, Any]) -> dict[str, Any]:
    """A resource's inputs as the engine hands them to its provider (this stack config has no secrets)."""
    return {k: v for k, v in inputs.items() if k != "__provider"}


def main(config: dict[str, str]) -> None:
    phases: dict[str, float] = {}
    mark = time.perf_counter()
    from tests.support.program_harness import run_program

    run = run_program(config, stack="bench")
    pool_decl, dep_decl = declared(run.one(WORK_POOL).inputs), declared(run.one(DEPLOYMENT).inputs)
    phases["program (imports + run)"] = time.perf_counter() - mark

    mark = time.perf_counter()
    from infra.prefect import DeploymentProvider, WorkPoolProvider
    from tests.support.provider_host import ProviderHost, host_env

    with ProviderHost(env=host_env()) as host:
        host.configure(config)
        phases["provider host start + configure"] = time.perf_counter() - mark
        mark = time.perf_counter()
        pools = host.resource(WorkPoolProvider(), "prefect:WorkPool")
        pools.create(pools.checked(pool_decl), name="work-pool")
        phases["work pool check + create"] = time.perf_counter() - mark
        mark = time.perf_counter()
        deployments = host.resource(DeploymentProvider(), "prefect:Deployment")
        deployments.create(deployments.checked(dep_decl), name="deployment")
        phases["deployment check + create"] = time.perf_counter() - mark
        host_log = host.log_text() if os.environ.get("PYTHONPROFILEIMPORTTIME") else ""
    print(json.dumps({"phases": phases, "version": dep_decl["version"], "host_import_log": host_log}))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
