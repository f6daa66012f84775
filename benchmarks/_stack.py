"""The product as a user gets it after `pulumi up`, for the worker benchmarks: the REAL program applied for real.

Like tests/test_end_to_end.py: a clean copy of the checkout, the real `infra.program.main()` run by the local
engine (tests/support/local_engine.py), which builds the image, creates the work pool and the deployment
through the providers' gRPC host and starts the worker container with exactly the inputs the program declares
(command, env incl. PREFECT_WORKER_QUERY_SECONDS, memory limit, healthcheck). Only the stack config below is set;
everything else (poll interval, memory limit, prefetch) is the program's or Prefect's default, which is what is
measured. A local `prefect server` and a fake Bored API (0.0.0.0, reached as host.docker.internal) stand in for
the user's server and the public API. Everything is named `bench-<tag>…` and destroyed afterwards.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks._common import copy_project, prefect_server

STACK = "bench"
IMAGE_NAME = "bench-suggest-activity"
DEPLOYMENT = "pulumi-python:dynamic/prefect:Deployment"
IMAGE = "docker:index/image:Image"
WORKER_SETTINGS_PROBE = (
    "from prefect.settings import get_current_settings as g; w = g().worker; "
    "import json; print(json.dumps({'query_seconds': w.query_seconds, 'prefetch_seconds': w.prefetch_seconds, "
    "'heartbeat_seconds': w.heartbeat_seconds}))"
)


@dataclass
class BenchStack:
    server: Any
    bored: Any
    api: Any  # tests.support.stack_checks.PrefectApi, straight to the server
    docker: Any
    container: Any
    pool: str
    deployment_id: str
    config: dict[str, str]
    up_seconds: float
    record: Any = None  # the local engine's record of the `up` (tests.support.local_engine.StackRecord)
    extra: dict[str, Any] = field(default_factory=dict)

    def worker_settings(self) -> dict[str, Any]:
        """What the worker process in the container actually uses (env from the program + Prefect defaults)."""
        result = self.container.exec_run(["python", "-c", WORKER_SETTINGS_PROBE])
        settings: dict[str, Any] = json.loads(result.output.decode().strip().splitlines()[-1])
        env = dict(e.split("=", 1) for e in self.container.attrs["Config"]["Env"])
        settings["env_PREFECT_WORKER_QUERY_SECONDS"] = env.get("PREFECT_WORKER_QUERY_SECONDS")
        settings["env_PREFECT_WORKER_PREFETCH_SECONDS"] = env.get("PREFECT_WORKER_PREFETCH_SECONDS")
        settings["memory_limit_bytes"] = self.container.attrs["HostConfig"]["Memory"]
        settings["command"] = self.container.attrs["Config"]["Cmd"]
        return settings

    def schedule_run(self, at: datetime | None = None) -> str:
        """A flow run of the deployment, SCHEDULED for `at` (now when None), as the scheduler would make it."""
        body: dict[str, Any] = {}
        if at is not None:
            body = {
                "state": {
                    "type": "SCHEDULED",
                    "name": "Scheduled",
                    "state_details": {"scheduled_time": at.isoformat()},
                }
            }
        run = self.api.post(f"/deployments/{self.deployment_id}/create_flow_run", body)
        return str(run["id"])

    def run(self, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.api.get(f"/flow_runs/{run_id}").raise_for_status().json()
        return run

    def states(self, run_id: str) -> list[dict[str, Any]]:
        states: list[dict[str, Any]] = (
            self.api.get(f"/flow_run_states/?flow_run_id={run_id}").raise_for_status().json()
        )
        return sorted(states, key=lambda s: s["timestamp"])


@contextlib.contextmanager
def applied_stack(tag: str, extra_config: dict[str, str] | None = None) -> Iterator[BenchStack]:
    from tests.support.docker_env import docker_client, ensure_base_image
    from tests.support.fake_bored_api import FakeBoredApi
    from tests.support.local_engine import LocalEngine
    from tests.support.stack_checks import PrefectApi

    client = docker_client(timeout=600)
    ensure_base_image(client)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{tag}-"))
    project = copy_project(workdir / "suggest-activity")
    pool = f"bench-{tag}"
    with prefect_server(tag) as server, FakeBoredApi(host="0.0.0.0") as bored:
        config = {
            "prefect:apiUrl": server.api_url,
            "prefect:workerApiUrl": f"http://host.docker.internal:{server.port}/api",
            "image:name": IMAGE_NAME,
            "image:push": "false",
            "suggest-activity:poolName": pool,
            "suggest-activity:flowParameters": json.dumps(
                {"api_url": bored.url_for_host("host.docker.internal")}
            ),
            **(extra_config or {}),
        }
        engine = LocalEngine(
            project_dir=project, stack=STACK, config=config, secret_keys=[], docker_client=client
        )
        record = None
        image_names: list[str] = []
        try:
            started = time.perf_counter()
            try:
                record = engine.up()
            except BaseException as error:
                record = getattr(error, "record", None)
                raise
            up_seconds = time.perf_counter() - started
            image_names = [r.outputs["imageName"] for r in record.of_type(IMAGE)]
            (deployment,) = record.of_type(DEPLOYMENT)
            api = PrefectApi(server.api_url)
            api.wait_for_pool_status(pool, "READY")
            container = client.containers.get(f"{pool}-worker-{STACK}-0")
            yield BenchStack(
                server=server,
                bored=bored,
                api=api,
                docker=client,
                container=container,
                pool=pool,
                deployment_id=deployment.outputs["deployment_id"],
                config=config,
                up_seconds=up_seconds,
                record=record,
            )
        finally:
            if record is not None:
                if not image_names:
                    image_names = [r.outputs.get("imageName", "") for r in record.of_type(IMAGE)]
                engine.destroy(record)
            import docker.errors

            for name in image_names:  # our tag only; the image stays if anything else uses it
                with contextlib.suppress(docker.errors.APIError):
                    client.images.remove(name)
            shutil.rmtree(workdir, ignore_errors=True)
