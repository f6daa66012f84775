"""Provider cost: HTTP requests and wall time per operation of the WorkPool and Deployment providers, and the
time to create the same pool + deployment + cron schedule with our providers vs the `prefect` CLI.

    uv run python -m benchmarks.provider_cost [--rounds 7]

Part 1 drives the providers through the gRPC host the Pulumi engine starts (`python -m pulumi.dynamic`, via
tests/support/provider_host.py), configured like the engine does, against a local `prefect server`, through a
recording proxy (tests/support/fault_proxy.py) that counts every request. An operation is what the engine
does for it: create = Check + Create, no-op = Check + Diff, read = Read (refresh), update = Check + Diff +
Update, delete = Delete. The inputs are the ones the real program declares (run under the SDK's mocks).

Part 2 times, as subprocesses and alternating A B A B …, the user's way and ours of creating a pool, a
deployment and its 09:00 cron schedule:
  A (ours): one interpreter runs the real program under mocks (standing in for the language host), which
            starts the provider host (a second interpreter, as under `pulumi up`) and creates the pool and the
            deployment through it. `pulumi up` adds the engine's own overhead, which cannot be measured here.
  B (CLI):  `prefect work-pool create NAME --type process`, then `prefect deploy --no-prompt` of a prefect.yaml
            declaring the same deployment (entrypoint, pull step, tags, version, cron, timezone, slug).
Results: benchmarks/results/provider_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._common import (
    fmt,
    isolate_prefect_home,
    md_table,
    median,
    met,
    prefect_server,
    ratio,
    record_run,
    request_shape,
    summary,
    targets_table,
)

NAME = "provider_cost"
WORK_POOL = "pulumi-python:dynamic/prefect:WorkPool"
DEPLOYMENT = "pulumi-python:dynamic/prefect:Deployment"
CHANGED_CRON = "30 8 * * *"


# ------------------------------------------------------------------------------------------------ inputs


def program_config(api_url: str, pool: str, deployment: str) -> dict[str, str]:
    return {
        "prefect:apiUrl": api_url,
        "image:push": "false",
        "suggest-activity:poolName": pool,
        "suggest-activity:deploymentName": deployment,
    }


def declared_inputs(config: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The WorkPool and Deployment inputs the real program declares for this config (SDK mocks, no effects)."""
    from tests.support.local_engine import reveal
    from tests.support.program_harness import run_program

    run = run_program(config, stack="bench")
    pool = reveal(dict(run.one(WORK_POOL).inputs))
    deployment = reveal(dict(run.one(DEPLOYMENT).inputs))
    pool.pop("__provider", None)
    deployment.pop("__provider", None)
    return pool, deployment


# ------------------------------------------------------------------------------------------------ part 1


def measure(proxy: Any, names: list[str], action: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """Run one operation; its wall time and every request the proxy saw while it ran."""
    proxy.clear_requests()
    started = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - started
    requests = proxy.requests
    writes = [r for r in requests if r.is_write]
    return result, {
        "seconds": seconds,
        # 5xx answers (e.g. 503 from a busy SQLite server) are retried by the client; counted apart.
        "server_errors": sum(1 for r in requests if r.status is None or r.status >= 500),
        "requests": [request_shape(r.method, r.path, names) for r in requests],
        "writes": [request_shape(r.method, r.path, names) for r in writes],
        "write_body_keys": [
            sorted(r.body)
            if isinstance(r.body, dict)
            else f"list[{len(r.body)}]"
            if isinstance(r.body, list)
            else None
            for r in writes
        ],
    }


def provider_round(host: Any, proxy: Any, pool_decl: dict[str, Any], dep_decl: dict[str, Any]) -> dict:
    """One full lifecycle of a pool and a deployment; returns {resource: {op: sample}}."""
    from infra.prefect import DeploymentProvider, WorkPoolProvider

    pools = host.resource(WorkPoolProvider(), "prefect:WorkPool")
    deps = host.resource(DeploymentProvider(), "prefect:Deployment")
    names = [pool_decl["name"], dep_decl["name"], dep_decl["flow_name"]]
    samples: dict[str, dict[str, Any]] = {"WorkPool": {}, "Deployment": {}}

    def create(bound: Any, decl: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        inputs = bound.checked(decl)
        id_, outputs = bound.create(inputs)
        return id_, inputs, outputs

    def noop(bound: Any, decl: dict[str, Any], id_: str, inputs: dict, outputs: dict) -> bool | None:
        news = bound.check(decl, inputs, allow_failures=False).inputs
        return bound.diff(id_, outputs, news).changes

    def update(bound: Any, decl: dict[str, Any], id_: str, inputs: dict, outputs: dict) -> tuple:
        news = bound.check(decl, inputs, allow_failures=False).inputs
        diff = bound.diff(id_, outputs, news)
        assert diff.changes and not diff.replaces, diff
        return news, bound.update(id_, outputs, news)

    (pool_id, pool_in, pool_out), samples["WorkPool"]["create"] = measure(
        proxy, names, lambda: create(pools, pool_decl)
    )
    (dep_id, dep_in, dep_out), samples["Deployment"]["create"] = measure(
        proxy, names, lambda: create(deps, dep_decl)
    )
    changes, samples["WorkPool"]["no-op diff"] = measure(
        proxy, names, lambda: noop(pools, pool_decl, pool_id, pool_in, pool_out)
    )
    assert changes is False, "a no-op pool diff reported changes"
    changes, samples["Deployment"]["no-op diff"] = measure(
        proxy, names, lambda: noop(deps, dep_decl, dep_id, dep_in, dep_out)
    )
    assert changes is False, "a no-op deployment diff reported changes"
    read, samples["WorkPool"]["read"] = measure(
        proxy, names, lambda: pools.read(pool_id, pool_out, inputs=pool_in)
    )
    assert not read.gone
    read, samples["Deployment"]["read"] = measure(
        proxy, names, lambda: deps.read(dep_id, dep_out, inputs=dep_in)
    )
    assert not read.gone

    pool_decl2 = {**pool_decl, "description": pool_decl["description"] + " (edited)"}
    (pool_in, pool_out), samples["WorkPool"]["update one field"] = measure(
        proxy, names, lambda: update(pools, pool_decl2, pool_id, pool_in, pool_out)
    )
    dep_decl2 = {**dep_decl, "description": dep_decl["description"] + " (edited)"}
    (dep_in, dep_out), samples["Deployment"]["update one field"] = measure(
        proxy, names, lambda: update(deps, dep_decl2, dep_id, dep_in, dep_out)
    )
    schedules = [{**s, "cron": CHANGED_CRON} for s in dep_decl2["schedules"]]
    dep_decl3 = {**dep_decl2, "schedules": schedules}
    (dep_in, dep_out), samples["Deployment"]["schedule change"] = measure(
        proxy, names, lambda: update(deps, dep_decl3, dep_id, dep_in, dep_out)
    )
    _, samples["Deployment"]["delete"] = measure(proxy, names, lambda: deps.delete(dep_id, dep_out))
    _, samples["WorkPool"]["delete"] = measure(proxy, names, lambda: pools.delete(pool_id, pool_out))
    return samples


def part1(server: Any, rounds: int) -> dict[str, Any]:
    from tests.support.fault_proxy import FaultProxy
    from tests.support.provider_host import ProviderHost, host_env

    with FaultProxy(server.api_url) as proxy, ProviderHost(env=host_env()) as host:
        host.configure({"prefect:apiUrl": proxy.api_url})
        base_pool, base_dep = declared_inputs(program_config(proxy.api_url, "bench-pc", "bench-pc"))
        per_round = []
        # One warm-up round, not reported: the host's first call imports prefect, the server warms its caches.
        for index in range(rounds + 1):
            name = f"bench-pc-{index}"
            pool_decl = {**base_pool, "name": name}
            dep_decl = {**base_dep, "name": name, "work_pool_name": name}
            result = provider_round(host, proxy, pool_decl, dep_decl)
            if index > 0:
                per_round.append(result)
    operations: dict[str, dict[str, Any]] = {}
    for resource in ("WorkPool", "Deployment"):
        operations[resource] = {}
        for op in per_round[0][resource]:
            samples = [r[resource][op] for r in per_round]
            clean = [s for s in samples if s["server_errors"] == 0] or samples
            counts = [len(s["requests"]) - s["server_errors"] for s in samples]
            operations[resource][op] = {
                "seconds": summary([s["seconds"] for s in samples]),
                "requests": summary(counts, 0),
                "server_errors_retried": sum(s["server_errors"] for s in samples),
                "request_list": clean[0]["requests"],
                "writes": clean[0]["writes"],
                "write_body_keys": clean[0]["write_body_keys"],
                "same_requests_every_round": all(s["requests"] == clean[0]["requests"] for s in clean),
            }
    return {"rounds": rounds, "operations": operations}


# ------------------------------------------------------------------------------------------------ part 2


PREFECT_YAML = """\
# The same deployment as the Pulumi program declares, the way a Prefect user writes it.
name: suggest-activity
prefect-version: {prefect_version}
build: null
push: null
pull:
  - prefect.deployments.steps.set_working_directory:
      directory: /opt/prefect/suggest-activity
deployments:
  - name: {deployment}
    entrypoint: flows/suggest_activity.py:suggest_activity
    description: Suggests an activity from the Bored API every day and saves it as an artifact.
    version: {version}
    tags: [suggest-activity, bench]
    parameters: {{}}
    enforce_parameter_schema: true
    work_pool:
      name: {pool}
      job_variables: {{}}
    schedules:
      - cron: "0 9 * * *"
        timezone: UTC
        slug: daily-0900
        active: true
"""


def ours_up_child(api_url: str, pool: str, deployment: str) -> None:
    """The subprocess of variant A: the program (as the language host runs it), then the provider host."""
    from infra.prefect import DeploymentProvider, WorkPoolProvider
    from tests.support.provider_host import ProviderHost, host_env

    phases: dict[str, float] = {}
    started = time.perf_counter()
    config = program_config(api_url, pool, deployment)
    pool_decl, dep_decl = declared_inputs(config)
    phases["program under mocks (imports + run)"] = time.perf_counter() - started
    mark = time.perf_counter()
    with ProviderHost(env=host_env()) as host:
        host.configure(config)
        phases["provider host start + configure"] = time.perf_counter() - mark
        mark = time.perf_counter()
        pools = host.resource(WorkPoolProvider(), "prefect:WorkPool")
        pools.create(pools.checked(pool_decl), name="work-pool")
        phases["work pool check + create"] = time.perf_counter() - mark
        mark = time.perf_counter()
        deps = host.resource(DeploymentProvider(), "prefect:Deployment")
        deps.create(deps.checked(dep_decl), name="deployment")
        phases["deployment check + create"] = time.perf_counter() - mark
        mark = time.perf_counter()
    phases["provider host stop"] = time.perf_counter() - mark
    print(json.dumps({"phases": phases, "version": dep_decl["version"]}))


def run_timed(command: list[str], *, cwd: Path | None = None, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout


def equivalent(api: Any, pool: str, flow: str, deployment: str) -> dict[str, Any]:
    """What was created, in the form both variants must agree on."""
    pool_body = api.get(f"/work_pools/{pool}").raise_for_status().json()
    dep = api.get(f"/deployments/name/{flow}/{deployment}").raise_for_status().json()
    return {
        "pool_type": pool_body["type"],
        "pool_template_keys": sorted(
            (pool_body.get("base_job_template") or {}).get("variables", {}).get("properties", {})
        ),
        "entrypoint": dep["entrypoint"],
        "pull_steps": dep["pull_steps"],
        "schedules": [
            (s["slug"], s["schedule"].get("cron"), s["schedule"].get("timezone"), s["active"])
            for s in dep["schedules"]
        ],
        "parameter_names": sorted(dep["parameter_openapi_schema"].get("properties", {})),
        "enforce_parameter_schema": dep["enforce_parameter_schema"],
        "tags": sorted(dep["tags"]),
        "id": dep["id"],
    }


def part2(server: Any, rounds: int) -> dict[str, Any]:
    import httpx

    from tests.support.fault_proxy import FaultProxy

    prefect_cli = str(Path(sys.executable).with_name("prefect"))
    workdir = Path(tempfile.mkdtemp(prefix="bench-pc-cli-"))
    shutil.copytree(Path(__file__).resolve().parents[1] / "flows", workdir / "flows",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    samples: dict[str, list[dict[str, Any]]] = {"ours": [], "cli": []}
    created: dict[str, dict[str, Any]] = {}
    api = httpx.Client(base_url=server.api_url, timeout=30)
    try:
        with FaultProxy(server.api_url) as proxy:
            env = {**os.environ, "PREFECT_API_URL": proxy.api_url}
            env_ours = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
            # Round 0 warms both paths (page cache, .pyc files, the server) and is not reported.
            for index in range(rounds + 1):
                for variant in ("ours", "cli"):  # A B A B …
                    name = f"bench-pc2-{variant}-{index}"
                    proxy.clear_requests()
                    if variant == "ours":
                        seconds, out = run_timed(
                            [sys.executable, "-m", "benchmarks.provider_cost", "--ours-up",
                             proxy.api_url, name, name],
                            cwd=Path(__file__).resolve().parents[1], env=env_ours,
                        )  # fmt: skip
                        child = json.loads(out.strip().splitlines()[-1])
                        detail: dict[str, Any] = {"phases": child["phases"]}
                        version = child["version"]
                    else:
                        (workdir / "prefect.yaml").write_text(
                            PREFECT_YAML.format(
                                prefect_version=_prefect_version(), deployment=name, pool=name,
                                version=version,
                            )
                        )  # fmt: skip
                        pool_seconds, _ = run_timed(
                            [prefect_cli, "work-pool", "create", name, "--type", "process"], env=env
                        )
                        deploy_seconds, _ = run_timed(
                            [prefect_cli, "deploy", "--no-prompt", "--name", name], cwd=workdir, env=env
                        )
                        seconds = pool_seconds + deploy_seconds
                        detail = {
                            "phases": {
                                "prefect work-pool create": pool_seconds,
                                "prefect deploy --no-prompt": deploy_seconds,
                            }
                        }
                    requests = proxy.requests
                    state = equivalent(api, name, "suggest-activity", name)
                    deployment_id = state.pop("id")
                    created[variant] = state
                    api.delete(f"/deployments/{deployment_id}")
                    api.delete(f"/work_pools/{name}")
                    if index > 0:
                        samples[variant].append(
                            {
                                "seconds": seconds,
                                "requests": len(requests),
                                "writes": sum(1 for r in requests if r.is_write),
                                **detail,
                            }
                        )
    finally:
        api.close()
        shutil.rmtree(workdir, ignore_errors=True)
    ours = [s["seconds"] for s in samples["ours"]]
    cli = [s["seconds"] for s in samples["cli"]]
    ratios = [o / c for o, c in zip(ours, cli, strict=True)]
    phase_medians = {
        variant: {p: round(median([s["phases"][p] for s in samples[variant]]), 3) for p in samples[variant][0]["phases"]}
        for variant in samples
    }  # fmt: skip
    return {
        "rounds": rounds,
        "same_result": created["ours"] == created["cli"],
        "created_ours": created["ours"],
        "created_cli": created["cli"],
        "ours_seconds": summary(ours),
        "cli_seconds": summary(cli),
        "ratio_ours_over_cli_per_round": summary(ratios, 3),
        "phase_medians": phase_medians,
        "ours_requests": summary([s["requests"] for s in samples["ours"]], 0),
        "cli_requests": summary([s["requests"] for s in samples["cli"]], 0),
        "ours_writes": summary([s["writes"] for s in samples["ours"]], 0),
        "cli_writes": summary([s["writes"] for s in samples["cli"]], 0),
    }


def _prefect_version() -> str:
    from importlib import metadata

    return metadata.version("prefect")


# ------------------------------------------------------------------------------------------------ report


def targets(ops: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for resource in ("WorkPool", "Deployment"):
        noop = ops[resource]["no-op diff"]
        rows.append(
            {
                "target": f"{resource}: no-op diff makes 0 requests",
                "measured": f"{int(noop['requests']['max'])} requests",
                "met": noop["requests"]["max"] == 0,
            }
        )
        read = ops[resource]["read"]
        rows.append(
            {
                "target": f"{resource}: read makes at most 2 requests",
                "measured": f"{int(read['requests']['max'])} ({', '.join(read['request_list'])})",
                "met": read["requests"]["max"] <= 2,
            }
        )
    pool_update = ops["WorkPool"]["update one field"]
    rows.append(
        {
            "target": "WorkPool: update of one field writes only that field",
            "measured": f"writes {pool_update['writes']}, body keys {pool_update['write_body_keys']}",
            "met": pool_update["writes"] == ["PATCH /work_pools/{name}"]
            and pool_update["write_body_keys"] == [["description"]],
        }
    )
    dep_update = ops["Deployment"]["update one field"]
    body_keys = dep_update["write_body_keys"][0] if dep_update["write_body_keys"] else []
    rows.append(
        {
            "target": "Deployment: update of one field writes only the changed object (no schedule calls)",
            "measured": f"writes {dep_update['writes']}",
            "met": dep_update["writes"] == ["PATCH /deployments/{id}"],
        }
    )
    rows.append(
        {
            "target": "Deployment: update of one field sends only that field",
            "measured": f"the PATCH body carries {len(body_keys)} fields ({', '.join(body_keys)}), "
            "not only `description` (by design: the provider PATCHes the full field set)",
            "met": body_keys == ["description"],
        }
    )
    schedule = ops["Deployment"]["schedule change"]
    rows.append(
        {
            "target": "Deployment: schedule change writes only the schedule",
            "measured": f"writes {schedule['writes']}, body keys {schedule['write_body_keys']}",
            "met": schedule["writes"] == ["PATCH /deployments/{id}/schedules/{id}"],
        }
    )
    return rows


def report(results: dict[str, Any]) -> str:
    ops = results["part1"]["operations"]
    lines = [f"### Provider cost per operation (median of {results['part1']['rounds']} rounds)", ""]
    rows = []
    for resource in ("WorkPool", "Deployment"):
        for op, data in ops[resource].items():
            rows.append(
                [
                    resource,
                    op,
                    int(data["requests"]["median"]),
                    len(data["writes"]),
                    fmt(data["seconds"]["median"] * 1000, 0, " ms"),
                    data["server_errors_retried"],
                    "<br>".join(data["request_list"]) or "—",
                ]
            )
    lines.append(
        md_table(
            [
                "resource",
                "operation",
                "requests",
                "writes",
                "time",
                "5xx retried (all rounds)",
                "requests made",
            ],
            rows,
        )
    )
    lines += ["", "### Targets", ""]
    lines.append(targets_table(results["targets"]))
    p2 = results["part2"]
    lines += [
        "",
        f"### Create pool + deployment + cron schedule: ours vs the prefect CLI ({p2['rounds']} rounds, A B A B)",
        "",
    ]
    lines.append(
        md_table(
            ["variant", "median", "min", "max", "requests", "writes", "same objects created"],
            [
                ["ours: program + provider host", fmt(p2["ours_seconds"]["median"], 2, " s"),
                 fmt(p2["ours_seconds"]["min"], 2, " s"), fmt(p2["ours_seconds"]["max"], 2, " s"),
                 int(p2["ours_requests"]["median"]), int(p2["ours_writes"]["median"]), met(p2["same_result"])],
                ["prefect CLI: work-pool create + deploy", fmt(p2["cli_seconds"]["median"], 2, " s"),
                 fmt(p2["cli_seconds"]["min"], 2, " s"), fmt(p2["cli_seconds"]["max"], 2, " s"),
                 int(p2["cli_requests"]["median"]), int(p2["cli_writes"]["median"]), met(p2["same_result"])],
            ],
        )
    )  # fmt: skip
    r = p2["ratio_ours_over_cli_per_round"]
    lines += [
        "",
        f"ratio ours / CLI: median {r['median']:.2f} (per round {r['min']:.2f} to {r['max']:.2f})",
        "",
        "phase medians (s): " + json.dumps(p2["phase_medians"]),
    ]
    return "\n".join(lines)


def run(rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with prefect_server("pc") as server:
        results["server_start_seconds"] = round(server.start_seconds, 2)
        results["part1"] = part1(server, rounds)
        results["part2"] = part2(server, rounds)
    results["targets"] = targets(results["part1"]["operations"])
    p2 = results["part2"]
    results["ratio_ours_over_cli"] = ratio(p2["ours_seconds"]["median"], p2["cli_seconds"]["median"])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="measured rounds (>= 5), after one warm-up")
    parser.add_argument(
        "--ours-up", nargs=3, metavar=("API_URL", "POOL", "DEPLOYMENT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    isolate_prefect_home()
    if args.ours_up:
        ours_up_child(*args.ours_up)
        return
    results, path = record_run(NAME, lambda: run(args.rounds))
    print(report(results))
    print(f"\nraw results: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


if __name__ == "__main__":
    main()
