"""The Makefile's targets and the README's Cloud commands, run for real in a copy of a fresh clone.

What this proves. The local Prefect server part runs for real: `make up` / `make server` start a real
`prefect server start` on the port asked for, detached without setsid(1) (a setsid that fails is first on PATH, as
good as macOS having none), requiring the login they generate and print, with a UI that calls the API on the
address it is opened on; a second run reuses it, `make down` / `make server-stop` stop it, and after a crash (a
reboot) `make up` starts it again. The `pulumi` side runs against a recording stand-in
(tests/support/fake_pulumi.py) that answers the few commands used as the CLI's source says: the tests assert the
sequence of pulumi commands, their backend and passphrase variables, that the stack's Prefect address and login
reach it (the login on stdin, never on a command line), that the server answered with that login at the moment
`pulumi up` / `pulumi destroy` ran, that a stack other than dev refuses an empty passphrase before any pulumi
command, and that the README's Cloud commands, run as written, use the same backend as `make`.

What it cannot prove: what the real CLI does with these commands beyond the behaviour the stand-in models (its
state files, encryption, prompts, the program run by `pulumi up`: tests/test_end_to_end.py applies the program with
the local engine, tests/test_pulumi_cli.py with the real CLI where one exists); and macOS itself (only the absence
of setsid is simulated).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests.support.make_runner import MakeRunner, fresh_clone
from tests.support.prefect_server import free_port
from tests.support.program_harness import REPO_ROOT

pytestmark = pytest.mark.journey(over="dev")  # `make up` … `make down` on one clone and server

DEV_UP = ["stack select --create dev", "up --yes --stack dev"]


def basic(auth: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


def server_pid(runner: MakeRunner) -> int:
    return int(json.loads((runner.dev_server_dir / "server.json").read_text())["pid"])


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (killed, not yet reaped by its parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def pulumi_only(commands: list[str]) -> list[str]:
    """The commands that change something (what `make` did), without the config reads in between."""
    return [c for c in commands if not c.startswith("config get")]


# --- the dev stack: one clone, one server, the journey in order ---------------------------------------------


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeRunner]:
    root = tmp_path_factory.mktemp("make-dev")
    runner = MakeRunner(fresh_clone(root / "clone"), root / "tools", root / "prefect-home")
    yield runner
    runner.make("server-stop", check=False)  # whatever a failed test left running


def test_make_up_on_a_fresh_clone_starts_the_server_then_applies_the_dev_stack(dev: MakeRunner) -> None:
    done = dev.make("up")

    calls = dev.pulumi_calls()
    assert pulumi_only(dev.pulumi_commands()) == [
        "stack select --create dev",
        f"config set prefect:apiUrl {dev.api_url} --stack dev",  # not the committed :4200
        "config set --secret prefect:authString --stack dev",
        "up --yes --stack dev",
    ]
    for call in calls:
        assert call["exit"] == 0 or call["argv"][:2] == ["config", "get"], call  # get: "not found" at first
        assert call["env"] == {
            "PULUMI_BACKEND_URL": f"file://{dev.project_dir}/.pulumi",
            "PULUMI_CONFIG_PASSPHRASE": "",
        }
        assert dev.auth_string not in " ".join(call["argv"])  # never on a command line
    assert (dev.project_dir / ".pulumi").is_dir()
    (secret,) = [c for c in calls if "--secret" in c["argv"]]
    assert secret["stdin"] == dev.auth_string
    # When `pulumi up` ran, the server answered on the stack's address and took the stack's login, only that.
    (up,) = [c for c in calls if c["argv"][0] == "up"]
    assert up["probe"] == {"api_url": dev.api_url, "without_login": 401, "with_stack_login": 200}
    # The user is told where the UI is and how to log in.
    assert f"Prefect UI: http://127.0.0.1:{dev.port}" in done.stdout
    assert f"Log in with: {dev.auth_string}" in done.stdout


def test_the_server_is_detached_without_setsid_and_its_login_is_private(dev: MakeRunner) -> None:
    assert dev.setsid_calls() == []
    pid = server_pid(dev)
    # Its own session: Ctrl-C in the terminal or closing it (signals to make's session) does not reach it.
    assert os.getsid(pid) == pid != os.getsid(0)
    assert (dev.dev_server_dir / "auth").stat().st_mode & 0o777 == 0o600
    assert re.fullmatch(r"admin:[A-Za-z0-9_-]{32}", dev.auth_string)


def test_the_api_needs_the_login_and_the_ui_calls_the_address_it_is_opened_on(dev: MakeRunner) -> None:
    api = dev.api_url
    assert httpx.get(f"{api}/health").status_code == 200  # left open by Prefect for probes
    assert httpx.post(f"{api}/flows/filter", json={}).status_code == 401
    assert httpx.post(f"{api}/flows/filter", json={}, headers=basic("admin:wrong")).status_code == 401
    assert httpx.post(f"{api}/flows/filter", json={}, headers=basic(dev.auth_string)).status_code == 200

    ui_settings = httpx.get(f"http://127.0.0.1:{dev.port}/ui-settings").json()
    assert ui_settings["auth"] == "BASIC"  # the UI shows its login form
    for page in (f"http://127.0.0.1:{dev.port}/deployments", f"http://localhost:{dev.port}/work-pools"):
        # The UI resolves its API address against the page it is on (a browser test shows it working).
        origin = page.rsplit("/", 1)[0]
        assert urljoin(page, ui_settings["api_url"]) == f"{origin}/api"
        html = httpx.get(page, headers={"Accept": "text/html"})  # as a browser navigates
        assert html.status_code == 200 and '<div id="app"' in html.text


def test_make_server_again_reuses_the_running_server(dev: MakeRunner) -> None:
    pid = server_pid(dev)
    done = dev.make("server")
    assert "already running" in done.stdout
    assert f"Log in with: {dev.auth_string}" in done.stdout
    assert server_pid(dev) == pid


def test_make_server_on_another_port_says_to_stop_the_running_one_first(dev: MakeRunner) -> None:
    other = free_port()
    done = dev.make("server", f"PREFECT_PORT={other}", check=False)
    assert done.returncode != 0
    assert f"already runs on 0.0.0.0:{dev.port}" in done.stderr
    assert "make server-stop" in done.stderr
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", other)) != 0  # nothing was started there


def test_a_second_make_up_writes_no_stack_config(dev: MakeRunner) -> None:
    before = len(dev.pulumi_calls())
    dev.make("up")
    assert pulumi_only(dev.pulumi_commands()[before:]) == DEV_UP


def test_make_up_after_a_reboot_starts_the_server_again(dev: MakeRunner) -> None:
    pid = server_pid(dev)
    os.killpg(pid, signal.SIGKILL)  # gone without cleaning up, like after a reboot: server.json stays
    deadline = time.monotonic() + 30
    while is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    before = len(dev.pulumi_calls())

    dev.make("up")

    assert server_pid(dev) != pid
    calls = dev.pulumi_calls()[before:]
    assert pulumi_only([" ".join(c["argv"]) for c in calls]) == DEV_UP  # same login, same address
    assert calls[-1]["probe"] == {"api_url": dev.api_url, "without_login": 401, "with_stack_login": 200}


def test_make_down_destroys_while_the_server_is_up_then_stops_it(dev: MakeRunner) -> None:
    pid = server_pid(dev)
    before = len(dev.pulumi_calls())
    done = dev.make("down")

    calls = dev.pulumi_calls()[before:]
    assert [" ".join(c["argv"]) for c in calls][-1] == "destroy --yes --stack dev"
    assert calls[-1]["probe"] == {"api_url": dev.api_url, "without_login": 401, "with_stack_login": 200}
    assert "stopped" in done.stdout
    assert not is_running(pid)
    assert not (dev.dev_server_dir / "server.json").exists()
    assert dev.make("server-stop").stdout.strip() == "No dev Prefect server is running."


# --- refusals, other stacks and the README ------------------------------------------------------------------


@pytest.fixture
def runner(tmp_path: Path) -> MakeRunner:
    return MakeRunner(fresh_clone(tmp_path / "clone"), tmp_path / "tools", tmp_path / "prefect-home")


def test_make_server_refuses_a_port_another_program_holds(runner: MakeRunner) -> None:
    with socket.socket() as other_program:
        other_program.bind(("0.0.0.0", runner.port))
        other_program.listen()
        done = runner.make("server", check=False)
    assert done.returncode != 0
    assert f"port {runner.port} on 0.0.0.0 is already in use by another program" in done.stderr
    assert "PREFECT_PORT=" in done.stderr
    assert not (runner.dev_server_dir / "server.json").exists()


@pytest.mark.parametrize("target", ["up", "setup", "down"])
@pytest.mark.parametrize(
    "passphrase",
    [{}, {"PULUMI_CONFIG_PASSPHRASE": ""}, {"PULUMI_CONFIG_PASSPHRASE_FILE": "empty"}],
    ids=["none", "empty-variable", "empty-file"],
)
def test_a_stack_other_than_dev_refuses_an_empty_passphrase_before_pulumi_runs(
    runner: MakeRunner, tmp_path: Path, target: str, passphrase: dict[str, str]
) -> None:
    if passphrase.get("PULUMI_CONFIG_PASSPHRASE_FILE") == "empty":
        (tmp_path / "empty").write_text("\n")
        passphrase = {"PULUMI_CONFIG_PASSPHRASE_FILE": str(tmp_path / "empty")}
    done = runner.make(target, "STACK=prod", check=False, **passphrase)
    assert done.returncode != 0
    assert "Refusing stack 'prod'" in done.stderr
    assert "export PULUMI_CONFIG_PASSPHRASE_FILE=" in done.stderr
    assert "export PULUMI_BACKEND_URL=" in done.stderr
    assert runner.pulumi_calls() == []
    assert not runner.dev_server_dir.exists()  # and no local server either


def test_a_stack_other_than_dev_with_a_passphrase_runs_pulumi_and_no_local_server(
    runner: MakeRunner, tmp_path: Path
) -> None:
    phrase = tmp_path / "prod.passphrase"
    phrase.write_text("correct horse battery staple\n")
    runner.make("up", "STACK=prod", PULUMI_CONFIG_PASSPHRASE_FILE=str(phrase))
    runner.make("down", "STACK=prod", PULUMI_CONFIG_PASSPHRASE_FILE=str(phrase))

    assert runner.pulumi_commands() == [
        "stack select --create prod",
        "up --yes --stack prod",
        "destroy --yes --stack prod",
    ]
    for call in runner.pulumi_calls():
        assert call["exit"] == 0, call
        # No empty PULUMI_CONFIG_PASSPHRASE exported: it would win over the file.
        assert call["env"] == {
            "PULUMI_BACKEND_URL": f"file://{runner.project_dir}/.pulumi",
            "PULUMI_CONFIG_PASSPHRASE_FILE": str(phrase),
        }
    assert not runner.dev_server_dir.exists()


def test_a_stack_on_another_backend_is_left_to_pulumi(runner: MakeRunner) -> None:
    runner.make("up", "STACK=prod", PULUMI_BACKEND_URL="https://api.pulumi.com")
    assert runner.pulumi_commands() == ["stack select --create prod", "up --yes --stack prod"]
    assert {c["env"]["PULUMI_BACKEND_URL"] for c in runner.pulumi_calls()} == {"https://api.pulumi.com"}


# What a user types in place of the README's <placeholders>.
PLACEHOLDERS = {
    "<account-id>": "0b6b2f4e-0000-4000-8000-000000000001",
    "<workspace-id>": "1c7c3a5f-0000-4000-8000-000000000002",
    "<org>": "acme",
    "<user>": "robot",
    "<token>": "registry-token",
}


def readme_commands(heading: str) -> str:
    """The first ```bash block after a README heading, its <placeholders> filled in as a user would."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split(f"\n{heading}", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match, f"no bash block under {heading!r}"
    commands = match.group(1)
    for placeholder, value in PLACEHOLDERS.items():
        commands = commands.replace(placeholder, value)
    assert not re.search(r"<[a-z-]+>", commands), f"a placeholder this test does not know: {commands}"
    return commands


def test_the_readme_cloud_commands_run_as_written_on_the_backend_make_uses(
    runner: MakeRunner, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    commands = readme_commands("## Prefect Cloud")
    # A person at a terminal in the clone's root, answering pulumi's prompts.
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", commands],
        cwd=runner.project_dir,
        env=runner.env(HOME=str(home), FAKE_PULUMI_INTERACTIVE="1"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr

    calls = runner.pulumi_calls()
    assert calls[0]["argv"][:2] == ["stack", "init"]
    assert calls[-1]["argv"][0] == "up"
    for call in calls:
        assert call["exit"] == 0, call
        assert call["env"].get("PULUMI_BACKEND_URL") == f"file://{runner.project_dir}/.pulumi", call
        assert "PULUMI_CONFIG_PASSPHRASE" not in call["env"]
        assert Path(call["env"]["PULUMI_CONFIG_PASSPHRASE_FILE"]).read_text().strip()

    # `make up STACK=prod` with the same variables finds that stack (select, no new one) on that backend.
    passphrase_file = calls[0]["env"]["PULUMI_CONFIG_PASSPHRASE_FILE"]
    before = len(calls)
    runner.make("up", "STACK=prod", PULUMI_CONFIG_PASSPHRASE_FILE=passphrase_file)
    assert runner.pulumi_commands()[before:] == ["stack select --create prod", "up --yes --stack prod"]
    state = json.loads((runner.pulumi_state / "store.json").read_text())
    assert list(state["backends"]) == [f"file://{runner.project_dir}/.pulumi"]
