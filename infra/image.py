"""The flow's Docker image: built from the repository's Dockerfile, tagged by the content that goes into it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker as docker

from infra.config import ImageSettings

# Where the image puts the flow code (the Dockerfile's WORKDIR); the deployment's pull step points here.
CODE_DIR = "/opt/prefect/suggest-activity"
# Everything the Dockerfile copies in. A change to any of these is a new image and a new tag.
IMAGE_INPUTS = ("Dockerfile", ".dockerignore", "pyproject.toml", "uv.lock")
FLOW_CODE_DIR = "flows"


def content_tag(project_dir: Path, base_image: str) -> str:
    """A tag derived from the image's inputs, so an unchanged project yields the same tag."""
    digest = hashlib.sha256(f"base={base_image}\n".encode())
    files = [project_dir / name for name in IMAGE_INPUTS]
    files += sorted(
        path
        for path in (project_dir / FLOW_CODE_DIR).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )
    for path in files:
        digest.update(path.relative_to(project_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return "sha-" + digest.hexdigest()[:16]


@dataclass(frozen=True)
class FlowImage:
    resource: docker.Image
    tag: str
    # Name:tag as users and the docker pool's per-run containers refer to it.
    reference: str
    # What containers are created from: the registry digest after a push, the local image id otherwise,
    # so a container is replaced exactly when the image changes.
    digest: pulumi.Output[str]


def flow_image(settings: ImageSettings, project_dir: Path, provider: docker.Provider) -> FlowImage:
    tag = content_tag(project_dir, settings.base_image)
    reference = f"{settings.repository}:{tag}"
    registry = None
    if settings.push and settings.registry_server:
        registry = docker.RegistryArgs(
            server=settings.registry_server, username=settings.username, password=settings.password
        )
    image = docker.Image(
        "flow-image",
        image_name=reference,
        # Relative to the project directory, where Pulumi runs the program: state stays portable across clones.
        build=docker.DockerBuildArgs(
            context=".", dockerfile="Dockerfile", args={"BASE_IMAGE": settings.base_image}
        ),
        registry=registry,
        skip_push=not settings.push,
        opts=pulumi.ResourceOptions(provider=provider),  # built on the daemon the workers run on
    )
    return FlowImage(resource=image, tag=tag, reference=reference, digest=image.repo_digest)
