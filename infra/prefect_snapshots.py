"""Values Prefect computes, committed in prefect_snapshots.json so that `pulumi up` does not import Prefect
(2-4 s in each process that does) to get them:

- `flow_parameter_schema`: the flow's parameter schema, exactly what `flow.deploy()` sends
  (`prefect.utilities.callables.parameter_schema(flow).model_dump(exclude_unset=True)`);
- `base_job_templates`: the default base job template of each worker type the program runs (`process` from
  prefect, `docker` from prefect-docker), at the versions in uv.lock, which are the versions the worker
  image installs. A pool must carry its worker's template: the worker renders only the variables the
  template names, and the copy a Prefect server offers may be of another version (see
  infra/prefect/job_templates.py);
- `flow_timeout_seconds`: the flow's own timeout (`@flow(timeout_seconds=...)`), part of how long a smoke
  run may take (infra/config.py).

tests/test_provider_startup.py recomputes it with Prefect and fails when the file is stale: after a
change to the flow's signature, or an upgrade of prefect or prefect-docker. Regenerate it with
`uv run python -m infra.prefect_snapshots`.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

SNAPSHOT_FILE = Path(__file__).with_name("prefect_snapshots.json")


def flow_parameter_schema() -> dict[str, Any]:
    """The parameter schema `flow.deploy()` would send for the suggest-activity flow."""
    schema: dict[str, Any] = copy.deepcopy(_snapshot()["flow_parameter_schema"])
    return schema


def flow_timeout_seconds() -> int:
    """The suggest-activity flow's own timeout: a run still going by then ends TimedOut (Failed)."""
    return int(_snapshot()["flow_timeout_seconds"])


def worker_base_job_template(pool_type: str) -> dict[str, Any]:
    """The default base job template of the worker the program runs for `pool_type`."""
    template: dict[str, Any] = copy.deepcopy(_snapshot()["base_job_templates"][pool_type])
    return template


@functools.cache
def _snapshot() -> dict[str, Any]:
    snapshot: dict[str, Any] = json.loads(SNAPSHOT_FILE.read_text())
    return snapshot


def compute() -> dict[str, Any]:
    """What Prefect computes today, with the installed (locked) versions. Imports Prefect: slow."""
    from prefect.utilities.callables import parameter_schema
    from prefect.workers.base import BaseWorker

    from flows.suggest_activity import suggest_activity
    from infra.config import SUPPORTED_POOL_TYPES

    templates: dict[str, Any] = {}
    for pool_type in SUPPORTED_POOL_TYPES:
        worker = BaseWorker.get_worker_class_from_type(pool_type)
        if worker is None:
            raise RuntimeError(f"no installed Prefect worker for pool type {pool_type!r}")
        templates[pool_type] = worker.get_default_base_job_template()
    return {
        "flow_parameter_schema": parameter_schema(suggest_activity).model_dump(exclude_unset=True),
        "base_job_templates": templates,
        "flow_timeout_seconds": suggest_activity.timeout_seconds,
    }


def main() -> None:
    SNAPSHOT_FILE.write_text(json.dumps(compute(), indent=2) + "\n")
    print(f"wrote {SNAPSHOT_FILE}")


if __name__ == "__main__":
    main()
