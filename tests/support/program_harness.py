"""Run the real Pulumi program (`__main__.py` → `infra.program.main`) under the SDK's mock monitor.

The mock monitor stands in for the engine: every resource the program registers reaches `new_resource`, which
returns the resource's id and outputs. By default they are plausible fakes (unit tests of the declared graph);
`tests/support/local_engine.py` passes an `apply` function that creates the resource for real instead.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks
from pulumi.runtime.mocks import MockMonitor

PROJECT = "suggest-activity"
REPO_ROOT = Path(__file__).resolve().parents[2]
# A Prefect Cloud workspace URL of the right shape (no such account): the cloud-stack tests point at it.
CLOUD_URL = (
    "https://api.prefect.cloud/api/accounts/0b6b2f4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
    "/workspaces/9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
)


@dataclass(frozen=True)
class ResourceOptions:
    """The resource options of one registration, as the engine receives them in the RegisterResource request
    (`pulumi/runtime/resource.py` `register_resource` fills them from `pulumi.ResourceOptions`)."""

    urn: str = ""
    provider: str = ""  # "<provider urn>::<provider id>", "" for the default provider
    dependencies: tuple[str, ...] = ()  # URNs: `depends_on` and the resources the inputs came from
    delete_before_replace: bool | None = None  # None: not set, the provider's diff decides
    replace_on_changes: tuple[str, ...] = ()
    ignore_changes: tuple[str, ...] = ()
    retain_on_delete: bool = False
    protect: bool = False
    custom_timeouts: tuple[str, str, str] = ("", "", "")  # create, update, delete
    additional_secret_outputs: tuple[str, ...] = ()

    @classmethod
    def from_request(cls, request: Any, urn: str) -> ResourceOptions:
        dependencies = set(request.dependencies)
        for property_dependencies in request.propertyDependencies.values():
            dependencies.update(property_dependencies.urns)
        timeouts = request.customTimeouts
        return cls(
            urn=urn,
            provider=request.provider,
            dependencies=tuple(sorted(dependencies)),
            delete_before_replace=request.deleteBeforeReplace if request.deleteBeforeReplaceDefined else None,
            replace_on_changes=tuple(request.replaceOnChanges),
            ignore_changes=tuple(request.ignoreChanges),
            retain_on_delete=bool(request.retainOnDelete),
            protect=bool(request.protect),
            custom_timeouts=(timeouts.create, timeouts.update, timeouts.delete),
            additional_secret_outputs=tuple(request.additionalSecretOutputs),
        )


# What an `apply` function is handed: the mock's arguments and the registration's options.
Apply = Callable[[MockResourceArgs, ResourceOptions], tuple[str, dict[str, Any]]]


@dataclass
class Registration:
    typ: str
    name: str
    inputs: dict[str, Any]
    id: str
    outputs: dict[str, Any]
    options: ResourceOptions = field(default_factory=ResourceOptions)
    provider: str = ""


class OptionsMonitor(MockMonitor):
    """The SDK's mock monitor, which hands `new_resource` only the type, name, inputs and provider of a
    registration: this one keeps the request's resource options for it too."""

    def __init__(self, mocks: ProgramMocks) -> None:
        super().__init__(mocks)
        self.program_mocks = mocks

    def RegisterResource(self, request: Any) -> Any:
        urn = self.make_urn(request.parent, request.type, request.name)
        self.program_mocks.options[(request.type, request.name)] = ResourceOptions.from_request(request, urn)
        return super().RegisterResource(request)


class ProgramMocks(Mocks):
    def __init__(self, apply: Apply) -> None:
        self.apply = apply
        self.registrations: list[Registration] = []
        self.options: dict[tuple[str, str], ResourceOptions] = {}

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        options = self.options[(args.typ, args.name)]
        resource_id, outputs = self.apply(args, options)
        self.registrations.append(
            Registration(
                args.typ, args.name, dict(args.inputs), resource_id, outputs, options, args.provider or ""
            )
        )
        return resource_id, outputs

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], None]:
        raise AssertionError(f"the program made an unexpected provider call: {args.token}")


@dataclass
class ProgramRun:
    registrations: list[Registration]
    exports: dict[str, Any]

    def of_type(self, typ: str) -> list[Registration]:
        return [r for r in self.registrations if r.typ == typ]

    def one(self, typ: str) -> Registration:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, the program registered {len(found)}"
        return found[0]


def fake_outputs(args: MockResourceArgs, options: ResourceOptions) -> tuple[str, dict[str, Any]]:
    """What a successful engine would hand back, without touching anything."""
    inputs = dict(args.inputs)
    token = hashlib.sha256(f"{args.typ}/{args.name}/{inputs.get('imageName')}".encode()).hexdigest()
    if args.typ == "docker:index/image:Image":
        pushed = not inputs.get("skipPush")
        repository = str(inputs["imageName"]).rsplit(":", 1)[0]
        inputs["repoDigest"] = f"{repository}@sha256:{token}" if pushed else f"sha256:{token}"
    elif args.typ == "pulumi-python:dynamic/prefect:WorkPool":
        inputs.update(pool_id=token[:32], status="NOT_READY", ui_url=f"http://ui/work-pools/{inputs['name']}")
    elif args.typ == "pulumi-python:dynamic/prefect:Deployment":
        inputs.update(
            deployment_id=token[:32],
            flow_id=token[32:],
            schedule_ids={s["slug"]: token[:8] for s in inputs.get("schedules") or []},
            next_run_time="2026-01-01T07:00:00+00:00",
            ui_url=f"http://ui/deployments/deployment/{token[:32]}",
        )
    elif args.typ == "pulumi-python:dynamic/prefect:FlowRunCheck":
        inputs.update(
            flow_run_id=token[:32],
            flow_run_name="smoke-test-run",
            ui_url=f"http://ui/runs/flow-run/{token[:32]}",
            state_type="COMPLETED",
            state_name="Completed",
            duration_seconds=4.2,
            artifact_keys=["activity-suggestion"],
        )
    elif args.typ == "pulumi-python:dynamic/prefect:NotificationBlock":
        inputs.update(
            block_document_id=str(uuid.UUID(token[:32])), ui_url=f"http://ui/blocks/block/{token[:32]}"
        )
    elif args.typ == "pulumi-python:dynamic/prefect:Automation":
        inputs.update(automation_id=token[:32], ui_url=f"http://ui/automations/automation/{token[:32]}")
    return f"{args.name}-id", inputs


@contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def run_program(
    config: Mapping[str, str],
    secret_keys: Sequence[str] = (),
    *,
    stack: str = "dev",
    project_dir: Path = REPO_ROOT,
    apply: Apply = fake_outputs,
) -> ProgramRun:
    """Run the program once with this stack config; raises what the program raises."""
    from infra.program import main

    # Each `pulumi up` starts with no exports, but `set_mocks` keeps the stack resource of an earlier run in
    # this process (pulumi/runtime/mocks.py `set_mocks` makes one only when there is none), with its exports.
    earlier_stack = pulumi.runtime.settings.get_root_resource()
    if earlier_stack is not None:
        earlier_stack.outputs.clear()  # type: ignore[attr-defined]
    pulumi.runtime.set_all_config(dict(config), list(secret_keys))
    mocks = ProgramMocks(apply)
    pulumi.runtime.set_mocks(
        mocks, project=PROJECT, stack=stack, preview=False, monitor=OptionsMonitor(mocks)
    )
    exports: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        with _working_directory(project_dir):  # Pulumi runs the program from the project directory
            main(project_dir)
        stack_outputs = pulumi.runtime.settings.get_root_resource().outputs  # type: ignore[union-attr]
        return pulumi.Output.from_input(stack_outputs).apply(exports.update)

    try:
        program()
    except BaseException as error:
        _ALREADY_RAISED.messages.add(str(error))
        _drop_abandoned_registrations()
        raise
    return ProgramRun(mocks.registrations, exports)


class _Unretrieved(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Future exception was never retrieved")


class _AlreadyRaised(logging.Filter):
    """Outputs derived from a failed one (an `apply` on the image's digest) hold the same error in futures that
    nothing awaits once the program has failed, and some outlive the collection below (the caller keeps the
    error, and its traceback keeps them). Collected at exit, each would log the error again: drop those logs
    for errors a failed program already raised to its caller, and only those."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        unretrieved = record.getMessage().startswith("Future exception was never retrieved")
        return not (unretrieved and error is not None and str(error) in self.messages)


_ALREADY_RAISED = _AlreadyRaised()
logging.getLogger("asyncio").addFilter(_ALREADY_RAISED)


def _drop_abandoned_registrations() -> None:
    """A failed program leaves one failed future per pending registration, held by the SDK's settings until the
    next run. Collected at some later moment, each logs "exception was never retrieved" with a long traceback,
    and inside pytest's formatting of a failure that logging crashes CPython 3.11.7 ("AST constructor recursion
    depth mismatch"). The failure itself is raised to the caller: drop and collect the leftovers now, quietly."""
    from pulumi.runtime.settings import SETTINGS

    quiet = _Unretrieved()
    logger = logging.getLogger("asyncio")
    logger.addFilter(quiet)
    try:
        SETTINGS.rpc_manager.clear()
        SETTINGS.outputs.clear()
        gc.collect()
    finally:
        logger.removeFilter(quiet)


def dev_stack_config() -> dict[str, str]:
    """The committed Pulumi.dev.yaml, flattened the way the engine hands config to the program."""
    import yaml

    document = yaml.safe_load((REPO_ROOT / "Pulumi.dev.yaml").read_text())
    return {key: value if isinstance(value, str) else str(value) for key, value in document["config"].items()}
