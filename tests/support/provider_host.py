"""Drive Pulumi dynamic providers through the process the Pulumi engine itself starts for them.

`python -u -m pulumi.dynamic` serves the ResourceProvider gRPC protocol, unpickles the provider from each
request's `__provider` property and calls its methods. Talking to it the way the engine does exercises what
a unit test of the provider class cannot: pickling by reference, `configure()` with the stack config,
the wire format of properties, and the error text users see.

    with ProviderHost(env=...) as host:
        host.configure({"prefect:apiUrl": url, "prefect:apiKey": key}, secret_keys={"prefect:apiKey"})
        pools = host.resource(WorkPoolProvider(), "prefect:WorkPool")
        checked = pools.check({"name": "p"})
        pool_id, outs = pools.create(checked.inputs)

The host caches each provider object (by its pickled text) and configures it once, on first use, with the
config of the most recent Configure call: configure a host once, before any other call, like the engine.
"""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import grpc
from google.protobuf import struct_pb2
from pulumi.dynamic import ResourceProvider
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PROJECT = "suggest-activity"
DEFAULT_STACK = "test"
PROVIDER_KEY = "__provider"
START_TIMEOUT_SECONDS = 60.0
CALL_TIMEOUT_SECONDS = 180.0
PREFECT_CONNECTION_ENV = frozenset({"PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING"})


class ProviderCallError(Exception):
    """A provider method raised; `message` is the last line of its traceback (what the engine shows)."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        self.method = method
        self.code = code
        self.details = details
        lines = [line for line in details.strip().splitlines() if line.strip()]
        self.message = lines[-1].strip() if lines else code.name
        super().__init__(f"{method} failed ({code.name}): {self.message}")


@dataclass(frozen=True)
class CheckFailure:
    property: str
    reason: str


class CheckResult(dict[str, Any]):
    """The checked inputs (a dict: what the engine hands to create/diff/update) and the check failures."""

    def __init__(self, inputs: Mapping[str, Any], failures: Iterable[CheckFailure] = ()) -> None:
        super().__init__(inputs)
        self.failures = list(failures)

    @property
    def inputs(self) -> dict[str, Any]:
        return dict(self)

    def reasons(self, prop: str) -> list[str]:
        return [f.reason for f in self.failures if f.property == prop]

    @property
    def properties(self) -> set[str]:
        return {f.property for f in self.failures}


class CheckFailedError(Exception):
    """Check answered failures (the engine stops there and prints each one with its property)."""

    def __init__(self, urn: str, result: CheckResult) -> None:
        self.urn = urn
        self.result = result
        self.failures = result.failures
        lines = "\n".join(f"  {f.property}: {f.reason}" for f in result.failures)
        super().__init__(f"{urn} has invalid inputs:\n{lines}")


@dataclass(frozen=True)
class DiffResult:
    changes: bool | None  # None: the provider could not tell (DIFF_UNKNOWN)
    replaces: list[str]
    delete_before_replace: bool


@dataclass(frozen=True)
class ReadResult:
    id: str  # "" when the provider reports the resource gone
    outputs: dict[str, Any]
    inputs: dict[str, Any] | None

    @property
    def gone(self) -> bool:
        return self.id == ""


def host_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without Prefect connection variables (so that tests prove settings come
    from `configure()`), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in PREFECT_CONNECTION_ENV}
    env.update(extra or {})
    return env


def secret(value: Any) -> dict[str, Any]:
    """A value marked secret on the wire (how the engine sends `pulumi config set --secret` values)."""
    return {rpc._special_sig_key: rpc._special_secret_sig, "value": value}


def provider_property(provider: ResourceProvider | str) -> str:
    """The `__provider` property for a provider object, exactly as `pulumi.dynamic.Resource` computes it."""
    return provider if isinstance(provider, str) else serialize_provider(provider)


def to_struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(dict(props))
    return struct


def from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    result: dict[str, Any] = rpc.deserialize_properties(struct, keep_unknowns=True)
    return result


class ProviderHost:
    """One `python -m pulumi.dynamic` process and a gRPC stub to it."""

    def __init__(
        self,
        cwd: Path = REPO_ROOT,
        *,
        env: Mapping[str, str] | None = None,
        project: str = DEFAULT_PROJECT,
        stack: str = DEFAULT_STACK,
        python: str = sys.executable,
    ) -> None:
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PULUMI_PROJECT", project)
        self.cwd = cwd
        self.project = project
        self.stack = stack
        self.python = python
        self.process: subprocess.Popen[bytes] | None = None
        self._channel: grpc.Channel | None = None
        self._stub: provider_pb2_grpc.ResourceProviderStub | None = None
        # The host's stderr (tracebacks) goes to a file that outlives the process, for failure reports.
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="pulumi-dynamic-host-", suffix=".log", delete=False
        )

    # -- process lifecycle -------------------------------------------------------------------------

    def start(self) -> ProviderHost:
        self.process = subprocess.Popen(
            [self.python, "-u", "-m", "pulumi.dynamic", "127.0.0.1:0"],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], START_TIMEOUT_SECONDS)
        line = self.process.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(
                f"provider host did not print its port (got {line!r}); log:\n{self.log_text()}"
            )
        # Anything the providers print later must not fill the pipe and block the host.
        threading.Thread(target=self._drain, args=(self.process.stdout,), daemon=True).start()
        self._channel = grpc.insecure_channel(f"127.0.0.1:{int(line)}")
        grpc.channel_ready_future(self._channel).result(timeout=START_TIMEOUT_SECONDS)
        self._stub = provider_pb2_grpc.ResourceProviderStub(self._channel)
        return self

    def _drain(self, stream: IO[bytes]) -> None:
        try:
            for chunk in iter(lambda: stream.read1(4096), b""):  # type: ignore[attr-defined]
                self._log.write(chunk)
        except (OSError, ValueError):
            pass  # closed by stop()

    def stop(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()  # this process only, by its own handle
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process is not None and process.stdout is not None:
            process.stdout.close()
        self._log.close()

    def __enter__(self) -> ProviderHost:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def log_text(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    # -- protocol ----------------------------------------------------------------------------------

    def urn(self, type_token: str, name: str) -> str:
        """`type_token` like `prefect:WorkPool` → the URN of a `pulumi-python:dynamic/prefect:WorkPool`."""
        full_type = type_token if type_token.startswith("pulumi-python:") else self.dynamic_type(type_token)
        return f"urn:pulumi:{self.stack}::{self.project}::{full_type}::{name}"

    @staticmethod
    def dynamic_type(type_token: str) -> str:
        return f"pulumi-python:dynamic/{type_token}"

    def configure(self, config: Mapping[str, Any], secret_keys: Iterable[str] = ()) -> bool:
        """What the engine sends at startup: the WHOLE stack config, namespaced keys, secrets marked. Returns
        the host's `acceptSecrets` answer (False: the engine then strips secrets, see engine_secrets.py)."""
        secrets = set(secret_keys)
        args = {k: secret(v) if k in secrets else v for k, v in config.items()}
        response = self._call(
            "Configure",
            provider_pb2.ConfigureRequest(args=to_struct(args), acceptSecrets=True, acceptResources=True),
        )
        return bool(response.acceptSecrets)

    def check(
        self, urn: str, olds: Mapping[str, Any], news: Mapping[str, Any], *, allow_failures: bool = False
    ) -> CheckResult:
        """The checked inputs; raises `CheckFailedError` on failures unless `allow_failures`."""
        response = self._call(
            "Check", provider_pb2.CheckRequest(urn=urn, olds=to_struct(olds), news=to_struct(news))
        )
        result = CheckResult(
            from_struct(response.inputs), [CheckFailure(f.property, f.reason) for f in response.failures]
        )
        if result.failures and not allow_failures:
            raise CheckFailedError(urn, result)
        return result

    def diff(self, urn: str, id_: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> DiffResult:
        response = self._call(
            "Diff", provider_pb2.DiffRequest(urn=urn, id=id_, olds=to_struct(olds), news=to_struct(news))
        )
        changes = {
            provider_pb2.DiffResponse.DIFF_NONE: False,
            provider_pb2.DiffResponse.DIFF_SOME: True,
        }.get(response.changes)
        return DiffResult(changes, list(response.replaces), bool(response.deleteBeforeReplace))

    def create(self, urn: str, properties: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        response = self._call("Create", provider_pb2.CreateRequest(urn=urn, properties=to_struct(properties)))
        return response.id, from_struct(response.properties)

    def read(
        self, urn: str, id_: str, properties: Mapping[str, Any], inputs: Mapping[str, Any] | None = None
    ) -> ReadResult:
        request = provider_pb2.ReadRequest(
            urn=urn, id=id_, properties=to_struct(properties), inputs=to_struct(inputs or {})
        )
        response = self._call("Read", request)
        has_inputs = response.HasField("inputs") and len(response.inputs.fields) > 0
        return ReadResult(
            id=response.id,
            outputs=from_struct(response.properties),
            inputs=from_struct(response.inputs) if has_inputs else None,
        )

    def update(self, urn: str, id_: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> dict[str, Any]:
        response = self._call(
            "Update", provider_pb2.UpdateRequest(urn=urn, id=id_, olds=to_struct(olds), news=to_struct(news))
        )
        return from_struct(response.properties)

    def delete(self, urn: str, id_: str, properties: Mapping[str, Any]) -> None:
        self._call("Delete", provider_pb2.DeleteRequest(urn=urn, id=id_, properties=to_struct(properties)))

    def resource(self, provider: ResourceProvider | str, type_token: str) -> BoundResource:
        return BoundResource(self, provider, type_token)

    def _call(self, method: str, request: Any) -> Any:
        if self._stub is None:
            raise RuntimeError("provider host is not running; call start() first")
        try:
            return getattr(self._stub, method)(request, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
            details = exc.details() if hasattr(exc, "details") else str(exc)
            raise ProviderCallError(method, code, details or "") from None


class BoundResource:
    """One resource type served by one provider object: adds `__provider` and URNs like the engine does.

    `olds` passed to diff/update/read are previous OUTPUTS (which carry `__provider`), as in the engine.
    """

    def __init__(self, host: ProviderHost, provider: ResourceProvider | str, type_token: str) -> None:
        self.host = host
        self.provider = provider_property(provider)
        self.type_token = type_token

    def urn(self, name: str) -> str:
        return self.host.urn(self.type_token, name)

    def props(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {**values, PROVIDER_KEY: self.provider}

    def check(
        self,
        news: Mapping[str, Any],
        olds: Mapping[str, Any] | None = None,
        *,
        name: str = "r",
        allow_failures: bool = True,
    ) -> CheckResult:
        result = self.host.check(
            self.urn(name), self.props(olds or {}), self.props(news), allow_failures=allow_failures
        )
        result.pop(PROVIDER_KEY, None)
        return result

    def checked(self, news: Mapping[str, Any], *, name: str = "r") -> dict[str, Any]:
        """Check that must pass: the inputs the engine would hand to create/diff/update."""
        return self.check(news, name=name, allow_failures=False).inputs

    def diff(
        self, id_: str, olds: Mapping[str, Any], news: Mapping[str, Any], *, name: str = "r"
    ) -> DiffResult:
        return self.host.diff(self.urn(name), id_, self.props(olds), self.props(news))

    def create(self, inputs: Mapping[str, Any], *, name: str = "r") -> tuple[str, dict[str, Any]]:
        id_, outputs = self.host.create(self.urn(name), self.props(inputs))
        outputs.pop(PROVIDER_KEY, None)
        return id_, outputs

    def read(
        self,
        id_: str,
        properties: Mapping[str, Any],
        *,
        inputs: Mapping[str, Any] | None = None,
        name: str = "r",
    ) -> ReadResult:
        result = self.host.read(
            self.urn(name), id_, self.props(properties), self.props(inputs) if inputs is not None else None
        )
        result.outputs.pop(PROVIDER_KEY, None)
        if result.inputs is not None:
            result.inputs.pop(PROVIDER_KEY, None)
        return result

    def update(
        self, id_: str, olds: Mapping[str, Any], news: Mapping[str, Any], *, name: str = "r"
    ) -> dict[str, Any]:
        outputs = self.host.update(self.urn(name), id_, self.props(olds), self.props(news))
        outputs.pop(PROVIDER_KEY, None)
        return outputs

    def delete(self, id_: str, properties: Mapping[str, Any], *, name: str = "r") -> None:
        self.host.delete(self.urn(name), id_, self.props(properties))


def wire_roundtrip(props: Mapping[str, Any]) -> dict[str, Any]:
    """What a property bag looks like after crossing the wire (ints → floats, nested nulls dropped)."""
    struct = asyncio.run(rpc.serialize_properties(dict(props), {}))
    return from_struct(struct)
