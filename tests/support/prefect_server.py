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
from types import TracebackType
from typing import Self

import httpx

START_TIMEOUT_SECONDS = 120
# What a Prefect server answers when it applied nothing and the client may send the request again: 503 for an
# error its handler calls retryable, a busy SQLite database among them (prefect/server/api/server.py,
# `custom_internal_exception_handler` and `is_client_retryable_exception`); 429 from a rate limit (Cloud).
BUSY_STATUSES = frozenset({429, 503})


def free_port() -> int:
    """A port that was free a moment ago. Another process may take it before the caller binds it: to hold a
    port until a server of ours listens on it, or to have one that refuses connections, use `ReservedPort`."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ReservedPort:
    """A TCP port held bound on every interface, never listening: connections to it are refused, and no other
    process is given it for a port-0 bind or can bind it without SO_REUSEADDR. A server that binds with
    SO_REUSEADDR may take it over (Linux allows two such bindings while neither listens; uvicorn's asyncio
    `create_server` sets it on Unix), so a server started on a reserved port cannot lose the port to a race,
    and `close()` after it listens hands the port to it alone."""

    def __init__(self, port: int = 0) -> None:
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind(("0.0.0.0", port))
        except OSError:
            self._socket.close()
            raise
        self.port = int(self._socket.getsockname()[1])

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass
class PrefectServer:
    """One server process; `restart()` keeps its database (same PREFECT_HOME and port). `port` 0: a free one,
    chosen (and held until the server listens on it) by `start()`."""

    home: Path
    port: int = 0
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
        """Start on `port` (a free one when 0), which stays reserved until this server answers on it."""
        with ReservedPort(self.port) as reserved:
            self.port = reserved.port
            self._launch()
            self.wait_healthy()
        return self

    def _launch(self) -> None:
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

    ATTEMPTS = 8

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(self.ATTEMPTS - 1):
            response = super().handle_request(request)
            if response.status_code not in BUSY_STATUSES:
                return response
            response.close()
            time.sleep(1)
        return super().handle_request(request)
