"""The Prefect worker container(s) that poll the work pool and run the flow."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from infra.config import DOCKER_HOST_ALIAS, StackConfig
from infra.docker_endpoint import DOCKER_SOCKET, enforced_memory_mb, group_of_socket

HEALTH_PORT = 8080
# How long `pulumi destroy` / a replace lets a worker stop before SIGKILL: pulumi-docker's delete is ContainerStop
# with destroy_grace_seconds as its timeout, 0 when unset (terraform-provider-docker v4.5.0,
# resource_docker_container_funcs.go, resourceDockerContainerDelete). On SIGTERM the container's PID 1
# (worker/supervisor.py) has the runs in flight report Crashed, about 2 s each and in parallel, then stops the
# worker (about 2 s); 30 s leaves room for a slow or busy API. ContainerStop returns as soon as the container exits,
# so this bounds how long a replace can hold up `up`; with no run in flight it takes a few seconds.
STOP_GRACE_SECONDS = 30
WAIT_TIMEOUT_SECONDS = 180


def worker_name(config: StackConfig, index: int) -> str:
    return f"{config.pool_name}-worker-{config.stack}-{index}"


# Measured (benchmarks/worker_footprint.py): an idle worker uses ~90 MB and each concurrent process-pool run
# ~90 MB more. Capping concurrent runs by the memory limit keeps a burst of runs from OOM-killing the worker.
WORKER_BASE_MB = 128
RUN_MB = 100


def run_limit(memory_mb: int) -> int:
    return max(1, (memory_mb - WORKER_BASE_MB) // RUN_MB)


def healthcheck_test(pool_name: str) -> list[str]:
    """Healthy only while the worker reaches its Prefect API with its own credentials, its work pool exists, and
    its --with-healthcheck server says it polls (worker/healthcheck.py, shipped in the image, says why not)."""
    return ["CMD", "python", "-m", "worker.healthcheck", "--pool", pool_name]


def worker_command(config: StackConfig, name: str) -> list[str]:
    return [
        # PID 1: on `docker stop` it ends the runs in flight as Crashed before stopping the worker, which would
        # otherwise take them down unreported and leave them Running for ever (worker/supervisor.py).
        "python", "-m", "worker.supervisor",
        "prefect", "worker", "start",
        "--pool", config.pool_name,
        "--type", config.pool_type,
        "--name", name,
        "--limit", str(run_limit(config.worker.memory_mb)),
        "--with-healthcheck",
        "--install-policy", "never",  # the image already has what the pool type needs
        "--no-create-pool-if-not-found",  # the pool is Pulumi's; a typo must not create a second one
    ]  # fmt: skip


def worker_envs(config: StackConfig) -> list[pulumi.Input[str]]:
    envs: list[pulumi.Input[str]] = [
        f"PREFECT_API_URL={config.prefect.worker_api_url}",
        f"PREFECT_WORKER_QUERY_SECONDS={config.worker.poll_seconds}",
        f"PREFECT_WORKER_WEBSERVER_PORT={HEALTH_PORT}",
        # A run cancelled while PENDING (taken, not yet started: e.g. a smoke run at its timeout) would otherwise
        # stay Cancelling for ever: with this on the worker stops its infrastructure and marks it Cancelled
        # (prefect/workers/base.py `_setup_cancellation_observer`, `_cancel_run`; off by default,
        # prefect/settings/models/worker.py). A RUNNING run is stopped by its own process.
        "PREFECT_WORKER_ENABLE_CANCELLATION=true",
    ]
    # Credentials stay secret Outputs: Pulumi encrypts them in state and never prints them.
    if config.prefect.api_key is not None:
        envs.append(pulumi.Output.secret(config.prefect.api_key.apply(lambda key: f"PREFECT_API_KEY={key}")))
    if config.prefect.auth_string is not None:
        envs.append(
            pulumi.Output.secret(
                config.prefect.auth_string.apply(lambda auth: f"PREFECT_API_AUTH_STRING={auth}")
            )
        )
    return envs


def worker_containers(
    config: StackConfig, image_digest: pulumi.Output[str], pool: pulumi.Resource, provider: docker.Provider
) -> list[docker.Container]:
    """N identical workers; each is replaced, and waited for, whenever anything about it changes."""
    containers = []
    docker_pool = config.pool_type == "docker"
    # The socket's group as the daemon sees it, so that the non-root worker may use the socket.
    socket_group = group_of_socket(config.docker_host, image_digest) if docker_pool else None
    memory_mb = enforced_memory_mb(config.docker_host, config.worker.memory_mb, image_digest)
    for index in range(config.worker.replicas):
        name = worker_name(config, index)
        containers.append(
            docker.Container(
                f"worker-{index}",
                name=name,
                image=image_digest,
                command=worker_command(config, name),
                envs=worker_envs(config),
                restart="unless-stopped",
                must_run=True,
                destroy_grace_seconds=STOP_GRACE_SECONDS,  # docker stop -t 30, then remove (see above)
                wait=True,
                wait_timeout=WAIT_TIMEOUT_SECONDS,
                # Durations in the form pulumi-docker reads them back, Go's Duration.String() ("1m0s", not "60s":
                # resourceDockerContainerRead), or every `up` would show a change.
                healthcheck=docker.ContainerHealthcheckArgs(
                    tests=healthcheck_test(config.pool_name),
                    interval="10s",
                    timeout="10s",
                    start_period="1m0s",
                    retries=3,
                ),
                hosts=[docker.ContainerHostArgs(host=DOCKER_HOST_ALIAS, ip="host-gateway")]
                if config.prefect.worker_needs_host_gateway
                else None,
                memory=memory_mb,
                memory_swap=memory_mb,  # no swap: the memory limit is the limit
                labels=[
                    docker.ContainerLabelArgs(label="app", value="suggest-activity"),
                    docker.ContainerLabelArgs(label="pulumi.stack", value=config.stack),
                    docker.ContainerLabelArgs(label="prefect.work-pool", value=config.pool_name),
                ],
                # A docker pool starts one container per flow run through the host's daemon: that needs the
                # socket, which is root-equivalent on the host (see the README). A process pool gets nothing.
                volumes=[docker.ContainerVolumeArgs(host_path=DOCKER_SOCKET, container_path=DOCKER_SOCKET)]
                if docker_pool
                else None,
                group_adds=[socket_group] if socket_group is not None else None,
                # The image runs as a non-root user; it needs no Linux capability and may not gain any.
                capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
                security_opts=["no-new-privileges:true"],
                opts=pulumi.ResourceOptions(
                    provider=provider,
                    depends_on=[pool],  # started after the pool exists, stopped before it is deleted
                    delete_before_replace=True,  # the container name is fixed
                    # Any change makes a new container, created and waited for like the first: pulumi-docker
                    # applies only restart/memory/cpu changes in place, and shows others (the healthcheck) as
                    # an update that changes nothing (resourceDockerContainerUpdate). "*" also replaces a
                    # container whose create failed halfway (its `wait` timed out) instead of keeping it
                    # unchecked (pulumi step_generator.go applyReplaceOnChanges, init errors).
                    replace_on_changes=["*"],
                    # Docker rewrites the swap limit to -1 where swap accounting is off: set at create only.
                    ignore_changes=["memorySwap"],
                ),
            )
        )
    return containers
