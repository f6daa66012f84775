"""The smoke run (issue 13): a changed deployment is proven by one real run before `pulumi up` returns."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi

from infra.config import StackConfig
from infra.prefect import Deployment, FlowRunCheck


def smoke_run_check(
    config: StackConfig, deployment: Deployment, workers: Sequence[pulumi.Resource]
) -> FlowRunCheck | None:
    """One run of the deployment, run again exactly when what a run executes changes; None when turned off
    (`suggest-activity:smokeRun false`)."""
    if not config.smoke_run.enabled:
        return None
    return FlowRunCheck(
        "smoke-run",
        deployment=deployment,
        timeout_seconds=config.smoke_run.timeout_seconds,
        # The engine creates resources in parallel unless ordered: the run must find the (new) workers healthy
        # (their `wait`), not be taken by nobody, or by a worker that is about to be replaced.
        opts=pulumi.ResourceOptions(depends_on=[deployment, *workers]),
    )
