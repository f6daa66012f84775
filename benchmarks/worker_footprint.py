"""Worker footprint: memory of the worker container idle and during runs, next to the limit the program sets.

    uv run python -m benchmarks.worker_footprint [--runs 5] [--idle 30] [--burst 3]

The real program is applied for real (benchmarks/_stack.py) with its defaults: `suggest-activity:workerMemoryMb`
1024 → the container's memory limit, a process work pool (every flow run is a child process inside the worker
container, so the runs' memory counts against the same limit). Memory is what `docker stats` shows (usage minus
inactive file cache), read every 0.2 s from the container's cgroup v1 files, which are the numbers the Docker
stats API serves (checked against it at the end), or from the stats API itself when those are not readable,
while the worker is
  idle      `--idle` seconds after the pool is READY,
  one run   `--runs` runs, one at a time (what the 09:00 schedule does),
  burst     `--burst` runs at once (a backlog after downtime; the worker has no --limit by default),
and the peak of each phase is compared with the limit. Writes benchmarks/results/worker_footprint.json.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
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

NAME = "worker_footprint"
MB = 1024 * 1024
# The limit must leave headroom over the peak: we ask for at least a third of the limit free at the peak.
HEADROOM_FACTOR = 1.5
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
CGROUP_V1_ROOT = Path("/sys/fs/cgroup/memory/docker")


def memory_now(container: Any) -> dict[str, Any]:
    """From the Docker stats API, as `docker stats` computes MEM USAGE: usage minus inactive file cache."""
    stats = container.stats(stream=False, one_shot=True)
    memory = stats.get("memory_stats") or {}
    detail = memory.get("stats") or {}
    return _used(
        int(memory.get("usage") or 0),
        detail,
        memory.get("max_usage"),
        memory.get("limit"),
    )


def _used(usage: int, detail: dict[str, Any], max_usage: Any, limit: Any) -> dict[str, Any]:
    # cgroup v1 reports total_inactive_file, v2 inactive_file; the docker CLI subtracts it from usage.
    inactive = int(detail.get("total_inactive_file", detail.get("inactive_file", 0)) or 0)
    return {
        "used": usage - inactive if inactive < usage else usage,
        "usage": usage,
        "rss": int(detail.get("total_rss", detail.get("anon", 0)) or 0),
        "max_usage": int(max_usage) if max_usage is not None else None,
        "limit": int(limit) if limit is not None else None,
    }


def cgroup_dir(container: Any) -> Path | None:
    """The container's cgroup v1 memory directory, when this process can read it (same numbers, 5x faster
    than the stats API, so short peaks are not missed)."""
    path = CGROUP_V1_ROOT / container.id
    return path if (path / "memory.usage_in_bytes").is_file() else None


def memory_from_cgroup(path: Path) -> dict[str, Any]:
    detail = {}
    for line in (path / "memory.stat").read_text().splitlines():
        key, _, value = line.partition(" ")
        detail[key] = int(value)
    return _used(
        int((path / "memory.usage_in_bytes").read_text()),
        detail,
        int((path / "memory.max_usage_in_bytes").read_text()),
        int((path / "memory.limit_in_bytes").read_text()),
    )


class Sampler:
    """Samples the container's memory on a thread; the main thread sets `phase` to label the samples."""

    def __init__(self, container: Any) -> None:
        self.container = container
        self.cgroup = cgroup_dir(container)
        self.source = "cgroup v1 memory files" if self.cgroup else "Docker stats API"
        self.every = 0.2 if self.cgroup else 0.5
        self.phase = "setup"
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            try:
                sample = memory_from_cgroup(self.cgroup) if self.cgroup else memory_now(self.container)
            except Exception as exc:  # a sample lost to a busy daemon is not a reason to stop
                sample = {"error": str(exc)}
            sample.update(t=round(time.monotonic() - started, 2), phase=self.phase)
            self.samples.append(sample)
            self._stop.wait(self.every)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def used(self, phase_prefix: str) -> list[int]:
        return [s["used"] for s in self.samples if s["phase"].startswith(phase_prefix) and "used" in s]


def wait_terminal(stack: Any, run_ids: list[str], timeout: float = 240) -> list[str]:
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = {run_id: stack.run(run_id)["state_type"] for run_id in run_ids}
        if all(state in TERMINAL for state in states.values()):
            break
        time.sleep(0.5)
    return [states.get(run_id, "UNKNOWN") for run_id in run_ids]


def run(runs: int, idle_seconds: float, burst: int) -> dict[str, Any]:
    with applied_stack("wf") as stack:
        settings = stack.worker_settings()
        limit = int(settings["memory_limit_bytes"])
        outcomes: dict[str, list[str]] = {}
        with Sampler(stack.container) as sampler:
            time.sleep(5)  # the first polls after READY
            sampler.phase = "idle"
            time.sleep(idle_seconds)
            for i in range(runs):
                sampler.phase = f"run-{i}"
                outcomes[f"run-{i}"] = wait_terminal(stack, [stack.schedule_run()])
                time.sleep(3)  # the run's process exits and its memory is returned
            sampler.phase = "burst"
            outcomes["burst"] = wait_terminal(stack, [stack.schedule_run() for _ in range(burst)])
            time.sleep(3)
            sampler.phase = "idle-after"
            time.sleep(10)
        samples = sampler.samples
        # The stats API once more, to show that both sources agree.
        cross_check = {
            "stats_api": memory_now(stack.container),
            "cgroup": (memory_from_cgroup(sampler.cgroup) if sampler.cgroup else None),
        }
        source = sampler.source
    idle = [s["used"] for s in samples if s["phase"] == "idle" and "used" in s]
    run_peaks = [max(sampler.used(f"run-{i}")) for i in range(runs) if sampler.used(f"run-{i}")]
    burst_used = sampler.used("burst")
    idle_after = sampler.used("idle-after")
    peak = max(run_peaks)
    idle_median = median(idle)
    burst_peak = max(burst_used) if burst_used else None
    per_run = (burst_peak - idle_median) / burst if burst_peak else None
    fits = int((limit - idle_median) // per_run) if per_run else None
    cgroup_max = max((s.get("max_usage") or 0) for s in samples)
    all_completed = all(state == "COMPLETED" for states in outcomes.values() for state in states)
    return {
        "runs": runs,
        "idle_seconds": idle_seconds,
        "burst": burst,
        "up_seconds": round(stack.up_seconds, 1),
        "worker_settings": settings,
        "memory_limit_mb": limit / MB,
        "idle_mb": summary([u / MB for u in idle], 1),
        "single_run_peak_mb": summary([p / MB for p in run_peaks], 1),
        "burst_peak_mb": burst_peak / MB if burst_peak else None,
        "idle_after_mb": summary([u / MB for u in idle_after], 1),
        "per_concurrent_run_mb": per_run / MB if per_run else None,
        "concurrent_runs_that_fit_estimate": fits,
        "cgroup_max_usage_mb_incl_cache": cgroup_max / MB,
        "sampling": {"source": source, "interval_seconds": sampler.every, "cross_check_bytes": cross_check},
        "outcomes": outcomes,
        "all_runs_completed": all_completed,
        "samples": samples,
        "targets": [
            {
                "target": f"the memory limit leaves headroom over the measured peak (limit >= {HEADROOM_FACTOR}x "
                "the single-run peak)",
                "measured": f"limit {limit / MB:.0f} MB, peak {peak / MB:.0f} MB "
                f"({peak / limit:.0%} of the limit, {limit / peak:.1f}x)",
                "met": limit >= HEADROOM_FACTOR * peak and all_completed,
            }
        ],
    }


def report(results: dict[str, Any]) -> str:
    rows = [
        [
            "idle (median / max)",
            f"{fmt(results['idle_mb']['median'], 0)} / {fmt(results['idle_mb']['max'], 0)} MB",
        ],
        [
            f"one run at a time: peak (median / max of {results['runs']} runs)",
            f"{fmt(results['single_run_peak_mb']['median'], 0)} / {fmt(results['single_run_peak_mb']['max'], 0)} MB",
        ],
        [f"burst of {results['burst']} runs: peak", f"{fmt(results['burst_peak_mb'], 0)} MB"],
        ["idle after the runs (median)", f"{fmt(results['idle_after_mb']['median'], 0)} MB"],
        ["memory limit set by the program", f"{results['memory_limit_mb']:.0f} MB"],
        ["per concurrent run (burst estimate)", f"{fmt(results['per_concurrent_run_mb'], 0)} MB"],
        ["concurrent runs that fit (estimate)", str(results["concurrent_runs_that_fit_estimate"])],
        ["cgroup max usage incl. page cache", f"{results['cgroup_max_usage_mb_incl_cache']:.0f} MB"],
    ]
    return "\n".join(
        [
            "### Worker footprint (docker stats: usage minus inactive file cache)",
            "",
            md_table(["measure", "memory"], rows),
            "",
            targets_table(results["targets"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--burst", type=int, default=3)
    args = parser.parse_args()
    isolate_prefect_home()
    results, path = record_run(NAME, lambda: run(args.runs, args.idle, args.burst))
    print(report(results))
    print(f"\nraw results: {path}")


if __name__ == "__main__":
    main()
