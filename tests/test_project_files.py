"""Pulumi.yaml and the dev stack file: the layout `pulumi up` depends on (no Pulumi CLI needed to check it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import infra.config
from tests.support.local_engine import DYNAMIC_PREFIX, reveal
from tests.support.prefect_server import ReservedPort
from tests.support.program_harness import REPO_ROOT, dev_stack_config, run_program
from tests.support.provider_host import PROVIDER_KEY, ProviderHost, host_env

PROJECT_FILE = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())


def shim_virtualenv(project_dir: Path, project: dict[str, Any]) -> Path:
    """The virtualenv whose python the engine's dynamic-provider plugin runs, as pulumi/pulumi
    sdk/python/dist/pulumi-resource-pulumi-python picks it: PULUMI_RUNTIME_VIRTUALENV (the `virtualenv` option),
    else `.venv` for the uv toolchain, made absolute against $PWD, which is the program's `main` directory
    (the trap of upstream issue 7907: the language host resolves the same option against the project root)."""
    options = project["runtime"].get("options", {})
    virtualenv = options.get("virtualenv") or (".venv" if options.get("toolchain") == "uv" else None)
    assert virtualenv is not None, (
        "with neither `virtualenv` nor the uv toolchain the shim runs python3 on PATH"
    )
    return (project_dir / project.get("main", ".") / virtualenv).resolve()


def test_the_provider_plugin_runs_the_projects_virtualenv_where_the_program_is() -> None:
    assert PROJECT_FILE["name"] == "suggest-activity"
    assert PROJECT_FILE["runtime"] == {"name": "python", "options": {"toolchain": "uv"}}
    # The uv toolchain's language host runs the program with the project's own environment, the one
    # `uv sync` makes beside pyproject.toml; the plugin must find that same one from its working directory.
    assert shim_virtualenv(REPO_ROOT, PROJECT_FILE) == (REPO_ROOT / ".venv").resolve()
    for name in ("Pulumi.yaml", "__main__.py", "pyproject.toml", "uv.lock", "Dockerfile"):
        assert (REPO_ROOT / name).is_file(), name


@pytest.mark.parametrize("resource", ["prefect:WorkPool", "prefect:Deployment"])
def test_the_programs_providers_unpickle_in_a_host_started_where_the_plugin_starts_it(resource: str) -> None:
    """The program pickles each provider into `__provider` by reference (module and class); the plugin's
    python, started in the `main` directory, must import it from there and check the program's own inputs.
    A program moved into a subfolder, or a provider class the host cannot import, fails here."""
    run = run_program(dev_stack_config())
    declared = reveal(dict(run.one(DYNAMIC_PREFIX + resource).inputs))
    main_dir = REPO_ROOT / PROJECT_FILE.get("main", ".")
    python = shim_virtualenv(REPO_ROOT, PROJECT_FILE) / "bin" / "python"
    assert python.is_file(), f"the plugin would fail: {python} doesn't exist"
    # Check asks no server (the dead address proves it): it only needs the provider, unpickled.
    with ReservedPort() as dead, ProviderHost(main_dir, env=host_env(), python=str(python)) as host:
        host.configure({"prefect:apiUrl": f"http://127.0.0.1:{dead.port}/api"})
        urn = host.urn(resource, "from-the-program")
        checked = host.check(urn, {}, declared)  # raises on any check failure
    assert checked[PROVIDER_KEY] == declared[PROVIDER_KEY]
    assert checked["name"] == declared["name"]


def test_the_committed_dev_stack_targets_a_local_server_and_holds_no_credential(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pulumi.dev.yaml is committed and its passphrase is empty: `make up` adds the local server's login to
    the working copy as a secret, and no key the program reads as a secret may be in the committed file."""
    committed = yaml.safe_load((REPO_ROOT / "Pulumi.dev.yaml").read_text())["config"]
    assert committed["prefect:apiUrl"] == "http://127.0.0.1:4200/api"
    assert committed["image:push"] == "false"
    assert committed["suggest-activity:cron"] == "0 9 * * *"
    assert committed["suggest-activity:timezone"]

    secret_keys: list[str] = []
    read_secret = infra.config._Reader.secret

    def recording(reader: Any, key: str, *args: Any) -> Any:
        secret_keys.append(key)
        return read_secret(reader, key, *args)

    monkeypatch.setattr(infra.config._Reader, "secret", recording)
    run_program(dev_stack_config())
    assert {"prefect:apiKey", "prefect:authString", "image:password"} <= set(secret_keys)
    assert set(committed).isdisjoint(secret_keys)
