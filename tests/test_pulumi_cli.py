"""The same journey with the real Pulumi CLI, through the Automation API.

The Pulumi CLI and the pulumi-docker plugin cannot be installed on the machines this project is developed and
tested on (they download Go binaries at run time), so here this test is skipped and tests/test_end_to_end.py
applies the program with the local engine instead. On a machine with `pulumi` on PATH, Docker and internet
it runs unchanged: `uv run pytest tests/test_pulumi_cli.py`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.fake_bored_api import FakeBoredApi
from tests.support.prefect_server import PrefectServer
from tests.support.program_harness import REPO_ROOT
from tests.support.stack_checks import PrefectApi

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(
        shutil.which("pulumi") is None,
        reason="the Pulumi CLI is not on PATH (it cannot be installed on these machines); "
        "tests/test_end_to_end.py covers the same journey with the local engine",
    ),
]


def test_up_run_noop_destroy_with_the_pulumi_cli(
    tmp_path: Path, prefect_server: PrefectServer, bored_api: FakeBoredApi
) -> None:
    from pulumi import automation as auto

    project_dir = tmp_path / "suggest-activity"
    shutil.copytree(
        REPO_ROOT, project_dir, ignore=shutil.ignore_patterns(".venv", ".git", ".pulumi", "*cache*")
    )
    workspace = auto.LocalWorkspaceOptions(
        work_dir=str(project_dir),
        env_vars={"PULUMI_BACKEND_URL": f"file://{tmp_path}/state", "PULUMI_CONFIG_PASSPHRASE": ""},
    )
    stack = auto.create_or_select_stack(stack_name="cli", work_dir=str(project_dir), opts=workspace)
    config = {
        "prefect:apiUrl": prefect_server.api_url,
        "image:push": "false",
        "suggest-activity:poolName": "cli-process",
        "suggest-activity:workerPollSeconds": "2",
        "suggest-activity:flowParameters": json.dumps(
            {"api_url": bored_api.url_for_host("host.docker.internal")}
        ),
    }
    stack.set_all_config({key: auto.ConfigValue(value) for key, value in config.items()})
    api = PrefectApi(prefect_server.api_url)
    try:
        up = stack.up(on_output=print)
        assert up.summary.result == "succeeded"
        deployment = api.get("/deployments/name/suggest-activity/daily").raise_for_status().json()
        assert up.outputs["deployment_url"].value.endswith(deployment["id"])

        run = api.wait_for_run(api.trigger(deployment["id"]))
        assert run["state_type"] == "COMPLETED", run["state"]["message"]
        (artifact,) = api.artifacts_of(run["id"])
        assert artifact["data"].splitlines()[0] == f"# {bored_api.served()[-1]['activity']}"

        preview = stack.preview(on_output=print)
        assert set(preview.change_summary) == {"same"}, preview.change_summary
    finally:
        stack.destroy(on_output=print)
    assert api.get("/work_pools/cli-process").status_code == 404
    assert api.get("/deployments/name/suggest-activity/daily").status_code == 404
