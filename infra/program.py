"""The Pulumi program: flow image → work pool → worker container(s) → deployment with its cron schedule."""

from __future__ import annotations

from pathlib import Path

import pulumi

from infra.alerts import alert_automation
from infra.config import load_stack_config
from infra.docker_endpoint import docker_provider
from infra.flow_deployment import daily_deployment
from infra.image import flow_image
from infra.prefect import WorkPool
from infra.prefect.client import ui_base_url
from infra.prefect_snapshots import worker_base_job_template
from infra.worker import worker_containers


def main(project_dir: Path | None = None) -> None:
    # Everything is validated before the first resource is declared: a bad stack creates nothing.
    config = load_stack_config()
    # One Docker daemon for the image and the workers.
    docker = docker_provider(config.docker_host)
    # Pulumi runs the program from the project directory, the Docker build context.
    image = flow_image(config.image, project_dir or Path.cwd(), docker)
    pool = WorkPool(
        "work-pool",
        name=config.pool_name,
        type=config.pool_type,
        description=f"Runs the suggest-activity flow ({config.stack} stack).",
        concurrency_limit=config.pool_concurrency_limit,
        # The template of the worker this program runs (the locked version), not the server's copy.
        base_job_template=worker_base_job_template(config.pool_type),
        # Nothing goes to Prefect before the image is built (and pushed): the engine would otherwise create the
        # pool in parallel with the build, and a failed build or push would leave it behind.
        opts=pulumi.ResourceOptions(depends_on=[image.resource]),
    )
    workers = worker_containers(config, image.digest, pool, docker)
    deployment = daily_deployment(config, image, pool.name)

    pulumi.export("prefect_ui_url", ui_base_url(config.prefect.api_url))
    pulumi.export("deployment_url", deployment.ui_url)
    pulumi.export("work_pool_name", pool.name)
    pulumi.export("work_pool_url", pool.ui_url)
    pulumi.export("image_ref", image.reference)
    pulumi.export("worker_container_names", [worker.name for worker in workers])
    pulumi.export("next_run_time", deployment.next_run_time)

    # Alerts (when alerts:webhookUrl or alerts:slackWebhookUrl is set): failed, crashed, timed-out or late runs.
    alerts = alert_automation(config, deployment)
    if alerts is not None:
        pulumi.export("alerts_url", alerts.ui_url)
