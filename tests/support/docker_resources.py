"""pulumi-docker's resources, applied for real the way its provider applies them (see pulumi_docker_facts.py).

* `pulumi:providers:docker`: the Docker endpoint. An explicit provider resource names it with its `host` input;
  the default provider takes `docker:host` from the stack config, else `DOCKER_HOST`, else the local socket
  (pulumi-docker `provider/resources.go`: `"host": {Default: EnvVars DOCKER_HOST, ComputeDefault: the default
  socket}`). Every call below goes to the endpoint of the resource's own provider.
* `docker:index/image:Image` (native, `provider/provider.go` + `provider/image.go`): create and update both
  build (and push unless `skipPush`); the id is the image name; `repoDigest` is the local image id when not
  pushed, else the registry digest; Read returns the state unchanged; Delete does nothing.
* `docker:index/container:Container` (bridged from terraform-provider-docker v4.5.0): create, read, update
  and delete as `resource_docker_container_funcs.go` does them.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from tests.support import pulumi_docker_facts as facts
from tests.support.docker_env import build_image, push_image

DEFAULT_HOST = "unix:///var/run/docker.sock"
UNHEALTHY = "container failed to be in healthy state"  # errContainerFailedToBeInHealthyState


def default_provider_host(config: Mapping[str, str]) -> str:
    """The endpoint of pulumi-docker's default provider: `docker:host`, else DOCKER_HOST, else the socket."""
    return config.get("docker:host") or os.environ.get("DOCKER_HOST") or DEFAULT_HOST


class PartialCreateError(RuntimeError):
    """A create that failed after the object came into being: the bridge returns the partial state with an
    init error (`pkg/tfbridge/provider.go` `Provider.Create` → `initializationError`) and the engine keeps
    the resource in its state with those init errors (`pkg/resource/deploy/step.go` `CreateStep.Apply`,
    `StatusPartialFailure`)."""

    def __init__(self, resource_id: str, state: dict[str, Any], reason: str) -> None:
        super().__init__(reason)
        self.resource_id = resource_id
        self.state = state
        self.reason = reason


class UnappliedChangeError(RuntimeError):
    """A change that pulumi-docker would show as `~ update` and apply to nothing: a defect of the program."""


@dataclass
class DockerEndpoint:
    """The Docker calls of one provider (one `host`)."""

    host: str
    client: docker.DockerClient

    # --- Image -----------------------------------------------------------------------------------------

    def build(self, project_dir: Path, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        build = inputs["build"]
        reference = inputs["imageName"]
        image_id = build_image(
            self.client,
            context=project_dir / build.get("context", "."),
            tag=reference,
            dockerfile=build.get("dockerfile", "Dockerfile"),
            buildargs=build.get("args"),
        )
        repo_digest = image_id  # the local image id when nothing is pushed (image.go dockerBuild)
        if not inputs.get("skipPush"):
            registry = inputs.get("registry") or {}
            auth = {"username": registry.get("username"), "password": registry.get("password")}
            repo_digest = push_image(self.client, reference, auth)
        return reference, {**inputs, "repoDigest": repo_digest}

    # --- Container ----------------------------------------------------------------------------------------

    def create_container(self, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """resourceDockerContainerCreate: create, start, wait for health when `wait`, then read."""
        facts.refuse_unmodelled(inputs)
        state = facts.planned(inputs)
        container_args, host_args = facts.create_arguments(state)
        api = self.client.api
        created = api.create_container(**container_args, host_config=api.create_host_config(**host_args))
        container_id = str(created["Id"])
        try:
            api.start(container_id)
            if state.get("wait"):
                self._wait_healthy(container_id, int(state["waitTimeout"]))
        except Exception as error:
            # The create returns an error with the id already set: the planned state, no read.
            reason = (
                error.args[0]
                if isinstance(error, PartialCreateError)
                else f"Unable to start container: {error}"
            )
            raise PartialCreateError(container_id, {**state, "id": container_id}, str(reason)) from error
        return container_id, self.read_container(container_id, state) or {}

    def _wait_healthy(self, container_id: str, timeout: int) -> None:
        """The create's wait: inspect every second until healthy; it does not stop early when the container
        exits, and on timeout the create fails with errContainerFailedToBeInHealthyState."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.client.api.inspect_container(container_id)["State"]
            if state.get("Health") is None:
                raise RuntimeError(
                    "you have supplied a 'wait' argument, but the container does not have a healthcheck defined"
                )
            if state["Health"]["Status"] == "healthy":
                return
            time.sleep(1)
        logs = self.client.api.logs(container_id, tail=30).decode(errors="replace")
        raise PartialCreateError(container_id, {}, f"{UNHEALTHY} (after {timeout}s); last logs:\n{logs}")

    def read_container(self, container_id: str, prior: Mapping[str, Any]) -> dict[str, Any] | None:
        """resourceDockerContainerRead; None when the container no longer exists (the id is cleared)."""
        listed = self.client.api.containers(all=True, quiet=True)
        if not any(str(c["Id"]) == container_id for c in listed):
            return None
        state = facts.read_state(self.client.api.inspect_container(container_id), prior)
        return {**state, "id": container_id}

    def update_container(
        self,
        container_id: str,
        state: Mapping[str, Any],
        inputs: Mapping[str, Any],
        change: facts.ContainerDiff,
    ) -> dict[str, Any]:
        """resourceDockerContainerUpdate: ContainerStart when must_run goes false → true, one ContainerUpdate
        when an attribute of its list changed; no read afterwards (the state is the planned one)."""
        facts.refuse_unmodelled(inputs)
        if change.unapplied:
            raise UnappliedChangeError(
                f"container {state.get('name')}: {', '.join(change.unapplied)} changed; pulumi-docker would show "
                f"~ update and apply nothing to the running container (resourceDockerContainerUpdate handles only "
                f"{', '.join(facts.UPDATE_ATTRIBUTES)}): declare replace_on_changes for them"
            )
        news = {**state, **facts.planned(inputs)}
        if "mustRun" in change.updates and news.get("mustRun") and not state.get("mustRun", True):
            self.client.api.start(container_id)
        if set(change.updates) & set(facts.UPDATE_ATTRIBUTES):
            self.client.api.update_container(container_id, **facts.update_arguments(news))
        return news

    def delete_container(self, container_id: str, state: Mapping[str, Any]) -> None:
        """resourceDockerContainerDelete: stop with destroy_grace_seconds (0 when unset), remove, wait."""
        api = self.client.api
        with contextlib.suppress(docker.errors.NotFound):
            api.stop(container_id, timeout=int(state.get("destroyGraceSeconds") or 0))
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(container_id, v=bool(state.get("removeVolumes", True)), force=True)
        with contextlib.suppress(docker.errors.NotFound):
            api.wait(container_id, condition="not-running")


class DockerEndpoints:
    """One client per Docker endpoint, made on first use."""

    def __init__(self) -> None:
        self._endpoints: dict[str, DockerEndpoint] = {}

    def get(self, host: str) -> DockerEndpoint:
        if host not in self._endpoints:
            self._endpoints[host] = DockerEndpoint(host, docker.DockerClient(base_url=host, timeout=600))
        return self._endpoints[host]

    def close(self) -> None:
        for endpoint in self._endpoints.values():
            endpoint.client.close()
        self._endpoints.clear()
