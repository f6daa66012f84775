"""The dev stack's local Prefect server: start it (or reuse it), stop it, and tell the user how to log in.

The Makefile runs this (`make server`, `make up`, `make down`, `make server-stop`) with the project's Python;
everything it keeps is in one directory (`--dir`, default `.dev-server/`, git-ignored):

    auth         the generated basic-auth string `admin:<random>` (mode 600), made once and kept
    server.json  pid, host and port of the running server
    server.log   the server's output

Why it works this way, from Prefect's own source (prefect 3.9, installed in .venv):

* Auth. With `PREFECT_SERVER_API_AUTH_STRING` set, `prefect/server/api/server.py` (`create_api_app`,
  middleware `token_validation`) answers 401 to every API request without `Authorization: Basic
  base64(<auth string>)`, except GET /api/health and /api/ready; websockets are refused too
  (`prefect/server/utilities/subscriptions.py`, `accept_prefect_socket`). What stays open is the UI's static files
  and /ui-settings, which says `"auth": "BASIC"`: the UI then shows its login form, whose one field takes the whole
  auth string (`ui/assets/Unauthenticated-*.js` stores `btoa(value)` as `prefect-password`).
* The UI's API address. `create_ui_app` serves /ui-settings with `PREFECT_UI_API_URL`, which defaults
  (`prefect/settings/models/root.py`) to PREFECT_API_URL or to http://PREFECT_SERVER_API_HOST:PREFECT_SERVER_API_PORT
  — i.e. :4200 — whatever `--port` said (`prefect/cli/server.py` hands the port to uvicorn only). The relative
  `/api` makes the UI call the host and port the browser opened it on (`ui/assets/useApiConfig-*.js` uses a
  path as is outside development builds).
* Detached without `setsid(1)`, which macOS lacks: the server is started in its own session (`start_new_session`,
  the setsid() system call, POSIX), so neither Ctrl-C in the terminal nor closing it stops the server.
* Not `prefect server start --background`: it pipes the server's output to a process that exits, and the server
  dies at its first log line.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

START_TIMEOUT_SECONDS = 180  # a first start migrates a new database and copies the UI bundles
STOP_TIMEOUT_SECONDS = 20
AUTH_USER = "admin"  # the UI's login field suggests `admin:pass`
ANY_ADDRESS = {"0.0.0.0", "::", ""}


class DevServerError(Exception):
    """Something the user must fix; the message says what and how."""


@dataclass(frozen=True)
class Address:
    host: str  # what the server listens on
    port: int

    @property
    def client_host(self) -> str:
        """Where this machine reaches it: loopback when the server listens on every address."""
        if self.host in ANY_ADDRESS:
            return "127.0.0.1"
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def ui_url(self) -> str:
        return f"http://{self.client_host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"


class StateDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.auth_file = path / "auth"
        self.record_file = path / "server.json"
        self.log_file = path / "server.log"

    def auth_string(self) -> str:
        """The server's login, generated once (only this user can read it) and then kept, so the stack's copy of
        it (the secret prefect:authString) stays valid across restarts."""
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.auth_file.exists():
            value = f"{AUTH_USER}:{secrets.token_urlsafe(24)}"
            fd = os.open(self.auth_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(value)
        value = self.auth_file.read_text().strip()
        if not value or ":" not in value:
            raise DevServerError(
                f"{self.auth_file} must hold `user:password`; delete it to generate a new one"
            )
        return value

    def recorded(self) -> tuple[int, Address] | None:
        try:
            record = json.loads(self.record_file.read_text())
            return int(record["pid"]), Address(str(record["host"]), int(record["port"]))
        except (OSError, ValueError, KeyError):
            return None

    def record(self, pid: int, address: Address) -> None:
        self.record_file.write_text(json.dumps({"pid": pid, "host": address.host, "port": address.port}))

    def forget(self) -> None:
        self.record_file.unlink(missing_ok=True)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n".join("    | " + line for line in text)


def is_prefect_server(pid: int) -> bool:
    """True when `pid` is alive and is a `prefect server start` (a pid left from before a reboot may be reused)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: not the one we started
    # `ps` exists on Linux and macOS alike (no /proc on macOS).
    command = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True).stdout
    return "prefect" in command and "server" in command


def auth_header(auth: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


def answers(address: Address) -> bool:
    try:
        return httpx.get(f"{address.api_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def accepts(address: Address, auth: str) -> bool:
    """The server takes this login (and so is the one started with it)."""
    try:
        response = httpx.get(f"{address.api_url}/admin/version", headers=auth_header(auth), timeout=5)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def port_is_free(address: Address) -> bool:
    """The same bind check `prefect server start` makes before it starts (prefect/cli/server.py)."""
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            address.host or None, address.port, socket.AF_UNSPEC, socket.SOCK_STREAM
        )[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
    except OSError:
        return False
    return True


def server_env(address: Address, auth: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PREFECT_SERVER_API_AUTH_STRING=auth,
        PREFECT_UI_API_URL="/api",
        # Links the server itself writes (e.g. `ui_url` in automation templates) point where the user looks.
        PREFECT_UI_URL=address.ui_url,
    )
    return env


def wait_until_up(process: subprocess.Popen[bytes] | None, address: Address, state: StateDir) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise DevServerError(
                f"the Prefect server exited with status {process.returncode}; "
                f"the end of {state.log_file}:\n{state.log_tail()}"
            )
        if answers(address):
            return
        time.sleep(0.5)
    raise DevServerError(
        f"the Prefect server did not answer on {address.api_url} within {START_TIMEOUT_SECONDS} s; "
        f"see {state.log_file}:\n{state.log_tail()}"
    )


def start(state: StateDir, address: Address) -> str:
    """Start the server, or reuse the one this directory records; returns what the user should read."""
    auth = state.auth_string()
    recorded = state.recorded()
    if recorded and is_prefect_server(recorded[0]):
        pid, running = recorded
        if running != address:
            raise DevServerError(
                f"the dev server already runs on {running.host}:{running.port} (pid {pid}); "
                f"run `make server-stop` first to start it on {address.host}:{address.port}"
            )
        wait_until_up(None, running, state)
        if not accepts(running, auth):
            raise DevServerError(
                f"the server on {running.api_url} refuses the login in {state.auth_file}; "
                "run `make server-stop` and start it again"
            )
        return f"Prefect server already running (pid {pid}).\n{login_text(state, address)}"
    state.forget()
    if not port_is_free(address):
        raise DevServerError(
            f"port {address.port} on {address.host} is already in use by another program (not a server this "
            f"Makefile started with its login): stop it, or pick another port, e.g. `make up PREFECT_PORT=4300`. "
            f"A server left by an older `make server` stops with: kill -- -$(cat .prefect-server.pid)"
        )
    command = [sys.executable, "-m", "prefect", "server", "start"]
    command += ["--host", address.host, "--port", str(address.port)]
    state.log_file.parent.mkdir(parents=True, exist_ok=True)
    with state.log_file.open("ab") as log:
        process = subprocess.Popen(
            command,
            env=server_env(address, auth),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    state.record(process.pid, address)
    try:
        wait_until_up(process, address, state)
    except DevServerError:
        stop(state)
        raise
    return f"Prefect server started (pid {process.pid}, log {state.log_file}).\n{login_text(state, address)}"


def stop(state: StateDir) -> str:
    recorded = state.recorded()
    if recorded is None or not is_prefect_server(recorded[0]):
        state.forget()
        return "No dev Prefect server is running."
    pid, _ = recorded
    # Its own session, so its process group: uvicorn and the services it started go with it.
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline and is_prefect_server(pid):
        time.sleep(0.2)
    if is_prefect_server(pid):
        os.killpg(pid, signal.SIGKILL)
    state.forget()
    return f"Prefect server (pid {pid}) stopped."


def login_text(state: StateDir, address: Address) -> str:
    return (
        f"Prefect UI: {address.ui_url}  (server listening on {address.host}:{address.port}, API {address.api_url})\n"
        f"Log in with: {state.auth_string()}\n"
        f"  (generated once into {state.auth_file}; the dev stack keeps it as the secret prefect:authString)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop", "info", "api-url"])
    parser.add_argument("--dir", type=Path, default=Path(".dev-server"))
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=4200)
    args = parser.parse_args(argv)
    state, address = StateDir(args.dir), Address(args.host, args.port)
    try:
        if args.command == "start":
            print(start(state, address))
        elif args.command == "stop":
            print(stop(state))
        elif args.command == "info":
            print(login_text(state, address))
        else:
            print(address.api_url)
    except DevServerError as error:
        print(f"dev server: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
