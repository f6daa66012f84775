"""How the program reaches a Docker daemon that is not the local socket (infra/docker_endpoint.py): as the Docker
CLI and pulumi-docker would, so a `docker:host` the README offers works for the program's own probes too."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import docker
import docker.errors
import pytest

from infra.docker_endpoint import daemon_info, docker_client, memory_limit_problem


def test_an_ssh_daemon_is_reached_through_the_users_ssh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An `ssh` first on PATH that records how it was called, then fails like an unreachable host.
    calls = tmp_path / "ssh-calls"
    fake_ssh = tmp_path / "bin" / "ssh"
    fake_ssh.parent.mkdir()
    fake_ssh.write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho "ssh: connect: refused" >&2\nexit 255\n')
    fake_ssh.chmod(fake_ssh.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{fake_ssh.parent}{os.pathsep}{os.environ['PATH']}")

    with pytest.raises(docker.errors.DockerException) as error:
        docker_client("ssh://deployer@build-host:2222").ping()
    assert "paramiko" not in str(error.value)
    assert "-l deployer -p 2222 -- build-host docker system dial-stdio" in calls.read_text()


def test_a_tls_daemon_is_reached_with_the_docker_clis_certificates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("not parsed until a connection is made\n")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))

    # Nothing listens on port 1 of this machine: the refused connection shows how it was attempted.
    with pytest.raises(
        docker.errors.DockerException, match=r"HTTPSConnectionPool\(host='127.0.0.1', port=1\)"
    ):
        docker_client("tcp://127.0.0.1:1")


@pytest.mark.docker
def test_this_daemon_enforces_memory_limits_as_the_program_reads_it(
    docker_client: docker.DockerClient,
) -> None:
    host = docker_client.api.base_url.replace("http+docker://localhost", "unix:///var/run/docker.sock")
    info = daemon_info(os.environ.get("DOCKER_HOST", host))
    assert info["MemoryLimit"] is True
    assert memory_limit_problem(info, "here") is None
    # What a daemon without the memory cgroup reports (moby `verifyPlatformContainerResources`).
    problem = memory_limit_problem({**info, "MemoryLimit": False}, "here")
    assert problem is not None and "cgroup_enable=memory" in problem
