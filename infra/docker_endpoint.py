"""The Docker daemon the stack uses: one explicit pulumi-docker provider for the image and the workers, and the
daemon's own view of its socket for a docker pool's workers.

pulumi-docker's default provider reads `docker:host` or DOCKER_HOST, but its two halves resolve them apart:
the native `docker.Image` (pulumi-docker `provider/image.go` `configureDockerClient`) also falls back to
Docker Desktop's user sockets, while the bridged `docker.Container` (`provider/resources.go`, `"host"`
default: DOCKER_HOST, else the default socket) does not. With one explicit provider whose `host` is resolved
here, the image is built on, and the workers run on, the same daemon.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import docker
import docker.errors
import pulumi
import pulumi_docker
from docker.types import Mount

DEFAULT_SOCKET_PATH = "/var/run/docker.sock"
# Where Docker Desktop puts its socket when it does not own the default one (macOS "adminless" installs).
USER_SOCKET_PATHS = (".docker/run/docker.sock", ".docker/desktop/docker.sock")
# Where a docker pool's worker finds the daemon, inside the container, and the socket it mounts: the path on
# the DAEMON's host (the VM of Docker Desktop or Colima, the remote machine of an ssh:// host), which is where
# those daemons serve /var/run/docker.sock.
DOCKER_SOCKET = "/var/run/docker.sock"
_PROBE_PATH = "/probe/docker.sock"
_PROBE = (
    "import os, stat, sys; s = os.stat(sys.argv[1]); "
    "print(s.st_gid if stat.S_ISSOCK(s.st_mode) else 'not a socket')"
)


class DaemonSocketError(RuntimeError):
    """The daemon has no socket at DOCKER_SOCKET for a docker pool's worker."""


class MemoryLimitError(RuntimeError):
    """The daemon discards memory limits, so the workers' declared memory could never match what is read back."""


def docker_client(host: str) -> docker.DockerClient:
    """A client for `host` as the Docker CLI would make it: DOCKER_TLS_VERIFY / DOCKER_CERT_PATH for a TLS tcp://
    daemon (docker-py's `kwargs_from_env`, what `docker.from_env` uses), and ssh:// through the ssh binary, so
    the user's ssh config and agent apply as they do for pulumi-docker's own connection."""
    settings = docker.utils.kwargs_from_env(environment={**os.environ, "DOCKER_HOST": host})
    return docker.DockerClient(**settings, use_ssh_client=host.startswith("ssh://"))


def docker_host(configured: str | None) -> str:
    """`docker:host` from the stack config, else DOCKER_HOST, else the local socket, or, where there is none,
    Docker Desktop's user socket (the fallback pulumi-docker's Image alone makes, here for both)."""
    if configured or os.environ.get("DOCKER_HOST"):
        return str(configured or os.environ["DOCKER_HOST"])
    candidates = [Path(DEFAULT_SOCKET_PATH), *(Path.home() / path for path in USER_SOCKET_PATHS)]
    found = next((path for path in candidates if _is_socket(path)), candidates[0])
    return f"unix://{found}"


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.stat().st_mode)
    except OSError:
        return False


def docker_provider(host: str) -> pulumi_docker.Provider:
    return pulumi_docker.Provider("docker", host=host)


def socket_group(host: str, image: str) -> str:
    """The group that owns DOCKER_SOCKET as the daemon sees it, so that the non-root worker may use it.

    A stat on this machine would be wrong wherever the daemon runs elsewhere (a VM, rootless, ssh): a short
    container from `image` (which has Python and runs as the worker's user) stats the socket mounted from the
    daemon's own filesystem. A bind mount of a missing path fails instead of creating a directory there.
    """
    client = docker_client(host)
    try:
        output = client.containers.run(
            image,
            ["python", "-c", _PROBE, _PROBE_PATH],
            entrypoint=[],
            mounts=[Mount(_PROBE_PATH, DOCKER_SOCKET, type="bind", read_only=True)],
            network_disabled=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges:true"],
            remove=True,
        )
    except docker.errors.DockerException as error:
        raise DaemonSocketError(
            f"cannot read the group of {DOCKER_SOCKET} on the Docker daemon at {host}: {error}. A docker work "
            f"pool's worker mounts that socket; use a process pool, or a daemon that serves it"
        ) from error
    finally:
        client.close()
    group = output.decode().strip()
    if not group.isdigit():
        raise DaemonSocketError(f"{DOCKER_SOCKET} on the Docker daemon at {host} is {group}")
    return group


def group_of_socket(host: str, image_digest: pulumi.Output[str]) -> pulumi.Output[str]:
    """`socket_group` once the image exists (it runs where the image was built)."""
    return image_digest.apply(lambda digest: socket_group(host, digest))


def daemon_info(host: str) -> dict[str, object]:
    """`docker info` of the daemon at `host`."""
    client = docker_client(host)
    try:
        return dict(client.info())
    finally:
        client.close()


def memory_limit_problem(info: dict[str, object], host: str) -> str | None:
    """Why the workers' memory limit cannot hold on this daemon, from its `docker info`.

    Where the kernel has no memory cgroup, moby drops the limit with a warning (daemon/daemon_unix.go
    `verifyPlatformContainerResources`: "Limitation discarded") and the container reads back Memory 0;
    pulumi-docker stores that (resourceDockerContainerRead), so every `up` would see a change and, the workers
    being replaced on any change, replace them all."""
    if info.get("MemoryLimit", True):
        return None
    return (
        f"suggest-activity:workerMemoryMb cannot be enforced: the Docker daemon at {host} discards memory limits "
        "(`docker info` says its kernel has no memory limit support), so every `pulumi up` would replace the "
        "workers. Fix: enable the memory cgroup (kernel command line: cgroup_enable=memory cgroup_memory=1, "
        "e.g. in /boot/cmdline.txt on a Raspberry Pi) and reboot, or point docker:host at a daemon that has it."
    )


def enforced_memory_mb(host: str, memory_mb: int, image_digest: pulumi.Output[str]) -> pulumi.Output[int]:
    """`memory_mb`, once the daemon that built the image is known to enforce memory limits (else the up fails)."""

    def check(_digest: str) -> int:
        problem = memory_limit_problem(daemon_info(host), host)
        if problem:
            raise MemoryLimitError(problem)
        return memory_mb

    return image_digest.apply(check)
