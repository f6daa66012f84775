"""The `suggest-activity` deployment: which code to run, with what parameters, on which schedule."""

from __future__ import annotations

from typing import Any

import pulumi

from infra.config import StackConfig, flow_parameter_schema
from infra.image import CODE_DIR, FlowImage
from infra.prefect import Deployment

FLOW_NAME = "suggest-activity"
# Relative to CODE_DIR, which the pull step makes the working directory of every run.
ENTRYPOINT = "flows/suggest_activity.py:suggest_activity"
PULL_STEPS = [{"prefect.deployments.steps.set_working_directory": {"directory": CODE_DIR}}]


def docker_job_variables(config: StackConfig, image: FlowImage) -> dict[str, Any]:
    """Per-run containers of a docker pool: the flow image, able to reach the API like the worker."""
    variables: dict[str, Any] = {
        "image": image.reference,
        # Unpushed (dev) images exist only in the local daemon, which is the one the worker talks to.
        "image_pull_policy": "IfNotPresent" if config.image.push else "Never",
        "auto_remove": True,
    }
    # Like the worker: the flow needs no Linux capability and may not gain any (e.g. through a setuid binary).
    create_kwargs: dict[str, Any] = {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"]}
    if config.prefect.worker_needs_host_gateway:
        create_kwargs["extra_hosts"] = {"host.docker.internal": "host-gateway"}
    variables["container_create_kwargs"] = create_kwargs
    return variables


def daily_deployment(config: StackConfig, image: FlowImage, pool_name: pulumi.Output[str]) -> Deployment:
    return Deployment(
        "deployment",
        flow_name=FLOW_NAME,
        name=config.deployment_name,
        work_pool_name=pool_name,
        entrypoint=ENTRYPOINT,
        pull_steps=PULL_STEPS,
        job_variables=docker_job_variables(config, image) if config.pool_type == "docker" else {},
        parameters=config.flow_parameters,
        parameter_openapi_schema=flow_parameter_schema(),
        enforce_parameter_schema=True,
        tags=["suggest-activity", config.stack],
        description="Suggests an activity from the Bored API every day and saves it as an artifact.",
        # The image tag is a content hash: the deployment version says exactly which code runs.
        version=image.tag,
        schedules=[
            {
                "slug": config.schedule.slug,
                "cron": config.schedule.cron,
                "timezone": config.schedule.timezone,
                "active": config.schedule.active,
                "day_or": True,
                "parameters": {},
            }
        ],
        # Runs need the image, and a new image must not be announced before it exists.
        opts=pulumi.ResourceOptions(depends_on=[image.resource]),
    )
