"""Default base job templates, from the server the pool is created on.

A pool created over REST without a template stores `{}`, and then job variables go unvalidated (and a worker
renders only what its template names), so a `WorkPool` that declares no `base_job_template` is created with
the default the server offers for its type: the one its UI's "create work pool" form starts from.

- Self-hosted: `GET /collections/views/aggregate-worker-metadata`. prefect/server/api/collections.py serves
  the prefect-collection-registry's latest copy from GitHub (cached 10 minutes), and when that cannot be
  fetched, the copy bundled with the server, which describes the workers as they were when that server
  version was released.
- Prefect Cloud: `GET /collections/work_pool_types` under the workspace (prefect/client/cloud.py
  `CloudClient.read_worker_metadata`).

Both answer `{collection: {worker: {"type": …, "default_base_job_configuration": …}}}`, which
prefect/workers/utilities.py `get_default_base_job_template_for_infrastructure_type` reads the same way.
A template from the server follows the server's version; a worker of another version may render variables
that template does not have (the bundled docker template of Prefect 3.9 lacks `container_create_kwargs`),
so a program that runs its own worker should declare that worker's template (see infra/prefect_snapshots.py).
"""

from __future__ import annotations

import copy
from typing import Any

from .client import PrefectApiError, PrefectClient

SELF_HOSTED_METADATA_PATH = "/collections/views/aggregate-worker-metadata"
CLOUD_METADATA_PATH = "/collections/work_pool_types"


def default_base_job_template(client: PrefectClient, pool_type: str) -> dict[str, Any]:
    """The server's default template for `pool_type`; a `PrefectApiError` that says what to do when the
    server cannot give one."""
    path = CLOUD_METADATA_PATH if client.settings.is_cloud else SELF_HOSTED_METADATA_PATH
    fix = (
        f"set base_job_template on this WorkPool (`prefect work-pool get-default-base-job-template --type "
        f"{pool_type}` prints the default of the installed worker)"
    )
    try:
        metadata = client.get(path)
    except PrefectApiError as exc:
        if exc.status_code in (401, 403):
            raise  # the credentials are the problem, and the error says so
        raise PrefectApiError(
            f"No default base job template for work pool type {pool_type!r}: {exc} To go on without the "
            f"server's default, {fix}.",
            method=exc.method,
            path=exc.path,
            status_code=exc.status_code,
            detail=exc.detail,
            attempts=exc.attempts,
        ) from None
    workers = [
        w for c in (metadata or {}).values() if isinstance(c, dict) for w in c.values() if isinstance(w, dict)
    ]
    for worker in workers:
        template = worker.get("default_base_job_configuration")
        if worker.get("type") == pool_type and template:
            return copy.deepcopy(dict(template))
    offered = sorted({str(w.get("type")) for w in workers if w.get("type")})
    raise PrefectApiError(
        f"The Prefect server at {client.base_url} offers no default base job template for work pool type "
        f"{pool_type!r} (it offers: {', '.join(offered) or 'none'}); {fix}.",
        method="GET",
        path=path,
        status_code=200,
    )
