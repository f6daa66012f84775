"""A local engine for tests: runs the REAL Pulumi program and applies what it declares, for real.

The Pulumi CLI cannot run on these machines, so this stands in for the part of `pulumi up` / `pulumi destroy`
that matters to the product: the real `infra.program.main()` runs under the SDK's mock monitor with the real stack
config, and every resource it registers is applied here, its real outputs handed to the resources that depend on it:

* `pulumi-python:dynamic/*` through the providers, in the same gRPC host process the engine starts
  (`python -m pulumi.dynamic`), configured with the stack config first, exactly like the engine;
* `docker:index/image:Image` by building the declared context, Dockerfile and build args (and pushing with the
  declared registry credentials unless `skipPush`);
* `docker:index/container:Container` by creating and starting the container with the declared image, command,
  env, restart policy, healthcheck, hosts, mounts, labels, memory, capabilities and security options, then
  waiting for it to be healthy when `wait` is set.

Given the previous run's record it does what the engine does for each resource: check, then diff against the
recorded outputs, then create, update, replace (delete first) or keep; resources no longer declared are deleted.
`destroy()` deletes everything in reverse order of creation. `refresh()` reads every resource like `pulumi
refresh` and reports the drift; `up(refreshed)` after it is `pulumi up --refresh`. A resource type it does not
know is an error.

Not modelled: the engine's state file and its secret encryption (the record is a Python object), previews,
parallelism (resources are applied as the program registers them), pulumi-docker's own diffing (an Image
is rebuilt when its declared inputs change, a Container replaced when any input changes — both are ForceNew-heavy
in pulumi-docker, and our image tag is the content hash), and pulumi-docker's destroy of images (it keeps tags too).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.types import Healthcheck
from pulumi.runtime import MockResourceArgs
from pulumi.runtime.rpc import is_rpc_secret, unwrap_rpc_secret

from tests.support.docker_env import build_image, push_image
from tests.support.program_harness import ProgramRun, run_program
from tests.support.provider_host import ProviderHost

DYNAMIC_PREFIX = "pulumi-python:dynamic/"
IMAGE = "docker:index/image:Image"
CONTAINER = "docker:index/container:Container"


def reveal(value: Any) -> Any:
    """The plain value: the engine hands providers unwrapped secrets (Configure answers acceptSecrets=False)."""
    if is_rpc_secret(value):
        return reveal(unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


@dataclass
class ResourceRecord:
    typ: str
    name: str
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


@dataclass
class StackRecord:
    """What exists after an `up`, in creation order, and what each resource went through."""

    resources: list[ResourceRecord] = field(default_factory=list)
    actions: dict[str, str] = field(
        default_factory=dict
    )  # resource name -> create|update|replace|same|delete
    exports: dict[str, Any] = field(default_factory=dict)

    def get(self, typ: str, name: str) -> ResourceRecord | None:
        return next((r for r in self.resources if (r.typ, r.name) == (typ, name)), None)

    def of_type(self, typ: str) -> list[ResourceRecord]:
        return [r for r in self.resources if r.typ == typ]


@dataclass(frozen=True)
class Drift:
    """What `pulumi refresh` found for one resource: gone, or outputs that differ from the record."""

    typ: str
    name: str
    gone: bool = False
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # output -> (recorded, actual)


class LocalEngine:
    def __init__(
        self,
        *,
        project_dir: Path,
        stack: str,
        config: dict[str, str],
        secret_keys: list[str],
        docker_client: docker.DockerClient,
        host_logs: list[str] | None = None,
    ) -> None:
        self.project_dir = project_dir
        self.stack = stack
        self.config = config
        self.secret_keys = secret_keys
        self.docker = docker_client
        # When given, everything each provider host printed is appended here (tests scan it for credentials).
        self.host_logs = host_logs

    @contextmanager
    def _provider_host(self) -> Iterator[ProviderHost]:
        host = ProviderHost(self.project_dir, stack=self.stack)
        try:
            with host:
                yield host
        finally:
            if self.host_logs is not None:
                self.host_logs.append(host.log_text())

    # --- the engine's loop ---------------------------------------------------------------------------------

    def up(self, previous: StackRecord | None = None) -> StackRecord:
        """Apply the program; on failure the partial record is attached to the exception as `.record`."""
        previous = previous or StackRecord()
        record = StackRecord()
        steps = _Steps()
        with self._provider_host() as host:
            host.configure(self.config, self.secret_keys)

            def apply(args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
                with steps.step(args.name):
                    resource = self._apply(host, args, previous.get(args.typ, args.name), record)
                return resource.id, resource.outputs

            try:
                run: ProgramRun = run_program(
                    self.config, self.secret_keys, stack=self.stack, project_dir=self.project_dir, apply=apply
                )
            except BaseException as error:
                # Like the engine: start nothing new after a failure, but let what is under way finish and
                # record it, so that a destroy (or the next up) knows everything that exists.
                steps.wait_idle()
                error.record = record  # type: ignore[attr-defined]
                raise
            record.exports = run.exports
            declared = {(r.typ, r.name) for r in record.resources}
            for stale in reversed(previous.resources):
                if (stale.typ, stale.name) not in declared:
                    self._delete(host, stale)
                    record.actions[stale.name] = "delete"
        return record

    def destroy(self, record: StackRecord) -> None:
        with self._provider_host() as host:
            host.configure(self.config, self.secret_keys)
            for resource in reversed(record.resources):
                self._delete(host, resource)
        record.resources.clear()

    def refresh(self, record: StackRecord) -> tuple[StackRecord, list[Drift]]:
        """`pulumi refresh`: read every recorded resource and take what exists as the new record.

        Dynamic resources go through their provider's `read` in the gRPC host (a gone object is dropped; the
        read's outputs, and its inputs when it returns some, replace the recorded ones, as the engine does).
        A container that is no longer running is dropped and removed, like pulumi-docker does with
        `mustRun` (its read deletes a stopped container); images are kept as recorded. Returns the new
        record and, per resource that drifted, what changed. Resources are not modified otherwise.
        """
        refreshed = StackRecord(actions={}, exports=dict(record.exports))
        drifts: list[Drift] = []
        with ProviderHost(self.project_dir, stack=self.stack) as host:
            host.configure(self.config, self.secret_keys)
            for resource in record.resources:
                if resource.typ.startswith(DYNAMIC_PREFIX):
                    urn = host.urn(resource.typ, resource.name)
                    read = host.read(urn, resource.id, resource.outputs, resource.inputs)
                    if read.gone:
                        drifts.append(Drift(resource.typ, resource.name, gone=True))
                        continue
                    changed = _changed(resource.outputs, read.outputs)
                    inputs = read.inputs if read.inputs is not None else resource.inputs
                    current = ResourceRecord(resource.typ, resource.name, read.id, inputs, read.outputs)
                elif resource.typ == CONTAINER and not self._exists(resource):
                    self._delete_docker(resource)
                    drifts.append(Drift(resource.typ, resource.name, gone=True))
                    continue
                else:
                    current, changed = resource, {}
                if changed:
                    drifts.append(Drift(resource.typ, resource.name, changed=changed))
                refreshed.resources.append(current)
                refreshed.actions[resource.name] = "refresh"
        return refreshed, drifts

    def _apply(
        self, host: ProviderHost, args: MockResourceArgs, old: ResourceRecord | None, record: StackRecord
    ) -> ResourceRecord:
        inputs = reveal(dict(args.inputs))
        if args.typ.startswith(DYNAMIC_PREFIX):
            resource, action = self._apply_dynamic(host, args, inputs, old)
        elif args.typ in (IMAGE, CONTAINER):
            resource, action = self._apply_docker(args, inputs, old)
        else:
            raise NotImplementedError(
                f"the local engine does not know resource type {args.typ} ({args.name})"
            )
        record.resources.append(resource)
        record.actions[args.name] = action
        return resource

    def _apply_dynamic(
        self, host: ProviderHost, args: MockResourceArgs, inputs: dict[str, Any], old: ResourceRecord | None
    ) -> tuple[ResourceRecord, str]:
        urn = host.urn(args.typ, args.name)
        checked = host.check(urn, old.inputs if old else {}, inputs).inputs
        if old is None:
            resource_id, outputs = host.create(urn, checked)
            return ResourceRecord(args.typ, args.name, resource_id, checked, outputs), "create"
        diff = host.diff(urn, old.id, old.outputs, checked)
        if diff.replaces:
            host.delete(urn, old.id, old.outputs)  # our providers ask for delete-before-replace
            resource_id, outputs = host.create(urn, checked)
            return ResourceRecord(args.typ, args.name, resource_id, checked, outputs), "replace"
        if diff.changes:
            outputs = host.update(urn, old.id, old.outputs, checked)
            return ResourceRecord(args.typ, args.name, old.id, checked, outputs), "update"
        return ResourceRecord(args.typ, args.name, old.id, checked, old.outputs), "same"

    def _apply_docker(
        self, args: MockResourceArgs, inputs: dict[str, Any], old: ResourceRecord | None
    ) -> tuple[ResourceRecord, str]:
        if old is not None and old.inputs == inputs and self._exists(old):
            return ResourceRecord(args.typ, args.name, old.id, inputs, old.outputs), "same"
        if old is not None:
            self._delete_docker(old)
        if args.typ == IMAGE:
            resource_id, outputs = self._build_image(inputs)
        else:
            resource_id, outputs = self._run_container(inputs)
        return ResourceRecord(
            args.typ, args.name, resource_id, inputs, outputs
        ), "create" if old is None else "replace"

    def _delete(self, host: ProviderHost, resource: ResourceRecord) -> None:
        if resource.typ.startswith(DYNAMIC_PREFIX):
            host.delete(host.urn(resource.typ, resource.name), resource.id, resource.outputs)
        else:
            self._delete_docker(resource)

    # --- Docker: the translation of declared inputs to Docker calls ----------------------------------------

    def _build_image(self, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        build = inputs["build"]
        reference = inputs["imageName"]
        image_id = build_image(
            self.docker,
            context=self.project_dir / build.get("context", "."),
            tag=reference,
            dockerfile=build.get("dockerfile", "Dockerfile"),
            buildargs=build.get("args"),
        )
        repo_digest = image_id  # pulumi-docker's repoDigest is the local image id when nothing is pushed
        if not inputs.get("skipPush"):
            registry = inputs.get("registry") or {}
            auth = {"username": registry.get("username"), "password": registry.get("password")}
            repo_digest = push_image(self.docker, reference, auth)
        return reference, {**inputs, "repoDigest": repo_digest}

    def _run_container(self, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        health = inputs.get("healthcheck")
        container = self.docker.containers.create(
            image=inputs["image"],
            name=inputs.get("name"),
            command=inputs.get("command"),
            environment=inputs.get("envs", []),
            restart_policy={"Name": inputs["restart"]} if inputs.get("restart") else None,
            healthcheck=Healthcheck(
                test=health["tests"],
                interval=_nanoseconds(health.get("interval")),
                timeout=_nanoseconds(health.get("timeout")),
                retries=int(health["retries"]) if "retries" in health else None,  # numbers arrive as floats
                start_period=_nanoseconds(health.get("startPeriod")),
            )
            if health
            else None,
            extra_hosts={h["host"]: h["ip"] for h in inputs.get("hosts", [])},
            mem_limit=f"{int(inputs['memory'])}m" if inputs.get("memory") else None,
            labels={label["label"]: label["value"] for label in inputs.get("labels", [])},
            volumes=[f"{v['hostPath']}:{v['containerPath']}" for v in inputs.get("volumes", [])],
            group_add=inputs.get("groupAdds"),
            cap_drop=inputs.get("capabilities", {}).get("drops"),
            cap_add=inputs.get("capabilities", {}).get("adds"),
            security_opt=inputs.get("securityOpts"),
        )
        if inputs.get("mustRun", True):
            container.start()
        if inputs.get("wait"):
            self._wait_healthy(container, timeout=float(inputs.get("waitTimeout", 60)))
        return container.id, {**inputs, "id": container.id}

    def _wait_healthy(self, container: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            container.reload()
            status = container.attrs["State"].get("Health", {}).get("Status")
            if status == "healthy":
                return
            if container.status == "exited":
                break
            time.sleep(1)
        logs = container.logs(tail=30).decode(errors="replace")
        raise RuntimeError(f"container {container.name} is not healthy after {timeout}s; last logs:\n{logs}")

    def _exists(self, resource: ResourceRecord) -> bool:
        try:
            if resource.typ == IMAGE:
                self.docker.images.get(resource.outputs["repoDigest"])
            else:
                return self.docker.containers.get(resource.id).status == "running"
        except docker.errors.NotFound:
            return False
        return True

    def _delete_docker(self, resource: ResourceRecord) -> None:
        if resource.typ == IMAGE:
            return  # pulumi-docker's Image does not delete images or tags on destroy
        with contextlib.suppress(docker.errors.NotFound):
            self.docker.containers.get(resource.id).remove(force=True)


class _Steps:
    """Resource steps under way (the mock monitor applies registrations on several threads)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._running = 0
        self._failed: str | None = None

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        with self._changed:
            if self._failed:
                raise RuntimeError(f"{name} was not applied: {self._failed} failed before it")
            self._running += 1
        try:
            yield
        except BaseException:
            self._failed = self._failed or name
            raise
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    def wait_idle(self, timeout: float = 600) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._running == 0, timeout=timeout)


def _nanoseconds(duration: str | None) -> int | None:
    """Docker's duration strings ("10s", "1m30s") as the nanoseconds the API takes."""
    if not duration:
        return None
    units = {"ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    seconds = sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration))
    return int(seconds * 1e9)


def _changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Outputs whose values differ (compared as JSON, so 3 and 3.0 are the same), `__provider` aside."""
    keys = (set(before) | set(after)) - {"__provider"}
    return {
        key: (before.get(key), after.get(key))
        for key in sorted(keys)
        if _canonical(before.get(key)) != _canonical(after.get(key))
    }


def _canonical(value: Any) -> str:
    def plain(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v

    return json.dumps(plain(reveal(value)), sort_keys=True, default=str)
