"""Schedule to start: how late scheduled runs start, and when they complete, on the worker the program declares.

    uv run python -m benchmarks.schedule_to_start [--runs 7] [--lead 30] [--spacing 20] [--immediate 5]

The real program is applied for real (benchmarks/_stack.py: image, work pool, worker container, deployment)
with the program's defaults: `suggest-activity:workerPollSeconds` 5 → PREFECT_WORKER_QUERY_SECONDS=5, and
Prefect's PREFECT_WORKER_PREFETCH_SECONDS (the program does not set it; the value the worker really uses is
read from inside the container and reported). Then `--runs` flow runs of the deployment are created SCHEDULED
`--lead` seconds ahead (more than prefetch + poll, so the worker first sees each one as a future run, like a
cron run), `--spacing` seconds apart so that they do not overlap. For each run:
  lateness       = start_time (entered RUNNING) - expected_start_time
  to completed   = end_time (entered COMPLETED) - expected_start_time
and, to see what dominates, the worker's pickup (PENDING), the run process's start (Submitting → RUNNING) and
the flow itself (RUNNING → COMPLETED), from the run's state history. As context, `--immediate` runs created for
"now" (the UI's Run button: prefetch cannot help) are measured the same way, one at a time.
RUNNING can be up to 0.5 s before the expected start: the server's WaitForScheduledTime rule rounds the wait
it imposes to whole seconds. Writes benchmarks/results/schedule_to_start.json.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks._common import (
    fmt,
    isolate_prefect_home,
    md_table,
    median,
    record_run,
    summary,
    targets_table,
)
from benchmarks._stack import applied_stack

NAME = "schedule_to_start"
LATENESS_TARGET_SECONDS = 5.0
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def wait_terminal(stack: Any, run_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = set(run_ids)
    while pending and time.monotonic() < deadline:
        for run_id in list(pending):
            if stack.run(run_id)["state_type"] in TERMINAL:
                pending.discard(run_id)
        time.sleep(0.5)


def timings(stack: Any, run_id: str, planned: datetime | None) -> dict[str, Any]:
    """One run's offsets from its expected start time, from the run and its state history."""
    run = stack.run(run_id)
    expected = parse(run["expected_start_time"])
    states = stack.states(run_id)

    def first_state(kind: str, name: str | None = None) -> datetime | None:
        found = [parse(s["timestamp"]) for s in states if s["type"] == kind and name in (None, s["name"])]
        return found[0] if found else None

    def offset(when: datetime | None) -> float | None:
        return None if when is None else (when - expected).total_seconds()

    start = parse(run["start_time"]) if run.get("start_time") else first_state("RUNNING")
    end = parse(run["end_time"]) if run.get("end_time") else None
    return {
        "run_id": run_id,
        "state": run["state_type"],
        "planned_scheduled_time": planned.isoformat() if planned else None,
        "expected_start_time": run["expected_start_time"],
        "expected_matches_planned": None
        if planned is None
        else abs((expected - planned).total_seconds()) < 0.01,
        "lateness_seconds": offset(start),
        "to_completed_seconds": offset(end) if run["state_type"] == "COMPLETED" else None,
        "pending_offset_seconds": offset(first_state("PENDING")),
        "submitting_offset_seconds": offset(first_state("PENDING", "Submitting")),
        "running_offset_seconds": offset(first_state("RUNNING")),
        "states": [(s["type"], s["name"], s["timestamp"]) for s in states],
    }


def scheduled_runs(stack: Any, runs: int, lead: float, spacing: float) -> list[dict[str, Any]]:
    """`runs` runs scheduled `lead` s ahead, `spacing` s apart: what a cron schedule produces."""
    first = datetime.now(UTC) + timedelta(seconds=lead)
    planned = [first + timedelta(seconds=spacing * i) for i in range(runs)]
    run_ids = [stack.schedule_run(at) for at in planned]
    wait_terminal(stack, run_ids, timeout=lead + spacing * runs + 240)
    return [timings(stack, run_id, at) for run_id, at in zip(run_ids, planned, strict=True)]


def immediate_runs(stack: Any, runs: int) -> list[dict[str, Any]]:
    """Context: runs created for now (the UI's Run button), one at a time; prefetch cannot hide anything."""
    results = []
    for _ in range(runs):
        run_id = stack.schedule_run()
        wait_terminal(stack, [run_id], timeout=240)
        results.append(timings(stack, run_id, None))
    return results


def aggregate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    completed = [s for s in samples if s["state"] == "COMPLETED"]

    def values(key: str, among: list[dict[str, Any]] = samples) -> list[float]:
        return [s[key] for s in among if s[key] is not None]

    def spans(start_key: str, end_key: str) -> list[float]:
        return [
            s[end_key] - s[start_key]
            for s in completed
            if s[start_key] is not None and s[end_key] is not None
        ]

    return {
        "runs": len(samples),
        "completed": len(completed),
        "lateness_seconds": summary(values("lateness_seconds"), 3),
        "to_completed_seconds": summary(values("to_completed_seconds", completed), 3),
        "pickup_offset_seconds": summary(values("pending_offset_seconds"), 3),
        "submitting_to_running_seconds": summary(
            spans("submitting_offset_seconds", "running_offset_seconds"), 3
        ),
        "running_to_completed_seconds": summary(spans("running_offset_seconds", "to_completed_seconds"), 3),
    }


def run(runs: int, lead: float, spacing: float, immediate: int) -> dict[str, Any]:
    with applied_stack("sts") as stack:
        settings = stack.worker_settings()
        scheduled = scheduled_runs(stack, runs, lead, spacing)
        now_runs = immediate_runs(stack, immediate)
        up_seconds = stack.up_seconds
    result = aggregate(scheduled)
    lateness = [s["lateness_seconds"] for s in scheduled if s["lateness_seconds"] is not None]
    med = median(lateness) if lateness else None
    return {
        "lead_seconds": lead,
        "spacing_seconds": spacing,
        "up_seconds": round(up_seconds, 1),
        "worker_settings": settings,
        "scheduled": result,
        "immediate": aggregate(now_runs),
        "samples": {"scheduled": scheduled, "immediate": now_runs},
        "targets": [
            {
                "target": f"median lateness <= {LATENESS_TARGET_SECONDS:g} s",
                "measured": f"{fmt(med, 2, ' s')} (max {fmt(max(lateness) if lateness else None, 2, ' s')})",
                "met": med is not None and med <= LATENESS_TARGET_SECONDS and result["completed"] == runs,
            }
        ],
    }


def report(results: dict[str, Any]) -> str:
    s = results["worker_settings"]
    sch, imm = results["scheduled"], results["immediate"]
    rows = []
    for name, key in (
        ("lateness (RUNNING - expected start)", "lateness_seconds"),
        ("to COMPLETED (from expected start)", "to_completed_seconds"),
        ("worker pickup (PENDING - expected start)", "pickup_offset_seconds"),
        ("Submitting to RUNNING (run process start, incl. waiting)", "submitting_to_running_seconds"),
        ("RUNNING to COMPLETED (the flow itself)", "running_to_completed_seconds"),
    ):
        rows.append(
            [
                name,
                f"{fmt(sch[key]['median'], 2)} / {fmt(sch[key]['max'], 2)} s",
                f"{fmt(imm[key]['median'], 2)} / {fmt(imm[key]['max'], 2)} s",
            ]
        )
    return "\n".join(
        [
            f"### Schedule to start ({sch['completed']}/{sch['runs']} scheduled runs COMPLETED, "
            f"{results['lead_seconds']:g} s ahead, {results['spacing_seconds']:g} s apart; "
            f"{imm['completed']}/{imm['runs']} immediate runs)",
            "",
            f"worker: poll (PREFECT_WORKER_QUERY_SECONDS) {s['query_seconds']} s "
            f"(env from the program: {s['env_PREFECT_WORKER_QUERY_SECONDS']}), prefetch "
            f"(PREFECT_WORKER_PREFETCH_SECONDS) {s['prefetch_seconds']} s "
            f"(env from the program: {s['env_PREFECT_WORKER_PREFETCH_SECONDS'] or 'not set, Prefect default'})",
            "",
            md_table(["measure", "scheduled ahead: median / max", "immediate (context): median / max"], rows),
            "",
            targets_table(results["targets"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--lead", type=float, default=30.0, help="seconds ahead the first run is scheduled")
    parser.add_argument("--spacing", type=float, default=20.0, help="seconds between scheduled runs")
    parser.add_argument("--immediate", type=int, default=5, help="runs for now, one at a time (context)")
    args = parser.parse_args()
    isolate_prefect_home()
    results, path = record_run(NAME, lambda: run(args.runs, args.lead, args.spacing, args.immediate))
    print(report(results))
    print(f"\nraw results: {path}")


if __name__ == "__main__":
    main()
