"""Smoke run: what the FlowRunCheck adds to `pulumi up`, from its create to the run's Completed.

    uv run python -m benchmarks.smoke_run [--rounds 5]

The real program is applied for real (benchmarks/_stack.py: image, work pool, worker container, deployment and
its smoke run) with the program's defaults: poll interval 5 s, Prefect's prefetch, the flow against a fake Bored
API. Then `--rounds` times, what the engine does when a change replaces the check: Check + Create of the
FlowRunCheck through the provider host (the gRPC host the engine starts, configured with the stack config), with
the inputs the program declared for it, and through a recording proxy. Each create triggers one run of the
deployment and returns once it is Completed. Per round: the create's wall time (what `up` waits), and from the
run's state history what it is made of: the worker's pickup (created → PENDING, up to one poll interval), the
run process's start (PENDING → RUNNING: a new Python process imports Prefect and the flow), the flow itself
(RUNNING → COMPLETED), and the provider noticing it (COMPLETED → create returned, up to its 1 s poll). Also the
requests the provider sent and the Bored API calls. Writes benchmarks/results/smoke_run.json.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from typing import Any

from benchmarks._common import fmt, isolate_prefect_home, md_table, record_run, request_shape, summary
from benchmarks._stack import applied_stack

NAME = "smoke_run"
FLOW_RUN_CHECK = "pulumi-python:dynamic/prefect:FlowRunCheck"


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def phases(stack: Any, run_id: str, returned_at: datetime) -> dict[str, Any]:
    """The run's phases from its state history (server timestamps), in seconds."""
    run = stack.run(run_id)
    states = stack.states(run_id)

    def first(kind: str) -> datetime:
        return next(parse(s["timestamp"]) for s in states if s["type"] == kind)

    created, pending, running, completed = (
        parse(run["created"]), first("PENDING"), first("RUNNING"), first("COMPLETED")
    )  # fmt: skip
    return {
        "run_id": run_id,
        "state": run["state_type"],
        "pickup_seconds": (pending - created).total_seconds(),
        "process_start_seconds": (running - pending).total_seconds(),
        "flow_seconds": (completed - running).total_seconds(),
        "noticed_seconds": (returned_at - completed).total_seconds(),
    }


def run(rounds: int) -> dict[str, Any]:
    from infra.prefect import FlowRunCheckProvider
    from tests.support.fault_proxy import FaultProxy
    from tests.support.provider_host import ProviderHost, host_env

    with applied_stack("smoke") as stack:
        (declared,) = stack.record.of_type(FLOW_RUN_CHECK)
        inputs = {k: v for k, v in declared.inputs.items() if not k.startswith("__")}
        settings = stack.worker_settings()
        samples: list[dict[str, Any]] = []
        with FaultProxy(stack.server.api_url) as proxy, ProviderHost(env=host_env()) as host:
            host.configure({**stack.config, "prefect:apiUrl": proxy.api_url})
            checks = host.resource(FlowRunCheckProvider(), "prefect:FlowRunCheck")
            for _ in range(rounds):
                proxy.clear_requests()
                served_before = len(stack.bored.served())
                started = time.perf_counter()
                run_id, outputs = checks.create(checks.checked(inputs))
                seconds = time.perf_counter() - started
                returned_at = datetime.now().astimezone()
                requests = [request_shape(r.method, r.path) for r in proxy.requests]
                sample = phases(stack, run_id, returned_at)
                sample.update(
                    create_seconds=seconds,
                    outputs_state=outputs["state_name"],
                    requests=len(requests),
                    writes=len([r for r in proxy.requests if r.is_write]),
                    request_shapes=sorted(set(requests)),
                    bored_api_calls=len(stack.bored.served()) - served_before,
                )
                samples.append(sample)
        up_seconds = stack.up_seconds

    def values(key: str) -> list[float]:
        return [s[key] for s in samples]

    return {
        "rounds": rounds,
        "timeout_seconds": inputs["timeout_seconds"],
        "worker_settings": settings,
        "up_seconds_with_smoke_run": round(up_seconds, 1),
        "create_to_completed_seconds": summary(values("create_seconds"), 2),
        "pickup_seconds": summary(values("pickup_seconds"), 2),
        "process_start_seconds": summary(values("process_start_seconds"), 2),
        "flow_seconds": summary(values("flow_seconds"), 2),
        "noticed_seconds": summary(values("noticed_seconds"), 2),
        "requests": summary(values("requests"), 0),
        "writes": summary(values("writes"), 0),
        "bored_api_calls": summary(values("bored_api_calls"), 0),
        "all_completed": all(s["state"] == "COMPLETED" == s["outputs_state"].upper() for s in samples),
        "samples": samples,
    }


def report(results: dict[str, Any]) -> str:
    s = results["worker_settings"]
    rows = [
        [name, f"{fmt(results[key]['median'], 2)} s", f"{fmt(results[key]['min'], 2)} to {fmt(results[key]['max'], 2)} s"]
        for name, key in (
            ("**create → Completed** (what `up` waits)", "create_to_completed_seconds"),
            ("worker pickup (created → PENDING)", "pickup_seconds"),
            ("run process start (PENDING → RUNNING)", "process_start_seconds"),
            ("the flow (RUNNING → COMPLETED)", "flow_seconds"),
            ("provider notices (COMPLETED → create returns)", "noticed_seconds"),
        )
    ]  # fmt: skip
    shapes = sorted({shape for sample in results["samples"] for shape in sample["request_shapes"]})
    return "\n".join(
        [
            f"### Smoke run ({results['rounds']} creates, all Completed: {results['all_completed']}; "
            f"timeout {results['timeout_seconds']} s)",
            "",
            f"worker: poll {s['query_seconds']} s, prefetch {s['prefetch_seconds']} s, process pool; "
            f"`up` from nothing with its smoke run: {results['up_seconds_with_smoke_run']} s (one sample, context)",
            "",
            md_table(["phase", "median", "range"], rows),
            "",
            f"Per create: {fmt(results['requests']['median'], 0)} requests to Prefect "
            f"({fmt(results['writes']['median'], 0)} write), {fmt(results['bored_api_calls']['median'], 0)} "
            f"Bored API call; requests made: {', '.join(shapes)}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    isolate_prefect_home()
    results, path = record_run(NAME, lambda: run(args.rounds))
    print(report(results))
    print(f"\nraw results: {path}")


if __name__ == "__main__":
    main()
