"""Provider cost: HTTP requests and wall time per operation of the WorkPool and Deployment providers, and the
time to create the same pool + deployment + cron schedule with our providers vs the `prefect` CLI.

    uv run python -m benchmarks.provider_cost [--rounds 7] [--baseline REV]

Part 1 drives the providers through the gRPC host the Pulumi engine starts (`python -m pulumi.dynamic`, via
tests/support/provider_host.py), configured like the engine does, against a local `prefect server`, through a
recording proxy (tests/support/fault_proxy.py) that counts every request. An operation is what the engine
does for it: create = Check + Create, no-op = Check + Diff, read = Read (refresh), update = Check + Diff +
Update, delete = Delete. The inputs are the ones the real program declares (run under the SDK's mocks).

Part 2 times, as subprocesses and in turn (A B C A B C …), the user's way and ours of creating a pool, a
deployment and its 09:00 cron schedule:
  A (ours):   benchmarks/_up_child.py: one interpreter runs the real program under mocks (standing in for the
              language host), then starts the provider host (a second interpreter, as under `pulumi up`) and
              creates the pool and the deployment through it. `pulumi up` adds the engine's own overhead,
              which cannot be measured here.
  B (before): with `--baseline REV`, the same child on a checkout of REV with its own locked environment.
  C (CLI):    `prefect work-pool create NAME --type process`, then `prefect deploy --no-prompt` of a
              prefect.yaml declaring the same deployment (entrypoint, pull step, tags, version, cron, slug).
One extra untimed run of each, first, has Python's import profiler on: where the import time goes.
Results: benchmarks/results/provider_cost.json.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
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


def run_timed(command: list[str], *, cwd: Path | None = None, env: dict[str, str]) -> tuple[float, str, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout, done.stderr


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


UP_CHILD = Path(__file__).with_name("_up_child.py")
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \|( +)(\S+)\s*$")


def import_seconds_by_package(import_log: str) -> dict[str, float]:
    """From an import log (-X importtime): the seconds spent importing each top-level package, counting
    each first import once (its cumulative time, at the outermost level it appears)."""
    totals: dict[str, float] = {}
    for line in import_log.splitlines():
        match = IMPORT_LINE.match(line)
        if match and len(match.group(2)) == 1:  # outermost: imported by no module being imported
            package = match.group(3).split(".")[0]
            totals[package] = totals.get(package, 0.0) + int(match.group(1)) / 1e6
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def checkout(rev: str) -> tuple[Path, Path]:
    """An older revision of this repository, with its own locked environment: (directory, its python)."""
    import io
    import tarfile

    directory = Path(tempfile.mkdtemp(prefix="bench-pc-baseline-"))
    repo = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "archive", rev], cwd=repo, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    subprocess.run(["uv", "sync", "--locked", "--quiet"], cwd=directory, env=env, check=True, timeout=600)
    return directory, directory / ".venv" / "bin" / "python"


def part2(server: Any, rounds: int, baseline: str | None) -> dict[str, Any]:
    import httpx

    from tests.support.fault_proxy import FaultProxy

    repo = Path(__file__).resolve().parents[1]
    prefect_cli = str(Path(sys.executable).with_name("prefect"))
    workdir = Path(tempfile.mkdtemp(prefix="bench-pc-cli-"))
    shutil.copytree(repo / "flows", workdir / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    # variant -> (checkout, python) of the program + provider host; the CLI is this environment's `prefect`.
    checkouts: dict[str, tuple[Path, Path]] = {"ours": (repo, Path(sys.executable))}
    if baseline:
        checkouts["before"] = checkout(baseline)
    variants = [*checkouts, "cli"]
    samples: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    imports: dict[str, dict[str, dict[str, float]]] = {}
    created: dict[str, dict[str, Any]] = {}
    api = httpx.Client(base_url=server.api_url, timeout=30)
    version = "bench"
    try:
        with FaultProxy(server.api_url) as proxy:
            env = {**os.environ, "PREFECT_API_URL": proxy.api_url}
            env_ours = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
            # Round 0 warms every path (page cache, .pyc files, the server); round 1 runs each variant with the
            # import profiler on (which slows imports); neither is timed. Rounds 2… are the measured ones.
            for index in range(rounds + 2):
                profile = index == 1
                for variant in variants:  # A B C A B C …
                    name = f"bench-pc2-{variant}-{index}"
                    proxy.clear_requests()
                    if variant in checkouts:
                        code, python = checkouts[variant]
                        config = program_config(proxy.api_url, name, name)
                        child_env = {**env_ours, "PYTHONPATH": str(code)}
                        if profile:
                            child_env["PYTHONPROFILEIMPORTTIME"] = "1"
                        seconds, out, err = run_timed(
                            [str(python), str(UP_CHILD), json.dumps(config)], cwd=code, env=child_env
                        )
                        child = json.loads(out.strip().splitlines()[-1])
                        detail: dict[str, Any] = {"phases": child["phases"]}
                        version = child["version"]
                        if profile:
                            imports[variant] = {
                                "program": import_seconds_by_package(err),
                                "provider host": import_seconds_by_package(child["host_import_log"]),
                            }
                    else:
                        (workdir / "prefect.yaml").write_text(
                            PREFECT_YAML.format(
                                prefect_version=_prefect_version(), deployment=name, pool=name,
                                version=version,
                            )
                        )  # fmt: skip
                        cli_env = {**env, "PYTHONPROFILEIMPORTTIME": "1"} if profile else env
                        pool_seconds, _, pool_err = run_timed(
                            [prefect_cli, "work-pool", "create", name, "--type", "process"], env=cli_env
                        )
                        deploy_seconds, _, deploy_err = run_timed(
                            [prefect_cli, "deploy", "--no-prompt", "--name", name], cwd=workdir, env=cli_env
                        )
                        seconds = pool_seconds + deploy_seconds
                        detail = {
                            "phases": {
                                "prefect work-pool create": pool_seconds,
                                "prefect deploy --no-prompt": deploy_seconds,
                            }
                        }
                        if profile:
                            imports[variant] = {
                                "prefect work-pool create": import_seconds_by_package(pool_err),
                                "prefect deploy": import_seconds_by_package(deploy_err),
                            }
                    requests = proxy.requests
                    state = equivalent(api, name, "suggest-activity", name)
                    deployment_id = state.pop("id")
                    created[variant] = state
                    api.delete(f"/deployments/{deployment_id}")
                    api.delete(f"/work_pools/{name}")
                    if index > 1:
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
        for variant, (code, _) in checkouts.items():
            if variant != "ours":
                shutil.rmtree(code, ignore_errors=True)
    seconds = {v: [s["seconds"] for s in samples[v]] for v in variants}
    result: dict[str, Any] = {
        "rounds": rounds,
        "baseline": baseline,
        "variants": variants,
        "same_result": all(created[v] == created["cli"] for v in variants),
        "created": created,
        "seconds": {v: summary(seconds[v]) for v in variants},
        "requests": {v: summary([s["requests"] for s in samples[v]], 0) for v in variants},
        "writes": {v: summary([s["writes"] for s in samples[v]], 0) for v in variants},
        "phase_medians": {
            v: {p: round(median([s["phases"][p] for s in samples[v]]), 3) for p in samples[v][0]["phases"]}
            for v in variants
        },
        "import_seconds": imports,
        # Per-round ratios first, then their median: both sides of a ratio saw the same moment's load.
        "ratios": {
            f"{a} / {b}": summary([x / y for x, y in zip(seconds[a], seconds[b], strict=True)], 3)
            for a, b in (("ours", "cli"), ("before", "cli"), ("ours", "before"))
            if a in seconds and b in seconds
        },
    }
    return result


def _prefect_version() -> str:
    from importlib import metadata

    return metadata.version("prefect")


# ------------------------------------------------------------------------------------------------ report


def targets(ops: dict[str, dict[str, Any]], p2: dict[str, Any]) -> list[dict[str, Any]]:
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
    patches = [keys for w, keys in zip(dep_update["writes"], dep_update["write_body_keys"], strict=True)
               if w == "PATCH /deployments/{id}"]  # fmt: skip
    rows.append(
        {
            "target": "Deployment: update of one field sends only that field (no `work_pool_name`: the job "
            "variables did not change)",
            "measured": f"PATCH body keys {patches}",
            "met": patches == [["description"]],
        }
    )
    rows.append(
        {
            "target": "Deployment: update of one field reads nothing before writing, and no schedule call",
            "measured": ", ".join(dep_update["request_list"]),
            "met": dep_update["request_list"][0] == "PATCH /deployments/{id}"
            and not any("/schedules" in r for r in dep_update["request_list"]),
        }
    )
    schedule = ops["Deployment"]["schedule change"]
    rows.append(
        {
            "target": "Deployment: schedule change writes only the schedule (and asks for its runs)",
            "measured": f"writes {schedule['writes']}",
            "met": schedule["writes"][0] == "PATCH /deployments/{id}/schedules/{id}"
            and "PATCH /deployments/{id}" not in schedule["writes"],
        }
    )
    ratio_ours = p2["ratios"]["ours / cli"]["median"]
    rows.append(
        {
            "target": "create pool + deployment + schedule from nothing: at most 0.7 x the prefect CLI",
            "measured": f"{ratio_ours:.2f} x (median of per-round ratios)",
            "met": ratio_ours <= 0.7,
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
    headers = [
        "resource",
        "operation",
        "requests",
        "writes",
        "time",
        "5xx retried (all rounds)",
        "requests made",
    ]
    lines.append(md_table(headers, rows))
    p2 = results["part2"]
    order = " ".join(p2["variants"])
    lines += [
        "",
        f"### Create pool + deployment + cron schedule from nothing ({p2['rounds']} rounds, {order} in turn)",
        "",
    ]
    names = {
        "ours": "ours: program + provider host",
        "before": f"before ({p2['baseline']}): program + provider host",
        "cli": "prefect CLI: work-pool create + deploy",
    }
    rows = [
        [names[v], fmt(p2["seconds"][v]["median"], 2, " s"), fmt(p2["seconds"][v]["min"], 2, " s"),
         fmt(p2["seconds"][v]["max"], 2, " s"), int(p2["requests"][v]["median"]), int(p2["writes"][v]["median"])]
        for v in p2["variants"]
    ]  # fmt: skip
    lines.append(md_table(["variant", "median", "min", "max", "requests", "writes"], rows))
    lines += ["", f"same objects created by every variant: {met(p2['same_result'])}", ""]
    lines.append(
        md_table(
            ["ratio (per round, then median)", "median", "min", "max"],
            [[name, f"{r['median']:.2f}", f"{r['min']:.2f}", f"{r['max']:.2f}"] for name, r in p2["ratios"].items()],
        )
    )  # fmt: skip
    lines += ["", "Where the time goes (phase medians, s):", ""]
    phase_rows = [
        [names[v], p, f"{t:.2f}"] for v in p2["variants"] for p, t in p2["phase_medians"][v].items()
    ]
    lines.append(md_table(["variant", "phase", "median"], phase_rows))
    lines += [
        "",
        "Imports by top-level package (s, one profiled run each, `-X importtime`; top 6 per process):",
        "",
    ]
    import_rows = [
        [names[v], process, ", ".join(f"{pkg} {t:.2f}" for pkg, t in list(packages.items())[:6]),
         f"{sum(packages.values()):.2f}"]
        for v, processes in p2["import_seconds"].items()
        for process, packages in processes.items()
    ]  # fmt: skip
    lines.append(md_table(["variant", "process", "largest imports", "all imports"], import_rows))
    lines += ["", "### Targets", "", targets_table(results["targets"])]
    return "\n".join(lines)


def run(rounds: int, baseline: str | None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with prefect_server("pc") as server:
        results["server_start_seconds"] = round(server.start_seconds, 2)
        results["part1"] = part1(server, rounds)
        results["part2"] = part2(server, rounds, baseline)
    results["targets"] = targets(results["part1"]["operations"], results["part2"])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="measured rounds (>= 5), after one warm-up")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also time the program + provider host of this git revision (its own `uv sync --locked`)",
    )
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="every interpreter compiles from source (PYTHONDONTWRITEBYTECODE=1); results in "
        f"{NAME}_no_bytecode_cache.json",
    )
    args = parser.parse_args()
    isolate_prefect_home()
    # Every interpreter (ours, before, the CLI) keeps its compiled bytecode in one fresh folder: written in the
    # warm-up round and used after it, as a user's machine does after the first run; or, with
    # --no-bytecode-cache, never written nor found (this machine's environment sets PYTHONDONTWRITEBYTECODE=1,
    # under which every interpreter compiles all of Prefect, Pulumi, … from source each time).
    name = f"{NAME}_no_bytecode_cache" if args.no_bytecode_cache else NAME
    os.environ["PYTHONPYCACHEPREFIX"] = pycache = tempfile.mkdtemp(prefix="bench-pc-pycache-")
    atexit.register(shutil.rmtree, pycache, ignore_errors=True)
    if args.no_bytecode_cache:
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    results, path = record_run(name, lambda: run(args.rounds, args.baseline))
    print(report(results))
    print(f"\nraw results: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


if __name__ == "__main__":
    main()
