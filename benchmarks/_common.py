"""What every benchmark shares: statistics, the machine and its load, result files, markdown tables, a server.

Conventions (see benchmarks/README.md): alternatives are measured side by side in one run, A B A B …, and
compared by the median of at least 5 rounds; absolute numbers are context only (the machine is shared and
noisy). Everything a benchmark creates is named `bench-…` and removed by the benchmark itself.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
PREFIX = "bench-"
PREFECT_CONNECTION_ENV = ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING")
UUID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def isolate_prefect_home() -> Path:
    """A throw-away PREFECT_HOME for this process and its children (call before prefect is imported), and
    no inherited connection variables: every benchmark talks only to the server it started."""
    home = Path(tempfile.mkdtemp(prefix="bench-prefect-home-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    os.environ["PREFECT_HOME"] = str(home)
    for name in PREFECT_CONNECTION_ENV:
        os.environ.pop(name, None)
    return home


# ------------------------------------------------------------------------------------------------ statistics


def summary(values: Sequence[float], digits: int = 4) -> dict[str, Any]:
    """n, median, min, max (and the raw values, rounded) of a sample."""
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None, "values": []}
    return {
        "n": len(values),
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "values": [round(v, digits) for v in values],
    }


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator


def fmt(value: float | None, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}{unit}"


def request_shape(method: str, path: str, names: Sequence[str] = ()) -> str:
    """`PATCH /api/deployments/<uuid>/schedules/<uuid>` → `PATCH /deployments/{id}/schedules/{id}`."""
    path = path.split("?", 1)[0]
    path = path[len("/api") :] if path.startswith("/api/") else path
    path = UUID_PATTERN.sub("{id}", path)
    for name in sorted(names, key=len, reverse=True):
        path = path.replace(name, "{name}")
    return f"{method} {path}"


# ------------------------------------------------------------------------------------------------ the machine


def _meminfo_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def docker_version() -> dict[str, Any] | None:
    try:
        import docker

        client = docker.from_env(timeout=10)
        info = client.version()
        return {
            "server": info.get("Version"),
            "api": info.get("ApiVersion"),
            "client_sdk": docker.__version__,
            "storage_driver": client.info().get("Driver"),
            "cgroup_version": client.info().get("CgroupVersion"),
        }
    except Exception as exc:  # the image/worker benchmarks fail on their own if Docker is missing
        return {"error": str(exc)}


def machine_info() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_mb": _meminfo_mb(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "prefect": _version("prefect"),
        "pulumi_sdk": _version("pulumi"),
        "docker": docker_version(),
    }


def loadavg() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def other_containers() -> int | None:
    """Running containers that are not ours: other engineers' tests share this daemon."""
    try:
        import docker

        containers = docker.from_env(timeout=10).containers.list()
    except Exception:
        return None
    return sum(1 for c in containers if not c.name.startswith(PREFIX))


class LoadMonitor:
    """Samples the 1-minute load average (and other people's running containers) during a benchmark,
    so that the result files say how busy the shared machine was while they were measured."""

    def __init__(self, every_seconds: float = 10.0) -> None:
        self.every = every_seconds
        self.samples: list[tuple[float, float | None, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-load", daemon=True)
        self._started = time.monotonic()

    def _run(self) -> None:
        while True:
            self.samples.append((time.monotonic() - self._started, loadavg(), other_containers()))
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> LoadMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def report(self) -> dict[str, Any]:
        loads = [s[1] for s in self.samples if s[1] is not None]
        others = [s[2] for s in self.samples if s[2] is not None]
        return {
            "loadavg_1m": summary(loads, 2),
            "other_running_containers": summary(others, 0),
            "note": f"{os.cpu_count()} cores shared with other engineers' test runs",
        }


# ------------------------------------------------------------------------------------------------ results


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)
    return path


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record_run(name: str, measure: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], Path]:
    """Run `measure` while a LoadMonitor samples the machine and write benchmarks/results/<name>.json: what it
    returned, between the benchmark's name, start time and machine and the load and duration of the run.
    Returns the results and the file."""
    started = time.perf_counter()
    results: dict[str, Any] = {"benchmark": name, "started_at": now_iso(), "machine": machine_info()}
    with LoadMonitor() as load:
        results.update(measure())
    results["load"] = load.report()
    results["duration_seconds"] = round(time.perf_counter() - started, 1)
    return results, write_results(name, results)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def targets_table(targets: Sequence[dict[str, Any]]) -> str:
    """The `target | measured | met?` table that ends every report."""
    return md_table(
        ["target", "measured", "met?"], [[t["target"], t["measured"], met(t["met"])] for t in targets]
    )


# ------------------------------------------------------------------------------------------------ services


@contextlib.contextmanager
def prefect_server(tag: str) -> Iterator[Any]:
    """A real `prefect server start` on a free port with its own PREFECT_HOME, stopped and removed after."""
    from tests.support.prefect_server import PrefectServer

    home = Path(tempfile.mkdtemp(prefix=f"bench-{tag}-server-"))
    server = PrefectServer(home=home)
    try:
        started = time.perf_counter()
        server.start()
        server.start_seconds = time.perf_counter() - started  # type: ignore[attr-defined]
        yield server
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def copy_project(destination: Path) -> Path:
    """A working copy of the repository as a user's checkout has it (no venv, VCS or caches)."""
    ignore = shutil.ignore_patterns(
        ".venv", ".git", ".*cache", "__pycache__", ".pulumi", "benchmarks", "*.pyc"
    )
    shutil.copytree(REPO_ROOT, destination, ignore=ignore)
    return destination
