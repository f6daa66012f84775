"""A local engine for tests: runs the REAL Pulumi program and applies what it declares, for real, the way
`pulumi up` with pulumi-docker 5.2.0 would.

The Pulumi CLI cannot run on these machines, so this stands in for the part of `pulumi up` / `pulumi destroy`
/ `pulumi refresh` that matters to the product: the real `infra.program.main()` runs under the SDK's mock
monitor with the real stack config (tests/support/program_harness.py, which also hands over each
registration's resource options), and every resource it registers is applied here, its real outputs handed to
the resources that depend on it.

What it models, and where that comes from (pulumi/pulumi `pkg/resource/deploy/step_generator.go`
`generateSteps`/`continueStepsFromDiff`/`applyReplaceOnChanges`, `step.go`):

* Per resource: check, then diff against the RECORDED STATE (the previous outputs), then create, update,
  replace or same. A plain `up` reads nothing: it trusts its state (refresh is a separate step).
* `replace_on_changes`: a changed property under one of its paths turns the update into a replace; `"*"` also
  turns an init error (below) into a replace. `ignore_changes` (top-level properties): the old inputs' value is
  used, and the bridge drops the property from its diff; a replacement gets the program's own value (Check
  runs again with no olds). `delete_before_replace`: set by the program, it
  overrides the provider's choice; otherwise the provider's `DiffResult.delete_before_replace` decides
  (pulumi-docker: always true for containers; our dynamic providers say per type). Create-before-delete
  creates the replacement first and deletes the old object after every other step, like the engine.
  `depends_on` and input dependencies: a step starts only after the steps it depends on (the SDK already
  registers a resource only once its dependencies are registered), and deletions run in reverse dependency
  order.
* A create that fails after the object exists (a container whose `wait` timed out) keeps the resource in the
  state with init errors (bridge `pkg/tfbridge/provider.go` `Provider.Create` → `initializationError`; engine
  `step.go` `CreateStep.Apply`, `StatusPartialFailure`); the next `up` then sends an empty update, which the
  bridge answers with the old state (`Provider.Update`, nil diff) and so checks nothing, unless
  `replace_on_changes` covers it (`"*"`), which replaces it. A failed `up` keeps every resource it did not
  reach with its previous state; a delete-before-replace whose create failed keeps the old resource marked
  pending replacement (`DeleteStep.Apply`: the next `up` only creates); a create-before-delete whose create
  failed keeps the old.
* Dynamic resources (`pulumi-python:dynamic/*`) go through their providers in the same gRPC host process the
  engine starts (`python -m pulumi.dynamic`), configured with the stack config first. Their host does not
  accept secrets, so they are sent revealed and the record keeps the secret bit the way the engine does
  (`_DynamicHandler`; tests/support/engine_secrets.py from `provider_plugin.go` `annotateSecrets`).
* pulumi-docker resources and providers: tests/support/docker_resources.py, with the container's upstream
  facts in ONE table (tests/support/pulumi_docker_facts.py): what create sends, what the read records, what
  the diff replaces (ForceNew), updates in place (`ContainerUpdate`), or would show as `~ update` and apply
  to nothing, which this engine reports as an error. Container inputs the table does not model are refused.

`destroy()` deletes everything in reverse dependency order. `refresh()` reads every resource like `pulumi
refresh` and reports the drift; `up(refreshed)` after it is `pulumi up --refresh`.

Not modelled: the engine's state file and its secret encryption (the record is a Python object; secrets are
the SDK's wire form), pulumi-docker's secret handling (its resources are recorded revealed), previews,
parallelism beyond what the mock monitor does, the dependents that a delete-before-replace also replaces
(`calculateDependentReplacements`), pulumi-docker's Image `contextDigest` (the image's content tag stands in
for it), the native Image's fallback to Docker Desktop's user sockets. Refused rather than guessed: nested
`ignore_changes` / `replace_on_changes` paths, `replace_on_changes` on dynamic resources (their host's Diff
names no changed keys), `retain_on_delete`, `protect`, `custom_timeouts`, a changed provider configuration.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import docker
from pulumi.runtime import MockResourceArgs

from tests.support import pulumi_docker_facts as facts
from tests.support.docker_resources import (
    DockerEndpoint,
    DockerEndpoints,
    PartialCreateError,
    default_provider_host,
)
from tests.support.engine_secrets import annotate_secrets, mark_additional_secret_outputs, reveal
from tests.support.program_harness import ProgramRun, ResourceOptions, run_program
from tests.support.provider_host import ProviderHost

DYNAMIC_PREFIX = "pulumi-python:dynamic/"
IMAGE = "docker:index/image:Image"
CONTAINER = "docker:index/container:Container"
DOCKER_PROVIDER = "pulumi:providers:docker"
INIT_ERROR_KEY = "#initerror"  # step_generator.go initErrorSpecialKey


@dataclass
class ResourceRecord:
    typ: str
    name: str
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    options: ResourceOptions = field(default_factory=ResourceOptions)
    provider: str = ""  # "<provider urn>::<provider id>"; "" for the default provider
    init_errors: tuple[str, ...] = ()  # a create that failed after the object came into being
    pending_replacement: bool = False  # deleted by a delete-before-replace whose create did not happen
    delete: bool = False  # replaced by create-before-delete; its deletion is pending


@dataclass
class StackRecord:
    """What the state holds after an `up`, in creation order, and what each resource went through.
    `providers` are the explicit provider resources (Pulumi's state lists them among the resources)."""

    resources: list[ResourceRecord] = field(default_factory=list)
    actions: dict[str, str] = field(default_factory=dict)  # name -> create|update|replace|same|delete
    exports: dict[str, Any] = field(default_factory=dict)
    providers: list[ResourceRecord] = field(default_factory=list)
    deleted: set[tuple[str, str]] = field(default_factory=set)  # (type, id) deleted by this `up`

    def get(self, typ: str, name: str) -> ResourceRecord | None:
        """The live resource (not one whose deletion is pending)."""
        return next(
            (r for r in self.resources + self.providers if (r.typ, r.name) == (typ, name) and not r.delete),
            None,
        )

    def of_type(self, typ: str) -> list[ResourceRecord]:
        return [r for r in self.resources if r.typ == typ and not r.delete]


@dataclass(frozen=True)
class Drift:
    """What `pulumi refresh` found for one resource: gone, or outputs that differ from the record."""

    typ: str
    name: str
    gone: bool = False
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # output -> (recorded, actual)


@dataclass(frozen=True)
class Plan:
    """The step the engine chose for one resource."""

    action: str  # create | update | replace | same
    delete_before_replace: bool = False
    changed: tuple[str, ...] = ()


class EngineModelError(RuntimeError):
    """The program asks for something this engine does not model (it refuses rather than guess)."""


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
        # The test's own client (checks, cleanup); the engine talks to the endpoint of each resource's provider.
        self.docker = docker_client
        # When given, everything each provider host printed is appended here (tests scan it for credentials).
        self.host_logs = host_logs
        self.endpoints = DockerEndpoints()

    @contextmanager
    def _provider_host(self) -> Iterator[ProviderHost]:
        host = ProviderHost(self.project_dir, stack=self.stack)
        try:
            with host:
                host.configure(self.config, self.secret_keys)
                yield host
        finally:
            if self.host_logs is not None:
                self.host_logs.append(host.log_text())

    # --- pulumi up ------------------------------------------------------------------------------------------

    def up(self, previous: StackRecord | None = None) -> StackRecord:
        """Apply the program; on failure the state as the engine would keep it is attached as `.record`."""
        previous = previous or StackRecord()
        record = StackRecord()
        steps = _Steps()
        with self._provider_host() as host:

            def apply(args: MockResourceArgs, options: ResourceOptions) -> tuple[str, dict[str, Any]]:
                with steps.step(args.name, options):
                    resource = self._step(host, args, options, previous, record)
                return resource.id, resource.outputs

            try:
                run: ProgramRun = run_program(
                    self.config, self.secret_keys, stack=self.stack, project_dir=self.project_dir, apply=apply
                )
                record.exports = run.exports
                self._delete_leftovers(host, previous, record)
            except BaseException as error:
                # Like the engine: start nothing new after a failure, let what is under way finish, and keep
                # in the state everything this `up` did not reach, as it was.
                steps.wait_idle()
                error.record = _with_unreached(record, previous)  # type: ignore[attr-defined]
                raise
        return record

    def _step(
        self,
        host: ProviderHost,
        args: MockResourceArgs,
        options: ResourceOptions,
        previous: StackRecord,
        record: StackRecord,
    ) -> ResourceRecord:
        _refuse_unmodelled_options(args.name, options)
        old = previous.get(args.typ, args.name)
        # Dynamic resources keep their secrets marked in the state (see _DynamicHandler); pulumi-docker's are
        # recorded revealed (its secret handling is not modelled).
        dynamic = args.typ.startswith(DYNAMIC_PREFIX)
        declared = dict(args.inputs) if dynamic else reveal(dict(args.inputs))
        inputs = dict(declared)
        for key in options.ignore_changes:  # processIgnoreChanges: the old inputs' value, or none
            if old is not None:
                if key in old.inputs:
                    inputs[key] = old.inputs[key]
                else:
                    inputs.pop(key, None)
        new = ResourceRecord(args.typ, args.name, "", inputs, {}, options, args.provider or "")
        if args.typ == DOCKER_PROVIDER:
            return self._provider_step(new, old, record)
        handler = self._handler(host, new, record)
        plan = handler.plan(old) if old is not None else Plan("create")
        if old is not None and old.pending_replacement:
            plan = Plan("replace", delete_before_replace=True)
        if plan.action in ("update", "same") and old is not None:
            plan = _apply_replace_on_changes(plan, options, old)
        if plan.action == "same":
            return _keep(record, replace(new, id=old.id, outputs=old.outputs) if old else new, "same")
        if plan.action == "update":
            assert old is not None
            outputs = handler.update(old, plan)
            return _keep(record, replace(new, id=old.id, outputs=outputs), "update")
        if plan.action == "create":
            return self._create(handler, new, record, "create")
        assert old is not None
        # A replacement is checked again from the program's inputs with no olds, so `ignore_changes` carries
        # nothing into it (step_generator.go, replace branch: "we need to recompute the default values",
        # `prov.Check(urn, nil, goal.Properties, ...)`).
        new.inputs = declared
        handler.checked = False
        delete_first = (
            plan.delete_before_replace
            if options.delete_before_replace is None
            else options.delete_before_replace
        )
        if delete_first:
            if not old.pending_replacement:
                handler.delete(old)
            # Deleted: the old resource stays in the state, pending replacement, until its replacement exists.
            pending = replace(old, pending_replacement=True)
            try:
                return self._create(handler, new, record, "replace")
            except PartialCreateError:
                raise
            except BaseException:
                record.resources.append(pending)
                raise
        try:
            created = self._create(handler, new, record, "replace")
        except PartialCreateError:
            record.resources.append(replace(old, delete=True))
            raise
        except BaseException:
            record.resources.append(old)  # the replacement was not created: the old one stays as it was
            raise
        record.resources.append(replace(old, delete=True))  # deleted after every other step
        return created

    def _create(
        self, handler: _Handler, new: ResourceRecord, record: StackRecord, action: str
    ) -> ResourceRecord:
        try:
            resource_id, outputs = handler.create()
        except PartialCreateError as error:
            partial = replace(new, id=error.resource_id, outputs=error.state, init_errors=(error.reason,))
            _keep(record, partial, action)
            raise
        return _keep(record, replace(new, id=resource_id, outputs=outputs), action)

    def _provider_step(
        self, new: ResourceRecord, old: ResourceRecord | None, record: StackRecord
    ) -> ResourceRecord:
        """An explicit `pulumi:providers:docker`: its inputs configure the endpoint of its resources."""
        if old is None:
            created = replace(new, id=str(uuid.uuid4()), outputs=dict(new.inputs))
            record.providers.append(created)
            record.actions[new.name] = "create"
            return created
        if _canonical(old.inputs) != _canonical(new.inputs):
            raise EngineModelError(
                f"provider {new.name}: its configuration changed ({old.inputs} → {new.inputs}); replacing a "
                f"provider and its resources is not modelled"
            )
        kept = replace(new, id=old.id, outputs=old.outputs)
        record.providers.append(kept)
        record.actions[new.name] = "same"
        return kept

    def _handler(self, host: ProviderHost, resource: ResourceRecord, record: StackRecord) -> _Handler:
        if resource.typ.startswith(DYNAMIC_PREFIX):
            return _DynamicHandler(host, resource)
        if resource.typ == IMAGE:
            return _ImageHandler(self._endpoint(resource, record), resource, self.project_dir)
        if resource.typ == CONTAINER:
            return _ContainerHandler(self._endpoint(resource, record), resource)
        raise EngineModelError(
            f"the local engine does not know resource type {resource.typ} ({resource.name})"
        )

    def _endpoint(self, resource: ResourceRecord, record: StackRecord | None) -> DockerEndpoint:
        if not resource.provider:
            return self.endpoints.get(default_provider_host(self.config))
        providers = record.providers if record is not None else []
        provider_urn, _, provider_id = resource.provider.rpartition("::")
        found = next((p for p in providers if p.options.urn == provider_urn and p.id == provider_id), None)
        if found is None:
            raise EngineModelError(f"{resource.name}: its provider {resource.provider} is not in the state")
        return self.endpoints.get(str(found.inputs.get("host") or default_provider_host(self.config)))

    def _delete_leftovers(self, host: ProviderHost, previous: StackRecord, record: StackRecord) -> None:
        """After every create and update: delete what the program no longer declares and what a
        create-before-delete replaced, in reverse dependency order."""
        declared = {(r.typ, r.name) for r in record.resources if not r.delete}
        leftovers = [r for r in record.resources if r.delete]
        leftovers += [
            r
            for r in previous.resources
            if r.delete or ((r.typ, r.name) not in declared and not r.pending_replacement)
        ]
        for resource in _deletion_order(leftovers):
            self._handler(host, resource, _providers_of(previous, record)).delete(resource)
            record.deleted.add((resource.typ, resource.id))
            if resource in record.resources:
                record.resources.remove(resource)
            elif (resource.typ, resource.name) not in declared:
                record.actions[resource.name] = "delete"

    # --- pulumi destroy / refresh ---------------------------------------------------------------------------

    def destroy(self, record: StackRecord) -> None:
        with self._provider_host() as host:
            for resource in _deletion_order([r for r in record.resources if not r.pending_replacement]):
                self._handler(host, resource, record).delete(resource)
                record.resources.remove(resource)
        record.resources.clear()
        record.providers.clear()

    def refresh(self, record: StackRecord) -> tuple[StackRecord, list[Drift]]:
        """`pulumi refresh`: read every recorded resource and take what exists as the new record.

        Dynamic resources go through their provider's `read` (a gone object is dropped; the read's outputs,
        and its inputs when it returns some, replace the recorded ones). A container goes through
        resourceDockerContainerRead: dropped when it no longer exists; a stopped one stays, with `mustRun`
        false (the next `up` sees the change). An image is kept as recorded (the native Image's Read
        returns its state). Returns the new record and, per resource that drifted, what changed.
        """
        refreshed = StackRecord(actions={}, exports=dict(record.exports), providers=list(record.providers))
        drifts: list[Drift] = []
        with self._provider_host() as host:
            for resource in record.resources:
                outputs = self._handler(host, resource, record).read(resource)
                if outputs is None:
                    drifts.append(Drift(resource.typ, resource.name, gone=True))
                    continue
                current, new_outputs = outputs
                changed = _changed(resource.outputs, new_outputs)
                if changed:
                    drifts.append(Drift(resource.typ, resource.name, changed=changed))
                refreshed.resources.append(replace(resource, outputs=new_outputs, **current))
                refreshed.actions[resource.name] = "refresh"
        return refreshed, drifts


# --- the three kinds of resources ------------------------------------------------------------------------------


class _Handler:
    """Check/diff/create/update/delete/read of one resource, as its provider does them."""

    resource: ResourceRecord
    checked = False  # a provider's Check already ran on `resource.inputs` (dynamic resources)

    def plan(self, old: ResourceRecord) -> Plan:
        raise NotImplementedError

    def create(self) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def update(self, old: ResourceRecord, plan: Plan) -> dict[str, Any]:
        raise NotImplementedError

    def delete(self, old: ResourceRecord) -> None:
        raise NotImplementedError

    def read(self, old: ResourceRecord) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(record fields to change, new outputs), or None when the object is gone."""
        raise NotImplementedError


class _DynamicHandler(_Handler):
    """A dynamic resource through the provider host, with the engine's secret rules for a provider that answers
    Configure with acceptSecrets=False (tests/support/engine_secrets.py, from pkg/resource/plugin/
    provider_plugin.go): every property is sent revealed, and the state keeps the secret bit by key, Check's
    inputs from the declared ones, Create's and Update's outputs from the checked inputs, Read's from the previous
    state; then the resource's `additional_secret_outputs` (pkg/resource/deploy/step_executor.go)."""

    def __init__(self, host: ProviderHost, resource: ResourceRecord) -> None:
        if resource.options.replace_on_changes:
            # The dynamic host's Diff answers no changed keys, so which paths changed is not known here.
            raise EngineModelError(
                f"{resource.name}: replace_on_changes on a dynamic resource is not modelled"
            )
        self.host = host
        self.resource = resource
        self.urn = host.urn(resource.typ, resource.name)
        self.checked = False

    def _check(self, old: ResourceRecord | None) -> dict[str, Any]:
        """Check's result is what diff, create and update receive (and what the state records as inputs)."""
        declared = self.resource.inputs
        checked = self.host.check(self.urn, reveal(old.inputs) if old else {}, reveal(declared)).inputs
        self.resource.inputs = annotate_secrets(checked, declared)
        self.checked = True
        return self.resource.inputs

    def _outputs(self, outputs: dict[str, Any], sent: dict[str, Any]) -> dict[str, Any]:
        annotate_secrets(outputs, sent)
        return mark_additional_secret_outputs(outputs, self.resource.options.additional_secret_outputs)

    def plan(self, old: ResourceRecord) -> Plan:
        diff = self.host.diff(self.urn, old.id, reveal(old.outputs), reveal(self._check(old)))
        if diff.replaces:
            return Plan("replace", diff.delete_before_replace, tuple(diff.replaces))
        return Plan("update" if diff.changes else "same")

    def create(self) -> tuple[str, dict[str, Any]]:
        if not self.checked:
            self._check(None)
        resource_id, outputs = self.host.create(self.urn, reveal(self.resource.inputs))
        return resource_id, self._outputs(outputs, self.resource.inputs)

    def update(self, old: ResourceRecord, plan: Plan) -> dict[str, Any]:
        outputs = self.host.update(self.urn, old.id, reveal(old.outputs), reveal(self.resource.inputs))
        return self._outputs(outputs, self.resource.inputs)

    def delete(self, old: ResourceRecord) -> None:
        self.host.delete(self.urn, old.id, reveal(old.outputs))

    def read(self, old: ResourceRecord) -> tuple[dict[str, Any], dict[str, Any]] | None:
        result = self.host.read(self.urn, old.id, reveal(old.outputs), reveal(old.inputs))
        if result.gone:
            return None
        current: dict[str, Any] = {"id": result.id}
        if result.inputs is not None:
            current["inputs"] = annotate_secrets(result.inputs, old.inputs)
        return current, self._outputs(result.outputs, old.outputs)


class _ImageHandler(_Handler):
    """The native docker.Image (provider/provider.go): any diff is an update (Diff reports no replaces); a
    change of the registry's username or password alone is no diff (`diffUpdates`)."""

    def __init__(self, endpoint: DockerEndpoint, resource: ResourceRecord, project_dir: Path) -> None:
        self.endpoint = endpoint
        self.resource = resource
        self.project_dir = project_dir

    @staticmethod
    def _compared(inputs: dict[str, Any]) -> dict[str, Any]:
        registry = {
            k: v for k, v in (inputs.get("registry") or {}).items() if k not in ("username", "password")
        }
        return {**inputs, "registry": registry}

    def plan(self, old: ResourceRecord) -> Plan:
        changed = _changed(self._compared(old.inputs), self._compared(self.resource.inputs))
        return Plan("update" if changed else "same", changed=tuple(changed))

    def create(self) -> tuple[str, dict[str, Any]]:
        return self.endpoint.build(self.project_dir, self.resource.inputs)

    def update(self, old: ResourceRecord, plan: Plan) -> dict[str, Any]:
        return self.endpoint.build(self.project_dir, self.resource.inputs)[1]

    def delete(self, old: ResourceRecord) -> None:
        pass  # the native provider's Delete does nothing: images and tags stay

    def read(self, old: ResourceRecord) -> tuple[dict[str, Any], dict[str, Any]] | None:
        return {}, old.outputs


class _ContainerHandler(_Handler):
    def __init__(self, endpoint: DockerEndpoint, resource: ResourceRecord) -> None:
        self.endpoint = endpoint
        self.resource = resource

    def plan(self, old: ResourceRecord) -> Plan:
        facts.refuse_unmodelled(self.resource.inputs)
        change = facts.diff(old.outputs, self.resource.inputs, self.resource.options.ignore_changes)
        self.change = change
        if change.replaces:
            # pulumi-docker resources.go: DeleteBeforeReplace for every docker_container replace.
            return Plan("replace", delete_before_replace=True, changed=change.changed)
        if change.changed or old.init_errors:
            return Plan("update", changed=change.changed)
        return Plan("same")

    def create(self) -> tuple[str, dict[str, Any]]:
        return self.endpoint.create_container(self.resource.inputs)

    def update(self, old: ResourceRecord, plan: Plan) -> dict[str, Any]:
        return self.endpoint.update_container(old.id, old.outputs, self.resource.inputs, self.change)

    def delete(self, old: ResourceRecord) -> None:
        self.endpoint.delete_container(old.id, old.outputs)

    def read(self, old: ResourceRecord) -> tuple[dict[str, Any], dict[str, Any]] | None:
        state = self.endpoint.read_container(old.id, old.outputs)
        return None if state is None else ({}, state)


# --- the engine's bookkeeping ----------------------------------------------------------------------------------


def _refuse_unmodelled_options(name: str, options: ResourceOptions) -> None:
    nested = [p for p in (*options.replace_on_changes, *options.ignore_changes) if any(c in p for c in ".[")]
    if nested:
        raise EngineModelError(f"{name}: nested property paths {nested} in resource options are not modelled")
    if options.retain_on_delete or options.protect or any(options.custom_timeouts):
        raise EngineModelError(f"{name}: retain_on_delete, protect and custom_timeouts are not modelled")


def _apply_replace_on_changes(plan: Plan, options: ResourceOptions, old: ResourceRecord) -> Plan:
    """applyReplaceOnChanges: a changed property under a replace_on_changes path, or init errors when a path
    covers `#initerror` ("*" does), replace; otherwise init errors alone make an empty update."""
    paths = options.replace_on_changes
    covers = lambda key: any(p in ("*", key) for p in paths)  # noqa: E731 - one-level PropertyPath.Contains
    if any(covers(key) for key in plan.changed) or (old.init_errors and covers(INIT_ERROR_KEY)):
        return Plan("replace", delete_before_replace=plan.delete_before_replace, changed=plan.changed)
    if old.init_errors and plan.action == "same":
        return Plan("update")
    return plan


def _keep(record: StackRecord, resource: ResourceRecord, action: str) -> ResourceRecord:
    record.resources.append(resource)
    record.actions[resource.name] = action
    return resource


def _with_unreached(record: StackRecord, previous: StackRecord) -> StackRecord:
    """The state after a failed `up`: what it did, plus every earlier resource it did not reach, as it was."""
    reached = {(r.typ, r.name) for r in record.resources}
    unreached = [
        r
        for r in previous.resources
        if (r.typ, r.id) not in record.deleted and (r.delete or (r.typ, r.name) not in reached)
    ]
    providers = {(p.typ, p.name) for p in record.providers}
    return StackRecord(
        resources=record.resources + unreached,
        actions=dict(record.actions),
        exports=dict(record.exports),
        providers=record.providers + [p for p in previous.providers if (p.typ, p.name) not in providers],
    )


def _providers_of(*records: StackRecord) -> StackRecord:
    return StackRecord(providers=[p for r in records for p in r.providers])


def _deletion_order(resources: Iterable[ResourceRecord]) -> list[ResourceRecord]:
    """Dependents before what they depend on (the order `pulumi destroy` deletes in)."""
    remaining = list(resources)
    ordered: list[ResourceRecord] = []
    while remaining:
        needed = {urn for r in remaining for urn in r.options.dependencies}
        free = [r for r in remaining if not r.options.urn or r.options.urn not in needed]
        if not free:  # a cycle cannot happen in a Pulumi program; fall back to reverse creation order
            free = [remaining[-1]]
        for resource in reversed(free):
            ordered.append(resource)
            remaining.remove(resource)
    return ordered


class _Steps:
    """Resource steps under way (the mock monitor applies registrations on several threads)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._running = 0
        self._done: set[str] = set()
        self._failed: str | None = None

    @contextmanager
    def step(self, name: str, options: ResourceOptions, timeout: float = 600) -> Iterator[None]:
        with self._changed:
            # A step starts when the steps it depends on are done (the SDK registers in that order already).
            ready = self._changed.wait_for(
                lambda: self._failed or self._done >= set(options.dependencies), timeout
            )
            if not ready:
                raise EngineModelError(f"{name}: the steps it depends on did not finish within {timeout}s")
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
                self._done.add(options.urn)
                self._changed.notify_all()

    def wait_idle(self, timeout: float = 600) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._running == 0, timeout=timeout)


def _changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Outputs whose values differ (compared as JSON, so 3 and 3.0 are the same), `__provider` aside."""
    keys = (set(before) | set(after)) - {"__provider"}
    return {
        key: (before.get(key), after.get(key))
        for key in sorted(keys)
        if _canonical(before.get(key)) != _canonical(after.get(key))
    }


def _canonical(value: Any) -> str:
    return json.dumps(facts.plain(reveal(value)), sort_keys=True, default=str)
