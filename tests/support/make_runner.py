"""Run the project's Makefile for real, in a copy of the files it uses, with a recording `pulumi` on PATH.

The copy is what a fresh clone has (no `.pulumi/`, no `.dev-server/`), with the test run's own `.venv` linked in so
`uv sync --locked` / `uv run --locked` find it complete and change nothing. Every Prefect server such a run starts
keeps its database in its own PREFECT_HOME, never the user's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import fake_pulumi
from tests.support.prefect_server import free_port
from tests.support.program_harness import REPO_ROOT

MAKE_TIMEOUT_SECONDS = 300
# What `make` needs from a clone (and the README, whose commands the tests run too).
PROJECT_FILES = ("Makefile", "pyproject.toml", "uv.lock", "Pulumi.yaml", "Pulumi.dev.yaml", "README.md")
# macOS has no setsid(1): this one fails loudly (and leaves a trace), so a target that still calls it cannot pass.
NO_SETSID = """#!/bin/sh
echo "$@" >>"$(dirname "$0")/setsid.calls"
echo "setsid: command not found (as on macOS)" >&2
exit 127
"""


def fresh_clone(destination: Path) -> Path:
    destination.mkdir(parents=True)
    for name in PROJECT_FILES:
        shutil.copy2(REPO_ROOT / name, destination / name)
    shutil.copytree(REPO_ROOT / "scripts", destination / "scripts")
    (destination / ".venv").symlink_to(REPO_ROOT / ".venv")
    return destination


@dataclass
class MakeRunner:
    """`make` in `project_dir` with the recording pulumi and a setsid that fails, first on PATH."""

    project_dir: Path
    tools_dir: Path
    prefect_home: Path
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.bin_dir = self.tools_dir / "bin"
        self.pulumi_state = self.tools_dir / "pulumi-state"
        fake_pulumi.install(self.bin_dir, self.pulumi_state)
        setsid = self.bin_dir / "setsid"
        setsid.write_text(NO_SETSID)
        setsid.chmod(0o755)

    @property
    def dev_server_dir(self) -> Path:
        return self.project_dir / ".dev-server"

    @property
    def auth_string(self) -> str:
        return (self.dev_server_dir / "auth").read_text().strip()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "PREFECT_", "MAKE"))}
        env.update(PATH=f"{self.bin_dir}{os.pathsep}{env['PATH']}", PREFECT_HOME=str(self.prefect_home))
        env.update(extra)
        return env

    def make(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        """`make PREFECT_PORT=<this runner's port> ARGS` (a later PREFECT_PORT in ARGS wins); with check, a
        failure shows make's whole output."""
        done = subprocess.run(
            ["make", "--no-print-directory", f"PREFECT_PORT={self.port}", *args],
            cwd=self.project_dir,
            env=self.env(**env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=MAKE_TIMEOUT_SECONDS,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"make {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        return done

    def setsid_calls(self) -> list[str]:
        calls = self.bin_dir / "setsid.calls"
        return calls.read_text().splitlines() if calls.exists() else []

    def pulumi_calls(self) -> list[dict[str, Any]]:
        return fake_pulumi.calls(self.pulumi_state)

    def pulumi_commands(self) -> list[str]:
        return [" ".join(call["argv"]) for call in self.pulumi_calls()]
