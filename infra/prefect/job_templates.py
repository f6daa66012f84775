"""Default base job templates for work pool types.

A pool created over REST without a template stores `{}` and then job variables go unvalidated, so the
provider sends the type's default template. The installed worker class is the authority (it is what the
worker will render); for types whose worker is not installed, Prefect's bundled collection metadata
(the same offline copy the server falls back to) is used; for Cloud-only types there is no local copy
and the server's default applies.
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any


def default_base_job_template(pool_type: str) -> dict[str, Any] | None:
    """The type's default template, or None when no local source knows it."""
    template = _from_installed_worker(pool_type) or _from_bundled_metadata(pool_type)
    return copy.deepcopy(template) if template else None


@functools.cache
def _from_installed_worker(pool_type: str) -> dict[str, Any] | None:
    from prefect.workers.base import BaseWorker

    worker_class = BaseWorker.get_worker_class_from_type(pool_type)
    if worker_class is None:
        return None
    template: dict[str, Any] = worker_class.get_default_base_job_template()
    return template


@functools.cache
def _from_bundled_metadata(pool_type: str) -> dict[str, Any] | None:
    try:
        text = (
            resources.files("prefect.server.api.collections_data")
            .joinpath("views/aggregate-worker-metadata.json")
            .read_text()
        )
    except (FileNotFoundError, ModuleNotFoundError):
        return None
    for workers in json.loads(text).values():
        for worker in workers.values():
            if worker.get("type") == pool_type and worker.get("default_base_job_configuration"):
                template: dict[str, Any] = worker["default_base_job_configuration"]
                return template
    return None
