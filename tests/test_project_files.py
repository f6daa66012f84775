"""Pulumi.yaml and the dev stack file: the layout `pulumi up` depends on (no Pulumi CLI needed to check it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.program_harness import REPO_ROOT

PROJECT_FILE = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())


def language_host_virtualenv(project_dir: Path, project: dict) -> Path:
    """The language host resolves the virtualenv against the project root (uv: `<root>/.venv`)."""
    options = project["runtime"].get("options", {})
    return (project_dir / options.get("virtualenv", ".venv")).resolve()


def provider_shim_virtualenv(project_dir: Path, project: dict) -> Path:
    """pulumi-resource-pulumi-python runs in the program's `main` directory and uses `$PWD/.venv`
    (or a relative `virtualenv` resolved against that same directory) — upstream issue 7907."""
    main_dir = project_dir / project.get("main", ".")
    options = project["runtime"].get("options", {})
    return (main_dir / options.get("virtualenv", ".venv")).resolve()


def test_language_host_and_provider_shim_use_the_same_virtualenv() -> None:
    assert PROJECT_FILE["name"] == "suggest-activity"
    assert PROJECT_FILE["runtime"] == {"name": "python", "options": {"toolchain": "uv"}}
    assert language_host_virtualenv(REPO_ROOT, PROJECT_FILE) == provider_shim_virtualenv(
        REPO_ROOT, PROJECT_FILE
    )
    # The check would catch the trap: a program in a subfolder splits the two.
    broken = {**PROJECT_FILE, "main": "infra/"}
    assert language_host_virtualenv(REPO_ROOT, broken) != provider_shim_virtualenv(REPO_ROOT, broken)


def test_program_lockfile_and_project_file_sit_together() -> None:
    for name in ("Pulumi.yaml", "__main__.py", "pyproject.toml", "uv.lock", "Dockerfile"):
        assert (REPO_ROOT / name).is_file(), name


def test_providers_unpickle_in_a_process_started_where_the_shim_starts_it() -> None:
    """The shim's python imports the providers by module from the main directory (they are pickled by reference)."""
    code = "import infra.prefect as p; print(p.WorkPoolProvider.__module__, p.DeploymentProvider.__module__)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["infra.prefect.work_pool", "infra.prefect.deployment"]


def test_dev_stack_targets_a_local_server_without_push_or_plain_secrets() -> None:
    stack = yaml.safe_load((REPO_ROOT / "Pulumi.dev.yaml").read_text())["config"]
    assert stack["prefect:apiUrl"] == "http://127.0.0.1:4200/api"
    assert stack["image:push"] == "false"
    assert stack["suggest-activity:cron"] == "0 9 * * *"
    assert stack["suggest-activity:timezone"]
    for key, value in stack.items():
        if any(word in key.lower() for word in ("key", "password", "auth", "token")):
            assert isinstance(value, dict) and "secure" in value, f"{key} must be set with --secret"
