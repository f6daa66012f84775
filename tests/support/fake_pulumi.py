"""A recording stand-in for the `pulumi` CLI, for the tests of the Makefile and of the README's commands.

The Pulumi CLI cannot be installed on the machines this is built on. `install(bin_dir, state_dir)` puts an
executable `pulumi` in `bin_dir` that appends one JSON line per call to `state_dir/calls.jsonl` (argv, working
directory, the backend and passphrase variables, what it read on stdin) and answers the few commands the Makefile
and the README use the way the CLI does, from its source (pulumi/pulumi):

* which backend: PULUMI_BACKEND_URL when set, else the stored login, which is Pulumi Cloud for a new user
  (`pkg/workspace/creds.go`, GetCurrentCloudURLWithSource). Stacks are kept per backend, so a stack created on
  one backend is not found on another;
* the passphrase: on a self-managed backend (file://, s3://, gs://, azblob://), whose default secrets provider is
  the passphrase, creating a stack, `config set --secret`, reading a secret and `up`/`destroy` need
  PULUMI_CONFIG_PASSPHRASE (which may be empty, and then wins) or a readable PULUMI_CONFIG_PASSPHRASE_FILE;
  without either, a non-interactive call fails with the CLI's message (`pkg/secrets/passphrase/manager.go`,
  readPassphrase). Pulumi Cloud encrypts with the service and needs none;
* `stack select --create NAME`, `stack init NAME`, `stack select NAME`; `--stack/-s` or the selected stack,
  else "no stack selected" (`pkg/cmd/pulumi/stack/io.go`);
* `config get KEY` prints the value (a secret decrypted) or fails with "configuration key '…' not found for stack
  '…'"; `config set [--secret] KEY [VALUE]` takes the value from stdin when it is not on the command line and
  drops one trailing newline (`pkg/cmd/pulumi/config/config.go`, configSetCmd.Run and getConfig). Plain values
  of the committed `Pulumi.<stack>.yaml` in the working directory are the starting config;
* `up` / `destroy`: they need `--yes` unless a person answers the prompt (FAKE_PULUMI_INTERACTIVE=1 stands for
  one at a terminal); both probe the Prefect API the stack's config names, with and without the stack's auth
  string, so a test can tell whether the server was up and took that login when they ran.

Not modelled: the program, the engine, state files and previews; encryption (values are kept in this
directory's JSON, and the stack file is not rewritten); any other command fails loudly.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

CLOUD_BACKEND = "https://api.pulumi.com"
SELF_MANAGED_SCHEMES = ("file://", "s3://", "gs://", "azblob://")
PASSPHRASE_ERROR = (
    "error: passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE "
    "environment variables"
)
RECORDED_ENV = ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")


def install(bin_dir: Path, state_dir: Path) -> Path:
    """Write the `pulumi` executable (this module run by this interpreter) and return its path."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    executable = bin_dir / "pulumi"
    executable.write_text(
        "#!/bin/sh\n"
        f"FAKE_PULUMI_STATE={shlex.quote(str(state_dir))} "
        f'exec {shlex.quote(sys.executable)} {shlex.quote(str(Path(__file__).resolve()))} "$@"\n'
    )
    executable.chmod(0o755)
    return executable


def calls(state_dir: Path) -> list[dict[str, Any]]:
    """Every recorded call, oldest first."""
    log = state_dir / "calls.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


class CliError(Exception):
    pass


class FakePulumi:
    def __init__(self, state_dir: Path, environ: dict[str, str]) -> None:
        self.state_dir = state_dir
        self.env = environ
        self.store_path = state_dir / "store.json"
        self.store: dict[str, Any] = (
            json.loads(self.store_path.read_text()) if self.store_path.exists() else {"backends": {}}
        )
        self.backend_url = environ.get("PULUMI_BACKEND_URL") or CLOUD_BACKEND
        self.backend: dict[str, Any] = self.store["backends"].setdefault(
            self.backend_url, {"stacks": {}, "current": None}
        )

    def save(self) -> None:
        self.store_path.write_text(json.dumps(self.store, indent=1))

    # --- what the CLI checks -------------------------------------------------------------------------------

    def require_passphrase(self) -> None:
        if not self.backend_url.startswith(SELF_MANAGED_SCHEMES):
            return  # Pulumi Cloud keeps secrets with the service
        if "PULUMI_CONFIG_PASSPHRASE" in self.env:
            return
        phrase_file = self.env.get("PULUMI_CONFIG_PASSPHRASE_FILE")
        if phrase_file:
            if not Path(phrase_file).is_file():
                raise CliError("error: unable to read PULUMI_CONFIG_PASSPHRASE_FILE")
            return
        raise CliError(PASSPHRASE_ERROR)

    def stack_name(self, options: dict[str, str]) -> str:
        name = options.get("stack") or self.backend["current"]
        if not name:
            raise CliError("error: no stack selected; please use `pulumi stack select` to choose one")
        if name not in self.backend["stacks"]:
            raise CliError(f"error: no stack named '{name}' found")
        return str(name)

    def create_stack(self, name: str) -> None:
        self.require_passphrase()
        self.backend["stacks"][name] = {"config": committed_config(name)}

    # --- the commands --------------------------------------------------------------------------------------

    def run(self, args: list[str], stdin: str | None) -> str:
        positional, options = parse(args)
        command = positional[:2] if positional[:1] in (["stack"], ["config"]) else positional[:1]
        rest = positional[len(command) :]
        if command == ["stack", "select"] or command == ["stack", "init"]:
            (name,) = rest
            if name not in self.backend["stacks"]:
                if command == ["stack", "select"] and "create" not in options:
                    raise CliError(f"error: no stack named '{name}' found")
                self.create_stack(name)
            elif command == ["stack", "init"]:
                raise CliError(f"error: stack '{name}' already exists")
            self.backend["current"] = name
            return f"Created stack '{name}'\n" if command == ["stack", "init"] else ""
        if command == ["config", "get"]:
            (key,) = rest
            stack = self.stack_name(options)
            entry = self.backend["stacks"][stack]["config"].get(key)
            if entry is None:
                raise CliError(f"error: configuration key '{key}' not found for stack '{stack}'")
            if entry["secret"]:
                self.require_passphrase()
            return f"{entry['value']}\n"
        if command == ["config", "set"]:
            stack = self.stack_name(options)
            key, value = rest[0], rest[1] if len(rest) == 2 else None
            if value is None:
                if stdin is None:
                    raise CliError("error: config value must be specified in non-interactive mode")
                value = stdin[:-1] if stdin.endswith("\n") else stdin
            secret = "secret" in options
            if secret:
                self.require_passphrase()
            self.backend["stacks"][stack]["config"][key] = {"value": value, "secret": secret}
            return ""
        if command in (["up"], ["destroy"]):
            if "yes" not in options and "y" not in options and self.env.get("FAKE_PULUMI_INTERACTIVE") != "1":
                raise CliError(
                    "error: --yes must be passed in to proceed when running in non-interactive mode"
                )
            self.stack_name(options)
            self.require_passphrase()
            return ""
        raise CliError(f"fake pulumi: unsupported command {args!r}")

    def probe(self, args: list[str]) -> dict[str, Any] | None:
        """For `up`/`destroy`: was the Prefect API of the stack's config up, and did it take the stack's login?"""
        positional, options = parse(args)
        if positional[:1] not in (["up"], ["destroy"]):
            return None
        import httpx

        config = self.backend["stacks"][self.stack_name(options)]["config"]
        api_url = config.get("prefect:apiUrl", {}).get("value")
        if not api_url:
            return None
        auth = config.get("prefect:authString", {}).get("value")
        result: dict[str, Any] = {"api_url": api_url}
        for label, headers in (
            ("without_login", {}),
            ("with_stack_login", {"Authorization": "Basic " + base64.b64encode(str(auth).encode()).decode()}),
        ):
            try:
                result[label] = httpx.get(f"{api_url}/admin/version", headers=headers, timeout=5).status_code
            except httpx.HTTPError as error:
                result[label] = type(error).__name__
        return result


def parse(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """Positional arguments and `--flag [value]` options (`-s` is `--stack`)."""
    positional: list[str] = []
    options: dict[str, str] = {}
    with_value = {"stack", "s"}
    items = iter(args)
    for arg in items:
        if arg.startswith("-"):
            name, _, value = arg.lstrip("-").partition("=")
            if name in with_value and not value:
                value = next(items, "")
            options["stack" if name == "s" else name] = value
        else:
            positional.append(arg)
    return positional, options


def committed_config(stack: str) -> dict[str, dict[str, Any]]:
    """The plain values of `Pulumi.<stack>.yaml` in the working directory, as the CLI reads them."""
    import yaml

    path = Path.cwd() / f"Pulumi.{stack}.yaml"
    if not path.exists():
        return {}
    document = yaml.safe_load(path.read_text()) or {}
    return {
        key: {"value": str(value), "secret": False}
        for key, value in (document.get("config") or {}).items()
        if not isinstance(value, dict)
    }


def main() -> int:
    state_dir = Path(os.environ["FAKE_PULUMI_STATE"])
    args = sys.argv[1:]
    stdin = None if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    fake = FakePulumi(state_dir, dict(os.environ))
    record: dict[str, Any] = {
        "argv": args,
        "cwd": os.getcwd(),
        "env": {name: os.environ[name] for name in RECORDED_ENV if name in os.environ},
        "stdin": stdin or None,
    }
    try:
        record["probe"] = fake.probe(args)
        output = fake.run(args, stdin)
        fake.save()
        record["exit"] = 0
    except CliError as error:
        output, record["exit"] = "", 255
        print(str(error), file=sys.stderr)
    with (state_dir / "calls.jsonl").open("a") as log:
        log.write(json.dumps(record) + "\n")
    sys.stdout.write(output)
    return int(record["exit"])


if __name__ == "__main__":
    sys.exit(main())
