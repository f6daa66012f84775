"""A real `prefect server start` for tests: free port, throwaway PREFECT_HOME, stopped by PID.

The server listens on 0.0.0.0 so that containers reach it through `host.docker.internal` (host-gateway);
tests on the host use 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

START_TIMEOUT_SECONDS = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PrefectServer:
    """One server process; `restart()` keeps its database (same PREFECT_HOME and port)."""

    home: Path
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def log_path(self) -> Path:
        return self.home / "server.log"

    def server_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_UI_ENABLED="false",
            # Runs of deployments created by tests are started by workers, not by late-run marking.
            PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED="false",
            PREFECT_LOGGING_SERVER_LEVEL="WARNING",
        )
        env.update(self.extra_env)
        return env

    def start(self) -> PrefectServer:
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "0.0.0.0",
                "--port",
                str(self.port),
            ],
            env=self.server_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() also ends uvicorn's children
        )
        self.wait_healthy()
        return self

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"prefect server exited with {self.process.returncode}; log: {self.log_path}"
                )
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"prefect server not healthy after {START_TIMEOUT_SECONDS}s; log: {self.log_path}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()


class PatientTransport(httpx.HTTPTransport):
    """For the tests' own direct clients: ask again, as Prefect's client does, when the server is momentarily
    busy (a SQLite-backed server answers 503 "database is locked" while runs and workers write at once)."""

    BUSY = frozenset({429, 503})
    ATTEMPTS = 8

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(self.ATTEMPTS - 1):
            response = super().handle_request(request)
            if response.status_code not in self.BUSY:
                return response
            response.close()
            time.sleep(1)
        return super().handle_request(request)
