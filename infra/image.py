"""The flow's Docker image: built from the repository's Dockerfile, tagged by the content that goes into it."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker as docker
from docker.utils.build import exclude_paths

from infra.config import ImageSettings

# Where the image puts the flow code (the Dockerfile's WORKDIR); the deployment's pull step points here.
CODE_DIR = "/opt/prefect/suggest-activity"
DOCKERFILE = "Dockerfile"


def dockerignore_patterns(project_dir: Path) -> list[str]:
    """The context's .dockerignore, read as moby's `ignorefile.ReadAll` reads it (patternmatcher/ignorefile):
    a UTF-8 BOM dropped, a line starting with `#` is a comment, blanks skipped, the rest trimmed. Paths are
    cleaned by the matcher (`Pattern.normalize` in the Docker SDK, `filepath.Clean` in moby)."""
    path = project_dir / ".dockerignore"
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").removeprefix("\ufeff").splitlines()
    return [line.strip() for line in lines if not line.startswith("#") and line.strip()]


def build_context(project_dir: Path) -> dict[str, str]:
    """What the Docker build context sends, path by path: `{relative path: fingerprint}`.

    The paths are those the Docker SDK's `exclude_paths` keeps: the .dockerignore patterns, with the
    Dockerfile and .dockerignore themselves always sent, as pulumi-docker does (provider/image.go
    `dockerBuild`: `clibuild.TrimBuildFilesFromExcludes`, then `archive.TarWithOptions`). Directories are
    included: the tar carries them and `COPY flows/` creates even an empty one. A fingerprint is what the tar
    entry gives the image: the type, the permission bits (COPY keeps them; pulumi-docker's context hash in
    provider/provider.go `hashPath` covers the mode too), and the content's sha256 or a symlink's target.
    Owners and mtimes are left out: the build ignores the first (ChownOpts 0:0) and a checkout resets the second.
    """
    context: dict[str, str] = {}
    for relative in exclude_paths(
        str(project_dir), dockerignore_patterns(project_dir), dockerfile=DOCKERFILE
    ):
        path = project_dir / relative
        info = path.lstat()
        mode = f"{stat.S_IMODE(info.st_mode):04o}"
        key = Path(relative).as_posix()
        if stat.S_ISDIR(info.st_mode):
            context[key] = f"dir {mode}"
        elif stat.S_ISLNK(info.st_mode):
            context[key] = f"symlink {mode} -> {os.readlink(path)}"
        elif stat.S_ISREG(info.st_mode):
            context[key] = f"file {mode} sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}"
        # Sockets are not archived (the SDK's create_archive skips them); FIFOs and devices have no place here.
    return context


def content_tag(project_dir: Path, base_image: str) -> str:
    """A tag derived from exactly what the image is built from: the base image and the build context.

    A file the context leaves out (a .DS_Store, an editor's swap file, __pycache__) keeps the tag, so the
    image name and the deployment's version change only when the image can."""
    digest = hashlib.sha256(f"base={base_image}\n".encode())
    for path, fingerprint in sorted(build_context(project_dir).items()):
        digest.update(f"{path}\0{fingerprint}\0".encode())
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
