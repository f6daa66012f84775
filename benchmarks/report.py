"""Print every benchmark's markdown tables again from its committed raw results (benchmarks/results/*.json).

    uv run python -m benchmarks.report

Measures nothing: it is how the tables in benchmarks/README.md are produced from the JSON files.
"""

from __future__ import annotations

import importlib
import json

from benchmarks._common import RESULTS_DIR

# results file -> the benchmark module that wrote it (and formats it)
BENCHMARKS = {
    "provider_cost": "provider_cost",
    "provider_cost_no_bytecode_cache": "provider_cost",
    "scale": "scale",
    "image": "image",
    "schedule_to_start": "schedule_to_start",
    "worker_footprint": "worker_footprint",
    "smoke_run": "smoke_run",
}


def main() -> None:
    for name, module_name in BENCHMARKS.items():
        path = RESULTS_DIR / f"{name}.json"
        if not path.is_file():
            print(f"## {name}: no results yet (uv run python -m benchmarks.{module_name})\n")
            continue
        results = json.loads(path.read_text())
        module = importlib.import_module(f"benchmarks.{module_name}")
        load = results.get("load", {}).get("loadavg_1m", {})
        print(f"## {name} — {results['started_at']}, {results['duration_seconds']:.0f} s")
        print(f"(load average during the run: median {load.get('median')}, max {load.get('max')})\n")
        print(module.report(results))
        print()


if __name__ == "__main__":
    main()
